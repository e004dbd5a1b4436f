"""The lead pipeline, as in the article: dedupe, enrich from two sources at once, score with
evidence, route by rules, and reach out only once a person approved the email."""

from examples.lead_pipeline.workflow import workflow as workflow

__all__ = ["workflow"]
