"""The access control matrix: every role against every page and endpoint, with its outcome.

One table, `MATRIX`: a row per page or endpoint, a column per role, each cell the outcome the
caller must see. Each cell is its own test (`test_access[<endpoint>-<role>]`), run against the
same small world: two resellers ("Mine", "Zyx Theirs"), a card, batch, generation job and
subscriber of each, a subscriber balance of each.

Besides its outcome, every cell checks:

- a refused request changed nothing (cards, events, batches, jobs, balances, ledger);
- a PIN appears in a reply only on the screens that show PINs, to a role holding
  `cards.view_pin` that may see that card (never in the REST API, the panel or a refusal);
- the reseller-scoped staff user never sees anything of the other reseller (its card's serial, its
  name, its subscriber, its subscription) and never changes any of it, even when allowed the
  request itself.

The reseller-scoped staff user holds every permission the unscoped operators hold, and view_pin:
what keeps them to their reseller must be the scoping, not a missing permission.
"""

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from cards.models import CardBatch, CardEvent, CardJob, TopUpCard
from cards.pins import format_pin
from subscribers.models import StaffReseller
from tests.factories import (
    ApiClientFactory,
    BalanceFactory,
    CardBatchFactory,
    CardEventFactory,
    CardJobFactory,
    ResellerFactory,
    SubscriberFactory,
    TopUpCardFactory,
    UserFactory,
    WalletFactory,
)
from tests.rsgateway.api import ADJUST, TOPUP, body, reply
from tests.wallets.conftest import basic_auth
from wallets.exceptions import Result
from wallets.models import (
    Balance,
    BalanceEvent,
    ExternalVoucher,
    LedgerEntry,
    LedgerKind,
    VoucherMode,
)
from wallets.services.ledger import balance_apply

pytestmark = pytest.mark.django_db

ROLES = (
    "anonymous",
    "subscriber",
    "subscriber_no_redeem",
    "reseller_staff",
    "staff_no_view_pin",
    "api_client_no_perm",
    "api_client",
    "superuser",
)

# What an operator of the card section holds (the reseller-scoped one also holds view_pin).
OPERATOR_PERMISSIONS = [
    "cards.view_topupcard",
    "cards.add_topupcard",
    "cards.change_topupcard",
    "cards.delete_topupcard",
    "cards.view_cardbatch",
    "cards.view_cardevent",
    "cards.view_cardjob",
    "reports.view_liabilityreport",
    "reports.view_redemptionreport",
    "reports.view_breakagereport",
    "reports.view_expiringreport",
    "reports.view_balancereport",
    "wallets.view_balance",
    "wallets.adjust_balance",
    "wallets.view_ledgerentry",
    "wallets.reverse_ledgerentry",
]
API_PERMISSIONS = ["wallets.topup_balance", "wallets.adjust_balance", "wallets.view_balance"]
# Who may see a card's PIN on the screens that show PINs: role → which cards.
SEES_PINS = {"reseller_staff": {"mine"}, "superuser": {"mine", "theirs"}}

# --- Outcomes -------------------------------------------------------------------------------

OK = "200"  # the page or file
DONE = "done"  # a write accepted: 302 to a page that is not a login page
FORM = "form"  # a form redisplayed with an error (200), nothing changed
PLOGIN = "panel-login"  # 302 to /panel/login/?next=…
ALOGIN = "admin-login"  # 302 to /admin/login/?next=… (not active staff)
P403 = "panel-403"  # the panel's "not allowed" page
E403 = "403"
GONE = "gone"  # the admin's "doesn't exist" redirect to /admin/: another reseller's object
E404 = "404"
E400 = "400"
BACK = "back"  # refused with the reason: 302 back to the cards list (docs/reliability.md)
ONCE = "once"  # the one-time batch download was not offered to this session: 302 to the batch
# The REST API: (HTTP status, MtxResponse Result)
A200 = (200, Result.OK)
A401 = (401, Result.UNAUTHENTICATED)
A403 = (403, Result.FORBIDDEN)

REFUSALS = {FORM, PLOGIN, ALOGIN, P403, E403, GONE, E404, E400, ONCE, A401, A403}


# --- The world ------------------------------------------------------------------------------


