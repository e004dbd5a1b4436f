"""Month-end close, as in the article: entities reconciled in parallel, exceptions triaged,
journals made and checked by different people, posted once, and signed off."""

from examples.month_end_close.workflow import workflow as workflow

__all__ = ["workflow"]
