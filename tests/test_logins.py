"""Login protection of the admin and the client panel (docs/panel.md "Logins").

A guesser is stopped per (username, client address); the same user elsewhere and everyone else
behind the guesser's address still log in; the lock says until when and ends then; every
attempt is audited, read-only, and shows in the admin's failure alert.
"""

import datetime as dt
import threading

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.utils import timezone

from common.login_guard import UNKNOWN_ADDRESS, UNKNOWN_USERNAME_PREFIX
from subscribers.models import StaffReseller
from tests.factories import ResellerFactory, UserFactory
from tests.rsgateway.api import Api, subscription_ref
from tests.wallets.conftest import make_balance, make_client_user

pytestmark = pytest.mark.django_db

ADMIN = "/admin/login/"
PANEL = "/panel/login/"
LOGINS = [ADMIN, PANEL]
GUESSER = "198.51.100.7"
NAT = "203.0.113.50"  # a carrier NAT address: the guesser and many subscribers behind it


def attempt(client, url, username, password, ip=GUESSER, **extra):
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=ip, **extra)


def logged_in(client) -> bool:
    return "_auth_user_id" in client.session


def counted(username="victim") -> int:
    return sum(
        AccessAttempt.objects.filter(username=username).values_list(
            "failures_since_start", flat=True
        )
    )


def assert_refused_with_the_lock_page(response, url):
    page = response.content.decode()
    assert response.status_code == 429
    assert "Logging in with it from here is paused until" in page
    assert int(response["Retry-After"]) > 0
    if url == ADMIN:
        assert 'id="login-form"' in page and 'id="login-locked"' in page
    else:
        assert 'class="card narrow"' in page and 'data-outcome="login-locked"' in page


@pytest.fixture
def victim(db):
    """Staff, so that the admin login accepts the right password too."""
    return UserFactory(username="victim", is_staff=True)


@pytest.mark.parametrize("url", LOGINS)
def test_forty_wrong_passwords_then_the_right_one_is_refused_until_when_it_says(victim, url):
    client = Client()
    answers = [attempt(client, url, "victim", f"guess-{n}") for n in range(40)]

    right = attempt(client, url, "victim", "secret")

    assert [a.status_code for a in answers[:4]] == [200] * 4
    assert all(a.status_code == 429 for a in answers[4:])
    assert_refused_with_the_lock_page(right, url)
    assert not logged_in(client)
    fifth = AccessAttempt.objects.get(username="victim")
    until = timezone.localtime(fifth.attempt_time + dt.timedelta(minutes=15))
    assert f"paused until {until:%Y-%m-%d %H:%M} (UTC)" in right.content.decode()
    # Refused attempts are audited but not counted: the lock ends on time.
    assert counted() == 5
    assert AccessFailureLog.objects.filter(username="victim", locked_out=False).count() == 4
    assert AccessFailureLog.objects.filter(username="victim", locked_out=True).count() == 37
    assert not AccessLog.objects.exists()


@pytest.mark.parametrize("url", LOGINS)
def test_the_lock_ends_after_the_cool_off(victim, url):
    client = Client()
    for n in range(5):
        attempt(client, url, "victim", f"guess-{n}")
    AccessAttempt.objects.update(attempt_time=timezone.now() - dt.timedelta(minutes=15, seconds=1))

    response = attempt(client, url, "victim", "secret")

    assert response.status_code == 302 and logged_in(client)


@pytest.mark.parametrize("url", LOGINS)
def test_who_has_not_failed_logs_in_from_the_guessers_nat_address(victim, url):
    UserFactory(username="neighbour", is_staff=True)
    for n in range(10):
        attempt(Client(), url, "victim", f"guess-{n}", ip=NAT)
    assert attempt(Client(), url, "victim", "secret", ip=NAT).status_code == 429

    neighbour = Client()
    response = attempt(neighbour, url, "neighbour", "secret", ip=NAT)

    assert response.status_code == 302 and logged_in(neighbour)


@pytest.mark.parametrize("url", LOGINS)
def test_a_guesser_cannot_lock_the_real_user_out_from_elsewhere(victim, url):
    for n in range(10):
        attempt(Client(), url, "victim", f"guess-{n}", ip=GUESSER)

    own = Client()
    response = attempt(own, url, "victim", "secret", ip="192.0.2.20")

    assert response.status_code == 302 and logged_in(own)


