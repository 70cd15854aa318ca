"""Add client (issue 14): one admin screen creates a client who can log in to the panel and redeem
a card at once; bad input is refused beside its field with nothing created; only staff who may
add every part may use it, and a reseller's staff only for their own reseller."""

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from cards.exceptions import CardWrongReseller
from panel import services
from panel.exceptions import OnboardingError
from panel.services import (
    ONBOARDING_PERMISSIONS,
    SUBSCRIBERS_GROUP,
    OpeningBalance,
    client_onboard,
)
from subscribers.models import AccessNumber, Subscriber, Subscription
from tests.factories import (
    AccessNumberFactory,
    BalanceTemplateFactory,
    ResellerFactory,
    StaffResellerFactory,
    SubscriptionFactory,
    TopUpCardFactory,
    UserFactory,
)
from wallets.models import (
    Balance,
    BalanceInterval,
    BalanceKind,
    Channel,
    LedgerEntry,
    LedgerKind,
    Wallet,
)

pytestmark = pytest.mark.django_db

ADD_CLIENT = "/admin/subscribers/subscriber/add-client/"
PASSWORD = "plum-Orchard-41"


def grant(user, *perms):
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user


def make_staff(*extra, username=None):
    user = UserFactory(is_staff=True, **({"username": username} if username else {}))
    return grant(user, *ONBOARDING_PERMISSIONS, *extra)


@pytest.fixture
def templates():
    return {
        "main": BalanceTemplateFactory(name="Main USD", kind=BalanceKind.SIMPLE, currency="USD"),
        "data": BalanceTemplateFactory(
            name="Monthly MB", kind=BalanceKind.PERIODIC, currency="MB", precision=0
        ),
        "meter": BalanceTemplateFactory(
            name="Voice meter", kind=BalanceKind.METER, currency="MIN", precision=0
        ),
        "virtual": BalanceTemplateFactory(name="Group share", kind=BalanceKind.VIRTUAL),
    }


@pytest.fixture
def operator(client):
    user = make_staff("wallets.adjust_balance", "subscribers.view_subscriber", username="operator")
    client.force_login(user)
    return user


def form_data(owner, templates, *rows, **overrides):
    """The screen's POST: a login, a subscriber, a subscription and balance rows."""
    rows = rows or ({"template": templates["main"].pk, "resource_id": 12, "is_main": "on"},)
    data = {
        "username": "ann",
        "password1": PASSWORD,
        "password2": PASSWORD,
        "name": "Ann Example",
        "reseller": "none" if owner is None else str(owner.pk),
        "external_id": "ann-001",
        "access_numbers": "5551234567, +15557654321",
        "can_redeem": "on",
        "balances-TOTAL_FORMS": "3",
        "balances-INITIAL_FORMS": "0",
        "balances-MIN_NUM_FORMS": "1",
        "balances-MAX_NUM_FORMS": "10",
    }
    for index in range(3):
        row = rows[index] if index < len(rows) else {}
        data[f"balances-{index}-template"] = row.get("template", "")
        data[f"balances-{index}-resource_id"] = row.get("resource_id", "")
        data[f"balances-{index}-amount"] = row.get("amount", "0")
        if row.get("is_main"):
            data[f"balances-{index}-is_main"] = "on"
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def snapshot():
    """Everything onboarding may create."""
    return (
        get_user_model().objects.count(),
        Subscriber.objects.count(),
        Subscription.objects.count(),
        AccessNumber.objects.count(),
        Wallet.objects.count(),
        Balance.objects.count(),
        BalanceInterval.objects.count(),
        LedgerEntry.objects.count(),
        Group.objects.get(name=SUBSCRIBERS_GROUP).user_set.count(),
    )


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# --- the happy path ---------------------------------------------------------------------------


