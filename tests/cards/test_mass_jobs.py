"""Mass Edit and Delete all of selections above MASS_EDIT_SYNC_LIMIT run as background jobs."""

import datetime as dt
import signal
import time
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from cards.models import CardEvent, CardJob, CardJobCard, TopUpCard
from cards.models.jobs import CardJobKind, CardJobStatus
from subscribers.models import StaffReseller
from tests.cards.admin_helpers import operator, snapshot
from tests.cards.test_jobs import run_worker, spawn_worker
from tests.factories import ResellerFactory, TopUpCardFactory

MASS_EDIT = reverse("admin:cards_topupcard_mass_edit")
DELETE_ALL = reverse("admin:cards_topupcard_delete_all")
EXPIRES = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def url(base, **search):
    return base + "?" + urlencode(search)


def edit(**fields):
    data = {"expires_action": "preserve", "reseller_action": "preserve", "block_action": "preserve"}
    return {**data, **fields, "_confirm": "1"}


EXPIRY_AND_BLOCK = edit(
    expires_action="set", expires_at="2031-06-30 12:00:00", block_action="block"
)


def cards(series, count, reseller=None, **fields):
    return [
        TopUpCardFactory(series=series, number=n, reseller=reseller, expires_at=EXPIRES, **fields)
        for n in range(1, count + 1)
    ]


def job_page(job):
    return reverse("admin:cards_cardjob_change", args=[job.pk])


def progress(client, job):
    return client.get(reverse("admin:cards_cardjob_progress", args=[job.pk])).json()


@pytest.mark.django_db
@pytest.mark.parametrize("limit, background", [(6, False), (5, True)])
def test_process_runs_in_the_request_up_to_the_limit_and_in_the_background_above(
    admin_client, settings, limit, background
):
    settings.MASS_EDIT_SYNC_LIMIT = limit
    cards("3", 6)

    response = admin_client.post(url(MASS_EDIT, serial_from="3"), EXPIRY_AND_BLOCK)

    blocked = TopUpCard.objects.filter(blocked=True).count()
    if background:
        job = CardJob.objects.get()
        assert response["Location"] == job_page(job)
        assert job.kind == CardJobKind.MASS_EDIT and job.total == 6
        assert job.status == CardJobStatus.QUEUED
        assert blocked == 0 and not CardEvent.objects.exists()
    else:
        assert not CardJob.objects.exists() and blocked == 6


@pytest.mark.django_db
@pytest.mark.parametrize("limit, background", [(6, False), (5, True)])
def test_delete_all_runs_in_the_request_up_to_the_limit_and_in_the_background_above(
    admin_client, settings, limit, background
):
    settings.MASS_EDIT_SYNC_LIMIT = limit
    cards("3", 6)

    response = admin_client.post(
        url(DELETE_ALL, serial_from="3"), {"expected_count": "6", "_confirm": "1"}
    )

    if background:
        job = CardJob.objects.get()
        assert response["Location"] == job_page(job) and job.kind == CardJobKind.DELETE_ALL
        assert TopUpCard.objects.count() == 6
    else:
        assert not CardJob.objects.exists() and not TopUpCard.objects.exists()


@pytest.mark.django_db
def test_a_search_by_pin_is_edited_and_deleted_in_the_request_whatever_the_limit(
    admin_client, settings
):
    settings.MASS_EDIT_SYNC_LIMIT = 0
    (card,) = cards("3", 1)
    found = admin_client.post(reverse("admin:cards_topupcard_search"), {"pin": card.pin})
    search = found["Location"].split("?", 1)[1]
    assert "pin_ref=" in search

    admin_client.post(f"{MASS_EDIT}?{search}", edit(block_action="block"))
    assert not CardJob.objects.exists() and TopUpCard.objects.get().blocked
    admin_client.post(f"{DELETE_ALL}?{search}", {"expected_count": "1", "_confirm": "1"})
    assert not CardJob.objects.exists() and not TopUpCard.objects.exists()


