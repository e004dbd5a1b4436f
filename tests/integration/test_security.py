"""Both planes under attack: keys, roles, sessions, bad frames and audit, with real processes.

Each test starts its own runtime process (one ZAP authenticator per process).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
import zmq
from zmq.utils.monitor import parse_monitor_message

from protocols import (
    DEFAULT_MAX_FRAME,
    PROTOCOL_VERSION,
    Bye,
    ClientKeys,
    ControlError,
    Error,
    Register,
    StartRun,
    Welcome,
    actor_side_codec,
    client_side_control_codec,
)
from runtime import ControlClient, ControlRefused
from runtime.launch import ProcessGroup, RuntimeProcess
from runtime.security._keys import load_client_keys
from tests.integration.conftest import HEARTBEAT

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

FLOWS = "tests.integration.flows"
DOC_CLIENT = ClientKeys(
    principal="zeromq-manual",
    public=b"Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID",
    secret=b"D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs",
    server=b"rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7",
)
"""The example keys printed in the zmq_curve manual page."""
PROMPTLY = 4.5
"""Seconds within which a refused actor exits: less than its 5 s registration timeout,
so only an explained refusal, not a timeout, can end it in time."""


def key_directory(cluster: ProcessGroup) -> Path:
    assert cluster.keys is not None
    return cluster.keys


def log_events(cluster: ProcessGroup, label: str) -> list[dict[str, Any]]:
    """The JSON log lines a child has written so far."""
    events = []
    for line in cluster.log_of(label).splitlines():
        if line.startswith("{"):
            events.append(json.loads(line))
    return events


async def wait_for_log(
    cluster: ProcessGroup,
    label: str,
    matches: Callable[[dict[str, Any]], bool],
    *,
    limit: float = 20.0,
) -> dict[str, Any]:
    """The first log event of `label` that `matches`, polled until `limit` seconds."""
    with anyio.fail_after(limit):
        while True:
            for event in log_events(cluster, label):
                if matches(event):
                    return event
            await anyio.sleep(0.02)


def stopped_statistics(cluster: ProcessGroup, runtime: RuntimeProcess) -> dict[str, Any]:
    """Stop the runtime and return the counters it logged on the way out."""
    assert cluster.stop(runtime.process) == 0
    (stopped,) = [e for e in log_events(cluster, "runtime") if e["event"] == "runtime.stopped"]
    return stopped


HANDSHAKE_REASONS = {"handshake_refused", "handshake_protocol", "handshake_failed", "unknown_key"}


def assert_only_handshakes_refused(stats: dict[str, Any]) -> None:
    """Refusals were counted, all at the handshake: no frame of the peer was decoded."""
    rejected = stats["rejected_frames"]
    assert rejected
    assert set(rejected) <= HANDSHAKE_REASONS, rejected


def flows_runtime(cluster: ProcessGroup, *roles: str) -> RuntimeProcess:
    for role in roles:
        cluster.enroll(role, role)
    return cluster.start_runtime([f"{FLOWS}:ALL"], heartbeat=HEARTBEAT)


async def complete_a_run(runtime: RuntimeProcess) -> None:
    """The flaky workflow runs to completion: the runtime still serves."""
    async with ControlClient(runtime.control, keys=runtime.operator) as client:
        run_id = await client.start_run("flaky", {"n": 2})
        outcome = await client.wait_outcome(run_id, max_wait=30)
    assert outcome.status == "completed"


def raw_handshake(endpoint: str, keys: ClientKeys | None, frame: bytes) -> list[int]:
    """Connect a bare DEALER with `keys`, send `frame`, and return the handshake events seen
    until the first failure (or success); what the runtime answered, if anything, is
    asserted by the caller through `recv`."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RECONNECT_IVL, 50)
    if keys is not None:
        sock.curve_secretkey = keys.secret
        sock.curve_publickey = keys.public
        sock.curve_serverkey = keys.server
    monitor = sock.get_monitor_socket(
        zmq.EVENT_HANDSHAKE_SUCCEEDED
        | zmq.EVENT_HANDSHAKE_FAILED_AUTH
        | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
        | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    )
    events: list[int] = []
    try:
        sock.connect(endpoint)
        sock.send(frame)
        while len(events) < 3:
            if not monitor.poll(10_000):
                break
            event = int(parse_monitor_message(monitor.recv_multipart())["event"])
            events.append(event)
            if event in (zmq.EVENT_HANDSHAKE_SUCCEEDED, zmq.EVENT_HANDSHAKE_FAILED_AUTH):
                break
        # Whatever the runtime might have answered has arrived by the time the
        # handshake failed: a refused peer never reaches the point of a reply.
        assert sock.poll(0) == 0
    finally:
        sock.disable_monitor()
        monitor.close(linger=0)
        sock.close(linger=0)
        ctx.term()
    return events


