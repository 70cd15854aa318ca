"""An operator sets a subscriber's panel language in the admin: only a language the panel
speaks, or the browser's (docs/panel.md, "Languages")."""

import pytest
from django.conf import settings

from subscribers.models import Subscriber
from tests.factories import SubscriberFactory

pytestmark = pytest.mark.django_db


def _form(subscriber, **changes):
    return {
        "name": subscriber.name,
        "user": subscriber.user_id or "",
        "reseller": subscriber.reseller_id or "",
        "language": subscriber.language,
        **changes,
    }


def test_the_change_form_offers_the_panels_languages_and_the_browsers(admin_client):
    subscriber = SubscriberFactory()

    page = admin_client.get(f"/admin/subscribers/subscriber/{subscriber.pk}/change/")

    content = page.content.decode()
    assert '<select name="language"' in content
    assert "The browser&#x27;s language" in content
    for code, name in settings.LANGUAGES:
        assert f'<option value="{code}">{name}</option>' in content


def test_an_operator_sets_spanish_then_back_to_the_browsers(admin_client):
    subscriber = SubscriberFactory()
    url = f"/admin/subscribers/subscriber/{subscriber.pk}/change/"

    assert admin_client.post(url, _form(subscriber, language="es")).status_code == 302
    assert Subscriber.objects.get(pk=subscriber.pk).language == "es"
    subscriber.refresh_from_db()
    assert admin_client.post(url, _form(subscriber, language="")).status_code == 302
    assert Subscriber.objects.get(pk=subscriber.pk).language == ""


def test_a_language_the_panel_does_not_speak_is_refused_and_nothing_changes(admin_client):
    subscriber = SubscriberFactory(language="fr")

    page = admin_client.post(
        f"/admin/subscribers/subscriber/{subscriber.pk}/change/",
        _form(subscriber, language="de", name="Renamed"),
    )

    assert page.status_code == 200
    assert "Select a valid choice. de is not one of the available choices." in (
        page.content.decode()
    )
    assert (
        Subscriber.objects.filter(pk=subscriber.pk, language="fr").exclude(name="Renamed").exists()
    )
