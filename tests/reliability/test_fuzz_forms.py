"""Hostile input against the operator admin and the client panel, hypothesis-driven.

Generate Top-Up Cards, Mass Edit (with its per-row delete marks), the balance Adjust and Change
validity forms, the Advanced Search (changelist, Mass Edit and Delete all pages), and the panel's
Redeem Voucher: garbage in every field (huge numbers, exponents, NaN, negative zero, unicode
digits, control characters, 10,000-character strings, ids past 64 bits).

Never a 500. A refused input shows a clear error and changes nothing (each input runs in its own
rolled-back savepoint, compared before and after); an input the form accepts changed exactly
what it says. A PIN is never echoed. `pytest -s` prints the inputs tried per target.
"""

import logging
import re
from decimal import Decimal
from urllib.parse import urlencode

import pytest
from django import forms
from hypothesis import assume, given
from hypothesis import strategies as st

from cards.filters import SEARCH_FIELDS
from cards.models import CardBatch, TopUpCard
from tests.reliability.fuzz_support import (
    ARABIC_INDIC,
    FULLWIDTH,
    Tally,
    assert_no_pin_in,
    each_example_rolled_back,
    failed_attempts,
    full_state,
    fuzz_settings,
    fuzz_world,
    hostile_text,
)
from wallets.models import Balance, BalanceEvent, LedgerEntry

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/cards/topupcard/"
GENERATE = "/admin/cards/topupcard/generate/"
MASS_EDIT = "/admin/cards/topupcard/mass-edit/"
DELETE_ALL = "/admin/cards/topupcard/mass-edit/delete/"
REDEEM = "/panel/redeem/"
ERROR_MARKS = ("errorlist", "errornote", 'class="error"', "messagelist")


@pytest.fixture(autouse=True)
def _quiet_request_log(caplog):
    caplog.set_level(logging.ERROR, logger="django.request")


@pytest.fixture
def world(db, settings):
    settings.REDEEM_LOCKOUT_FAILURES = 10**9  # every code reaches the redemption checks
    return fuzz_world()


@pytest.fixture
def admin(client, world):
    client.force_login(world["admin"])
    return client


@pytest.fixture
def tally(request):
    counter = Tally(request.node.name)
    yield counter
    print(counter.report())


def page_text(response) -> str:
    return response.content.decode("utf-8", "replace")


def shows_an_error(response, client) -> bool:
    """The page names what is wrong: a form error, or an error message after a redirect."""
    if response.status_code == 302:
        followed = client.get(response["Location"])
        assert followed.status_code == 200
        return "messagelist" in page_text(followed) and (
            'class="error"' in page_text(followed) or 'class="warning"' in page_text(followed)
        )
    return any(mark in page_text(response) for mark in ERROR_MARKS)


# A browser cannot send a lone surrogate in a form (the REST fuzz sends them as raw bytes).
junk = st.one_of(hostile_text(60), st.sampled_from(["9" * 30, "-" + "9" * 30, "1.5", "0"])).filter(
    lambda v: not re.search("[\ud800-\udfff]", v)
)


def maybe(valid: str) -> st.SearchStrategy[str]:
    return st.one_of(st.just(valid), junk)


# --- Generate Top-Up Cards ----------------------------------------------------------------------


def would_be_large(quantity: str) -> bool:
    """A quantity the form reads as more than 50 cards: valid, but slow to fuzz with."""
    try:
        return forms.IntegerField().clean(quantity) > 50
    except forms.ValidationError:
        return False


def test_generate_form_refuses_garbage_or_generates_exactly_what_it_says(admin, world, tally):
    valid = {
        "amount": "10.00",
        "currency": "USD",
        "quantity": "2",
        "series": "55",
        "pin_length": "12",
        "reseller": str(world["reseller"].pk),
        "expires_at": "2031-01-01 00:00:00",
    }

    @fuzz_settings(20)
    @given(data=st.fixed_dictionaries({name: maybe(value) for name, value in valid.items()}))
    def run(data):
        assume(data != valid and not would_be_large(data["quantity"]))
        with each_example_rolled_back():
            before, batches = full_state(), set(CardBatch.objects.values_list("pk", flat=True))
            response = admin.post(GENERATE, data)
            tally.add(response.status_code)
            assert response.status_code in (200, 302)
            if response.status_code == 200:
                assert shows_an_error(response, admin)
                assert full_state() == before
                return
            (batch,) = CardBatch.objects.exclude(pk__in=batches)
            cards = TopUpCard.objects.filter(batch=batch)
            assert cards.count() == batch.quantity
            assert {(c.amount, c.currency, c.series) for c in cards} == {
                (batch.amount, batch.currency, batch.series)
            }
            assert batch.amount > 0 and re.fullmatch(r"[0-9]{1,6}", batch.series)

    run()


