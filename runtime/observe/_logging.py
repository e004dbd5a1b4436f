"""structlog set-up: JSON lines for machines, readable lines in a terminal."""

from __future__ import annotations

import logging
import sys
from typing import Any, BinaryIO, Literal, TextIO, cast

import msgspec
import structlog

LogFormat = Literal["auto", "json", "console"]
LEVELS = ("debug", "info", "warning", "error")


class _CurrentStderr:
    """Whatever `sys.stderr` is when a line is written: loggers are cached on first use,
    and a stream captured then may be closed by the time they write again."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


class _CurrentStderrBytes:
    """The same for encoded lines: bytes go to the stream's buffer, below the text layer."""

    def write(self, data: bytes) -> int:
        buffer = _stderr_buffer()
        return sys.stderr.write(data.decode()) if buffer is None else buffer.write(data)

    def flush(self) -> None:
        buffer = _stderr_buffer()
        (sys.stderr if buffer is None else buffer).flush()


def _stderr_buffer() -> BinaryIO | None:
    """The bytes under `sys.stderr`, unless it was replaced by a stream of text only."""
    buffer: BinaryIO | None = getattr(sys.stderr, "buffer", None)
    return buffer


def _encoder() -> structlog.processors.JSONRenderer:
    """JSON by msgspec, at about half the cost of the standard library's: a busy runtime
    writes a line per run. What msgspec cannot encode is written as its repr."""
    encoder = msgspec.json.Encoder(enc_hook=repr)

    def serialize(event: Any, **_: Any) -> bytes:
        return encoder.encode(event)

    return structlog.processors.JSONRenderer(serializer=serialize)


def configure_logging(level: str = "info", fmt: LogFormat = "auto") -> None:
    """Log events to standard error at `level` and above."""
    numeric = logging.getLevelNamesMapping()[level.upper()]
    console = sys.stderr.isatty() if fmt == "auto" else fmt == "console"
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer(colors=True) if console else _encoder()
    )
    factory: structlog.PrintLoggerFactory | structlog.BytesLoggerFactory = (
        structlog.PrintLoggerFactory(file=cast(TextIO, _CurrentStderr()))
        if console
        else structlog.BytesLoggerFactory(file=cast(BinaryIO, _CurrentStderrBytes()))
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
