"""A search that cannot be understood selects no card, with the reason beside the field: for the
changelist, Mass Edit, Delete all and both exports alike (docs/cards.md, "Advanced Search").

On the old main a PIN that failed validation was dropped from the search with a red banner, so
the list, Mass Edit and Delete all from there worked on every card."""

import re

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from cards.models import CardEvent, TopUpCard
from cards.models.events import CardEventKind
from tests.cards.admin_helpers import operator, snapshot
from tests.factories import ResellerFactory, TopUpCardFactory

pytestmark = pytest.mark.django_db
CHANGELIST = reverse("admin:cards_topupcard_changelist")
SEARCH = reverse("admin:cards_topupcard_search")
MASS_EDIT = reverse("admin:cards_topupcard_mass_edit")
DELETE_ALL = reverse("admin:cards_topupcard_delete_all")
EXPORT_CSV = reverse("admin:cards_topupcard_export_csv")
EXPORT = reverse("admin:cards_topupcard_export")
NOT_A_PIN = "This is not a valid PIN: please check the code."


@pytest.fixture
def cards():
    reseller = ResellerFactory(name="Reseller 1")
    return [TopUpCardFactory(series="3", number=n, reseller=reseller) for n in range(1, 6)]


def mistyped(pin: str) -> str:
    """The PIN with its check digit wrong: fails the Luhn check, and no card has it."""
    return pin[:-1] + str((int(pin[-1]) + 1) % 10)


def searched(client, **fields) -> str:
    """Post the Advanced Search form; the query string it leads to."""
    response = client.post(SEARCH, {**fields, "_search": "Search"})
    assert response.status_code == 302
    location = response["Location"]
    assert location.startswith(CHANGELIST)
    return location[len(CHANGELIST) :]


def listed(response) -> list[str]:
    html = response.content.decode()
    return re.findall(r'field-serial_number"><a [^>]*>([0-9]+-[0-9]{9})<', html)


def pin_row(html: str) -> str:
    """The PIN Code row of the Advanced Search form."""
    return re.search(r'<tr><th><label for="id_pin">.*?</tr>', html, re.S).group(0)


def everything():
    return snapshot(TopUpCard), snapshot(CardEvent)


def test_a_mistyped_pin_lists_no_card_and_says_why_beside_the_field(admin_client, cards):
    query = searched(admin_client, pin=mistyped(cards[0].pin))

    page = admin_client.get(CHANGELIST + query)

    html = page.content.decode()
    assert listed(page) == []
    assert "Rows 0 – 0 of 0" in html
    assert NOT_A_PIN in pin_row(html)
    assert 'id="advanced-search" open' in html
    assert "searching by a PIN" not in html  # no refused search is presented as running
    assert cards[0].pin[:6] not in query


@pytest.mark.parametrize("other", [{}, {"serial_from": "3"}])
def test_mass_edit_from_a_mistyped_pin_search_changes_nothing(admin_client, cards, other):
    query = searched(admin_client, pin=mistyped(cards[0].pin), **other)
    before = everything()

    response = admin_client.post(
        MASS_EDIT + query,
        {
            "expires_action": "preserve",
            "reseller_action": "preserve",
            "block_action": "block",
            "_confirm": "1",
        },
        follow=True,
    )

    assert everything() == before
    assert not TopUpCard.objects.filter(blocked=True).exists()
    assert "The search is not valid: PIN Code: " + NOT_A_PIN in response.content.decode()


def test_mass_edit_page_of_an_invalid_search_shows_no_card(admin_client, cards):
    query = searched(admin_client, pin=mistyped(cards[0].pin))

    response = admin_client.get(MASS_EDIT + query)

    assert response.status_code == 302  # back to the search, with its reason
    assert response["Location"] == CHANGELIST + query


def test_delete_all_from_a_mistyped_pin_search_deletes_nothing(admin_client, cards):
    query = searched(admin_client, pin=mistyped(cards[0].pin))
    before = everything()

    page = admin_client.get(DELETE_ALL + query)
    response = admin_client.post(
        DELETE_ALL + query, {"expected_count": "5", "_confirm": "1"}, follow=True
    )

    assert page.status_code == 302
    assert everything() == before
    assert TopUpCard.objects.count() == 5
    assert "Deleted" not in response.content.decode()


@pytest.mark.parametrize("with_pins", ["", "1"])
def test_export_csv_of_a_mistyped_pin_search_exports_nothing(admin_client, cards, with_pins):
    query = searched(admin_client, pin=mistyped(cards[0].pin))
    before = everything()

    response = admin_client.get(EXPORT_CSV + query + (f"&with_pins={with_pins}" * bool(with_pins)))

    assert response.status_code == 302
    assert not getattr(response, "streaming", False)
    assert everything() == before
    assert not CardEvent.objects.filter(kind=CardEventKind.EXPORTED).exists()


def test_export_action_across_an_invalid_search_exports_nothing(admin_client, cards):
    query = searched(admin_client, pin=mistyped(cards[0].pin))

    step_one = admin_client.post(
        CHANGELIST + query,
        {"action": "export_admin_action", "select_across": "1", "_selected_action": [cards[0].pk]},
    )
    # Whatever the first step showed, its second step names no card: nothing is exported.
    step_two = admin_client.post(
        EXPORT,
        {"format": "0", "resource": "0", "topupcardexportresource_serial": "on"},
    )

    assert step_one.status_code in (200, 302)
    body = step_two.content.decode()
    assert not any(card.serial in body for card in cards)
    exported = CardEvent.objects.filter(kind=CardEventKind.EXPORTED)
    assert [event.changes["rows"] for event in exported] in ([], [0])


def test_a_pin_search_without_the_right_to_see_pins_lists_nothing(client, cards):
    user = operator()  # card permissions, not cards.view_pin
    client.force_login(user)

    query = searched(client, pin=cards[0].pin)
    page = client.get(CHANGELIST + query)

    assert listed(page) == []
    assert "Searching by PIN Code needs the permission to see card PINs." in page.content.decode()
    assert cards[0].pin not in query


def test_the_reason_is_beside_the_field_not_a_banner(admin_client, cards):
    query = searched(admin_client, pin=mistyped(cards[0].pin))

    page = admin_client.get(CHANGELIST + query)

    assert [str(m) for m in get_messages(page.wsgi_request)] == []
    assert NOT_A_PIN in pin_row(page.content.decode())


def test_a_valid_pin_search_still_finds_its_card(admin_client, cards):
    query = searched(admin_client, pin=cards[2].pin)

    assert listed(admin_client.get(CHANGELIST + query)) == [cards[2].serial]


def test_an_invalid_search_offers_no_mass_edit_nor_export(admin_client, cards):
    html = admin_client.get(CHANGELIST, {"pin": cards[0].pin}).content.decode()

    assert listed_none(html)
    assert MASS_EDIT not in html and EXPORT_CSV not in html
    assert "Generate Top-Up Cards" in html


def listed_none(html: str) -> bool:
    return "Rows 0 – 0 of 0" in html
