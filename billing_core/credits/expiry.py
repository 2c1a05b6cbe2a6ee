"""Credit expiry, first in first out: paid credits unused ``[credits] paid_expiry_days`` after their top-up,
promotional ones ``promotional_expiry_days`` after their grant.

Each top-up (paid) and each goodwill grant (promotional) is a lot. Everything else a pool has seen —
usage, refunds, correction debits, earlier expiry, less what corrections gave back — is drawn from its
oldest lots first. What is left of a lot past its term expires: an ``expiry`` entry per customer and
pool, worth (paid) its share of what the customer's paid credits are worth; expired paid credits are
the roll-forward's breakage. ``plan`` says what would expire and whose (the dry run); ``book`` books it,
each customer under their balance lock with the plan recomputed there, audited; ``soon`` lists the
customers whose credits expire within ``notice_days``, for notice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from billing_core.access import audit
from billing_core.access.roles import Action, Actor, require
from billing_core.core import money
from billing_core.core.config import CreditPolicy
from billing_core.core.db import Database, transaction
from billing_core.core.models import CreditBalance, CreditPool, Customer, LedgerEntry, LedgerKind, utcnow
from billing_core.credits.ledger import _balance, _entry, _paid_value_taken, _post

IN_BATCH = 500


@dataclass(frozen=True)
class Expiring:
    customer_id: int
    public_id: str
    email: str
    pool: CreditPool
    credits: int  # hundredths that expire (or would)
    oldest: datetime  # the oldest lot that expires
    at: datetime  # when the first of them expires


def _lot(pool: CreditPool):
    if pool is CreditPool.PAID:
        return and_(LedgerEntry.pool == CreditPool.PAID, LedgerEntry.kind == LedgerKind.TOPUP)
    return and_(
        LedgerEntry.pool == CreditPool.PROMOTIONAL, LedgerEntry.kind == LedgerKind.ADJUSTMENT, LedgerEntry.credits > 0
    )


def _term(policy: CreditPolicy, pool: CreditPool) -> timedelta:
    return timedelta(days=policy.paid_expiry_days if pool is CreditPool.PAID else policy.promotional_expiry_days)


def _expiring(
    session: Session, customer_ids: list[int], pool: CreditPool, policy: CreditPolicy, until: datetime
) -> dict[int, tuple[int, datetime, datetime]]:
    """Per customer: credits of lots whose term ends by ``until`` still unused (FIFO), oldest lot, first end."""
    term = _term(policy, pool)
    found: dict[int, tuple[int, datetime, datetime]] = {}
    for start in range(0, len(customer_ids), IN_BATCH):
        chunk = customer_ids[start : start + IN_BATCH]
        lots: dict[int, list[tuple[datetime, int]]] = defaultdict(list)
        for cid, at, credits in session.execute(
            select(LedgerEntry.customer_id, LedgerEntry.created_at, LedgerEntry.credits)
            .where(LedgerEntry.customer_id.in_(chunk), _lot(pool))
            .order_by(LedgerEntry.customer_id, LedgerEntry.created_at, LedgerEntry.id)
        ):
            lots[cid].append((at, credits))
        drawn = dict(
            session.execute(
                select(LedgerEntry.customer_id, func.sum(LedgerEntry.credits))
                .where(LedgerEntry.customer_id.in_(chunk), LedgerEntry.pool == pool, ~_lot(pool))
                .group_by(LedgerEntry.customer_id)
            ).all()
        )
        for cid, held in lots.items():
            used = -int(drawn.get(cid) or 0)  # net debits: drawn from the oldest lots first
            expiring, oldest, first_end = 0, None, None
            for at, credits in held:
                left = credits - max(min(used, credits), 0)
                used -= credits
                if left > 0 and at + term <= until:
                    expiring += left
                    oldest = oldest or at
                    first_end = first_end or at + term
            if expiring > 0:
                found[cid] = (expiring, oldest, first_end)
    return found


def _holders(session: Session, pool: CreditPool) -> list[int]:
    """Customers holding credits of the pool now (the balances rollup), by id."""
    column = CreditBalance.paid_credits if pool is CreditPool.PAID else CreditBalance.promotional_credits
    return list(
        session.scalars(select(CreditBalance.customer_id).where(column > 0).order_by(CreditBalance.customer_id))
    )


def _lines(session: Session, policy: CreditPolicy, until: datetime) -> list[Expiring]:
    lines = []
    for pool in CreditPool:
        found = _expiring(session, _holders(session, pool), pool, policy, until)
        people = {}
        ids = sorted(found)
        for start in range(0, len(ids), IN_BATCH):
            chunk = ids[start : start + IN_BATCH]
            stmt = select(Customer.id, Customer.public_id, Customer.email).where(Customer.id.in_(chunk))
            people.update({r.id: r for r in session.execute(stmt)})
        for cid in ids:
            credits, oldest, at = found[cid]
            lines.append(Expiring(cid, people[cid].public_id, people[cid].email, pool, credits, oldest, at))
    return lines


def plan(session: Session, actor: Actor, policy: CreditPolicy, *, as_of: datetime | None = None) -> list[Expiring]:
    """What would expire at ``as_of`` (default now) and whose: the dry run; reads only."""
    require(actor, Action.EXPIRE_CREDITS)
    return _lines(session, policy, as_of or utcnow())


def soon(session: Session, actor: Actor, policy: CreditPolicy, *, as_of: datetime | None = None) -> list[Expiring]:
    """Customers whose credits expire after ``as_of`` but within ``notice_days``: who to tell."""
    require(actor, Action.READ_CREDITS)
    now = as_of or utcnow()
    due_now = {(x.customer_id, x.pool): x.credits for x in _lines(session, policy, now)}
    later = _lines(session, policy, now + timedelta(days=policy.notice_days))
    result = []
    for x in later:
        credits = x.credits - due_now.get((x.customer_id, x.pool), 0)
        if credits > 0:
            result.append(Expiring(x.customer_id, x.public_id, x.email, x.pool, credits, x.oldest, x.at))
    return result


@dataclass
class Booked:
    customers: int = 0
    credits: dict[CreditPool, int] | None = None
    breakage_cents: int = 0

    def summary(self) -> str:
        credits = self.credits or {}
        return (
            f"Expired {money.format_credits(credits.get(CreditPool.PAID, 0))} paid credits "
            f"(breakage {money.format_cents(self.breakage_cents)}) and "
            f"{money.format_credits(credits.get(CreditPool.PROMOTIONAL, 0))} promotional credits "
            f"of {self.customers:,} customers."
        )


def book(
    database: Database,
    actor: Actor,
    policy: CreditPolicy,
    *,
    as_of: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Booked:
    """Book the expiry the dry run shows: per customer, under their balance lock, the plan recomputed
    there (so usage booked meanwhile is drawn first), one ``expiry`` entry per pool; one audit event."""
    require(actor, Action.EXPIRE_CREDITS)
    now = as_of or utcnow()
    booked = Booked(credits={pool: 0 for pool in CreditPool})
    with database.session() as session:
        candidates = sorted({x.customer_id for x in _lines(session, policy, now)})
        expired: list[dict] = []
        with transaction(session):
            for done, cid in enumerate(candidates, start=1):
                balance = _balance(session, cid, lock=True)
                entries = []
                for pool in CreditPool:
                    found = _expiring(session, [cid], pool, policy, now).get(cid)
                    if not found:
                        continue
                    credits = min(found[0], max(balance.of(pool), 0))
                    if credits <= 0:
                        continue
                    value = _paid_value_taken(balance, credits) if pool is CreditPool.PAID else 0
                    note = f"credits unused since {found[1]:%Y-%m-%d} expired"
                    entries.append(
                        _entry(cid, LedgerKind.EXPIRY, pool, -credits, -value, by=actor.email, at=now, note=note)
                    )
                    booked.credits[pool] += credits
                    booked.breakage_cents += value
                    expired.append({"customer_id": cid, "pool": pool.value, "credits": credits, "value_cents": value})
                if entries:
                    _post(session, entries)
                    booked.customers += 1
                if progress:
                    progress(done, len(candidates))
            if expired:
                audit.record(
                    session,
                    actor,
                    Action.EXPIRE_CREDITS.value,
                    "credits",
                    now.date().isoformat(),
                    reason="expiry policy",
                    after={
                        "as_of": now.isoformat(),
                        "paid_credits": booked.credits[CreditPool.PAID],
                        "promotional_credits": booked.credits[CreditPool.PROMOTIONAL],
                        "breakage_cents": booked.breakage_cents,
                        "customers": booked.customers,
                        "entries": expired[:1000],
                    },
                )
    return booked
