"""Settlement reports as the providers export them: containers, encodings, header blocks and profiles.

``read_table`` turns the bytes finance downloaded into one recognised table: the profile (which report
it is), its header and its rows as text cells, and what was recognised on the way (container, encoding,
delimiter, the file's time zone). It never changes anything and refuses a whole file with one sentence
(``SettlementError``). ``billing_core.reconcile.settlement`` judges the rows against our books.

Containers: a CSV or text file; a ``.zip`` (the details CSV inside it is taken, never the summary or the
fee file; a zip inside the zip is refused); an ``.xlsx`` workbook (openpyxl, read-only, bounded).
Encodings: UTF-8 with or without a BOM, UTF-16 (with a BOM, or its NUL pattern), GBK read as GB18030.
The header is found, not assumed: ``#`` comment blocks, Alipay's ``Partner:…|Total_count:`` line,
Airwallex's account header block (Account Name, Account Id, Currency, Time Zone, From/To Date, Batch Id)
and blank lines before it are skipped; ``<END>`` and ``#`` lines after it end or are left out of the data.
The delimiter is the one of ``,`` ``|`` tab ``;`` under which the line names a profile's columns.

Profiles (headers match case-insensitively, ignoring spaces, underscores and hyphens; * = required):

Airwallex settlement details
    Source: Airwallex settlement report, the details CSV of its zip (older accounts: an .xlsx, or a CSV
    opening with the account header block). Transaction ID*, Merchant Order ID, Payment Intent ID,
    Transaction Type or Status, Currency*, Gross Amount* (or Amount), Fee, Net Amount, Settled At.
    Kind: PAYMENT, SETTLED, SUCCEEDED pay; REFUND, REFUNDED refund. Times: the block's Time Zone, else UTC.
Airwallex payment activity export
    Source: Airwallex web app, Payments > Activity > Export. Payment ID* (the payment intent), Order ID,
    Payment status*, Payment currency*, Payment amount*, Refunded amount, Created at.
    Kind: SUCCEEDED pays (any other status moved no money); a Refunded amount is a refund to match. UTC.
Airwallex balance activity report
    Source: Airwallex web app, Balances > Activity: one row per settlement batch or payout (Balance,
    Amount, Currency, Source type) and no order or intent id. Refused with a sentence.
Alipay SFTP settlement file
    Source: Alipay cross-border SFTP settlement file, ``|``-delimited: Partner_transaction_id*,
    Transaction_id*, Amount*, Rmb_amount, Fee, Settlement, Rmb_settlement, Currency*, Rate,
    Payment_time, Settlement_time, Type*, Status, Remarks, Trans_currency, Trans_amount.
    Kind: Type P pays, R refund. Times: yyyy-MM-dd HH:mm:ss, Beijing time (UTC+08:00).
Alipay SFTP transaction file
    Source: Alipay cross-border SFTP transaction file: a ``Partner:…|Total_count:`` line, then
    Partner_transaction_id*, Transaction_id*, Transaction_amount*, Charge_amount, Currency*,
    Payment_time, Transaction_type*. Kind: PAYMENT pays; REFUND, REVERSAL refund. UTC+08:00.
Alipay HK / website settlement file
    Source: AlipayHK and website (HK) settlement files, comma-separated: Partner_transaction_id*,
    Transaction_id*, Amount*, Fee, Settlement, Currency*, Payment_time, Settlement_time, Issue,
    Product, Type*, Status, Remarks, Original_partner_transaction_ID (a refund's original order).
    Kind: PAYMENT pays; REFUND, CANCEL refund. Times: MM/DD/YYYY HH:MM:SS, UTC+08:00.
Antom settlement details report
    Source: Antom (Alipay) settlement details report, camelCase: transactionId*, originalTransactionId
    (a refund's original payment), transactionRequestId, transactionType*, transactionAmountValue*,
    transactionCurrency*, settlementAmountValue, feeAmountValue, transactionCreateTime; last line
    ``<END>``. Kind: PAYMENT pays; REFUND, CANCEL refund. Times: ISO 8601 with offsets (UTC where none).
Alipay domestic trade bill (业务明细)
    Source: Alipay merchant trade bill: a GBK zip, ``#`` lines before and after the header; 支付宝交易号*,
    商户订单号, 业务类型*, 订单金额（元）*, 商家实收（元）, 服务费（元）, 完成时间; ids padded with a tab;
    refunds negative in 商家实收; no currency column (CNY). Kind: 交易 pays, 退款 refund. UTC+08:00.
Alipay settlement (lower-case columns)
    Source: Alipay+ settlement extract: partner_transaction_id (out_trade_no), transaction_id*
    (trade_no), currency*, amount*, fee, settlement_amount, trans_type (or type), payment_time.
    Kind: PAYMENT, TRADE pay; REFUND refund; no kind column: the person says. UTC+08:00.

Amounts are in major units and signed ("-20.60", "1,552.50"), read to the cent by ``billing_core.core.money``;
never a float (an .xlsx number becomes the shortest decimal text of the cell's value before anything
reads it). Times with an offset keep it; times without one are read in the file's stated time zone.
"""

