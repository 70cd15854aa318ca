"""Helpers for the reliability tests: a plain HTTP client, a database snapshot, the invariants.

The HTTP client speaks to a real server (the live server thread, gunicorn) over loopback, with
cookies and CSRF like a browser, Basic auth for the REST API, and never raises on an HTTP error
status: a test looks at what the caller would see.
"""

import base64
import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from decimal import Decimal
from io import StringIO
from xml.sax.saxutils import escape

from django.core.management import call_command
from django.db.models import Count, Sum

from cards.models import CardBatch, CardEvent, CardSeries, TopUpCard
from wallets.models import Balance, BalanceEvent, ExternalVoucher, LedgerEntry, LedgerKind

TOPUP = "MtxRequestSubscriberTopupBalance"
ADJUST = "MtxRequestSubscriberAdjustBalance"


@dataclass
class Reply:
    status: int
    body: str
    location: str = ""

    def result(self) -> int | None:
        """The MtxResponse Result code of an API reply (None when the body is not one)."""
        match = re.search(r"<Result>(-?\d+)</Result>|\"Result\":\s*(-?\d+)", self.body)
        return int(match.group(1) or match.group(2)) if match else None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class HttpClient:
    """A cookie-keeping loopback client. `follow=False`: a redirect is returned as the reply."""

    def __init__(self, base: str, *, follow: bool = True, timeout: float = 30):
        self.base = base.rstrip("/")
        self.jar = http.cookiejar.CookieJar()
        handlers = [urllib.request.HTTPCookieProcessor(self.jar)]
        if not follow:
            handlers.append(_NoRedirect())
        self.opener = urllib.request.build_opener(*handlers)
        self.timeout = timeout

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.jar if c.name == name), None)

    def set_cookie(self, name: str, value: str) -> None:
        host = urllib.parse.urlsplit(self.base).hostname
        if "." not in host:
            host += ".local"  # how http.cookiejar names a dotless host such as localhost
        self.jar.set_cookie(
            http.cookiejar.Cookie(
                0,
                name,
                value,
                None,
                False,
                host,
                False,
                False,
                "/",
                True,
                False,
                None,
                False,
                None,
                None,
                {},
            )  # fmt: skip
        )

    def request(self, method: str, path: str, data: bytes | None = None, headers=None) -> Reply:
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers=headers or {}
        )
        try:
            with self.opener.open(request, timeout=self.timeout) as response:
                return Reply(response.status, response.read().decode(errors="replace"))
        except urllib.error.HTTPError as error:
            body = error.read().decode(errors="replace")
            return Reply(error.code, body, error.headers.get("Location", ""))

    def get(self, path: str) -> Reply:
        return self.request("GET", path)

    def post_form(self, path: str, fields: dict) -> Reply:
        """A form POST with the CSRF token of the cookie (GET a page first to have one)."""
        pairs = list(fields.items()) if isinstance(fields, dict) else list(fields)
        pairs.append(("csrfmiddlewaretoken", self.cookie("csrftoken") or ""))
        body = urllib.parse.urlencode(pairs).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        return self.request("POST", path, body, headers)

    def login_as(self, session_key: str) -> None:
        self.set_cookie("sessionid", session_key)


def session_key_for(user) -> str:
    """A logged-in session in the database for `user` (what a login form would create)."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def basic_auth(username: str, password: str = "secret") -> dict:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def mtx_xml(root: str, **fields) -> bytes:
    inner = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in fields.items())
    return f"<{root}>{inner}</{root}>".encode()


def api_put(client: HttpClient, username: str, external_id: str, resource_id: int, op, **fields):
    """PUT a top-up (`op="topup"`) or adjustment (`op="adjustment"`) in the XML binding."""
    root = TOPUP if op == "topup" else ADJUST
    path = f"/rsgateway/data/v3/subscription/ExternalId+{external_id}/wallet/{resource_id}/{op}"
    headers = {"Content-Type": "application/xml", **basic_auth(username)}
    return client.request("PUT", path, mtx_xml(root, **fields), headers)


# --- What the database holds, and its invariants ------------------------------------------------


def state() -> dict:
    """Everything a top-up, redemption, generation or mass edit may change."""
    return {
        "balances": list(Balance.objects.order_by("pk").values_list("pk", "amount", "end_time")),
        "ledger": list(
            LedgerEntry.objects.order_by("pk").values_list("pk", "balance_id", "amount", "voucher")
        ),
        "balance_events": BalanceEvent.objects.count(),
        "cards": list(
            TopUpCard.objects.order_by("pk").values_list(
                "pk",
                "series",
                "number",
                "activated_at",
                "ledger_entry_id",
                "expires_at",
                "reseller_id",
                "blocked",
            )  # fmt: skip
        ),
        "card_events": CardEvent.objects.count(),
        "batches": CardBatch.objects.count(),
        "series": list(CardSeries.objects.values_list("series", flat=True)),
        "external_vouchers": ExternalVoucher.objects.count(),
    }


def check_ledger() -> None:
    """`manage.py check_ledger`: every balance and interval equals the sum of its entries."""
    call_command("check_ledger", stdout=StringIO(), stderr=StringIO())


def assert_books_balance() -> None:
    """check_ledger, the sum of balances equals the sum of the ledger, and no voucher (card
    serial or external reference) credited more than once without a reversal."""
    check_ledger()
    total_balances = Balance.objects.aggregate(s=Sum("amount"))["s"] or Decimal(0)
    total_ledger = LedgerEntry.objects.aggregate(s=Sum("amount"))["s"] or Decimal(0)
    assert total_balances == total_ledger
    credited_twice = (
        LedgerEntry.objects.filter(kind__in=[LedgerKind.TOPUP, LedgerKind.REDEMPTION])
        .values("voucher")
        .annotate(n=Count("pk"))
        .filter(n__gt=1)
    )
    assert list(credited_twice) == []
    redeemed = TopUpCard.objects.filter(activated_at__isnull=False)
    assert not redeemed.filter(ledger_entry__isnull=True).exists()
    serials = {c.serial for c in redeemed.only("series", "number")}
    by_voucher = LedgerEntry.objects.filter(kind=LedgerKind.REDEMPTION).values_list(
        "voucher", flat=True
    )
    assert sorted(by_voucher) == sorted(serials), "each redeemed card has exactly one entry"
