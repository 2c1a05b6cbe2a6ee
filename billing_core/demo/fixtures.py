"""What the demo is made of: the outcomes an order can have and how often, plans, methods, busy days and
hours, and the people (names, companies, addresses in many scripts and countries)."""

from __future__ import annotations

import enum

import numpy as np

from billing_core.core.models import (
    OrderStatus,
    SimulatedStatus,
)
from billing_core.pricing.catalog import Method

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


CASE_SHARE = np.array([0.87, 0.02, 0.03, 0.03, 0.014, 0.006, 0.01, 0.015, 0.005])
CASE_STATUS = [
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
CASE_GATEWAY = [
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
CASE_HAS_REF = np.array([1.0, 1.0, 0.75, 1.0, 0.6, 1.0, 0.5, 1.0, 1.0])
REFUNDED_CASES = (Case.REFUNDED, Case.PARTIALLY_REFUNDED)
# Still open here (pending or expired, so completable); support checks these with the gateway.
OPEN_CASES = (Case.PENDING_PAID, Case.PENDING_UNPAID, Case.EXPIRED_UNPAID, Case.EXPIRED_PAID)
# Who checks orders with the gateway, as support signs in.
CHECKERS = ["sam.ortiz@company.test", "ana.kovac@company.test", "support@company.test"]
# Who refunds and why, as finance types it into the refund form.
REFUNDERS = ["fay.okafor@company.test", "lucas.meyer@company.test", "mei.lin@company.test", "finance@company.test"]
FULL_REFUND_REASONS = [
    "customer asked for a refund",
    "duplicate purchase",
    "charged twice: customer paid again after a timeout",
    "bought the wrong plan",
    "unused credits, refunded within 14 days",
    "chargeback threatened; refunded instead",
]
PARTIAL_REFUND_REASONS = [
    "partial refund: unused credits",
    "goodwill credit after the outage",
    "meant to buy a smaller plan; refunded the difference",
    "refund of the processing fee and part of the top-up",
]
FAILURES = [
    "Your card was declined.",
    "Insufficient funds.",
    "The card issuer declined the payment (do_not_honor).",
    "3-D Secure authentication failed.",
]

# Plan mix by count: Pro is the largest by revenue, Study and Standard by count.
PLAN_SHARE = {"study": 0.30, "standard": 0.30, "pro": 0.17, "max": 0.04, "custom": 0.19}
METHODS = [Method.STRIPE, Method.AIRWALLEX, Method.ALIPAY]
# Custom amounts are what people type: whole dollars, rounder as they grow, mostly small.
CUSTOM_DOLLARS = np.concatenate([np.arange(5, 100), np.arange(100, 1000, 5), np.arange(1000, 25001, 50)])
WEEKDAY_WEIGHT = np.array([1.05, 1.1, 1.1, 1.05, 1.0, 0.68, 0.62])  # Monday first
HOUR_WEIGHT = np.array([3, 2, 2, 2, 2, 3, 4, 5, 6, 7, 8, 8, 8, 8, 8, 8, 7, 7, 6, 6, 5, 5, 4, 4], dtype=float)

# --- people --------------------------------------------------------------------------------------

# script: (share, name order, [(first, latin, gender)], [(last masculine, last feminine, latin)], countries)
PEOPLE: dict[str, tuple] = {
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
SCRIPTS = tuple(PEOPLE)

# Company name stems per script: (native, latin slug for the email domain).
STEMS = {
    "latin": [("Northwind", "northwind"), ("Bluefin", "bluefin"), ("Brightpath", "brightpath"), ("Lumen", "lumen")],
    "accented": [("Vektor", "vektor"), ("Hélix", "helix"), ("Atlântico", "atlantico"), ("Nordlicht", "nordlicht")],
    "cyrillic": [("Вектор", "vektor"), ("Альфа Дата", "alfadata"), ("Северный Код", "severcode")],
    "greek": [("Ήλιος", "ilios"), ("Ωκεανός", "okeanos"), ("Πρόοδος", "proodos")],
    "chinese": [("星河", "xinghe"), ("云帆", "yunfan"), ("智源", "zhiyuan"), ("天启", "tianqi")],
    "japanese": [("未来技研", "miraigiken"), ("青空データ", "aozoradata"), ("光速ラボ", "kosokulab")],
    "korean": [("한빛소프트", "hanbitsoft"), ("누리데이터", "nuridata"), ("미래랩", "miraelab")],
    "arabic": [("النور للتقنية", "alnoortech"), ("الأفق الرقمي", "digitalhorizon")],
}
COMPANY_SHARE = 0.35
PERSONAL_DOMAINS = ["example.com", "example.net", "example.org", "mail.test"]


def digits(n: int, width: int) -> str:
    return f"{n % 10**width:0{width}d}"


_CN_CODE = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def _cn_credit_code(n: int) -> str:
    chars = []
    for _ in range(16):
        n, r = divmod(n, len(_CN_CODE))
        chars.append(_CN_CODE[r])
    return "91" + "".join(chars)


# country: (name, address format, streets, cities, postcode pattern ('#' = digit), company format, tax id)
COUNTRIES: dict[str, tuple] = {
    "US": (
        "United States",
        "{n} {street}, {city} {zip}",
        ["Market Street", "Main Street", "Broadway", "Elm Avenue"],
        ["San Francisco, CA", "Austin, TX", "New York, NY", "Seattle, WA"],
        "#####",
        "{s} Inc.",
        lambda r: f"{digits(r, 2)}-{digits(r // 100, 7)}",
    ),
    "GB": (
        "United Kingdom",
        "{n} {street}, {city} {zip}",
        ["High Street", "Baker Street", "King's Road"],
        ["London", "Manchester", "Edinburgh"],
        "EC# #AB",
        "{s} Ltd",
        lambda r: "GB" + digits(r, 9),
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
        lambda r: f"{digits(r, 2)} {digits(r // 100, 3)} {digits(r // 10**5, 3)} {digits(r // 10**8, 3)}",
    ),
    "NL": (
        "Netherlands",
        "{street} {n}, {zip} {city}",
        ["Herengracht", "Keizersgracht"],
        ["Amsterdam", "Utrecht"],
        "#### AB",
        "{s} B.V.",
        lambda r: "NL" + digits(r, 9) + "B01",
    ),
    "IE": (
        "Ireland",
        "{n} {street}, {city} {zip}",
        ["Grafton Street", "Dame Street"],
        ["Dublin"],
        "D0#",
        "{s} Ltd",
        lambda r: "IE" + digits(r, 7) + "A",
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
        lambda r: "DE" + digits(r, 9),
    ),
    "FR": (
        "France",
        "{n} {street}, {zip} {city}",
        ["rue de la Paix", "avenue des Champs-Élysées", "rue Sainte-Catherine"],
        ["Paris", "Lyon", "Bordeaux"],
        "#####",
        "{s} SAS",
        lambda r: "FR" + digits(r, 2) + digits(r // 100, 9),
    ),
    "ES": (
        "España",
        "{street} {n}, {zip} {city}",
        ["Calle de Alcalá", "Passeig de Gràcia"],
        ["Madrid", "Barcelona"],
        "#####",
        "{s} S.L.",
        lambda r: "ESB" + digits(r, 8),
    ),
    "PT": (
        "Portugal",
        "{street} {n}, {zip} {city}",
        ["Rua Augusta", "Avenida da Liberdade"],
        ["Lisboa", "Porto"],
        "####-###",
        "{s} Lda",
        lambda r: "PT" + digits(r, 9),
    ),
    "PL": (
        "Polska",
        "ul. {street} {n}, {zip} {city}",
        ["Marszałkowska", "Piotrkowska"],
        ["Warszawa", "Łódź", "Kraków"],
        "##-###",
        "{s} sp. z o.o.",
        lambda r: "PL" + digits(r, 10),
    ),
    "SE": (
        "Sverige",
        "{street} {n}, {zip} {city}",
        ["Drottninggatan", "Kungsgatan"],
        ["Stockholm", "Göteborg"],
        "### ##",
        "{s} AB",
        lambda r: "SE" + digits(r, 10) + "01",
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
        lambda r: "EL" + digits(r, 9),
    ),
    "CY": (
        "Κύπρος",
        "{street} {n}, {zip} {city}",
        ["Μακαρίου", "Ληδρας"],
        ["Λευκωσία", "Λεμεσός"],
        "####",
        "{s} Λτδ",
        lambda r: "CY" + digits(r, 8) + "L",
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
        lambda r: "T" + digits(r, 13),
    ),
    "KR": (
        "대한민국",
        "{city} {street} {n}, {zip}",
        ["테헤란로", "세종대로"],
        ["서울특별시 강남구", "서울특별시 중구"],
        "#####",
        "주식회사 {s}",
        lambda r: f"{digits(r, 3)}-{digits(r // 1000, 2)}-{digits(r // 10**5, 5)}",
    ),
    "AE": (
        "الإمارات العربية المتحدة",
        "{street} {n}، {city}",
        ["شارع الشيخ زايد", "شارع الكورنيش"],
        ["دبي", "أبوظبي"],
        "",
        "{s} ذ.م.م",
        lambda r: "100" + digits(r, 12),
    ),
    "SA": (
        "المملكة العربية السعودية",
        "{street} {n}، {city} {zip}",
        ["طريق الملك فهد", "شارع التحلية"],
        ["الرياض", "جدة"],
        "#####",
        "شركة {s}",
        lambda r: "3" + digits(r, 13) + "3",
    ),
    "EG": ("مصر", "{n} {street}، {city}", ["شارع التحرير", "شارع النيل"], ["القاهرة", "الجيزة"], "", "شركة {s}", None),
}