from __future__ import annotations

import codecs
import csv
import enum
import io
import re
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from itertools import chain

from billing_core.core import money
from billing_core.core.errors import BillingError, InvalidAmount
from billing_core.pricing.catalog import Method

MAX_BYTES = 20 * 1024 * 1024  # what a page or the CLI takes, packed or not
MAX_ROWS = 50_000
MAX_COLUMNS = 200  # the widest report above has 30-odd columns
HEADER_SEARCH = 60  # lines (or sheet rows) looked at before the header
MAX_ZIP_ENTRIES = 50
MAX_XLSX_UNPACKED = 5 * MAX_BYTES  # an .xlsx holds about a fifth of its XML
DELIMITERS = (",", "|", "\t", ";")
_DELIMITER_NAMES = {",": "comma", "|": "pipe", "\t": "tab", ";": "semicolon"}


class SettlementError(BillingError):
    """The file as a whole cannot be read; nothing was changed."""


class RowKind(enum.StrEnum):
    PAYMENT = "payment"
    REFUND = "refund"
    OTHER = "other"  # a fee, chargeback, failed or cancelled payment: reported, never imported
    UNSTATED = "not stated"  # the file has no kind column and nobody said what its rows are


# What a kind column's values mean, unless a profile says otherwise (values compared lower-cased).
KIND_WORDS = {
    "p": RowKind.PAYMENT,
    "payment": RowKind.PAYMENT,
    "trade": RowKind.PAYMENT,
    "交易": RowKind.PAYMENT,
    "succeeded": RowKind.PAYMENT,
    "settled": RowKind.PAYMENT,
    "r": RowKind.REFUND,
    "refund": RowKind.REFUND,
    "refunded": RowKind.REFUND,
    "cancel": RowKind.REFUND,
    "reversal": RowKind.REFUND,
    "退款": RowKind.REFUND,
}
# Columns that say a row's kind in one report or another: whatever the profile, a file with one of
# these has its kinds read from it (a refund row is never taken for a payment for want of an alias).
KIND_HEADERS = ("type", "trans_type", "transType", "transactionType", "transaction type", "Payment status", "业务类型")


def header_key(header: str) -> str:
    """Header cells compare case-insensitively, without spaces, underscores, hyphens or BOMs."""
    text = header.replace("\ufeff", "").replace("（", "(").replace("）", ")")
    return re.sub(r"[\s_\-]+", "", text.strip().lower())


@dataclass(frozen=True)
class Profile:
    key: str
    name: str
    provider: Method
    columns: dict[str, tuple[str, ...]]  # field -> header aliases, best first
    required: tuple[str, ...]
    tells: tuple[str, ...] = ()  # headers only this report has
    kinds: dict[str, RowKind] = field(default_factory=dict)  # kind values that differ from KIND_WORDS
    kind_default: RowKind | None = None  # kind values not in the tables (None: RowKind.OTHER)
    tz: timezone = UTC  # when the file states none
    currency: str = ""  # implied when the file has no currency column
    refund_from_net: bool = False  # a refund's amount is the (negative) net column
    refused: str = ""  # a report that cannot settle orders: why

    def field_positions(self, keys: list[str]) -> dict[str, int]:
        positions: dict[str, int] = {}
        for name, aliases in self.columns.items():
            index = next((keys.index(header_key(a)) for a in aliases if header_key(a) in keys), None)
            if index is not None:
                positions[name] = index
        if "kind" not in positions:
            index = next((keys.index(header_key(a)) for a in KIND_HEADERS if header_key(a) in keys), None)
            if index is not None:
                positions["kind"] = index
        return positions

    def kind_of(self, value: str) -> RowKind:
        word = value.strip().lower()
        if word in self.kinds:
            return self.kinds[word]
        if self.kind_default is not None:
            return self.kind_default
        return KIND_WORDS.get(word, RowKind.OTHER)


