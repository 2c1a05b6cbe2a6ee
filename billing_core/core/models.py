"""The schema in one place: SQLAlchemy 2 typed models. Money is integer cents, credits hundredths."""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from billing_core.access.roles import Role
from billing_core.payments import PaymentState
from billing_core.pricing.catalog import Method, PlanId


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps are stored as UTC and always come back timezone-aware, on SQLite too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class OrderStatus(enum.StrEnum):
    PENDING = "pending"
    PAID = "paid"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"
    PARTIALLY_REFUNDED = "partially_refunded"


# An expired order whose payment turns out to have succeeded can still be completed.
COMPLETABLE = (OrderStatus.PENDING, OrderStatus.EXPIRED)
# Orders whose payment was received: a refund, full or partial, does not undo that. Every path that
# meets one of these while trying to complete an order answers "already paid".
PAID_STATUSES = (OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED)
# Stuck: unpaid here (COMPLETABLE) while the latest gateway check said the payment succeeded. The
# partial index of that name holds just these orders; the migration and the model share this text.
STUCK_PAID_WHERE = (
    f"gateway_state = '{PaymentState.SUCCEEDED.value}' AND status IN ({', '.join(repr(s.value) for s in COMPLETABLE)})"
)


class LedgerKind(enum.StrEnum):
    TOPUP = "topup"
    REFUND = "refund"
    ADJUSTMENT = "adjustment"  # a goodwill grant (positive) or a correction debit (negative), approved
    USAGE = "usage"  # credits drawn by model usage, imported from the router's metering
    USAGE_CORRECTION = "usage_correction"  # the difference a corrected usage file books, never an edit
    EXPIRY = "expiry"  # unused credits past their term (breakage when paid)


class CreditPool(enum.StrEnum):
    """Paid credits were bought (revenue, refundable as money); promotional ones were given (neither)."""

    PAID = "paid"
    PROMOTIONAL = "promotional"


class InvoiceKind(enum.StrEnum):
    INVOICE = "invoice"
    CREDIT_NOTE = "credit_note"


class RefundStatus(enum.StrEnum):
    """A refund is an intent (requested) before it is money; the gateway's answer finishes it."""

    REQUESTED = "requested"  # written before the gateway is asked; pending until its outcome is recorded
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # the gateway refused; nothing was refunded


class SimulatedStatus(enum.StrEnum):
    REQUIRES_PAYMENT = "requires_payment"
    SUCCEEDED = "succeeded"
    DECLINED = "declined"
    CANCELED = "canceled"


def _enum(cls: type[enum.Enum], length: int = 24) -> Enum:
    return Enum(
        cls,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda e: [m.value for m in e],
    )


convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=convention)
    # 64-bit integers everywhere; on SQLite INTEGER, which is 64-bit and keeps rowid primary keys.
    type_annotation_map = {datetime: UTCDateTime(), int: BigInteger().with_variant(Integer(), "sqlite")}


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)  # stored lower-case
    name: Mapped[str] = mapped_column(String(200))
    company: Mapped[str | None] = mapped_column(String(200))
    country: Mapped[str] = mapped_column(String(2))
    tax_id: Mapped[str | None] = mapped_column(String(40))
    address: Mapped[str | None] = mapped_column(Text)
    sandbox: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Name, company, email and tax id folded for the text index (billing_core.orders.customer_index keeps it).
    search_text: Mapped[str] = mapped_column(Text, default="")
    # What follows the email's "@" (kept with it, as search_text): an email domain is one index range.
    email_domain: Mapped[str | None] = mapped_column(String(255))

    __table_args__ = (
        # In id order within a domain: its first customers are the same ones every time (migration 0022).
        Index("ix_customers_email_domain", "email_domain", "id"),
        # Prefix search (billing_core.orders.search): code-point order on PostgreSQL whatever the collation.
        Index("ix_customers_name_prefix", "name", postgresql_ops={"name": "text_pattern_ops"}),
        Index("ix_customers_email_prefix", "email", postgresql_ops={"email": "text_pattern_ops"}),
        # The top-up simulator's sandbox customers, newest first (orders.lifecycle.sandbox_customers).
        Index(
            "ix_customers_sandbox_created_at",
            "created_at",
            sqlite_where=text("sandbox IS 1"),
            postgresql_where=text("sandbox IS true"),
        ),
    )


