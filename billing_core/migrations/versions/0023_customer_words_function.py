"""PostgreSQL: the customers' words index on a function the planner knows is costly to run row by row.

``ix_customers_search_words`` indexed ``string_to_array(btrim(search_text), ' ')``, which the planner
costs as two cheap built-ins: for a common whole word ("chloe", 5,428 of 125,000 customers) it weighed a
scan of the table, splitting every row's text until 201 matched, against the index and took the scan
when the two came out close (8 ms at 1,000,000 orders; the index: 1.5 ms). ``customer_search_words``
computes the same array, declared with COST 1000 (splitting a row's text is about 2 microseconds, a
thousand times an operator's unit cost), so the scan wins only for a word so common that the first 201
holders come within a few hundred rows. PL/pgSQL, as SQL functions are inlined and lose their cost.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-03 13:00:00.000000
"""

from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

WORDS_INDEX = "ix_customers_search_words"  # the expression of billing_core.orders.customer_index.words_column
WORDS_FUNCTION = """
CREATE FUNCTION customer_search_words(search_text text) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE COST 1000
AS $$ BEGIN RETURN string_to_array(btrim(search_text), ' '); END $$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(WORDS_FUNCTION)
    op.execute(f"DROP INDEX {WORDS_INDEX}")
    op.execute(f"CREATE INDEX {WORDS_INDEX} ON customers USING gin (customer_search_words(search_text))")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP INDEX {WORDS_INDEX}")
    op.execute(f"CREATE INDEX {WORDS_INDEX} ON customers USING gin (string_to_array(btrim(search_text), ' '))")
    op.execute("DROP FUNCTION customer_search_words(text)")
