"""No PIN reaches a log line, even at DEBUG with SQL logging on, during generation, search,
reveal and redemption (successful and failed)."""

import datetime as dt
import logging

import pytest
from django.urls import reverse
from django.utils import timezone

from cards import pins
from cards.exceptions import CardError
from cards.models import CardBatch, TopUpCard
from cards.services.generation import card_batch_generate
from cards.services.redemption import card_redeem
from tests.cards.admin_helpers import operator


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)

    def text(self) -> str:
        parts = []
        for record in self.records:
            parts.append(record.getMessage())
            parts.append(repr(record.__dict__))
        return "\n".join(parts)


@pytest.fixture
def every_log(settings):
    """Every logger at DEBUG (django.db.backends needs settings.DEBUG) into one list."""
    settings.DEBUG = True
    handler = Collect()
    manager = logging.root.manager
    loggers = [logging.root] + [
        logging.getLogger(name) for name in list(manager.loggerDict) + ["django.db.backends"]
    ]
    saved = [(lg, lg.level, lg.disabled) for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
        lg.disabled = False
    logging.root.addHandler(handler)
    yield handler
    logging.root.removeHandler(handler)
    for lg, level, disabled in saved:
        lg.setLevel(level)
        lg.disabled = disabled


def forms_of(pin: str) -> list[str]:
    return [pin, pins.format_pin(pin), "-".join(pin[i : i + 4] for i in range(0, len(pin), 4))]


def assert_no_pin(text: str, pin_list):
    for pin in pin_list:
        for form in forms_of(pin):
            assert form not in text, "a PIN reached the logs"


@pytest.mark.django_db
def test_no_pin_in_logs_during_generation_search_reveal_and_redemption(
    every_log, client, main_balance, subscriber
):
    user = operator("view_topupcard", "add_topupcard", "change_topupcard", "view_pin")
    client.force_login(user)

    # generation through the admin and through the service
    client.post(
        reverse("admin:cards_topupcard_generate"),
        {
            "amount": "5.00",
            "currency": "USD",
            "quantity": "3",
            "series": "4",
            "pin_length": "12",
            "reseller": subscriber.reseller_id,
            "expires_at": (timezone.now() + dt.timedelta(days=5)).strftime("%Y-%m-%d %H:%M:%S"),
        },
    )
    batch = CardBatch.objects.get()
    downloaded = b"".join(
        client.post(reverse("admin:cards_cardbatch_download", args=[batch.pk])).streaming_content
    ).decode()
    generated = [line.split(",")[3] for line in downloaded.splitlines()[1:]]
    more = card_batch_generate(
        series="5",
        quantity=3,
        amount="5",
        currency="USD",
        pin_length=12,
        reseller=subscriber.reseller,
        expires_at=timezone.now() + dt.timedelta(days=5),
        actor=user,
    ).pins
    all_pins = generated + more
    assert len(all_pins) == 6 and every_log.records  # logging really was on

    # search through the admin (valid, mistyped) and reveal
    typed = pins.format_pin(generated[0])
    found = client.post(reverse("admin:cards_topupcard_search"), {"pin": typed})
    client.get(found["Location"])
    mistyped = generated[1][:-1] + str((int(generated[1][-1]) + 1) % 10)
    client.post(reverse("admin:cards_topupcard_search"), {"pin": mistyped}, follow=True)
    card = TopUpCard.objects.get(pin_digest=pins.pin_digest(generated[2]))
    client.post(
        reverse("admin:cards_topupcard_reveal_pin", args=[card.pk]), HTTP_ACCEPT="application/json"
    )

    # redemption: a success, then failures (already used, check digit, unknown)
    card_redeem(pin=typed, balance=main_balance, subscriber=subscriber)
    unknown = pins.generate_pin(12)
    for attempt in (typed, mistyped, unknown):
        with pytest.raises(CardError):
            card_redeem(pin=attempt, balance=main_balance, subscriber=subscriber)

    text = every_log.text()
    assert "SELECT" in text  # SQL logging was captured
    assert_no_pin(text, all_pins + [mistyped, unknown])