def _outcome(series):
    """Per card number: what the card became and the audit events it got (minus the serial)."""
    states = {
        card.number: (card.expires_at, card.blocked, card.reseller_id)
        for card in TopUpCard.objects.filter(series=series)
    }
    events = sorted(
        (int(e.serial[len(series) :]) if e.serial else 0, e.kind, str(e.changes), e.actor_id)
        for e in CardEvent.objects.filter(serial__startswith=series)
    )
    return states, events


@pytest.mark.django_db(transaction=True)
def test_the_job_changes_and_audits_exactly_what_the_request_would(settings, client):
    user = operator()
    client.force_login(user)
    company = ResellerFactory(name="New Co")
    for series in ("3", "4"):
        cards(series, 6, blocked=False)
        TopUpCard.objects.filter(series=series, number=2).update(blocked=True)
        TopUpCard.objects.filter(series=series, number=3).update(
            expires_at=EXPIRES.replace(year=2031)
        )
    data = edit(
        expires_action="set",
        expires_at="2031-06-30 12:00:00",
        reseller_action="set",
        reseller=company.pk,
        block_action="block",
    )

    settings.MASS_EDIT_SYNC_LIMIT = 100
    client.post(url(MASS_EDIT, series="3"), data)
    settings.MASS_EDIT_SYNC_LIMIT = 1
    client.post(url(MASS_EDIT, series="4"), data)
    job = CardJob.objects.get()
    assert _outcome("4")[1] == []  # queued, nothing done yet
    run_worker()

    job.refresh_from_db()
    assert job.status == CardJobStatus.SUCCEEDED
    assert _outcome("4") == _outcome("3")
    assert len(_outcome("4")[1]) == 6 + 6 + 5  # expiry, company, block (one was blocked)
    state = progress(client, job)
    assert state["finished"] and state["percent"] == 100
    assert state["label"] == (
        "Done: expiration date changed on 6 cards; company changed on 6 cards; "
        "block changed on 5 cards."
    )


@pytest.mark.django_db(transaction=True)
def test_delete_all_job_deletes_and_audits_like_the_request_and_keeps_activated_cards(
    settings, admin_client, subscriber
):
    settings.MASS_EDIT_SYNC_LIMIT = 1
    settings.MASS_EDIT_CHUNK_SIZE = 3  # two chunks
    cards("3", 4)
    kept = TopUpCardFactory(
        series="3", number=5, activated_at=timezone.now(), activated_by=subscriber
    )
    admin_client.post(url(DELETE_ALL, serial_from="3"), {"expected_count": "4", "_confirm": "1"})

    run_worker()

    job = CardJob.objects.get()
    assert job.status == CardJobStatus.SUCCEEDED and job.result["deleted"] == 4
    assert list(TopUpCard.objects.all()) == [kept]
    deleted = CardEvent.objects.filter(kind="deleted")
    assert deleted.count() == 4 and {e.actor_id for e in deleted} == {job.requested_by_id}
    assert progress(admin_client, job)["label"] == "Done: 4 cards deleted."


@pytest.mark.django_db(transaction=True)
def test_a_reseller_operator_s_job_touches_only_their_cards_and_only_they_see_it(settings, client):
    settings.MASS_EDIT_SYNC_LIMIT = 1
    mine, theirs = ResellerFactory(name="Mine"), ResellerFactory(name="Theirs")
    cards("3", 3, reseller=mine)
    TopUpCardFactory(series="3", number=9, reseller=theirs, expires_at=EXPIRES)
    me = operator("change_topupcard", "view_topupcard", username="me")
    StaffReseller.objects.create(user=me, reseller=mine)
    other = operator("change_topupcard", "view_topupcard", username="other")
    StaffReseller.objects.create(user=other, reseller=theirs)
    client.force_login(me)

    client.post(url(MASS_EDIT, serial_from="3"), edit(block_action="block"))
    run_worker()

    job = CardJob.objects.get()
    assert job.status == CardJobStatus.SUCCEEDED and job.total == 3
    assert set(TopUpCard.objects.filter(blocked=True).values_list("reseller", flat=True)) == {
        mine.pk
    }
    assert client.get(job_page(job)).status_code == 200
    client.force_login(other)
    assert client.get(job_page(job)).status_code == 302  # the admin's "doesn't exist"
    assert client.get(reverse("admin:cards_cardjob_progress", args=[job.pk])).status_code == 404