def register_frame(role: str) -> bytes:
    return actor_side_codec().encode(
        Register(protocol=PROTOCOL_VERSION, name="intruder", role=role)
    )


class TestHandshakes:
    """Only keys the runtime knows complete a handshake; nothing else is decoded."""

    async def test_unknown_key_is_refused_with_a_clear_error(self, cluster: ProcessGroup) -> None:
        """An agent whose key the runtime was never told about exits 2 and says why."""
        runtime = flows_runtime(cluster, "finisher")
        # Enrolled after the runtime loaded its principals, and no SIGHUP: unknown to it.
        cluster.enroll("flaky", "flaky")
        agent = cluster.start_actor(f"{FLOWS}:Flaky", runtime.agents, label="flaky")
        # Well before the 5 s registration timeout: the refusal itself ends the agent.
        assert agent.wait(PROMPTLY) == 2
        refusal = cluster.log_of("flaky")
        assert "the runtime refused this key" in refusal
        assert "baton keys add" in refusal
        keys = load_client_keys(key_directory(cluster), "flaky")
        await wait_for_log(
            cluster,
            "runtime",
            lambda e: e["event"] == "handshake.refused" and e["key"] == keys.public.decode(),
        )
        stats = stopped_statistics(cluster, runtime)
        assert stats["rejected_frames"] == {"handshake_refused": 1, "unknown_key": 1}
        assert not [e for e in log_events(cluster, "runtime") if e["event"] == "frame.rejected"]

    async def test_agent_without_curve_is_refused(self, cluster: ProcessGroup) -> None:
        """`--insecure` against a secure runtime: exit 2, told the runtime requires CURVE."""
        runtime = flows_runtime(cluster, "flaky")
        agent = cluster.start_actor(
            f"{FLOWS}:Flaky", runtime.agents, label="plain", extra=["--insecure"]
        )
        assert agent.wait(PROMPTLY) == 2
        assert "requires CURVE" in cluster.log_of("plain")
        assert_only_handshakes_refused(stopped_statistics(cluster, runtime))

    async def test_wrong_server_key_is_reported_not_hung(
        self, cluster: ProcessGroup, tmp_path: Path
    ) -> None:
        """An agent trusting another runtime's public key gives up with an explanation."""
        runtime = flows_runtime(cluster, "flaky")
        keys = key_directory(cluster)
        forged = tmp_path / "forged"
        shutil.copytree(keys, forged)
        other_public, _ = zmq.curve_keypair()
        (forged / "runtime.key").write_text(f'curve\n    public-key = "{other_public.decode()}"\n')
        agent = cluster.start_actor(
            f"{FLOWS}:Flaky", runtime.agents, label="misled", extra=["--keys", str(forged)]
        )
        assert agent.wait(PROMPTLY) == 2
        assert "the runtime's public key (runtime.key) is probably not" in cluster.log_of("misled")
        assert_only_handshakes_refused(stopped_statistics(cluster, runtime))
        assert not [e for e in log_events(cluster, "runtime") if e["event"] == "agent.registered"]

    async def test_the_zeromq_manual_test_keys_are_refused(self, cluster: ProcessGroup) -> None:
        """The manual's client key with the real server key is refused by ZAP; with the
        manual's server key the handshake fails; neither gets a frame decoded."""
        runtime = flows_runtime(cluster, "flaky")
        real_server = cluster.keys_of("operator")
        assert real_server is not None
        frame = register_frame("flaky")
        with_real_server = ClientKeys(
            "zeromq-manual", DOC_CLIENT.public, DOC_CLIENT.secret, real_server.server
        )
        events = await anyio.to_thread.run_sync(
            raw_handshake, runtime.agents, with_real_server, frame
        )
        assert events == [zmq.EVENT_HANDSHAKE_FAILED_AUTH]
        events = await anyio.to_thread.run_sync(raw_handshake, runtime.control, DOC_CLIENT, frame)
        assert zmq.EVENT_HANDSHAKE_SUCCEEDED not in events
        assert events
        refused = await wait_for_log(
            cluster, "runtime", lambda e: e["event"] == "handshake.refused"
        )
        assert refused["reason"] == "a well-known test key"
        await complete_a_run_with(cluster, runtime)
        assert_only_handshakes_refused(stopped_statistics(cluster, runtime))
        assert not [e for e in log_events(cluster, "runtime") if e["event"] == "frame.rejected"]

    async def test_control_client_with_unknown_key_fails_fast(self, cluster: ProcessGroup) -> None:
        """A control client whose key is unknown gets `unauthorized`, not a 10 s timeout."""
        runtime = flows_runtime(cluster)
        cluster.enroll("latecomer", "operator")
        keys = cluster.keys_of("latecomer")
        with anyio.fail_after(5):
            async with ControlClient(runtime.control, keys=keys, timeout=30) as client:
                with pytest.raises(ControlRefused) as refused:
                    await client.list_runs()
        assert refused.value.code == "unauthorized"
        assert "refused this key" in refused.value.message