@dataclass
class World:
    mine: object
    theirs: object
    my_card: TopUpCard
    their_card: TopUpCard
    my_batch: CardBatch
    their_batch: CardBatch
    my_job: CardJob
    their_job: CardJob
    rose: object  # subscriber of Mine, may redeem
    theo: object  # subscriber of Zyx Theirs
    rose_balance: Balance
    theo_balance: Balance
    theo_topup: LedgerEntry  # a reversible entry on the other reseller's balance

    def their_markers(self) -> list[str]:
        """Strings that only the other reseller's data contains."""
        return [
            self.their_card.serial,
            self.theirs.name,
            self.theo.name,
            self.theo_balance.wallet.subscription.external_id,
        ]


def _grant(user, names):
    wanted = Q()
    for name in names:
        app_label, codename = name.split(".")
        wanted |= Q(content_type__app_label=app_label, codename=codename)
    permissions = list(Permission.objects.filter(wanted))
    assert len(permissions) == len(names)
    user.user_permissions.add(*permissions)


def _main_balance(subscriber, external_id):
    wallet = WalletFactory(
        subscription__subscriber=subscriber, subscription__external_id=external_id
    )
    return BalanceFactory(wallet=wallet, resource_id=12, is_main=True)


def build_world() -> World:
    mine, theirs = ResellerFactory(name="Mine"), ResellerFactory(name="Zyx Theirs")
    my_batch = CardBatchFactory(reseller=mine, series="77", first_number=1)
    their_batch = CardBatchFactory(reseller=theirs, series="77", first_number=2)
    my_card = TopUpCardFactory(series="77", number=1, reseller=mine, batch=my_batch)
    their_card = TopUpCardFactory(series="77", number=2, reseller=theirs, batch=their_batch)
    for card in (my_card, their_card):
        CardEventFactory(card=card)
    rose = SubscriberFactory(name="Rose Mine", reseller=mine, user__username="rose")
    _grant(rose.user, ["cards.redeem_card"])
    theo = SubscriberFactory(name="Theo Zyxsub", reseller=theirs, user__username="theo")
    theo_balance = _main_balance(theo, "sub-zyx-0002")
    theo_topup = balance_apply(
        balance_id=theo_balance.pk, amount=Decimal("4.00"), kind=LedgerKind.TOPUP
    )
    theo_balance.refresh_from_db()
    return World(
        mine=mine,
        theirs=theirs,
        my_card=my_card,
        their_card=their_card,
        my_batch=my_batch,
        their_batch=their_batch,
        my_job=CardJobFactory(
            params={"series": "77", "quantity": 1, "reseller_id": mine.pk}, batch=my_batch
        ),
        their_job=CardJobFactory(
            params={"series": "77", "quantity": 1, "reseller_id": theirs.pk}, batch=their_batch
        ),
        rose=rose,
        theo=theo,
        rose_balance=_main_balance(rose, "sub-rose-0001"),
        theo_balance=theo_balance,
        theo_topup=theo_topup,
    )


def make_user(role: str, world: World):
    if role == "anonymous":
        return None
    if role == "subscriber":
        return world.rose.user
    if role == "subscriber_no_redeem":
        sam = SubscriberFactory(name="Sam Mine", reseller=world.mine, user__username="sam")
        _main_balance(sam, "sub-sam-0003")
        return sam.user
    if role == "superuser":
        return UserFactory(username="root", is_staff=True, is_superuser=True)
    if role in ("api_client", "api_client_no_perm"):
        user = UserFactory(username=role.replace("_", "-"))
        ApiClientFactory(user=user, voucher_mode=VoucherMode.CARD)
        if role == "api_client":
            _grant(user, API_PERMISSIONS)
        return user
    user = UserFactory(username=role.replace("_", "-"), is_staff=True)
    if role == "reseller_staff":
        _grant(user, [*OPERATOR_PERMISSIONS, "cards.view_pin"])
        StaffReseller.objects.create(user=user, reseller=world.mine)
    else:
        _grant(user, OPERATOR_PERMISSIONS)
    return user


# --- Endpoints ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    method: str
    url: Callable[[World], str]
    data: Callable[[World, object], dict | str] | None = None
    writes: bool = False  # a successful request changes the database
    shows_pins: bool = False  # a screen whose purpose may be to show PINs
    api: str = ""  # "xml" or "json": a REST API call with HTTP Basic credentials
    accept_json: bool = False