def test_a_success_gives_its_count_back(victim):
    for n in range(4):
        attempt(Client(), PANEL, "victim", f"guess-{n}")
    for _ in range(3):
        assert attempt(Client(), PANEL, "victim", "secret").status_code == 302

    client = Client()
    assert attempt(client, PANEL, "victim", "secret").status_code == 302
    assert counted() == 4 and AccessLog.objects.filter(username="victim").count() == 4


def test_a_crash_between_the_count_and_the_password_check_leaves_the_attempt_counted(
    victim, monkeypatch
):
    def crash(self, request, username=None, password=None, **kwargs):
        raise RuntimeError("worker killed")

    monkeypatch.setattr(ModelBackend, "authenticate", crash)
    client = Client(raise_request_exception=False)

    assert attempt(client, PANEL, "victim", "secret").status_code == 500
    assert counted() == 1


def test_a_spray_over_the_address_budget_leaves_one_try_per_username(victim, settings):
    """Many usernames from one address: past LOGIN_LOCKOUT_ADDRESS_FAILURES every pair gets one
    try. Who already failed from there is stopped; who has not still logs in."""
    settings.LOGIN_LOCKOUT_ADDRESS_FAILURES = 10
    UserFactory(username="mistyper")
    UserFactory(username="neighbour")
    attempt(Client(), PANEL, "mistyper", "typo", ip=NAT)
    for n in range(10):
        attempt(Client(), PANEL, f"sprayed-{n}", "Summer2024!", ip=NAT)

    fresh_guess = attempt(Client(), PANEL, "victim", "Summer2024!", ip=NAT)
    second_guess = attempt(Client(), PANEL, "victim", "secret", ip=NAT)
    mistyper = attempt(Client(), PANEL, "mistyper", "secret", ip=NAT)
    neighbour = Client()
    neighbour_answer = attempt(neighbour, PANEL, "neighbour", "secret", ip=NAT)
    elsewhere = attempt(Client(), PANEL, "mistyper", "secret", ip="192.0.2.20")

    assert fresh_guess.status_code == 429  # its one try used, and now locked
    assert second_guess.status_code == 429
    assert mistyper.status_code == 429
    assert neighbour_answer.status_code == 302 and logged_in(neighbour)
    assert elsewhere.status_code == 302


def test_a_botnet_on_one_username_gets_one_try_per_address_and_the_user_still_logs_in(
    victim, settings
):
    settings.LOGIN_LOCKOUT_USERNAME_FAILURES = 6
    bots = [f"198.51.100.{n}" for n in range(1, 8)]
    for bot in bots:
        attempt(Client(), ADMIN, "victim", "guess", ip=bot)

    again = attempt(Client(), ADMIN, "victim", "secret", ip=bots[0])
    new_bot = attempt(Client(), ADMIN, "victim", "guess", ip="198.51.100.99")
    own = Client()
    response = attempt(own, ADMIN, "victim", "secret", ip="192.0.2.20")

    assert again.status_code == 429
    assert new_bot.status_code == 429  # one try, then locked
    assert response.status_code == 302 and logged_in(own)


@pytest.mark.parametrize("unreadable", ["", "garbage", "unix:/run/gunicorn.sock", "300.1.1.1"])
def test_an_address_that_cannot_be_read_counts_under_one_key(victim, unreadable):
    others = ["", "garbage", "not-an-ip", "999.999.999.999", "::g"]
    for n, ip in enumerate(others):
        attempt(Client(), PANEL, "victim", f"guess-{n}", ip=ip)

    client = Client()
    response = attempt(client, PANEL, "victim", "secret", ip=unreadable)

    assert response.status_code == 429 and not logged_in(client)
    assert set(AccessFailureLog.objects.values_list("ip_address", flat=True)) == {UNKNOWN_ADDRESS}


def test_ipv6_counts_per_network(victim):
    for n in range(5):
        attempt(Client(), PANEL, "victim", "guess", ip=f"2001:db8:1:2::{n + 10:x}")

    same_line = attempt(Client(), PANEL, "victim", "secret", ip="2001:db8:1:2::ffff")
    other_line = attempt(Client(), PANEL, "victim", "secret", ip="2001:db8:1:3::1")

    assert same_line.status_code == 429
    assert other_line.status_code == 302