@pytest.mark.django_db(transaction=True)
def test_a_selection_that_changed_before_the_job_ran_fails_on_its_page_and_changes_nothing(
    settings, admin_client
):
    settings.MASS_EDIT_SYNC_LIMIT = 1
    cards("3", 3)
    admin_client.post(url(MASS_EDIT, serial_from="3"), EXPIRY_AND_BLOCK)
    TopUpCardFactory(series="3", number=7, expires_at=EXPIRES)  # a card joins the search
    before = snapshot(TopUpCard)

    run_worker()

    job = CardJob.objects.get()
    assert job.status == CardJobStatus.FAILED
    assert snapshot(TopUpCard) == before and not CardEvent.objects.exists()
    page = admin_client.get(job_page(job)).content.decode()
    assert "Failed: The selection changed since it was confirmed: it now holds 4 cards" in page
    assert "No card was changed." in page


@pytest.mark.django_db
def test_a_running_job_shows_the_percentage_done(admin_client):
    job = CardJob.objects.create(
        kind=CardJobKind.DELETE_ALL,
        params={"filters": {"serial_from": "3"}, "expected": 120_000, "reseller_id": None},
        total=120_000,
        done=30_000,
        result={"selection_at": timezone.now().isoformat(), "deleted": 30_000},
        status=CardJobStatus.RUNNING,
        started_at=timezone.now() - dt.timedelta(seconds=75),
        heartbeat_at=timezone.now(),
    )

    page = admin_client.get(job_page(job)).content.decode()
    state = progress(admin_client, job)

    assert "Deleting 120,000 cards… 30,000 done (25%)." in page
    assert state["percent"] == 25 and not state["finished"] and not state["resumable"]
    assert 'id="job-bar" max="100" value="25"' in page
    assert state["link_url"] == reverse("admin:cards_topupcard_changelist") + "?serial_from=3"


@pytest.mark.django_db
def test_only_who_may_mass_edit_or_delete_sees_those_jobs(client):
    jobs = {
        kind: CardJob.objects.create(kind=kind, params={"reseller_id": None}, total=9)
        for kind in CardJobKind
    }
    seen = {}
    for perms in [
        ("view_topupcard", "view_cardjob"),
        ("view_topupcard", "change_topupcard"),
        ("view_topupcard", "delete_topupcard"),
    ]:
        client.force_login(operator(*perms, username="-".join(perms)))
        seen[perms[1]] = {
            kind for kind, job in jobs.items() if client.get(job_page(job)).status_code == 200
        }

    assert seen == {
        "view_cardjob": {CardJobKind.GENERATE},
        "change_topupcard": {CardJobKind.MASS_EDIT},
        "delete_topupcard": {CardJobKind.DELETE_ALL},
    }


@pytest.mark.django_db(transaction=True)
def test_an_operator_who_lost_the_permission_before_the_job_ran_changes_nothing(settings, client):
    settings.MASS_EDIT_SYNC_LIMIT = 1
    cards("3", 3)
    user = operator()
    client.force_login(user)
    client.post(url(MASS_EDIT, serial_from="3"), edit(block_action="block"))
    user.user_permissions.clear()

    run_worker()

    job = CardJob.objects.get()
    assert job.status == CardJobStatus.FAILED and "no longer allowed" in job.error
    assert not TopUpCard.objects.filter(blocked=True).exists()


LOAD_SQL = """
INSERT INTO cards_topupcard (series, number, amount, currency, pin_digest, pin_encrypted,
    pin_length, pin_last4, expires_at, blocked, created_at)
SELECT '77', i + 1, 10, 'USD', sha256(('d' || i)::bytea), sha256(('e' || i)::bytea), 12,
       '0000', now() + interval '30 days', false, now()
FROM generate_series(0, %s - 1) AS i
"""