def test_one_screen_creates_a_client_who_logs_in_and_redeems_a_card(
    client, operator, reseller, templates
):
    rows = (
        {"template": templates["main"].pk, "resource_id": 12, "is_main": "on"},
        {"template": templates["meter"].pk, "resource_id": 15},
    )
    response = client.post(ADD_CLIENT, form_data(reseller, templates, *rows), follow=True)

    subscriber = Subscriber.objects.get(name="Ann Example")
    assert response.redirect_chain == [
        (reverse("admin:subscribers_subscriber_change", args=[subscriber.pk]), 302)
    ]
    assert messages_of(response) == [
        "Client “Ann Example” added: login ann, subscription ann-001 (+15557654321, 5551234567), "
        "2 balance(s), main balance #12 (USD). The client may redeem vouchers."
    ]
    user = subscriber.user
    assert user.username == "ann" and user.check_password(PASSWORD)
    assert not user.is_staff and not user.is_superuser
    assert user.has_perm("cards.redeem_card")
    assert subscriber.reseller == reseller
    subscription = subscriber.subscriptions.get()
    assert subscription.external_id == "ann-001"
    assert sorted(subscription.access_numbers.values_list("number", flat=True)) == [
        "+15557654321",
        "5551234567",
    ]
    balances = list(subscription.wallet.balances.order_by("resource_id"))
    assert [(b.resource_id, b.template, b.is_main, b.amount) for b in balances] == [
        (12, templates["main"], True, 0),
        (15, templates["meter"], False, 0),
    ]
    assert LedgerEntry.objects.count() == 0  # opening amounts of zero write nothing
    assert LogEntry.objects.get().object_id == str(subscriber.pk)

    # The client logs in to the panel (Django's login; axes is another helper's) and redeems.
    card = TopUpCardFactory(reseller=reseller, amount=Decimal("25.00"))
    client.force_login(user)
    redeemed = client.post("/panel/redeem/", {"code": card.pin}, follow=True)
    assert messages_of(redeemed) == [
        f"Voucher {card.serial} redeemed: 25.00 USD added. Your balance is now 25.00 USD."
    ]
    assert Balance.objects.get(pk=balances[0].pk).amount == Decimal("25.00")


def test_opening_amounts_go_through_the_ledger_and_a_periodic_balance_has_a_current_interval(
    client, operator, reseller, templates
):
    rows = (
        {"template": templates["main"].pk, "resource_id": 12, "is_main": "on", "amount": "10.50"},
        {"template": templates["data"].pk, "resource_id": 13, "amount": "1024"},
    )
    client.post(ADD_CLIENT, form_data(reseller, templates, *rows))

    main, data = Balance.objects.order_by("resource_id")
    entries = {e.balance_id: e for e in LedgerEntry.objects.all()}
    assert (main.amount, data.amount) == (Decimal("10.50"), Decimal("1024"))
    for balance in (main, data):
        entry = entries[balance.pk]
        assert (entry.kind, entry.channel, entry.actor, entry.amount) == (
            LedgerKind.OPENING,
            Channel.ADMIN,
            operator,
            balance.amount,
        )
    now = timezone.now()
    live = data.intervals.live(now).get()
    assert live.amount == Decimal("1024") and entries[data.pk].interval == live
    # No end: its intervals are made from the template's period as time passes.
    assert data.end_time is None and data.intervals.last().end_time > now
    call_command("check_ledger")  # exits non-zero when a balance differs from its ledger


def test_without_the_redeem_right_the_client_logs_in_but_may_not_redeem(
    client, operator, reseller, templates
):
    client.post(ADD_CLIENT, form_data(reseller, templates, can_redeem=None))

    user = get_user_model().objects.get(username="ann")
    assert not user.has_perm("cards.redeem_card")
    client.force_login(user)
    assert client.get("/panel/").status_code == 200
    assert client.get("/panel/redeem/").status_code == 403


def test_a_deleted_subscribers_group_is_made_again_with_the_redeem_permission(
    operator, reseller, templates
):
    Group.objects.filter(name=SUBSCRIBERS_GROUP).delete()

    result = client_onboard(**service_args(reseller, templates), actor=operator)

    assert result.user.groups.get().name == SUBSCRIBERS_GROUP
    assert result.user.has_perm("cards.redeem_card")


def test_a_client_without_reseller_is_told_plainly_why_a_resellers_card_is_refused(
    client, operator, reseller, templates
):
    client.post(ADD_CLIENT, form_data(None, templates))
    subscriber = Subscriber.objects.get(name="Ann Example")
    assert subscriber.reseller is None
    card = TopUpCardFactory(reseller=reseller)
    client.force_login(subscriber.user)

    response = client.post("/panel/redeem/", {"code": card.pin}, follow=True)

    assert messages_of(response)[-1:] == [CardWrongReseller.default_message]
    assert "not linked" in CardWrongReseller.default_message
    assert "another provider" not in CardWrongReseller.default_message
    card.refresh_from_db()
    assert card.activated_at is None