def _admin(name, *args):
    return lambda w: reverse(f"admin:{name}", args=[a(w) for a in args])


def _later(days: int) -> dt.datetime:
    return timezone.localtime(timezone.now() + dt.timedelta(days=days))


def _card_edit(world, user):
    expires = _later(40)
    return {
        "reseller": world.theirs.pk,
        "expires_at_0": f"{expires:%Y-%m-%d}",
        "expires_at_1": f"{expires:%H:%M:%S}",
        "blocked": "on",
    }


def _generate(world, user):
    return {
        "amount": "5",
        "currency": "USD",
        "quantity": "2",
        "series": "78",
        "pin_length": "12",
        "reseller": world.theirs.pk,
        "expires_at": f"{_later(9):%Y-%m-%d %H:%M:%S}",
    }


def _delete_all_count(world, user):
    # What the confirmation page showed this user: their deletable cards.
    from cards.selectors import cards_visible_to

    count = cards_visible_to(user).filter(activated_at__isnull=True).count() if user else 0
    return {"expected_count": str(count), "_confirm": "1"}


EXPORT_FIELDS = (
    "serial",
    "amount",
    "currency",
    "pin",
    "reseller",
    "status",
    "expires_at",
    "activated",
    "created_at",
)


def _export_action(world, user):
    return {
        "format": "0",
        "resource": "0",
        "export_items": [world.my_card.pk, world.their_card.pk],
        **{f"topupcardexportresource_{name}": "on" for name in EXPORT_FIELDS},
    }


def _api_url(binding: str, balance_of: str, tail: str) -> Callable[[World], str]:
    prefix = "/rsgateway/data/v3" if binding == "xml" else "/rsgateway/data/json"

    def url(world):
        balance = getattr(world, balance_of)
        ref = f"ExternalId+{balance.wallet.subscription.external_id}"
        return f"{prefix}/subscription/{ref}/wallet{tail}"

    return url


def _api_topup(binding):
    return lambda w, u: body(
        binding, TOPUP, {"Amount": f"{w.their_card.amount}", "Voucher": w.their_card.pin}
    )


def _api_adjust(binding):
    return lambda w, u: body(
        binding, ADJUST, {"AdjustType": "1", "Amount": "1.00", "Reason": "matrix"}
    )


REPORTS = ["liability", "redemption", "breakage", "expiring", "balance"]

