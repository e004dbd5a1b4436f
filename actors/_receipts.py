"""What an actor received from each supervisor, a line each, for whoever audits the runtimes.

A line says when the frame was read (wall clock), from which supervisor's endpoint,
what it was, and for which run, step and attempt: enough to tell, beside a
cluster's takeover records, whether a runtime sent anything once its lease had
lapsed. Lines are written as frames are read, so the file costs a write per frame.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import IO

import msgspec

from protocols import RuntimeMessage


class Receipt(msgspec.Struct, frozen=True, omit_defaults=True):
    """One frame received."""

    at: float
    endpoint: str
    type: str
    run_id: str = ""
    step: str = ""
    attempt: int = 0


class Receipts:
    """Appends a `Receipt` as a JSON line per frame received, to one file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] = path.open("ab", buffering=0)
        self._encoder = msgspec.json.Encoder()

    def note(self, endpoint: str, message: RuntimeMessage) -> None:
        receipt = Receipt(
            at=time.time(),
            endpoint=endpoint,
            type=str(type(message).__struct_config__.tag),
            run_id=getattr(message, "run_id", ""),
            step=getattr(message, "step", ""),
            attempt=getattr(message, "attempt", 0),
        )
        self._file.write(self._encoder.encode(receipt) + b"\n")

    def close(self) -> None:
        self._file.close()


def read_receipts(path: Path) -> list[Receipt]:
    """Every receipt a file holds, in the order written."""
    decoder = msgspec.json.Decoder(Receipt)
    return [decoder.decode(line) for line in path.read_bytes().splitlines() if line]
