"""Small builders shared by tests: a customer, an order, and a gateway's word that it was paid."""

from __future__ import annotations

from billing_core.access.roles import Actor, Role
from billing_core.core.models import Order, utcnow
from billing_core.orders import lifecycle as orders
from billing_core.payments import PaymentState, PaymentStatus

# The least role that opens each page, for tests that read what that page shows.
SUPPORT = Actor("sam@company.test", Role.SUPPORT, "Sam Support")
FINANCE = Actor("fay@company.test", Role.FINANCE, "Fay Finance")
ANALYST = Actor("ann@company.test", Role.ANALYST, "Ann Analyst")


def make_customer(session, admin: Actor, email: str = "zoe@example.com", sandbox: bool = False, **extra):
    fields = {"name": "Zoë Müller", "country": "DE"} | extra
    return orders.create_customer(session, admin, email=email, sandbox=sandbox, **fields)


def make_order(session, admin: Actor, customer, pricing, amount="500", method="stripe") -> Order:
    return orders.create_order(session, admin, customer_id=customer.id, amount=amount, method=method, pricing=pricing)


def paid(order: Order, amount_cents: int | None = None, currency: str = "USD", state=PaymentState.SUCCEEDED):
    """What a gateway would report for this order's payment."""
    return PaymentStatus(
        provider="simulated",
        ref=f"sim_pi_{order.public_id}",
        state=state,
        amount_cents=order.total_cents if amount_cents is None else amount_cents,
        currency=currency,
        checked_at=utcnow(),
        order_public_id=order.public_id,
    )
