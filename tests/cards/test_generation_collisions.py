"""Generation beside existing cards: a PIN another card has costs that card, not the batch
(docs/cards.md). Runs on SQLite and, with DATABASE_URL set, on PostgreSQL (the staged path)."""

import datetime as dt
import threading

import pytest
from django.utils import timezone

from cards import pins
from cards.models import CardBatch, CardEvent, CardSeries, TopUpCard
from cards.models.events import CardEventKind
from cards.services import generation
from cards.services.generation import card_batch_generate

pytestmark = pytest.mark.django_db


def generate(**overrides):
    params = {
        "series": "4",
        "quantity": 6,
        "amount": "25.00",
        "currency": "USD",
        "pin_length": 12,
        "reseller": None,
        "expires_at": timezone.now() + dt.timedelta(days=30),
    }
    params.update(overrides)
    return card_batch_generate(**params)


@pytest.fixture
def small_steps(monkeypatch):
    """Slices and chunks of two cards, so a six-card batch goes through several of them."""
    monkeypatch.setattr(generation, "_CHUNK", 2)
    monkeypatch.setattr(generation, "_INSERT_SLICE", 2)


@pytest.fixture
def existing():
    """Cards already in the table, with the PINs they were generated with."""
    result = generate(series="1", quantity=4)
    return result.pins


def hand_out(monkeypatch, sequence):
    """The PIN generator returns `sequence` first, then random PINs."""
    real = pins.generate_pin
    queue = iter(sequence)
    monkeypatch.setattr(pins, "generate_pin", lambda length: next(queue, None) or real(length))


def snapshot():
    return (
        list(TopUpCard.objects.order_by("pk").values_list("pk", "series", "number", "pin_digest")),
        CardBatch.objects.count(),
        CardEvent.objects.count(),
        list(CardSeries.objects.values_list("series", flat=True).order_by("series")),
    )


def redeemable(pin: str) -> TopUpCard:
    return TopUpCard.objects.get(pin_digest=pins.pin_digest(pin))


def test_only_the_cards_whose_pin_is_taken_get_new_pins(monkeypatch, small_steps, existing):
    fresh = [pins.generate_pin(12) for _ in range(4)]
    # cards 4 and 6 repeat existing PINs, and the first replacement drawn is taken too
    hand_out(monkeypatch, [*fresh[:3], existing[0], fresh[3], existing[1], existing[2]])
    before = snapshot()[0]
    steps = []

    result = generate(progress=lambda done, total: steps.append(done))

    assert [result.pins[i] for i in (0, 1, 2, 4)] == fresh
    assert not {result.pins[3], result.pins[5]} & set(existing)
    assert len(set(result.pins)) == 6
    for number, pin in enumerate(result.pins, start=1):
        card = redeemable(pin)
        assert (card.series, card.number, card.pin_last4) == ("4", number, pin[-4:])
    assert snapshot()[0][: len(before)] == before  # the existing cards are untouched
    for pin in existing:
        assert redeemable(pin).series == "1"
    event = CardEvent.objects.get(kind=CardEventKind.GENERATED, batch=result.batch)
    assert event.changes["quantity"] == 6
    # the progress bar only moves forward (the batch is not written twice) and ends full
    assert all(a < b for a, b in zip(steps, steps[1:], strict=False)) and steps[-1] == 6


def test_a_replacement_that_is_taken_too_is_replaced_again(monkeypatch, small_steps, existing):
    hand_out(monkeypatch, [existing[0], *[pins.generate_pin(12) for _ in range(5)], existing[1]])

    result = generate()

    assert not set(result.pins) & set(existing)
    assert TopUpCard.objects.filter(series="4").count() == 6
    for pin in result.pins:
        assert redeemable(pin).series == "4"


def test_a_failure_while_replacing_leaves_nothing(monkeypatch, small_steps, existing):
    # the sixth card repeats an existing PIN; drawing its replacement fails
    sequence = iter([*[pins.generate_pin(12) for _ in range(5)], existing[2]])

    def draw(length):
        pin = next(sequence, None)
        if pin is None:
            raise RuntimeError("crash half-way")
        return pin

    monkeypatch.setattr(pins, "generate_pin", draw)
    before = snapshot()

    with pytest.raises(RuntimeError):
        generate()

    assert snapshot() == before


def test_a_failure_after_some_slices_are_written_leaves_nothing(small_steps, existing):
    before = snapshot()

    def crash(done, total):
        if done >= 4:
            raise RuntimeError("crash half-way")

    with pytest.raises(RuntimeError):
        generate(progress=crash)

    assert snapshot() == before


def waiting_insert(connection) -> bool:
    for _ in range(100):
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query LIKE 'WITH inserted AS (%%'"
            )
            if cursor.fetchone()[0]:
                return True
        threading.Event().wait(0.1)
    return False


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_batches_at_once_with_the_same_pin_both_succeed(monkeypatch):
    """A PIN that a batch still being written holds: the other batch waits for it, then gives
    its own card a new PIN instead of failing (or of writing itself twice)."""
    from django.db import connection

    generate(series="1", quantity=2)  # cards exist: the staged path
    shared = pins.generate_pin(12)
    real = pins.generate_pin
    first_inserted, release = threading.Event(), threading.Event()
    queues = {"A": iter([shared]), "B": iter([shared])}

    def draw(length):
        queue = queues.get(threading.current_thread().name)
        return (next(queue, None) if queue else None) or real(length)

    monkeypatch.setattr(pins, "generate_pin", draw)
    outcome = {}

    def run(name, series, progress):
        try:
            outcome[name] = generate(series=series, quantity=3, progress=progress)
        except Exception as error:  # noqa: BLE001 (reported by the assertion below)
            outcome[name] = error
        finally:
            connection.close()

    def hold(done, total):
        if done == total:  # written, not committed yet
            first_inserted.set()
            release.wait(timeout=30)

    a = threading.Thread(target=run, args=("A", "5", hold), name="A")
    a.start()
    assert first_inserted.wait(timeout=30)
    b = threading.Thread(target=run, args=("B", "6", None), name="B")
    b.start()
    assert waiting_insert(connection)  # B waits on A's uncommitted card with the same PIN
    release.set()
    a.join(timeout=30)
    b.join(timeout=30)

    first, second = outcome["A"], outcome["B"]
    assert first.pins[0] == shared and shared not in second.pins
    assert redeemable(shared).series == "5"
    for pin in second.pins:
        assert redeemable(pin).series == "6"
