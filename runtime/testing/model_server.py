"""A scripted OpenAI-compatible chat-completions server on loopback, for tests.

It answers each `POST .../chat/completions` with the next reply of its script
and records every request it got, so that a test can check what a model was
sent (the tools offered, the messages) and when (retries, waits, how many at
once). It is a real HTTP server: the client under test goes through its
sockets, timeouts and retries exactly as it would against a real model.

A script is a list of replies, each a JSON object with any of:

- `tool_calls`: `[{"name": ..., "arguments": {...} or "raw text", "id": ...}]`;
- `final`: a value sent as the reply's content, as JSON; `content`: raw content;
- `status` (default 200), with `retry_after` (the header, verbatim) and `error`;
- `body`: a raw response body, sent as it is (to send something that is not JSON);
- `delay`: seconds to wait before answering (to outlast a client's timeout);
- `usage`: `{"prompt_tokens": n, "completion_tokens": m}`; `finish_reason`; `model`;
- `for`: a text, or a list of texts, the request's messages must all contain for
  this reply to answer it (the first reply that fits answers; one without `for`
  fits any request), so that one script serves several roles, or several runs,
  whatever order they ask in.

Once the script is spent every request is answered 410 Gone, which a client
does not retry. In a test: `with ModelServer(script) as server: ... server.url`.
As a process: `python -m runtime.testing.model_server --script FILE --port 0
--ready-file F [--record FILE]` writes `{"url": ..., "port": ...}` to F once it
listens, appends each request to the record file as a JSON line, and stops on
SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, BinaryIO

MAX_BODY = 16 * 1024 * 1024
"""The largest request body read; a test never sends more."""


@dataclass(frozen=True, slots=True)
class Request:
    """One request as the server got it."""

    at: float
    """`time.monotonic()` when it arrived (the clock of asyncio's loop)."""
    path: str
    headers: dict[str, str]
    body: Any
    """The request's JSON, or None if it was not JSON."""


class ModelServer:
    """Answers chat completions from `script`, in order, on a loopback port."""

    def __init__(
        self,
        script: Sequence[Mapping[str, Any]],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        record: BinaryIO | None = None,
    ) -> None:
        """`record`, if given, gets each request as a JSON line as it arrives."""
        self._script: deque[Mapping[str, Any]] = deque(script)
        self._lock = threading.Lock()
        self._requests: list[Request] = []
        self._in_flight = 0
        self._max_in_flight = 0
        self._record = record
        self._closing = threading.Event()
        self._http = ThreadingHTTPServer((host, port), _handler_for(self))
        self._http.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._http.server_address[1])

    @property
    def url(self) -> str:
        """The API's base URL, as a client is configured with it."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def requests(self) -> list[Request]:
        """The requests received so far, in order of arrival."""
        with self._lock:
            return list(self._requests)

    @property
    def max_in_flight(self) -> int:
        """The most requests that were being answered at once."""
        with self._lock:
            return self._max_in_flight

    @property
    def remaining(self) -> int:
        """Replies of the script not yet sent."""
        with self._lock:
            return len(self._script)

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("a ModelServer starts once")
        self._thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop serving; replies held back by a `delay` are dropped."""
        self._closing.set()
        if self._thread is not None:
            self._http.shutdown()
            self._thread.join()
        self._http.server_close()

    def __enter__(self) -> ModelServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- answering, in the server's threads ----------------------------------------------

    def _arrived(self, request: Request) -> Mapping[str, Any] | None:
        with self._lock:
            self._requests.append(request)
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            if self._record is not None:
                self._record.write(json.dumps(asdict(request)).encode() + b"\n")
                self._record.flush()
            return self._next_reply(request.body)

    def _next_reply(self, body: Any) -> Mapping[str, Any] | None:
        """The first reply of the script that fits `body`, taken out of it."""
        said = _said(body)
        for index, reply in enumerate(self._script):
            wanted = reply.get("for", ())
            texts = [wanted] if isinstance(wanted, str) else [str(text) for text in wanted]
            if all(text in said for text in texts):
                del self._script[index]
                return reply
        return None

    def _answered(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def answer(self, reply: Mapping[str, Any] | None) -> tuple[int, dict[str, str], bytes]:
        """The status, headers and body of `reply`, after its delay."""
        if reply is None:
            return 410, {}, _error("the script has no reply left for this request")
        delay = float(reply.get("delay", 0.0))
        if delay > 0 and self._closing.wait(delay):
            return 503, {}, _error("the server is closing")
        status = int(reply.get("status", 200))
        headers: dict[str, str] = {}
        if "retry_after" in reply:
            headers["Retry-After"] = str(reply["retry_after"])
        if "body" in reply:
            return status, headers, str(reply["body"]).encode()
        if status != 200:
            return status, headers, _error(str(reply.get("error", f"scripted HTTP {status}")))
        return status, headers, json.dumps(completion(reply)).encode()


def completion(reply: Mapping[str, Any]) -> dict[str, Any]:
    """The chat completion a scripted reply stands for."""
    message: dict[str, Any] = {"role": "assistant", "content": None}
    finish_reason = "stop"
    if "tool_calls" in reply:
        calls = []
        for n, call in enumerate(reply["tool_calls"]):
            arguments = call.get("arguments", {})
            calls.append(
                {
                    "id": call.get("id", f"call_{n}"),
                    "type": "function",
                    "function": {
                        "name": call["name"],
                        "arguments": arguments
                        if isinstance(arguments, str)
                        else json.dumps(arguments),
                    },
                }
            )
        message["tool_calls"] = calls
        finish_reason = "tool_calls"
    if "final" in reply:
        message["content"] = json.dumps(reply["final"])
    elif "content" in reply:
        message["content"] = reply["content"]
    usage = reply.get("usage", {"prompt_tokens": 0, "completion_tokens": 0})
    return {
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "model": reply.get("model", "scripted"),
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": reply.get("finish_reason", finish_reason),
            }
        ],
        "usage": {**usage, "total_tokens": sum(usage.values())},
    }


