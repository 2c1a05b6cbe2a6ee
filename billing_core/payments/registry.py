"""Which gateway speaks for an order: Stripe when a key is configured, else the simulated one.

Airwallex and Alipay orders have no API here: they reconcile from settlement files and manual
completion with a provider reference, so only their sandbox (simulated) payments can be checked.
"""

from __future__ import annotations

from billing_core.core.config import Settings
from billing_core.core.db import Database
from billing_core.core.errors import GatewayError
from billing_core.payments import Gateway
from billing_core.payments.simulated import SimulatedGateway
from billing_core.payments.stripe_gateway import StripeGateway
from billing_core.pricing.catalog import Method


def gateway_for(method: Method, settings: Settings, database: Database, *, sandbox: bool = False) -> Gateway:
    """The gateway to ask about a payment made by ``method``; GatewayError when none can answer."""
    if sandbox or not settings.stripe_api_key:
        return SimulatedGateway(database)
    if method is Method.STRIPE:
        return StripeGateway(settings.stripe_api_key, settings.stripe_api_base)
    raise GatewayError(
        f"{method.value.title()} has no API connection here: reconcile it from the settlement file, "
        "or complete it manually with the provider reference (finance)."
    )
