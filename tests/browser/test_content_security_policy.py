"""The admin, its scripts and the API docs work in Chromium under the Content-Security-Policy.

The policy (config/middleware.py) forbids inline scripts and styles and anything from another
site; a page that relied on one would break silently. Chromium reports every blocked load or
script as a `securitypolicyviolation` event, which this test collects on each page.
"""

import pytest
from django.utils import timezone

from cards.models import CardEvent, CardJob
from cards.models.events import CardEventKind
from cards.models.jobs import CardJobStatus
from cards.pins import format_pin
from tests.factories import (
    BalanceFactory,
    CardBatchFactory,
    CardJobFactory,
    ResellerFactory,
    TopUpCardFactory,
    UserFactory,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WATCH_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(event.violatedDirective + " " + event.blockedURI);
});
"""


def test_admin_pages_and_their_scripts_work_under_the_policy(desktop, screenshot):
    from playwright.sync_api import expect  # here: the module must import without playwright

    UserFactory(username="operator", is_staff=True, is_superuser=True)
    acme = ResellerFactory(name="Acme Telecom")
    batch = CardBatchFactory(reseller=acme, series="61")
    card = TopUpCardFactory(series="61", number=1, reseller=acme, batch=batch)
    job = CardJobFactory(params={"series": "61", "quantity": 10})
    balance = BalanceFactory(is_main=True)
    desktop.add_init_script(WATCH_VIOLATIONS)
    policies, violations = [], {}

    def visit(url: str):
        response = desktop.goto(url)
        policies.append(response.headers.get("content-security-policy", ""))
        return response

    def record(url: str):
        violations[url] = desktop.evaluate("window.__cspViolations")

    visit("/admin/login/?next=/admin/")
    desktop.get_by_label("Username").fill("operator")
    desktop.get_by_label("Password").fill("secret")
    desktop.get_by_role("button", name="Log in").click()
    desktop.wait_for_url("**/admin/")
    record("/admin/")

    # The card table: the Reveal button's script fetches the PIN in place.
    visit("/admin/cards/topupcard/")
    desktop.get_by_role("button", name="Reveal").click()
    # (Playwright's own waits are used: a string it evaluates is refused by the policy too.)
    expect(desktop.locator(".card-pin")).to_have_text(format_pin(card.pin))
    record("/admin/cards/topupcard/")

    # The job page: its script polls the progress and updates the label.
    visit(f"/admin/cards/cardjob/{job.pk}/change/")
    expect(desktop.locator("#job-label")).to_contain_text("Queued")
    CardJob.objects.filter(pk=job.pk).update(
        status=CardJobStatus.RUNNING,
        done=3,
        started_at=timezone.now(),
        heartbeat_at=timezone.now(),
    )
    expect(desktop.locator("#job-label")).to_contain_text("Generating… 3 of 10")
    width = desktop.evaluate("document.getElementById('job-bar').getBoundingClientRect().width")
    assert width > 300  # the stylesheet's full-width bar, not the browser's default
    record("job page")

    for url in (
        "/admin/cards/topupcard/generate/",
        "/admin/cards/topupcard/mass-edit/",
        f"/admin/cards/cardbatch/{batch.pk}/change/",
        "/admin/cards/cardevent/",
        "/admin/reports/liabilityreport/",
        f"/admin/wallets/balance/{balance.pk}/change/",
        f"/admin/wallets/balance/{balance.pk}/validity/",
        "/panel/login/",
    ):
        visit(url)
        record(url)

    # The API docs: their stylesheet is a file now (an inline <style> would be blocked).
    visit("/rsgateway/docs/")
    docs_width = desktop.evaluate("getComputedStyle(document.body).maxWidth")
    record("/rsgateway/docs/")
    screenshot(desktop, "csp-api-docs")

    assert all("script-src 'self'" in p or "default-src 'none'" in p for p in policies)
    assert {url: found for url, found in violations.items() if found} == {}
    assert CardEvent.objects.filter(kind=CardEventKind.PIN_REVEALED).count() == 1
    assert docs_width == "960px"  # 60rem from static/wallets/api_docs.css
