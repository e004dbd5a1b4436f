"""A runtime whose ZAP handler stops must stop serving: run in its own process.

`python -m tests.integration.authenticator_dies KEYS` serves a secure runtime on
ephemeral loopback ports, stops its authenticator once serving, and exits 0 if
`serve()` then ends with `AuthenticatorDied` within a few heartbeats, 1 otherwise.
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio

from runtime import compile_workflow
from runtime.security._keys import load_principals, load_server_keys
from runtime.store import MemoryStore
from runtime.supervisor import RuntimeConfig, Security, Supervisor
from runtime.supervisor._supervisor import AuthenticatorDied
from tests.integration.flows import flaky

HEARTBEAT = 0.05


async def main(keys: Path) -> int:
    security = Security(load_server_keys(keys), load_principals(keys))
    config = RuntimeConfig(
        agents="tcp://127.0.0.1:0", control="tcp://127.0.0.1:0", heartbeat=HEARTBEAT
    )
    supervisor = Supervisor([compile_workflow(flaky)], MemoryStore(), config, security=security)
    supervisor.bind()
    authenticator = supervisor._authenticator
    assert authenticator is not None
    died = False
    try:
        with anyio.fail_after(20 * HEARTBEAT):
            async with anyio.create_task_group() as tg:
                await tg.start(supervisor.serve)
                authenticator.stop()
    except* AuthenticatorDied:
        died = True
    return 0 if died else 1


if __name__ == "__main__":
    raise SystemExit(anyio.run(main, Path(sys.argv[1])))
