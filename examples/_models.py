"""Which of a blueprint's actors a model serves, once a model endpoint is configured."""

from __future__ import annotations

from collections.abc import Mapping

Actor = tuple[str, str, str, int]
"""An actor process: class, principal (its own key), the role the key holds, concurrency."""


def served(
    actors: tuple[Actor, ...], models: Mapping[str, str], environ: Mapping[str, str]
) -> tuple[Actor, ...]:
    """`actors`, each role of `models` served by the model agent it names when `environ`
    names a model endpoint (`BATON_MODEL_URL`); as they are otherwise."""
    if not environ.get("BATON_MODEL_URL"):
        return actors
    return tuple(
        (models.get(role, spec), principal, role, concurrency)
        for spec, principal, role, concurrency in actors
    )