# --- Mass Edit ----------------------------------------------------------------------------------


@st.composite
def mass_edit_post(draw, world):
    cards = world["cards"]
    ids = [str(card.pk) for card in cards.values()]
    data = {
        "expires_action": draw(st.one_of(st.sampled_from(["preserve", "set"]), junk)),
        "expires_at": draw(maybe("2031-06-30 12:00:00")),
        "reseller_action": draw(st.one_of(st.sampled_from(["preserve", "set"]), junk)),
        "reseller": draw(maybe(str(world["other_reseller"].pk))),
        "block_action": draw(st.one_of(st.sampled_from(["preserve", "block", "unblock"]), junk)),
    }
    # The delete marks: at least one the operator could not have ticked (garbage, an id past
    # 64 bits, negative, a card outside the search), or none with an empty search.
    bad_marks = st.one_of(junk, st.integers(2**63, 10**40).map(str), st.just("-1"))
    marks = draw(st.lists(st.one_of(st.sampled_from(ids), bad_marks), max_size=4))
    search = {"serial_from": "77"}
    if draw(st.booleans()) or not marks:
        marks.append(draw(bad_marks))
    else:
        search = {"serial_from": draw(st.sampled_from(["55", "77-000000009"]))}  # selects nothing
    data["delete"] = marks
    if draw(st.booleans()):
        data["_confirm"] = "1"
    return search, data


def test_mass_edit_refuses_bad_delete_marks_and_empty_selections(admin, world, tally):
    @fuzz_settings(20)
    @given(case=mass_edit_post(world))
    def run(case):
        search, data = case
        with each_example_rolled_back():
            before = full_state()
            response = admin.post(f"{MASS_EDIT}?{urlencode(search)}", data)
            tally.add(response.status_code)
            assert response.status_code in (200, 302)
            assert shows_an_error(response, admin)
            assert full_state() == before

    run()


def test_a_delete_mark_past_64_bits_is_a_form_error_not_a_500(admin, world):
    """Found by the fuzz: `int()` took it, then SQLite could not bind it (OverflowError)."""
    data = {
        "expires_action": "preserve",
        "reseller_action": "preserve",
        "block_action": "preserve",
        "delete": [str(world["cards"]["new"].pk), "9" * 30],
        "_confirm": "1",
    }
    before = full_state()

    response = admin.post(f"{MASS_EDIT}?serial_from=77", data)

    assert response.status_code == 200
    assert "The delete marks are not valid." in page_text(response)
    assert full_state() == before


# --- Advanced Search -----------------------------------------------------------------------------


def test_advanced_search_garbage_gives_an_error_or_a_result_never_a_500(admin, world, tally):
    @fuzz_settings(20)
    @given(
        params=st.dictionaries(
            st.sampled_from([*SEARCH_FIELDS, "pin", "per_page", "p", "o", "q"]),
            st.one_of(junk, st.sampled_from(["9999-12-31", "0001-01-01", "٢٠٢٦-٠١-٠١"])),
            min_size=1,
            max_size=4,
        ),
        page=st.sampled_from([CHANGELIST, MASS_EDIT, DELETE_ALL]),
    )
    def run(params, page):
        with each_example_rolled_back():
            before = full_state()
            response = admin.get(page, params)
            tally.add(response.status_code)
            if response.status_code == 400:
                # Django refuses to redirect to a URL over 2,048 characters (DisallowedRedirect):
                # an invalid search that long gets its generic Bad Request page.
                assert len(urlencode(params)) > 1000
            else:
                assert response.status_code in (200, 302)  # the changelist redirects with ?e=1
            assert full_state() == before

    run()


@pytest.mark.parametrize(
    "params",
    [
        {"batch": "9" * 30},  # SQLite could not bind it (OverflowError)
        {"batch": "-" + "9" * 30},
        {"batch": "1.5"},  # read as batch 1 before: Mass Edit would have edited that batch
        {"expires_to": "9999-12-31"},  # the day after the last date: OverflowError
        {"activated_to": "9999-12-31"},
    ],
)
@pytest.mark.parametrize("page", [CHANGELIST, MASS_EDIT, DELETE_ALL])
def test_search_values_found_by_the_fuzz(admin, world, params, page):
    batch = CardBatch.objects.create(
        series="77", first_number=1, quantity=1, amount=Decimal("10"), currency="USD",
        pin_length=12, expires_at=world["cards"]["new"].expires_at,
    )  # fmt: skip
    TopUpCard.objects.filter(pk=world["cards"]["new"].pk).update(batch=batch)

    response = admin.get(page, params, follow=True)

    assert response.status_code == 200
    if "batch" in params:  # no batch has such an id: an error, or nothing selected
        assert world["cards"]["new"].serial not in page_text(response)


