"""Stripe through stripe-python's StripeClient: PaymentIntents carrying the order id in metadata.

Every write sends an idempotency key (one per attempt, reused by the client's own network
retries); connect and read timeouts are short and bounded retries are on. Any Stripe error becomes
a GatewayError with a sentence a person can act on: GatewayUnreachable when what Stripe did is
unknown (network, timeout, Stripe's own 5xx, a concurrent request with the same key). Refunds carry
their idempotency key in their metadata too, so a refund whose answer was lost can be found again by
listing the PaymentIntent's refunds. Nothing here touches our database.
"""

from __future__ import annotations

import uuid

import stripe

from billing_core.core.errors import GatewayError, GatewayUnreachable
from billing_core.core.models import utcnow
from billing_core.payments import PaymentRequest, PaymentState, PaymentStatus, RefundResult, RefundState

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 20.0
NETWORK_RETRIES = 2


class StripeGateway:
    name = "stripe"

    def __init__(self, api_key: str, api_base: str | None = None, *, retries: int = NETWORK_RETRIES):
        self.live = "_live_" in api_key
        self.client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base} if api_base else None,
            max_network_retries=retries,
            http_client=stripe.RequestsClient(timeout=(CONNECT_TIMEOUT, READ_TIMEOUT)),
        )

    def create_payment(self, request: PaymentRequest, idempotency_key: str | None = None) -> PaymentStatus:
        params = {
            "amount": request.amount_cents,
            "currency": request.currency.lower(),
            "payment_method_types": ["card"],
            "metadata": {"order": request.order_public_id, "source": "billing-ops", "what": request.description},
        }
        options = {"idempotency_key": idempotency_key} if idempotency_key else self._key("create")
        intent = self._call("create a payment", self.client.v1.payment_intents.create, params=params, options=options)
        return self._status(intent)

    def fetch_status(self, ref: str) -> PaymentStatus:
        return self._status(self._call("look up the payment", self.client.v1.payment_intents.retrieve, ref))

    def cancel(self, ref: str) -> PaymentStatus:
        intent = self._call(
            "cancel the payment", self.client.v1.payment_intents.cancel, ref, options=self._key("cancel")
        )
        return self._status(intent)

    def refund(self, ref: str, amount_cents: int, idempotency_key: str) -> RefundResult:
        refund = self._call(
            "refund the payment",
            self.client.v1.refunds.create,
            params={"payment_intent": ref, "amount": amount_cents, "metadata": {"idempotency_key": idempotency_key}},
            options={"idempotency_key": idempotency_key},
        )
        return self._refund(refund, ref)

    def find_refund(self, ref: str, idempotency_key: str) -> RefundResult | None:
        params: dict = {"payment_intent": ref, "limit": 100}
        while True:
            page = self._call("list the payment's refunds", self.client.v1.refunds.list, params=params)
            for refund in page.data:
                if (refund.to_dict().get("metadata") or {}).get("idempotency_key") == idempotency_key:
                    return self._refund(refund, ref)
            if not page.has_more or not page.data:
                return None
            params["starting_after"] = page.data[-1].id

    def _refund(self, refund, ref: str) -> RefundResult:
        refund = refund.to_dict()
        status = refund.get("status")
        state = {"succeeded": RefundState.SUCCEEDED, "failed": RefundState.FAILED, "canceled": RefundState.FAILED}
        why = f": {refund['failure_reason']}" if refund.get("failure_reason") else ""
        return RefundResult(
            provider=self.name,
            payment_ref=refund.get("payment_intent") or ref,
            refund_id=refund["id"],
            amount_cents=int(refund["amount"]),
            state=state.get(status, RefundState.PENDING),
            idempotency_key=(refund.get("metadata") or {}).get("idempotency_key"),
            detail=f"Stripe refund status {status}{why}",
        )

    @staticmethod
    def _key(what: str) -> dict:
        return {"idempotency_key": f"billing-ops-{what}-{uuid.uuid4()}"}

    @staticmethod
    def _call(doing: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except stripe.APIConnectionError:
            raise GatewayUnreachable(
                f"Stripe could not be reached to {doing} (network error or timeout). Try again."
            ) from None
        except stripe.IdempotencyError:
            raise GatewayUnreachable(
                f"Stripe is still working on an earlier request to {doing} with the same key; ask again in a moment."
            ) from None
        except stripe.APIError:
            raise GatewayUnreachable(f"Stripe had an internal error while trying to {doing}; ask again.") from None
        except stripe.AuthenticationError:
            raise GatewayError(f"Stripe refused the configured API key while trying to {doing}.") from None
        except stripe.InvalidRequestError as exc:
            raise GatewayError(
                f"Stripe could not {doing}: {exc.user_message or exc.code or 'invalid request'}."
            ) from None
        except stripe.StripeError as exc:
            raise GatewayError(f"Stripe could not {doing}: {exc.user_message or 'error at Stripe'}.") from None

    def _status(self, intent) -> PaymentStatus:
        intent = intent.to_dict()
        status = intent.get("status")
        if status == "succeeded":
            state = PaymentState.SUCCEEDED
        elif status == "canceled":
            state = PaymentState.CANCELED
        elif status == "requires_payment_method" and intent.get("last_payment_error"):
            state = PaymentState.FAILED
        else:  # requires_payment_method/confirmation/action/capture, processing
            state = PaymentState.PENDING
        error = intent.get("last_payment_error") or {}
        metadata = intent.get("metadata") or {}
        return PaymentStatus(
            provider=self.name,
            ref=intent["id"],
            state=state,
            amount_cents=int(intent.get("amount_received") or intent["amount"]),
            currency=str(intent["currency"]).upper(),
            checked_at=utcnow(),
            order_public_id=metadata.get("order"),
            detail=f"Stripe status {status}" + (f": {error.get('message')}" if error.get("message") else ""),
        )