BEIJING = timezone(timedelta(hours=8), "UTC+08:00")
_ID = ("partner_transaction_id", "out_trade_no", "merchant order id")
PROFILES: tuple[Profile, ...] = (
    Profile(
        "airwallex_settlement",
        "Airwallex settlement details",
        Method.AIRWALLEX,
        {
            "transaction_id": ("Transaction ID", "txn id"),
            "order_public_id": ("Merchant Order ID", "order id"),
            "provider_ref": ("Payment Intent ID", "intent id"),
            "currency": ("Currency", "Transaction Currency"),
            "amount": ("Gross Amount", "Amount", "Transaction Amount"),
            "fee": ("Fee", "Fees"),
            "net": ("Net Amount", "Net"),
            "kind": ("Transaction Type", "Status"),
            "time": ("Settled At", "Settlement Date", "Settled Date", "Created At"),
        },
        ("transaction_id", "currency", "amount"),
        tells=("Payment Intent ID", "Merchant Order ID", "Settled At"),
    ),
    Profile(
        "airwallex_payment_activity",
        "Airwallex payment activity export",
        Method.AIRWALLEX,
        {
            "provider_ref": ("Payment ID", "Payment Intent ID"),
            "order_public_id": ("Order ID", "Merchant Order ID"),
            "kind": ("Payment status",),
            "currency": ("Payment currency",),
            "amount": ("Payment amount",),
            "refunded": ("Refunded amount",),
            "time": ("Created at", "Payment created at"),
        },
        ("provider_ref", "kind", "currency", "amount"),
        tells=("Payment ID", "Payment status", "Payment amount", "Refunded amount"),
        kinds={"succeeded": RowKind.PAYMENT},
        kind_default=RowKind.OTHER,  # CANCELLED, FAILED, REQUIRES_… moved no money
    ),
    Profile(
        "airwallex_balance_activity",
        "Airwallex balance activity report",
        Method.AIRWALLEX,
        {"balance": ("Balance",), "amount": ("Amount",), "currency": ("Currency",), "source": ("Source type",)},
        ("balance", "amount", "currency"),
        tells=("Balance", "Source type", "Financial transaction ID"),
        refused=(
            "has one row per settlement batch or payout and no order or payment intent ids, so it cannot "
            "settle orders; download the settlement report (its details file) or the payment activity "
            "export instead."
        ),
    ),
    Profile(
        "alipay_sftp_settlement",
        "Alipay SFTP settlement file",
        Method.ALIPAY,
        {
            "order_public_id": ("Partner_transaction_id",),
            "transaction_id": ("Transaction_id",),
            "amount": ("Amount",),
            "currency": ("Currency",),
            "trans_amount": ("Trans_amount",),
            "trans_currency": ("Trans_currency",),
            "fee": ("Fee",),
            "net": ("Settlement",),
            "kind": ("Type",),
            "time": ("Payment_time",),
        },
        ("order_public_id", "transaction_id", "amount", "currency", "kind"),
        tells=("Rmb_amount", "Rmb_settlement", "Rate"),
        tz=BEIJING,
    ),
    Profile(
        "alipay_sftp_transaction",
        "Alipay SFTP transaction file",
        Method.ALIPAY,
        {
            "order_public_id": ("Partner_transaction_id",),
            "transaction_id": ("Transaction_id",),
            "amount": ("Transaction_amount",),
            "currency": ("Currency",),
            "trans_amount": ("Trans_amount",),
            "trans_currency": ("Trans_currency",),
            "fee": ("Charge_amount",),
            "kind": ("Transaction_type",),
            "time": ("Payment_time",),
        },
        ("order_public_id", "transaction_id", "amount", "currency", "kind"),
        tells=("Transaction_amount", "Charge_amount", "Transaction_type"),
        tz=BEIJING,
    ),
    Profile(
        "alipay_hk_website",
        "Alipay HK / website settlement file",
        Method.ALIPAY,
        {
            "order_public_id": ("Partner_transaction_id",),
            "transaction_id": ("Transaction_id",),
            "original_order_id": ("Original_partner_transaction_ID",),
            "amount": ("Amount",),
            "currency": ("Currency",),
            "fee": ("Fee",),
            "net": ("Settlement",),
            "kind": ("Type",),
            "time": ("Payment_time",),
        },
        ("order_public_id", "transaction_id", "amount", "currency", "kind"),
        tells=("Original_partner_transaction_ID", "Product", "Issue"),
        tz=BEIJING,
    ),
    Profile(
        "antom_settlement",
        "Antom settlement details report",
        Method.ALIPAY,
        {
            "transaction_id": ("transactionId",),
            "original_ref": ("originalTransactionId",),
            "order_public_id": ("transactionRequestId", "paymentRequestId"),
            "kind": ("transactionType",),
            "amount": ("transactionAmountValue",),
            "currency": ("transactionCurrency",),
            "net": ("settlementAmountValue",),
            "fee": ("feeAmountValue",),
            "time": ("transactionCreateTime", "transactionTime", "settlementTime"),
        },
        ("transaction_id", "kind", "amount", "currency"),
        tells=("transactionAmountValue", "transactionRequestId", "settlementBatchId", "settlementAmountValue"),
    ),
    Profile(
        "alipay_trade_bill",
        "Alipay domestic trade bill (业务明细)",
        Method.ALIPAY,
        {
            "transaction_id": ("支付宝交易号",),
            "order_public_id": ("商户订单号",),
            "kind": ("业务类型",),
            "amount": ("订单金额（元）", "订单金额"),
            "net": ("商家实收（元）", "商家实收"),
            "fee": ("服务费（元）", "服务费"),
            "time": ("完成时间", "创建时间"),
        },
        ("transaction_id", "kind", "amount"),
        tells=("支付宝交易号", "商户订单号", "业务类型"),
        tz=BEIJING,
        currency="CNY",
        refund_from_net=True,
    ),
    Profile(
        "alipay_settlement",
        "Alipay settlement (lower-case columns)",
        Method.ALIPAY,
        {
            "order_public_id": _ID,
            "transaction_id": ("transaction_id", "trade_no"),
            "currency": ("currency", "trans_currency"),
            "amount": ("amount", "trans_amount", "total_amount"),
            "fee": ("fee",),
            "net": ("settlement_amount",),
            "kind": ("trans_type",),
            "time": ("payment_time",),
        },
        ("transaction_id", "currency", "amount"),
        tells=("partner_transaction_id", "out_trade_no", "trans_type", "trade_no"),
        tz=BEIJING,
    ),
)
_ACCOUNT_BLOCK = {header_key(k): k for k in ("Account Name", "Account Id", "Account ID", "Currency", "Time Zone")} | {
    header_key(k): k for k in ("From Date", "To Date", "Batch Id", "Settlement Batch Id", "Report Type", "Merchant")
}


