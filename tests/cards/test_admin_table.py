"""The Top-up Cards table and its Advanced Search, through the admin as an operator uses it."""

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from cards.models import TopUpCard
from tests.cards.admin_helpers import operator
from tests.factories import ResellerFactory, SubscriberFactory, TopUpCardFactory

pytestmark = pytest.mark.django_db
URL = reverse("admin:cards_topupcard_changelist")
SEARCH = reverse("admin:cards_topupcard_search")


def serials(response) -> list[str]:
    return re.findall(
        r'field-serial_number"><a [^>]*>([0-9]+-[0-9]{9})<', response.content.decode()
    )


def test_table_shows_the_jerasoft_columns_newest_first(admin_client, subscriber):
    reseller = subscriber.reseller
    old = TopUpCardFactory(
        series="1",
        number=5568053,
        amount=Decimal("15.00"),
        reseller=reseller,
        created_at=timezone.now() - dt.timedelta(days=3),
        activated_at=timezone.now() - dt.timedelta(days=1),
        activated_by=subscriber,
    )
    new = TopUpCardFactory(series="3", number=4206576, amount=Decimal("8.00"), reseller=reseller)

    response = admin_client.get(URL)

    html = response.content.decode()
    assert response.status_code == 200
    for header in [
        "Status",
        "Serial Number",
        "Amount",
        "PIN Code",
        "Reseller",
        "Activated",
        "Created on",
    ]:
        assert f">{header}<" in html or f">{header}</" in html
    assert serials(response) == ["3-004206576", "1-005568053"]
    assert "8.00 USD" in html and "15.00 USD" in html
    assert new.masked_pin in html and new.pin not in html and old.pin not in html
    assert "card-status--new" in html and ">New<" in html
    assert "card-status--activated" in html and ">Activated<" in html
    assert "Rose Orig" in html and "—" in html
    assert "Rows 1 – 2 of 2" in html
    assert "Generate Top-Up Cards" in html and "Mass Edit" in html


def test_statuses_expired_and_blocked_are_labelled(admin_client):
    TopUpCardFactory(expires_at=timezone.now() - dt.timedelta(days=1))
    TopUpCardFactory(blocked=True)

    html = admin_client.get(URL).content.decode()

    assert "card-status--expired" in html and ">Expired<" in html
    assert "card-status--blocked" in html and ">Blocked<" in html


@pytest.mark.parametrize(("per_page", "rows"), [(None, 20), ("50", 50), ("100", 60), ("7", 20)])
def test_page_size_choice(admin_client, per_page, rows):
    TopUpCardFactory.create_batch(60, reseller=None)

    response = admin_client.get(URL, {"per_page": per_page} if per_page else {})

    assert len(serials(response)) == rows
    assert f"Rows 1 – {rows} of 60" in response.content.decode()


def test_second_page_and_navigation(admin_client):
    TopUpCardFactory.create_batch(25, reseller=None)

    response = admin_client.get(URL, {"p": "2"})

    html = response.content.decode()
    assert len(serials(response)) == 5
    assert "Rows 21 – 25 of 25" in html and "Page 2 of 2" in html


def test_the_list_never_counts_the_whole_table_nor_runs_distinct(admin_client):
    TopUpCardFactory.create_batch(3)

    with CaptureQueriesContext(connection) as queries:
        admin_client.get(URL)
        admin_client.get(URL, {"status": "new", "reseller": TopUpCard.objects.first().reseller_id})

    sql = [q["sql"].upper() for q in queries.captured_queries]
    counts = [s for s in sql if "COUNT(" in s and "TOPUPCARD" in s]
    assert counts and all("LIMIT" in s for s in counts)
    assert not any("DISTINCT" in s for s in sql)


def test_big_tables_show_an_estimate_beyond_the_cap(admin_client, monkeypatch):
    from cards import selectors

    monkeypatch.setattr(selectors, "COUNT_CAP", 5)
    monkeypatch.setattr(selectors.card_count, "__kwdefaults__", {"cap": 5})
    TopUpCardFactory.create_batch(8, reseller=None)

    html = admin_client.get(URL).content.decode()

    if connection.vendor == "postgresql":
        assert "Rows 1 – 8 of about" in html
    else:
        assert "Rows 1 – 8 of 8" in html


# --- Advanced Search ---------------------------------------------------------------------------


