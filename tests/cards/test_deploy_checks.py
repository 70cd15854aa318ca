"""`manage.py check --deploy` refuses PIN keys that would fail only later, at generation or
reveal: too short, malformed, repeated (cards/checks.py). It never prints a key."""

import base64
import secrets

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError


def encryption_key(key_id: str = "k1", raw: bytes | None = None) -> str:
    raw = secrets.token_bytes(32) if raw is None else raw
    return f"{key_id}:" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


GOOD_DIGEST = secrets.token_urlsafe(48)
GOOD_ENCRYPTION = encryption_key("k2")


def check_deploy() -> str:
    """The errors `check --deploy` stops on, as it prints them ('' when it passes)."""
    try:
        call_command("check", "--deploy", "--tag", "security")
    except SystemCheckError as exc:
        return str(exc)
    return ""


def test_good_keys_pass(settings):
    settings.PIN_DIGEST_KEYS = [GOOD_DIGEST, secrets.token_hex(32)]
    settings.PIN_ENCRYPTION_KEYS = [GOOD_ENCRYPTION, encryption_key("k1")]

    assert "cards.E" not in check_deploy()


@pytest.mark.parametrize(
    ("digest_keys", "encryption_keys", "error"),
    [
        (["short-but-secret"], [GOOD_ENCRYPTION], "cards.E002"),
        ([GOOD_DIGEST, "a" * 64], [GOOD_ENCRYPTION], "cards.E002"),
        ([GOOD_DIGEST, GOOD_DIGEST], [GOOD_ENCRYPTION], "cards.E003"),
        ([], [GOOD_ENCRYPTION], "cards.E001"),
        ([GOOD_DIGEST], [], "cards.E004"),
        ([GOOD_DIGEST], [base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()], "cards.E005"),
        ([GOOD_DIGEST], [encryption_key(raw=secrets.token_bytes(16))], "cards.E005"),
        ([GOOD_DIGEST], ["k1:" + "!" * 43], "cards.E005"),
        ([GOOD_DIGEST], ["k 1:" + GOOD_ENCRYPTION.split(":")[1]], "cards.E005"),
        ([GOOD_DIGEST], [encryption_key(raw=bytes(32))], "cards.E006"),
        ([GOOD_DIGEST], [encryption_key("k1"), encryption_key("k1")], "cards.E007"),
    ],
    ids=[
        "digest-too-short",
        "digest-not-random",
        "digest-twice",
        "digest-none",
        "encryption-none",
        "encryption-no-id",
        "encryption-16-bytes",
        "encryption-not-base64url",
        "encryption-bad-id",
        "encryption-all-zero",
        "encryption-id-twice",
    ],
)
def test_bad_keys_stop_check_deploy_without_printing_them(
    settings, digest_keys, encryption_keys, error
):
    settings.PIN_DIGEST_KEYS = digest_keys
    settings.PIN_ENCRYPTION_KEYS = encryption_keys

    output = check_deploy()

    assert error in output
    for item in digest_keys + encryption_keys:
        secret = item.partition(":")[2] or item
        assert secret not in output


def test_plain_check_leaves_keys_to_the_deploy_check(settings):
    """Development and test settings carry short published keys; only --deploy judges them."""
    settings.PIN_DIGEST_KEYS = ["short"]

    call_command("check")
