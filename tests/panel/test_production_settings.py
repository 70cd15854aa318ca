"""The production settings pass Django's deployment checks and protect the panel's session."""

import base64
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

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