async def complete_a_run_with(cluster: ProcessGroup, runtime: RuntimeProcess) -> None:
    cluster.enroll("flaky", "flaky")
    cluster.enroll("finisher", "finisher")
    cluster.reload(runtime)
    await wait_for_log(cluster, "runtime", lambda e: e["event"] == "principals.reloaded")
    cluster.start_actor(f"{FLOWS}:Flaky", runtime.agents)
    cluster.start_actor(f"{FLOWS}:Finisher", runtime.agents)
    await complete_a_run(runtime)


class TestPrincipals:
    """What a key may do is what its principal's roles say, and one session per key."""

    async def test_role_the_key_lacks_is_refused(self, cluster: ProcessGroup) -> None:
        """A key holding `finisher` cannot register as a `flaky` agent."""
        cluster.enroll("impostor", "finisher")
        runtime = flows_runtime(cluster)
        agent = cluster.start_actor(f"{FLOWS}:Flaky", runtime.agents, principal="impostor")
        assert agent.wait(20) == 2
        assert "principal 'impostor' does not hold role 'flaky'" in cluster.log_of("impostor")
        refused = await wait_for_log(cluster, "runtime", lambda e: e["event"] == "agent.refused")
        assert (refused["principal"], refused["code"]) == ("impostor", "role_refused")

    async def test_second_connection_with_a_live_key_is_refused(
        self, cluster: ProcessGroup
    ) -> None:
        """The key's first session keeps serving; the copy is refused and logged, each try."""
        runtime = flows_runtime(cluster, "flaky", "finisher")
        cluster.start_actor(f"{FLOWS}:Flaky", runtime.agents)
        await wait_for_log(
            cluster, "runtime", lambda e: e["event"] == "agent.registered" and e["agent"] == "flaky"
        )
        cluster.start_actor(f"{FLOWS}:Flaky", runtime.agents, label="copy")
        refused = await wait_for_log(cluster, "runtime", lambda e: e["event"] == "agent.refused")
        assert (refused["principal"], refused["code"]) == ("flaky", "session_exists")
        await wait_for_log(cluster, "copy", lambda e: e["event"] == "actor.session_exists")
        cluster.start_actor(f"{FLOWS}:Finisher", runtime.agents)
        await complete_a_run(runtime)
        registered = [e for e in log_events(cluster, "runtime") if e["event"] == "agent.registered"]
        assert [e["agent"] for e in registered].count("flaky") == 1

    async def test_control_calls_need_their_role_and_are_audited(
        self, cluster: ProcessGroup
    ) -> None:
        """A viewer may read but not start; an agent key may not read; both refusals that
        name a run are in its history with the principal."""
        cluster.enroll("auditor", "viewer")
        runtime = flows_runtime(cluster, "flaky", "finisher")
        cluster.start_actor(f"{FLOWS}:Flaky", runtime.agents)
        cluster.start_actor(f"{FLOWS}:Finisher", runtime.agents)
        async with ControlClient(runtime.control, keys=runtime.operator) as operator:
            run_id = await operator.start_run("flaky", {"n": 3})
            await operator.wait_outcome(run_id, max_wait=30)
        async with ControlClient(runtime.control, keys=cluster.keys_of("auditor")) as viewer:
            assert (await viewer.get_run(run_id)).status == "completed"
            with pytest.raises(ControlRefused) as refused:
                await viewer.start_run("flaky", {"n": 4})
            assert refused.value.code == "unauthorized"
            assert "needs role 'operator'" in refused.value.message
        async with ControlClient(runtime.control, keys=cluster.keys_of("flaky")) as agent_key:
            with pytest.raises(ControlRefused) as refused:
                await agent_key.get_run(run_id)
            assert refused.value.code == "unauthorized"
        async with ControlClient(runtime.control, keys=runtime.operator) as operator:
            record = await operator.get_run(run_id)
            runs = await operator.list_runs()
        audit = [h for h in record.history if h.event == "refused"]
        assert [(h.principal, h.detail["action"]) for h in audit] == [("flaky", "get_run")]
        assert [r.run_id for r in runs] == [run_id]
        assert record.steps["wobble"].attempts[-1].agent == "flaky"
        succeeded = [h for h in record.history if h.event == "step_succeeded"]
        assert {h.principal for h in succeeded} == {"flaky", "finisher"}

    async def test_sighup_reload_admits_and_withdraws_without_dropping_others(
        self, cluster: ProcessGroup
    ) -> None:
        """A principal added after start connects once the runtime reloads; a removed one is
        cut off; the agents already connected keep their sessions."""
        runtime = flows_runtime(cluster, "finisher", "worker")
        cluster.start_actor(f"{FLOWS}:Finisher", runtime.agents)
        worker = cluster.start_actor(
            f"{FLOWS}:StallsOnFirstAttempt", runtime.agents, label="worker"
        )
        await wait_for_log(
            cluster, "runtime",
            lambda e: e["event"] == "agent.registered" and e["agent"] == "worker",
        )  # fmt: skip
        cluster.enroll("flaky", "flaky")
        from runtime.security._keys import remove_principal  # noqa: PLC0415 - used by this test only

        remove_principal(key_directory(cluster), "worker")
        cluster.reload(runtime)
        await wait_for_log(cluster, "runtime", lambda e: e["event"] == "principals.reloaded")
        cluster.start_actor(f"{FLOWS}:Flaky", runtime.agents)
        await complete_a_run(runtime)
        assert worker.wait(20) == 2
        assert "was removed" in cluster.log_of("worker")
        registered = [
            e["agent"] for e in log_events(cluster, "runtime") if e["event"] == "agent.registered"
        ]
        assert registered.count("finisher") == 1
        assert "flaky" in registered