def _resume(client, job):
    return client.post(reverse("admin:cards_cardjob_resume", args=[job.pk]), follow=True)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_worker_killed_mid_mass_edit_has_done_exactly_what_it_reports_and_resumes_the_rest(
    settings, monkeypatch, admin_client, admin_user
):
    total = 60_000
    settings.MASS_EDIT_SYNC_LIMIT = 1
    monkeypatch.setenv("MASS_EDIT_CHUNK_SIZE", "500")  # the worker process's setting
    with connection.cursor() as cursor:
        cursor.execute(LOAD_SQL, [total])
        cursor.execute("ANALYZE cards_topupcard")
    admin_client.post(url(MASS_EDIT, serial_from="77"), EXPIRY_AND_BLOCK)
    job = CardJob.objects.get()
    worker = spawn_worker()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            job.refresh_from_db()
            if job.done >= 2_000:
                break
            time.sleep(0.02)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()

    job.refresh_from_db()
    done = job.done
    assert job.status == CardJobStatus.RUNNING and 2_000 <= done < total
    # Exactly the committed chunks: each card counted done is changed and audited once.
    changed = TopUpCard.objects.filter(blocked=True, expires_at__year=2031)
    assert changed.count() == done
    assert not TopUpCard.objects.filter(blocked=True).exclude(expires_at__year=2031).exists()
    assert CardEvent.objects.count() == 2 * done
    assert CardJobCard.objects.filter(job=job).count() == total - done
    CardJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - dt.timedelta(hours=1))
    state = progress(admin_client, job)
    assert state["status"] == "interrupted" and state["resumable"]
    assert state["label"] == (
        f"Interrupted: the worker stopped. {done:,} of 60,000 cards done: expiration date "
        f"changed on {done:,} cards; block changed on {done:,} cards. Resume to do the other "
        f"{total - done:,} cards; the ones done stay done."
    )

    page = _resume(admin_client, job).content.decode()
    assert f"Resumed: the other {total - done:,} cards are queued." in page
    run_worker()

    job.refresh_from_db()
    assert job.status == CardJobStatus.SUCCEEDED and job.done == total
    assert job.result["changed"] == {"expires_at": total, "blocked": total}
    assert job.result["resumed_by"] == [admin_user.pk]
    assert changed.count() == total
    assert CardEvent.objects.count() == 2 * total  # the first run's cards were not audited twice
    assert CardEvent.objects.values("card_id", "kind").distinct().count() == 2 * total
    assert not CardJobCard.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_job_that_fails_mid_way_reports_what_it_did_and_resuming_does_only_the_rest(
    settings, monkeypatch, admin_client
):
    from cards.sql import selection as card_sql

    settings.MASS_EDIT_SYNC_LIMIT = 1
    settings.MASS_EDIT_CHUNK_SIZE = 2
    cards("3", 5)
    admin_client.post(url(MASS_EDIT, series="3"), EXPIRY_AND_BLOCK)
    job = CardJob.objects.get()
    original, calls = card_sql.insert_card_events, []

    def fail_in_the_second_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # the second chunk's first audit insert, after its lock
            raise RuntimeError("the database went away")
        return original(*args, **kwargs)

    monkeypatch.setattr(card_sql, "insert_card_events", fail_in_the_second_chunk)
    run_worker()

    job.refresh_from_db()
    assert job.status == CardJobStatus.FAILED and job.done == 2
    assert sorted(TopUpCard.objects.filter(blocked=True).values_list("number", flat=True)) == [
        1,
        2,
    ]
    assert CardEvent.objects.count() == 4  # expiry and block of cards 1 and 2, nothing of 3
    label = progress(admin_client, job)["label"]
    assert label == (
        "Failed: It failed unexpectedly. See the server log. 2 of 5 cards done: expiration date "
        "changed on 2 cards; block changed on 2 cards. Resume to do the other 3 cards; the ones "
        "done stay done."
    )
    before = snapshot(TopUpCard)
    TopUpCardFactory(series="3", number=9, expires_at=EXPIRES)  # joins the search meanwhile

    monkeypatch.setattr(card_sql, "insert_card_events", original)
    _resume(admin_client, job)
    run_worker()

    job.refresh_from_db()
    assert job.status == CardJobStatus.SUCCEEDED and job.done == 5
    assert job.result["changed"] == {"expires_at": 5, "blocked": 5}
    blocked = TopUpCard.objects.filter(blocked=True).values_list("number", flat=True)
    assert sorted(blocked) == [1, 2, 3, 4, 5]  # the confirmed selection, not the new card
    assert CardEvent.objects.count() == 10
    assert snapshot(TopUpCard)[:2] == before[:2]  # the cards done first were not touched again


