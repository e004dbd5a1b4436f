"""The supervisor: the one owner of every run's record, around the pure engine.

Its core folds events into runs, journals each batch before any command it
caused leaves, keeps timers and open decisions, and hosts both planes'
handlers, without a socket; the `Supervisor` binds the planes' ZeroMQ sockets
around it and serves them in one loop. It imports the engine, the planes, the
store, security and observability; nothing below it imports it.
"""

from runtime.planes._views import pending_decisions as pending_decisions
from runtime.planes._views import record_view as record_view
from runtime.planes._views import summary as summary
from runtime.store._held import HeldRun as HeldRun
from runtime.supervisor._config import RuntimeConfig as RuntimeConfig
from runtime.supervisor._config import Security as Security
from runtime.supervisor._config import agents_endpoint as agents_endpoint
from runtime.supervisor._config import control_endpoint as control_endpoint
from runtime.supervisor._statistics import SupervisorStatistics as SupervisorStatistics
from runtime.supervisor._supervisor import AuthenticatorDied as AuthenticatorDied
from runtime.supervisor._supervisor import Supervisor as Supervisor

__all__ = [
    "AuthenticatorDied",
    "RuntimeConfig",
    "Security",
    "Supervisor",
    "SupervisorStatistics",
    "agents_endpoint",
    "control_endpoint",
]
