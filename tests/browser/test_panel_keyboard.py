"""The client panel with the keyboard alone (issue 18): log in, redeem a wrong code, then a good
one, change the password. Only Tab, Shift+Tab, Enter and typing; no click. At each step the
focus is where a screen reader user needs it, tied to what the page says, and its ring is
visible (3:1 against what surrounds it, WCAG 1.4.11 / 2.4.7). Screenshots under
tests/browser/screenshots/keyboard-*.png."""

from decimal import Decimal

import pytest

from cards import pins
from tests.browser.test_panel import rose  # noqa: F401 - the subscriber fixture
from tests.factories import TopUpCardFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FOCUSED = """() => {
    const element = document.activeElement;
    const rgb = (color) => (color.match(/[\\d.]+/g) || []).map(Number);
    const luminance = ([r, g, b]) => {
        const linear = (c) => (c /= 255) <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
        return 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b);
    };
    // The ring is drawn outside the element (outline-offset): it stands on the parent's colour.
    let behind = element.parentElement;
    while (behind && rgb(getComputedStyle(behind).backgroundColor)[3] === 0) {
        behind = behind.parentElement;
    }
    const style = getComputedStyle(element);
    const ring = luminance(rgb(style.outlineColor));
    const ground = luminance(rgb(getComputedStyle(behind || document.body).backgroundColor));
    const contrast = (Math.max(ring, ground) + 0.05) / (Math.min(ring, ground) + 0.05);
    const describedBy = (element.getAttribute("aria-describedby") || "").split(/\\s+/);
    return {
        id: element.id,
        tag: element.tagName.toLowerCase(),
        text: element.innerText || "",
        invalid: element.getAttribute("aria-invalid"),
        description: describedBy.map((id) => document.getElementById(id))
            .filter(Boolean).map((e) => e.innerText).join(" | "),
        ring: style.outlineStyle === "none" ? 0 : parseFloat(style.outlineWidth),
        contrast: Math.round(contrast * 100) / 100,
    };
}"""


def focused(page) -> dict:
    return page.evaluate(FOCUSED)


def landed(page) -> dict:
    """The focus once the page has placed it: Chromium applies `autofocus` at its next rendering
    update, which may come after the load event (a person sees the first frame with it). Waits
    for the focus to leave the page's body, at most 5 s."""
    page.wait_for_function(
        "() => document.activeElement && document.activeElement !== document.body",
        timeout=5000,
    )
    return focused(page)


def assert_ring_visible(state: dict) -> None:
    assert state["ring"] >= 2, state
    assert state["contrast"] >= 3, state


def submit(page) -> None:
    """Enter in a form's last box, and the page it leads to."""
    with page.expect_navigation():
        page.keyboard.press("Enter")


def tab_to(page, name: str, *, key: str = "Tab", presses: int = 30) -> dict:
    """Press Tab (or Shift+Tab) until the focused element's text or id is `name`."""
    for _ in range(presses):
        page.keyboard.press(key)
        state = focused(page)
        if name in (state["text"].strip(), state["id"]):
            return state
    raise AssertionError(f"{name!r} never took the focus")


def test_the_panel_with_the_keyboard_alone(desktop, rose, screenshot):  # noqa: F811
    page = desktop
    card = TopUpCardFactory(reseller=rose.reseller, amount=Decimal("25.00"))
    page.goto("/panel/")
    page.wait_for_url("**/panel/login/?next=/panel/")

    # Log in: the username box has the focus as the page opens.
    assert landed(page)["id"] == "id_username"
    assert_ring_visible(focused(page))
    page.keyboard.type("rose")
    page.keyboard.press("Tab")
    assert focused(page)["id"] == "id_password"
    page.keyboard.type("secret")
    screenshot(page, "keyboard-1-login")
    submit(page)
    assert page.url.endswith("/panel/")

    # A wrong code: after the redirect the focus is back on the field, which says it is wrong.
    assert landed(page)["id"] == "id_code"
    page.keyboard.type(pins.generate_pin(12))
    submit(page)
    state = landed(page)
    assert state["id"] == "id_code"
    assert state["invalid"] == "true"
    assert state["description"].startswith("No voucher matches this code.")
    assert_ring_visible(state)
    screenshot(page, "keyboard-2-wrong-code")

    # The good code: the focus moves to the message saying what was added.
    page.keyboard.type(" ".join(card.pin[i : i + 4] for i in range(0, len(card.pin), 4)))
    submit(page)
    state = landed(page)
    assert state["tag"] == "li"
    assert state["text"] == (
        f"Voucher {card.serial} redeemed: 25.00 USD added. Your balance is now 25.00 USD."
    )
    assert_ring_visible(state)
    screenshot(page, "keyboard-3-redeemed")
    # and the field, one Tab on, is no longer marked wrong.
    page.keyboard.press("Tab")
    assert focused(page)["id"] == "id_code" and focused(page)["invalid"] is None

    # To the Password page through the top bar: its links show a white ring on the blue bar.
    state = tab_to(page, "Password", key="Shift+Tab")
    assert_ring_visible(state)
    screenshot(page, "keyboard-4-top-bar-focus")
    page.keyboard.press("Enter")
    page.wait_for_url("**/panel/password/")

    # A wrong old password: the focus is on the first field in error, tied to its error.
    assert landed(page)["id"] == "id_old_password"
    page.keyboard.type("wrong")
    page.keyboard.press("Tab")
    page.keyboard.type("plum-Orchard-41")
    page.keyboard.press("Tab")
    page.keyboard.type("plum-Orchard-41")
    submit(page)
    state = landed(page)
    assert state["id"] == "id_old_password" and state["invalid"] == "true"
    assert "Your old password was entered incorrectly" in state["description"]
    screenshot(page, "keyboard-5-password-error")

    page.keyboard.type("secret")
    page.keyboard.press("Tab")
    assert "Your password can’t be too similar" in focused(page)["description"]
    page.keyboard.type("plum-Orchard-41")
    page.keyboard.press("Tab")
    page.keyboard.type("plum-Orchard-41")
    page.keyboard.press("Enter")
    page.wait_for_url("**/panel/password/done/")
    screenshot(page, "keyboard-6-password-changed")

    rose.balance.refresh_from_db()
    rose.user.refresh_from_db()
    assert rose.balance.amount == Decimal("25.00")
    assert rose.user.check_password("plum-Orchard-41")
