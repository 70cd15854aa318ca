"""The panel when the client address cannot be read: refused, told to try later, audited."""

from cards.models import CardEvent
from cards.models.events import CardEventKind
from tests.panel.test_redeem import REDEEM, snapshot

UNREADABLE = {"HTTP_X_FORWARDED_FOR": "not-an-address"}


def test_an_unreadable_address_fails_closed(rose, card, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    before = snapshot()

    notice = rose.get(REDEEM, **UNREADABLE).content.decode()
    page = rose.post(REDEEM, {"code": card.pin}, follow=True, **UNREADABLE).content.decode()

    assert 'id="locked-notice"' in notice and "Please try again later." in notice
    assert "Please try again later." in page and card.pin not in page
    assert snapshot() == before
    event = CardEvent.objects.get(kind=CardEventKind.REDEEM_FAILED)
    assert (event.changes, event.ip_address) == ({"reason": "no_address"}, None)


def test_a_readable_forwarded_address_redeems(rose, card, settings):
    settings.TRUSTED_PROXY_COUNT = 1

    page = rose.post(
        REDEEM, {"code": card.pin}, follow=True, HTTP_X_FORWARDED_FOR="203.0.113.9"
    ).content.decode()

    assert "Your balance is now 10.00 USD" in page