# --- bad input: the error beside its field, nothing created -----------------------------------


def _user_taken(reseller):
    UserFactory(username="Ann")


def _subscription_taken(reseller):
    SubscriptionFactory(external_id="taken-001")


def _number_taken(reseller):
    AccessNumberFactory(number="5551234567")


BAD_CLIENT_INPUT = [
    # (case, field, overrides, prepare)
    ("username taken (any case)", "username", {}, _user_taken),
    ("username with a space", "username", {"username": "ann smith"}, None),
    ("password too common", "password1", {"password1": "password", "password2": "password"}, None),
    ("password all digits", "password1", {"password1": "40983417", "password2": "40983417"}, None),
    ("password like the username", "password1", {"password1": "ann", "password2": "ann"}, None),
    ("passwords differ", "password2", {"password2": PASSWORD + "x"}, None),
    ("no name", "name", {"name": ""}, None),
    ("reseller not chosen", "reseller", {"reseller": ""}, None),
    ("reseller unknown", "reseller", {"reseller": "999999"}, None),
    ("no external id", "external_id", {"external_id": ""}, None),
    ("external id taken", "external_id", {"external_id": "taken-001"}, _subscription_taken),
    ("no access number", "access_numbers", {"access_numbers": " , "}, None),
    ("access number with letters", "access_numbers", {"access_numbers": "555ab12"}, None),
    ("access number too short", "access_numbers", {"access_numbers": "55"}, None),
    ("access number twice", "access_numbers", {"access_numbers": "5551111 5551111"}, None),
    ("access number taken", "access_numbers", {"access_numbers": "5551234567"}, _number_taken),
]


@pytest.mark.parametrize(
    ("field", "overrides", "prepare"),
    [case[1:] for case in BAD_CLIENT_INPUT],
    ids=[case[0] for case in BAD_CLIENT_INPUT],
)
def test_bad_client_input_is_refused_beside_its_field(
    client, operator, reseller, templates, field, overrides, prepare
):
    if prepare:
        prepare(reseller)
    before = snapshot()

    response = client.post(ADD_CLIENT, form_data(reseller, templates, **overrides))

    assert response.status_code == 200
    assert list(response.context["form"].errors) == [field]
    assert snapshot() == before
    assert PASSWORD not in response.content.decode()  # never written back into the page


def _rows(templates, *specs):
    return [
        {"template": templates[name].pk if name else "", "resource_id": rid, **extra}
        for name, rid, extra in specs
    ]


MAIN = {"is_main": "on"}
BAD_BALANCE_ROWS = [
    # (case, [(template, resource id, extra)], (row, field) of the error)
    ("no main balance", [("main", 12, {})], (0, "is_main")),
    ("two main balances", [("main", 12, MAIN), ("data", 13, MAIN)], (1, "is_main")),
    ("a meter as main", [("meter", 15, MAIN)], (0, "is_main")),
    ("a virtual template", [("main", 12, MAIN), ("virtual", 14, {})], (1, "template")),
    ("resource id twice", [("main", 12, MAIN), ("data", 12, {})], (1, "resource_id")),
    ("resource id zero", [("main", 0, MAIN)], (0, "resource_id")),
    ("no template", [("", 12, MAIN)], (0, "template")),
    ("a row without template", [("main", 12, MAIN), ("", 13, {})], (1, "template")),
    ("amount too precise", [("main", 12, {**MAIN, "amount": "1.005"})], (0, "amount")),
    ("amount negative", [("main", 12, {**MAIN, "amount": "-1"})], (0, "amount")),
    ("amount not a number", [("main", 12, {**MAIN, "amount": "NaN"})], (0, "amount")),
    ("amount too large", [("main", 12, {**MAIN, "amount": "1" + "0" * 18})], (0, "amount")),
    (
        "a meter opening above zero",
        [("main", 12, MAIN), ("meter", 15, {"amount": "5"})],
        (1, "amount"),
    ),
]


@pytest.mark.parametrize(
    ("rows", "where"),
    [case[1:] for case in BAD_BALANCE_ROWS],
    ids=[case[0] for case in BAD_BALANCE_ROWS],
)
def test_bad_balance_rows_are_refused_beside_their_field(
    client, operator, reseller, templates, rows, where
):
    before = snapshot()

    response = client.post(ADD_CLIENT, form_data(reseller, templates, *_rows(templates, *rows)))

    assert response.status_code == 200
    row, field = where
    forms = response.context["balances"].forms
    assert {i: list(f.errors) for i, f in enumerate(forms) if f.errors} == {row: [field]}
    assert not response.context["form"].errors
    assert snapshot() == before


