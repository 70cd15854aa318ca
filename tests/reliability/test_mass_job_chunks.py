"""A background Mass Edit works in chunks: a sale never waits for the job (PostgreSQL, issue 15).

The job writes its selection's ids once, then changes MASS_EDIT_CHUNK_SIZE cards per short
transaction. Here the chunk size is 2 and the series holds 6 cards (3 chunks). The job is held by
a patched step at a chosen point, so nothing depends on timing: between two chunks (no card of
the selection locked: every redemption is done), or inside a chunk (only that chunk's cards are
busy). The bound asserted on each answer (5 s) only shows the answer did not wait for the held
job, which is released after it; each answer's time is printed (`-s`).
"""

import datetime as dt
import threading
import time
from decimal import Decimal

import pytest
from django.db import connections
from django.test import Client
from django.urls import reverse
from django.utils import timezone

import cards.jobs.mass
import cards.sql.selection
from cards.jobs import run_mass_job
from cards.jobs.mass import mass_edit_job_start
from cards.models import CardEvent, CardJob, CardJobCard, TopUpCard
from cards.models.events import CardEventKind
from cards.models.jobs import CardJobStatus
from tests.factories import TopUpCardFactory
from tests.reliability import test_redemption_beside_a_job as beside
from tests.reliability.support import state
from tests.rsgateway.api import Api, reply
from tests.wallets.conftest import make_client_user
from wallets.exceptions import Result
from wallets.models import Balance, VoucherMode

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

