"""WCAG 2.1 A and AA (axe-core) on every panel page and every admin page this project renders
itself, at a phone and a desktop viewport, with the site's Content-Security-Policy on (issue 18).

Each test walks its pages, runs axe on each state a user can reach (a form with its errors, each
redemption outcome, a lockout) and fails listing every violation by page. With `-s` it prints the
summary per page: the figures of the issue's closing note.

Stock Django admin chrome is checked too; the only part left out is named in DJANGO_OWN below.
"""

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from cards import pins
from cards.models import CardJob, CardJobStatus
from cards.services.redemption import card_redeem
from tests.browser.axe import axe_violations, broken_references, too_wide
from tests.factories import (
    BalanceFactory,
    BalanceTemplateFactory,
    CardBatchFactory,
    CardJobFactory,
    ResellerFactory,
    SubscriberFactory,
    TopUpCardFactory,
    UserFactory,
    WalletFactory,
)
from wallets.models import Channel, LedgerEntry
from wallets.services.topup import balance_topup

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

VIEWPORTS = ["phone", "desktop"]

# Django's own markup that none of our templates produce, left out of the check by selector
# (nothing of ours matches it): the autocomplete box of `autocomplete_fields` (Django's vendored
# Select2) names its combobox by the current choice, so with none chosen it has no name
# (aria-input-field-name). Only the balance page has one.
DJANGO_OWN = (".select2-container",)


class Audit:
    """Runs axe on each page state and keeps what it found, by page."""

    def __init__(self, page, viewport: str):
        self.page, self.viewport = page, viewport
        self.found: dict[str, list[str]] = {}

    def __call__(self, name: str, *, exclude: tuple[str, ...] = ()) -> None:
        self.page.wait_for_load_state()
        self.found[name] = [
            *axe_violations(self.page, exclude=exclude),
            *broken_references(self.page),
            *too_wide(self.page),
        ]

    def report(self) -> dict[str, list[str]]:
        for name, violations in self.found.items():
            rules = "; ".join(v.split(":")[0] for v in violations) or "none"
            print(f"axe {self.viewport:7} {len(violations):2} violation(s) {name}: {rules}")
            for violation in violations:
                print(f"    {violation}")
        return {name: found for name, found in self.found.items() if found}


# --- the client panel --------------------------------------------------------------------------


@pytest.fixture
def rose():
    subscriber = SubscriberFactory(name="Rose Orig", user__username="rose")
    balance = BalanceFactory(
        wallet=WalletFactory(subscription__subscriber=subscriber),
        resource_id=12,
        is_main=True,
        template__name="Main USD",
    )
    subscriber.user.user_permissions.add(Permission.objects.get(codename="redeem_card"))
    subscriber.balance = balance
    return subscriber


def _submit_code(page, code: str) -> None:
    page.get_by_label("Voucher Code").fill(code)
    page.get_by_role("button", name="Redeem").click()
    page.wait_for_load_state()


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_every_panel_page_passes_axe(request, viewport, rose):
    page = request.getfixturevalue(viewport)
    audit = Audit(page, viewport)
    reseller = rose.reseller
    good = TopUpCardFactory(reseller=reseller, amount=Decimal("25.00"))
    neighbour = SubscriberFactory(reseller=reseller)
    used = TopUpCardFactory(reseller=reseller)
    card_redeem(
        pin=used.pin,
        balance=BalanceFactory(wallet=WalletFactory(subscription__subscriber=neighbour)),
        subscriber=neighbour,
    )
    failures = {
        "already used": used.pin,
        "expired": TopUpCardFactory(
            reseller=reseller, expires_at=timezone.now() - dt.timedelta(minutes=1)
        ).pin,
        "blocked": TopUpCardFactory(reseller=reseller, blocked=True).pin,
        "another reseller's": TopUpCardFactory(reseller=ResellerFactory(name="Other")).pin,
        "another currency": TopUpCardFactory(reseller=reseller, currency="EUR").pin,
        "bad check digit": "4524 2829 3854",
    }

    page.goto("/panel/login/")
    audit("login")
    page.get_by_label("Username").fill("rose")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Log in").click()
    audit("login, wrong password")
    page.get_by_label("Password").fill("secret")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/panel/")
    audit("dashboard")

    page.goto("/panel/redeem/")
    audit("redeem")
    _submit_code(page, "")
    audit("redeem, empty code")
    _submit_code(page, good.pin)
    audit("redeem, success")
    for name, code in failures.items():
        _submit_code(page, code)
        audit(f"redeem, {name}")
    _submit_code(page, pins.generate_pin(12))
    audit("redeem, no card matches")
    while "locked" not in (page.locator("[data-outcome]").first.get_attribute("data-outcome")):
        _submit_code(page, pins.generate_pin(12))
    audit("redeem, locked")
    page.goto("/panel/")
    audit("dashboard, locked")

    page.goto("/panel/password/")
    audit("password change")
    page.get_by_label("Old password").fill("wrong")
    page.get_by_label("New password", exact=True).fill("short")
    page.get_by_label("New password confirmation").fill("other")
    page.get_by_role("button", name="Change password").click()
    audit("password change, errors")
    page.get_by_label("Old password").fill("secret")
    page.get_by_label("New password", exact=True).fill("plum-Orchard-41")
    page.get_by_label("New password confirmation").fill("plum-Orchard-41")
    page.get_by_role("button", name="Change password").click()
    page.wait_for_url("**/password/done/")
    audit("password changed")

    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/panel/login/")
    SubscriberFactory(name="No Rights", user__username="norights")
    page.get_by_label("Username").fill("norights")
    page.get_by_label("Password").fill("secret")
    page.get_by_role("button", name="Log in").click()
    page.goto("/panel/redeem/")
    audit("not allowed")
    page.get_by_role("button", name="Log out").first.click()
    page.wait_for_url("**/panel/login/")
    for attempt in range(6):
        page.get_by_label("Username").fill("rose")
        page.get_by_label("Password").fill(f"wrong-{attempt}")
        page.get_by_role("button", name="Log in").click()
        page.wait_for_load_state()
    audit("login, locked")

    assert audit.report() == {}