def test_every_problem_is_shown_at_once(client, operator, reseller, templates):
    _user_taken(reseller)
    _subscription_taken(reseller)
    _number_taken(reseller)
    before = snapshot()
    data = form_data(
        reseller,
        templates,
        *_rows(templates, ("meter", 15, MAIN), ("main", 15, {})),
        external_id="taken-001",
        password1="password",
        password2="password",
    )

    response = client.post(ADD_CLIENT, data)

    assert set(response.context["form"].errors) == {
        "username",
        "password1",
        "external_id",
        "access_numbers",
    }
    assert [list(f.errors) for f in response.context["balances"].forms[:2]] == [
        ["is_main"],
        ["resource_id"],
    ]
    assert snapshot() == before


def test_an_opening_amount_needs_the_right_to_adjust_balances(client, reseller, templates):
    client.force_login(make_staff())
    before = snapshot()
    row = {"template": templates["main"].pk, "resource_id": 12, "is_main": "on", "amount": "50"}

    response = client.post(ADD_CLIENT, form_data(reseller, templates, row))

    assert list(response.context["balances"].forms[0].errors) == ["amount"]
    assert snapshot() == before
    # Zero is fine without it.
    response = client.post(ADD_CLIENT, form_data(reseller, templates))
    assert response.status_code == 302


def test_a_failure_half_way_leaves_nothing(monkeypatch, operator, reseller, templates):
    before = snapshot()
    real = services._open_balance

    def crash_on_the_second(wallet, plan, now, actor):
        if plan.resource_id == 13:
            raise RuntimeError("the database went away")
        return real(wallet, plan, now, actor)

    monkeypatch.setattr(services, "_open_balance", crash_on_the_second)
    args = service_args(reseller, templates)
    args["balances"].append(OpeningBalance(template=templates["data"], resource_id=13))

    with pytest.raises(RuntimeError):
        client_onboard(**args, actor=operator)

    assert snapshot() == before


def test_a_username_taken_between_the_checks_and_the_insert_is_named(
    monkeypatch, operator, reseller, templates
):
    """Two operators onboarding the same login at once: the loser's insert fails on the unique
    constraint after its checks passed; it is told which field, and nothing of it is left."""
    real, calls = services._problems, []

    def first_check_misses_the_other_operators_row(**fields):
        calls.append(1)
        return [] if len(calls) == 1 else real(**fields)

    UserFactory(username="ann")
    before = snapshot()
    monkeypatch.setattr(services, "_problems", first_check_misses_the_other_operators_row)

    with pytest.raises(OnboardingError) as refused:
        client_onboard(**service_args(reseller, templates), actor=operator)

    assert [(p.field, p.row) for p in refused.value.problems] == [("username", None)]
    assert snapshot() == before


def service_args(reseller, templates):
    return {
        "username": "ann",
        "password": PASSWORD,
        "name": "Ann Example",
        "reseller": reseller,
        "external_id": "ann-001",
        "access_numbers": ["5551234567"],
        "balances": [OpeningBalance(template=templates["main"], resource_id=12, is_main=True)],
        "can_redeem": True,
    }


# --- who may use it ---------------------------------------------------------------------------


def test_the_screen_is_linked_from_the_index_and_the_subscribers_list(client, operator):
    for page in (reverse("admin:index"), reverse("admin:subscribers_subscriber_changelist")):
        assert f'href="{ADD_CLIENT}"' in client.get(page).content.decode()
    page = client.get(ADD_CLIENT)
    assert page.status_code == 200
    assert [label for _, label in page.context["form"].fields["reseller"].choices][:2] == [
        "— choose —",
        "No reseller: redeems only cards issued without one",
    ]


