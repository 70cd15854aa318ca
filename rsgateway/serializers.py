"""Mtx messages to typed service arguments, and balances to Mtx records.

Not DRF serializers: the parser already refused unknown fields and kept every value as text; here
each value is converted once and a bad value is a BadData (Result 10) naming the field.
"""

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from wallets.durations import RelativeTime, parse_duration
from wallets.exceptions import BadData
from wallets.models import Balance, BalanceKind

TOPUP = "MtxRequestSubscriberTopupBalance"
ADJUST = "MtxRequestSubscriberAdjustBalance"
REQUEST_FIELDS = {
    TOPUP: frozenset({"Amount", "Voucher", "EndTime", "StartTime"}),
    ADJUST: frozenset({"AdjustType", "Amount", "Reason", "StartTime", "EndTime"}),
}
# A JSON number is read as its exact text: 25.10 stays 25.10, never a float. Elsewhere a number
# is refused: a PIN or reference sent as one has already lost its leading zeros (docs/rest-api.md).
JSON_NUMBER_FIELDS = frozenset({"Amount", "AdjustType"})
AMOUNT_PATTERN = r"^[+-]?[0-9]{1,18}(\.[0-9]{1,18})?$"
_AMOUNT = re.compile(AMOUNT_PATTERN)
_MAX_TIME_TEXT = 64


def parse_amount(fields: dict[str, str]) -> Decimal:
    text = fields.get("Amount", "")
    if not text:
        raise BadData("Amount is required.", rule="T1")
    if not _AMOUNT.match(text):
        raise BadData("Amount must be a decimal number such as 25.00.", rule="T1")
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
        raise BadData("Amount must be a decimal number.", rule="T1") from None


def parse_time(fields: dict[str, str], name: str) -> dt.datetime | RelativeTime | None:
    """An absolute ISO 8601 time (`2026-12-31T00:00:00Z`) or a duration (`P4W`)."""
    text = fields.get(name)
    if text is None:
        return None
    if not text or len(text) > _MAX_TIME_TEXT or not text.isascii():
        # ASCII only: Django's parse_datetime reads any Unicode digit (٢٠٣٠ as 2030).
        raise BadData(f"{name} must be an ISO 8601 date and time or duration.")
    if text.lstrip("+-").startswith("P"):
        relative = parse_duration(text)
        if relative is None:
            raise BadData(f"{name} is not an ISO 8601 duration such as P4W.")
        return relative
    try:
        moment = parse_datetime(text)
    except ValueError:
        moment = None
    if moment is None:
        raise BadData(f"{name} must be an ISO 8601 date and time such as 2026-12-31T00:00:00Z.")
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, dt.UTC)
    try:
        # Stored in UTC: 9999-12-31T23:59:59-05:00 is past the last day a database can hold.
        return moment.astimezone(dt.UTC)
    except OverflowError:
        raise BadData(f"{name} is out of range.") from None


@dataclass(frozen=True)
class TopupRequest:
    amount: Decimal
    voucher: str
    end_time: dt.datetime | RelativeTime | None
    start_time: dt.datetime | RelativeTime | None

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> "TopupRequest":
        return cls(
            amount=parse_amount(fields),
            voucher=fields.get("Voucher", ""),
            end_time=parse_time(fields, "EndTime"),
            start_time=parse_time(fields, "StartTime"),
        )


@dataclass(frozen=True)
class AdjustRequest:
    adjust_type: int
    amount: Decimal
    reason: str
    start_time: dt.datetime | RelativeTime | None
    end_time: dt.datetime | RelativeTime | None

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> "AdjustRequest":
        adjust_type = fields.get("AdjustType", "")
        if adjust_type not in ("1", "2"):
            raise BadData("AdjustType must be 1 (credit) or 2 (debit).")
        return cls(
            adjust_type=int(adjust_type),
            amount=parse_amount(fields),
            reason=fields.get("Reason", ""),
            start_time=parse_time(fields, "StartTime"),
            end_time=parse_time(fields, "EndTime"),
        )


def _time(moment: dt.datetime | None) -> str | None:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if moment else None


def _amount(value: Decimal, precision: int) -> str:
    return str(value.quantize(Decimal(1).scaleb(-precision)))


def balance_record(balance: Balance, now: dt.datetime) -> dict:
    """One `MtxBalanceInfo` of a wallet reply. `balance.current` is the live interval, if any."""
    template = balance.template
    record = {
        "$": "MtxBalanceInfo",
        "ResourceId": balance.resource_id,
        "TemplateName": template.name,
        "Class": template.kind,
        "Currency": template.currency,
        "Amount": _amount(balance.amount, template.precision),
        "StartTime": _time(balance.start_time),
        "EndTime": _time(balance.end_time),
        "IsLive": balance.is_live(now),
        "IsMain": balance.is_main,
        "IsPrivate": template.is_private,
    }
    if balance.parent_id is not None:
        record["AggregateBalanceId"] = balance.parent_id
    if template.kind == BalanceKind.PERIODIC:
        interval = getattr(balance, "current", None)
        record["AvailableAmount"] = _amount(interval.amount if interval else 0, template.precision)
        record["IntervalStartTime"] = _time(interval.start_time) if interval else None
        record["IntervalEndTime"] = _time(interval.end_time) if interval else None
    return {key: value for key, value in record.items() if value is not None}