@pytest.fixture
def cards(subscriber):
    now = timezone.now()
    other = ResellerFactory(name="Reseller 2")
    client = SubscriberFactory(name="Ann Other", reseller=other)
    return {
        "a": TopUpCardFactory(
            series="3", number=10, amount=Decimal("8.00"), reseller=subscriber.reseller
        ),
        "b": TopUpCardFactory(series="3", number=20, amount=Decimal("26.00"), reseller=other),
        "c": TopUpCardFactory(
            series="3",
            number=30,
            amount=Decimal("15.00"),
            reseller=subscriber.reseller,
            activated_at=now - dt.timedelta(days=40),
            activated_by=subscriber,
        ),
        "d": TopUpCardFactory(
            series="5",
            number=1,
            amount=Decimal("50.00"),
            reseller=other,
            expires_at=now + dt.timedelta(days=400),
            activated_at=now - dt.timedelta(days=2),
            activated_by=client,
        ),
        "e": TopUpCardFactory(series="5", number=2, reseller=None, blocked=True),
        "f": TopUpCardFactory(
            series="6", number=1, reseller=None, expires_at=now - dt.timedelta(days=1)
        ),
    }


def found(client, params) -> set[str]:
    response = client.get(URL, params)
    assert response.status_code == 200
    return set(serials(response))


def s(*cards):
    return {c.serial for c in cards}


def test_search_by_serial_range_and_series(admin_client, cards):
    assert found(admin_client, {"serial_from": "3-000000015", "serial_to": "3-000000030"}) == s(
        cards["b"], cards["c"]
    )
    assert found(admin_client, {"serial_from": "3-000000020"}) == s(cards["b"], cards["c"])
    assert found(admin_client, {"serial_to": "3-15"}) == s(cards["a"])
    assert found(admin_client, {"serial_from": "5"}) == s(cards["d"], cards["e"])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"serial_from": "3-x"}, "Enter a serial number such as 3-004206576"),
        ({"serial_from": "3-1", "serial_to": "5-1"}, "within one series"),
        (
            {"serial_from": "3-30", "serial_to": "3-10"},
            "Serial Number: the end comes before the start",
        ),
        ({"amount_min": "20", "amount_max": "10"}, "Amount: the end comes before the start"),
        ({"amount_min": "ten"}, "Enter a number"),
        ({"expires_from": "2030-02-01", "expires_to": "2030-01-01"}, "Expiry Date: the end"),
        ({"expires_from": "yesterday"}, "Enter a valid date"),
        (
            {"activated_from": "2030-02-01", "activated_to": "2030-01-01"},
            "Activation Date: the end",
        ),
        ({"status": "lost"}, "Select a valid choice"),
        ({"reseller": "999999"}, "Select a valid choice"),
    ],
)
def test_bad_search_says_why_and_lists_nothing(admin_client, cards, params, message):
    response = admin_client.get(URL, params)

    html = response.content.decode()
    assert response.status_code == 200
    assert message in html
    assert serials(response) == []
    assert 'id="advanced-search" open' in html


def test_search_by_status(admin_client, cards):
    assert found(admin_client, {"status": "new"}) == s(cards["a"], cards["b"])
    assert found(admin_client, {"status": "activated"}) == s(cards["c"], cards["d"])
    assert found(admin_client, {"status": "blocked"}) == s(cards["e"])
    assert found(admin_client, {"status": "expired"}) == s(cards["f"])


def test_search_by_company_amount_expiry_client_activation(admin_client, cards, subscriber):
    today = timezone.localdate()
    assert found(admin_client, {"reseller": subscriber.reseller_id}) == s(cards["a"], cards["c"])
    assert found(admin_client, {"amount_min": "11", "amount_max": "26"}) == s(
        cards["b"], cards["c"]
    )
    assert found(admin_client, {"amount_min": "26.00"}) == s(cards["b"], cards["d"])
    far = (today + dt.timedelta(days=300)).isoformat()
    assert found(admin_client, {"expires_from": far}) == s(cards["d"])
    assert found(admin_client, {"expires_to": today.isoformat()}) == s(cards["f"])
    assert found(admin_client, {"client": "rose"}) == s(cards["c"])
    assert found(admin_client, {"client": "Ann Other"}) == s(cards["d"])
    assert found(admin_client, {"client": "nobody"}) == set()
    week = (today - dt.timedelta(days=7)).isoformat()
    assert found(admin_client, {"activated_from": week}) == s(cards["d"])
    assert found(admin_client, {"activated_to": week}) == s(cards["c"])