class CustomerOrders(Base):
    """Per customer: how many orders they have and when the newest was created (sandbox ones too, as the
    customer's own orders are listed). Kept in the flush of every new order (customer_index); the search's
    first page of matched customers' orders probes only the customers whose newest order can reach it,
    and counts from here."""

    __tablename__ = "customer_orders"

    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), primary_key=True, autoincrement=False)
    order_count: Mapped[int]
    last_order_at: Mapped[datetime]

    __table_args__ = {"sqlite_with_rowid": False}


class CustomerGram(Base):
    """One- and two-character runs of a customer's Han, kana or Hangul text: what trigrams cannot find."""

    __tablename__ = "customer_grams"

    gram: Mapped[str] = mapped_column(String(2), primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), primary_key=True)

    __table_args__ = {"sqlite_with_rowid": False}


class Order(Base):
    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    plan: Mapped[PlanId] = mapped_column(_enum(PlanId))
    amount_cents: Mapped[int]
    credits: Mapped[int]  # hundredths of a credit
    fee_cents: Mapped[int]
    total_cents: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    method: Mapped[Method] = mapped_column(_enum(Method))
    provider_ref: Mapped[str | None] = mapped_column(String(255))
    pricing_version: Mapped[str] = mapped_column(String(40))
    status: Mapped[OrderStatus] = mapped_column(_enum(OrderStatus), default=OrderStatus.PENDING)
    sandbox: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    paid_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    completed_by: Mapped[str | None] = mapped_column(String(320))
    completion_reason: Mapped[str | None] = mapped_column(Text)
    paid_amount_cents: Mapped[int | None]
    failure_reason: Mapped[str | None] = mapped_column(Text)
    # The latest gateway check's answer (its full record is in gateway_checks), kept in the check's
    # transaction so a list shows it and the stuck view finds "paid there, not here" by index.
    gateway_state: Mapped[str | None] = mapped_column(String(20))
    gateway_checked_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_orders_created_at", "created_at"),
        Index("ix_orders_status_created_at", "status", "created_at"),
        # id last: a customer's newest orders in the pages' order (created_at, id) from the index alone.
        Index("ix_orders_customer_id_created_at", "customer_id", "created_at", "id"),
        Index("ix_orders_provider_ref", "provider_ref"),
        # An amount typed into the search box matches the top-up amount or the total charged.
        Index("ix_orders_amount_cents_created_at", "amount_cents", "created_at"),
        Index("ix_orders_total_cents_created_at", "total_cents", "created_at"),
        # Stuck orders: unpaid here, paid at the gateway when last asked, oldest first. Only such
        # orders are in the index, so the view reads as many entries as it shows.
        Index(
            "ix_orders_stuck_paid_created_at",
            "created_at",
            "id",
            sqlite_where=text(STUCK_PAID_WHERE),
            postgresql_where=text(STUCK_PAID_WHERE),
        ),
    )