@pytest.mark.parametrize("missing", ONBOARDING_PERMISSIONS)
def test_staff_missing_any_of_the_permissions_neither_see_nor_use_it(
    client, reseller, templates, missing
):
    user = make_staff()
    user.user_permissions.remove(
        Permission.objects.get(
            content_type__app_label=missing.split(".")[0], codename=missing.split(".")[1]
        )
    )
    grant(user, "subscribers.view_subscriber")
    client.force_login(user)
    before = snapshot()

    assert client.get(ADD_CLIENT).status_code == 403
    assert client.post(ADD_CLIENT, form_data(reseller, templates)).status_code == 403
    assert f'href="{ADD_CLIENT}"' not in client.get(reverse("admin:index")).content.decode()
    listing = client.get(reverse("admin:subscribers_subscriber_changelist"))
    assert f'href="{ADD_CLIENT}"' not in listing.content.decode()
    assert snapshot() == before
    with pytest.raises(Exception, match="PermissionDenied|^$"):
        client_onboard(**service_args(reseller, templates), actor=user)


def test_a_client_cannot_open_it(client, reseller, templates):
    user = grant(UserFactory(), *ONBOARDING_PERMISSIONS)  # not staff
    client.force_login(user)
    before = snapshot()

    response = client.post(ADD_CLIENT, form_data(reseller, templates))

    assert response.status_code == 302 and "/admin/login/" in response.url
    assert snapshot() == before


def test_a_resellers_staff_adds_clients_of_their_own_reseller_only(client, reseller, templates):
    other = ResellerFactory(name="Other")
    staff = make_staff()
    StaffResellerFactory(user=staff, reseller=reseller)
    client.force_login(staff)

    page = client.get(ADD_CLIENT)
    choices = page.context["form"].fields["reseller"].choices
    assert choices == [(str(reseller.pk), reseller.name)]  # no other, and no "no reseller"

    # A forged POST for another reseller (or none) still makes a client of their own.
    for forged, username, number in ((other.pk, "ann", "5551111"), ("none", "bob", "5552222")):
        data = form_data(
            reseller,
            templates,
            reseller=str(forged),
            username=username,
            external_id=username,
            access_numbers=number,
        )
        assert client.post(ADD_CLIENT, data).status_code == 302
        assert Subscriber.objects.get(user__username=username).reseller == reseller

    before = snapshot()
    with pytest.raises(OnboardingError) as refused:
        client_onboard(
            **{**service_args(other, templates), "username": "eve", "external_id": "eve"},
            actor=staff,
        )
    assert [p.field for p in refused.value.problems] == ["reseller"]
    assert snapshot() == before


def test_the_subscribers_group_exists_after_migrate_and_holds_the_redeem_right():
    group = Group.objects.get(name=SUBSCRIBERS_GROUP)
    assert [p.codename for p in group.permissions.all()] == ["redeem_card"]


def test_a_periodic_main_balance_takes_a_card_in_its_current_interval(client, operator, templates):
    mb = ResellerFactory(name="MB seller")
    row = {"template": templates["data"].pk, "resource_id": 13, "is_main": "on"}
    client.post(ADD_CLIENT, form_data(mb, templates, row))
    user = get_user_model().objects.get(username="ann")
    card = TopUpCardFactory(reseller=mb, amount=Decimal("500"), currency="MB")
    client.force_login(user)

    client.post("/panel/redeem/", {"code": card.pin})

    balance = Balance.objects.get(resource_id=13)
    assert balance.amount == Decimal("500")
    assert balance.intervals.live(timezone.now() + dt.timedelta(seconds=1)).get().amount == 500


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_operators_onboarding_the_same_login_at_once_make_one_client(templates):
    """Real parallel connections: both pass their checks or one waits on the other's insert;
    either way one client exists and the other operator is told the username is taken."""
    import threading

    from django.db import connection

    reseller = ResellerFactory(name="Acme")
    operators = [make_staff(username=f"op{i}") for i in range(2)]
    barrier, outcomes = threading.Barrier(2), []

    def onboard(i):
        try:
            barrier.wait()
            args = {
                **service_args(reseller, templates),
                "external_id": f"ann-{i}",
                "access_numbers": [f"555000{i}"],
            }
            client_onboard(**args, actor=operators[i])
            outcomes.append("created")
        except OnboardingError as error:
            outcomes.append([p.field for p in error.problems])
        finally:
            connection.close()

    threads = [threading.Thread(target=onboard, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes, key=str) == sorted(["created", ["username"]], key=str)
    assert get_user_model().objects.filter(username="ann").count() == 1
    assert Subscriber.objects.count() == 1 and Subscription.objects.count() == 1
    assert AccessNumber.objects.count() == 1 and Wallet.objects.count() == 1
