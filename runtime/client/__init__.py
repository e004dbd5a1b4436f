"""A client of a runtime's control plane, for programs, the CLI and tests."""

from runtime.client._client import ControlClient as ControlClient
from runtime.client._client import ControlRefused as ControlRefused
from runtime.client._client import RunsPage as RunsPage
from runtime.client._client import RuntimeUnavailable as RuntimeUnavailable

__all__ = [
    "ControlClient",
    "ControlRefused",
    "RunsPage",
    "RuntimeUnavailable",
]