ENDPOINTS: dict[str, Endpoint] = {
    # client panel
    "panel-dashboard": Endpoint("GET", lambda w: reverse("panel:dashboard")),
    "panel-redeem": Endpoint("GET", lambda w: reverse("panel:redeem")),
    "panel-redeem-post": Endpoint(
        "POST", lambda w: reverse("panel:redeem"), lambda w, u: {"code": w.my_card.pin}, True
    ),
    "panel-password": Endpoint("GET", lambda w: reverse("panel:password_change")),
    # admin: the card section
    "admin-index": Endpoint("GET", _admin("index")),
    "card-list": Endpoint("GET", _admin("cards_topupcard_changelist")),
    "card-page-mine": Endpoint(
        "GET", _admin("cards_topupcard_change", lambda w: w.my_card.pk), shows_pins=True
    ),
    "card-page-theirs": Endpoint(
        "GET", _admin("cards_topupcard_change", lambda w: w.their_card.pk), shows_pins=True
    ),
    "card-edit-theirs": Endpoint(
        "POST", _admin("cards_topupcard_change", lambda w: w.their_card.pk), _card_edit, True
    ),
    "card-delete-theirs": Endpoint(
        "POST",
        _admin("cards_topupcard_delete", lambda w: w.their_card.pk),
        lambda w, u: {"post": "yes"},
        True,
    ),
    "generate": Endpoint("GET", _admin("cards_topupcard_generate")),
    "generate-post-theirs": Endpoint("POST", _admin("cards_topupcard_generate"), _generate, True),
    "mass-edit": Endpoint("GET", _admin("cards_topupcard_mass_edit")),
    "mass-edit-block-all": Endpoint(
        "POST",
        _admin("cards_topupcard_mass_edit"),
        lambda w, u: {
            "expires_action": "preserve",
            "reseller_action": "preserve",
            "block_action": "block",
            "_confirm": "1",
        },
        True,
    ),
    "delete-all": Endpoint("GET", _admin("cards_topupcard_delete_all")),
    "delete-all-post": Endpoint(
        "POST", _admin("cards_topupcard_delete_all"), _delete_all_count, True
    ),
    "pin-reveal-mine": Endpoint(
        "POST",
        _admin("cards_topupcard_reveal_pin", lambda w: w.my_card.pk),
        writes=True,  # the reveal is audited
        shows_pins=True,
        accept_json=True,
    ),
    "pin-reveal-theirs": Endpoint(
        "POST",
        _admin("cards_topupcard_reveal_pin", lambda w: w.their_card.pk),
        writes=True,
        shows_pins=True,
        accept_json=True,
    ),
    "export-csv": Endpoint("GET", _admin("cards_topupcard_export_csv"), writes=True),
    "export-csv-pins": Endpoint(
        "GET",
        lambda w: reverse("admin:cards_topupcard_export_csv") + "?with_pins=1",
        writes=True,
        shows_pins=True,
    ),
    "export-action": Endpoint(
        "POST", _admin("cards_topupcard_export"), _export_action, True, shows_pins=True
    ),
    "import": Endpoint("GET", _admin("cards_topupcard_import")),
    "job-page-mine": Endpoint("GET", _admin("cards_cardjob_change", lambda w: w.my_job.pk)),
    "job-page-theirs": Endpoint("GET", _admin("cards_cardjob_change", lambda w: w.their_job.pk)),
    "job-progress-mine": Endpoint("GET", _admin("cards_cardjob_progress", lambda w: w.my_job.pk)),
    "job-progress-theirs": Endpoint(
        "GET", _admin("cards_cardjob_progress", lambda w: w.their_job.pk)
    ),
    "job-list": Endpoint("GET", _admin("cards_cardjob_changelist")),
    "batch-page-mine": Endpoint("GET", _admin("cards_cardbatch_change", lambda w: w.my_batch.pk)),
    "batch-page-theirs": Endpoint(
        "GET", _admin("cards_cardbatch_change", lambda w: w.their_batch.pk)
    ),
    "batch-download-theirs": Endpoint(
        "POST",
        _admin("cards_cardbatch_download", lambda w: w.their_batch.pk),
        writes=True,
        shows_pins=True,
    ),
    "card-events": Endpoint("GET", _admin("cards_cardevent_changelist")),
    # admin: reports
    **{
        f"report-{name}": Endpoint("GET", _admin(f"reports_{name}report_changelist"))
        for name in REPORTS
    },
    "report-liability-csv-theirs": Endpoint(
        "GET",
        lambda w: (
            reverse("admin:reports_liabilityreport_changelist")
            + f"?format=csv&reseller={w.theirs.pk}"
        ),
    ),
    # admin: balances
    "balance-list": Endpoint("GET", _admin("wallets_balance_changelist")),
    "balance-page-theirs": Endpoint(
        "GET", _admin("wallets_balance_change", lambda w: w.theo_balance.pk)
    ),
    "balance-adjust-mine": Endpoint(
        "GET", _admin("wallets_balance_adjust", lambda w: w.rose_balance.pk)
    ),
    "balance-adjust-theirs": Endpoint(
        "POST",
        _admin("wallets_balance_adjust", lambda w: w.theo_balance.pk),
        lambda w, u: {"adjust_type": "1", "amount": "3.00", "reason": "matrix"},
        True,
    ),
    "balance-validity-theirs": Endpoint(
        "POST",
        _admin("wallets_balance_validity", lambda w: w.theo_balance.pk),
        lambda w, u: {"end_time": f"{_later(60):%Y-%m-%dT%H:%M}", "reason": "matrix"},
        True,
    ),
    "ledger-list": Endpoint("GET", _admin("wallets_ledgerentry_changelist")),
    "ledger-entry-theirs": Endpoint(
        "GET", _admin("wallets_ledgerentry_change", lambda w: w.theo_topup.pk)
    ),
    "ledger-reverse-theirs": Endpoint(
        "POST",
        _admin("wallets_ledgerentry_reverse", lambda w: w.theo_topup.pk),
        lambda w, u: {"reason": "matrix"},
        True,
    ),
    # REST API, both bindings, on the other reseller's subscriber
    **{
        f"api-{binding}-{name}": endpoint
        for binding in ("xml", "json")
        for name, endpoint in {
            "topup": Endpoint(
                "PUT",
                _api_url(binding, "theo_balance", "/12/topup"),
                _api_topup(binding),
                True,
                api=binding,
            ),
            "adjustment": Endpoint(
                "PUT",
                _api_url(binding, "theo_balance", "/12/adjustment"),
                _api_adjust(binding),
                True,
                api=binding,
            ),
            "wallet": Endpoint("GET", _api_url(binding, "theo_balance", ""), api=binding),
        }.items()
    },
    "openapi-json": Endpoint("GET", lambda w: reverse("rsgateway-openapi")),
    "openapi-docs": Endpoint("GET", lambda w: reverse("rsgateway-docs")),
}

