"""One protocol for every payment gateway: create a payment, fetch its truth, cancel, refund."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


class PaymentState(enum.StrEnum):
    PENDING = "pending"  # created, customer has not paid (or payment still processing)
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # declined or errored
    CANCELED = "canceled"


@dataclass(frozen=True)
class PaymentStatus:
    """What the provider says about one payment, and when we asked."""

    provider: str
    ref: str
    state: PaymentState
    amount_cents: int
    currency: str
    checked_at: datetime
    order_public_id: str | None = None
    refunded_cents: int = 0
    detail: str = ""

    def as_dict(self) -> dict:
        return {
            "provider": self.provider,
            "ref": self.ref,
            "state": self.state.value,
            "amount_cents": self.amount_cents,
            "currency": self.currency,
            "checked_at": self.checked_at.isoformat(),
            "order": self.order_public_id,
            "refunded_cents": self.refunded_cents,
            "detail": self.detail,
        }


class RefundState(enum.StrEnum):
    PENDING = "pending"  # accepted by the gateway, money not yet returned
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # refused or failed at the gateway: nothing was returned


@dataclass(frozen=True)
class RefundResult:
    """What the gateway says about one refund, found by the idempotency key it was made with."""

    provider: str
    payment_ref: str
    refund_id: str
    amount_cents: int
    state: RefundState
    idempotency_key: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class PaymentRequest:
    """What a gateway needs to open a payment for an order."""

    order_public_id: str
    amount_cents: int
    currency: str
    customer_email: str
    description: str


class Gateway(Protocol):
    """Writes take an idempotency key: the same key with the same parameters gets the first answer
    and moves no money again; the same key with other parameters is refused (GatewayError).
    GatewayUnreachable means the outcome is unknown: ask again with the same key."""

    name: str

    def create_payment(self, request: PaymentRequest, idempotency_key: str | None = None) -> PaymentStatus: ...

    def fetch_status(self, ref: str) -> PaymentStatus: ...

    def cancel(self, ref: str) -> PaymentStatus: ...

    def refund(self, ref: str, amount_cents: int, idempotency_key: str) -> RefundResult: ...

    def find_refund(self, ref: str, idempotency_key: str) -> RefundResult | None:
        """The refund of payment ``ref`` made with ``idempotency_key``, or None when there is none."""
        ...