class TestHostileFrames:
    """An authenticated peer sending bad frames gets typed errors; the runtime serves on."""

    async def test_bad_frames_get_typed_errors_while_a_run_completes(
        self, cluster: ProcessGroup
    ) -> None:
        """Oversize, truncated, wrong-type, unknown-tag, unknown-version and deeply nested,
        while a run is in progress; it then completes."""
        cluster.enroll("prankster", "finisher", "operator")
        runtime = flows_runtime(cluster, "flaky", "finisher")
        keys = cluster.keys_of("prankster")
        assert keys is not None
        cluster.start_actor(f"{FLOWS}:Finisher", runtime.agents)
        # No agent of role `flaky` yet: the run waits for one while the frames fly.
        async with ControlClient(runtime.control, keys=runtime.operator) as client:
            run_id = await client.start_run("flaky", {"n": 5})
        valid = register_frame("finisher")
        deep: Any = 1
        for _ in range(200):
            deep = [deep]
        agent_frames = {
            "oversize": b"\x00" * (DEFAULT_MAX_FRAME + 1),
            "truncated": valid[: len(valid) // 2],
            "wrong-type": msgspec.msgpack.encode(
                {"type": "register", "protocol": "one", "name": "x", "role": "finisher"}
            ),
            "unknown-tag": msgspec.msgpack.encode({"type": "launch_missiles"}),
            "deep": msgspec.msgpack.encode({"type": "heartbeat", "in_flight": deep}),
            "unknown-version": actor_side_codec().encode(
                Register(protocol=PROTOCOL_VERSION + 98, name="x", role="finisher")
            ),
        }
        expected = {
            "oversize": "oversize",
            "truncated": "malformed",
            "wrong-type": "invalid_message",
            "unknown-tag": "invalid_message",
            "deep": "invalid_message",
            "unknown-version": "incompatible_protocol",
        }
        control_frames = [
            b"\xc1",
            client_side_control_codec().encode(
                StartRun(id=7, protocol=PROTOCOL_VERSION + 98, workflow="flaky")
            ),
        ]
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        agent_plane = ctx.socket(zmq.DEALER)
        control_plane = ctx.socket(zmq.DEALER)
        for sock, endpoint in ((agent_plane, runtime.agents), (control_plane, runtime.control)):
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.RCVTIMEO, 10_000)
            sock.curve_secretkey = keys.secret
            sock.curve_publickey = keys.public
            sock.curve_serverkey = keys.server
            sock.connect(endpoint)
        codes: dict[str, str] = {}
        try:
            for what, frame in agent_frames.items():
                agent_plane.send(frame)
                reply = actor_side_codec().decode(agent_plane.recv())
                assert isinstance(reply, Error), what
                codes[what] = reply.code
            control_codes = []
            for frame in control_frames:
                control_plane.send(frame)
                answer = client_side_control_codec().decode(control_plane.recv())
                assert isinstance(answer, ControlError)
                control_codes.append(answer.code)
            # Far over the limit, ZeroMQ drops the frame and the connection (there is
            # nobody to answer); the peer reconnects, and is served again.
            monitor = agent_plane.get_monitor_socket(
                zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED
            )
            try:
                agent_plane.send(b"\x00" * (4 * DEFAULT_MAX_FRAME))
                seen = []
                while zmq.EVENT_HANDSHAKE_SUCCEEDED not in seen[1:]:
                    assert monitor.poll(10_000), f"no reconnection after the drop: {seen}"
                    seen.append(int(parse_monitor_message(monitor.recv_multipart())["event"]))
                assert seen[0] == zmq.EVENT_DISCONNECTED
            finally:
                agent_plane.disable_monitor()
                monitor.close(linger=0)
            # The same peer then registers properly and is welcomed: nothing was poisoned.
            agent_plane.send(valid)
            assert isinstance(actor_side_codec().decode(agent_plane.recv()), Welcome)
            agent_plane.send(actor_side_codec().encode(Bye(reason="done playing")))
        finally:
            agent_plane.close(linger=0)
            control_plane.close(linger=0)
            ctx.term()
        assert codes == expected
        assert control_codes == ["invalid_message", "incompatible_protocol"]
        cluster.start_actor(f"{FLOWS}:Flaky", runtime.agents)
        async with ControlClient(runtime.control, keys=runtime.operator) as client:
            record, timed_out = await client.wait_run(run_id, max_wait=30)
        assert not timed_out
        assert record.status == "completed"
        assert record.steps["wobble"].attempts[-1].agent == "flaky"
        assert record.steps["finish"].attempts[-1].agent == "finisher"