def test_search_by_batch_link(admin_client, cards):
    from tests.factories import CardBatchFactory

    batch = CardBatchFactory()
    TopUpCard.objects.filter(pk=cards["b"].pk).update(batch=batch)

    assert found(admin_client, {"batch": batch.pk}) == s(cards["b"])


def test_search_form_posts_and_redirects_with_the_search_in_the_url(admin_client, cards):
    response = admin_client.post(
        SEARCH, {"serial_from": "3", "status": "new", "amount_min": "", "_search": "Search"}
    )

    assert response.status_code == 302
    assert response["Location"].startswith(URL + "?")
    assert "serial_from=3" in response["Location"] and "status=new" in response["Location"]
    assert found(
        admin_client, dict(p.split("=") for p in response["Location"].split("?")[1].split("&"))
    ) == s(cards["a"], cards["b"])


def test_reset_clears_the_search(admin_client, cards):
    response = admin_client.post(SEARCH, {"serial_from": "3", "_reset": "Reset"})

    assert response["Location"] == URL


def test_pin_search_finds_the_card_by_digest_and_keeps_the_pin_out_of_urls(admin_client, cards):
    card = cards["b"]
    typed = " ".join(card.pin[i : i + 4] for i in range(0, 12, 4))

    response = admin_client.post(SEARCH, {"pin": typed, "_search": "Search"})

    location = response["Location"]
    assert card.pin not in location and card.pin[:6] not in location
    assert "pin_ref=" in location
    page = admin_client.get(location)
    assert set(serials(page)) == {card.serial}
    assert card.pin not in page.content.decode()
    assert "searched by a PIN" in page.content.decode()


def test_pin_search_with_a_mistyped_pin_asks_to_check_the_code(admin_client, cards):
    pin = cards["a"].pin
    wrong = pin[:-1] + str((int(pin[-1]) + 1) % 10)

    response = admin_client.post(SEARCH, {"pin": wrong, "_search": "Search"})

    assert wrong not in response["Location"] and wrong[:6] not in response["Location"]
    page = admin_client.get(response["Location"])
    assert "check the code" in page.content.decode()
    assert serials(page) == []


def test_a_foreign_or_stale_pin_reference_finds_nothing_and_says_why(admin_client, cards):
    response = admin_client.get(URL, {"pin_ref": "made-up"})

    assert serials(response) == []
    assert "This PIN search has expired: type the PIN again." in response.content.decode()


def test_a_pin_in_the_query_string_selects_nothing_and_says_why(admin_client, cards):
    response = admin_client.get(URL, {"pin": cards["a"].pin})

    assert serials(response) == []
    assert "Search by PIN Code through the Advanced Search form." in response.content.decode()


def test_staff_without_view_permission_cannot_open_the_list(client, cards):
    user = operator("view_cardbatch", username="nobody")
    client.force_login(user)

    assert client.get(URL).status_code == 403
    assert client.post(SEARCH, {"serial_from": "3"}).status_code == 403


def test_list_pages_use_a_fixed_number_of_queries(admin_client, django_assert_max_num_queries):
    TopUpCardFactory.create_batch(50)

    with django_assert_max_num_queries(12):
        admin_client.get(URL, {"per_page": "50"})


def test_paging_stops_at_the_browsable_depth(admin_client, monkeypatch):
    from cards.admin import changelist

    monkeypatch.setattr(changelist, "MAX_BROWSABLE_ROWS", 40)
    TopUpCardFactory.create_batch(65, reseller=None)

    last = admin_client.get(URL, {"p": "2"})
    beyond = admin_client.get(URL, {"p": "3"})

    assert "Page 2 of 2" in last.content.decode()
    assert "narrow the list with Advanced Search" in last.content.decode()
    assert beyond.status_code == 302 and "e=1" in beyond["Location"]


def test_a_client_name_matching_too_many_clients_asks_for_more(admin_client, monkeypatch):
    from cards import filters

    monkeypatch.setattr(filters, "MAX_CLIENT_MATCHES", 1)
    SubscriberFactory(name="Ann One")
    SubscriberFactory(name="Ann Two")
    TopUpCardFactory()

    response = admin_client.get(URL, {"client": "Ann"})

    assert "More than 1 clients match: type more of the name." in response.content.decode()
    assert serials(response) == []