@pytest.mark.django_db(transaction=True)
def test_resume_is_refused_to_who_cannot_see_the_job_and_for_a_job_with_nothing_left(
    settings, client, admin_client
):
    settings.MASS_EDIT_SYNC_LIMIT = 1
    cards("3", 3)
    admin_client.post(url(MASS_EDIT, series="3"), edit(block_action="block"))
    run_worker()
    job = CardJob.objects.get()
    assert job.status == CardJobStatus.SUCCEEDED
    before = snapshot(CardJob), snapshot(TopUpCard), CardEvent.objects.count()

    page = _resume(admin_client, job).content.decode()
    assert "This job has nothing left to resume." in page
    viewer = operator("view_topupcard", "view_cardjob", username="viewer")
    client.force_login(viewer)
    assert _resume(client, job).status_code == 404
    # A job stopped half-way, which a user without the Mass Edit permission may not resume.
    CardJob.objects.filter(pk=job.pk).update(status=CardJobStatus.FAILED, done=1)
    assert client.post(reverse("admin:cards_cardjob_resume", args=[job.pk])).status_code == 404
    assert admin_client.get(reverse("admin:cards_cardjob_resume", args=[job.pk])).status_code == 302

    CardJob.objects.filter(pk=job.pk).update(status=CardJobStatus.SUCCEEDED, done=3)
    assert (snapshot(CardJob), snapshot(TopUpCard), CardEvent.objects.count()) == before


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_heartbeat_keeps_a_long_job_from_looking_interrupted(monkeypatch):
    from cards.jobs import mass

    monkeypatch.setattr(mass, "HEARTBEAT_SECONDS", 0.05)
    old = timezone.now() - dt.timedelta(hours=1)
    job = CardJob.objects.create(
        kind=CardJobKind.MASS_EDIT,
        params={},
        total=1,
        status=CardJobStatus.RUNNING,
        heartbeat_at=old,
    )
    heartbeat = mass._Heartbeat(job.pk)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            job.refresh_from_db()
            if job.heartbeat_at > old:
                break
            time.sleep(0.02)
    finally:
        heartbeat.close()

    assert job.heartbeat_at > old and not job.is_interrupted


@pytest.mark.django_db(transaction=True)
def test_the_worker_keeps_a_bounded_query_log_with_debug_on(settings, monkeypatch, admin_user):
    from cards.jobs import mass, run_mass_job
    from cards.jobs.mass import mass_edit_job_start

    settings.DEBUG = True
    settings.MASS_EDIT_CHUNK_SIZE = 1
    cards("3", 60)  # 60 chunks of a dozen statements each
    job = mass_edit_job_start(
        filters={"series": "3"}, expected=60, changes={"blocked": True}, actor=admin_user
    )
    original, logged = mass.job_chunk_edit, []

    def chunk(**kwargs):
        logged.append(len(connection.queries_log))
        return original(**kwargs)

    monkeypatch.setattr(mass, "job_chunk_edit", chunk)
    run_mass_job.call(job.pk)

    assert TopUpCard.objects.filter(blocked=True).count() == 60
    assert len(logged) == 61 and max(logged) <= 50