# --- The matrix -----------------------------------------------------------------------------

STAFF_ONLY = (ALOGIN, ALOGIN, ALOGIN, OK, OK, ALOGIN, ALOGIN, OK)
EVERYONE = (OK,) * len(ROLES)
A_ONLY_WITH = {
    # topup_balance: the API clients with permission and the superuser
    "topup": (A401, A403, A403, A403, A403, A403, A200, A200),
    # adjust_balance: also the unscoped operator; the reseller-scoped one is refused (the API has
    # no reseller scoping, so it serves no reseller-scoped user)
    "adjustment": (A401, A403, A403, A403, A200, A403, A200, A200),
    "wallet": (A401, A403, A403, A403, A200, A403, A200, A200),
}

# fmt: off
MATRIX: dict[str, tuple] = {
    #                           anonymous subscriber sub-no-redeem reseller-staff staff-no-pin api-no-perm api-client superuser  # noqa: E501
    "panel-dashboard":           (PLOGIN, OK,   OK,   P403, P403, P403, P403, P403),
    "panel-redeem":              (PLOGIN, OK,   P403, P403, P403, P403, P403, P403),
    "panel-redeem-post":         (PLOGIN, DONE, P403, P403, P403, P403, P403, P403),
    "panel-password":            (PLOGIN, OK,   OK,   OK,   OK,   OK,   OK,   OK),
    "admin-index":               STAFF_ONLY,
    "card-list":                 STAFF_ONLY,
    "card-page-mine":            STAFF_ONLY,
    "card-page-theirs":          (ALOGIN, ALOGIN, ALOGIN, GONE, OK,   ALOGIN, ALOGIN, OK),
    "card-edit-theirs":          (ALOGIN, ALOGIN, ALOGIN, GONE, DONE, ALOGIN, ALOGIN, DONE),
    "card-delete-theirs":        (ALOGIN, ALOGIN, ALOGIN, GONE, DONE, ALOGIN, ALOGIN, DONE),
    "generate":                  STAFF_ONLY,
    "generate-post-theirs":      (ALOGIN, ALOGIN, ALOGIN, FORM, DONE, ALOGIN, ALOGIN, DONE),
    "mass-edit":                 STAFF_ONLY,
    "mass-edit-block-all":       (ALOGIN, ALOGIN, ALOGIN, DONE, DONE, ALOGIN, ALOGIN, DONE),
    "delete-all":                STAFF_ONLY,
    "delete-all-post":           (ALOGIN, ALOGIN, ALOGIN, DONE, DONE, ALOGIN, ALOGIN, DONE),
    "pin-reveal-mine":           (ALOGIN, ALOGIN, ALOGIN, OK,   E403, ALOGIN, ALOGIN, OK),
    "pin-reveal-theirs":         (ALOGIN, ALOGIN, ALOGIN, E404, E403, ALOGIN, ALOGIN, OK),
    "export-csv":                STAFF_ONLY,
    "export-csv-pins":           (ALOGIN, ALOGIN, ALOGIN, OK,   E403, ALOGIN, ALOGIN, OK),
    "export-action":             STAFF_ONLY,
    # Only who may see every PIN imports: scoped staff or staff without view_pin are sent back.
    "import":                    (ALOGIN, ALOGIN, ALOGIN, BACK, BACK, ALOGIN, ALOGIN, OK),
    "job-list":                  STAFF_ONLY,
    "job-page-mine":             STAFF_ONLY,
    "job-page-theirs":           (ALOGIN, ALOGIN, ALOGIN, GONE, OK,   ALOGIN, ALOGIN, OK),
    "job-progress-mine":         STAFF_ONLY,
    "job-progress-theirs":       (ALOGIN, ALOGIN, ALOGIN, E404, OK,   ALOGIN, ALOGIN, OK),
    "batch-page-mine":           STAFF_ONLY,
    "batch-page-theirs":         (ALOGIN, ALOGIN, ALOGIN, GONE, OK,   ALOGIN, ALOGIN, OK),
    "batch-download-theirs":     (ALOGIN, ALOGIN, ALOGIN, E404, ONCE, ALOGIN, ALOGIN, ONCE),
    "card-events":               STAFF_ONLY,
    **{f"report-{name}": STAFF_ONLY for name in REPORTS},
    "report-liability-csv-theirs": (ALOGIN, ALOGIN, ALOGIN, E400, OK, ALOGIN, ALOGIN, OK),
    "balance-list":              STAFF_ONLY,
    "balance-page-theirs":       (ALOGIN, ALOGIN, ALOGIN, GONE, OK,   ALOGIN, ALOGIN, OK),
    "balance-adjust-mine":       STAFF_ONLY,
    "balance-adjust-theirs":     (ALOGIN, ALOGIN, ALOGIN, E404, DONE, ALOGIN, ALOGIN, DONE),
    "balance-validity-theirs":   (ALOGIN, ALOGIN, ALOGIN, E404, DONE, ALOGIN, ALOGIN, DONE),
    "ledger-list":               STAFF_ONLY,
    "ledger-entry-theirs":       (ALOGIN, ALOGIN, ALOGIN, GONE, OK,   ALOGIN, ALOGIN, OK),
    "ledger-reverse-theirs":     (ALOGIN, ALOGIN, ALOGIN, E404, DONE, ALOGIN, ALOGIN, DONE),
    **{
        f"api-{binding}-{name}": outcomes
        for binding in ("xml", "json")
        for name, outcomes in A_ONLY_WITH.items()
    },
    "openapi-json":              EVERYONE,
    "openapi-docs":              EVERYONE,
}
# fmt: on