class LedgerEntry(Base):
    """Credits granted (positive) or taken back (negative); a customer's balance is the sum."""

    __tablename__ = "ledger_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))
    kind: Mapped[LedgerKind] = mapped_column(_enum(LedgerKind))
    pool: Mapped[CreditPool] = mapped_column(_enum(CreditPool, 12), default=CreditPool.PAID, server_default="paid")
    credits: Mapped[int]  # hundredths of a credit, signed
    # What these credits are worth in USD cents at the price paid (billing_core.credits.ledger); 0 when promotional.
    value_cents: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    refund_id: Mapped[int | None] = mapped_column(ForeignKey("refunds.id"), unique=True)
    note: Mapped[str | None] = mapped_column(Text)  # what the customer is told (adjustments)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(320))

    __table_args__ = (
        # A top-up grants credits once: the database refuses a second top-up entry for an order.
        Index(
            "uq_ledger_entries_topup_order_id",
            "order_id",
            unique=True,
            sqlite_where=text("kind = 'topup'"),
            postgresql_where=text("kind = 'topup'"),
        ),
        Index("ix_ledger_entries_customer_id", "customer_id"),
    )


class InvoiceSeries(Base):
    """The next number of each series; its row lock makes numbering gapless under concurrency."""

    __tablename__ = "invoice_series"

    series: Mapped[str] = mapped_column(String(40), primary_key=True)
    next_number: Mapped[int] = mapped_column(default=1)
    # Series health, kept by the same UPDATE that takes a number (invoices.numbering): how many were
    # taken, the first and the last. Gapless is issued == last - first + 1, first == 1, last == next - 1.
    issued: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    first_number: Mapped[int | None]
    last_number: Mapped[int | None]


class Invoice(Base):
    """Issued once, never edited: seller, buyer, lines and amounts are frozen at issue."""

    __tablename__ = "invoices"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(60), unique=True)
    series: Mapped[str] = mapped_column(String(40))
    sequence: Mapped[int]
    kind: Mapped[InvoiceKind] = mapped_column(_enum(InvoiceKind), default=InvoiceKind.INVOICE)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    refers_to_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"))
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    subtotal_cents: Mapped[int]
    fee_cents: Mapped[int]
    tax_cents: Mapped[int] = mapped_column(default=0)
    total_cents: Mapped[int]
    seller: Mapped[dict] = mapped_column(JSON)
    buyer: Mapped[dict] = mapped_column(JSON)
    lines: Mapped[list] = mapped_column(JSON)
    template_version: Mapped[str] = mapped_column(String(20))
    sandbox: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (
        UniqueConstraint("series", "sequence", name="uq_invoices_series_sequence"),
        Index(
            "uq_invoices_order_id_invoice",
            "order_id",
            unique=True,
            sqlite_where=text("kind = 'invoice'"),
            postgresql_where=text("kind = 'invoice'"),
        ),
        Index("ix_invoices_issued_at", "issued_at"),
        # A customer's documents (and an order's credit notes): through their orders, by index.
        Index("ix_invoices_order_id", "order_id"),
    )


class AuditEvent(Base):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_email: Mapped[str] = mapped_column(String(320))
    actor_role: Mapped[Role] = mapped_column(_enum(Role, 16))
    action: Mapped[str] = mapped_column(String(60))
    entity_type: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    before: Mapped[dict | None] = mapped_column(JSON)
    after: Mapped[dict | None] = mapped_column(JSON)

    __table_args__ = (
        Index("ix_audit_events_entity", "entity_type", "entity_id"),
        Index("ix_audit_events_at", "at"),
        Index("ix_audit_events_action_at", "action", "at"),
    )


class SimulatedPayment(Base):
    """The simulated gateway's own books: what a provider would know about each payment."""

    __tablename__ = "simulated_payments"

    ref: Mapped[str] = mapped_column(String(64), primary_key=True)
    order_public_id: Mapped[str] = mapped_column(String(32))
    amount_cents: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[SimulatedStatus] = mapped_column(_enum(SimulatedStatus))
    refunded_cents: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_simulated_payments_order_public_id", "order_public_id"),)


