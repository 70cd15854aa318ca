"""The replica router's rules without a replica (docs/replicas.md): what may read one, how often
its health is checked, read-your-writes, and pages when the replica is down. The real streaming
standby is in tests/reliability/test_replicas.py."""

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.db import transaction
from django.http import HttpResponse
from django.test import RequestFactory
from django.urls import reverse

from cards.models import TopUpCard
from common import replicas
from subscribers.models import StaffReseller
from tests.factories import TopUpCardFactory, UserFactory
from wallets.models import ApiClient, LedgerEntry

ROUTER = replicas.ReplicaRouter()
UP = replicas.Health(True, 100, "", 0.0)
DOWN = replicas.Health(False, 0, "unreachable (OperationalError)", 0.0)


class FakeReplica:
    """replica1, as the health check would find it; counts the checks."""

    def __init__(self, monkeypatch, state=UP):
        self.state = state
        self.checks = 0
        self.clock = 1000.0
        replicas.forget_health()
        monkeypatch.setattr(replicas, "replica_aliases", lambda: ["replica1"])
        monkeypatch.setattr(replicas, "probe", self.probe)
        monkeypatch.setattr(replicas, "_clock", lambda: self.clock)

    def probe(self, alias):
        self.checks += 1
        return replicas.Health(
            self.state.usable, self.state.replay_lsn, self.state.problem, self.clock
        )


@pytest.fixture(autouse=True)
def _forget():
    replicas.forget_health()
    yield
    replicas.forget_health()


def test_without_a_block_every_read_and_write_goes_to_the_primary(monkeypatch):
    FakeReplica(monkeypatch)
    assert ROUTER.db_for_read(TopUpCard) == "default"
    assert ROUTER.db_for_write(TopUpCard) == "default"


def test_a_block_reads_data_from_the_replica_but_never_who_may_do_what(monkeypatch):
    FakeReplica(monkeypatch)
    with replicas.stale_ok() as block:
        assert ROUTER.db_for_read(TopUpCard) == "replica1"
        assert ROUTER.db_for_read(LedgerEntry) == "replica1"
        # A revoked permission, scope, session or credential takes effect at once.
        for model in (Session, StaffReseller, ApiClient, UserFactory._meta.model):
            assert ROUTER.db_for_read(model) == "default"
        # An object read from the replica is written to the primary.
        assert ROUTER.db_for_write(TopUpCard, instance=TopUpCard()) == "default"
    assert block.alias == "replica1" and not block.degraded


@pytest.mark.django_db(transaction=True)
def test_reads_inside_a_transaction_read_the_primary(monkeypatch):
    FakeReplica(monkeypatch)
    with replicas.stale_ok(), transaction.atomic():
        assert ROUTER.db_for_read(TopUpCard) == "default"


def test_health_is_checked_once_per_period_not_per_query(monkeypatch, settings):
    settings.REPLICA_HEALTH_CHECK_SECONDS = 5
    replica = FakeReplica(monkeypatch)
    for _ in range(10):
        with replicas.stale_ok():
            for _ in range(5):
                assert ROUTER.db_for_read(TopUpCard) == "replica1"
    assert replica.checks == 1
    replica.clock += 6
    with replicas.stale_ok():
        ROUTER.db_for_read(TopUpCard)
    assert replica.checks == 2


def test_a_replica_down_or_behind_is_skipped_for_the_primary_with_the_reason(monkeypatch):
    replica = FakeReplica(monkeypatch, DOWN)
    with replicas.stale_ok() as block:
        assert ROUTER.db_for_read(TopUpCard) == "default"
    assert block.degraded
    assert block.skipped == ["replica1: unreachable (OperationalError)"]
    # Until the next check: a failed replica is not tried again on every page.
    with replicas.stale_ok():
        ROUTER.db_for_read(TopUpCard)
    assert replica.checks == 1


