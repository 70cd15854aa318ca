"""The production settings pass Django's deployment checks and protect the panel's session."""

import base64
import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _production_env() -> dict:
    # The test process's own settings (config.settings.local) put development values in
    # os.environ: start from a clean slate.
    clean = ("DJANGO_", "PIN_", "DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "TRUSTED_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(clean)}
    key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    return {
        **env,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "topup.example",
        "PIN_DIGEST_KEYS": secrets.token_urlsafe(48),
        "PIN_ENCRYPTION_KEYS": f"k1:{key}",
        "DATABASE_URL": "sqlite:///:memory:",
    }


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603 - fixed command lines
        [sys.executable, *args],
        cwd=ROOT,
        env=_production_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_production_passes_the_deployment_checks():
    result = _run("manage.py", "check", "--deploy", "--fail-level", "WARNING")

    assert result.returncode == 0, result.stdout + result.stderr
    # Not a single warning, and none silenced (SILENCED_SYSTEM_CHECKS is not set).
    assert result.stdout.strip() == "System check identified no issues (0 silenced).", (
        result.stdout + result.stderr
    )


def test_production_keeps_database_connections_between_requests():
    """A connection per request would cost its set-up each time and lose the prepared
    statements of the REST hot path."""
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "d = settings.DATABASES['default']; print(d['CONN_MAX_AGE'], d['CONN_HEALTH_CHECKS'])"
    )

    result = _run("-c", code)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["60", "True"]


def test_production_session_and_csrf_cookies_are_locked_down():
    names = [
        "SESSION_COOKIE_SECURE",
        "SESSION_COOKIE_HTTPONLY",
        "SESSION_COOKIE_SAMESITE",
        "SESSION_COOKIE_NAME",
        "CSRF_COOKIE_SECURE",
        "CSRF_COOKIE_HTTPONLY",
        "CSRF_COOKIE_NAME",
        "SECURE_SSL_REDIRECT",
        "X_FRAME_OPTIONS",
        "TRUSTED_PROXY_COUNT",
        "DEBUG",
    ]
    code = (
        "import django, json; django.setup(); from django.conf import settings; "
        f"print(json.dumps({{n: getattr(settings, n) for n in {names!r}}}))"
    )

    result = _run("-c", code)

    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values == {
        "SESSION_COOKIE_SECURE": True,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_NAME": "__Host-sessionid",
        "CSRF_COOKIE_SECURE": True,
        "CSRF_COOKIE_HTTPONLY": True,
        "CSRF_COOKIE_NAME": "__Host-csrftoken",
        "SECURE_SSL_REDIRECT": True,
        "X_FRAME_OPTIONS": "DENY",
        "TRUSTED_PROXY_COUNT": 1,
        "DEBUG": False,
    }


# --- What a browser receives from the production settings -------------------------------------

# Run under config.settings.production in a fresh process: a throwaway in-memory database, a
# superuser, then requests as the reverse proxy forwards them (HTTPS, the configured host).
_REQUESTS = r"""
import json, django
django.setup()
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

call_command("migrate", verbosity=0)
call_command("createcachetable", verbosity=0)
get_user_model().objects.create_superuser("root", "root@example.com", "a-long-pass-phrase-9")
https = {"HTTP_X_FORWARDED_PROTO": "https"}
client = Client(HTTP_HOST="topup.example")
replies = {}

def record(name, response):
    replies[name] = {
        "status": response.status_code,
        "headers": dict(response.headers),
        "cookies": {
            key: {**{k: str(v) for k, v in morsel.items() if v}, "value_set": bool(morsel.value)}
            for key, morsel in response.cookies.items()
        },
        "body": response.content.decode() if "html" in response.get("Content-Type", "") else "",
    }

record("admin-login", client.get("/admin/login/", **https))
record(
    "admin-login-post",
    client.post(
        "/admin/login/?next=/admin/",
        {"username": "root", "password": "a-long-pass-phrase-9", "next": "/admin/"},
        **https,
    ),
)
record("admin-index", client.get("/admin/", **https))
record("card-list", client.get("/admin/cards/topupcard/", **https))
record("report", client.get("/admin/reports/liabilityreport/", **https))
record("panel-login", Client(HTTP_HOST="topup.example").get("/panel/login/", **https))
record("api-docs", client.get("/rsgateway/docs/", **https))
record("api-openapi", client.get("/rsgateway/openapi.json", **https))
record(
    "api-topup",
    Client(HTTP_HOST="topup.example").put(
        "/rsgateway/data/v3/subscription/1/wallet/1/topup", "<x/>",
        content_type="application/xml", **https,
    ),
)
record("plain-http", Client(HTTP_HOST="topup.example").get("/admin/"))
print(json.dumps(replies))
"""


@pytest.fixture(scope="module")
def production_replies() -> dict:
    result = _run("-c", _REQUESTS)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\ssrc=)[^>]*>")
INLINE_STYLE = re.compile(r"<style[\s>]|\sstyle=")
HTML_PAGES = ["admin-login", "admin-index", "card-list", "report", "panel-login", "api-docs"]


@pytest.mark.parametrize("name", [*HTML_PAGES, "admin-login-post", "api-openapi", "api-topup"])
def test_production_responses_carry_the_security_headers(production_replies, name):
    reply = production_replies[name]
    headers = reply["headers"]

    assert reply["status"] in (200, 302, 401), reply["status"]
    assert headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
    csp = headers["Content-Security-Policy"]
    policy = dict(directive.strip().split(" ", 1) for directive in csp.split(";"))
    assert policy["frame-ancestors"] == "'none'" and policy["form-action"] == "'self'"
    assert "unsafe" not in csp  # no inline script or style, no eval
    assert policy.get("script-src", policy["default-src"]) in ("'self'", "'none'")


@pytest.mark.parametrize("name", HTML_PAGES)
def test_production_pages_hold_nothing_the_policy_would_block(production_replies, name):
    """An inline script, style or event handler would be dropped by the browser: a broken page."""
    reply = production_replies[name]
    html = reply["body"]

    assert reply["status"] == 200 and "</html>" in html
    assert not INLINE_SCRIPT.findall(html)
    assert not INLINE_STYLE.findall(html)
    assert not re.findall(r"<[^>]+\son[a-z]+\s*=", html)  # onclick=…
    assert "javascript:" not in html
    assert not re.findall(r"(?:src|href)=[\"']?(?:https?:)?//", html)  # nothing from elsewhere


def test_production_session_and_csrf_cookies_are_sent_secure(production_replies):
    login = production_replies["admin-login"]["cookies"]["__Host-csrftoken"]
    session = production_replies["admin-login-post"]["cookies"]["__Host-sessionid"]

    assert production_replies["admin-login-post"]["status"] == 302  # logged in
    assert login["secure"] == "True" and login["path"] == "/" and login["samesite"] == "Lax"
    assert session["secure"] == "True" and session["httponly"] == "True"
    assert session["path"] == "/" and session["samesite"] == "Lax"
    assert "domain" not in session  # "__Host-": this host only
    assert production_replies["admin-index"]["status"] == 200


def test_production_sends_plain_http_to_https(production_replies):
    reply = production_replies["plain-http"]

    assert reply["status"] == 301
    assert reply["headers"]["Location"] == "https://topup.example/admin/"


def test_production_api_replies_are_never_cached(production_replies):
    reply = production_replies["api-topup"]

    assert reply["status"] == 401
    assert reply["headers"]["Cache-Control"] == "no-store"