class TestInsecure:
    """`--insecure` is for development: it says so, and works on loopback."""

    async def test_insecure_runtime_warns_and_serves_insecure_actors(self, tmp_path: Path) -> None:
        """No keys anywhere: the runtime logs a warning at start, and a run completes."""
        with ProcessGroup(tmp_path, keys=None) as group:
            runtime = group.start_runtime([f"{FLOWS}:ALL"], heartbeat=HEARTBEAT)
            group.start_actor(f"{FLOWS}:Flaky", runtime.agents)
            group.start_actor(f"{FLOWS}:Finisher", runtime.agents)
            assert runtime.operator is None
            await complete_a_run(runtime)
            warning = await wait_for_log(
                group, "runtime", lambda e: e["event"] == "runtime.insecure"
            )
            assert warning["level"] == "warning"
            started = await wait_for_log(
                group, "runtime", lambda e: e["event"] == "runtime.started"
            )
            assert started["secure"] is False


class TestAuthenticatorLife:
    """ZAP fails open, so the runtime must not outlive its authenticator."""

    def test_runtime_stops_when_its_authenticator_dies(self, cluster: ProcessGroup) -> None:
        """With the ZAP handler stopped, `serve()` ends with `AuthenticatorDied`."""
        process = cluster.start_module(
            "dying", "tests.integration.authenticator_dies", [str(key_directory(cluster))]
        )
        assert process.wait(30) == 0, cluster.log_of("dying")
        assert "runtime.authenticator_died" in cluster.log_of("dying")

    async def test_a_bad_principals_file_on_reload_keeps_the_old_table(
        self, cluster: ProcessGroup
    ) -> None:
        """SIGHUP with a broken `principals.json` is logged and changes nothing."""
        runtime = flows_runtime(cluster, "flaky", "finisher")
        table = key_directory(cluster) / "principals.json"
        good = table.read_text()
        table.write_text("{not json")
        cluster.reload(runtime)
        failed = await wait_for_log(
            cluster, "runtime", lambda e: e["event"] == "principals.reload_failed"
        )
        assert "principals.json" in failed["reason"]
        table.write_text(good)
        cluster.start_actor(f"{FLOWS}:Flaky", runtime.agents)
        cluster.start_actor(f"{FLOWS}:Finisher", runtime.agents)
        await complete_a_run(runtime)