def test_the_end_of_the_calendar_is_a_valid_search_bound(admin, world):
    response = admin.get(MASS_EDIT, {"serial_from": "77", "expires_to": "9999-12-31"})

    assert response.status_code == 200
    assert world["cards"]["new"].serial in page_text(response)


# --- Balance Adjust and Change validity (admin) ------------------------------------------------


def test_balance_forms_refuse_garbage_or_apply_exactly(admin, world, tally):
    main = world["main"]
    main.refresh_from_db()

    @fuzz_settings(20)
    @given(
        form=st.sampled_from(["adjust", "validity"]),
        data=st.fixed_dictionaries(
            {
                "adjust_type": maybe("1"),
                "amount": maybe("5.00"),
                "reason": st.one_of(st.just("fuzz"), junk),
                "start_time": st.one_of(st.just(""), junk),
                "end_time": st.one_of(st.just(""), junk, st.just("9999-12-31T23:59")),
                "end_relative": st.one_of(st.just(""), junk, st.sampled_from(["P٤W", "P9999Y"])),
            }
        ),
    )
    def run(form, data):
        with each_example_rolled_back():
            before = full_state()
            entries, events = LedgerEntry.objects.count(), BalanceEvent.objects.count()
            response = admin.post(f"/admin/wallets/balance/{main.pk}/{form}/", data)
            tally.add(f"{form} {response.status_code}")
            assert response.status_code in (200, 302)
            if response.status_code == 200:
                assert shows_an_error(response, admin)
                assert full_state() == before
                return
            if form == "adjust":  # one entry, of exactly the amount typed
                assert LedgerEntry.objects.count() == entries + 1
                entry = LedgerEntry.objects.latest("pk")
                sign = 1 if data["adjust_type"].strip() == "1" else -1
                assert entry.amount == sign * Decimal(data["amount"].strip())
                assert Balance.objects.get(pk=main.pk).amount == main.amount + entry.amount
            else:
                assert LedgerEntry.objects.count() == entries
                assert BalanceEvent.objects.count() > events

    run()


# --- Redeem Voucher (panel) ---------------------------------------------------------------------


@st.composite
def voucher_codes(draw, world):
    not_redeemable = [pin for name, pin in world["pins"].items() if name != "new"]
    return draw(
        st.one_of(
            hostile_text().filter(lambda v: not re.search("[\ud800-\udfff]", v)),
            st.text(min_size=1, max_size=10_000),
            st.sampled_from(not_redeemable),
            # The redeemable card's PIN in other digits, or with a digit changed.
            st.sampled_from([ARABIC_INDIC, FULLWIDTH]).map(world["pins"]["new"].translate),
            st.integers(0, 11).map(
                lambda i: (
                    world["pins"]["new"][:i]
                    + str((int(world["pins"]["new"][i]) + 1) % 10)
                    + world["pins"]["new"][i + 1 :]
                )
            ),
        )
    )


def test_redeem_refuses_any_wrong_code_clearly_and_changes_nothing(client, world, tally):
    client.force_login(world["user"])
    pins = world["pins"].values()

    @fuzz_settings(25)
    @given(code=voucher_codes(world))
    def run(code):
        with each_example_rolled_back():
            before = full_state()
            response = client.post(REDEEM, {"code": code})
            tally.add(response.status_code)
            assert response.status_code in (302, 400)
            page = response if response.status_code == 400 else client.get(response["Location"])
            text = page_text(page)
            assert 'role="alert"' in text or "errorlist" in text, text
            assert "redeemed:" not in text
            assert_no_pin_in(text, *pins)
            if len(code.strip()) >= 6:
                assert code.strip() not in text
            assert full_state() == before

    before_attempts = failed_attempts()
    run()
    assert failed_attempts() == before_attempts  # each input's audit rolled back with it


def test_redeem_still_works_after_the_fuzz(client, world):
    """The world the fuzz ran against is intact: the right code is redeemed."""
    client.force_login(world["user"])

    response = client.post(REDEEM, {"code": world["pins"]["new"]}, follow=True)

    assert "redeemed" in page_text(response)
    assert Balance.objects.get(pk=world["main"].pk).amount == Decimal("125.00")