CELLS = [
    pytest.param(endpoint, role, expected, id=f"{endpoint}-{role}")
    for endpoint, outcomes in MATRIX.items()
    for role, expected in zip(ROLES, outcomes, strict=True)
]


def test_the_matrix_covers_every_endpoint():
    assert set(MATRIX) == set(ENDPOINTS)


# --- Running one cell -----------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _fresh_counters():
    """Throttle and lockout counters live in the cache: each cell starts from zero."""
    cache.clear()
    yield
    cache.clear()


def snapshot(query: Q | None = None, balances: Q | None = None) -> dict:
    cards = TopUpCard.objects.all() if query is None else TopUpCard.objects.filter(query)
    balance_rows = Balance.objects.all() if balances is None else Balance.objects.filter(balances)
    state = {
        "cards": list(cards.order_by("pk").values()),
        "balances": list(balance_rows.order_by("pk").values()),
    }
    if query is None:
        state |= {
            model.__name__: list(model.objects.order_by("pk").values())
            for model in (
                CardEvent,
                CardBatch,
                CardJob,
                LedgerEntry,
                BalanceEvent,
                ExternalVoucher,
            )
        }
    return state


def their_snapshot(world: World) -> dict:
    return snapshot(Q(reseller=world.theirs), Q(pk=world.theo_balance.pk))


def send(client, endpoint: Endpoint, world: World, user):
    url = endpoint.url(world)
    data = endpoint.data(world, user) if endpoint.data else None
    headers = {}
    if endpoint.api:
        if user is not None:
            headers.update(basic_auth(user.username))
        content_type = "application/json" if endpoint.api == "json" else "application/xml"
        if endpoint.method == "GET":
            return client.get(url, **headers)
        return client.generic(endpoint.method, url, data, content_type=content_type, **headers)
    if user is not None:
        client.force_login(user)
    if endpoint.accept_json:
        headers["HTTP_ACCEPT"] = "application/json"
    if endpoint.method == "GET":
        return client.get(url, **headers)
    return client.post(url, data or {}, **headers)


