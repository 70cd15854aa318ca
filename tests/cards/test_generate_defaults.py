"""Generate Top-Up Cards proposes safe values (docs/cards.md, "Generate Top-Up Cards"): the reseller
is an explicit choice (a named "no reseller" option, the empty choice refused), the series
proposed is the chosen reseller's latest or the next free one, and the currency is one a balance
template uses (ISO 4217), refused with the reason in the service too (command line, job).

On the old main the reseller defaulted to none, the series was empty and any three letters were a
currency."""

import datetime as dt
import io
import json
import re
from html import unescape

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from cards.exceptions import GenerationError
from cards.jobs.generation import generation_job_start
from cards.models import CardBatch, CardJob, CardSeries, TopUpCard
from cards.selectors import series_proposals
from cards.services.generation import card_batch_generate
from subscribers.models import StaffReseller
from tests.cards.admin_helpers import operator, snapshot
from tests.factories import BalanceTemplateFactory, ResellerFactory
from wallets.models import BalanceTemplate

pytestmark = pytest.mark.django_db
URL = reverse("admin:cards_topupcard_generate")
CHOOSE = (
    "Choose the reseller that owns the cards, or “No reseller: redeemable by every subscriber”."
)


def later() -> str:
    return (timezone.now() + dt.timedelta(days=30)).strftime("%Y-%m-%d %H:%M:%S")


def form(**overrides):
    data = {
        "amount": "8.00",
        "currency": "USD",
        "quantity": "3",
        "series": "40",
        "pin_length": "12",
        "reseller": "none",
        "expires_at": later(),
        "_ok": "OK",
    }
    return {**data, **overrides}


def everything():
    return snapshot(TopUpCard), snapshot(CardBatch), snapshot(CardSeries)


@pytest.fixture
def owners():
    """Series 1 and 2 of Reseller 1, 3 without a reseller, 5 of Reseller 2; Reseller 3 has none."""
    r1, r2, r3 = (ResellerFactory(name=f"Reseller {n}") for n in (1, 2, 3))
    for series, reseller in (("1", r1), ("2", r1), ("3", None), ("5", r2)):
        CardSeries.objects.create(series=series, reseller=reseller)
    return r1, r2, r3


def options(html: str, select: str) -> list[tuple[str, str, bool]]:
    block = re.search(rf'<select name="{select}".*?</select>', html, re.S).group(0)
    return [
        (value, label, bool(selected))
        for value, selected, label in re.findall(
            r'<option value="([^"]*)"( selected)?>([^<]*)</option>', block
        )
    ]


# --- the reseller: an explicit choice ---------------------------------------------------------


def test_the_reseller_starts_unchosen_with_a_named_no_reseller_option(admin_client, owners):
    html = admin_client.get(URL).content.decode()

    choices = options(html, "reseller")
    assert choices[0] == ("", "— choose —", True)
    assert choices[1] == ("none", "No reseller: redeemable by every subscriber", False)
    assert [label for _, label, _ in choices[2:]] == ["Reseller 1", "Reseller 2", "Reseller 3"]


@pytest.mark.parametrize("reseller", ["", "x", "999999"])
def test_an_unchosen_reseller_is_refused_with_the_reason_and_nothing_is_made(
    admin_client, owners, reseller
):
    before = everything()

    response = admin_client.post(URL, form(reseller=reseller))

    assert response.status_code == 200
    assert response.context["form"].errors["reseller"] == [CHOOSE]
    assert everything() == before


def test_no_reseller_is_chosen_by_name(admin_client, owners):
    response = admin_client.post(URL, form(reseller="none"))

    assert response.status_code == 302
    assert CardBatch.objects.get().reseller is None
    assert set(TopUpCard.objects.values_list("reseller", flat=True)) == {None}


def test_a_scoped_operator_is_offered_only_their_own_reseller(client, owners):
    r1, _, _ = owners
    user = operator()
    StaffReseller.objects.create(user=user, reseller=r1)
    client.force_login(user)

    html = client.get(URL).content.decode()
    refused = client.post(URL, form(reseller="none"))

    assert options(html, "reseller") == [(str(r1.pk), "Reseller 1", True)]
    assert refused.context["form"].errors["reseller"] == [CHOOSE]
    assert not TopUpCard.objects.exists()


# --- the series proposal ----------------------------------------------------------------------


def test_the_proposal_is_the_reseller_s_latest_series_else_the_next_free_one(owners):
    r1, r2, r3 = owners

    proposals = series_proposals(user=None)

    assert proposals == {"": "6", str(r1.pk): "2", "none": "3", str(r2.pk): "5"}
    assert str(r3.pk) not in proposals  # a reseller without a series gets the free one, ""


def test_the_page_proposes_the_next_free_series_and_carries_every_proposal(admin_client, owners):
    r1, _, _ = owners

    html = admin_client.get(URL).content.decode()

    assert re.search(r'name="series" value="6"[^>]*data-proposed="6"', html)
    data = re.search(r'<select name="reseller"[^>]*data-series-proposals="([^"]*)"', html)
    assert json.loads(unescape(data.group(1)))[str(r1.pk)] == "2"


