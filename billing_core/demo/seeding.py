"""Demo data: about two years of believable top-ups, generated from a seed and bulk-loaded.

Nothing reads the clock: every row derives from the seed, the size and the fixed anchor
``DATA_END`` (2026-11-27 00:00 UTC, exclusive, so the data ends on 2026-11-26 at 23:59 UTC). The
same seed and size therefore give identical rows, public ids and timestamps included. Prices come
from ``quote()``: each distinct (amount, method) pair is quoted once and mapped onto its orders.
"""

from __future__ import annotations

import enum
import gc
import json
import os
import sqlite3
import sys
import time
from bisect import bisect_right
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from billing_core.access import audit
from billing_core.access.roles import Action, Actor, require
from billing_core.core import money
from billing_core.core.config import Settings
from billing_core.core.db import Database
from billing_core.core.errors import BillingError, StateConflict
from billing_core.core.models import (
    InvoiceKind,
    InvoiceSeries,
    LedgerKind,
    OrderStatus,
    RefundStatus,
    RevenueState,
    SimulatedStatus,
)
from billing_core.credits import demo as credits_demo
from billing_core.invoices import totals as bills_totals
from billing_core.invoices.issuing import TEMPLATE_VERSION, credit_note_lines
from billing_core.invoices.numbering import format_number, series_name
from billing_core.orders import customer_index
from billing_core.pricing.catalog import Method, PlanId, Pricing, quote
from billing_core.revenue import rollup

DATA_END = datetime(2026, 11, 27, tzinfo=UTC)
SPAN_DAYS = 730
FIRST_RUN_ORDERS = 20_000
ORDERS_PER_CUSTOMER = 8
# Who completed a seeded paid order: the gateway's webhook, as in production.
GATEWAY_ACTOR = "system:gateway-webhook"
COMPLETION_REASON = "payment succeeded at the gateway"

_US = 1_000_000
_DAY_US = 86_400 * _US
_END_US = int(DATA_END.timestamp()) * _US
_START_US = _END_US - SPAN_DAYS * _DAY_US
_TTL_US = _DAY_US  # orders.ORDER_TTL
_CHUNK = 50_000
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SeedReport:
    customers: int
    orders: int
    paid: int
    invoices: int
    ledger_entries: int
    seconds: float
    refunds: int = 0
    credit_notes: int = 0


# --- what can happen to an order -----------------------------------------------------------------


class Case(enum.IntEnum):
    """The outcomes support meets; each maps to an order status and the gateway's own record."""

    PAID = 0
    PENDING_PAID = 1  # pending here, but the gateway took the money (a lost webhook)
    PENDING_UNPAID = 2
    FAILED = 3
    EXPIRED_UNPAID = 4
    EXPIRED_PAID = 5  # expired here, paid at the gateway: still completable
    CANCELLED = 6
    REFUNDED = 7  # refunded in full by finance: a refund, a credit note, the credits taken back
    PARTIALLY_REFUNDED = 8  # part of the money back, credits taken back in proportion


_CASE_SHARE = np.array([0.87, 0.02, 0.03, 0.03, 0.014, 0.006, 0.01, 0.015, 0.005])
_CASE_STATUS = [
    OrderStatus.PAID,
    OrderStatus.PENDING,
    OrderStatus.PENDING,
    OrderStatus.FAILED,
    OrderStatus.EXPIRED,
    OrderStatus.EXPIRED,
    OrderStatus.CANCELLED,
    OrderStatus.REFUNDED,
    OrderStatus.PARTIALLY_REFUNDED,
]
_CASE_GATEWAY = [
    SimulatedStatus.SUCCEEDED,
    SimulatedStatus.SUCCEEDED,
    SimulatedStatus.REQUIRES_PAYMENT,
    SimulatedStatus.DECLINED,
    SimulatedStatus.REQUIRES_PAYMENT,
    SimulatedStatus.SUCCEEDED,
    SimulatedStatus.CANCELED,
    SimulatedStatus.SUCCEEDED,
    SimulatedStatus.SUCCEEDED,  # a refund leaves the payment succeeded; the gateway counts refunded_cents
]
# Share of each case that reached the gateway (has a provider reference).
_CASE_HAS_REF = np.array([1.0, 1.0, 0.75, 1.0, 0.6, 1.0, 0.5, 1.0, 1.0])
_REFUNDED_CASES = (Case.REFUNDED, Case.PARTIALLY_REFUNDED)
# Who refunds and why, as finance types it into the refund form.
_REFUNDERS = ["fay.okafor@company.test", "lucas.meyer@company.test", "mei.lin@company.test", "finance@company.test"]
_FULL_REFUND_REASONS = [
    "customer asked for a refund",
    "duplicate purchase",
    "charged twice: customer paid again after a timeout",
    "bought the wrong plan",
    "unused credits, refunded within 14 days",
    "chargeback threatened; refunded instead",
]
_PARTIAL_REFUND_REASONS = [
    "partial refund: unused credits",
    "goodwill credit after the outage",
    "meant to buy a smaller plan; refunded the difference",
    "refund of the processing fee and part of the top-up",
]
_FAILURES = [
    "Your card was declined.",
    "Insufficient funds.",
    "The card issuer declined the payment (do_not_honor).",
    "3-D Secure authentication failed.",
]

# Plan mix by count: Pro is the largest by revenue, Study and Standard by count.
_PLAN_SHARE = {"study": 0.30, "standard": 0.30, "pro": 0.17, "max": 0.04, "custom": 0.19}
_METHODS = [Method.STRIPE, Method.AIRWALLEX, Method.ALIPAY]
# Custom amounts are what people type: whole dollars, rounder as they grow, mostly small.
_CUSTOM_DOLLARS = np.concatenate([np.arange(5, 100), np.arange(100, 1000, 5), np.arange(1000, 25001, 50)])
_WEEKDAY_WEIGHT = np.array([1.05, 1.1, 1.1, 1.05, 1.0, 0.68, 0.62])  # Monday first
_HOUR_WEIGHT = np.array([3, 2, 2, 2, 2, 3, 4, 5, 6, 7, 8, 8, 8, 8, 8, 8, 7, 7, 6, 6, 5, 5, 4, 4], dtype=float)

# --- people --------------------------------------------------------------------------------------

# script: (share, name order, [(first, latin, gender)], [(last masculine, last feminine, latin)], countries)
_SCRIPTS: dict[str, tuple] = {
    "latin": (
        0.34,
        "{f} {l}",
        [
            ("James", "james", "m"),
            ("Mary", "mary", "f"),
            ("Olivia", "olivia", "f"),
            ("Liam", "liam", "m"),
            ("Noah", "noah", "m"),
            ("Emma", "emma", "f"),
            ("Ethan", "ethan", "m"),
            ("Grace", "grace", "f"),
            ("Henry", "henry", "m"),
            ("Chloe", "chloe", "f"),
            ("Daniel", "daniel", "m"),
            ("Priya", "priya", "f"),
        ],
        [
            ("Smith", "Smith", "smith"),
            ("Johnson", "Johnson", "johnson"),
            ("Brown", "Brown", "brown"),
            ("Taylor", "Taylor", "taylor"),
            ("Walker", "Walker", "walker"),
            ("Wright", "Wright", "wright"),
            ("Green", "Green", "green"),
            ("Nelson", "Nelson", "nelson"),
            ("Carter", "Carter", "carter"),
            ("Tan", "Tan", "tan"),
        ],
        {"US": 0.45, "GB": 0.2, "CA": 0.1, "AU": 0.1, "NL": 0.05, "IE": 0.05, "SG": 0.05},
    ),
    "accented": (
        0.18,
        "{f} {l}",
        [
            ("José", "jose", "m"),
            ("Zoë", "zoe", "f"),
            ("François", "francois", "m"),
            ("Chloé", "chloe", "f"),
            ("Jürgen", "juergen", "m"),
            ("Søren", "soren", "m"),
            ("Łukasz", "lukasz", "m"),
            ("Inês", "ines", "f"),
            ("Renée", "renee", "f"),
            ("Björn", "bjorn", "m"),
            ("Mónica", "monica", "f"),
            ("Agnès", "agnes", "f"),
        ],
        [
            ("García", "García", "garcia"),
            ("Müller", "Müller", "mueller"),
            ("Lefèvre", "Lefèvre", "lefevre"),
            ("Núñez", "Núñez", "nunez"),
            ("Sørensen", "Sørensen", "sorensen"),
            ("Wójcik", "Wójcik", "wojcik"),
            ("Gonçalves", "Gonçalves", "goncalves"),
            ("Håkansson", "Håkansson", "hakansson"),
            ("Schröder", "Schröder", "schroeder"),
            ("Jiménez", "Jiménez", "jimenez"),
        ],
        {"DE": 0.35, "FR": 0.3, "ES": 0.15, "PT": 0.05, "PL": 0.1, "SE": 0.05},
    ),
    "cyrillic": (
        0.07,
        "{f} {l}",
        [
            ("Алексей", "aleksei", "m"),
            ("Мария", "maria", "f"),
            ("Дмитрий", "dmitrii", "m"),
            ("Анна", "anna", "f"),
            ("Иван", "ivan", "m"),
            ("Ольга", "olga", "f"),
            ("Сергей", "sergei", "m"),
            ("Екатерина", "ekaterina", "f"),
        ],
        [
            ("Иванов", "Иванова", "ivanov"),
            ("Смирнов", "Смирнова", "smirnov"),
            ("Кузнецов", "Кузнецова", "kuznetsov"),
            ("Соколов", "Соколова", "sokolov"),
            ("Попов", "Попова", "popov"),
            ("Морозов", "Морозова", "morozov"),
        ],
        {"KZ": 0.4, "BG": 0.2, "RS": 0.2, "UA": 0.2},
    ),
    "greek": (
        0.04,
        "{f} {l}",
        [
            ("Γιώργος", "giorgos", "m"),
            ("Μαρία", "maria", "f"),
            ("Νίκος", "nikos", "m"),
            ("Ελένη", "eleni", "f"),
            ("Κώστας", "kostas", "m"),
            ("Κατερίνα", "katerina", "f"),
        ],
        [
            ("Παπαδόπουλος", "Παπαδοπούλου", "papadopoulos"),
            ("Γεωργίου", "Γεωργίου", "georgiou"),
            ("Οικονόμου", "Οικονόμου", "oikonomou"),
            ("Καραγιάννης", "Καραγιάννη", "karagiannis"),
            ("Βασιλείου", "Βασιλείου", "vasileiou"),
        ],
        {"GR": 0.8, "CY": 0.2},
    ),
    "chinese": (
        0.14,
        "{l}{f}",
        [
            ("伟", "wei", "m"),
            ("芳", "fang", "f"),
            ("娜", "na", "f"),
            ("磊", "lei", "m"),
            ("静", "jing", "f"),
            ("晓明", "xiaoming", "m"),
            ("子涵", "zihan", "f"),
            ("浩然", "haoran", "m"),
        ],
        [
            ("王", "王", "wang"),
            ("李", "李", "li"),
            ("张", "张", "zhang"),
            ("刘", "刘", "liu"),
            ("陈", "陈", "chen"),
            ("杨", "杨", "yang"),
            ("黄", "黄", "huang"),
            ("赵", "赵", "zhao"),
        ],
        {"CN": 0.6, "TW": 0.15, "HK": 0.1, "SG": 0.15},
    ),
    "japanese": (
        0.09,
        "{l} {f}",
        [
            ("翔太", "shota", "m"),
            ("陽菜", "hina", "f"),
            ("大輔", "daisuke", "m"),
            ("さくら", "sakura", "f"),
            ("健一", "kenichi", "m"),
            ("美咲", "misaki", "f"),
        ],
        [
            ("佐藤", "佐藤", "sato"),
            ("鈴木", "鈴木", "suzuki"),
            ("高橋", "高橋", "takahashi"),
            ("田中", "田中", "tanaka"),
            ("渡辺", "渡辺", "watanabe"),
            ("山本", "山本", "yamamoto"),
        ],
        {"JP": 1.0},
    ),
    "korean": (
        0.07,
        "{l}{f}",
        [
            ("민준", "minjun", "m"),
            ("서연", "seoyeon", "f"),
            ("지훈", "jihoon", "m"),
            ("하은", "haeun", "f"),
            ("도윤", "doyoon", "m"),
            ("지우", "jiwoo", "f"),
        ],
        [
            ("김", "김", "kim"),
            ("이", "이", "lee"),
            ("박", "박", "park"),
            ("최", "최", "choi"),
            ("정", "정", "jung"),
            ("강", "강", "kang"),
        ],
        {"KR": 1.0},
    ),
    "arabic": (
        0.07,
        "{f} {l}",
        [
            ("محمد", "mohammed", "m"),
            ("فاطمة", "fatima", "f"),
            ("أحمد", "ahmed", "m"),
            ("مريم", "maryam", "f"),
            ("عمر", "omar", "m"),
            ("ليلى", "layla", "f"),
        ],
        [
            ("العلي", "العلي", "alali"),
            ("الحسن", "الحسن", "alhassan"),
            ("المنصوري", "المنصوري", "almansoori"),
            ("الحربي", "الحربي", "alharbi"),
            ("الخطيب", "الخطيب", "alkhatib"),
        ],
        {"AE": 0.5, "SA": 0.3, "EG": 0.2},
    ),
}
SCRIPTS = tuple(_SCRIPTS)

