"""Cards committed by another transaction while a Mass Edit runs are not touched by it.

Found by the multi-process load test: a batch generated into the edited series between two
statements of the edit got the block (and was counted) without its audit event. Here the other
transaction commits at exactly that point, every time.
"""

import datetime as dt
import threading

import pytest
from django.db import connections
from django.utils import timezone

import cards.sql.selection
from cards.models import CardEvent, TopUpCard
from cards.models.events import CardEventKind
from cards.services.generation import card_batch_generate
from cards.services.mass_edit import cards_mass_delete, cards_mass_update
from tests.factories import BalanceTemplateFactory, TopUpCardFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def generate_in_another_transaction():
    def work():
        try:
            card_batch_generate(
                series="5",
                quantity=5,
                amount="5.00",
                currency="USD",
                pin_length=12,
                reseller=None,
                expires_at=timezone.now() + dt.timedelta(days=30),
            )
        finally:
            connections.close_all()

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=30)


@pytest.fixture
def commit_a_batch_after_the_first_audit_insert(monkeypatch):
    BalanceTemplateFactory(currency="USD")  # the batch's currency must be a balance's
    original = cards.sql.selection.insert_card_events
    calls = []

    def patched(*args, **kwargs):
        inserted = original(*args, **kwargs)
        calls.append(inserted)
        if len(calls) == 1:
            generate_in_another_transaction()
        return inserted

    monkeypatch.setattr(cards.sql.selection, "insert_card_events", patched)


def test_mass_update_changes_and_audits_only_the_cards_it_locked(
    commit_a_batch_after_the_first_audit_insert,
):
    expiry = timezone.now() + dt.timedelta(days=30)
    for number in range(1, 11):
        TopUpCardFactory(series="5", number=number, reseller=None, expires_at=expiry)
    new_expiry = timezone.now() + dt.timedelta(days=200)

    result = cards_mass_update(
        cards=TopUpCard.objects.filter(series="5"), expires_at=new_expiry, blocked=True, actor=None
    )

    assert result.selected == 10
    assert result.changed == {"expires_at": 10, "blocked": 10}
    edited = TopUpCard.objects.filter(series="5", number__lte=10)
    assert edited.filter(expires_at=new_expiry, blocked=True).count() == 10
    generated = TopUpCard.objects.filter(series="5", number__gt=10)
    assert generated.count() == 5
    assert not generated.filter(blocked=True).exists()
    assert not generated.filter(expires_at=new_expiry).exists()
    assert CardEvent.objects.filter(kind=CardEventKind.EDITED).count() == 10
    assert CardEvent.objects.filter(kind=CardEventKind.BLOCKED).count() == 10


def test_mass_delete_deletes_and_audits_only_the_cards_it_locked(
    commit_a_batch_after_the_first_audit_insert,
):
    for number in range(1, 11):
        TopUpCardFactory(series="5", number=number, reseller=None)

    deleted = cards_mass_delete(cards=TopUpCard.objects.filter(series="5"), actor=None)

    assert deleted == 10
    remaining = TopUpCard.objects.filter(series="5").values_list("number", flat=True)
    assert sorted(remaining) == [11, 12, 13, 14, 15]
    assert CardEvent.objects.filter(kind=CardEventKind.DELETED).count() == 10
