from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from billing_core.db import migrate
from billing_core.models import Base


def test_migrations_build_exactly_the_models_schema(db):
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn)
        assert compare_metadata(context, Base.metadata) == []


def test_migrating_twice_changes_nothing(db):
    migrate(db.engine)
    assert set(inspect(db.engine).get_table_names()) >= {t.name for t in Base.metadata.sorted_tables}


def test_lookup_indexes_exist(db):
    inspector = inspect(db.engine)
    order_indexes = {tuple(ix["column_names"]) for ix in inspector.get_indexes("orders")}
    assert {
        ("created_at",),
        ("status", "created_at"),
        ("customer_id", "created_at"),
        ("provider_ref",),
    } <= order_indexes
    unique = {tuple(c["column_names"]) for c in inspector.get_unique_constraints("orders")}
    unique |= {tuple(ix["column_names"]) for ix in inspector.get_indexes("orders") if ix.get("unique")}
    assert ("public_id",) in unique
    customer_unique = {tuple(c["column_names"]) for c in inspector.get_unique_constraints("customers")}
    customer_unique |= {tuple(ix["column_names"]) for ix in inspector.get_indexes("customers") if ix.get("unique")}
    assert ("email",) in customer_unique