# Company name stems per script: (native, latin slug for the email domain).
_STEMS = {
    "latin": [("Northwind", "northwind"), ("Bluefin", "bluefin"), ("Brightpath", "brightpath"), ("Lumen", "lumen")],
    "accented": [("Vektor", "vektor"), ("Hélix", "helix"), ("Atlântico", "atlantico"), ("Nordlicht", "nordlicht")],
    "cyrillic": [("Вектор", "vektor"), ("Альфа Дата", "alfadata"), ("Северный Код", "severcode")],
    "greek": [("Ήλιος", "ilios"), ("Ωκεανός", "okeanos"), ("Πρόοδος", "proodos")],
    "chinese": [("星河", "xinghe"), ("云帆", "yunfan"), ("智源", "zhiyuan"), ("天启", "tianqi")],
    "japanese": [("未来技研", "miraigiken"), ("青空データ", "aozoradata"), ("光速ラボ", "kosokulab")],
    "korean": [("한빛소프트", "hanbitsoft"), ("누리데이터", "nuridata"), ("미래랩", "miraelab")],
    "arabic": [("النور للتقنية", "alnoortech"), ("الأفق الرقمي", "digitalhorizon")],
}
_COMPANY_SHARE = 0.35
_PERSONAL_DOMAINS = ["example.com", "example.net", "example.org", "mail.test"]


def _digits(n: int, width: int) -> str:
    return f"{n % 10**width:0{width}d}"


_CN_CODE = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def _cn_credit_code(n: int) -> str:
    chars = []
    for _ in range(16):
        n, r = divmod(n, len(_CN_CODE))
        chars.append(_CN_CODE[r])
    return "91" + "".join(chars)