@dataclass(frozen=True)
class Table:
    """A recognised report: its rows as text cells, and what was recognised on the way."""

    profile: Profile
    header: list[str]
    positions: dict[str, int]
    rows: Iterator[tuple[int, list[str] | None, str]]  # (line, cells, "" or why the line is unreadable)
    tz: timezone
    currency: str
    recognised: str  # for the preview: "Alipay SFTP settlement file · pipe-separated · UTF-8"


# --- reading the container -------------------------------------------------------------------------


def read_table(data: bytes, filename: str, provider: Method | None = None) -> Table:
    """Recognise the report in ``data``; raise SettlementError only when the file as a whole is unusable."""
    if not data.strip():
        raise SettlementError(f"{filename} is empty.")
    if len(data) > MAX_BYTES:
        raise SettlementError(
            f"{filename} is {len(data) / 1024 / 1024:.1f} MB; the most accepted is {MAX_BYTES // 1024 // 1024} MB. "
            "Split it by date and import the parts."
        )
    notes: list[str] = []
    name = filename
    if data.startswith(b"PK\x03\x04"):
        archive = _open_zip(data, filename)
        if _is_xlsx(archive):
            return _xlsx_table(archive, data, filename, provider, notes)
        name, data = _zip_member(archive, filename)
        notes.append(f"{name} from the zip")
        if data.startswith(b"PK\x03\x04"):
            inner = _open_zip(data, name)
            if not _is_xlsx(inner):
                raise SettlementError(f"{filename} holds another zip ({name}); unpack it and import the report itself.")
            return _xlsx_table(inner, data, name, provider, notes)
    text, encoding = _decode(data, name)
    notes.append(encoding)
    return _text_table(text, name, provider, notes)