def test_after_a_write_the_primary_until_the_replica_has_replayed_it(monkeypatch, settings):
    settings.REPLICA_HEALTH_CHECK_SECONDS = 60
    replica = FakeReplica(monkeypatch, replicas.Health(True, 100, "", 0.0))
    with replicas.stale_ok():
        assert ROUTER.db_for_read(TopUpCard) == "replica1"
    token = replicas._written_lsn.set(150)
    try:
        with replicas.stale_ok() as block:
            assert ROUTER.db_for_read(TopUpCard) == "default"
        assert not block.degraded  # not a fault: no warning
        # Behind the write, the replica is asked again at once, not after the period.
        assert replica.checks == 2
        replica.state = replicas.Health(True, 150, "", 0.0)
        with replicas.stale_ok():
            assert ROUTER.db_for_read(TopUpCard) == "replica1"
    finally:
        replicas._written_lsn.reset(token)


# --- The middleware and the pages -------------------------------------------------------------


def _through_middleware(request, view=None):
    def answer(request):
        return HttpResponse("ok")

    return replicas.ReadYourWritesMiddleware(view or answer)(request)


def _request(method: str, user, written=None):
    request = getattr(RequestFactory(), method)("/admin/anything/")
    request.user = user
    request.session = SessionStore()
    if written is not None:
        request.session[replicas.SESSION_KEY] = written
    return request


@pytest.mark.django_db
def test_a_staff_users_write_request_keeps_the_primarys_position_reads_do_not(monkeypatch):
    FakeReplica(monkeypatch)
    monkeypatch.setattr(replicas, "primary_lsn", lambda: 0x2A)
    staff = UserFactory(is_staff=True)
    post = _request("post", staff)
    _through_middleware(post)
    position, _ = post.session[replicas.SESSION_KEY]
    assert position == 0x2A
    for request in (_request("get", staff), _request("post", UserFactory(is_staff=False))):
        _through_middleware(request)
        assert replicas.SESSION_KEY not in request.session


@pytest.mark.django_db
def test_the_next_requests_read_after_that_position_for_the_window(monkeypatch, settings):
    FakeReplica(monkeypatch)
    settings.REPLICA_READ_YOUR_WRITES_SECONDS = 300
    staff = UserFactory(is_staff=True)
    seen = []

    def view(request):
        seen.append(replicas._written_lsn.get())
        return HttpResponse("ok")

    now = int(replicas.time.time())
    for written, expected in (([0x2A, now], 0x2A), ([0x2A, now - 301], None), (None, None)):
        _through_middleware(_request("get", staff, written), view)
        assert seen.pop() == expected


@pytest.mark.django_db
def test_without_replicas_the_middleware_costs_nothing(monkeypatch, django_assert_num_queries):
    called = []
    monkeypatch.setattr(replicas, "primary_lsn", lambda: called.append(1))
    post = _request("post", UserFactory(is_staff=True))
    with django_assert_num_queries(0):
        _through_middleware(post)
    assert called == [] and replicas.SESSION_KEY not in post.session


@pytest.fixture
def operator_client(client):
    user = UserFactory(username="operator", is_staff=True, is_superuser=True)
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_pages_are_served_from_the_primary_with_a_warning_when_the_replica_is_down(
    monkeypatch, operator_client
):
    card = TopUpCardFactory(series="7")
    FakeReplica(monkeypatch, DOWN)
    for name in ("admin:reports_expiringreport_changelist", "admin:cards_topupcard_changelist"):
        page = operator_client.get(reverse(name))
        assert page.status_code == 200
        assert "The read replica is unavailable or too far behind" in page.content.decode()
    page = operator_client.get(reverse("admin:cards_topupcard_changelist"))
    assert card.serial in page.content.decode()
    export = operator_client.get(reverse("admin:cards_topupcard_export_csv") + "?series=7")
    assert export.status_code == 200
    assert card.serial in b"".join(export.streaming_content).decode()


@pytest.mark.django_db
def test_no_warning_and_no_replica_when_none_is_configured(operator_client):
    page = operator_client.get(reverse("admin:reports_expiringreport_changelist"))
    assert page.status_code == 200
    assert "read replica" not in page.content.decode()
