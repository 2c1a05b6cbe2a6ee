"""Roles, the acting person, and who may do what: the single table every service checks."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from billing_core.core.errors import PermissionDenied


class Role(enum.StrEnum):
    SUPPORT = "support"
    FINANCE = "finance"
    ANALYST = "analyst"
    ADMIN = "admin"


@dataclass(frozen=True)
class Actor:
    """The person (or the CLI run) on whose behalf a state change happens."""

    email: str
    role: Role
    name: str = ""

    @property
    def label(self) -> str:
        return f"{self.name or self.email} ({self.role.value})"


class Action(enum.StrEnum):
    CREATE_CUSTOMER = "customer.create"
    CREATE_ORDER = "order.create"
    COMPLETE_ORDER = "order.complete"
    COMPLETE_ORDER_MANUALLY = "order.complete_manual"
    FAIL_ORDER = "order.fail"
    CHECK_PAYMENT = "order.check_payment"
    RESUME_PAYMENT = "order.resume_payment"
    EXPIRE_ORDER = "order.expire"
    CANCEL_ORDER = "order.cancel"
    REFUND_ORDER = "order.refund"
    VIEW_REFUNDS = "order.refunds.view"
    RECONCILE = "orders.reconcile"
    IMPORT_SETTLEMENT = "settlement.import"
    SANDBOX = "sandbox.run"
    SEED_DEMO = "demo.seed"
    REGENERATE_INVOICES = "invoices.regenerate"
    READ_ORDERS = "orders.read"
    READ_BILLS = "bills.read"
    READ_REVENUE = "revenue.read"
    READ_AUDIT = "audit.read"
    READ_CUSTOMERS = "customers.read"
    EDIT_CUSTOMER = "customer.edit_billing"
    REBUILD_REVENUE = "revenue.rebuild"
    STORE_INVOICE_FILE = "invoices.store_file"
    CHECK_BILLS = "bills.check"
    READ_CREDITS = "credits.read"
    IMPORT_USAGE = "credits.import_usage"
    PROPOSE_ADJUSTMENT = "credits.propose_adjustment"
    APPROVE_CHANGES = "credits.approve"
    EXPIRE_CREDITS = "credits.expire"


PERMISSIONS: dict[Action, frozenset[Role]] = {
    Action.CREATE_CUSTOMER: frozenset({Role.ADMIN}),
    Action.CREATE_ORDER: frozenset({Role.ADMIN}),
    Action.COMPLETE_ORDER: frozenset({Role.SUPPORT, Role.FINANCE, Role.ADMIN}),
    Action.COMPLETE_ORDER_MANUALLY: frozenset({Role.FINANCE, Role.ADMIN}),
    Action.FAIL_ORDER: frozenset({Role.SUPPORT, Role.FINANCE, Role.ADMIN}),
    Action.CHECK_PAYMENT: frozenset({Role.SUPPORT, Role.FINANCE, Role.ADMIN}),
    Action.RESUME_PAYMENT: frozenset({Role.SUPPORT, Role.FINANCE, Role.ADMIN}),
    Action.EXPIRE_ORDER: frozenset({Role.SUPPORT, Role.FINANCE, Role.ADMIN}),
    Action.CANCEL_ORDER: frozenset({Role.SUPPORT, Role.FINANCE, Role.ADMIN}),
    Action.REFUND_ORDER: frozenset({Role.FINANCE, Role.ADMIN}),
    # The roles that open an order's detail see its refunds, pending and failed ones included.
    Action.VIEW_REFUNDS: frozenset({Role.SUPPORT, Role.FINANCE, Role.ADMIN}),
    Action.RECONCILE: frozenset({Role.SUPPORT, Role.FINANCE, Role.ADMIN}),
    # A settlement file completes orders without gateway proof: the same bar as manual completion.
    Action.IMPORT_SETTLEMENT: frozenset({Role.FINANCE, Role.ADMIN}),
    # Sandbox customers and orders never count in revenue or bills; the roles that may open the
    # simulator may run them end to end.
    Action.SANDBOX: frozenset({Role.ANALYST, Role.ADMIN}),
    Action.SEED_DEMO: frozenset({Role.ADMIN}),
    Action.REGENERATE_INVOICES: frozenset({Role.FINANCE, Role.ADMIN}),
    # Reads of personal and financial data: the roles that open the page showing it (PAGES below).
    # Orders: search, order detail with its timeline and gateway checks, stuck orders.
    Action.READ_ORDERS: frozenset({Role.SUPPORT, Role.FINANCE, Role.ADMIN}),
    # Bills: issued invoices and credit notes, their totals, checks, exports and regeneration jobs.
    Action.READ_BILLS: frozenset({Role.FINANCE, Role.ADMIN}),
    # Revenue: the report, top customers (names, emails, totals) and the pricing what-if.
    Action.READ_REVENUE: frozenset({Role.ANALYST, Role.FINANCE, Role.ADMIN}),
    # Reading the audit log: who did what to which record, with before/after data.
    Action.READ_AUDIT: frozenset({Role.FINANCE, Role.ADMIN}),
    # A customer's profile, credits, orders, documents and refunds: whoever helps them (the Orders roles).
    Action.READ_CUSTOMERS: frozenset({Role.SUPPORT, Role.FINANCE, Role.ADMIN}),
    # Billing details (address, company, tax id, country) end up on invoices, which finance answers for;
    # support reads them and asks finance to change them.
    Action.EDIT_CUSTOMER: frozenset({Role.FINANCE, Role.ADMIN}),
    # Recomputing the revenue rollup from the orders changes no order, only derived figures: the
    # roles that open the Revenue page may (its first view builds it).
    Action.REBUILD_REVENUE: frozenset({Role.ANALYST, Role.FINANCE, Role.ADMIN}),
    # Storing an invoice's PDF (the issued copy at its first download, or a re-render): the roles
    # that open the Invoices page.
    Action.STORE_INVOICE_FILE: frozenset({Role.FINANCE, Role.ADMIN}),
    # Running the deep check of the bills (a background scan whose result is stored and shown).
    Action.CHECK_BILLS: frozenset({Role.FINANCE, Role.ADMIN}),
    # Credits: balances, usage imports and the liability roll-forward. Support may look (customers ask
    # where their credits went); finance answers for the figures.
    Action.READ_CREDITS: frozenset({Role.SUPPORT, Role.FINANCE, Role.ADMIN}),
    # A usage file draws credits from many customers at once: finance's bar, as for settlement files.
    Action.IMPORT_USAGE: frozenset({Role.FINANCE, Role.ADMIN}),
    # Goodwill grants and correction debits: whoever helps the customer proposes; finance approves, never
    # their own (billing_core.credits.approvals), and reads the queue of what waits.
    Action.PROPOSE_ADJUSTMENT: frozenset({Role.SUPPORT, Role.FINANCE, Role.ADMIN}),
    Action.APPROVE_CHANGES: frozenset({Role.FINANCE, Role.ADMIN}),
    # Expiring unused credits is breakage in the books: finance runs it (and its dry run).
    Action.EXPIRE_CREDITS: frozenset({Role.FINANCE, Role.ADMIN}),
}


@dataclass(frozen=True)
class Page:
    """One page of the app: its title, its icon (a Material Symbols name) and the roles that may open it."""

    title: str
    icon: str
    roles: frozenset[Role]


# The page registry (DESIGN.md roles), in menu order: app.py registers pages/<name>.py's ``render`` for the
# pages the actor may open, and each page checks again (``pages._guard.page_context``).
PAGES: dict[str, Page] = {
    "simulator": Page("Top-up simulator", ":material/calculate:", frozenset({Role.ANALYST, Role.ADMIN})),
    "orders": Page("Orders", ":material/receipt_long:", frozenset({Role.SUPPORT, Role.FINANCE, Role.ADMIN})),
    "customers": Page("Customers", ":material/person_search:", frozenset({Role.SUPPORT, Role.FINANCE, Role.ADMIN})),
    "revenue": Page("Revenue", ":material/monitoring:", frozenset({Role.FINANCE, Role.ANALYST, Role.ADMIN})),
    "invoices": Page("Invoices", ":material/request_quote:", frozenset({Role.FINANCE, Role.ADMIN})),
    "audit": Page("Audit log", ":material/history:", frozenset({Role.FINANCE, Role.ADMIN})),
    "credits": Page("Credits", ":material/savings:", frozenset({Role.SUPPORT, Role.FINANCE, Role.ADMIN})),
    "approvals": Page("Approvals", ":material/approval:", frozenset({Role.FINANCE, Role.ADMIN})),
}


def may(actor: Actor | None, action: Action) -> bool:
    return actor is not None and actor.role in PERMISSIONS[action]


def require(actor: Actor | None, action: Action) -> None:
    """Raise PermissionDenied unless the actor's role may perform ``action``."""
    if actor is None:
        raise PermissionDenied("Sign in first: no acting person was given.")
    if not isinstance(actor.role, Role):
        raise PermissionDenied(f"Unknown role {actor.role!r}.")
    if actor.role not in PERMISSIONS[action]:
        allowed = ", ".join(sorted(r.value for r in PERMISSIONS[action]))
        raise PermissionDenied(f"The {actor.role.value} role may not {action.value}; it needs {allowed}.")


def may_open(actor: Actor | None, page: str) -> bool:
    return actor is not None and page in PAGES and actor.role in PAGES[page].roles


def pages_for(actor: Actor | None) -> list[str]:
    return [page for page in PAGES if may_open(actor, page)]
