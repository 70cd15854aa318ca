"""Generate Top-Up Cards: the admin screen, the one-time download and `manage.py generate_cards`."""

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from cards import pins
from cards.exports import COLUMNS
from cards.models import CardBatch, CardEvent, TopUpCard
from cards.models.events import CardEventKind
from tests.cards.admin_helpers import operator
from tests.factories import ResellerFactory, TopUpCardFactory

pytestmark = pytest.mark.django_db
URL = reverse("admin:cards_topupcard_generate")


def form(**overrides):
    data = {
        "amount": "8.00",
        "currency": "USD",
        "quantity": "5",
        "series": "4",
        "pin_length": "12",
        "reseller": "none",
        "expires_at": (timezone.now() + dt.timedelta(days=30)).strftime("%Y-%m-%d %H:%M:%S"),
        "_ok": "OK",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def test_the_form_opens_with_the_defaults(admin_client):
    response = admin_client.get(URL)

    html = response.content.decode()
    assert response.status_code == 200
    for label in [
        "Amount",
        "Currency",
        "Quantity",
        "Series",
        "PIN Length",
        "Reseller",
        "Expiry Date",
    ]:
        assert f"{label}:" in html
    assert 'name="pin_length" value="12"' in html and 'name="quantity" value="1"' in html
    assert 'value="OK"' in html and 'value="Cancel"' in html and 'value="Apply"' in html
    expected = timezone.localdate() + dt.timedelta(days=28)
    expiry = response.context["form"].initial["expires_at"]
    assert expected <= expiry.date() <= timezone.localdate() + dt.timedelta(days=31)


def test_ok_generates_the_batch_and_shows_it(admin_client, reseller):
    response = admin_client.post(URL, form(reseller=reseller.pk), follow=True)

    batch = CardBatch.objects.get()
    assert response.redirect_chain[-1][0] == reverse(
        "admin:cards_cardbatch_change", args=[batch.pk]
    )
    html = response.content.decode()
    assert "Generated 5 cards" in html and "4-000000001 … 4-000000005" in html
    assert "Download CSV with PINs (once)" in html
    cards = TopUpCard.objects.order_by("number")
    assert [c.serial for c in cards] == [f"4-{n:09d}" for n in range(1, 6)]
    assert {(c.amount, c.currency, c.reseller_id) for c in cards} == {
        (Decimal("8.00"), "USD", reseller.pk)
    }
    assert CardEvent.objects.filter(kind=CardEventKind.GENERATED, batch=batch).count() == 1


def test_apply_generates_and_keeps_the_form_open_with_the_same_parameters(admin_client):
    response = admin_client.post(
        URL, form(_apply="Apply", _ok=None, series="7", quantity="2"), follow=True
    )

    assert response.redirect_chain[-1][0].startswith(URL + "?like=")
    assert TopUpCard.objects.filter(series="7").count() == 2
    html = response.content.decode()
    assert 'name="series" value="7"' in html and 'name="quantity" value="2"' in html


def test_cancel_generates_nothing(admin_client):
    response = admin_client.post(URL, form(_cancel="Cancel", _ok=None))

    assert response.status_code == 302 and response["Location"] == reverse(
        "admin:cards_topupcard_changelist"
    )
    assert not TopUpCard.objects.exists() and not CardBatch.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"quantity": "0"}, "quantity", "Quantity must be between 1 and 1,000,000."),
        ({"quantity": "1000001"}, "quantity", "Quantity must be between 1 and 1,000,000."),
        ({"quantity": "many"}, "quantity", "Enter a whole number."),
        ({"series": "4a"}, "series", "Series must be 1 to 6 digits."),
        ({"series": "1234567"}, "series", "Series must be 1 to 6 digits."),
        ({"series": ""}, "series", "This field is required."),
        ({"amount": "0"}, "amount", "Amount must be greater than zero."),
        ({"amount": "1.234"}, "amount", "at most 2 decimal places"),
        ({"amount": "abc"}, "amount", "Enter a number."),
        ({"currency": "US"}, "currency", "three-letter code"),
        ({"currency": "U5D"}, "currency", "three-letter code"),
        ({"currency": "XYZ"}, "currency", "XYZ is not an ISO 4217 currency code"),
        ({"currency": "GBP"}, "currency", "No balance template is in GBP"),
        ({"currency": ""}, "currency", "This field is required."),
        ({"pin_length": "4"}, "pin_length", "PIN length must be between 5 and 20 digits."),
        ({"pin_length": "21"}, "pin_length", "PIN length must be between 5 and 20 digits."),
        (
            {"pin_length": "6", "quantity": "11"},
            "pin_length",
            "6-digit PINs would become guessable",
        ),
        ({"expires_at": "2001-01-01 00:00:00"}, "expires_at", "Expiry date must be in the future."),
        ({"expires_at": "soon"}, "expires_at", "Enter a valid date/time."),
        ({"reseller": "99999"}, "reseller", "Choose the reseller that owns the cards"),
        ({"reseller": ""}, "reseller", "Choose the reseller that owns the cards"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message_and_changes_nothing(
    admin_client, overrides, field, message
):
    TopUpCardFactory(series="4", number=1, reseller=None)
    before = (TopUpCard.objects.count(), CardBatch.objects.count(), CardEvent.objects.count())

    response = admin_client.post(URL, form(**overrides))

    assert response.status_code == 200
    errors = response.context["form"].errors
    assert field in errors and message in " ".join(errors[field])
    assert (
        TopUpCard.objects.count(),
        CardBatch.objects.count(),
        CardEvent.objects.count(),
    ) == before


def test_generation_needs_the_add_permission(client):
    client.force_login(operator("view_topupcard", username="viewer"))

    assert client.get(URL).status_code == 403
    assert client.post(URL, form()).status_code == 403
    assert not TopUpCard.objects.exists()


def test_the_standard_add_page_leads_to_generate(admin_client):
    response = admin_client.get(reverse("admin:cards_topupcard_add"))

    assert response.status_code == 302 and response["Location"] == URL


# --- the one-time download ----------------------------------------------------------------------


def download(client, batch):
    return client.post(reverse("admin:cards_cardbatch_download", args=[batch.pk]))


def read_csv(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(body)))


