"""Values and broken frames drawn from a seeded `random.Random`: out-of-range numbers,
texts at their bounds, nesting past every limit, maps with wrong or unknown fields,
bytes truncated, flipped or spliced, and frames over the size limit."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import msgspec

from protocols import (
    MAX_NAME,
    MAX_TEXT,
    VALUE_DEPTH,
    Message,
)
from tests.runtime.fuzz.peers import FIELDS, NAME_CHARS, NAME_POOL, OTHER_TAGS, SENTINEL, TEXT_CHARS
from tests.runtime.fuzz.world import (
    ENCODE,
)


class Noise:
    """Values, and frames broken in every way, drawn from a seeded `random.Random` and the
    corpus Hypothesis drew; what a frame is about is `Frames`'s to choose."""

    def __init__(self, rng: random.Random, corpus: Sequence[bytes], *, max_frame: int) -> None:
        self.rng = rng
        self.corpus = list(corpus)
        self.max_frame = max_frame
        self.large = max_frame > MAX_TEXT

    # -- values ------------------------------------------------------------------------------------

    def name(self) -> str:
        rng = self.rng
        r = rng.random()
        if r < 0.7:
            return rng.choice(NAME_POOL)
        if r < 0.98:
            return "".join(rng.choices(NAME_CHARS, k=rng.randint(1, 12)))
        return "".join(rng.choices(NAME_CHARS, k=MAX_NAME))

    def text(self) -> str:
        rng = self.rng
        r = rng.random()
        if r < 0.5:
            return ""
        if r < 0.995 or not self.large:
            return "".join(rng.choices(TEXT_CHARS, k=rng.randint(1, 16)))
        # The longest text a message may carry: do the planes quote it within bounds?
        return "t" * MAX_TEXT

    def scalar(self) -> Any:
        rng = self.rng
        match rng.randrange(7):
            case 0:
                return None
            case 1:
                return rng.random() < 0.5
            case 2:
                return rng.choice((0, -1, 2**53, -(2**63), 2**64 - 1, rng.randint(-99, 99)))
            case 3:
                return rng.choice((0.5, -0.0, float("inf"), float("-inf"), float("nan")))
            case _:
                return self.text()

    def value(self, depth: int = VALUE_DEPTH) -> Any:
        rng = self.rng
        r = rng.random()
        if depth == 0 or r < 0.6:
            return self.scalar()
        if r < 0.8:
            return [self.value(depth - 1) for _ in range(rng.randint(0, 3))]
        return {self.text(): self.value(depth - 1) for _ in range(rng.randint(0, 3))}

    def data(self) -> dict[str, Any]:
        rng = self.rng
        if rng.random() < 0.05:
            # Values nested as deep as the protocol allows.
            return {self.name(): nested(VALUE_DEPTH)}
        return {self.name(): self.value(3) for _ in range(rng.randint(0, 3))}

    def count(self) -> int:
        return self.rng.choice((0, 1, 2, 3, 7, 2**31, 2**53))

    def attempt(self) -> int:
        return self.rng.choice((1, 1, 2, 3, 1_000_000))

    def texts(self) -> list[str]:
        rng = self.rng
        if rng.random() < 0.05:
            return ["c"] * 256  # as many caveats as a result may carry
        return [self.text() for _ in range(rng.randint(0, 2))]

    # -- hostile frames ----------------------------------------------------------------------------

    def junk(self, depth: int = 2) -> Any:
        """Any msgpack value at all: bytes, extensions, odd keys, out-of-range numbers."""
        rng = self.rng
        match rng.randrange(9):
            case 0:
                return rng.randbytes(rng.randint(0, 8))
            case 1:
                return msgspec.msgpack.Ext(rng.randint(-128, 127), rng.randbytes(3))
            case 2:
                return rng.choice((-1, -(2**63), 2**64 - 1, 2**53 + 1, 4_097, 1_000_001))
            case 3:
                return rng.choice((float("nan"), 1.5, -1.0, float("inf")))
            case 4 if depth > 0:
                return [self.junk(depth - 1) for _ in range(rng.randint(0, 3))]
            case 5 if depth > 0:
                keys = (self.text(), rng.randint(-5, 5))
                return {rng.choice(keys): self.junk(depth - 1) for _ in range(rng.randint(0, 3))}
            case 6:
                return rng.choice(("x" * (MAX_NAME + 1), "a b", "", "\u00e9"))
            case _:
                return self.scalar()

    def hostile_map(self, message: Message, tags: Sequence[str]) -> bytes:
        """`message` as a map, then broken: wrong types, unknown fields and tags, deep nesting."""
        rng = self.rng
        fields: Any = msgspec.to_builtins(message)
        deep = 0
        match rng.randrange(9):
            case 0:
                fields[rng.choice(list(fields))] = self.junk()
            case 1:
                fields[rng.choice(FIELDS)] = self.junk()
            case 2:
                fields["".join(rng.choices(NAME_CHARS, k=6))] = self.junk()
            case 3:
                fields.pop(rng.choice(list(fields)))
            case 4:
                fields["type"] = rng.choice((*OTHER_TAGS, *tags, 1, None, b"bye"))
            case 5:
                fields["protocol"] = rng.choice((0, 2, 99, 2**53, "1", 1.0, True, None))
            case 6:
                # Nesting far beyond the value depth, in a field known or not; before the
                # tag, the decoder must skip it before it knows the type.
                fields[rng.choice((*list(fields), "z"))] = SENTINEL
                if rng.random() < 0.5:
                    fields = {"z": fields.pop("z", SENTINEL), **fields}
                deep = rng.choice((VALUE_DEPTH + 1, 100, 1_000, 10_000))
            case 7:
                fields = rng.choice(([fields], list(fields.values()), self.junk(), nested(50)))
            case _:
                if self.large and rng.random() < 0.3:
                    # A field name or tag longer than any text: is the refusal still valid?
                    fields[rng.choice(("type", "z" * MAX_TEXT))] = "y" * (MAX_TEXT + 1)
                else:
                    fields[rng.choice(list(fields))] = self.junk(0)
        frame = ENCODE(fields)
        if deep:
            opener = b"\x91" if rng.random() < 0.5 else b"\x81\xa1k"
            frame = frame.replace(ENCODE(SENTINEL), opener * deep + b"\xc0", 1)
        return frame

    def mutate(self, frame: bytes) -> bytes:
        """A valid frame truncated, bit-flipped, or with bytes inserted, deleted or spliced."""
        rng = self.rng
        out = bytearray(frame)
        for _ in range(rng.randint(1, 3)):
            at = rng.randint(0, len(out))
            match rng.randrange(6):
                case 0:
                    del out[at:]
                case 1 if at < len(out):
                    out[at] ^= 1 << rng.randrange(8)
                case 2:
                    out[at:at] = rng.randbytes(rng.randint(1, 4))
                case 3:
                    del out[at : at + rng.randint(1, 4)]
                case 4 if self.corpus:
                    other = rng.choice(self.corpus)
                    out[at:] = other[rng.randint(0, len(other)) :]
                case _:
                    out += rng.choice((b"\x00", b"\xc1", b"\x91", rng.randbytes(2)))
        return bytes(out)

    def raw(self) -> bytes:
        """Bytes that need not be msgpack at all: empty, random, at and over the frame limit."""
        rng = self.rng
        r = rng.random()
        if r < 0.85:
            return rng.randbytes(rng.choice((0, 1, 2, rng.randint(3, 64))))
        if r < 0.87:
            return b"\x91" * rng.choice((1_000, 10_000)) + b"\xc0"
        if r < 0.9:
            # Nesting the decoder must skip, before it has seen the tag.
            deep = rng.choice((3_000, 10_000))
            return b"\x82\xa1z" + b"\x91" * deep + b"\xc0\xa4type\xa3bye"
        if r < 0.95:
            return bytes(self.max_frame + rng.choice((1, 2, 100)))
        return b"\xc1" * self.max_frame

    def frame(self, valid: Message, tags: Sequence[str]) -> tuple[bytes, int]:
        """One frame built around `valid`: sent as is, mutated, broken or replaced by noise."""
        rng = self.rng
        parts = 1 if rng.random() < 0.97 else rng.choice((0, 2, 3, 17))
        r = rng.random()
        if r < 0.5:
            return ENCODE(valid), parts
        if r < 0.65:
            return self.hostile_map(valid, tags), parts
        if r < 0.8:
            base = (
                ENCODE(valid) if not self.corpus or rng.random() < 0.7 else rng.choice(self.corpus)
            )
            return self.mutate(base), parts
        if r < 0.9 and self.corpus:
            return rng.choice(self.corpus), parts
        return self.raw(), parts


def nested(depth: int) -> Any:
    value: Any = None
    for _ in range(depth):
        value = [value]
    return value
