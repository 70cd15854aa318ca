"""A locked login in the browser: the panel's own page, saying until when."""

import pytest

from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_locked_panel_login_says_until_when_in_the_panels_look(phone, screenshot):
    UserFactory(username="rose")
    phone.goto("/panel/login/")
    for n in range(5):
        phone.get_by_label("Username").fill("rose")
        phone.get_by_label("Password").fill(f"wrong-{n}")
        phone.get_by_role("button", name="Log in").click()
        phone.wait_for_load_state()

    notice = phone.get_by_role("alert")
    assert "paused until" in notice.inner_text()
    assert phone.get_by_label("Username").input_value() == "rose"
    screenshot(phone, "panel-phone-login-locked")

    phone.get_by_label("Password").fill("secret")
    phone.get_by_role("button", name="Log in").click()
    phone.wait_for_load_state()
    assert "paused until" in phone.get_by_role("alert").inner_text()
    assert phone.url.endswith("/panel/login/")
