"""Stripe through stripe-python's StripeClient: PaymentIntents carrying the order id in metadata.

Every write sends an idempotency key (one per attempt, reused by the client's own network
retries); connect and read timeouts are short and bounded retries are on. Any Stripe error becomes
a GatewayError with a sentence a person can act on; nothing here touches our database.
"""

from __future__ import annotations

import uuid

import stripe

from billing_core.errors import GatewayError
from billing_core.models import utcnow
from billing_core.payments import PaymentRequest, PaymentState, PaymentStatus

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

    def create_payment(self, request: PaymentRequest) -> PaymentStatus:
        params = {
            "amount": request.amount_cents,
            "currency": request.currency.lower(),
            "payment_method_types": ["card"],
            "metadata": {"order": request.order_public_id, "source": "billing-ops", "what": request.description},
        }
        intent = self._call(
            "create a payment", self.client.v1.payment_intents.create, params=params, options=self._key("create")
        )
        return self._status(intent)

    def fetch_status(self, ref: str) -> PaymentStatus:
        return self._status(self._call("look up the payment", self.client.v1.payment_intents.retrieve, ref))

    def cancel(self, ref: str) -> PaymentStatus:
        intent = self._call(
            "cancel the payment", self.client.v1.payment_intents.cancel, ref, options=self._key("cancel")
        )
        return self._status(intent)

    def refund(self, ref: str, amount_cents: int, idempotency_key: str) -> PaymentStatus:
        self._call(
            "refund the payment",
            self.client.v1.refunds.create,
            params={"payment_intent": ref, "amount": amount_cents},
            options={"idempotency_key": idempotency_key},
        )
        return self.fetch_status(ref)

    @staticmethod
    def _key(what: str) -> dict:
        return {"idempotency_key": f"billing-ops-{what}-{uuid.uuid4()}"}

    @staticmethod
    def _call(doing: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except stripe.APIConnectionError:
            raise GatewayError(
                f"Stripe could not be reached to {doing} (network error or timeout); nothing was changed. Try again."
            ) from None
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