def _open_zip(data: bytes, filename: str) -> zipfile.ZipFile:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError):
        raise SettlementError(f"{filename} starts like a zip archive but cannot be opened as one.") from None
    if len(members) > MAX_ZIP_ENTRIES * 20:
        raise SettlementError(f"{filename} holds {len(members):,} files; a settlement report's zip holds a few.")
    return archive


def _is_xlsx(archive: zipfile.ZipFile) -> bool:
    names = set(archive.namelist())
    return "[Content_Types].xml" in names and "xl/workbook.xml" in names


def _member_name(info: zipfile.ZipInfo) -> str:
    """Alipay's zips name their files in GBK without saying so (zipfile then reads them as cp437)."""
    if info.flag_bits & 0x800:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("gb18030")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return info.filename


def _zip_member(archive: zipfile.ZipFile, filename: str) -> tuple[str, bytes]:
    """The details file of a report's zip: not its summary (汇总) or fee file."""
    files = [(i, _member_name(i)) for i in archive.infolist() if not i.is_dir()]
    if len(files) > MAX_ZIP_ENTRIES:
        raise SettlementError(f"{filename} holds {len(files):,} files; a settlement report's zip holds a few.")
    reports = [(i, n) for i, n in files if n.lower().endswith((".csv", ".txt", ".xlsx", ".zip"))]
    details = [(i, n) for i, n in reports if not re.search(r"summary|汇总|fee", n, re.IGNORECASE)]
    named = [(i, n) for i, n in details if re.search(r"detail|明细", n, re.IGNORECASE)]
    chosen = named if len(named) == 1 else details
    if len(chosen) != 1:
        shown = ", ".join(n for _, n in files[:6])[:300] or "nothing"
        raise SettlementError(
            f"Cannot tell which file in {filename} is the report's details (it holds {shown}); "
            "unpack it and import the details CSV."
        )
    info, name = chosen[0]
    if info.flag_bits & 0x1:
        raise SettlementError(f"{name} in {filename} is encrypted; unpack it with its password and import the CSV.")
    if info.file_size > MAX_BYTES:
        raise SettlementError(
            f"{name} in {filename} unpacks to {info.file_size / 1024 / 1024:.0f} MB; the most accepted is "
            f"{MAX_BYTES // 1024 // 1024} MB. Split the report by date and import the parts."
        )
    try:
        with archive.open(info) as member:
            data = member.read(MAX_BYTES + 1)  # zipfile stops at the declared size, so this bounds a bomb
    except (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, EOFError, OSError, ValueError):
        raise SettlementError(f"{name} in {filename} cannot be unpacked (the zip is damaged).") from None
    if len(data) > MAX_BYTES:
        raise SettlementError(f"{name} in {filename} unpacks to more than {MAX_BYTES // 1024 // 1024} MB.")
    return name, data


def _decode(data: bytes, filename: str) -> tuple[str, str]:
    if data.startswith(codecs.BOM_UTF8):
        attempts = [("utf-8-sig", "UTF-8 with BOM")]
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        attempts = [("utf-16", "UTF-16")]
    elif len(data) >= 4 and data[1:200:2].count(0) > 0.9 * len(data[1:200:2]) and 0 not in data[0:200:2]:
        attempts = [("utf-16-le", "UTF-16")]
    elif len(data) >= 4 and data[0:200:2].count(0) > 0.9 * len(data[0:200:2]) and 0 not in data[1:200:2]:
        attempts = [("utf-16-be", "UTF-16")]
    else:
        attempts = [("utf-8", "UTF-8"), ("gb18030", "GBK/GB18030")]
    text, label, error = None, "", None
    for codec, name in attempts:
        try:
            text, label = data.decode(codec), name
            break
        except UnicodeDecodeError as exc:
            error = exc
    if text is None:
        raise SettlementError(
            f"{filename} is not text in UTF-8, GBK or UTF-16 (byte 0x{data[error.start]:02x} at position "
            f"{error.start}); export the report again as CSV."
        )
    if "\x00" in text:
        raise SettlementError(f"{filename} contains NUL bytes: it is a binary file, not a CSV report.")
    sample = text[:4096]
    controls = sum(1 for c in sample if c < " " and c not in "\t\r\n")
    if controls > len(sample) // 100:
        raise SettlementError(f"{filename} is full of control characters: it is a binary file, not a CSV report.")
    return text, label


