"""The Advanced Search of the top-up cards section: one definition of "the current search".

`CardFilter` serves the admin changelist, Mass Edit, Delete all and the export (through
`cards.selectors.card_list`). Every field filters through an index:

| field                       | query                                   | index                    |
|-----------------------------|-----------------------------------------|--------------------------|
| serial_from / serial_to     | series = S AND number >= / <= N         | card_serial_unique       |
| pin_ref (or pin)            | pin_digest IN (HMAC under every key)    | pin_digest unique        |
| status                      | derived status (see TopUpCardQuerySet)  | card_newest_first, …     |
| reseller                    | reseller_id = R                         | card_reseller_newest     |
| amount_min / amount_max     | amount >= / <=                          | card_amount              |
| expires_from / expires_to   | expires_at in [from 00:00, to+1 00:00)  | expires_at               |
| client                      | activated_by_id IN (ids by name)        | activated_by_id          |
| activated_from / _to        | activated_at in [from 00:00, to+1 00:00)| activated_at             |
| batch, series               | batch_id = B / series = S               | batch_id / serial        |

A PIN never travels in a URL: the admin's search form is POSTed, the PIN's digests are kept in
the session under a random key, and the URL carries only that key (`pin_ref`).
"""

import datetime as dt
import re
import secrets

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone

from subscribers.models import Reseller, Subscriber
from subscribers.selectors import staff_reseller

from . import pins
from .models import TopUpCard
from .models.cards import CardStatus
from .models.formats import (
    PIN_MAX_LENGTH,
    PIN_MIN_LENGTH,
    SERIAL_NUMBER_DIGITS,
    SERIES_FORMAT,
    SERIES_MAX_DIGITS,
)
from .services.scope import pin_search_refusal

_SERIAL = re.compile(
    rf"\s*({SERIES_FORMAT.pattern})(?:\s*-\s*([0-9]{{1,{SERIAL_NUMBER_DIGITS}}}))?\s*"
)
PIN_SEARCHES_SESSION_KEY = "cards_pin_searches"
_MAX_REMEMBERED_PIN_SEARCHES = 20
PIN_BY_FORM = "Search by PIN Code through the Advanced Search form."
# A client name matching more subscribers than this is too vague to search by.
MAX_CLIENT_MATCHES = 1_000

SEARCH_FIELDS = (
    "serial_from",
    "serial_to",
    "pin_ref",
    "status",
    "reseller",
    "amount_min",
    "amount_max",
    "expires_from",
    "expires_to",
    "client",
    "activated_from",
    "activated_to",
    "batch",
    "series",
)


def parse_serial(value: str) -> tuple[str, int | None]:
    """`3-004206576` → ("3", 4206576); `3` → ("3", None) meaning the whole series."""
    match = _SERIAL.fullmatch(value or "")
    if not match:
        raise ValidationError(
            "Enter a serial number such as 3-004206576, or a series such as 3.", code="serial"
        )
    series, number = match.groups()
    return series, int(number) if number is not None else None


PIN_SEARCH_EXPIRED = "This PIN search has expired: type the PIN again."


def _remember(session, entry) -> str:
    stored = dict(session.get(PIN_SEARCHES_SESSION_KEY, {}))
    while len(stored) >= _MAX_REMEMBERED_PIN_SEARCHES:
        stored.pop(next(iter(stored)))
    token = secrets.token_urlsafe(12)
    stored[token] = entry
    session[PIN_SEARCHES_SESSION_KEY] = stored
    return token


def remember_digests(session, digests: list[bytes]) -> str:
    """Keep a searched PIN's digests (never the PIN) in the session; return the key for the URL.

    The search itself is checked and audited first (cards.services.pin_search.card_pin_search).
    """
    return _remember(session, [digest.hex() for digest in digests])


def remember_refusal(session, reason: str) -> str:
    """Keep why a typed PIN cannot be searched for; return the key for the URL.

    The search then stays in the URL as invalid (the reason beside the PIN Code field, no card
    selected) rather than being dropped: a dropped PIN would leave the other fields, or none,
    and Mass Edit or Delete all from there would act on cards the operator did not mean.
    """
    return _remember(session, {"refused": reason})


def remembered_pin_search(session, token: str):
    """The digests (list of hex) or refusal ({"refused": reason}) kept under `token`, or None."""
    return (session or {}).get(PIN_SEARCHES_SESSION_KEY, {}).get(token)