# --- the admin pages we render ----------------------------------------------------------------


def _operator_cookie(live_server) -> dict:
    operator = UserFactory(username="operator", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(operator)
    return {"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_every_admin_page_we_render_passes_axe(request, viewport, live_server, settings):
    from playwright.sync_api import expect  # here: the module must import without playwright

    settings.REDEEM_FAILURE_BUDGET = 1  # the failure alert shows on every admin page
    page = request.getfixturevalue(viewport)
    audit = Audit(page, viewport)
    acme = ResellerFactory(name="Acme Telecom")
    BalanceTemplateFactory(currency="USD", name="Main USD")
    batch = CardBatchFactory(reseller=acme, series="61", quantity=3)
    cards = [TopUpCardFactory(series="61", number=n, reseller=acme, batch=batch) for n in (1, 2, 3)]
    job = CardJobFactory(params={"series": "61", "quantity": 10})
    guesser = SubscriberFactory(name="Mallory", reseller=acme)
    balance = BalanceFactory(
        wallet=WalletFactory(subscription__subscriber=guesser), resource_id=12, is_main=True
    )
    balance_topup(balance=balance, amount=Decimal("10.00"), voucher="EXT-1")
    entry = LedgerEntry.objects.get(balance=balance)
    for _ in range(2):
        try:
            card_redeem(
                pin=pins.generate_pin(12),
                balance=balance,
                subscriber=guesser,
                channel=Channel.PANEL,
                ip_address="203.0.113.66",
            )
        except Exception:  # noqa: BLE001 - a wrong code, as intended
            pass

    page.goto("/admin/login/")
    audit("admin login")
    page.get_by_label("Username").fill("operator")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Log in").click()
    audit("admin login, wrong password")
    page.context.add_cookies([_operator_cookie(live_server)])

    page.goto("/admin/")
    audit("admin index with the failure alert")

    page.goto("/admin/cards/topupcard/")
    page.locator("details#advanced-search summary").click()
    audit("cards, Advanced Search open")
    page.locator("#id_amount_min").fill("5")
    page.locator("#id_amount_max").fill("1")
    page.locator("input[name=_search]").click()
    audit("cards, Advanced Search with errors")
    page.goto("/admin/cards/topupcard/?series=61")
    reveal = page.locator(".card-pin__reveal")
    hidden = reveal.count()
    reveal.first.click()
    expect(reveal).to_have_count(hidden - 1)
    audit("cards, one PIN revealed")
    page.goto(f"/admin/cards/topupcard/{cards[0].pk}/change/")
    audit("card")
    page.get_by_role("button", name="Reveal PIN").click()
    page.wait_for_url("**/reveal-pin/")
    audit("card, Reveal PIN screen")

    page.goto("/admin/cards/topupcard/generate/")
    audit("Generate")
    page.locator("#generate-form input[name=_ok]").click()
    audit("Generate with errors")

    page.goto("/admin/cards/topupcard/mass-edit/?series=61")
    audit("Mass Edit")
    page.locator("#id_reseller_action").select_option("set")
    page.locator("input[name=_process]").click()
    audit("Mass Edit with errors")
    page.locator("#id_block_action").select_option("block")
    page.locator("#id_reseller_action").select_option("preserve")
    page.locator("input[name=_process]").click()
    page.locator("#mass-edit-preview").wait_for()
    audit("Mass Edit confirm")
    page.goto("/admin/cards/topupcard/mass-edit/delete/?series=61")
    audit("Delete all confirm")

    page.goto(f"/admin/cards/cardbatch/{batch.pk}/change/")
    audit("batch")
    page.goto(f"/admin/cards/cardjob/{job.pk}/change/")
    page.locator("#job-label").wait_for()
    audit("job page, queued")
    CardJob.objects.filter(pk=job.pk).update(
        status=CardJobStatus.RUNNING,
        done=3,
        started_at=timezone.now(),
        heartbeat_at=timezone.now(),
    )
    page.reload()
    audit("job page, running")
    page.goto("/admin/cards/cardjob/")
    audit("jobs")
    page.goto("/admin/cards/cardevent/")
    audit("card events")

    for report in ("liability", "redemption", "breakage", "expiring", "balance"):
        page.goto(f"/admin/reports/{report}report/")
        audit(f"report {report}")

    page.goto(f"/admin/wallets/balance/{balance.pk}/change/")
    audit("balance", exclude=DJANGO_OWN)
    page.goto(f"/admin/wallets/balance/{balance.pk}/adjust/")
    audit("balance, Adjust amount")
    page.goto(f"/admin/wallets/balance/{balance.pk}/validity/")
    audit("balance, Change validity")
    page.goto(f"/admin/wallets/ledgerentry/{entry.pk}/change/")
    audit("ledger entry")
    page.goto(f"/admin/wallets/ledgerentry/{entry.pk}/reverse/")
    audit("ledger entry, Reverse")

    page.goto("/admin/subscribers/subscriber/")
    audit("subscribers")
    page.goto("/admin/subscribers/subscriber/add-client/")
    audit("Add client")
    page.get_by_role("button", name="Add client").click()
    audit("Add client with errors")

    assert audit.report() == {}
