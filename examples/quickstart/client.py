"""The control plane from a program: start a refund that waits for a person, approve it, and
read who wrote what. Run it beside the five-minute workflow's runtime and actors:

    python -m examples.quickstart.client
"""

import os

import anyio

from runtime import ControlClient

CONTROL = os.environ.get("BATON_CONTROL", "tcp://127.0.0.1:7711")


async def main() -> None:
    async with ControlClient(CONTROL) as client:  # keys=... for a runtime with CURVE
        run_id = await client.start_run("refunds", {"order_id": "o-300", "reason": "broken"})
        with anyio.fail_after(30):  # it holds before `refund`, as 129.00 is over 50.00
            waiting = await client.pending(run_id)
            while not waiting:
                await anyio.sleep(0.1)
                waiting = await client.pending(run_id)
        print(f"{run_id} waits on {waiting[0].step}: {waiting[0].reason}")
        await client.decide(waiting[0], "approve", comment="photo of the damage checked")
        record, _ = await client.wait_run(run_id, max_wait=30)
        print(f"{run_id} {record.status}")
        for name, why in record.provenance.items():
            print(f"  {name} = {record.data[name]} from {why.step}#{why.attempt}: {why.rationale}")
        for entry in record.history:
            if entry.event == "decision_made":
                print(f"  {entry.step}: {entry.message}")


if __name__ == "__main__":
    anyio.run(main)
