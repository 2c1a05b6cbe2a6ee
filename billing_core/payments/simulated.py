"""The simulated gateway: the embedded default when no provider key is configured.

It keeps its own books in the ``simulated_payments`` table (as a provider would on its side), in
transactions of its own, so what it says survives restarts and is the same for every process.
Outcomes are chosen, never random: ``settle(ref, Outcome.SUCCEED)`` is the customer paying.
"""

from __future__ import annotations

import enum
import secrets

from sqlalchemy import select

from billing_core.db import Database, transaction
from billing_core.errors import GatewayError, NotFound
from billing_core.models import SimulatedPayment, SimulatedStatus, utcnow
from billing_core.payments import PaymentRequest, PaymentState, PaymentStatus


class Outcome(enum.StrEnum):
    SUCCEED = "succeed"
    DECLINE = "decline"
    STAY_PENDING = "stay_pending"


_STATE = {
    SimulatedStatus.REQUIRES_PAYMENT: PaymentState.PENDING,
    SimulatedStatus.SUCCEEDED: PaymentState.SUCCEEDED,
    SimulatedStatus.DECLINED: PaymentState.FAILED,
    SimulatedStatus.CANCELED: PaymentState.CANCELED,
}


def new_ref() -> str:
    return "sim_pi_" + secrets.token_hex(10)


class SimulatedGateway:
    name = "simulated"

    def __init__(self, db: Database):
        self.db = db

    def create_payment(self, request: PaymentRequest) -> PaymentStatus:
        with self.db.session() as session, transaction(session):
            payment = SimulatedPayment(
                ref=new_ref(),
                order_public_id=request.order_public_id,
                amount_cents=request.amount_cents,
                currency=request.currency,
                status=SimulatedStatus.REQUIRES_PAYMENT,
            )
            session.add(payment)
        return self._status(payment)

    def settle(self, ref: str, outcome: Outcome, amount_cents: int | None = None) -> PaymentStatus:
        """Play the customer's part. ``amount_cents`` lets a test pay a wrong amount on purpose."""
        with self.db.session() as session, transaction(session):
            payment = self._get(session, ref)
            if payment.status is not SimulatedStatus.REQUIRES_PAYMENT:
                raise GatewayError(f"Payment {ref} is already {payment.status.value}.")
            if outcome is Outcome.SUCCEED:
                payment.status = SimulatedStatus.SUCCEEDED
                if amount_cents is not None:
                    payment.amount_cents = amount_cents
            elif outcome is Outcome.DECLINE:
                payment.status = SimulatedStatus.DECLINED
            payment.updated_at = utcnow()
        return self._status(payment)

    def fetch_status(self, ref: str) -> PaymentStatus:
        with self.db.session() as session:
            return self._status(self._get(session, ref))

    def cancel(self, ref: str) -> PaymentStatus:
        with self.db.session() as session, transaction(session):
            payment = self._get(session, ref)
            if payment.status is SimulatedStatus.SUCCEEDED:
                raise GatewayError(f"Payment {ref} has succeeded and cannot be cancelled.")
            payment.status = SimulatedStatus.CANCELED
            payment.updated_at = utcnow()
        return self._status(payment)

    def refund(self, ref: str, amount_cents: int, idempotency_key: str) -> PaymentStatus:
        with self.db.session() as session, transaction(session):
            payment = self._get(session, ref)
            if payment.status is not SimulatedStatus.SUCCEEDED:
                raise GatewayError(
                    f"Payment {ref} is {payment.status.value}; only a succeeded payment can be refunded."
                )
            if amount_cents <= 0 or payment.refunded_cents + amount_cents > payment.amount_cents:
                raise GatewayError(f"Payment {ref} cannot be refunded by that amount.")
            payment.refunded_cents += amount_cents
            payment.updated_at = utcnow()
        return self._status(payment)

    @staticmethod
    def _get(session, ref: str) -> SimulatedPayment:
        payment = session.scalar(select(SimulatedPayment).where(SimulatedPayment.ref == ref))
        if payment is None:
            raise NotFound(f"The simulated gateway has no payment {ref!r}.")
        return payment

    def _status(self, payment: SimulatedPayment) -> PaymentStatus:
        return PaymentStatus(
            provider=self.name,
            ref=payment.ref,
            state=_STATE[payment.status],
            amount_cents=payment.amount_cents,
            currency=payment.currency,
            checked_at=utcnow(),
            order_public_id=payment.order_public_id,
            refunded_cents=payment.refunded_cents,
            detail="card declined (simulated)" if payment.status is SimulatedStatus.DECLINED else "",
        )