# --- finding the header --------------------------------------------------------------------------


@dataclass
class _Found:
    profile: Profile
    header: list[str]
    positions: dict[str, int]
    index: int  # line or row index of the header (0-based)
    delimiter: str = ","


def _skipped(line: str) -> bool:
    text = line.strip().strip("\ufeff")
    return not text or text.startswith("#") or text.upper() == "<END>" or text.lower().startswith("partner:")


def _account_field(cells: list[str], meta: dict[str, str]) -> bool:
    filled = [c.strip() for c in cells if c.strip()]
    if len(filled) == 2 and header_key(filled[0].rstrip(":")) in _ACCOUNT_BLOCK:
        meta[_ACCOUNT_BLOCK[header_key(filled[0].rstrip(":"))]] = filled[1][:100]
        return True
    return False


def _best(cells: list[str], provider: Method | None) -> tuple[Profile, dict[str, int]] | None:
    """The profile whose columns the header names, the most specific first; None if none does."""
    keys = [header_key(c) for c in cells]
    scored = []
    for profile in PROFILES:
        if provider is not None and profile.provider is not provider:
            continue
        positions = profile.field_positions(keys)
        if all(f in positions for f in profile.required):
            tells = sum(1 for t in profile.tells if header_key(t) in keys)
            scored.append((tells, len(positions), -PROFILES.index(profile), profile, positions))
    if not scored:
        return None
    scored.sort(key=lambda s: s[:3], reverse=True)
    top = scored[0]
    rivals = [s for s in scored[1:] if s[:2] == top[:2] and s[3].provider is not top[3].provider]
    if rivals:
        raise SettlementError("The columns fit both an Airwallex and an Alipay report; choose the provider.")
    return top[3], top[4]


def _nearest_miss(cells_seen: Iterable[list[str]], provider: Method | None) -> str:
    """For a refusal: the profile the file most looks like and the required columns it lacks."""
    best = None
    for cells in cells_seen:
        keys = [header_key(c) for c in cells]
        for profile in PROFILES:
            if provider is not None and profile.provider is not provider:
                continue
            tells = sum(1 for t in profile.tells if header_key(t) in keys)
            if tells and (best is None or tells > best[0]):
                positions = profile.field_positions(keys)
                missing = [profile.columns[f][0] for f in profile.required if f not in positions]
                best = (tells, profile, missing, cells)
    if best is None:
        return ""
    _, profile, missing, cells = best
    shown = ", ".join(c.strip() for c in cells if c.strip())[:300]
    return (
        f"does not look like an {profile.provider.value.title()} settlement file ({profile.name}): it is missing "
        f"the required column{'s' if len(missing) > 1 else ''} {', '.join(missing)} (found: {shown})."
    )


def _refuse_unrecognised(filename: str, cells_seen: list[list[str]], provider: Method | None) -> SettlementError:
    miss = _nearest_miss(cells_seen, provider)
    if miss:
        return SettlementError(f"{filename} {miss}")
    first = next((", ".join(c.strip() for c in cells if c.strip()) for cells in cells_seen), "")
    which = provider.value.title() if provider else "Airwallex or Alipay"
    return SettlementError(
        f"Cannot tell from the columns of {filename} which {which} report it is "
        f"(its first line reads {_short(first, 80)!r}); choose the provider, or export the settlement details."
    )


def _check_width(cells: list[str], filename: str, line: int) -> None:
    if len(cells) > MAX_COLUMNS:
        raise SettlementError(
            f"Line {line} of {filename} has more than {MAX_COLUMNS} columns; settlement reports have fewer."
        )


