"""The lockout holds across app server processes and parallel requests (PostgreSQL).

Two gunicorn processes on different loopback ports serve the same database: failures counted
by one lock the subscriber out of the other, because the count lives in the database.
"""

import http.cookiejar
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from django.db import connection, connections

from cards import pins
from cards.exceptions import CardNotFound, RedemptionLocked
from cards.models import CardEvent
from cards.models.events import CardEventKind
from cards.services.redemption import card_redeem
from tests.factories import BalanceFactory, SubscriberFactory, TopUpCardFactory, WalletFactory
from tests.panel.conftest import grant_redeem

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _database_url() -> str:
    db = connection.settings_dict
    user = urllib.parse.quote(db["USER"])
    password = urllib.parse.quote(db["PASSWORD"])
    return f"postgres://{user}:{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def _start_server(port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": _database_url(),
    }
    return subprocess.Popen(  # noqa: S603 - a fixed command line
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _wait_until_serving(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {process.stderr.read().decode()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"gunicorn on port {port} did not start")


@pytest.fixture
def two_servers():
    ports = [_free_port(), _free_port()]
    processes = [_start_server(port) for port in ports]
    try:
        for port, process in zip(ports, processes, strict=True):
            _wait_until_serving(port, process)
        yield [f"http://127.0.0.1:{port}" for port in ports]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            process.stderr.close()


class Browser:
    """A cookie-keeping HTTP client; cookies are per host, so both ports share the session."""

    def __init__(self):
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def csrf(self) -> str:
        return next(cookie.value for cookie in self.jar if cookie.name == "csrftoken")

    def get(self, url: str) -> str:
        with self.opener.open(url, timeout=30) as response:
            return response.read().decode()

    def post(self, url: str, data: dict) -> str:
        body = urllib.parse.urlencode({**data, "csrfmiddlewaretoken": self.csrf()}).encode()
        with self.opener.open(url, data=body, timeout=30) as response:
            return response.read().decode()


def _rose():
    subscriber = SubscriberFactory(name="Rose Orig")
    BalanceFactory(
        wallet=WalletFactory(subscription__subscriber=subscriber), resource_id=12, is_main=True
    )
    grant_redeem(subscriber.user)
    return subscriber


def test_failures_on_two_app_servers_add_up_to_one_lockout(two_servers):
    subscriber = _rose()
    card = TopUpCardFactory(reseller=subscriber.reseller)
    first, second = two_servers
    browser = Browser()
    browser.get(f"{first}/panel/login/")
    dashboard = browser.post(
        f"{first}/panel/login/", {"username": subscriber.user.username, "password": "secret"}
    )
    assert f"Hello, {subscriber.name}" in dashboard

    pages = [
        browser.post(f"{server}/panel/redeem/", {"code": pins.generate_pin(12)})
        for server in (first, first, first, second, second)
    ]
    assert all("No voucher matches this code." in page for page in pages)

    for server in (first, second):
        page = browser.post(f"{server}/panel/redeem/", {"code": card.pin})
        assert re.search(r"Redemption is locked until \d{4}-\d\d-\d\d \d\d:\d\d", page)
    card.refresh_from_db()
    assert card.activated_at is None
    reasons = list(
        CardEvent.objects.filter(kind=CardEventKind.REDEEM_FAILED)
        .order_by("id")
        .values_list("changes__reason", flat=True)
    )
    assert reasons == ["not_found"] * 5 + ["locked"] * 2


def test_parallel_wrong_codes_never_count_past_the_limit():
    subscriber = _rose()
    balance = subscriber.subscriptions.get().wallet.balances.get()
    outcomes: list[str] = []
    start = threading.Barrier(10)

    def guess():
        try:
            start.wait()
            card_redeem(
                pin=pins.generate_pin(12),
                balance=balance,
                subscriber=subscriber,
                ip_address="192.0.2.1",
            )
        except (CardNotFound, RedemptionLocked) as error:
            outcomes.append(error.code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=guess) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["locked"] * 5 + ["not_found"] * 5
