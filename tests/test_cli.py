import json

from billing_core.cli.main import main


def test_quote_prints_json_with_exact_strings(capsys):
    assert main(["quote", "--amount", "$1,500.00", "--method", "stripe"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["plan"] == "max"
    assert (out["amount"], out["fee"], out["total"], out["credits"]) == ("1500.00", "82.50", "1582.50", "1500.00")


def test_quote_with_a_what_if_pricing_file(capsys, tmp_path):
    from billing_core.pricing.catalog import DEFAULT_PRICING_FILE

    other = tmp_path / "p.toml"
    other.write_text(DEFAULT_PRICING_FILE.read_text().replace('fee_rate = "0.03"', 'fee_rate = "0.02"'))
    assert main(["quote", "--amount", "100", "--method", "alipay", "--pricing", str(other)]) == 0
    assert json.loads(capsys.readouterr().out)["fee"] == "2.00"


def test_bad_amount_exits_non_zero_with_reason_on_stderr(capsys):
    assert main(["quote", "--amount", "-3", "--method", "stripe"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "negative" in captured.err


def test_bad_method_exits_non_zero(capsys):
    assert main(["quote", "--amount", "20", "--method", "cash"]) == 2
    assert "Unknown payment method" in capsys.readouterr().err


def test_settlement_import_previews_without_changing_anything(capsys, tmp_path):
    from pathlib import Path

    fixture = Path(__file__).parent / "fixtures" / "settlements" / "airwallex_2026-11-20.csv"
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert main(["migrate", "--database-url", url]) == 0
    assert main(["settlement", "import", str(fixture), "--database-url", url]) == 0
    out = capsys.readouterr().out
    assert "not found" in out and "preview only" in out


def test_reconcile_needs_a_range_or_events(capsys, tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert main(["migrate", "--database-url", url]) == 0
    assert main(["reconcile", "--database-url", url]) == 2
    assert "Give --since" in capsys.readouterr().err


def test_rollup_rebuild_recomputes_the_revenue_figures_and_audits(capsys, tmp_path):
    from sqlalchemy import select

    from billing_core.access.roles import Actor, Role
    from billing_core.core.db import Database
    from billing_core.core.models import AuditEvent, RevenueDaily
    from billing_core.demo import seeding as demo

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    database = Database(url)
    database.migrate()
    demo.seed(database, orders=800, seed=4, actor=Actor("ada@company.test", Role.ADMIN))
    with database.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM revenue_daily")  # a damaged rollup
    argv = ["rollup", "rebuild", "--timezones", "UTC,Asia/Tokyo", "--actor", "ops@company.test", "--reason", "fix"]
    assert main([*argv, "--database-url", url]) == 0
    assert "UTC, Asia/Tokyo" in capsys.readouterr().out
    with database.session() as s:
        assert {r.tz for r in s.scalars(select(RevenueDaily))} == {"UTC", "Asia/Tokyo"}
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "revenue.rebuild")).one()
        assert (event.actor_email, event.reason) == ("ops@company.test", "fix")
    database.dispose()


def test_rollup_rebuild_with_an_unknown_zone_changes_nothing(capsys, tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert main(["rollup", "rebuild", "--timezones", "UTC,Mars/Olympus", "--database-url", url]) == 2
    assert "'Mars/Olympus' is not an IANA time zone" in capsys.readouterr().err


def test_search_prints_customers_then_orders_as_json(capsys, tmp_path):
    from billing_core.access.roles import Actor, Role
    from billing_core.core.db import Database
    from billing_core.demo import seeding as demo

    url = f"sqlite:///{tmp_path / 'search.db'}"
    database = Database(url)
    database.migrate()
    demo.seed(database, orders=300, seed=2, actor=Actor("ada@company.test", Role.ADMIN))
    with database.session() as session:
        from sqlalchemy import select

        from billing_core.core.models import Customer

        someone = session.scalars(select(Customer).where(Customer.name.like("% %")).limit(1)).one()
    database.dispose()
    last = someone.name.split()[-1]
    assert main(["search", last, "--json", "--database-url", url]) == 0
    out = json.loads(capsys.readouterr().out)
    assert someone.email in {c["email"] for c in out["customers"]}
    assert out["orders"] and all("email" in o for o in out["orders"])