def _text_table(text: str, filename: str, provider: Method | None, notes: list[str]) -> Table:
    meta: dict[str, str] = {}
    seen: list[list[str]] = []
    found: _Found | None = None
    start = 0
    for index in range(HEADER_SEARCH):
        if start >= len(text):
            break
        end = text.find("\n", start)
        end = len(text) if end < 0 else end
        line = text[start:end].rstrip("\r")
        if len(line) > 100_000:
            raise SettlementError(
                f"Line {index + 1} of {filename} is {len(line):,} characters long; no report's header or "
                "account line is anywhere near that."
            )
        if not _skipped(line):
            for delimiter in DELIMITERS:
                if delimiter not in line and delimiter != ",":
                    continue
                cells = _cells(line, delimiter)
                _check_width(cells, filename, index + 1)
                if delimiter == "," and _account_field(cells, meta):
                    break
                match = _best(cells, provider)
                if match:
                    found = _Found(match[0], cells, match[1], index, delimiter)
                    break
                seen.append(cells)
        if found:
            break
        start = end + 1
    if found is None:
        raise _refuse_unrecognised(filename, seen, provider)
    _refuse_report(found.profile, filename)
    notes.insert(0, f"{_DELIMITER_NAMES[found.delimiter]}-separated")
    body = text[start:]

    def rows() -> Iterator[tuple[int, list[str] | None, str]]:
        reader = csv.reader(io.StringIO(body, newline=""), delimiter=found.delimiter)
        next(reader)
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield found.index + reader.line_num, None, f"not readable as CSV: {_short(str(exc), 120)}"
                continue
            first = cells[0].strip() if cells else ""
            if first.upper() == "<END>":
                return
            if first.startswith("#"):
                continue
            yield found.index + reader.line_num, cells, ""

    return _table(found, rows(), meta, notes)


def _cells(line: str, delimiter: str) -> list[str]:
    try:
        return next(csv.reader([line], delimiter=delimiter), [])
    except csv.Error:
        return []


def _refuse_report(profile: Profile, filename: str) -> None:
    if profile.refused:
        raise SettlementError(f"{filename} is an {profile.name}: it {profile.refused}")


def _table(found: _Found, rows, meta: dict[str, str], notes: list[str]) -> Table:
    tz = found.profile.tz
    if "Time Zone" in meta:
        tz = parse_zone(meta["Time Zone"])
        notes.append(f"account header block (time zone {meta['Time Zone']}")
        if "From Date" in meta:
            notes[-1] += f", {meta['From Date']} to {meta.get('To Date', '…')}"
        notes[-1] += ")"
    currency = found.profile.currency or meta.get("Currency", "").upper()[:3]
    if "currency" not in found.positions and currency:
        notes.append(f"no currency column: {currency} implied")
    notes.append(f"times without an offset read as {tz.tzname(None)}")
    return Table(
        found.profile,
        found.header,
        found.positions,
        rows,
        tz,
        currency,
        " · ".join([found.profile.name, *notes]),
    )


