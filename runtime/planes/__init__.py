"""The two ZeroMQ planes of the supervisor and what guards them.

The agent plane registers actors, places steps on them and brokers tool calls;
the control plane serves clients. Every frame passes a `Gate` (who sent it,
within its rate) first; refusals are counted and paced.
"""

from runtime.planes._agent_host import AgentHost as AgentHost
from runtime.planes._agent_host import AgentPlaneCounters as AgentPlaneCounters
from runtime.planes._agent_plane import AgentPlane as AgentPlane
from runtime.planes._control_plane import ControlPlane as ControlPlane
from runtime.planes._control_plane import RunHost as RunHost
from runtime.planes._control_plane import WaitKey as WaitKey
from runtime.planes._gate import PARTS_PER_TURN as PARTS_PER_TURN
from runtime.planes._gate import Gate as Gate
from runtime.planes._gate import Handler as Handler
from runtime.planes._rate import Pacer as Pacer
from runtime.planes._rate import RateLimiter as RateLimiter
from runtime.planes._readiness import Readiness as Readiness
from runtime.planes._refusals import CONNECTION_CLOSED as CONNECTION_CLOSED
from runtime.planes._refusals import HANDSHAKE_FAILURES as HANDSHAKE_FAILURES
from runtime.planes._refusals import RefusalHost as RefusalHost
from runtime.planes._refusals import Refusals as Refusals
from runtime.planes._sessions import Session as Session
from runtime.planes._sessions import TaskKey as TaskKey
from runtime.planes._views import pending_decisions as pending_decisions
from runtime.planes._views import record_view as record_view
from runtime.planes._views import summary as summary

__all__ = [
    "CONNECTION_CLOSED",
    "HANDSHAKE_FAILURES",
    "PARTS_PER_TURN",
    "AgentHost",
    "AgentPlane",
    "AgentPlaneCounters",
    "ControlPlane",
    "Gate",
    "Handler",
    "Pacer",
    "RateLimiter",
    "Readiness",
    "RefusalHost",
    "Refusals",
    "RunHost",
    "Session",
    "TaskKey",
    "WaitKey",
    "pending_decisions",
    "record_view",
    "summary",
]