class GatewayCheck(Base):
    """What a gateway said about an order's payment when someone (or reconcile) asked."""

    __tablename__ = "gateway_checks"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    checked_at: Mapped[datetime] = mapped_column(default=utcnow)
    checked_by: Mapped[str] = mapped_column(String(320))
    provider: Mapped[str] = mapped_column(String(20))
    ref: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(20))
    amount_cents: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    refunded_cents: Mapped[int] = mapped_column(default=0)
    detail: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_gateway_checks_order_id_checked_at", "order_id", "checked_at"),)


class Refund(Base):
    """A refund of an order: first an intent with its idempotency key, then what the gateway answered.

    Only a succeeded refund has a credit note, a ledger entry and a place in the revenue rollup.
    """

    __tablename__ = "refunds"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    amount_cents: Mapped[int]
    credits: Mapped[int]  # hundredths of a credit taken back (when it succeeds)
    provider_ref: Mapped[str | None] = mapped_column(String(255))
    credit_note_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(320))
    reason: Mapped[str] = mapped_column(Text)
    override: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[RefundStatus] = mapped_column(_enum(RefundStatus, 16), default=RefundStatus.REQUESTED)
    idempotency_key: Mapped[str] = mapped_column(String(200))
    gateway_refund_id: Mapped[str | None] = mapped_column(String(255))
    refunded_at: Mapped[datetime | None]  # when the gateway's success was recorded (the rollup's day)
    finished_at: Mapped[datetime | None]
    finished_by: Mapped[str | None] = mapped_column(String(320))
    failure_reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_refunds_order_id", "order_id"),
        # One refund per key: the same request made twice finds the first instead of paying again.
        Index("uq_refunds_idempotency_key", "idempotency_key", unique=True),
        # What refunds reconcile reads: the few pending ones, without scanning the finished.
        Index(
            "ix_refunds_requested",
            "created_at",
            sqlite_where=text("status = 'requested'"),
            postgresql_where=text("status = 'requested'"),
        ),
    )


class SimulatedRefund(Base):
    """A refund in the simulated gateway's books, tagged with the idempotency key it was made with."""

    __tablename__ = "simulated_refunds"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    payment_ref: Mapped[str] = mapped_column(ForeignKey("simulated_payments.ref"))
    amount_cents: Mapped[int]
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_simulated_refunds_payment_ref", "payment_ref"),)


class SimulatedRequest(Base):
    """The simulated gateway's idempotency keys, kept as Stripe keeps them: the request and its first answer."""

    __tablename__ = "simulated_requests"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))  # SHA-256 of the operation and its parameters
    response: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SyncCursor(Base):
    """Where an incremental job (e.g. reconcile from Stripe events) left off."""

    __tablename__ = "sync_cursors"

    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    position: Mapped[str] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class SettlementImport(Base):
    """One applied settlement file: which, by whom, and what it did."""

    __tablename__ = "settlement_imports"

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(20))
    filename: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    imported_at: Mapped[datetime] = mapped_column(default=utcnow)
    imported_by: Mapped[str] = mapped_column(String(320))
    rows: Mapped[int]
    completed: Mapped[int]
    summary: Mapped[dict] = mapped_column(JSON)

    __table_args__ = (Index("ix_settlement_imports_sha256", "sha256"),)


class RegenerationStatus(enum.StrEnum):
    RUNNING = "running"
    CANCELLED = "cancelled"
    FINISHED = "finished"
    FAILED = "failed"


class RegenerationJob(Base):
    """A batch re-render of invoice PDFs: what was selected, why, by whom, and how far it got."""

    __tablename__ = "regeneration_jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(320))
    created_role: Mapped[Role] = mapped_column(_enum(Role, 16))  # the starter's role, kept for the job's audit
    reason: Mapped[str] = mapped_column(Text)
    selection: Mapped[dict] = mapped_column(JSON)
    paper: Mapped[str] = mapped_column(String(10), default="A4")
    total: Mapped[int]
    done: Mapped[int] = mapped_column(default=0)
    status: Mapped[RegenerationStatus] = mapped_column(_enum(RegenerationStatus), default=RegenerationStatus.RUNNING)
    finished_at: Mapped[datetime | None]
    zip_path: Mapped[str | None] = mapped_column(String(500))
    error: Mapped[str | None] = mapped_column(Text)


