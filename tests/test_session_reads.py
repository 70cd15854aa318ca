"""Every request's session and user, read by key with prepared statements on PostgreSQL
(config.sessions, config.auth), keep Django's rules: an expired session, a deactivated user or
a changed password is logged out; a live session opens the page."""

import datetime as dt

import pytest
from django.contrib.sessions.models import Session
from django.utils import timezone

from subscribers.models import Subscriber
from tests.panel.conftest import grant_redeem

pytestmark = [pytest.mark.django_db]

DASHBOARD = "/panel/"


@pytest.fixture
def logged_in(client, subscriber, main_balance):
    grant_redeem(subscriber.user)
    client.force_login(subscriber.user)
    return client, subscriber.user


def test_a_live_session_opens_the_panel(logged_in):
    client, user = logged_in

    response = client.get(DASHBOARD)

    assert response.status_code == 200
    assert response.wsgi_request.user == user


def _logged_out(response) -> bool:
    return response.status_code == 302 and "/login/" in response["Location"]


def test_an_expired_session_is_logged_out(logged_in):
    client, _ = logged_in
    Session.objects.update(expire_date=timezone.now() - dt.timedelta(seconds=1))

    assert _logged_out(client.get(DASHBOARD))


def test_a_deactivated_user_is_logged_out(logged_in):
    client, user = logged_in
    user.is_active = False
    user.save()

    assert _logged_out(client.get(DASHBOARD))


def test_a_changed_password_logs_the_other_sessions_out(logged_in):
    client, user = logged_in
    user.set_password("a-new-password-42")
    user.save()

    assert _logged_out(client.get(DASHBOARD))


def test_a_deleted_user_is_logged_out(logged_in):
    client, user = logged_in
    Subscriber.objects.filter(user=user).update(user=None)
    user.delete()

    assert _logged_out(client.get(DASHBOARD))