def _xlsx_table(archive: zipfile.ZipFile, data: bytes, filename: str, provider: Method | None, notes) -> Table:
    import openpyxl

    unpacked = sum(i.file_size for i in archive.infolist())
    if unpacked > MAX_XLSX_UNPACKED:
        raise SettlementError(
            f"{filename} unpacks to {unpacked / 1024 / 1024:.0f} MB of spreadsheet; the most accepted is "
            f"{MAX_XLSX_UNPACKED // 1024 // 1024} MB. Export the report as CSV, split by date."
        )
    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        sheet = next((s for s in book.worksheets if re.search(r"detail|明细", s.title, re.I)), book.worksheets[0])
        values = sheet.iter_rows(values_only=True, max_col=MAX_COLUMNS + 1)
        head = [[_cell_text(v) for v in row] for _, row in zip(range(HEADER_SEARCH), values, strict=False)]
    except SettlementError:
        raise
    except Exception:  # noqa: BLE001 - openpyxl raises many kinds on a damaged workbook; all mean "unreadable"
        raise SettlementError(f"{filename} cannot be read as an Excel workbook (.xlsx); export it again.") from None
    notes.insert(0, f"Excel sheet {_short(sheet.title, 31)!r}")
    meta: dict[str, str] = {}
    seen: list[list[str]] = []
    found = None
    for index, cells in enumerate(head):
        cells = _trimmed(cells)
        _check_width(cells, filename, index + 1)
        if not cells or _skipped(cells[0] if len(cells) == 1 else "x") or _account_field(cells, meta):
            continue
        match = _best(cells, provider)
        if match:
            found = _Found(match[0], cells, match[1], index)
            break
        seen.append(cells)
    if found is None:
        book.close()
        raise _refuse_unrecognised(filename, seen, provider)
    _refuse_report(found.profile, filename)

    def rows() -> Iterator[tuple[int, list[str] | None, str]]:
        try:
            width = len(found.header)
            later = ([_cell_text(v) for v in row] for row in values)
            for number, cells in enumerate(chain(head[found.index + 1 :], later), start=found.index + 2):
                cells = _trimmed(cells)
                if cells and cells[0].strip().upper() == "<END>":
                    return
                yield number, cells + [""] * (width - len(cells)), ""
        except Exception:  # noqa: BLE001 - a workbook damaged past its first rows
            raise SettlementError(f"{filename} is damaged after its first rows; export it again.") from None
        finally:
            book.close()

    return _table(found, rows(), meta, notes)


def _trimmed(cells: list[str]) -> list[str]:
    end = len(cells)
    while end and not cells[end - 1]:
        end -= 1
    return cells[:end]


def _cell_text(value) -> str:
    """A workbook cell as the text a CSV export would hold; numbers by their shortest decimal form."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).upper()
    if isinstance(value, float):
        return format(Decimal(repr(value)), "f")
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


# --- cells: amounts and times ----------------------------------------------------------------------


class BadCell(Exception):
    """One cell of a row cannot be read; the row is reported as malformed."""


def signed_cents(text: str, what: str) -> int | None:
    """'-1,552.50' -> -155250; '' -> None; '0.00' -> 0. Major units, exact to the cent."""
    text = text.strip()
    if not text:
        return None
    sign = 1
    if text[:1] in ("-", "−"):
        sign, text = -1, text[1:].strip()
    elif text[:1] == "+":
        text = text[1:].strip()
    if not re.fullmatch(r"[\d.,]{1,40}", text):
        raise BadCell(f"bad {what} {_short(text)!r}")
    if re.fullmatch(r"0*(\.0*)?", text):
        return 0
    try:
        return sign * money.parse_amount(text)
    except InvalidAmount as exc:
        raise BadCell(f"bad {what} {_short(text)!r}: {exc}") from None


_ZONE = re.compile(r"^(?:UTC|GMT)?\s*([+-])(\d{1,2})(?::?(\d{2}))?$", re.IGNORECASE)
_TIME_FORMATS = ("%m/%d/%Y %H:%M:%S", "%m/%d/%Y", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d", "%Y.%m.%d %H:%M:%S", "%Y%m%d%H%M%S")


def parse_zone(text: str) -> timezone:
    """'UTC+02:00', 'GMT+8', 'UTC' -> a fixed offset."""
    text = text.strip()
    if text.upper() in ("UTC", "GMT", "Z", "UTC+0", "UTC+00:00"):
        return UTC
    match = _ZONE.match(text)
    if not match or int(match.group(2)) > 14:
        raise SettlementError(f"The file's time zone {_short(text)!r} is not an offset such as UTC+02:00.")
    sign = -1 if match.group(1) == "-" else 1
    offset = timedelta(hours=int(match.group(2)), minutes=int(match.group(3) or 0))
    return timezone(sign * offset, f"UTC{match.group(1)}{match.group(2).zfill(2)}:{match.group(3) or '00'}")


def parse_time(text: str, tz: timezone) -> datetime | None:
    """A report's time as UTC: its own offset if it has one, else the file's time zone ``tz``."""
    text = text.strip()
    if not text:
        return None
    if len(text) > 40:
        raise BadCell(f"bad time {_short(text)!r}")
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        when = None
        for pattern in _TIME_FORMATS:
            try:
                when = datetime.strptime(text, pattern)
                break
            except ValueError:
                continue
        if when is None:
            raise BadCell(f"bad time {_short(text)!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=tz)
    return when.astimezone(UTC)


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