def test_the_proposal_follows_the_reseller_of_the_batch_opened_again(admin_client, owners):
    r1, _, _ = owners
    batch = card_batch_generate(
        series="2",
        quantity=1,
        amount="5.00",
        currency="USD",
        pin_length=12,
        reseller=r1,
        expires_at=timezone.now() + dt.timedelta(days=9),
    ).batch

    response = admin_client.get(URL, {"like": batch.pk})

    form_shown = response.context["form"]
    assert form_shown["reseller"].value() == str(r1.pk)
    assert form_shown["series"].value() == "2"


def test_a_scoped_operator_is_proposed_their_series_and_never_learns_the_others(client, owners):
    _, r2, _ = owners
    user = operator()
    StaffReseller.objects.create(user=user, reseller=r2)
    client.force_login(user)

    response = client.get(URL)

    assert response.context["proposals"] == {"": "6", str(r2.pk): "5"}
    assert response.context["form"]["series"].value() == "5"


def test_a_series_spelt_with_a_leading_zero_is_never_proposed_to_another_owner(owners):
    r1, r2, _ = owners
    CardSeries.objects.create(series="07", reseller=r2)  # numerically 7, but "7" is free

    proposals = series_proposals(user=None)

    assert proposals[""] == "8"
    # Its highest ("07") is not what "7" names: it is offered the next free series instead.
    assert str(r2.pk) not in proposals


def test_the_proposed_series_is_accepted_as_is(admin_client, owners):
    r1, _, _ = owners
    proposals = series_proposals(user=None)

    for choice, reseller in ((str(r1.pk), r1), ("none", None), ("", None)):
        response = admin_client.post(
            URL, form(reseller=choice or "none", series=proposals[choice], quantity="1")
        )
        assert response.status_code == 302, response.context["form"].errors
        assert CardBatch.objects.latest("pk").reseller == reseller


def test_the_generate_page_runs_no_inline_script(admin_client, owners):
    html = admin_client.get(URL).content.decode()

    scripts = re.findall(r"<script([^>]*)>", html)
    assert any('src="/static/cards/generate.js"' in attrs for attrs in scripts)
    assert all("src=" in attrs for attrs in scripts)


# --- the currency: one a balance template uses ------------------------------------------------


def test_the_currency_is_a_select_of_the_templates_iso_currencies(admin_client):
    BalanceTemplateFactory(name="Minutes", currency="MIN")  # a unit, not a currency
    BalanceTemplateFactory(name="Sterling", currency="GBP")

    html = admin_client.get(URL).content.decode()

    assert options(html, "currency") == [
        ("", "— choose —", False),
        ("EUR", "EUR", False),
        ("GBP", "GBP", False),
        ("USD", "USD", True),
    ]


@pytest.mark.parametrize(
    ("currency", "reason"),
    [
        ("XYZ", "XYZ is not an ISO 4217 currency code such as USD or EUR."),
        ("MIN", "MIN is not an ISO 4217 currency code such as USD or EUR."),
        (
            "GBP",
            "No balance template is in GBP, so no subscriber could redeem these cards: "
            "choose EUR, USD.",
        ),
    ],
)
def test_the_service_refuses_a_currency_no_balance_can_take(currency, reason):
    BalanceTemplateFactory(name="Minutes", currency="MIN")
    before = everything()

    with pytest.raises(GenerationError) as error:
        card_batch_generate(
            series="9",
            quantity=1,
            amount="5.00",
            currency=currency,
            pin_length=12,
            reseller=None,
            expires_at=timezone.now() + dt.timedelta(days=9),
        )

    assert (error.value.field, error.value.message) == ("currency", reason)
    assert everything() == before


def test_without_any_template_the_reason_says_what_to_do(admin_client):
    BalanceTemplate.objects.all().delete()

    response = admin_client.post(URL, form(currency="USD"))

    assert response.context["form"].errors["currency"] == [
        "No balance template is in USD, so no subscriber could redeem these cards: "
        "create a balance template in the currency first."
    ]
    assert not TopUpCard.objects.exists()


def test_the_command_line_refuses_it_too():
    with pytest.raises(CommandError, match="XYZ is not an ISO 4217 currency code"):
        call_command(
            "generate_cards",
            "--series",
            "9",
            "--quantity",
            "1",
            "--amount",
            "5",
            "--currency",
            "XYZ",
            "--expires",
            (timezone.now() + dt.timedelta(days=9)).strftime("%Y-%m-%d"),
            stdout=io.StringIO(),
        )
    assert not TopUpCard.objects.exists()


def test_a_background_generation_is_refused_before_it_is_queued(admin_user):
    with pytest.raises(GenerationError) as error:
        generation_job_start(
            series="9",
            quantity=30,
            amount="5.00",
            currency="GBP",
            pin_length=12,
            reseller=None,
            expires_at=timezone.now() + dt.timedelta(days=9),
            actor=admin_user,
        )

    assert error.value.field == "currency"
    assert not CardJob.objects.exists()
