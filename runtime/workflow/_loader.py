"""Finding workflows by `MODULE:ATTR` reference."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable

from runtime.errors import WorkflowLoadError
from runtime.workflow._definition import Workflow


def load_workflows(reference: str) -> list[Workflow]:
    """The workflow (or list of workflows) named by `package.module:attribute`.

    The working directory is importable, so `examples.support:workflow` works
    from a checkout.
    """
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise WorkflowLoadError(
            reference, "expected MODULE:ATTRIBUTE, e.g. examples.support:workflow"
        )
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise WorkflowLoadError(reference, f"cannot import {module_name!r}: {exc}") from exc
    try:
        value = getattr(module, attribute)
    except AttributeError:
        raise WorkflowLoadError(
            reference, f"module {module_name!r} has no attribute {attribute!r}"
        ) from None
    if isinstance(value, Workflow):
        return [value]
    if isinstance(value, Iterable) and not isinstance(value, str | bytes):
        found = list(value)
        if found and all(isinstance(w, Workflow) for w in found):
            return found
    raise WorkflowLoadError(
        reference, f"{attribute!r} is a {type(value).__name__}, not a Workflow or list of them"
    )
