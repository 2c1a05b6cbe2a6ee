"""Which actions apply to an order in which status: the one table the services and the Orders page read.

Each action names the permission it needs and the statuses it applies to. A service refuses an order
whose status its action does not apply to (``applies``); the Orders page offers an order exactly the
actions that apply to its status (``actions_for``), and says which of them the person's role may not do.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from billing_core.access.roles import Action
from billing_core.core.models import COMPLETABLE, OrderStatus


class OrderAction(enum.StrEnum):
    """What may be done to one order; the value is the action's name as people read it."""

    COMPLETE_FROM_GATEWAY = "Complete from gateway"
    COMPLETE_MANUALLY = "Complete manually with provider reference"
    RESUME_PAYMENT = "Resume payment"
    EXPIRE = "Expire"
    CANCEL = "Cancel"
    REFUND = "Refund"


@dataclass(frozen=True)
class Rule:
    permission: Action
    statuses: tuple[OrderStatus, ...]


# An unpaid order (pending, or expired: its payment may still turn out to have succeeded) can be completed,
# given a new payment or cancelled; only a pending one expires; a paid one, even partly refunded, refunds.
ACTIONS: dict[OrderAction, Rule] = {
    OrderAction.COMPLETE_FROM_GATEWAY: Rule(Action.COMPLETE_ORDER, COMPLETABLE),
    OrderAction.COMPLETE_MANUALLY: Rule(Action.COMPLETE_ORDER_MANUALLY, COMPLETABLE),
    OrderAction.RESUME_PAYMENT: Rule(Action.RESUME_PAYMENT, COMPLETABLE),
    OrderAction.EXPIRE: Rule(Action.EXPIRE_ORDER, (OrderStatus.PENDING,)),
    OrderAction.CANCEL: Rule(Action.CANCEL_ORDER, COMPLETABLE),
    OrderAction.REFUND: Rule(Action.REFUND_ORDER, (OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED)),
}


def applies(action: OrderAction, status: OrderStatus) -> bool:
    return status in ACTIONS[action].statuses


def actions_for(status: OrderStatus) -> list[OrderAction]:
    """The actions that apply to an order in ``status``, in the table's order."""
    return [action for action, rule in ACTIONS.items() if status in rule.statuses]
