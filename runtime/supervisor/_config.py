"""Settings of a runtime process, with their defaults and bounds."""

from __future__ import annotations

import os
from dataclasses import dataclass

from protocols import DEFAULT_MAX_FRAME, ServerKeys
from runtime.security._principals import Principals

DEFAULT_AGENTS_ENDPOINT = "tcp://127.0.0.1:7710"
DEFAULT_CONTROL_ENDPOINT = "tcp://127.0.0.1:7711"


def agents_endpoint() -> str:
    """The agent plane's endpoint: `BATON_AGENTS` when set, else loopback port 7710."""
    return os.environ.get("BATON_AGENTS") or DEFAULT_AGENTS_ENDPOINT


def control_endpoint() -> str:
    """The control plane's endpoint: `BATON_CONTROL` when set, else loopback port 7711."""
    return os.environ.get("BATON_CONTROL") or DEFAULT_CONTROL_ENDPOINT


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    """How a runtime binds, paces and bounds itself."""

    agents: str = DEFAULT_AGENTS_ENDPOINT
    control: str = DEFAULT_CONTROL_ENDPOINT
    heartbeat: float = 1.0
    """Seconds between heartbeats; an actor silent for 3 of them is lost."""
    max_frame: int = DEFAULT_MAX_FRAME
    max_active_runs: int = 100_000
    """Runs not yet ended; a start beyond this is refused as `overloaded`."""
    max_batch: int = 128
    """Most messages taken from one socket before the batch is committed and sent."""
    queue_limit: int = 100_000
    """Most messages queued for sending on each socket."""
    receive_queue: int = 1_000
    """Most frames queued from any one peer before ZeroMQ pushes back on it."""
    rate_limit: float = 10_000.0
    """Frames per second each principal may send on each plane; the rest are dropped."""
    rate_burst: float = 10_000.0
    """Frames a principal may send at once above its rate, after a quiet spell."""
    recovery_budget: int = 5
    """Restarts of the runtime in a row that a run may see with no step finishing in
    between before it is parked as `stuck` (0: no limit)."""
    restart_budget: int = 5
    """Instances of one role that may be lost within `restart_window` seconds; beyond
    that the role is crash-looping and its waiting steps go to their failure policy."""
    restart_window: float = 60.0
    peers: tuple[str, ...] = ()
    """The agent-plane endpoints of the cluster's other supervisors, as actors reach them:
    every `Welcome` names them, so that an actor given one supervisor serves them all."""


@dataclass(frozen=True, slots=True)
class Security:
    """What a secure runtime authenticates with: its key pair and the principals it knows."""

    keys: ServerKeys
    principals: Principals
