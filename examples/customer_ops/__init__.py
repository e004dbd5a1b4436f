"""Customer operations, as in the article: classify, decide, look up billing and
account history in parallel, decide on policy, draft, check, send."""

from examples.customer_ops.workflow import workflow as workflow

__all__ = ["workflow"]
