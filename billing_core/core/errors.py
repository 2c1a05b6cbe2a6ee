"""The few domain errors billing_core raises; each message can be shown to a person as it is."""

import logging

_log = logging.getLogger(__name__)


class BillingError(Exception):
    """Base class: something a person asked for cannot be done, and nothing was changed."""


class InvalidAmount(BillingError, ValueError):
    """A typed amount is not a usable amount of money."""


class InvalidCountry(BillingError, ValueError):
    """A typed country is neither a country's name nor its two-letter code."""


class PricingError(BillingError):
    """A pricing file or a quote request does not follow the pricing rules."""


class ConfigError(BillingError):
    """A setting is missing or broken; the message names the setting and where it came from."""


class PermissionDenied(BillingError):
    """The acting person's role may not do this."""


class NotFound(BillingError):
    """The record asked for does not exist."""


class StateConflict(BillingError):
    """The record is not in the state the action expects (someone else may have acted first)."""


class PaymentMismatch(BillingError):
    """What the gateway reports does not match the order (amount, currency or outcome)."""


class GatewayError(BillingError):
    """The payment gateway could not be asked, or refused; nothing was changed here."""


class GatewayUnreachable(GatewayError):
    """The gateway did not answer (network error, timeout, its own outage): what it did is unknown.

    A write sent with an idempotency key may still have happened; ask again with the same key.
    """


def shown_to_people(exc: BaseException, doing: str) -> str:
    """What a person sees of an exception: a domain error's own message (written to be shown), or
    else only its type and a sentence. The message and traceback of anything else (a driver's
    error can quote SQL, parameters or a URL) go to the server log."""
    if isinstance(exc, BillingError):
        return str(exc)
    _log.error("Unexpected error while %s", doing, exc_info=exc)
    return f"Unexpected error ({type(exc).__name__}) while {doing}; the details are in the server log."