class InvoiceFile(Base):
    """One stored PDF version of an invoice; files are never overwritten, a re-render is a new version."""

    __tablename__ = "invoice_files"

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"))
    version: Mapped[int]
    path: Mapped[str] = mapped_column(String(500))  # relative to the invoice storage directory
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int]
    template_version: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(320))
    reason: Mapped[str] = mapped_column(Text)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("regeneration_jobs.id"))

    __table_args__ = (
        UniqueConstraint("invoice_id", "version", name="uq_invoice_files_invoice_id_version"),
        # A resumed job never renders an invoice twice: one file per (job, invoice).
        UniqueConstraint("job_id", "invoice_id", name="uq_invoice_files_job_id_invoice_id"),
    )


# --- revenue rollups (billing_core.revenue.rollup): kept in the same transactions as the orders they count ---


class CustomerKind(enum.StrEnum):
    """A paid top-up is 'new' when it is the customer's first paid order, else 'returning'."""

    NEW = "new"
    RETURNING = "returning"


class RevenueDaily(Base):
    """Top-ups per local day of each reporting time zone, by plan, method and new/returning; sandbox never."""

    __tablename__ = "revenue_daily"

    tz: Mapped[str] = mapped_column(String(40), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    plan: Mapped[PlanId] = mapped_column(_enum(PlanId), primary_key=True)
    method: Mapped[Method] = mapped_column(_enum(Method), primary_key=True)
    kind: Mapped[CustomerKind] = mapped_column(_enum(CustomerKind, 10), primary_key=True)
    created_count: Mapped[int]  # bucketed by the order's creation day
    paid_count: Mapped[int]  # paid measures by the payment day
    amount_cents: Mapped[int]
    fee_cents: Mapped[int]
    total_cents: Mapped[int]
    credits: Mapped[int]
    refund_count: Mapped[int]  # refund measures by the refund day, with the order's plan, method, kind
    refunded_cents: Mapped[int]

    # On SQLite the rows live in the primary key's B-tree, so a range of days is read in one pass.
    __table_args__ = {"sqlite_with_rowid": False}


class RevenueDailyCountry(Base):
    """RevenueDaily split by the customer's country too; read only when a country filter is set."""

    __tablename__ = "revenue_daily_country"

    tz: Mapped[str] = mapped_column(String(40), primary_key=True)
    country: Mapped[str] = mapped_column(String(2), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    plan: Mapped[PlanId] = mapped_column(_enum(PlanId), primary_key=True)
    method: Mapped[Method] = mapped_column(_enum(Method), primary_key=True)
    kind: Mapped[CustomerKind] = mapped_column(_enum(CustomerKind, 10), primary_key=True)
    created_count: Mapped[int]
    paid_count: Mapped[int]
    amount_cents: Mapped[int]
    fee_cents: Mapped[int]
    total_cents: Mapped[int]
    credits: Mapped[int]
    refund_count: Mapped[int]
    refunded_cents: Mapped[int]

    __table_args__ = {"sqlite_with_rowid": False}


class CustomerMonthly(Base):
    """Paid top-ups per customer per UTC month (first day of the month), for the top-customers list."""

    __tablename__ = "customer_monthly"

    customer_id: Mapped[int] = mapped_column(primary_key=True)
    month: Mapped[date] = mapped_column(Date, primary_key=True)
    paid_count: Mapped[int]
    total_cents: Mapped[int]
    amount_cents: Mapped[int]

    # Each month's best customers are an index range; without rowid on SQLite the index also covers customer_id.
    __table_args__ = (
        Index("ix_customer_monthly_month_total_cents", "month", "total_cents"),
        {"sqlite_with_rowid": False},
    )


class CustomerTotal(Base):
    """Paid top-ups per customer over all time: the upper bound that lets top customers skip the rest."""

    __tablename__ = "customer_totals"

    customer_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    paid_count: Mapped[int]
    total_cents: Mapped[int]
    amount_cents: Mapped[int]

    # Customers by lifetime total are an index range (covering customer_id, as above).
    __table_args__ = (Index("ix_customer_totals_total_cents", "total_cents"), {"sqlite_with_rowid": False})


class RevenueState(Base):
    """One row: a version bumped by every rollup write (page caches key on it), and what the rollup holds."""

    __tablename__ = "revenue_state"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int]
    timezones: Mapped[str] = mapped_column(String(400))  # comma-separated IANA names the rollup is kept for
    built: Mapped[bool] = mapped_column(Boolean)  # rebuilt from orders at least once since it was created


# --- credits (billing_core.credits): kept in the same transaction as every ledger entry ---------------


class CreditBalance(Base):
    """What each customer holds now, per pool, and the paid credits' worth at the price paid."""

    __tablename__ = "credit_balances"

    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), primary_key=True, autoincrement=False)
    paid_credits: Mapped[int]
    promotional_credits: Mapped[int]
    paid_value_cents: Mapped[int]


