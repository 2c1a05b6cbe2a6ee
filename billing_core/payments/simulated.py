"""The simulated gateway: the embedded default when no provider key is configured.

It keeps its own books in the ``simulated_payments`` and ``simulated_refunds`` tables (as a provider
would on its side), in transactions of its own, so what it says survives restarts and is the same for
every process. Outcomes are chosen, never random: ``settle(ref, Outcome.SUCCEED)`` is the customer paying.

Idempotency keys behave as Stripe's do: the first request with a key is stored with its answer (a
refusal included); the same key with the same parameters gets that answer again and changes nothing;
the same key with other parameters is refused. Concurrent requests with one key do the work once.
"""

from __future__ import annotations

import enum
import hashlib
import json
import secrets
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from billing_core.core import money
from billing_core.core.db import Database, transaction
from billing_core.core.errors import GatewayError, NotFound
from billing_core.core.models import SimulatedPayment, SimulatedRefund, SimulatedRequest, SimulatedStatus, utcnow
from billing_core.payments import PaymentRequest, PaymentState, PaymentStatus, RefundResult, RefundState


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
KEY_REUSED = "Keys for idempotent requests can only be used with the same parameters they were first used with"


def new_ref() -> str:
    return "sim_pi_" + secrets.token_hex(10)


class SimulatedGateway:
    name = "simulated"

    def __init__(self, db: Database):
        self.db = db

    def create_payment(self, request: PaymentRequest, idempotency_key: str | None = None) -> PaymentStatus:
        params = {
            "order": request.order_public_id,
            "amount": request.amount_cents,
            "currency": request.currency,
            "email": request.customer_email,
            "description": request.description,
        }

        def create(session) -> str:
            payment = SimulatedPayment(
                ref=new_ref(),
                order_public_id=request.order_public_id,
                amount_cents=request.amount_cents,
                currency=request.currency,
                status=SimulatedStatus.REQUIRES_PAYMENT,
            )
            session.add(payment)
            return payment.ref

        ref = self._once(idempotency_key, "create_payment", params, create)
        return self.fetch_status(ref)

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

    def refund(self, ref: str, amount_cents: int, idempotency_key: str) -> RefundResult:
        def refund(session) -> str:
            payment = self._get(session, ref, lock=True)
            if payment.status is not SimulatedStatus.SUCCEEDED:
                raise GatewayError(
                    f"Payment {ref} is {payment.status.value}; only a succeeded payment can be refunded."
                )
            if amount_cents <= 0 or payment.refunded_cents + amount_cents > payment.amount_cents:
                left = payment.amount_cents - payment.refunded_cents
                raise GatewayError(
                    f"The gateway refused the refund: payment {ref} has {money.format_plain(left)} {payment.currency} "
                    f"left to refund, less than the {money.format_plain(amount_cents)} asked."
                )
            payment.refunded_cents += amount_cents
            payment.updated_at = utcnow()
            made = SimulatedRefund(
                id="sim_re_" + secrets.token_hex(10),
                payment_ref=ref,
                amount_cents=amount_cents,
                idempotency_key=idempotency_key,
                created_at=utcnow(),
            )
            session.add(made)
            return made.id

        refund_id = self._once(idempotency_key, "refund", {"payment": ref, "amount": amount_cents}, refund)
        with self.db.session() as session:
            return self._refund_result(session.get(SimulatedRefund, refund_id))

    def find_refund(self, ref: str, idempotency_key: str) -> RefundResult | None:
        with self.db.session() as session:
            made = session.scalar(
                select(SimulatedRefund).where(
                    SimulatedRefund.payment_ref == ref, SimulatedRefund.idempotency_key == idempotency_key
                )
            )
            return self._refund_result(made) if made is not None else None

    def _refund_result(self, made: SimulatedRefund) -> RefundResult:
        return RefundResult(
            provider=self.name,
            payment_ref=made.payment_ref,
            refund_id=made.id,
            amount_cents=made.amount_cents,
            state=RefundState.SUCCEEDED,
            idempotency_key=made.idempotency_key,
        )

    def _once(self, key: str | None, operation: str, params: dict, work: Callable) -> str:
        """Run ``work(session)`` in one transaction, once per idempotency key; return what it returned.

        A refusal (GatewayError) is stored as the key's answer too, and raised again on every replay.
        """
        fingerprint = hashlib.sha256(json.dumps([operation, params], sort_keys=True).encode()).hexdigest()
        for _ in range(3):
            with self.db.session() as session:
                try:
                    with transaction(session):
                        seen = session.get(SimulatedRequest, key) if key else None
                        if seen is not None:
                            answer = seen.response
                        else:
                            try:
                                answer = {"ok": work(session)}
                                session.flush()
                            except GatewayError as exc:
                                answer = {"error": str(exc)}
                            if key:
                                session.add(SimulatedRequest(key=key, fingerprint=fingerprint, response=answer))
                                session.flush()
                except IntegrityError:
                    continue  # a concurrent request with this key committed first: replay its answer
            if seen is not None and seen.fingerprint != fingerprint:
                raise GatewayError(f"The gateway refused the request: {KEY_REUSED} ({key}).")
            if "error" in answer:
                raise GatewayError(answer["error"])
            return answer["ok"]
        raise GatewayError(f"The gateway could not settle concurrent requests with the key {key}.")

    @staticmethod
    def _get(session, ref: str, *, lock: bool = False) -> SimulatedPayment:
        stmt = select(SimulatedPayment).where(SimulatedPayment.ref == ref)
        payment = session.scalar(stmt.with_for_update() if lock else stmt)
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
