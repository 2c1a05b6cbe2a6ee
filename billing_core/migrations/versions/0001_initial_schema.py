"""Initial schema: customers, orders, ledger, invoices and their series, audit events, simulated payments.

Revision ID: 0001
Revises:
Create Date: 2026-11-27 03:57:31.092524
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_email", sa.String(length=320), nullable=False),
        sa.Column(
            "actor_role",
            sa.Enum("support", "finance", "analyst", "admin", name="role", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("action", sa.String(length=60), nullable=False),
        sa.Column("entity_type", sa.String(length=40), nullable=False),
        sa.Column("entity_id", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index("ix_audit_events_at", ["at"], unique=False)
        batch_op.create_index("ix_audit_events_entity", ["entity_type", "entity_id"], unique=False)

    op.create_table(
        "customers",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("company", sa.String(length=200), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("tax_id", sa.String(length=40), nullable=True),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("sandbox", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customers")),
        sa.UniqueConstraint("email", name=op.f("uq_customers_email")),
        sa.UniqueConstraint("public_id", name=op.f("uq_customers_public_id")),
    )
    op.create_table(
        "invoice_series",
        sa.Column("series", sa.String(length=40), nullable=False),
        sa.Column("next_number", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.PrimaryKeyConstraint("series", name=op.f("pk_invoice_series")),
    )
    op.create_table(
        "simulated_payments",
        sa.Column("ref", sa.String(length=64), nullable=False),
        sa.Column("order_public_id", sa.String(length=32), nullable=False),
        sa.Column("amount_cents", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "requires_payment",
                "succeeded",
                "declined",
                "canceled",
                name="simulatedstatus",
                native_enum=False,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("refunded_cents", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("ref", name=op.f("pk_simulated_payments")),
    )
    with op.batch_alter_table("simulated_payments", schema=None) as batch_op:
        batch_op.create_index("ix_simulated_payments_order_public_id", ["order_public_id"], unique=False)

    op.create_table(
        "orders",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "plan",
            sa.Enum("study", "standard", "pro", "max", "custom", name="planid", native_enum=False, length=24),
            nullable=False,
        ),
        sa.Column("amount_cents", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("credits", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("fee_cents", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("total_cents", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column(
            "method",
            sa.Enum("stripe", "airwallex", "alipay", name="method", native_enum=False, length=24),
            nullable=False,
        ),
        sa.Column("provider_ref", sa.String(length=255), nullable=True),
        sa.Column("pricing_version", sa.String(length=40), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "paid",
                "failed",
                "expired",
                "cancelled",
                "refunded",
                "partially_refunded",
                name="orderstatus",
                native_enum=False,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("sandbox", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_by", sa.String(length=320), nullable=True),
        sa.Column("completion_reason", sa.Text(), nullable=True),
        sa.Column("paid_amount_cents", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], name=op.f("fk_orders_customer_id_customers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint("public_id", name=op.f("uq_orders_public_id")),
    )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index("ix_orders_created_at", ["created_at"], unique=False)
        batch_op.create_index("ix_orders_customer_id_created_at", ["customer_id", "created_at"], unique=False)
        batch_op.create_index("ix_orders_provider_ref", ["provider_ref"], unique=False)
        batch_op.create_index("ix_orders_status_created_at", ["status", "created_at"], unique=False)

    op.create_table(
        "invoices",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("number", sa.String(length=60), nullable=False),
        sa.Column("series", sa.String(length=40), nullable=False),
        sa.Column("sequence", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "kind", sa.Enum("invoice", "credit_note", name="invoicekind", native_enum=False, length=24), nullable=False
        ),
        sa.Column("order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("refers_to_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("subtotal_cents", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("fee_cents", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tax_cents", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("total_cents", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("seller", sa.JSON(), nullable=False),
        sa.Column("buyer", sa.JSON(), nullable=False),
        sa.Column("lines", sa.JSON(), nullable=False),
        sa.Column("template_version", sa.String(length=20), nullable=False),
        sa.Column("sandbox", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_invoices_order_id_orders")),
        sa.ForeignKeyConstraint(["refers_to_id"], ["invoices.id"], name=op.f("fk_invoices_refers_to_id_invoices")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoices")),
        sa.UniqueConstraint("number", name=op.f("uq_invoices_number")),
        sa.UniqueConstraint("series", "sequence", name="uq_invoices_series_sequence"),
    )
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.create_index("ix_invoices_issued_at", ["issued_at"], unique=False)
        batch_op.create_index(
            "uq_invoices_order_id_invoice",
            ["order_id"],
            unique=True,
            sqlite_where=sa.text("kind = 'invoice'"),
            postgresql_where=sa.text("kind = 'invoice'"),
        )

    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column(
            "kind",
            sa.Enum("topup", "refund", "adjustment", name="ledgerkind", native_enum=False, length=24),
            nullable=False,
        ),
        sa.Column("credits", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=320), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_ledger_entries_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_ledger_entries_order_id_orders")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entries")),
        sa.UniqueConstraint("order_id", "kind", name="uq_ledger_entries_order_id_kind"),
    )
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.create_index("ix_ledger_entries_customer_id", ["customer_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_entries_customer_id")

    op.drop_table("ledger_entries")
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_invoices_order_id_invoice",
            sqlite_where=sa.text("kind = 'invoice'"),
            postgresql_where=sa.text("kind = 'invoice'"),
        )
        batch_op.drop_index("ix_invoices_issued_at")

    op.drop_table("invoices")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index("ix_orders_status_created_at")
        batch_op.drop_index("ix_orders_provider_ref")
        batch_op.drop_index("ix_orders_customer_id_created_at")
        batch_op.drop_index("ix_orders_created_at")

    op.drop_table("orders")
    with op.batch_alter_table("simulated_payments", schema=None) as batch_op:
        batch_op.drop_index("ix_simulated_payments_order_public_id")

    op.drop_table("simulated_payments")
    op.drop_table("invoice_series")
    op.drop_table("customers")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_entity")
        batch_op.drop_index("ix_audit_events_at")

    op.drop_table("audit_events")