SERIES = "7"
BOUND = beside.BOUND
locked_cards = beside.locked_cards
rose = beside.rose  # the subscriber fixture, with a main balance and the redeem right
OLD_EXPIRY = timezone.now().replace(microsecond=0) + dt.timedelta(days=30)
NEW_EXPIRY = dt.datetime(2031, 6, 30, 12, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def chunks_of_two(settings):
    settings.MASS_EDIT_CHUNK_SIZE = 2


@pytest.fixture
def series(rose):
    """Six 10.00 cards on sale: chunks (1, 2), (3, 4), (5, 6) in card id order."""
    return [
        TopUpCardFactory(
            series=SERIES,
            number=n,
            amount=Decimal("10.00"),
            reseller=rose.reseller,
            expires_at=OLD_EXPIRY,
        )
        for n in range(1, 7)
    ]


class Held:
    """A background Mass Edit (a new expiry for every card of the series: the cards stay on
    sale) run by the worker's task in a thread, held at a point `hold` patches in."""

    def __init__(self, actor):
        self.holding = threading.Event()
        self.release_now = threading.Event()
        self.job = mass_edit_job_start(
            filters={"series": SERIES}, expected=6, changes={"expires_at": NEW_EXPIRY}, actor=actor
        )
        self.thread = threading.Thread(target=self._run)
        self.error = None

    def hold(self):
        if not self.holding.is_set():
            self.holding.set()
            assert self.release_now.wait(60)

    def _run(self):
        try:
            run_mass_job.call(self.job.pk)
        except Exception as error:  # noqa: BLE001 - reported by the test
            self.error = error
        finally:
            connections.close_all()

    def __enter__(self):
        self.thread.start()
        assert self.holding.wait(30), "the job never reached its held step"
        return self

    def __exit__(self, *exc):
        self.release_now.set()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()


def held_after_the_first_chunk(monkeypatch, actor) -> Held:
    held = Held(actor)
    original, calls = cards.jobs.mass.job_chunk_edit, []

    def chunk_then_hold(**kwargs):
        done = original(**kwargs)  # committed
        calls.append(done)
        if len(calls) == 1:
            held.hold()
        return done

    monkeypatch.setattr(cards.jobs.mass, "job_chunk_edit", chunk_then_hold)
    return held


def held_inside_the_second_chunk(monkeypatch, actor) -> Held:
    held = Held(actor)
    original, calls = cards.sql.selection.insert_card_events, []

    def insert_then_hold(*args, **kwargs):
        inserted = original(*args, **kwargs)
        calls.append(inserted)
        if len(calls) == 2:  # the second chunk's audit: its cards locked and being changed
            held.hold()
        return inserted

    monkeypatch.setattr(cards.sql.selection, "insert_card_events", insert_then_hold)
    return held


def timed(call):
    started = time.monotonic()
    answer = call()
    took = time.monotonic() - started
    print(f"answered in {took * 1000:.0f} ms")
    return answer, took


def expiries():
    return dict(TopUpCard.objects.filter(series=SERIES).values_list("number", "expires_at"))


def test_redemptions_while_the_job_is_between_chunks_are_done_and_the_job_skips_them(
    monkeypatch,
    admin_user,
    admin_client,
    rose,
    series,
):
    api = Api(Client(), "json", make_client_user(VoucherMode.CARD, username="partner"))
    panel = Client()
    panel.force_login(rose.user)

    with held_after_the_first_chunk(monkeypatch, admin_user) as held:
        job = CardJob.objects.get(pk=held.job.pk)
        assert (job.status, job.done, job.total, job.percent) == ("running", 2, 6, 33)
        assert locked_cards(SERIES) == 0
        assert (
            "Changing 6 cards… 2 done (33%)."
            in admin_client.get(
                reverse("admin:cards_cardjob_change", args=[job.pk])
            ).content.decode()
        )

        # A card the job has changed already, one of the next chunk, one of the last.
        done_card, _ = timed(lambda: api.topup(rose.balance, Amount="10.00", Voucher=series[0].pin))
        rest, took_rest = timed(
            lambda: api.topup(rose.balance, Amount="10.00", Voucher=series[2].pin)
        )
        page, took_panel = timed(
            lambda: panel.post("/panel/redeem/", {"code": series[4].pin}, follow=True)
        )

        assert took_rest < BOUND and took_panel < BOUND
        assert (done_card.status_code, reply(done_card)["Result"]) == (200, Result.OK)
        assert (rest.status_code, reply(rest)["Result"]) == (200, Result.OK)
        assert "try again" not in page.content.decode()
        assert Balance.objects.get(pk=rose.balance.pk).amount == Decimal("30.00")
        assert CardJob.objects.get(pk=job.pk).status == CardJobStatus.RUNNING

    assert held.error is None
    job.refresh_from_db()
    assert job.status == CardJobStatus.SUCCEEDED and job.done == 6
    assert job.result["changed"] == {"expires_at": 4}
    assert (job.result["redeemed"], job.result["skipped"]) == (2, 2)
    # The cards redeemed before their chunk keep their expiry; every other one got the new one.
    assert expiries() == {
        1: NEW_EXPIRY, 2: NEW_EXPIRY, 3: OLD_EXPIRY, 4: NEW_EXPIRY, 5: OLD_EXPIRY, 6: NEW_EXPIRY,
    }  # fmt: skip
    edited = CardEvent.objects.filter(kind=CardEventKind.EDITED)
    assert sorted(e.card.number for e in edited) == [1, 2, 4, 6]
    assert {e.actor_id for e in edited} == {admin_user.pk}
    assert CardEvent.objects.filter(kind=CardEventKind.REDEEMED).count() == 3
    assert not CardJobCard.objects.exists()
    label = admin_client.get(reverse("admin:cards_cardjob_progress", args=[job.pk])).json()["label"]
    assert label == (
        "Done: expiration date changed on 4 cards; "
        "2 cards were redeemed meanwhile and left as they were."
    )


@pytest.mark.parametrize("binding", ["xml", "json"])
def test_inside_a_chunk_only_its_own_cards_are_busy(
    monkeypatch,
    admin_user,
    rose,
    series,
    binding,
):
    api = Api(Client(), binding, make_client_user(VoucherMode.CARD, username="partner"))

    with held_inside_the_second_chunk(monkeypatch, admin_user) as held:
        assert locked_cards(SERIES) == 2  # cards 3 and 4, nothing else
        before = state()

        busy, took_busy = timed(
            lambda: api.topup(rose.balance, Amount="10.00", Voucher=series[3].pin)
        )

        assert took_busy < BOUND
        assert (busy.status_code, reply(busy)["Result"]) == (503, Result.INTERNAL_ERROR)
        assert int(busy["Retry-After"]) >= 1
        assert state() == before  # nothing credited, nothing audited

        sold, took_sold = timed(
            lambda: api.topup(rose.balance, Amount="10.00", Voucher=series[5].pin)
        )

        assert took_sold < BOUND
        assert (sold.status_code, reply(sold)["Result"]) == (200, Result.OK)

    assert held.error is None
    job = CardJob.objects.get(pk=held.job.pk)
    assert job.status == CardJobStatus.SUCCEEDED
    assert job.result["changed"] == {"expires_at": 5} and job.result["redeemed"] == 1
    assert expiries()[6] == OLD_EXPIRY and expiries()[4] == NEW_EXPIRY
    # The busy card sells once its chunk has committed.
    again = api.topup(rose.balance, Amount="10.00", Voucher=series[3].pin)
    assert (again.status_code, reply(again)["Result"]) == (200, Result.OK)
    assert Balance.objects.get(pk=rose.balance.pk).amount == Decimal("20.00")


def test_panel_redemption_inside_the_chunk_says_try_again_and_outside_it_is_done(
    monkeypatch,
    admin_user,
    rose,
    series,
):
    panel = Client()
    panel.force_login(rose.user)

    with held_inside_the_second_chunk(monkeypatch, admin_user):
        before = state()

        busy, took_busy = timed(
            lambda: panel.post("/panel/redeem/", {"code": series[2].pin}, follow=True)
        )

        assert took_busy < BOUND
        assert "Please try again in a moment." in busy.content.decode()
        assert state() == before

        done, took_done = timed(
            lambda: panel.post("/panel/redeem/", {"code": series[0].pin}, follow=True)
        )

        assert took_done < BOUND
        assert "try again" not in done.content.decode()
        assert Balance.objects.get(pk=rose.balance.pk).amount == Decimal("10.00")

    assert CardJob.objects.get().status == CardJobStatus.SUCCEEDED