def test_behind_a_proxy_the_forwarded_client_address_is_counted(victim, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    proxy = "10.0.0.1"
    for n in range(5):
        attempt(
            Client(),
            PANEL,
            "victim",
            "guess",
            ip=proxy,
            HTTP_X_FORWARDED_FOR=f"10.9.9.{n}, {GUESSER}",
        )

    guesser = attempt(Client(), PANEL, "victim", "secret", ip=proxy, HTTP_X_FORWARDED_FOR=GUESSER)
    own = attempt(Client(), PANEL, "victim", "secret", ip=proxy, HTTP_X_FORWARDED_FOR="192.0.2.20")

    assert guesser.status_code == 429
    assert own.status_code == 302
    assert set(AccessFailureLog.objects.values_list("ip_address", flat=True)) == {GUESSER}


def test_every_attempt_is_audited_and_a_password_typed_as_username_is_not_kept(victim):
    attempt(Client(), ADMIN, "victim", "wrong")
    attempt(Client(), PANEL, "correct-horse-battery", "victim")
    attempt(Client(), PANEL, "victim", "secret", ip="192.0.2.20")

    failures = list(
        AccessFailureLog.objects.order_by("pk").values_list("username", "ip_address", "path_info")
    )
    assert failures[0] == ("victim", GUESSER, ADMIN)
    assert failures[1][0].startswith(UNKNOWN_USERNAME_PREFIX)
    assert failures[1][1:] == (GUESSER, PANEL)
    assert not AccessFailureLog.objects.filter(username__contains="horse").exists()
    assert not AccessAttempt.objects.filter(username__contains="horse").exists()
    success = AccessLog.objects.get()
    assert (success.username, success.ip_address, success.path_info) == (
        "victim",
        "192.0.2.20",
        PANEL,
    )
    assert AccessFailureLog.objects.filter(attempt_time__gte=success.attempt_time).count() == 0


# --- the audit in the admin ---------------------------------------------------------------------

AUDIT = ["accessfailurelog", "accesslog", "accessattempt"]


@pytest.fixture
def operator(db):
    client = Client()
    client.force_login(UserFactory(username="operator", is_staff=True, is_superuser=True))
    return client


@pytest.mark.parametrize("model", AUDIT)
def test_the_login_audit_is_readable_but_not_editable_in_the_admin(victim, operator, model):
    attempt(Client(), PANEL, "victim", "wrong")
    attempt(Client(), PANEL, "victim", "secret")
    row = {"accessfailurelog": AccessFailureLog, "accesslog": AccessLog}.get(
        model, AccessAttempt
    ).objects.first()
    before = {m: list(m.objects.values()) for m in (AccessFailureLog, AccessLog, AccessAttempt)}
    base = f"/admin/axes/{model}/"

    listing = operator.get(base)
    detail = operator.get(f"{base}{row.pk}/change/")
    add = operator.get(f"{base}add/")
    change = operator.post(f"{base}{row.pk}/change/", {"username": "someone-else"})
    delete = operator.post(f"{base}{row.pk}/delete/", {"post": "yes"})
    bulk = operator.post(base, {"action": "delete_selected", "_selected_action": [row.pk]})

    assert listing.status_code == 200 and "victim" in listing.content.decode()
    assert "delete_selected" not in listing.content.decode()
    assert detail.status_code == 200 and 'name="_save"' not in detail.content.decode()
    assert add.status_code == 403 and change.status_code == 403 and delete.status_code == 403
    assert bulk.status_code in (200, 302)
    after = {m: list(m.objects.values()) for m in (AccessFailureLog, AccessLog, AccessAttempt)}
    assert after == before


def test_the_login_audit_is_closed_to_reseller_scoped_staff(victim):
    attempt(Client(), PANEL, "victim", "wrong")
    scoped = UserFactory(username="scoped", is_staff=True)
    scoped.user_permissions.add(*Permission.objects.filter(content_type__app_label="axes"))
    StaffReseller.objects.create(user=scoped, reseller=ResellerFactory())
    client = Client()
    client.force_login(scoped)

    index = client.get("/admin/").content.decode()

    assert "/admin/axes/" not in index
    for model in AUDIT:
        assert client.get(f"/admin/axes/{model}/").status_code == 403


# --- the failure alert --------------------------------------------------------------------------


def test_operators_see_failed_logins_in_the_alert_with_their_sources(victim, operator, settings):
    settings.LOGIN_FAILURE_BUDGET = 3
    for n in range(3):
        attempt(Client(), ADMIN, "victim", f"guess-{n}")
    assert 'id="login-alert"' not in operator.get("/admin/").content.decode()

    attempt(Client(), PANEL, "victim", "guess-4", ip=NAT)
    page = operator.get("/admin/").content.decode()

    assert 'id="login-alert"' in page
    assert "4 failed logins in the last 10 minutes" in page
    assert f"{GUESSER} (3)" in page and f"{NAT} (1)" in page and "victim (4)" in page
    assert "/admin/axes/accessfailurelog/" in page
    assert 'id="redemption-alert"' not in page


def test_reseller_staff_do_not_see_other_resellers_logins_in_the_alert(victim, settings):
    settings.LOGIN_FAILURE_BUDGET = 1
    for n in range(3):
        attempt(Client(), ADMIN, "victim", f"guess-{n}")
    scoped = UserFactory(username="scoped", is_staff=True)
    StaffReseller.objects.create(user=scoped, reseller=ResellerFactory())
    client = Client()
    client.force_login(scoped)

    page = client.get("/admin/").content.decode()

    assert 'id="login-alert"' not in page and GUESSER not in page


def test_old_failures_leave_the_alert(victim, operator, settings):
    settings.LOGIN_FAILURE_BUDGET = 1
    for n in range(3):
        attempt(Client(), ADMIN, "victim", f"guess-{n}")
    AccessFailureLog.objects.update(attempt_time=timezone.now() - dt.timedelta(minutes=11))

    assert 'id="login-alert"' not in operator.get("/admin/").content.decode()


# --- the REST API keeps its own limit -----------------------------------------------------------


def test_http_basic_is_not_touched_by_the_login_lock(client):
    partner = make_client_user(username="partner")
    balance = make_balance()
    for n in range(10):
        attempt(Client(), PANEL, "partner", f"guess-{n}", ip="127.0.0.1")
    assert attempt(Client(), PANEL, "partner", "secret", ip="127.0.0.1").status_code == 429
    recorded = AccessFailureLog.objects.count(), counted("partner")

    wrong_api, api = Api(client, "xml", partner, password="not-it"), Api(client, "xml", partner)
    wrong = wrong_api.send("GET", wrong_api.url(subscription_ref(balance)))
    right = api.send("GET", api.url(subscription_ref(balance)))

    assert wrong.status_code == 401
    assert right.status_code == 200
    assert (AccessFailureLog.objects.count(), counted("partner")) == recorded


# --- parallel attempts (PostgreSQL: real connections, real threads) ----------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("url", LOGINS)
def test_a_parallel_burst_gets_no_more_password_checks_than_the_limit(url, monkeypatch):
    UserFactory(username="victim", is_staff=True)
    threads = 16
    checks = []
    checks_lock = threading.Lock()
    original = ModelBackend.authenticate

    def counting(self, request, username=None, password=None, **kwargs):
        with checks_lock:
            checks.append(password)
        return original(self, request, username=username, password=password, **kwargs)

    monkeypatch.setattr(ModelBackend, "authenticate", counting)
    start = threading.Barrier(threads)
    statuses = []

    def guess(n):
        try:
            client = Client()
            start.wait()
            statuses.append(attempt(client, url, "victim", f"guess-{n}").status_code)
        finally:
            connection.close()

    workers = [threading.Thread(target=guess, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert len(statuses) == threads
    assert len(checks) == 5
    assert counted() == 5
    # At most the first four are told "wrong password": one that finishes while others are
    # still counted may already be told the pair is locked, which by then it is.
    assert set(statuses) <= {200, 429} and statuses.count(200) <= 4
    assert statuses.count(429) >= threads - 4
    client = Client()
    assert attempt(client, url, "victim", "secret").status_code == 429
    assert not logged_in(client)
