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
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from cards import pins
from cards.jobs import run_import_job
from cards.models import CardJob
from cards.models.jobs import SELECTION_AT, CardJobKind, CardJobStatus
from cards.services.generation import card_batch_generate
from cards.services.redemption import card_redeem
from tests.browser.axe import axe_violations, broken_references, too_wide
from tests.factories import (
    BalanceFactory,
    BalanceTemplateFactory,
    CardBatchFactory,
    CardJobFactory,
    PrinterFactory,
    PrintOrderFactory,
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


# --- admin pages merged after the walk above: import jobs, printing, delivery, resume ----------

IMPORT_HEADER = "Serial Number,Amount,Currency,PIN Code,Reseller,Expiry Date\n"
IMPORT_GOOD = IMPORT_HEADER + (
    "41-000000001,10.00,USD,918273645546,,2030-01-01\n"
    "41-000000002,10.00,USD,555566667777,,2030-01-01\n"
    "41-000000003,12.50,USD,000014,,2030-01-01\n"
)
IMPORT_BAD = IMPORT_HEADER + (
    "42-000000001,-1,USD,123456789012,,2030-01-01\n"
    "42-000000001,5.00,US,223456789012,,31/12/2030\n"
    "x-1,5.00,USD,92345678901A,Nobody,2030-01-01\n"
)


def _upload(page, name: str, text: str) -> CardJob:
    """Upload a file above IMPORT_SYNC_LIMIT: its check is queued and the job page answers."""
    page.goto("/admin/cards/topupcard/import/")
    page.locator("select[name=format]").select_option(index=1)  # the first format: CSV
    page.locator("input[name=import_file]").set_input_files(
        {"name": name, "mimeType": "text/csv", "buffer": text.encode()}
    )
    page.get_by_role("button", name="Submit").click()
    page.wait_for_url("**/cardjob/*/change/")
    return CardJob.objects.latest("pk")


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_import_jobs_printing_delivery_and_resume_pass_axe(
    request, viewport, live_server, settings
):
    settings.IMPORT_SYNC_LIMIT = 2  # the three-row files below go to the worker
    page = request.getfixturevalue(viewport)
    audit = Audit(page, viewport)
    page.context.add_cookies([_operator_cookie(live_server)])
    operator = get_user_model().objects.get(username="operator")
    acme = ResellerFactory(name="Acme Telecom")
    BalanceTemplateFactory(currency="USD", name="Main USD")
    dormant = card_batch_generate(
        series="62",
        quantity=3,
        amount="25.00",
        currency="USD",
        pin_length=12,
        reseller=acme,
        expires_at=timezone.now() + dt.timedelta(days=90),
        dormant=True,
        actor=operator,
    ).batch
    printer = PrinterFactory(name="Acme Print")
    order = PrintOrderFactory(
        printer=printer,
        series="62",
        first_number=1,
        last_number=3,
        expected=3,
        reseller=acme,
        status=CardJobStatus.SUCCEEDED,
        rows=3,
        size=2048,
        sha256="ab" * 32,
        requested_by=operator,
        finished_at=timezone.now(),
    )
    stopped = timezone.now() - dt.timedelta(hours=1)
    interrupted = CardJobFactory(
        kind=CardJobKind.MASS_EDIT,
        status=CardJobStatus.RUNNING,
        total=10,
        done=4,
        params={"filters": {"series": "62"}, "expected": 10, "changes": {"blocked": True}},
        result={SELECTION_AT: stopped.isoformat(), "changed": {"blocked": 4}},
        requested_by=operator,
        started_at=stopped,
        heartbeat_at=stopped,
    )

    page.goto("/admin/cards/topupcard/import/")
    audit("Import, upload form")
    job = _upload(page, "cards.csv", IMPORT_GOOD)
    page.locator("#job-label").wait_for()
    audit("import job, check queued")
    CardJob.objects.filter(pk=job.pk).update(
        status=CardJobStatus.RUNNING, done=1, started_at=timezone.now(), heartbeat_at=timezone.now()
    )
    page.reload()
    audit("import job, checking")
    CardJob.objects.filter(pk=job.pk).update(status=CardJobStatus.QUEUED, done=0)
    run_import_job.call(job.pk)  # what the worker does
    page.reload()
    page.get_by_role("button", name="Confirm import").wait_for()
    audit("import job, preview with Confirm import")
    page.get_by_role("button", name="Confirm import").click()
    page.wait_for_url(lambda url: f"/cardjob/{job.pk}/" not in url)
    audit("import job, import queued")
    run_import_job.call(CardJob.objects.latest("pk").pk)
    page.reload()
    audit("import job, imported")
    page.goto(f"/admin/cards/cardjob/{job.pk}/change/")
    audit("import job, check confirmed")
    job = _upload(page, "bad.csv", IMPORT_BAD)
    run_import_job.call(job.pk)
    page.reload()
    page.locator("#import-errors").wait_for()
    audit("import job, preview with errors")

    page.goto(f"/admin/cards/cardjob/{interrupted.pk}/change/")
    audit("Mass Edit job, interrupted with Resume")
    page.get_by_role("button", name="Resume").click()
    page.wait_for_load_state()
    audit("Mass Edit job, resumed")

    page.goto("/admin/cards/printer/add/")
    audit("printing house, add form")
    page.get_by_label("Public key").fill("-----BEGIN PGP PUBLIC KEY BLOCK-----\nnot a key\n")
    page.get_by_role("button", name="Register").click()
    audit("printing house, add form with a refused key")
    page.goto(f"/admin/cards/printer/{printer.pk}/change/")
    audit("printing house with its fingerprint")
    page.goto("/admin/cards/printer/")
    audit("printing houses")

    page.goto("/admin/cards/printorder/add/")
    audit("print order, add form")
    page.get_by_role("button", name="Order").click()
    audit("print order, add form with errors")
    page.goto(f"/admin/cards/printorder/{order.pk}/change/")
    audit("print order with the download button")
    page.goto("/admin/cards/printorder/")
    audit("print orders")

    page.goto("/admin/cards/carddelivery/add/")
    audit("delivered box, add form")
    page.get_by_role("button", name="Check the range").click()
    audit("delivered box, add form with errors")
    page.get_by_label("First serial in the box").fill(dormant.first_serial)
    page.get_by_label("Last serial in the box").fill(dormant.last_serial)
    page.locator("#id_reference").fill("BOX-62-1")
    page.get_by_role("button", name="Check the range").click()
    page.get_by_role("button", name="Wake these cards").wait_for()
    audit("delivered box, confirm")
    page.get_by_role("button", name="Wake these cards").click()
    page.wait_for_url("**/carddelivery/")
    audit("delivered boxes, after waking")

    page.goto("/admin/cards/topupcard/generate/")
    page.get_by_label("Dormant until delivered").check()
    page.locator("#generate-form input[name=_ok]").click()
    audit("Generate, Dormant until delivered ticked, with errors")

    page.goto("/admin/reports/rollforwardreport/")
    audit("report roll-forward")

    assert audit.report() == {}