# country: (name, address format, streets, cities, postcode pattern ('#' = digit), company format, tax id)
_COUNTRIES: dict[str, tuple] = {
    "US": (
        "United States",
        "{n} {street}, {city} {zip}",
        ["Market Street", "Main Street", "Broadway", "Elm Avenue"],
        ["San Francisco, CA", "Austin, TX", "New York, NY", "Seattle, WA"],
        "#####",
        "{s} Inc.",
        lambda r: f"{_digits(r, 2)}-{_digits(r // 100, 7)}",
    ),
    "GB": (
        "United Kingdom",
        "{n} {street}, {city} {zip}",
        ["High Street", "Baker Street", "King's Road"],
        ["London", "Manchester", "Edinburgh"],
        "EC# #AB",
        "{s} Ltd",
        lambda r: "GB" + _digits(r, 9),
    ),
    "CA": (
        "Canada",
        "{n} {street}, {city} {zip}",
        ["Queen Street W", "Yonge Street"],
        ["Toronto, ON"],
        "M5V #A#",
        "{s} Inc.",
        None,
    ),
    "AU": (
        "Australia",
        "{n} {street}, {city} {zip}",
        ["George Street", "Collins Street"],
        ["Sydney NSW", "Melbourne VIC"],
        "####",
        "{s} Pty Ltd",
        lambda r: f"{_digits(r, 2)} {_digits(r // 100, 3)} {_digits(r // 10**5, 3)} {_digits(r // 10**8, 3)}",
    ),
    "NL": (
        "Netherlands",
        "{street} {n}, {zip} {city}",
        ["Herengracht", "Keizersgracht"],
        ["Amsterdam", "Utrecht"],
        "#### AB",
        "{s} B.V.",
        lambda r: "NL" + _digits(r, 9) + "B01",
    ),
    "IE": (
        "Ireland",
        "{n} {street}, {city} {zip}",
        ["Grafton Street", "Dame Street"],
        ["Dublin"],
        "D0#",
        "{s} Ltd",
        lambda r: "IE" + _digits(r, 7) + "A",
    ),
    "SG": (
        "Singapore",
        "{n} {street}, Singapore {zip}",
        ["Orchard Road", "Robinson Road"],
        ["Singapore"],
        "######",
        "{s} Pte. Ltd.",
        None,
    ),
    "DE": (
        "Deutschland",
        "{street} {n}, {zip} {city}",
        ["Hauptstraße", "Friedrichstraße", "Königsallee"],
        ["Berlin", "München", "Düsseldorf"],
        "#####",
        "{s} GmbH",
        lambda r: "DE" + _digits(r, 9),
    ),
    "FR": (
        "France",
        "{n} {street}, {zip} {city}",
        ["rue de la Paix", "avenue des Champs-Élysées", "rue Sainte-Catherine"],
        ["Paris", "Lyon", "Bordeaux"],
        "#####",
        "{s} SAS",
        lambda r: "FR" + _digits(r, 2) + _digits(r // 100, 9),
    ),
    "ES": (
        "España",
        "{street} {n}, {zip} {city}",
        ["Calle de Alcalá", "Passeig de Gràcia"],
        ["Madrid", "Barcelona"],
        "#####",
        "{s} S.L.",
        lambda r: "ESB" + _digits(r, 8),
    ),
    "PT": (
        "Portugal",
        "{street} {n}, {zip} {city}",
        ["Rua Augusta", "Avenida da Liberdade"],
        ["Lisboa", "Porto"],
        "####-###",
        "{s} Lda",
        lambda r: "PT" + _digits(r, 9),
    ),
    "PL": (
        "Polska",
        "ul. {street} {n}, {zip} {city}",
        ["Marszałkowska", "Piotrkowska"],
        ["Warszawa", "Łódź", "Kraków"],
        "##-###",
        "{s} sp. z o.o.",
        lambda r: "PL" + _digits(r, 10),
    ),
    "SE": (
        "Sverige",
        "{street} {n}, {zip} {city}",
        ["Drottninggatan", "Kungsgatan"],
        ["Stockholm", "Göteborg"],
        "### ##",
        "{s} AB",
        lambda r: "SE" + _digits(r, 10) + "01",
    ),
    "KZ": (
        "Қазақстан",
        "ул. {street}, {n}, {city}, {zip}",
        ["Абая", "Достык"],
        ["Алматы", "Астана"],
        "######",
        "ТОО «{s}»",
        None,
    ),
    "BG": (
        "България",
        "ул. {street} {n}, {zip} {city}",
        ["Витоша", "Раковски"],
        ["София", "Пловдив"],
        "####",
        "{s} ЕООД",
        None,
    ),
    "RS": (
        "Србија",
        "{street} {n}, {zip} {city}",
        ["Кнез Михаилова", "Булевар краља Александра"],
        ["Београд"],
        "#####",
        "{s} д.о.о.",
        None,
    ),
    "UA": (
        "Україна",
        "вул. {street}, {n}, {city}, {zip}",
        ["Хрещатик", "Дерибасівська"],
        ["Київ", "Одеса"],
        "#####",
        "ТОВ «{s}»",
        None,
    ),
    "GR": (
        "Ελλάδα",
        "{street} {n}, {zip} {city}",
        ["Ερμού", "Πανεπιστημίου"],
        ["Αθήνα", "Θεσσαλονίκη"],
        "### ##",
        "{s} Α.Ε.",
        lambda r: "EL" + _digits(r, 9),
    ),
    "CY": (
        "Κύπρος",
        "{street} {n}, {zip} {city}",
        ["Μακαρίου", "Ληδρας"],
        ["Λευκωσία", "Λεμεσός"],
        "####",
        "{s} Λτδ",
        lambda r: "CY" + _digits(r, 8) + "L",
    ),
    "CN": (
        "中国",
        "{city}{street}{n}号 {zip}",
        ["南京西路", "中关村大街", "深南大道"],
        ["上海市静安区", "北京市海淀区", "深圳市南山区"],
        "######",
        "{s}科技有限公司",
        _cn_credit_code,
    ),
    "TW": (
        "台灣",
        "{city}{street}{n}號 {zip}",
        ["信義路五段", "忠孝東路四段"],
        ["台北市信義區", "台北市大安區"],
        "###",
        "{s}科技股份有限公司",
        None,
    ),
    "HK": (
        "香港",
        "{city}{street}{n}號",
        ["皇后大道中", "軒尼詩道"],
        ["香港中環", "香港灣仔"],
        "",
        "{s}科技有限公司",
        None,
    ),
    "JP": (
        "日本",
        "〒{zip} {city}{street}{n}",
        ["丸の内1-", "渋谷2-", "梅田3-"],
        ["東京都千代田区", "東京都渋谷区", "大阪府大阪市北区"],
        "###-####",
        "株式会社{s}",
        lambda r: "T" + _digits(r, 13),
    ),
    "KR": (
        "대한민국",
        "{city} {street} {n}, {zip}",
        ["테헤란로", "세종대로"],
        ["서울특별시 강남구", "서울특별시 중구"],
        "#####",
        "주식회사 {s}",
        lambda r: f"{_digits(r, 3)}-{_digits(r // 1000, 2)}-{_digits(r // 10**5, 5)}",
    ),
    "AE": (
        "الإمارات العربية المتحدة",
        "{street} {n}، {city}",
        ["شارع الشيخ زايد", "شارع الكورنيش"],
        ["دبي", "أبوظبي"],
        "",
        "{s} ذ.م.م",
        lambda r: "100" + _digits(r, 12),
    ),
    "SA": (
        "المملكة العربية السعودية",
        "{street} {n}، {city} {zip}",
        ["طريق الملك فهد", "شارع التحلية"],
        ["الرياض", "جدة"],
        "#####",
        "شركة {s}",
        lambda r: "3" + _digits(r, 13) + "3",
    ),
    "EG": ("مصر", "{n} {street}، {city}", ["شارع التحرير", "شارع النيل"], ["القاهرة", "الجيزة"], "", "شركة {s}", None),
}


# --- generation ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Same:
    """A column with one value for every row: inlined into the INSERT on SQLite, not bound per row."""

    value: object


@dataclass(frozen=True)
class Derived:
    """A column SQLite computes from the row's other columns (``sql``, naming them in braces),
    so it is neither built nor bound per row there; ``values`` are what COPY sends to PostgreSQL."""

    sql: str
    values: object


def _json(value: object) -> str:
    """JSON text as stored in JSON columns (compact; the ORM reads it back to the same dicts)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@dataclass
class Table:
    """Columns ready for a bulk load: ints and timestamps (µs since epoch) as numpy, the rest lists."""

    name: str
    columns: dict[str, object]
    timestamps: frozenset[str] = frozenset()  # µs since the epoch; negative means NULL
    booleans: frozenset[str] = frozenset()
    nullable: frozenset[str] = frozenset()  # integer columns where negative means NULL
    # SQLite: an INSERT ... SELECT that derives exactly these rows from tables written before it,
    # run instead of binding every row (the same rows, computed in C without the GIL).
    sqlite_select: str | None = None
    sqlite_params: tuple = ()  # bound to sqlite_select

    def __len__(self) -> int:
        return next(len(v) for v in self.columns.values() if not isinstance(v, Same | Derived))  # type: ignore[arg-type]


@dataclass
class DemoData:
    customers: Table
    orders: Table
    payments: Table
    ledger: Table
    invoices: Table  # invoices and credit notes
    refunds: Table
    series: dict[str, int]  # series -> next number, invoices' and credit notes'
    paid: int
    credit_notes: int
    summary: dict
    facts: dict | None = None  # per-order arrays the revenue rollup is computed from (see rollup_tables)

    @property
    def tables(self) -> list[Table]:
        """In the order foreign keys need them: credit notes before refunds before refund entries."""
        return [self.customers, self.orders, self.payments, self.invoices, self.refunds, self.ledger]


def _hex_ids(rng: np.random.Generator, prefix: str, n: int) -> list[str]:
    """``prefix_`` + 16 hex digits each, like orders.new_public_id, unique, from the seeded RNG."""
    values = rng.integers(0, np.iinfo(np.int64).max, n, dtype=np.int64)
    while len(np.unique(values)) < n:
        _, first = np.unique(values, return_index=True)
        duplicates = np.setdiff1d(np.arange(n), first)
        values[duplicates] = rng.integers(0, np.iinfo(np.int64).max, len(duplicates), dtype=np.int64)
    nibbles = (values.view(np.uint64)[:, None] >> np.arange(60, -4, -4, dtype=np.uint64)) & np.uint64(15)
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)[nibbles.astype(np.intp)]
    return np.char.add(f"{prefix}_", np.ascontiguousarray(digits).view("S16").ravel().astype("U16")).tolist()


def _random_text(rng: np.random.Generator, alphabet: str, n: int, width: int) -> np.ndarray:
    """``n`` strings of ``width`` characters drawn from an ASCII ``alphabet``."""
    chars = np.frombuffer(alphabet.encode("ascii"), dtype=np.uint8)
    picks = np.ascontiguousarray(chars[rng.integers(0, len(alphabet), (n, width))])
    return picks.view(f"S{width}").ravel().astype(f"U{width}")


def _order_times(rng: np.random.Generator, n: int) -> np.ndarray:
    """Creation times (µs, sorted): tripling over the two years, weekdays busier, daytime busier."""
    day = np.arange(SPAN_DAYS)
    weekday = (day + datetime.fromtimestamp(_START_US // _US, UTC).weekday()) % 7
    weight = np.exp(np.log(3.0) * day / (SPAN_DAYS - 1)) * _WEEKDAY_WEIGHT[weekday]
    per_day = rng.multinomial(n, weight / weight.sum())
    days = np.repeat(day, per_day).astype(np.int64)
    hours = rng.choice(24, size=n, p=_HOUR_WEIGHT / _HOUR_WEIGHT.sum()).astype(np.int64)
    within = rng.integers(0, 3600 * _US, n)
    return np.sort(_START_US + days * _DAY_US + hours * 3600 * _US + within)


def _timestamps(us: np.ndarray) -> np.ndarray:
    """'YYYY-MM-DD HH:MM:SS.ffffff' (UTC), the text SQLAlchemy's DateTime stores on SQLite."""
    text = np.datetime_as_string(us.astype("datetime64[us]"), unit="us")
    if len(text):
        text.view("U1").reshape(len(text), -1)[:, 10] = " "
    return text


def _plan_name(plan: PlanId) -> str:
    return "custom amount" if plan is PlanId.CUSTOM else f"{plan.value.title()} plan"


def _lines_json(credits: int, amount_cents: int, fee_cents: int, method: Method, plan: PlanId) -> str:
    # The exact output of invoices.issuing.invoice_lines, serialised as SQLAlchemy's JSON type does.
    return _json(
        [
            {
                "description": f"AI model credits top-up ({_plan_name(plan)})",
                "quantity": f"{credits // 100}.{credits % 100:02d}",
                "unit": "credit",
                "amount_cents": amount_cents,
            },
            {
                "description": f"Payment processing fee ({method.value})",
                "quantity": "1",
                "unit": "fee",
                "amount_cents": fee_cents,
            },
        ]
    )


def _customers(rng: np.random.Generator, n: int, first_order_us: np.ndarray, id_offset: int) -> tuple[Table, dict]:
    scripts = list(_SCRIPTS)
    shares = np.array([_SCRIPTS[s][0] for s in scripts])
    script_of = rng.choice(len(scripts), size=n, p=shares / shares.sum())
    picks = rng.integers(0, 1 << 62, size=(n, 8), dtype=np.int64).tolist()
    has_company = (rng.random(n) < _COMPANY_SHARE).tolist()
    public_ids = _hex_ids(rng, "cus", n)
    created = np.maximum(first_order_us - rng.integers(60 * _US, 3 * _DAY_US, n), _START_US)

    country_pick = {}
    for script, (_, _, _, _, share) in _SCRIPTS.items():
        bounds = np.cumsum([round(v * 1000) for v in share.values()]).tolist()
        country_pick[script] = (list(share), bounds)
    emails, names, companies, countries, tax_ids, addresses, preferred = [], [], [], [], [], [], []
    buyers = []
    for i, (script_index, pick, company) in enumerate(zip(script_of.tolist(), picks, has_company, strict=True)):
        script = scripts[script_index]
        _, pattern, firsts, lasts, _ = _SCRIPTS[script]
        first, first_latin, gender = firsts[pick[0] % len(firsts)]
        last_m, last_f, last_latin = lasts[pick[1] % len(lasts)]
        name = pattern.format(f=first, l=last_f if gender == "f" else last_m)
        codes, bounds = country_pick[script]
        country = codes[min(bisect_right(bounds, pick[2] % 1000), len(codes) - 1)]
        cname, address_format, streets, cities, postcode, company_format, tax_format = _COUNTRIES[country]
        zip_digits = iter(_digits(pick[3], 12))
        address = address_format.format(
            n=1 + pick[4] % 180,
            street=streets[pick[5] % len(streets)],
            city=cities[pick[5] // 7 % len(cities)],
            zip="".join(next(zip_digits) if c == "#" else c for c in postcode),
        )
        if not address.endswith(cname) and country not in {"CN", "JP", "KR", "TW", "HK"}:
            address += f", {cname}"
        number = id_offset + i + 1
        company_name = tax_id = None
        domain = _PERSONAL_DOMAINS[pick[6] % len(_PERSONAL_DOMAINS)]
        if company:
            stem, slug = _STEMS[script][pick[6] % len(_STEMS[script])]
            company_name = company_format.format(s=stem)
            tax_id = tax_format(pick[7]) if tax_format else None
            domain = f"{slug}-{country.lower()}.test"
        email = f"{first_latin}.{last_latin}{number}@{domain}"
        if script == "chinese":
            preferred.append(2 if pick[7] % 10 < 7 else 0)
        else:
            preferred.append(0 if pick[7] % 20 < 13 else (1 if pick[7] % 20 < 18 else 2))
        emails.append(email)
        names.append(name)
        companies.append(company_name)
        countries.append(country)
        tax_ids.append(tax_id)
        addresses.append(address)
        buyers.append(
            _json(
                {
                    "customer": public_ids[i],
                    "name": name,
                    "email": email,
                    "company": company_name,
                    "country": country,
                    "tax_id": tax_id,
                    "address": address,
                }
            )
        )
    ids = np.arange(id_offset + 1, id_offset + n + 1, dtype=np.int64)
    table = Table(
        "customers",
        {
            "id": ids,
            "public_id": public_ids,
            "email": emails,
            "name": names,
            "company": companies,
            "country": countries,
            "tax_id": tax_ids,
            "address": addresses,
            "sandbox": Same(False),
            "created_at": created,
            "search_text": [
                customer_index.search_text(*fields) for fields in zip(names, companies, emails, tax_ids, strict=True)
            ],
        },
        timestamps=frozenset({"created_at"}),
        booleans=frozenset({"sandbox"}),
    )
    extra = {
        "buyer_json": buyers,
        "preferred_method": np.array(preferred),
        "script": script_of,
        "grams": _grams(ids, names, companies),
    }
    return table, extra


def _grams(ids: np.ndarray, names: list[str], companies: list[str | None]) -> Table:
    """customer_grams rows, in primary-key order (what the text index cannot find: short Han, kana, Hangul)."""
    pairs = sorted(
        (gram, customer_id)
        for customer_id, name, company in zip(ids.tolist(), names, companies, strict=True)
        for gram in customer_index.short_grams(name, company)
    )
    return Table(
        "customer_grams",
        {"gram": [g for g, _ in pairs], "customer_id": np.array([c for _, c in pairs], dtype=np.int64)},
    )


def generate(
    orders: int,
    seed: int,
    pricing: Pricing,
    settings: Settings,
    offsets: dict[str, int] | None = None,
) -> DemoData:
    """Every row of the demo, as columns. ``offsets`` are ids already taken per table."""
    for item in generate_stream(orders, seed, pricing, settings, offsets):
        if isinstance(item, DemoData):
            return item
    raise AssertionError("generate_stream ends with the DemoData")


def generate_stream(
    orders: int,
    seed: int,
    pricing: Pricing,
    settings: Settings,
    offsets: dict[str, int] | None = None,
) -> Iterator[Table | DemoData]:
    """``generate``, yielding each table as soon as it is complete (in foreign-key order), then the DemoData.

    The seed writes a table while the next is generated; the random draws are the same either way.
    """
    if orders < 1:
        raise ValueError("seed at least one order")
    offsets = offsets or {}
    rng = np.random.default_rng(seed)
    n = orders
    created = _order_times(rng, n)
    order_ids = np.arange(offsets.get("orders", 0) + 1, offsets.get("orders", 0) + n + 1, dtype=np.int64)

    # Customers: each one's first order is a random order, so sign-ups follow volume; later orders
    # go to earlier customers, loyal old ones more often.
    n_customers = max(1, n // ORDERS_PER_CUSTOMER)
    firsts = np.sort(np.concatenate([[0], rng.choice(np.arange(1, n), size=n_customers - 1, replace=False)]))
    known = np.searchsorted(firsts, np.arange(n), side="right")
    customer_of = np.floor(known * rng.random(n) ** 1.3).astype(np.int64)
    customer_of[firsts] = np.arange(n_customers)
    customers, people = _customers(rng, n_customers, created[firsts], offsets.get("customers", 0))
    yield customers
    yield people["grams"]
    customer_ids = customers.columns["id"][customer_of]  # type: ignore[index]

    # Method: the customer's usual one, sometimes another.
    method_index = people["preferred_method"][customer_of]
    switch = rng.random(n) < 0.15
    method_index[switch] = rng.integers(0, 3, int(switch.sum()))

    # Amount: a plan preset or a typed custom amount.
    plan_ids = list(_PLAN_SHARE)
    plan_pick = rng.choice(len(plan_ids), size=n, p=np.array(list(_PLAN_SHARE.values())))
    preset_cents = np.array([pricing.plan(p).amount_cents if p != "custom" else 0 for p in plan_ids], dtype=np.int64)
    custom_weight = np.exp(-((np.log(_CUSTOM_DOLLARS) - np.log(40)) ** 2) / (2 * 1.1**2)) / _CUSTOM_DOLLARS
    custom_weight *= np.r_[np.ones(95), np.full(180, 5.0), np.full(481, 50.0)]  # step widths
    custom_cents = _CUSTOM_DOLLARS[rng.choice(len(_CUSTOM_DOLLARS), size=n, p=custom_weight / custom_weight.sum())]
    amount = np.where(plan_pick == plan_ids.index("custom"), custom_cents * 100, preset_cents[plan_pick])
    amount = np.clip(amount, pricing.custom_min_cents, pricing.custom_max_cents).astype(np.int64)

    # Prices: quote() once per distinct (amount, method), mapped onto every order.
    keys, inverse = np.unique(amount * 3 + method_index, return_inverse=True)
    fee_by_key, credits_by_key, plan_by_key, lines_by_key = [], [], [], []
    plans = list(PlanId)
    for key in keys.tolist():
        method = _METHODS[key % 3]
        q = quote(key // 3, method, pricing)
        fee_by_key.append(q.fee_cents)
        credits_by_key.append(q.credits)
        plan_by_key.append(plans.index(q.plan))
        lines_by_key.append(_lines_json(q.credits, q.amount_cents, q.fee_cents, method, q.plan))
    fee = np.array(fee_by_key, dtype=np.int64)[inverse]
    credits = np.array(credits_by_key, dtype=np.int64)[inverse]
    plan_index = np.array(plan_by_key)[inverse]
    total = amount + fee

    # Outcomes. An order still inside its 24 hours cannot have expired yet: it is pending.
    case = rng.choice(len(Case), size=n, p=_CASE_SHARE / _CASE_SHARE.sum())
    expires = created + _TTL_US
    young = expires >= _END_US
    case[young & (case == Case.EXPIRED_UNPAID)] = Case.PENDING_UNPAID
    case[young & (case == Case.EXPIRED_PAID)] = Case.PENDING_PAID
    has_ref = rng.random(n) < _CASE_HAS_REF[case]

    last = _END_US - 1
    pay_delay = np.minimum(rng.lognormal(np.log(90), 1.0, n).astype(np.int64) * _US, _DAY_US - _US)
    paid_at = np.minimum(created + 5 * _US + pay_delay, last)
    # A refund comes at least a minute after the payment, within 30 days; an order paid in the
    # data's last hour has not been refunded yet.
    case[np.isin(case, _REFUNDED_CASES) & (paid_at > last - 3600 * _US)] = Case.PAID
    refund_window = np.maximum(np.minimum(30 * _DAY_US, last - paid_at) - 60 * _US, 0)
    refund_at = paid_at + 60 * _US + (rng.random(n) * refund_window).astype(np.int64)
    is_paid = (case == Case.PAID) | np.isin(case, _REFUNDED_CASES)
    gateway_paid = is_paid | (case == Case.PENDING_PAID) | (case == Case.EXPIRED_PAID)
    payment_created = np.minimum(created + rng.integers(2 * _US, 60 * _US, n), last)
    gateway_updated = np.where(gateway_paid, paid_at, np.minimum(payment_created + pay_delay, last))
    gateway_updated = np.where(np.isin(case, _REFUNDED_CASES), refund_at, gateway_updated)
    gateway_updated = np.where(case == Case.PENDING_UNPAID, payment_created, gateway_updated)
    gateway_updated = np.where(case == Case.EXPIRED_UNPAID, payment_created, gateway_updated)

    refs = _provider_refs(rng, method_index, created)
    provider_ref = np.where(has_ref, refs, None)
    status_text = np.array([s.value for s in _CASE_STATUS], dtype=object)[case]
    failure = np.where(case == Case.FAILED, np.array(_FAILURES, dtype=object)[rng.integers(0, len(_FAILURES), n)], None)
    order_public_ids = _hex_ids(rng, "ord", n)

    # Refunds, as refunds.refund_order records them: one per refunded order, in time order. A full
    # refund returns the whole total and takes back every credit; a partial one returns whole
    # dollars (10-90 % of the total) and takes back credits in proportion, half-up to the hundredth.
    ref_rows = np.flatnonzero(np.isin(case, _REFUNDED_CASES))
    ref_rows = ref_rows[np.lexsort((order_ids[ref_rows], refund_at[ref_rows]))]
    k = len(ref_rows)
    partial = case[ref_rows] == Case.PARTIALLY_REFUNDED
    share = rng.integers(10, 91, k)
    refund_amount = np.where(
        partial, np.clip(total[ref_rows] * share // 10_000 * 100, 100, total[ref_rows] - 1), total[ref_rows]
    )
    refund_credits = credits[ref_rows].copy()
    for j in np.flatnonzero(partial).tolist():
        paid_cents, cents, granted = int(total[ref_rows[j]]), int(refund_amount[j]), int(refund_credits[j])
        refund_credits[j] = min(granted, money.from_decimal(money.to_decimal(granted) * cents / paid_cents))
    refund_ids = np.arange(offsets.get("refunds", 0) + 1, offsets.get("refunds", 0) + k + 1, dtype=np.int64)
    refund_by = np.array(_REFUNDERS, dtype=object)[rng.integers(0, len(_REFUNDERS), k)]
    full_reason = np.array(_FULL_REFUND_REASONS, dtype=object)[rng.integers(0, len(_FULL_REFUND_REASONS), k)]
    partial_reason = np.array(_PARTIAL_REFUND_REASONS, dtype=object)[rng.integers(0, len(_PARTIAL_REFUND_REASONS), k)]
    refund_reason = np.where(partial, partial_reason, full_reason)
    refunded_cents = np.zeros(n, dtype=np.int64)
    refunded_cents[ref_rows] = refund_amount

    orders_table = Table(
        "orders",
        {
            "id": order_ids,
            "public_id": order_public_ids,
            "customer_id": customer_ids,
            "plan": np.array([p.value for p in plans], dtype=object)[plan_index].tolist(),
            "amount_cents": amount,
            "credits": credits,
            "fee_cents": fee,
            "total_cents": total,
            "currency": Same("USD"),
            "method": np.array([m.value for m in _METHODS], dtype=object)[method_index].tolist(),
            "provider_ref": provider_ref.tolist(),
            "pricing_version": Same(pricing.version),
            "status": status_text.tolist(),
            "sandbox": Same(False),
            "created_at": created,
            "expires_at": expires,
            "paid_at": np.where(is_paid, paid_at, -1),
            # Every seeded payment was completed by the gateway's webhook at the moment it was paid.
            "completed_at": Derived("{paid_at}", np.where(is_paid, paid_at, -1)),
            "completed_by": Derived(
                f"CASE WHEN {{paid_at}} IS NULL THEN NULL ELSE '{GATEWAY_ACTOR}' END",
                np.where(is_paid, GATEWAY_ACTOR, None).tolist(),
            ),
            "completion_reason": Derived(
                f"CASE WHEN {{paid_at}} IS NULL THEN NULL ELSE '{COMPLETION_REASON}' END",
                np.where(is_paid, COMPLETION_REASON, None).tolist(),
            ),
            "paid_amount_cents": Derived(
                "CASE WHEN {paid_at} IS NULL THEN NULL ELSE {total_cents} END", np.where(is_paid, total, -1)
            ),
            "failure_reason": failure.tolist(),
        },
        timestamps=frozenset({"created_at", "expires_at", "paid_at", "completed_at"}),
        booleans=frozenset({"sandbox"}),
        nullable=frozenset({"paid_amount_cents"}),
    )

    yield orders_table

    gateway_status = np.array([s.value for s in _CASE_GATEWAY], dtype=object)[case]
    # The gateway's rows go in sorted by ref, its primary key: appending to that index instead of
    # inserting at random places saves seconds on a million rows (nothing reads their rowid order).
    with_ref = np.flatnonzero(has_ref)
    with_ref = with_ref[np.argsort(refs[with_ref].astype(str), kind="stable")]
    payments = Table(
        "simulated_payments",
        {
            "ref": provider_ref[with_ref].tolist(),
            "order_public_id": [order_public_ids[i] for i in with_ref.tolist()],
            "amount_cents": total[with_ref],
            "currency": Same("USD"),
            "status": gateway_status[with_ref].tolist(),
            "refunded_cents": refunded_cents[with_ref],
            "created_at": payment_created[with_ref],
            "updated_at": gateway_updated[with_ref],
        },
        timestamps=frozenset({"created_at", "updated_at"}),
        sqlite_select=_PAYMENTS_SELECT,
        sqlite_params=(
            _payment_records(
                payment_created[with_ref],
                gateway_updated[with_ref],
                gateway_paid[with_ref],
                refunded_cents[with_ref],
                order_ids[with_ref],
            ),
        ),
    )

    yield payments

    # Invoices (one per paid order, by payment time) and credit notes (one per refund, by refund
    # time), each numbered gaplessly in its own per-year series; ids follow issue time.
    inv_rows = np.flatnonzero(is_paid)
    inv_rows = inv_rows[np.lexsort((order_ids[inv_rows], paid_at[inv_rows]))]
    invoices, series = _invoices(
        inv_rows,
        ref_rows,
        offsets.get("invoices", 0),
        settings,
        order_ids=order_ids,
        paid_at=paid_at,
        refund_at=refund_at,
        amount=amount,
        fee=fee,
        total=total,
        refund_amount=refund_amount,
        refund_reason=refund_reason,
        buyers=people["buyer_json"],
        customer_of=customer_of,
        lines=lines_by_key,
        line_key=inverse,
    )
    credit_note_ids = invoices.columns.pop("_credit_note_ids")

    refunds_table = Table(
        "refunds",
        {
            "id": refund_ids,
            "order_id": order_ids[ref_rows],
            "amount_cents": refund_amount,
            "credits": refund_credits,
            "provider_ref": provider_ref[ref_rows].tolist(),
            "credit_note_id": credit_note_ids,
            "created_at": refund_at[ref_rows],
            "created_by": refund_by.tolist(),
            "reason": refund_reason.tolist(),
            "override": Same(False),
            # Seeded refunds are finished ones: the gateway answered at once.
            "status": Same(RefundStatus.SUCCEEDED.value),
            "idempotency_key": [f"billing-ops-refund-demo-{i}" for i in refund_ids.tolist()],
            "refunded_at": refund_at[ref_rows],
            "finished_at": refund_at[ref_rows],
            "finished_by": refund_by.tolist(),
        },
        timestamps=frozenset({"created_at", "refunded_at", "finished_at"}),
        booleans=frozenset({"override"}),
    )

    yield invoices
    yield refunds_table

    # Ledger: a top-up per paid order, a negative refund entry per refund, in time order.
    paid_rows = np.flatnonzero(is_paid)
    entry_order = np.concatenate([paid_rows, ref_rows])
    entry_time = np.concatenate([paid_at[paid_rows], refund_at[ref_rows]])
    entry_kind = np.concatenate([np.zeros(len(paid_rows), np.int64), np.ones(k, np.int64)])
    entry_credits = np.concatenate([credits[paid_rows], -refund_credits])
    entry_refund = np.concatenate([np.full(len(paid_rows), -1, np.int64), refund_ids])
    entry_by = np.concatenate([np.full(len(paid_rows), GATEWAY_ACTOR, dtype=object), refund_by])
    by_time = np.lexsort((entry_kind, entry_order, entry_time))
    entry_order, entry_time, entry_kind = entry_order[by_time], entry_time[by_time], entry_kind[by_time]
    n_entries = len(entry_order)
    ledger = Table(
        "ledger_entries",
        {
            "id": np.arange(offsets.get("ledger_entries", 0) + 1, offsets.get("ledger_entries", 0) + n_entries + 1),
            "customer_id": customer_ids[entry_order],
            "order_id": order_ids[entry_order],
            "kind": np.array([LedgerKind.TOPUP.value, LedgerKind.REFUND.value], dtype=object)[entry_kind].tolist(),
            "credits": entry_credits[by_time],
            "refund_id": entry_refund[by_time],
            "created_at": entry_time,
            "created_by": entry_by[by_time].tolist() if k else Same(GATEWAY_ACTOR),
        },
        timestamps=frozenset({"created_at"}),
        nullable=frozenset({"refund_id"}),
        sqlite_select=_ledger_select(offsets),
    )

    yield ledger

    status_counts = {s.value: int((status_text == s.value).sum()) for s in OrderStatus}
    summary = {
        "seed": seed,
        "orders": n,
        "customers": n_customers,
        "data_end": DATA_END.isoformat(),
        "pricing_version": pricing.version,
        "statuses": {status: count for status, count in status_counts.items() if count},
        "gateway_paid_but_pending": int((case == Case.PENDING_PAID).sum()),
        "gateway_paid_but_expired": int((case == Case.EXPIRED_PAID).sum()),
        "invoices": len(inv_rows),
        "credit_notes": k,
        "refunds": k,
        "refunded_cents": int(refund_amount.sum()),
        "ledger_entries": n_entries,
        "invoice_series": series,
    }
    yield DemoData(
        customers=customers,
        orders=orders_table,
        payments=payments,
        ledger=ledger,
        invoices=invoices,
        refunds=refunds_table,
        series=series,
        paid=status_counts[OrderStatus.PAID.value],
        credit_notes=k,
        summary=summary,
        facts={
            "customer_of": customer_of,
            "customer_id_offset": offsets.get("customers", 0),
            "order_id_offset": offsets.get("orders", 0),
            "countries": customers.columns["country"],
            "plan": plan_index,
            "method": method_index,
            "created": created,
            "paid_at": np.where(is_paid, paid_at, -1),
            "amount": amount,
            "fee": fee,
            "total": total,
            "credits": credits,
            "refund_rows": ref_rows,
            "refund_at": refund_at[ref_rows],
            "refund_amount": refund_amount,
        },
    )


def _ledger_select(offsets: dict[str, int]) -> str:
    """The ledger as generate() lays it out (ids in time order, then by order, top-up before refund),
    from the orders and refunds just written."""
    entry_id = offsets.get("ledger_entries", 0)
    order_id, refund_id = offsets.get("orders", 0), offsets.get("refunds", 0)
    return f"""
        INSERT INTO ledger_entries (id, customer_id, order_id, kind, credits, refund_id, created_at, created_by)
        SELECT {int(entry_id)} + row_number() OVER (ORDER BY t, order_id, k), customer_id, order_id,
               CASE k WHEN 0 THEN '{LedgerKind.TOPUP.value}' ELSE '{LedgerKind.REFUND.value}' END,
               credits, refund_id, t, created_by
        FROM (
            SELECT paid_at AS t, id AS order_id, 0 AS k, customer_id, credits, NULL AS refund_id,
                   '{GATEWAY_ACTOR}' AS created_by
            FROM orders WHERE paid_at IS NOT NULL AND id > {int(order_id)}
            UNION ALL
            SELECT r.created_at, r.order_id, 1, o.customer_id, -r.credits, r.id, r.created_by
            FROM refunds r JOIN orders o ON o.id = r.order_id WHERE r.id > {int(refund_id)}
        )
        ORDER BY t, order_id, k
    """  # noqa: S608 - integers and fixed names only


# The gateway's rows from the orders just written: ref, public id, amount and currency are the
# order's; what the orders do not record (when the gateway saw the payment and last changed it,
# whether it took the money, what it refunded) comes as one JSON array, in the rows' order, of
# fixed-width text: created_at (26), updated_at (26), gateway paid (1), refunded_cents (12), order id.
# CROSS JOIN keeps json_each the outer loop, so rows go in in the array's (ref) order without a sort.
_PAYMENTS_SELECT = f"""
    INSERT INTO simulated_payments
        (ref, order_public_id, amount_cents, currency, status, refunded_cents, created_at, updated_at)
    SELECT o.provider_ref, o.public_id, o.total_cents, o.currency,
           CASE WHEN substr(j.value, 53, 1) = '1' THEN '{SimulatedStatus.SUCCEEDED.value}'
                WHEN o.status = '{OrderStatus.FAILED.value}' THEN '{SimulatedStatus.DECLINED.value}'
                WHEN o.status = '{OrderStatus.CANCELLED.value}' THEN '{SimulatedStatus.CANCELED.value}'
                ELSE '{SimulatedStatus.REQUIRES_PAYMENT.value}' END,
           CAST(substr(j.value, 54, 12) AS INTEGER), substr(j.value, 1, 26), substr(j.value, 27, 26)
    FROM json_each(?) AS j CROSS JOIN orders AS o ON o.id = CAST(substr(j.value, 66) AS INTEGER)
"""  # noqa: S608 - fixed names only


def _payment_records(
    created: np.ndarray, updated: np.ndarray, paid: np.ndarray, refunded: np.ndarray, order_ids: np.ndarray
) -> str:
    """The JSON array _PAYMENTS_SELECT reads (digits, spaces, dashes, colons and dots: nothing to escape)."""
    if len(refunded) and (int(refunded.max()) >= 10**12 or int(refunded.min()) < 0):
        raise ValueError("refunded_cents out of range")
    records = zip(
        _timestamps(created).tolist(),
        _timestamps(updated).tolist(),
        paid.astype(np.int8).tolist(),
        refunded.tolist(),
        order_ids.tolist(),
        strict=True,
    )
    return "[" + ",".join([f'"{c}{u}{p}{r:012d}{i}"' for c, u, p, r, i in records]) + "]"


def _provider_refs(rng: np.random.Generator, method_index: np.ndarray, created: np.ndarray) -> np.ndarray:
    """References as each provider prints them: Stripe pi_…, Airwallex int_…, Alipay 28-digit trade_no."""
    refs = np.empty(len(method_index), dtype=object)
    stripe = np.flatnonzero(method_index == 0)
    refs[stripe] = np.char.add("pi_3", _random_text(rng, _ALNUM, len(stripe), 23))
    airwallex = np.flatnonzero(method_index == 1)
    refs[airwallex] = np.char.add("int_hk", _random_text(rng, _ALNUM[:36].lower(), len(airwallex), 21))
    alipay = np.flatnonzero(method_index == 2)
    day = np.datetime_as_string(created[alipay].astype("datetime64[us]").astype("datetime64[D]"), unit="D")
    day = np.char.replace(day, "-", "")
    refs[alipay] = np.char.add(np.char.add(day, "22001"), _random_text(rng, _ALNUM[:10], len(alipay), 15))
    return refs


_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _numbered(issued: np.ndarray, template: str) -> tuple[list[str], np.ndarray, list[str], dict[str, int]]:
    """Series, sequence 1..n per year and printed number of documents sorted by issue time."""
    year = issued.astype("datetime64[us]").astype("datetime64[Y]").astype(np.int64) + 1970
    sequence = np.arange(len(year)) - np.searchsorted(year, year, side="left") + 1
    names = {int(y): series_name(template, datetime(int(y), 1, 1, tzinfo=UTC)) for y in np.unique(year)}
    series = [names[y] for y in year.tolist()]
    numbers = [format_number(s, q) for s, q in zip(series, sequence.tolist(), strict=True)]
    next_numbers = {names[int(y)]: int(c) + 1 for y, c in zip(*np.unique(year, return_counts=True), strict=True)}
    return series, sequence, numbers, next_numbers


def _invoices(inv_rows, ref_rows, id_offset, settings, **c) -> tuple[Table, dict[str, int]]:
    """Invoices and credit notes in one table, ids in issue order (an invoice before a note issued at once).

    A credit note is what invoices.issuing._issue_credit_note writes: the refunded amount split
    between top-up and fee in the order's proportion (half-up on the top-up part), negative
    amounts, one refund line, the invoice's seller and buyer, a pointer to the invoice.
    """
    m, k = len(inv_rows), len(ref_rows)
    inv_series, inv_seq, inv_numbers, next_numbers = _numbered(c["paid_at"][inv_rows], settings.invoice_series)
    cn_series, cn_seq, cn_numbers, cn_next = _numbered(c["refund_at"][ref_rows], settings.credit_note_series)
    next_numbers |= cn_next

    invoice_of_row = np.full(len(c["order_ids"]), -1, dtype=np.int64)
    invoice_of_row[inv_rows] = np.arange(m)
    refers = invoice_of_row[ref_rows]  # index of the refunded order's invoice among the invoices
    refund_amount = c["refund_amount"]
    order_amount, order_total = c["amount"][ref_rows].tolist(), c["total"][ref_rows].tolist()
    cn_subtotal = np.array(
        [
            money.from_decimal(money.to_decimal(cents) * a / t)
            for cents, a, t in zip(refund_amount.tolist(), order_amount, order_total, strict=True)
        ],
        dtype=np.int64,
    ).reshape(k)
    cn_lines = [
        _json(credit_note_lines(inv_numbers[i], cents))
        for i, cents in zip(refers.tolist(), refund_amount.tolist(), strict=True)
    ]
    buyers, lines = c["buyers"], c["lines"]
    inv_buyers = [buyers[i] for i in c["customer_of"][inv_rows].tolist()]
    inv_lines = [lines[i] for i in c["line_key"][inv_rows].tolist()]

    # Merge by issue time; ties: the invoice first, then by order.
    issued = np.concatenate([c["paid_at"][inv_rows], c["refund_at"][ref_rows]])
    kind = np.concatenate([np.zeros(m, np.int64), np.ones(k, np.int64)])
    order_of = np.concatenate([c["order_ids"][inv_rows], c["order_ids"][ref_rows]])
    perm = np.lexsort((order_of, kind, issued)) if k else np.arange(m)
    position = np.empty(m + k, dtype=np.int64)
    position[perm] = np.arange(m + k)
    ids = id_offset + 1 + np.arange(m + k, dtype=np.int64)
    invoice_ids = id_offset + 1 + position[:m]
    note_ids = id_offset + 1 + position[m:]
    refers_to = np.concatenate([np.full(m, -1, np.int64), invoice_ids[refers]])

    def merged(first: list, second: list) -> list:
        both = first + second
        return both if not k else [both[i] for i in perm.tolist()]

    table = Table(
        "invoices",
        {
            "id": ids,
            "number": merged(inv_numbers, cn_numbers),
            "series": merged(inv_series, cn_series),
            "sequence": np.concatenate([inv_seq, cn_seq])[perm],
            "kind": (
                np.array([InvoiceKind.INVOICE.value, InvoiceKind.CREDIT_NOTE.value], dtype=object)[kind[perm]].tolist()
                if k
                else Same(InvoiceKind.INVOICE.value)
            ),
            "order_id": order_of[perm],
            "refers_to_id": refers_to[perm],
            "issued_at": issued[perm],
            "currency": Same("USD"),
            "subtotal_cents": np.concatenate([c["amount"][inv_rows], -cn_subtotal])[perm],
            "fee_cents": np.concatenate([c["fee"][inv_rows], cn_subtotal - refund_amount])[perm],
            "tax_cents": Same(0),
            "total_cents": np.concatenate([c["total"][inv_rows], -refund_amount])[perm],
            "seller": Same(_json(asdict(settings.company))),
            "buyer": merged(inv_buyers, [inv_buyers[i] for i in refers.tolist()]),
            "lines": merged(inv_lines, cn_lines),
            "template_version": Same(TEMPLATE_VERSION),
            "sandbox": Same(False),
            "_credit_note_ids": note_ids,
        },
        timestamps=frozenset({"issued_at"}),
        booleans=frozenset({"sandbox"}),
        nullable=frozenset({"refers_to_id"}),
    )
    return table, next_numbers


# --- revenue rollup ------------------------------------------------------------------------------

_HOUR_US = 3600 * _US


def _local_days(moments: list[np.ndarray], zone: str) -> list[np.ndarray]:
    """Local calendar day (days since 1970-01-01) of each UTC instant in ``zone``: rollup.local_day, vectorised.

    The zone's offset is looked up once per UTC hour; an hour in which the offset changes is
    converted row by row with rollup.local_day itself.
    """
    present = [us for us in moments if len(us)]
    if not present:
        return [np.zeros(0, dtype=np.int64) for _ in moments]
    first = min(int(us.min()) for us in present) // _HOUR_US
    span = max(int(us.max()) for us in present) // _HOUR_US - first + 1
    tz = rollup._zone(zone)
    offsets = np.empty(span, dtype=np.int64)
    mixed = []
    for i in range(span):
        start = (first + i) * 3600
        before = datetime.fromtimestamp(start, UTC).astimezone(tz).utcoffset()
        after = datetime.fromtimestamp(start + 3599.999999, UTC).astimezone(tz).utcoffset()
        offsets[i] = int(before.total_seconds()) * _US  # type: ignore[union-attr]
        if before != after:
            mixed.append(i)
    out = []
    epoch = datetime(1970, 1, 1, tzinfo=UTC).date()
    for us in moments:
        hours = us // _HOUR_US - first
        days = (us + offsets[hours]) // _DAY_US
        for j in np.flatnonzero(np.isin(hours, mixed)).tolist() if mixed else ():
            moment = datetime.fromtimestamp(int(us[j]) // _US, UTC).replace(microsecond=int(us[j]) % _US)
            days[j] = (rollup.local_day(moment, zone) - epoch).days
        out.append(days)
    return out


def _grouped(keys: list[np.ndarray], values: list[dict[str, np.ndarray]]) -> tuple[np.ndarray, dict]:
    """Sum each measure per distinct key over several sets of facts; keys come back sorted."""
    unique, inverse = np.unique(np.concatenate(keys), return_inverse=True)
    sums: dict[str, np.ndarray] = {m: np.zeros(len(unique), dtype=np.int64) for m in rollup.MEASURES}
    start = 0
    for part, measures in zip(keys, values, strict=True):
        where = inverse[start : start + len(part)]
        start += len(part)
        for name, value in measures.items():
            # Float sums are exact here: every partial sum stays far below 2**53.
            weights = np.ones(len(part)) if isinstance(value, int) else value.astype(np.float64)
            sums[name] += np.bincount(where, weights=weights, minlength=len(unique)).astype(np.int64)
    return unique, sums


def rollup_tables(data: DemoData, zones: tuple[str, ...]) -> list[Table]:
    """revenue_daily_country, revenue_daily, customer_monthly and customer_totals for the seeded orders, exactly as
    rollup.rebuild computes them from the stored rows, in each table's primary-key order."""
    f = data.facts
    assert f is not None
    countries, country_of_customer = np.unique(np.array(f["countries"], dtype=str), return_inverse=True)
    country = country_of_customer[f["customer_of"]]
    # Dimensions as ranks in the text order the primary keys sort by.
    plan_values = [p.value for p in PlanId]
    plan_names = np.array(sorted(plan_values))
    plan = np.argsort(np.argsort(plan_values))[f["plan"]]
    method_values = [m.value for m in _METHODS]
    method_names = np.array(sorted(method_values))
    method = np.argsort(np.argsort(method_values))[f["method"]]
    n_customers = len(country_of_customer)

    paid_at, created = f["paid_at"], f["created"]
    paid_rows = np.flatnonzero(paid_at >= 0)
    customer = f["customer_of"]
    never = np.iinfo(np.int64).max
    first_paid = np.full(n_customers, never, dtype=np.int64)
    np.minimum.at(first_paid, customer[paid_rows], paid_at[paid_rows])
    created_kind = (first_paid[customer] < created).astype(np.int64)  # 1 = returning
    # A paid order is 'new' when it is the customer's first by (paid_at, id); ids follow row order.
    by_customer = paid_rows[np.lexsort((paid_rows, paid_at[paid_rows], customer[paid_rows]))]
    paid_kind = np.zeros(len(paid_at), dtype=np.int64)
    paid_kind[by_customer] = 1
    firsts = np.r_[True, customer[by_customer][1:] != customer[by_customer][:-1]]
    paid_kind[by_customer[firsts]] = 0
    refund_rows = f["refund_rows"]

    if len(countries) > 64 or len(zones) > 64:
        raise ValueError("the rollup keys hold at most 64 countries and 64 time zones")

    def key(zone_rank: int, rows: np.ndarray, days: np.ndarray, kind: np.ndarray) -> np.ndarray:
        k = np.int64(zone_rank) * 64 + country[rows]
        return (((k * 65536 + days) * 8 + plan[rows]) * 4 + method[rows]) * 2 + kind

    country_keys, country_sums, daily_keys, daily_sums = [], [], [], []
    zone_names = sorted(zones)
    all_rows = np.arange(len(created))
    low = 65536 * 8 * 4 * 2  # day, plan, method and kind below the zone (and country)
    for rank, zone in enumerate(zone_names):
        created_days, paid_days, refund_days = _local_days([created, paid_at[paid_rows], f["refund_at"]], zone)
        facts = [
            {"created_count": 1},
            {
                "paid_count": 1,
                "amount_cents": f["amount"][paid_rows],
                "fee_cents": f["fee"][paid_rows],
                "total_cents": f["total"][paid_rows],
                "credits": f["credits"][paid_rows],
            },
            {"refund_count": 1, "refunded_cents": f["refund_amount"]},
        ]
        keys = [
            key(rank, all_rows, created_days, created_kind),
            key(rank, paid_rows, paid_days, paid_kind[paid_rows]),
            key(rank, refund_rows, refund_days, paid_kind[refund_rows]),
        ]
        unique, sums = _grouped(keys, facts)
        country_keys.append(unique)
        country_sums.append(sums)
        # Without the country: the same sums grouped once more.
        daily, inverse = np.unique(unique // low // 64 * low + unique % low, return_inverse=True)
        daily_keys.append(daily)
        daily_sums.append(
            {m: np.bincount(inverse, v.astype(np.float64), len(daily)).astype(np.int64) for m, v in sums.items()}
        )

    def table(name: str, keys: list[np.ndarray], sums: list[dict], with_country: bool) -> Table:
        k = np.concatenate(keys)
        kind, k = k % 2, k // 2
        method_rank, k = k % 4, k // 4
        plan_rank, k = k % 8, k // 8
        days, k = k % 65536, k // 65536
        columns: dict[str, object] = {}
        if with_country:
            country_rank, k = k % 64, k // 64
            columns["country"] = countries.astype(object)[country_rank]
        first_day = int(days.min()) if len(days) else 0
        day_names = np.datetime_as_string(np.arange(first_day, int(days.max(initial=0)) + 1).astype("datetime64[D]"))
        columns = {
            "tz": np.array(zone_names, dtype=object)[k],
            **columns,
            "day": day_names.astype(object)[days - first_day],
            "plan": plan_names.astype(object)[plan_rank],
            "method": method_names.astype(object)[method_rank],
            "kind": np.array(["new", "returning"], dtype=object)[kind],
        }
        for m in rollup.MEASURES:
            columns[m] = np.concatenate([s[m] for s in sums])
        return Table(name, columns)

    # Customers per UTC month of payment.
    month = paid_at[paid_rows].astype("datetime64[us]").astype("datetime64[M]").astype(np.int64)
    monthly_key = customer[paid_rows] * 4096 + month
    unique, inverse = np.unique(monthly_key, return_inverse=True)
    monthly = Table(
        "customer_monthly",
        {
            "customer_id": unique // 4096 + f["customer_id_offset"] + 1,
            "month": np.datetime_as_string((unique % 4096).astype("datetime64[M]").astype("datetime64[D]"), unit="D"),
            "paid_count": np.bincount(inverse, minlength=len(unique)).astype(np.int64),
            "total_cents": np.bincount(inverse, f["total"][paid_rows].astype(np.float64), len(unique)).astype(np.int64),
            "amount_cents": np.bincount(inverse, f["amount"][paid_rows].astype(np.float64), len(unique)).astype(
                np.int64
            ),
        },
    )
    # Customers over all time: the months' sums once more, per customer.
    customer_ids, per_customer = np.unique(unique // 4096, return_inverse=True)
    totals = Table(
        "customer_totals",
        {
            "customer_id": customer_ids + f["customer_id_offset"] + 1,
            **{
                m: np.bincount(per_customer, monthly.columns[m].astype(np.float64), len(customer_ids)).astype(np.int64)
                for m in rollup.MONTHLY_MEASURES
            },
        },
    )
    return [
        table("revenue_daily_country", country_keys, country_sums, True),
        table("revenue_daily", daily_keys, daily_sums, False),
        monthly,
        totals,
    ]


def bills_table(data: DemoData) -> Table:
    """bills_daily for the seeded documents, exactly as invoices.totals.rebuild computes it from the stored
    rows, in primary-key order (day, plan, method, kind, series; seeded documents are never sandbox)."""
    f = data.facts
    assert f is not None
    columns = data.invoices.columns
    row = np.asarray(columns["order_id"]) - f["order_id_offset"] - 1
    plan_values = [p.value for p in PlanId]
    plan = np.argsort(np.argsort(plan_values))[f["plan"][row]]
    method_values = [m.value for m in _METHODS]
    method = np.argsort(np.argsort(method_values))[f["method"][row]]
    kinds = columns["kind"]
    kind_names = sorted(k.value for k in InvoiceKind)
    if isinstance(kinds, Same):
        kind = np.full(len(row), kind_names.index(kinds.value), dtype=np.int64)
    else:
        kind = (np.array(kinds, dtype=object) == kind_names[1]).astype(np.int64)
    series_names, series = np.unique(np.array(columns["series"], dtype=str), return_inverse=True)
    day = np.asarray(columns["issued_at"]) // _DAY_US
    key = (((day * 8 + plan) * 4 + method) * 2 + kind) * len(series_names) + series
    unique, inverse = np.unique(key, return_inverse=True)
    series_rank, k = unique % len(series_names), unique // len(series_names)
    kind_rank, k = k % 2, k // 2
    method_rank, k = k % 4, k // 4
    plan_rank, days = k % 8, k // 8

    def summed(name: str) -> np.ndarray:
        values = columns[name]
        if isinstance(values, Same):
            return int(values.value) * np.bincount(inverse, minlength=len(unique)).astype(np.int64)
        return np.bincount(inverse, np.asarray(values).astype(np.float64), len(unique)).astype(np.int64)

    return Table(
        "bills_daily",
        {
            "day": np.datetime_as_string(days.astype("datetime64[D]"), unit="D").astype(object),
            "plan": np.array(sorted(plan_values), dtype=object)[plan_rank],
            "method": np.array(sorted(method_values), dtype=object)[method_rank],
            "kind": np.array(kind_names, dtype=object)[kind_rank],
            "series": series_names.astype(object)[series_rank],
            "sandbox": Same(False),
            "documents": np.bincount(inverse, minlength=len(unique)).astype(np.int64),
            **{m: summed(m) for m in ("subtotal_cents", "fee_cents", "tax_cents", "total_cents")},
        },
        booleans=frozenset({"sandbox"}),
    )


# --- loading -------------------------------------------------------------------------------------

_TABLES = (
    "customers",
    "customer_grams",
    "orders",
    "simulated_payments",
    "ledger_entries",
    "invoices",
    "refunds",
    "customer_monthly",
    "customer_totals",
)
# The revenue rollup (billing_core.revenue.rollup) and the bills totals (billing_core.invoices.totals): the
# seed writes them with the orders, so they are never stale.
_ROLLUP_TABLES = (*rollup.TABLES, bills_totals.TABLE)
_ID_TABLES = ("customers", "orders", "ledger_entries", "invoices", "refunds")
# Children before parents; on SQLite, tables a migration has not made yet are skipped.
_WIPE_ORDER = (
    *_ROLLUP_TABLES,
    *credits_demo.TABLES,
    "audit_events",
    "invoice_files",
    "ledger_entries",
    "refunds",
    "gateway_checks",
    "invoices",
    "simulated_requests",
    "simulated_refunds",
    "simulated_payments",
    "orders",
    "customer_grams",
    "customers",
    "invoice_series",
)


def _column_values(table: Table, name: str, dialect: str, start: int, stop: int) -> list:
    values = table.columns[name]
    if isinstance(values, Derived):
        values = values.values
    if isinstance(values, Same):
        value = bool(values.value) if name in table.booleans else values.value
        return [value] * (stop - start)
    if isinstance(values, np.ndarray):
        part = values[start:stop]
        if name in table.timestamps:
            text = _timestamps(part)
            if dialect == "postgresql":
                text = np.char.add(text, "+00")
            out = text.astype(object)
            out[part < 0] = None
            return out.tolist()
        if name in table.booleans and dialect == "postgresql":
            return (part != 0).tolist()
        if name in table.nullable:
            out = part.astype(object)
            out[part < 0] = None
            return out.tolist()
        return part.tolist()
    return values[start:stop]  # type: ignore[index]


def _bound_columns(table: Table, dialect: str) -> list[str]:
    """Columns sent per row: on SQLite constant and derived ones are written into the statement instead."""
    return [c for c, v in table.columns.items() if dialect != "sqlite" or not isinstance(v, Same | Derived)]


def _rows(table: Table, dialect: str, start: int, stop: int) -> Iterator[tuple]:
    columns = [_column_values(table, name, dialect, start, stop) for name in _bound_columns(table, dialect)]
    return zip(*columns, strict=True)


def _sqlite_insert(table: Table) -> str:
    bound = {name: f"?{i}" for i, name in enumerate(_bound_columns(table, "sqlite"), start=1)}
    values = []
    for name, value in table.columns.items():
        if isinstance(value, Derived):
            values.append(value.sql.format(**bound))
        elif not isinstance(value, Same):
            values.append(bound[name])
        elif value.value is None:
            values.append("NULL")
        elif isinstance(value.value, bool | int):
            values.append(str(int(value.value)))
        else:
            values.append("'" + str(value.value).replace("'", "''") + "'")
    return f"INSERT INTO {table.name} ({', '.join(table.columns)}) VALUES ({', '.join(values)})"  # noqa: S608


class _Profile:
    """Wall-clock seconds per section, printed to stderr when BILLING_SEED_PROFILE is set."""

    def __init__(self) -> None:
        self.enabled = bool(os.environ.get("BILLING_SEED_PROFILE"))
        self.seconds: dict[str, float] = defaultdict(float)
        self.started = time.perf_counter()

    @contextmanager
    def section(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start

    def report(self) -> None:
        if not self.enabled:
            return
        total = time.perf_counter() - self.started
        lines = [f"  {name:<36} {seconds:7.2f} s" for name, seconds in self.seconds.items()]
        print("seed profile (writer sections run beside the main thread's):", *lines, file=sys.stderr, sep="\n")
        print(f"  {'total':<36} {total:7.2f} s", file=sys.stderr)


# Chunks the writer may fall behind by: enough for the main thread to keep building rows while
# the writer builds a table's indexes, few enough to bound memory (~20 MB a chunk).
_AHEAD = 8


class _Loader:
    """Bulk writes on the raw DBAPI connection inside the caller's transaction.

    On SQLite one writer thread runs every statement in order: each chunk's executemany and, right
    after a table's last chunk, that table's secondary indexes (sqlite3_step and CREATE INDEX run
    without the GIL), while this thread builds the next chunks' rows. The pool's exit waits for the
    writer, so an error rolls back only after the last write has stopped.
    """

    def __init__(self, conn: Connection, profile: _Profile, progress: Progress | None):
        self.conn = conn
        self.raw = conn.connection.driver_connection
        self.dialect = conn.dialect.name
        self.total, self.done, self.progress = 0, 0, progress
        self.profile = profile
        self.pending: deque[tuple[Future, int]] = deque()
        self.writer = ThreadPoolExecutor(1, thread_name_prefix="demo-seed-writer") if self.dialect == "sqlite" else None

    def __enter__(self) -> _Loader:
        return self

    def __exit__(self, *exc) -> None:
        if self.writer:
            self.writer.shutdown(wait=True, cancel_futures=exc[0] is not None)

    def execute(self, sql: str) -> None:
        self.conn.exec_driver_sql(sql)

    def secondary_indexes(self) -> dict[str, list[tuple[str, str]]]:
        """Per table, (name, CREATE statement) of the non-constraint indexes exactly as the migration made them."""
        names = ", ".join(f"'{t}'" for t in _TABLES)
        if self.dialect == "sqlite":
            sql = (
                "SELECT tbl_name, name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "  # noqa: S608
                f"AND tbl_name IN ({names})"
            )
        else:
            sql = (
                "SELECT tablename, indexname, indexdef FROM pg_indexes "  # noqa: S608
                f"WHERE schemaname = current_schema() AND tablename IN ({names}) "
                "AND indexname NOT IN (SELECT conname FROM pg_constraint)"
            )
        out: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for table, name, create in self.conn.exec_driver_sql(sql).all():
            out[table].append((name, create))
        return out

    def load(self, table: Table, indexes: list[tuple[str, str]]) -> None:
        """Write ``table`` and then create its ``indexes`` (dropped beforehand by the caller)."""
        if self.writer is None:
            for start in range(0, len(table), _CHUNK):
                stop = min(start + _CHUNK, len(table))
                with self.profile.section(f"write {table.name}"):
                    self._write(table, _rows(table, self.dialect, start, stop))
                self._advance(stop - start)
            for _, create in indexes:
                with self.profile.section(f"index {table.name}"):
                    self.execute(create)
            return
        if table.sqlite_select:
            self._submit(f"write {table.name}", self.raw.execute, len(table), table.sqlite_select, table.sqlite_params)
            for _, create in indexes:
                self._submit(f"index {table.name}", self.raw.execute, 0, create)
            return
        sql = _sqlite_insert(table)
        for start in range(0, len(table), _CHUNK):
            stop = min(start + _CHUNK, len(table))
            with self.profile.section(f"rows {table.name}"):
                rows = list(_rows(table, self.dialect, start, stop))
            self._submit(f"write {table.name}", self._executemany, stop - start, sql, rows)
        for _, create in indexes:
            self._submit(f"index {table.name}", self.raw.execute, 0, create)

    def _submit(self, label: str, fn: Callable, rows: int, *args) -> None:
        while len(self.pending) >= _AHEAD:
            self._settle()
        assert self.writer is not None

        def timed() -> None:
            with self.profile.section(label):
                fn(*args)

        self.pending.append((self.writer.submit(timed), rows))

    def _settle(self) -> None:
        future, rows = self.pending.popleft()
        future.result()
        self._advance(rows)

    def finish(self) -> None:
        """Wait for every write; raises the first error."""
        with self.profile.section("wait for the writer"):
            while self.pending:
                self._settle()

    def _advance(self, rows: int) -> None:
        if rows:
            self.done += rows
            if self.progress:
                self.progress(self.done, self.total)

    def _executemany(self, sql: str, rows: list[tuple]) -> None:
        cursor = self.raw.cursor()
        try:
            cursor.executemany(sql, rows)
        finally:
            cursor.close()

    def _write(self, table: Table, rows: Iterator[tuple]) -> None:
        """PostgreSQL: COPY, which checks foreign keys as it goes."""
        columns = ", ".join(table.columns)
        with self.raw.cursor() as cursor, cursor.copy(f"COPY {table.name} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def seed(
    database: Database,
    *,
    orders: int,
    seed: int = 7,
    actor: Actor,
    replace: bool = False,
    settings: Settings | None = None,
    progress: Progress | None = None,
) -> SeedReport:
    """Fill an order-less database with ``orders`` demo orders and everything that follows from them.

    One transaction: on any error nothing is written. Refuses a database that has orders unless
    ``replace``, which deletes all existing data first (in the same transaction). The revenue
    rollup is written in the same transaction, equal to what ``rollup.rebuild`` would compute.
    Set BILLING_SEED_PROFILE=1 for a breakdown of where the time went.
    """
    require(actor, Action.SEED_DEMO)
    if orders < 1:
        raise BillingError("Seed at least one order.")
    settings = settings or Settings()
    pricing = settings.pricing()
    zones = tuple(settings.report_timezones)
    started = time.perf_counter()
    profile = _Profile()
    engine = database.engine
    dialect = engine.dialect.name
    # Millions of tuples and strings are made and kept alive; the cyclic collector would rescan
    # them all again and again for no garbage (none of them form cycles). Reference counting still frees.
    collecting = gc.isenabled()
    gc.disable()
    try:
        with engine.connect() as conn:
            conn.execution_options(write=True)
            raw = conn.connection.driver_connection
            if dialect == "sqlite":
                # Durability is moot while loading: the transaction either commits whole or not at all.
                state = _sqlite_load_mode(raw)
            try:
                with conn.begin():
                    existing = conn.exec_driver_sql("SELECT count(*) FROM orders").scalar()
                    if existing and not replace:
                        raise StateConflict(
                            f"The database already has {existing:,} orders; nothing was changed. "
                            "Seed an empty database, or pass --replace to delete everything first."
                        )
                    # SQLite: the text index is built once after the customers, not row by row by its triggers.
                    triggers = _drop_triggers(conn) if dialect == "sqlite" else []
                    with profile.section("wipe"):
                        if replace:
                            _wipe(conn, dialect)
                        else:  # no orders, so an exact rollup is empty
                            for table in _ROLLUP_TABLES:
                                conn.exec_driver_sql(f"DELETE FROM {table}")  # noqa: S608
                    offsets = {
                        t: conn.exec_driver_sql(f"SELECT coalesce(max(id), 0) FROM {t}").scalar()  # noqa: S608
                        for t in _ID_TABLES
                    }
                    with _Loader(conn, profile, progress) as loader:
                        # Rows to write, estimated until every table is generated (about 5.7 per order).
                        loader.total = orders * 6
                        if progress:
                            progress(0, loader.total)
                        indexes = loader.secondary_indexes()
                        for table_indexes in indexes.values():
                            for name, _ in table_indexes:
                                loader.execute(f"DROP INDEX {name}")
                        stream = generate_stream(orders, seed, pricing, settings, offsets)
                        written = 0
                        while True:
                            with profile.section("generate"):
                                item = next(stream)
                            if isinstance(item, DemoData):
                                data = item
                                break
                            after = indexes.get(item.name, [])
                            if item.name == "customers" and triggers:
                                after = [*after, ("text index", customer_index.FTS_REBUILD), *triggers]
                            loader.load(item, after)
                            written += len(item)
                        # Computed while the writer is still busy with the tables above.
                        with profile.section("rollup: compute"):
                            rollups = [*rollup_tables(data, zones), bills_table(data)]
                        loader.total = written + sum(len(t) for t in rollups)
                        for table in rollups:
                            loader.load(table, indexes.get(table.name, []))
                        loader.finish()
                    with profile.section("credits"):
                        credits_demo._load(conn, offsets, DATA_END)
                    _finish(conn, dialect, data, zones)
                    if dialect == "postgresql":
                        # Fresh statistics, or the planner guesses at every table it was just handed.
                        with profile.section("analyze"):
                            conn.exec_driver_sql(f"ANALYZE {', '.join(dict.fromkeys((*_TABLES, *_ROLLUP_TABLES)))}")
                    seconds = time.perf_counter() - started
                    with Session(bind=conn) as session:
                        audit.record(
                            session,
                            actor,
                            "demo.seed",
                            "database",
                            database.describe()[-64:],
                            reason="demo data" + (f", replacing {existing:,} orders" if replace and existing else ""),
                            after=data.summary | {"seconds": round(seconds, 2), "replaced_orders": existing or 0},
                        )
                        session.flush()
                    committing = time.perf_counter()
                profile.seconds["commit"] += time.perf_counter() - committing
            finally:
                if dialect == "sqlite":
                    _sqlite_normal_mode(raw, state)
    finally:
        if collecting:
            gc.enable()
    profile.report()
    return SeedReport(
        customers=len(data.customers),
        orders=len(data.orders),
        paid=data.paid,
        invoices=len(data.invoices) - data.credit_notes,
        ledger_entries=len(data.ledger),
        seconds=time.perf_counter() - started,
        refunds=len(data.refunds),
        credit_notes=data.credit_notes,
    )


def _drop_triggers(conn: Connection) -> list[tuple[str, str]]:
    """Drop the customers' text-index triggers (SQLite), returning (name, CREATE statement) to restore them."""
    found = conn.exec_driver_sql(
        "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'customers'"
    ).all()
    for name, _ in found:
        conn.exec_driver_sql(f'DROP TRIGGER "{name}"')
    return [(name, sql) for name, sql in found]


def _finish(conn: Connection, dialect: str, data: DemoData, zones: tuple[str, ...]) -> None:
    """Invoice series (each seeded one runs 1 .. next - 1, so its health is that), sequences and the
    rollup's state, after the rows."""
    for series, next_number in data.series.items():
        last = next_number - 1
        conn.execute(
            rollup._insert(dialect, InvoiceSeries.__table__)
            .values(series=series, next_number=next_number, issued=last, first_number=1, last_number=last)
            .on_conflict_do_update(
                index_elements=["series"],
                set_={"next_number": next_number, "issued": last, "first_number": 1, "last_number": last},
            )
        )
    if dialect == "postgresql":
        for t in _ID_TABLES:
            conn.exec_driver_sql(
                f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), "  # noqa: S608
                f"(SELECT coalesce(max(id), 0) + 1 FROM {t}), false)"
            )
    _mark_rollup_built(conn, zones)


def _sqlite_load_mode(raw) -> tuple[str, int]:
    """Tune this connection for one big write; returns the journal mode and foreign_keys to restore.

    Durability is moot while loading: the one transaction commits whole or not at all (the rollback
    journal stays, so a failed load still leaves the database as it was). Leaving WAL for the load
    halves the bytes written (no WAL copy to checkpoint); when another connection holds the database
    open, SQLite refuses the switch and the load simply runs in WAL. Foreign keys are not checked
    row by row during the load (that check was a quarter of the load time): every id is generated
    from the same arrays, and the tests check the seeded database with ``PRAGMA foreign_key_check``.
    The page cache (512 MiB at most) bounds memory; pages beyond it spill to the file before the
    commit, which the rollback journal still undoes on failure.
    """
    foreign_keys = raw.execute("PRAGMA foreign_keys").fetchone()[0]
    raw.execute("PRAGMA foreign_keys=OFF")  # a no-op inside a transaction, so set before BEGIN
    raw.execute("PRAGMA synchronous=OFF")
    raw.execute("PRAGMA cache_size=-524288")
    raw.execute("PRAGMA temp_store=MEMORY")
    raw.execute("PRAGMA threads=2")  # CREATE INDEX sorts on two cores
    journal = raw.execute("PRAGMA journal_mode").fetchone()[0]
    try:
        raw.execute("PRAGMA journal_mode=DELETE")
    except sqlite3.OperationalError:
        pass
    return journal, foreign_keys


def _sqlite_normal_mode(raw, state: tuple[str, int]) -> None:
    journal, foreign_keys = state
    try:
        raw.execute(f"PRAGMA journal_mode={journal}")
    except sqlite3.OperationalError:
        pass
    raw.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
    raw.execute("PRAGMA synchronous=NORMAL")
    raw.execute("PRAGMA cache_size=-2000")
    raw.execute("PRAGMA temp_store=DEFAULT")
    raw.execute("PRAGMA threads=0")


def delete_all_data(database: Database, actor: Actor) -> None:
    """Empty every table (for benchmarks and tests; ``seed(replace=True)`` does it in its own transaction)."""
    require(actor, Action.SEED_DEMO)
    with database.engine.connect() as conn, conn.execution_options(write=True).begin():
        _wipe(conn, database.dialect)


def _wipe(conn: Connection, dialect: str) -> None:
    existing = _existing_tables(conn, dialect)
    tables = [t for t in _WIPE_ORDER if t in existing]
    if dialect == "postgresql":
        conn.exec_driver_sql(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
    else:
        for table in tables:
            conn.exec_driver_sql(f"DELETE FROM {table}")  # noqa: S608
    if "revenue_state" in existing:
        # Kept, not deleted: its version keys the page caches, so it only ever goes up.
        conn.exec_driver_sql("UPDATE revenue_state SET version = version + 1")


def _existing_tables(conn: Connection, dialect: str) -> set[str]:
    if dialect == "postgresql":
        sql = "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
    else:
        sql = "SELECT name FROM sqlite_master WHERE type = 'table'"
    return set(conn.exec_driver_sql(sql).scalars())


def _mark_rollup_built(conn: Connection, zones: tuple[str, ...]) -> None:
    """What rollup.rebuild leaves in revenue_state: built for ``zones``, version bumped."""
    table = RevenueState.__table__
    stmt = rollup._insert(conn.dialect.name, table).values(id=1, version=1, timezones=",".join(zones), built=True)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["id"],
            set_={"version": table.c.version + 1, "timezones": stmt.excluded.timezones, "built": True},
        )
    )


def setup(
    database: Database,
    *,
    actor: Actor,
    orders: int = FIRST_RUN_ORDERS,
    settings: Settings | None = None,
    progress: Progress | None = None,
) -> SeedReport | None:
    """First run: migrate, and seed demo data if there are no orders yet. None when nothing was seeded."""
    from billing_core.core.db import is_empty

    require(actor, Action.SEED_DEMO)
    database.migrate()
    if not is_empty(database.engine):
        return None
    try:
        return seed(database, orders=orders, actor=actor, settings=settings, progress=progress)
    except StateConflict:
        return None  # another process seeded it first


def describe(report: SeedReport) -> str:
    return (
        f"seeded {report.orders:,} orders ({report.paid:,} paid) for {report.customers:,} customers, "
        f"{report.invoices:,} invoices, {report.refunds:,} refunds with their credit notes and "
        f"{report.ledger_entries:,} ledger entries in {report.seconds:.1f} s"
    )


__all__ = [
    "DATA_END",
    "FIRST_RUN_ORDERS",
    "SCRIPTS",
    "Case",
    "DemoData",
    "SeedReport",
    "describe",
    "generate",
    "seed",
    "setup",
]
