"""The cards' table page never keeps an operator waiting past its time limit (issue 15).

A search that runs, or waits on a lock, longer than CARD_SEARCH_TIMEOUT_MS is stopped by
PostgreSQL; the page answers at once with the search kept and a plain "narrow it" message, instead
of a request gunicorn kills at 30 s. The slow search is made by another connection holding the
cards table in ACCESS EXCLUSIVE mode (as a migration or a VACUUM FULL would), so the test does not
depend on the machine's speed.
"""

import threading
import time

import psycopg
import pytest
from django.db import connections
from django.test import Client
from django.urls import reverse

from tests.cards.admin_helpers import operator
from tests.factories import TopUpCardFactory
from tests.reliability.pgkill import conninfo

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

URL = reverse("admin:cards_topupcard_changelist")


def search_beside_a_table_lock(client, wait: float) -> tuple[object | None, float]:
    """GET the cards page for series 77 while another connection holds the cards table; the
    answer (None if none came within `wait` seconds) and how long it took."""
    answer = {}

    def search():
        started = time.monotonic()
        answer["response"] = client.get(URL, {"series": "77"})
        answer["took"] = time.monotonic() - started
        connections.close_all()

    with psycopg.connect(conninfo()) as blocker:
        blocker.execute("LOCK TABLE cards_topupcard IN ACCESS EXCLUSIVE MODE")
        thread = threading.Thread(target=search)
        thread.start()
        thread.join(wait)
        answered = answer.get("response")
        blocker.rollback()
    thread.join(30)
    return answered, answer.get("took", wait)


@pytest.fixture
def staff_client():
    client = Client()
    client.force_login(operator())
    return client


def test_a_search_held_up_past_the_limit_is_stopped_with_the_search_kept(staff_client, settings):
    settings.CARD_SEARCH_TIMEOUT_MS = 300
    TopUpCardFactory(series="77", number=1)
    response, waited = search_beside_a_table_lock(staff_client, wait=10)
    assert response is not None, "the page waited for the lock"
    assert response.status_code == 200
    page = response.content.decode()
    assert "The search took longer than 0.3 seconds and was stopped" in page
    assert "77-000000001" not in page  # no rows shown from a stopped search
    assert 'value="77"' in page  # the operator's search is still filled in
    assert waited < 5  # answered, not held until the lock went (the limit is 0.3 s)

    # Nothing holds the table any more: the same search answers with its card.
    response = staff_client.get(URL, {"series": "77"})
    assert "77-000000001" in response.content.decode()
    assert "was stopped" not in response.content.decode()


def test_without_the_limit_the_same_search_waits_for_the_lock(staff_client, settings):
    """What the limit protects against: the page waits for as long as the lock is held."""
    settings.CARD_SEARCH_TIMEOUT_MS = 0  # PostgreSQL: 0 turns the limit off
    TopUpCardFactory(series="77", number=1)
    response, _ = search_beside_a_table_lock(staff_client, wait=1.5)
    assert response is None  # still waiting on the lock after 1.5 s