def content(response) -> str:
    if response.streaming:
        return b"".join(response.streaming_content).decode()
    return response.content.decode()


def check_outcome(expected, response, text: str):
    status, location = response.status_code, response.get("Location", "")
    where = f"{status} {location} {text[:300]!r}"
    if isinstance(expected, tuple):
        data = reply(response)
        assert (status, data["Result"]) == expected, where
        assert data["$"] == ("MtxResponseWallet" if data.get("BalanceArray") else "MtxResponse")
        assert response["Cache-Control"] == "no-store"
    elif expected == OK:
        assert status == 200, where
    elif expected == FORM:
        assert status == 200 and "errorlist" in text, where
    elif expected == DONE:
        assert status == 302, where
        assert not location.startswith(("/admin/login/", "/panel/login/")), where
        assert location != reverse("admin:index"), where
    elif expected == PLOGIN:
        assert status == 302 and location.startswith("/panel/login/?next="), where
    elif expected == ALOGIN:
        assert status == 302 and location.startswith("/admin/login/?next="), where
    elif expected == P403:
        assert status == 403 and ("not allowed" in text or "not linked" in text), where
    elif expected == ONCE:
        assert status == 302 and location.startswith("/admin/cards/cardbatch/"), where
    elif expected == BACK:
        assert status == 302 and location == reverse("admin:cards_topupcard_changelist"), where
    elif expected == GONE:
        assert status == 302 and location == reverse("admin:index"), where
    else:
        assert status == int(expected), where


@pytest.mark.parametrize(("endpoint_name", "role", "expected"), CELLS)
def test_access(client, endpoint_name, role, expected):
    endpoint = ENDPOINTS[endpoint_name]
    world = build_world()
    user = make_user(role, world)
    before = snapshot() if endpoint.writes else None
    theirs_before = their_snapshot(world) if role == "reseller_staff" else None

    response = send(client, endpoint, world, user)

    text = content(response)
    check_outcome(expected, response, text)
    if endpoint.writes and expected in REFUSALS:
        assert snapshot() == before, "a refused request changed the database"
    if endpoint.writes and expected in (DONE, A200):
        assert snapshot() != before, "an accepted write changed nothing"
    cards = {"mine": world.my_card, "theirs": world.their_card}
    for owner, card in cards.items():
        may_see = endpoint.shows_pins and owner in SEES_PINS.get(role, set())
        for shown in (card.pin, format_pin(card.pin)):
            assert may_see or shown not in text, f"the PIN of {owner} card leaked"
    if role == "reseller_staff":
        assert their_snapshot(world) == theirs_before, "changed the other reseller's data"
        for marker in world.their_markers():
            assert marker not in text, f"{marker!r} of the other reseller shown"


# --- The pages hold nothing the Content-Security-Policy would block -------------------------

INLINE = re.compile(
    r"<script(?![^>]*\ssrc=)[^>]*>"  # inline script
    r"|<style[\s>]|<[^>]+\sstyle="  # inline style
    r"|<[^>]+\son[a-z]+\s*="  # event handler attribute
    r"|javascript:"
    r"|(?:src|href)=[\"']?(?:https?:)?//"  # anything from another site
)
HTML_PAGES = [
    pytest.param(name, role, id=f"{name}-{role}")
    for name, endpoint in ENDPOINTS.items()
    for role in ("superuser", "subscriber")
    if endpoint.method == "GET"
    and not endpoint.api
    and MATRIX[name][ROLES.index(role)] == OK
    and not any(word in name for word in ("csv", "progress", "openapi-json"))  # not HTML
]


@pytest.mark.parametrize(("endpoint_name", "role"), HTML_PAGES)
def test_pages_hold_nothing_the_content_security_policy_blocks(client, endpoint_name, role):
    world = build_world()

    response = send(client, ENDPOINTS[endpoint_name], world, make_user(role, world))

    html = content(response)
    assert response.status_code == 200 and "</html>" in html
    assert "script-src 'self'" in response["Content-Security-Policy"] or (
        "default-src 'none'" in response["Content-Security-Policy"]
    )
    assert INLINE.findall(html) == []