def test_the_batch_downloads_once_with_pins_for_those_who_may_see_them(admin_client):
    admin_client.post(URL, form(quantity="3"))
    batch = CardBatch.objects.get()

    response = download(admin_client, batch)

    rows = read_csv(response)
    assert rows[0] == COLUMNS  # the same columns as every other export
    assert [r[0] for r in rows[1:]] == ["4-000000001", "4-000000002", "4-000000003"]
    for row in rows[1:]:
        card = TopUpCard.objects.get(number=int(row[0].split("-")[1]))
        assert bytes(card.pin_digest) == pins.pin_digest(row[3])
    assert "no-store" in response["Cache-Control"]
    event = CardEvent.objects.get(kind=CardEventKind.EXPORTED, actor__username="admin")
    assert event.changes["filter"]["batch"] == batch.pk and event.changes["with_pins"] is True
    assert event.changes["rows"] == 3 and event.changes["complete"] is True
    again = download(admin_client, batch)
    assert again.status_code == 302
    assert CardEvent.objects.filter(kind=CardEventKind.EXPORTED).count() == 1


def test_without_view_pin_the_download_shows_masked_pins(client):
    user = operator()
    client.force_login(user)
    client.post(URL, form(quantity="2"))
    batch = CardBatch.objects.get()

    page = client.get(reverse("admin:cards_cardbatch_change", args=[batch.pk])).content.decode()
    rows = read_csv(download(client, batch))

    assert "Download CSV (once)" in page
    assert all(r[3].startswith("•••• ••••") for r in rows[1:])
    # Still an export on record, without PINs.
    assert CardEvent.objects.get(kind=CardEventKind.EXPORTED).changes["with_pins"] is False