class CreditMonthly(Base):
    """Ledger movements per UTC month, pool and kind: the liability roll-forward reads these."""

    __tablename__ = "credit_monthly"

    month: Mapped[date] = mapped_column(Date, primary_key=True)
    pool: Mapped[CreditPool] = mapped_column(_enum(CreditPool, 12), primary_key=True)
    kind: Mapped[LedgerKind] = mapped_column(_enum(LedgerKind), primary_key=True)
    entries: Mapped[int]
    credits: Mapped[int]
    value_cents: Mapped[int]

    __table_args__ = {"sqlite_with_rowid": False}


class CustomerCreditMonthly(Base):
    """CreditMonthly per customer: the roll-forward's drill-down to the customers behind a month."""

    __tablename__ = "customer_credit_monthly"

    month: Mapped[date] = mapped_column(Date, primary_key=True)
    customer_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    pool: Mapped[CreditPool] = mapped_column(_enum(CreditPool, 12), primary_key=True)
    kind: Mapped[LedgerKind] = mapped_column(_enum(LedgerKind), primary_key=True)
    entries: Mapped[int]
    credits: Mapped[int]
    value_cents: Mapped[int]

    __table_args__ = (
        Index("ix_customer_credit_monthly_customer_id_month", "customer_id", "month"),
        {"sqlite_with_rowid": False},
    )


class UsageImport(Base):
    """One applied usage file: which, by whom, and what it booked."""

    __tablename__ = "usage_imports"

    id: Mapped[int] = mapped_column(primary_key=True)
    filename: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    imported_at: Mapped[datetime] = mapped_column(default=utcnow)
    imported_by: Mapped[str] = mapped_column(String(320))
    rows: Mapped[int]
    summary: Mapped[dict] = mapped_column(JSON)


