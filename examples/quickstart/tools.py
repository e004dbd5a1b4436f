"""The tool host: the shop's orders. Tools run here, never inside an agent."""

from actors import ToolHost, tool

ORDERS = {"o-100": 1_999, "o-200": 0, "o-300": 12_900}
"""What each order cost, in cents."""


class Orders(ToolHost):
    name = "orders"

    @tool(read_only=True)
    def order_total(self, order_id: str) -> int:
        """What the customer paid for an order, in cents."""
        return ORDERS[order_id]

    @tool
    def pay_refund(self, order_id: str, amount: int) -> str:
        """Pay `amount` cents back for an order; the refund's id."""
        return f"rf-{order_id}-{amount}"
