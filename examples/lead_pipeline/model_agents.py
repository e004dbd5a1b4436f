"""The writer as a model: what `baton demo lead_pipeline` runs for role writer when a model
endpoint is configured (`BATON_MODEL_URL`, the `models` extra).

Only the wording is the model's: the score, the routing and the approval before
anything is sent stay the workflow's, and the model's draft waits for the sales
manager like the deterministic writer's does.
"""

from __future__ import annotations

from actors.models import ModelAgent


class ModelWriter(ModelAgent):
    """Drafts the first email to a qualified lead from its contact, firmographics and score."""

    role = "writer"
    instructions = (
        "You write the first sales email to a lead who asked about Baton, an orchestration "
        "runtime for multi-agent workflows. Use the contact's first name, mention the "
        "company's industry and size, and propose a call next week. If the score's "
        "evidence is low, say in a caveat what the draft could not rely on. Output `draft` "
        'as an object {"subject": str, "body": str}.'
    )
    model = "baton-demo-writer"