class UsageLine(Base):
    """Usage booked per (customer, day, model): a corrected file books only the difference against this."""

    __tablename__ = "usage_lines"

    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    model: Mapped[str] = mapped_column(String(100), primary_key=True)
    credits: Mapped[int]  # hundredths drawn in all, after every correction
    promotional_credits: Mapped[int]  # of which from the promotional pool
    paid_value_cents: Mapped[int]  # what the paid part was worth at the price paid
    overdrawn: Mapped[bool] = mapped_column(Boolean, default=False)  # it drove the balance below zero
    import_id: Mapped[int | None] = mapped_column(ForeignKey("usage_imports.id"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApprovalKind(enum.StrEnum):
    ADJUSTMENT = "adjustment"  # a goodwill grant (positive credits) or a correction debit (negative)
    REFUND = "refund"  # a refund above [credits] refund_approval_above_cents, sent when approved
    COMPLETION = "completion"  # a manual completion, when [credits] manual_completion_approval says so


class ApprovalStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for its approvals
    APPROVED = "approved"  # approved as often as needed, and booked
    REJECTED = "rejected"
    EXPIRED = "expired"  # nobody decided in time; it can no longer be approved


class Approval(Base):
    """A change one person proposes and others approve (four eyes); booked once, when the last approval comes."""

    __tablename__ = "approvals"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[ApprovalKind] = mapped_column(_enum(ApprovalKind, 16))
    status: Mapped[ApprovalStatus] = mapped_column(_enum(ApprovalStatus, 16), default=ApprovalStatus.PENDING)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    credits: Mapped[int]  # hundredths, signed
    pool: Mapped[CreditPool] = mapped_column(_enum(CreditPool, 12))
    reason: Mapped[str] = mapped_column(Text)  # staff's reason, in the audit log
    note: Mapped[str | None] = mapped_column(Text)  # what the customer is told
    proposed_by: Mapped[str] = mapped_column(String(320))
    proposed_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    approvals_needed: Mapped[int]
    approved_by: Mapped[list] = mapped_column(JSON, default=list)  # [{"email", "role", "at"}], in order
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(320))
    ledger_entry_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_entries.id"))
    # A refund or completion proposal: the order, the refund's amount, the provider reference given for a
    # manual completion, whether the refund may take back used credits, and the refund its approval made.
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))
    amount_cents: Mapped[int | None]
    reference: Mapped[str | None] = mapped_column(String(255))
    override: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    refund_id: Mapped[int | None] = mapped_column(ForeignKey("refunds.id"))

    __table_args__ = (
        Index("ix_approvals_status_proposed_at", "status", "proposed_at"),
        Index("ix_approvals_customer_id", "customer_id"),
        Index("ix_approvals_order_id", "order_id"),
    )


# --- bills review (billing_core.invoices.totals): kept in the transaction that issues each document ---


class BillsDaily(Base):
    """Issued invoices and credit notes per UTC day, plan, method, kind, series and sandbox flag.

    Days rather than months, so any issue-date range the bills review takes is answered exactly;
    a month is a sum of its days, and the rows grow with the days, not with the documents.
    """

    __tablename__ = "bills_daily"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    plan: Mapped[PlanId] = mapped_column(_enum(PlanId), primary_key=True)
    method: Mapped[Method] = mapped_column(_enum(Method), primary_key=True)
    kind: Mapped[InvoiceKind] = mapped_column(_enum(InvoiceKind), primary_key=True)
    series: Mapped[str] = mapped_column(String(40), primary_key=True)
    sandbox: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    documents: Mapped[int]
    subtotal_cents: Mapped[int]
    fee_cents: Mapped[int]
    tax_cents: Mapped[int]
    total_cents: Mapped[int]

    __table_args__ = {"sqlite_with_rowid": False}


class CheckStatus(enum.StrEnum):
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"


class InvoiceCheck(Base):
    """One deep check of the bills (invoices.deep_check): who ran it, when, how far it got, what it found."""

    __tablename__ = "invoice_checks"

    id: Mapped[int] = mapped_column(primary_key=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_by: Mapped[str] = mapped_column(String(320))
    status: Mapped[CheckStatus] = mapped_column(_enum(CheckStatus, 10), default=CheckStatus.RUNNING)
    done: Mapped[int] = mapped_column(default=0)  # steps finished of ``total``
    total: Mapped[int]
    finished_at: Mapped[datetime | None]
    result: Mapped[list | None] = mapped_column(JSON)  # one dict per check: name, count, examples, message
    error: Mapped[str | None] = mapped_column(Text)


# The mapper events that keep customers' text index in the same flush as every customer write; here,
# so that whoever can write a Customer has them.
from billing_core.orders import customer_index  # noqa: E402, F401
