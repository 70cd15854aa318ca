"""What an operator reads on the card screens (issue 14, "Admin copy"): the site's name, the
background job page in words, counts with thousands separators and the right plural, and
JeraSoft's labels."""

import datetime as dt
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from cards.exceptions import GenerationError
from cards.jobs.generation import generation_job_start
from cards.jobs.mass import delete_all_job_start, mass_edit_job_start
from cards.models import CardJob
from cards.models.events import CardEventKind
from cards.models.jobs import CardJobStatus
from cards.services.generation import card_batch_generate, pin_space_check
from cards.services.mass_edit import EXPIRE_NOW
from cards.services.selection import SelectionChanged
from subscribers.models import StaffReseller
from tests.cards.admin_helpers import operator
from tests.factories import (
    CardBatchFactory,
    CardEventFactory,
    ResellerFactory,
    TopUpCardFactory,
)

pytestmark = pytest.mark.django_db

EXPIRES = dt.datetime(2031, 6, 30, 12, 0, tzinfo=dt.UTC)


def text(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def content(response) -> str:
    """The page's own part (not the header, the menu or the scripts)."""
    page = text(response)
    return page[page.index('id="content"') :]


def columns(page: str) -> list[str]:
    """The changelist's column headers, as read."""
    cells = re.findall(r'<th scope="col"[^>]*class="[^"]*column-.*?</th>', page, re.S)
    return [re.sub(r"<[^>]*>", "", cell).strip() for cell in cells]


def labels(page: str) -> list[str]:
    """The change page's field labels, as read."""
    return [label.strip() for label in re.findall(r"<label[^>]*>([^<]*):</label>", page)]


def job_page(client, job) -> str:
    return content(client.get(reverse("admin:cards_cardjob_change", args=[job.pk])))


# --- The site's name ----------------------------------------------------------------------------


def test_every_admin_page_and_the_login_page_say_topup(client, admin_client):
    card = TopUpCardFactory()
    pages = {
        "login": client.get(reverse("admin:login")),
        "index": admin_client.get(reverse("admin:index")),
        "card list": admin_client.get(reverse("admin:cards_topupcard_changelist")),
        "card page": admin_client.get(reverse("admin:cards_topupcard_change", args=[card.pk])),
        "balances": admin_client.get(reverse("admin:wallets_balance_changelist")),
    }

    for name, response in pages.items():
        page = text(response)
        assert '<div id="site-name"><a href="/admin/">Topup</a></div>' in page, name
        assert re.search(r"<title>[^<]* \| Topup</title>", page), name
        assert "Django administration" not in page and "Django site admin" not in page, name


def test_the_login_lock_page_keeps_its_notice_under_the_topup_header(client, admin_user):
    for n in range(5):
        client.post(reverse("admin:login"), {"username": admin_user.username, "password": f"x{n}"})

    locked = client.post(
        reverse("admin:login"), {"username": admin_user.username, "password": "password"}
    )

    page = locked.content.decode()
    assert locked.status_code == 429
    assert 'id="login-locked"' in page and 'id="login-form"' in page
    assert '<div id="site-name"><a href="/admin/">Topup</a></div>' in page
    assert "Django administration" not in page


# --- The background job page --------------------------------------------------------------------


def test_a_generation_job_page_reads_its_request_and_outcome_in_words(admin_client, admin_user):
    reseller = ResellerFactory(name="Reseller 1")
    job = generation_job_start(
        series="7",
        quantity=25_000,
        amount="1500.00",
        currency="USD",
        pin_length=12,
        reseller=reseller,
        expires_at=EXPIRES,
        actor=admin_user,
    )

    queued = job_page(admin_client, job)
    CardJob.objects.filter(pk=job.pk).update(
        status=CardJobStatus.SUCCEEDED,
        done=25_000,
        finished_at=timezone.now(),
        batch=CardBatchFactory(series="7", first_number=1, quantity=25_000),
    )
    done = job_page(admin_client, job)

    for label, value in [
        ("Series", "7"),
        ("Quantity", "25,000 cards"),
        ("Amount", "1,500.00 USD"),
        ("PIN Length", "12 digits"),
        ("Reseller", "Reseller 1"),
        ("Expiry Date", "06/30/2031 12:00:00 +0000"),
    ]:
        assert f"<dt>{label}</dt><dd>{value}</dd>" in queued
    for raw in ['"series"', "reseller_id", "pin_length", '{"', "25000 cards"]:
        assert raw not in queued and raw not in done
    assert "Generation of 25,000 cards in series 7" in queued
    assert "25,000 cards created: 7-000000001 … 7-000025000" in done
    assert "Done: 25,000 cards created." in done  # the progress box


def test_a_generation_without_a_reseller_says_who_may_redeem(admin_client, admin_user):
    job = generation_job_start(
        series="8",
        quantity=1,
        amount="5",
        currency="USD",
        pin_length=12,
        reseller=None,
        expires_at=EXPIRES,
        actor=admin_user,
    )
    CardJob.objects.filter(pk=job.pk).update(status=CardJobStatus.SUCCEEDED, done=1)

    page = job_page(admin_client, job)
    progress = admin_client.get(reverse("admin:cards_cardjob_progress", args=[job.pk])).json()

    assert "<dt>Reseller</dt><dd>No reseller: redeemable by every subscriber</dd>" in page
    assert "Generation of 1 card in series 8" in page
    assert progress["label"] == "Done: 1 card created."


def test_a_mass_edit_job_page_reads_the_search_the_changes_and_the_outcome(
    admin_client, admin_user
):
    reseller = ResellerFactory(name="Reseller 2")
    job = mass_edit_job_start(
        filters={"series": "7", "status": "new", "reseller": str(reseller.pk), "client": ""},
        expected=75_045,
        changes={"expires_at": EXPIRES, "reseller": None, "blocked": True},
        delete_ids=[1],
        actor=admin_user,
    )
    CardJob.objects.filter(pk=job.pk).update(
        status=CardJobStatus.SUCCEEDED,
        result={"changed": {"expires_at": 75_045, "reseller": 75_044}, "deleted": 1},
    )

    page = job_page(admin_client, job)

    for label, value in [
        ("Search", "Series: 7; Status: New; Company: Reseller 2"),
        ("Cards", "75,045 cards that can change"),
        ("Expiry Date", "set to 06/30/2031 12:00:00 +0000"),
        ("Company", "set to No reseller: redeemable by every subscriber"),
        ("Block", "block the cards"),
        ("Marked to delete", "1 card"),
    ]:
        assert f"<dt>{label}</dt><dd>{value}</dd>" in page
    assert (
        "expiration date changed on 75,045 cards; company changed on 75,044 cards; 1 card deleted"
    ) in page
    assert '{"' not in page and "75045" not in page


def test_an_expire_now_job_page_says_so_in_words(admin_client, admin_user):
    job = mass_edit_job_start(
        filters={"series": "7"},
        expected=75_045,
        changes={"expires_at": EXPIRE_NOW},
        actor=admin_user,
    )

    page = job_page(admin_client, job)

    assert (
        "<dt>Expiry Date</dt><dd>expire now (the cards still running expire when it runs)</dd>"
    ) in page
    assert "set to now" not in page


def test_a_delete_all_job_page_reads_in_words(admin_client, admin_user):
    job = delete_all_job_start(filters={}, expected=1, actor=admin_user)
    CardJob.objects.filter(pk=job.pk).update(
        status=CardJobStatus.FAILED, error="The selection changed since it was confirmed."
    )

    page = job_page(admin_client, job)
    listing = content(admin_client.get(reverse("admin:cards_cardjob_changelist")))

    assert "<dt>Search</dt><dd>every card</dd>" in page
    assert "<dt>Cards</dt><dd>1 card to delete</dd>" in page
    assert "The selection changed since it was confirmed." in page
    assert "Delete all of 1 card" in listing and "1 cards" not in listing


# --- Counts and plurals -------------------------------------------------------------------------


def test_the_pin_space_refusal_counts_in_words():
    """5-digit PINs (four random digits and a check digit) leave room for one live card."""
    TopUpCardFactory(pin="12344", expires_at=EXPIRES, reseller=None)
    TopUpCardFactory(pin="123455", expires_at=EXPIRES, reseller=None)
    TopUpCardFactory(pin="123463", expires_at=EXPIRES, reseller=None)

    with pytest.raises(GenerationError) as five:
        pin_space_check(5, 1)
    with pytest.raises(GenerationError) as six:
        pin_space_check(6, 9)

    assert "at most 1 live card may share that length" in five.value.message
    assert "and 1 exists already" in five.value.message
    assert "at most 10 live cards may share that length" in six.value.message
    assert "and 2 exist already" in six.value.message


def test_a_full_series_counts_its_last_card_in_the_singular():
    TopUpCardFactory(series="5", number=999_999_998, reseller=None)

    with pytest.raises(GenerationError) as full:
        card_batch_generate(
            series="5",
            quantity=2,
            amount="5",
            currency="USD",
            pin_length=12,
            reseller=None,
            expires_at=EXPIRES,
        )

    assert full.value.message == "Series 5 has room for only 1 more card."


def test_a_changed_selection_counts_in_words():
    assert "it now holds 1 card that can change, not 75,045." in str(
        SelectionChanged(expected=75_045, now=1)
    )
    assert "it now holds 75,044 cards that can change" in str(
        SelectionChanged(expected=75_045, now=75_044)
    )


def test_batches_read_with_separators_and_jerasoft_labels(admin_client):
    batch = CardBatchFactory(series="7", quantity=25_000, amount="1000.00")
    single = CardBatchFactory(series="8", quantity=1)

    listing = content(admin_client.get(reverse("admin:cards_cardbatch_changelist")))
    page = content(admin_client.get(reverse("admin:cards_cardbatch_change", args=[batch.pk])))

    assert columns(listing) == [
        "Card batch",
        "Amount",
        "PIN Length",
        "Reseller",
        "Expiry Date",
        "Created by",
        "Created on",
    ]
    assert "1,000.00 USD" in listing and "(25,000 cards)" in listing
    assert f"{single.first_serial} … {single.last_serial} (1 card)" in listing
    assert "25,000 cards" in page
    for label in ["Quantity", "PIN Length", "Expiry Date", "Created on"]:
        assert label in labels(page)


def test_card_pages_use_jerasoft_labels(admin_client):
    card = TopUpCardFactory(reseller=ResellerFactory(name="Reseller 1"))

    listing = content(admin_client.get(reverse("admin:cards_topupcard_changelist")))
    page = content(admin_client.get(reverse("admin:cards_topupcard_change", args=[card.pk])))

    assert columns(listing)[-7:] == [
        "Status",
        "Serial Number",
        "Amount",
        "PIN Code",
        "Reseller",
        "Activated",
        "Created on",
    ]
    for label in ["Serial Number", "PIN Code", "Reseller", "Expiry Date", "Created on"]:
        assert label in labels(page)
    assert "Expires at" not in page and "Created at" not in page


def test_card_events_count_with_separators(admin_client):
    CardEventFactory(kind=CardEventKind.EXPORTED, card=None, changes={"rows": 75_045})

    listing = content(admin_client.get(reverse("admin:cards_cardevent_changelist")))

    assert "rows: 75,045" in listing
    assert columns(listing)[0] == "Time"


def test_a_reseller_scoped_job_names_its_reseller(client):
    reseller = ResellerFactory(name="Reseller 3")
    user = operator("view_topupcard", "change_topupcard", username="scoped")
    StaffReseller.objects.create(user=user, reseller=reseller)
    client.force_login(user)
    job = mass_edit_job_start(
        filters={"series": "7"}, expected=2, changes={"blocked": False}, actor=user
    )

    page = job_page(client, job)

    assert "<dt>Limited to</dt><dd>Reseller 3</dd>" in page
    assert "<dt>Block</dt><dd>unblock the cards</dd>" in page