def _said(body: Any) -> str:
    """The text of a request's messages, one per line."""
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return ""
    return "\n".join(
        str(message.get("content") or "")
        for message in body["messages"]
        if isinstance(message, dict)
    )


def _error(text: str) -> bytes:
    return json.dumps({"error": {"message": text}}).encode()


def _handler_for(server: ModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            arrived = time.monotonic()
            length = min(int(self.headers.get("Content-Length", "0")), MAX_BODY)
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            request = Request(
                at=arrived, path=self.path, headers=dict(self.headers.items()), body=body
            )
            if not self.path.endswith("/chat/completions"):
                self._send(404, {}, _error(f"no such path: {self.path}"))
                return
            reply = server._arrived(request)
            try:
                status, headers, payload = server.answer(reply)
            finally:
                # Counted out before the answer leaves: once a client has it, it may
                # send its next request, which must not find this one still counted.
                server._answered()
            self._send(status, headers, payload)

        def _send(self, status: int, headers: Mapping[str, str], payload: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            try:
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                # The client gave up (its timeout passed): nobody is left to answer.
                return

        def log_message(self, format: str, *args: Any) -> None:
            # The test's assertions are the log: requests are kept, not printed.
            return

    return Handler


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--script", type=Path, required=True, help="a JSON list of replies")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-file", type=Path, required=True)
    parser.add_argument("--record", type=Path, help="where each request is appended")
    options = parser.parse_args(argv)
    script = json.loads(options.script.read_text())
    if isinstance(script, dict):
        script = script["replies"]
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    record = options.record.open("ab") if options.record is not None else None
    try:
        with ModelServer(script, host=options.host, port=options.port, record=record) as server:
            ready = {"url": f"http://{options.host}:{server.port}/v1", "port": server.port}
            partial = options.ready_file.with_name(options.ready_file.name + ".partial")
            partial.write_text(json.dumps(ready))
            partial.replace(options.ready_file)
            stop.wait()
    finally:
        if record is not None:
            record.close()


if __name__ == "__main__":
    main()
