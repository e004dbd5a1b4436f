"""What tests of workflows and of the runtime drive it with, without processes or waiting.

`EngineDriver` runs a compiled workflow through the pure engine event by event,
at chosen times, keeping the journal and the commands; `FakeClock` is the pair
of clocks the supervisor reads, moved by hand. This package sits above the
engine, the workflow and the store, and nothing in the runtime imports it.
"""

from runtime.testing._clock import FakeClock as FakeClock
from runtime.testing._engine import EngineDriver as EngineDriver
from runtime.testing._engine import of_kind as of_kind
from runtime.testing._engine import sample_outputs as sample_outputs

__all__ = [
    "EngineDriver",
    "FakeClock",
    "of_kind",
    "sample_outputs",
]