def _day_start(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def _day_after(day: dt.date) -> dt.datetime:
    return _day_start(day + dt.timedelta(days=1))


class CardSearchForm(forms.Form):
    """Field and cross-field rules of the Advanced Search (django-filter builds the fields).

    Everything is checked here, before any filtering: an invalid field must never be dropped
    silently, since Mass Edit and Delete all act on what the search selects.
    """

    client_ids: list[int] | None = None
    searcher = None
    """Who searches (set by CardFilter); None is the system, e.g. a management command."""
    session = None
    """Where the PIN searches (`pin_ref`) are kept (set by CardFilter)."""

    def clean(self):
        data = super().clean()
        for field in ("serial_from", "serial_to"):
            if data.get(field):
                try:
                    parse_serial(data[field])
                except ValidationError as error:
                    self.add_error(field, error)
        if data.get("pin"):
            # A person's search by PIN goes through the audited card_pin_search (pin_ref).
            error = PIN_BY_FORM if self.searcher is not None else pin_search_error(data["pin"])
            if error:
                self.add_error("pin", error)
        if data.get("pin_ref"):
            refusal = pin_search_refusal(self.searcher)
            stored = remembered_pin_search(self.session, data["pin_ref"])
            if refusal is None and stored is None:
                refusal = PIN_SEARCH_EXPIRED
            elif refusal is None and isinstance(stored, dict):
                refusal = stored.get("refused") or PIN_SEARCH_EXPIRED
            if refusal:
                self.add_error("pin_ref", refusal)
        if data.get("client"):
            ids = list(
                Subscriber.objects.filter(name__icontains=data["client"].strip())
                .order_by()
                .values_list("pk", flat=True)[: MAX_CLIENT_MATCHES + 1]
            )
            if len(ids) > MAX_CLIENT_MATCHES:
                self.add_error(
                    "client",
                    f"More than {MAX_CLIENT_MATCHES:,} clients match: type more of the name.",
                )
            self.client_ids = ids
        ranges = [
            ("serial_from", "serial_to", "Serial Number"),
            ("amount_min", "amount_max", "Amount"),
            ("expires_from", "expires_to", "Expiry Date"),
            ("activated_from", "activated_to", "Activation Date"),
        ]
        for low, high, label in ranges:
            start, end = data.get(low), data.get(high)
            if start in (None, "") or end in (None, ""):
                continue
            if self.has_error(low) or self.has_error(high):
                continue
            if low == "serial_from":
                (series_a, number_a), (series_b, number_b) = parse_serial(start), parse_serial(end)
                if series_a != series_b:
                    self.add_error(high, "A serial number range must stay within one series.")
                elif number_a is not None and number_b is not None and number_a > number_b:
                    self.add_error(high, f"{label}: the end comes before the start.")
            elif start > end:
                self.add_error(high, f"{label}: the end comes before the start.")
        return data


MAX_ID = 2**63 - 1


class IdFilter(django_filters.NumberFilter):
    """A row id: a whole number in the id range (a decimal `1.5` would match row 1, and a
    number past 64 bits is an OverflowError on SQLite)."""

    field_class = forms.IntegerField


def _reseller_choices(request):
    user = getattr(request, "user", None)
    scoped = staff_reseller(user) if user is not None else None
    if scoped is not None:
        return Reseller.objects.filter(pk=scoped.pk)
    return Reseller.objects.order_by("name")


class CardFilter(django_filters.FilterSet):
    serial_from = django_filters.CharFilter(
        label="Serial Number from", method="filter_serial_from", max_length=20
    )
    serial_to = django_filters.CharFilter(
        label="Serial Number to", method="filter_serial_to", max_length=20
    )
    pin = django_filters.CharFilter(
        label="PIN Code", method="filter_pin", max_length=64, help_text="Exact PIN."
    )
    pin_ref = django_filters.CharFilter(method="filter_pin_ref", max_length=64)
    status = django_filters.ChoiceFilter(
        label="Status", choices=CardStatus.choices, method="filter_status", empty_label="any"
    )
    reseller = django_filters.ModelChoiceFilter(
        label="Company", queryset=_reseller_choices, empty_label="all resellers"
    )
    amount_min = django_filters.NumberFilter(
        label="Amount from", field_name="amount", lookup_expr="gte"
    )
    amount_max = django_filters.NumberFilter(
        label="Amount to", field_name="amount", lookup_expr="lte"
    )
    expires_from = django_filters.DateFilter(
        label="Expiry Date from", field_name="expires_at", method="filter_day_from"
    )
    expires_to = django_filters.DateFilter(
        label="Expiry Date to", field_name="expires_at", method="filter_day_to"
    )
    client = django_filters.CharFilter(label="Client", method="filter_client", max_length=200)
    activated_from = django_filters.DateFilter(
        label="Activation Date from", field_name="activated_at", method="filter_day_from"
    )
    activated_to = django_filters.DateFilter(
        label="Activation Date to", field_name="activated_at", method="filter_day_to"
    )
    batch = IdFilter(label="Batch", field_name="batch_id", min_value=1, max_value=MAX_ID)
    series = django_filters.CharFilter(
        label="Series", method="filter_series", max_length=SERIES_MAX_DIGITS
    )

    class Meta:
        form = CardSearchForm
        fields: list[str] = []

    @property
    def form(self):
        if not hasattr(self, "_form"):
            form = super().form
            form.searcher = getattr(self.request, "user", None)
            form.session = getattr(self.request, "session", None)
        return self._form

    # --- one method per field; each is a single indexed condition ---------------------------

    def filter_serial_from(self, queryset, name, value):
        series, number = parse_serial(value)
        queryset = queryset.filter(series=series)
        return queryset.filter(number__gte=number) if number is not None else queryset

    def filter_serial_to(self, queryset, name, value):
        series, number = parse_serial(value)
        queryset = queryset.filter(series=series)
        return queryset.filter(number__lte=number) if number is not None else queryset

    def filter_series(self, queryset, name, value):
        return queryset.filter(series=value.strip())

    def filter_pin(self, queryset, name, value):
        return queryset.filter(pin_digest__in=pins.pin_digests(pins.normalize_pin(value)))

    def filter_pin_ref(self, queryset, name, value):
        stored = remembered_pin_search(getattr(self.request, "session", None), value)
        if not isinstance(stored, list) or not stored:
            # Refused by the form first; never broader than the search asked.
            return queryset.none()
        return queryset.filter(pin_digest__in=[bytes.fromhex(d) for d in stored])

    def filter_status(self, queryset, name, value):
        return queryset.with_status(value)

    def filter_client(self, queryset, name, value):
        ids = self.form.client_ids
        if ids is None:
            matches = Subscriber.objects.filter(name__icontains=value.strip())
            ids = list(matches.values_list("pk", flat=True))
        return queryset.filter(activated_by_id__in=ids)

    def filter_day_from(self, queryset, name, value):
        return queryset.filter(**{f"{name}__gte": _day_start(value)})

    def filter_day_to(self, queryset, name, value):
        if value >= dt.date.max:
            return queryset.filter(**{f"{name}__isnull": False})  # to the end of the calendar
        return queryset.filter(**{f"{name}__lt": _day_after(value)})

    @property
    def is_active(self) -> bool:
        """Whether any field narrows the search (the panel then opens and says "active")."""
        return any(self.data.get(name) not in (None, "") for name in self.filters)


def pin_shape_error(pin: str) -> str | None:
    """Why a normalised PIN cannot be any card's PIN, without looking it up; or None."""
    if not (PIN_MIN_LENGTH <= len(pin) <= PIN_MAX_LENGTH and pin.isascii() and pin.isdigit()):
        return "This is not a valid PIN: please check the code."
    return None


def pin_search_error(typed: str) -> str | None:
    """Why a typed PIN cannot be a card's PIN, or None: for the system's searches (no person
    learns the answer; a person's search is cards.services.pin_search.card_pin_search).

    A PIN whose Luhn check digit fails is most likely mistyped, but imported cards may carry
    PINs without one: it is refused only when no card has it (one index lookup).
    """
    pin = pins.normalize_pin(typed)
    error = pin_shape_error(pin)
    if error:
        return error
    if not pins.luhn_valid(pin):
        if not TopUpCard.objects.filter(pin_digest__in=pins.pin_digests(pin)).exists():
            return "This is not a valid PIN: please check the code."
    return None