def test_another_session_cannot_download_the_batch(admin_client, client, django_user_model):
    admin_client.post(URL, form(quantity="2"))
    batch = CardBatch.objects.get()
    other = django_user_model.objects.create_superuser("boss", "b@example.com", "x")
    client.force_login(other)

    assert download(client, batch).status_code == 302
    assert not CardEvent.objects.filter(kind=CardEventKind.EXPORTED).exists()


def test_download_is_post_only(admin_client):
    admin_client.post(URL, form(quantity="1"))
    batch = CardBatch.objects.get()

    assert (
        admin_client.get(reverse("admin:cards_cardbatch_download", args=[batch.pk])).status_code
        == 405
    )


# --- the command line -------------------------------------------------------------------------


def test_generate_cards_command_uses_the_service_and_prints_one_line(reseller):
    out = io.StringIO()
    expires = (timezone.localdate() + dt.timedelta(days=60)).isoformat()

    call_command(
        "generate_cards",
        "--series=12",
        "--quantity=3",
        "--amount=5",
        "--currency=eur",
        "--pin-length=10",
        f"--reseller={reseller.name}",
        f"--expires={expires}",
        stdout=out,
    )

    lines = out.getvalue().strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(
        "Generated 3 cards 12-000000001 … 12-000000003, 5.00 EUR, PIN length 10"
    )
    cards = TopUpCard.objects.filter(series="12")
    assert cards.count() == 3 and {c.reseller for c in cards} == {reseller}
    assert {c.pin_length for c in cards} == {10}
    assert CardEvent.objects.filter(kind=CardEventKind.GENERATED).count() == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--series=x1"], "--series: Series must be 1 to 6 digits."),
        (["--quantity=0"], "--quantity: Quantity must be between"),
        (["--reseller=Nobody"], "--reseller: no reseller is named 'Nobody'"),
        (["--expires=tomorrow"], "--expires: 'tomorrow' is not a date"),
        (["--expires=2001-01-01"], "--expires: Expiry date must be in the future."),
        (["--pin-length=3"], "--pin-length: PIN length must be between 5 and 20"),
    ],
)
def test_generate_cards_command_refuses_bad_input(args, message):
    ResellerFactory(name="Reseller 1")
    base = ["--series=1", "--quantity=2", "--amount=5", "--expires=2099-01-01"]
    names = {a.split("=")[0] for a in args}
    argv = [a for a in base if a.split("=")[0] not in names] + args

    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace("?", r"\?")):
        call_command("generate_cards", *argv, stdout=io.StringIO())

    assert not TopUpCard.objects.exists() and not CardBatch.objects.exists()


def test_progress_bar_is_drawn_only_on_a_terminal():
    from cards.management.commands.generate_cards import ProgressBar

    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty, pipe = Tty(), io.StringIO()
    for stream in (tty, pipe):
        bar = ProgressBar(stream, width=10)
        bar(5, 10)
        bar(10, 10)

    assert "[#####.....] 5/10" in tty.getvalue() and "[##########] 10/10\n" in tty.getvalue()
    assert pipe.getvalue() == ""


@pytest.mark.parametrize("like", ["abc", "999999", ""])
def test_a_bad_like_parameter_just_opens_an_empty_form(admin_client, like):
    response = admin_client.get(URL, {"like": like})

    initial = response.context["form"].initial
    assert response.status_code == 200 and "amount" not in initial
    assert initial["series"] == "1"  # the next free series: none is used yet


def test_a_batch_too_large_for_one_download_keeps_its_offer(admin_client, settings):
    """The one-time download is taken only once it can be served: refused for its size (see
    EXPORT_HTTP_MAX_CARDS), it stays offered and works once the limit allows it."""
    admin_client.post(URL, form(quantity="3"))
    batch = CardBatch.objects.get()
    settings.EXPORT_HTTP_MAX_CARDS = 2

    refused = admin_client.post(
        reverse("admin:cards_cardbatch_download", args=[batch.pk]), follow=True
    )

    assert "more than 2 cards" in refused.content.decode()
    assert not CardEvent.objects.filter(kind=CardEventKind.EXPORTED).exists()
    settings.EXPORT_HTTP_MAX_CARDS = 3
    assert len(read_csv(download(admin_client, batch))) == 4
