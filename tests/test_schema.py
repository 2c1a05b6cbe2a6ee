from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select

from billing_core.core.db import MIGRATIONS, migrate
from billing_core.core.models import Base, CustomerTotal
from billing_core.demo import seeding as demo
from billing_core.orders.customer_index import DATABASE_ONLY_INDEXES, DATABASE_ONLY_TABLES


def _task_engine(name: str) -> bool:
    """procrastinate's own tables and indexes (team mode): its schema, applied by procrastinate itself in the
    same PostgreSQL database (billing_core.invoices.tasks), so neither our models nor our migrations hold it."""
    return name.startswith(("procrastinate_", "idx_procrastinate_"))


def _not_database_only(obj, name, type_, reflected, compare_to) -> bool:
    """The text index's FTS5 table (SQLite) and trigram and prefix indexes (PostgreSQL) have no model."""
    return name not in DATABASE_ONLY_TABLES | DATABASE_ONLY_INDEXES and not _task_engine(name)


def test_migrations_build_exactly_the_models_schema(db):
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": _not_database_only})
        assert compare_metadata(context, Base.metadata) == []


def test_the_only_objects_without_a_model_are_the_text_index(db):
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn)
        extra = {diff[1].name for diff in compare_metadata(context, Base.metadata) if not _task_engine(diff[1].name)}
    assert extra and extra <= DATABASE_ONLY_TABLES | DATABASE_ONLY_INDEXES


def test_migrating_twice_changes_nothing(db):
    migrate(db.engine)
    assert set(inspect(db.engine).get_table_names()) >= {t.name for t in Base.metadata.sorted_tables}


def test_lookup_indexes_exist(db):
    inspector = inspect(db.engine)
    order_indexes = {tuple(ix["column_names"]) for ix in inspector.get_indexes("orders")}
    assert {
        ("created_at",),
        ("status", "created_at"),
        ("customer_id", "created_at", "id"),
        ("provider_ref",),
    } <= order_indexes
    unique = {tuple(c["column_names"]) for c in inspector.get_unique_constraints("orders")}
    unique |= {tuple(ix["column_names"]) for ix in inspector.get_indexes("orders") if ix.get("unique")}
    assert ("public_id",) in unique
    customer_unique = {tuple(c["column_names"]) for c in inspector.get_unique_constraints("customers")}
    customer_unique |= {tuple(ix["column_names"]) for ix in inspector.get_indexes("customers") if ix.get("unique")}
    assert ("email",) in customer_unique


def test_customer_totals_migration_fills_them_from_the_monthly_rollup(db, admin):
    demo.seed(db, orders=3000, seed=2, actor=admin)
    with db.session() as s:
        seeded = sorted(tuple(r) for r in s.execute(select(CustomerTotal.__table__)).all())
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0005")
    assert "customer_totals" not in inspect(db.engine).get_table_names()
    migrate(db.engine)
    with db.session() as s:
        assert sorted(tuple(r) for r in s.execute(select(CustomerTotal.__table__)).all()) == seeded
    assert len(seeded) > 100


def test_the_simulators_sandbox_customers_are_read_by_their_own_index(db, admin):
    """The list the top-up simulator shows: a full read of customers before (0.15 s at 1,250,000 customers on
    PostgreSQL). Whatever the table's size, each planner can answer the query from the partial index, whose
    predicate is what ``Customer.sandbox.is_(True)`` compiles to there."""
    from sqlalchemy import event, text

    from billing_core.orders import lifecycle

    seen = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if "FROM customers" in statement:
            seen.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        with db.session() as session:
            lifecycle.sandbox_customers(session, admin)
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    [(statement, parameters)] = seen
    with db.engine.connect() as conn:
        raw = conn.connection.dbapi_connection.cursor()
        if db.engine.dialect.name == "postgresql":
            raw.execute("SET enable_seqscan = off")  # an empty table: ask whether the index can answer at all
            raw.execute(f"EXPLAIN {statement}", parameters)
        else:
            raw.execute(f"EXPLAIN QUERY PLAN {statement}", parameters)
        plan = " ".join(str(row) for row in raw.fetchall())
        raw.close()
        conn.execute(text("SELECT 1"))
    assert "ix_customers_sandbox_created_at" in plan, plan
