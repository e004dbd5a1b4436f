"""Who sends frames in the fuzz: principals with their roles, the peers that connect under
them, and the names, tags and fields their messages use."""

from __future__ import annotations

import string
from typing import get_args

import zmq

from protocols import (
    MAX_NAME,
    ActorMessage,
    ControlRequest,
    ErrorCode,
    RunStatus,
)
from runtime.security._principals import Principal
from tests.runtime.fuzz.world import (
    AGENT_ROLES,
    STEPS,
    TOOL_NAMES,
    WORKFLOW,
)

# --- Peers --------------------------------------------------------------------------------------

TOOL_HOST = "backoffice"


def principal(name: str, *roles: str) -> Principal:
    return Principal(name, zmq.curve_keypair()[0], frozenset(roles))


FUZZER = principal("fuzzer", "operator", "classifier", f"tools:{TOOL_HOST}")
WORKER_A = principal("worker-a", "viewer", *AGENT_ROLES)
WORKER_B = principal("worker-b", *AGENT_ROLES)
WORKER_C = principal("worker-c", *AGENT_ROLES)
TOOLSMITH = principal("toolsmith", f"tools:{TOOL_HOST}")
VIEWER = principal("auditor", "viewer")
NOBODY = principal("nobody", "approver:finance")
"""Holds no role either plane knows."""
PRINCIPALS = (FUZZER, WORKER_A, WORKER_B, WORKER_C, TOOLSMITH, VIEWER, NOBODY)

AGENT_PEERS: tuple[tuple[bytes, Principal], ...] = (
    (b"agent-0", FUZZER),
    (b"agent-1", WORKER_A),
    (b"agent-2", WORKER_B),
    (b"agent-3", WORKER_A),  # a second connection under one key: `session_exists`
    (b"agent-4", WORKER_C),
    (b"tools-0", TOOLSMITH),
    (b"tools-1", FUZZER),
    (b"\x00\xffraw", NOBODY),
)
"""Routing ids on the agent plane, each with the principal whose key it usually sends under."""
HOMES = dict(AGENT_PEERS)
CONTROL_PEERS: tuple[tuple[bytes, Principal], ...] = (
    (b"client-0", FUZZER),
    (b"client-1", VIEWER),
    (b"client-2", NOBODY),
    (b"client-3", WORKER_A),
)

NAME_CHARS = string.ascii_letters + string.digits + "_.:-"
TEXT_CHARS = NAME_CHARS + " /#\u00e9\u4e2d\U0001f600\x00"
AGENT_NAMES = ("a", "b", "agent", "a" * MAX_NAME)
"""Few, so that agents of an insecure runtime ask for names already taken."""
NAME_POOL = (*AGENT_ROLES, *TOOL_NAMES, *STEPS, TOOL_HOST, WORKFLOW, "x", "run-1", "run-2")
ERROR_CODES: tuple[ErrorCode, ...] = get_args(ErrorCode)
RUN_STATUSES: tuple[RunStatus, ...] = get_args(RunStatus)
ACTOR_TAGS = tuple(str(cls.__struct_config__.tag) for cls in get_args(ActorMessage))
CONTROL_TAGS = tuple(str(cls.__struct_config__.tag) for cls in get_args(ControlRequest))
OTHER_TAGS = ("welcome", "assign", "cancel", "run_accepted", "run", "runs", "nope", "", "REGISTER")
FIELDS = sorted(
    {
        f
        for cls in (*get_args(ActorMessage), *get_args(ControlRequest))
        for f in cls.__struct_fields__
    }
)
SENTINEL = "\x00nested-here\x00"
"""Stands for a deeply nested value in a map, swapped for raw bytes once encoded."""
