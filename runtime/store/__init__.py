"""The journal: where every run's events are kept, and how a run is folded back from them.

`Store` is the contract the supervisor writes through; `MemoryStore` keeps
journals in the process, `SqliteStore` in one file. `replay` folds a journal
into its run, the one code path behind recovery, `inspect --at` and reports.
"""

from runtime.store._held import HeldRun as HeldRun
from runtime.store._journal import ClockReading as ClockReading
from runtime.store._journal import JournalRecord as JournalRecord
from runtime.store._journal import Store as Store
from runtime.store._memory import MemoryStore as MemoryStore
from runtime.store._open import open_store as open_store
from runtime.store._replay import GraphNotLoaded as GraphNotLoaded
from runtime.store._replay import JournalUnreadable as JournalUnreadable
from runtime.store._replay import replay as replay
from runtime.store._sqlite import MIGRATIONS as MIGRATIONS
from runtime.store._sqlite import SCHEMA_VERSION as SCHEMA_VERSION
from runtime.store._sqlite import SqliteStore as SqliteStore
from runtime.store._sqlite import backup as backup
from runtime.store._sqlite import read_journals as read_journals

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "ClockReading",
    "GraphNotLoaded",
    "HeldRun",
    "JournalRecord",
    "JournalUnreadable",
    "MemoryStore",
    "SqliteStore",
    "Store",
    "backup",
    "open_store",
    "read_journals",
    "replay",
]
