import base64

import pytest
from django.core.exceptions import ImproperlyConfigured

from cards import pins


@pytest.mark.parametrize("pin", ["79927398713", "452428293859", "0000000000"])
def test_luhn_accepts_valid_codes(pin):
    assert pins.luhn_valid(pin)


@pytest.mark.parametrize("pin", ["79927398710", "452428293854", "12a4", "", "٤٥٢٤٢٨٢٩٣٨٥٩"])
def test_luhn_rejects_typos_and_non_ascii_digits(pin):
    assert not pins.luhn_valid(pin)


def test_a_single_mistyped_digit_is_always_caught():
    pin = pins.generate_pin(12)
    for position in range(12):
        for digit in "0123456789":
            if digit != pin[position]:
                typo = pin[:position] + digit + pin[position + 1 :]
                assert not pins.luhn_valid(typo)


@pytest.mark.parametrize("length", [5, 12, 20])
def test_generated_pins_have_the_length_and_a_valid_check_digit(length):
    generated = {pins.generate_pin(length) for _ in range(200)}

    assert all(len(p) == length and p.isdigit() and pins.luhn_valid(p) for p in generated)
    assert len(generated) > 150  # random, not a constant


def test_leading_zeros_are_possible():
    assert any(pins.generate_pin(5).startswith("0") for _ in range(2000))


def test_normalize_ignores_spaces_and_dashes():
    assert pins.normalize_pin(" 4524 2829-3859\t") == "452428293859"


def test_digest_is_keyed(settings):
    first = pins.pin_digest("452428293859")
    settings.PIN_DIGEST_KEYS = ["another-key"]

    assert pins.pin_digest("452428293859") != first
    assert len(first) == 32


def test_old_digest_key_still_finds_cards_after_rotation(settings):
    old = pins.pin_digest("452428293859")
    settings.PIN_DIGEST_KEYS = ["new-key", *settings.PIN_DIGEST_KEYS]

    assert old in pins.pin_digests("452428293859")
    assert pins.pin_digest("452428293859") != old


def test_encryption_round_trip_and_no_clear_text():
    blob = pins.encrypt_pin("012345678903")

    assert b"012345678903" not in blob
    assert pins.decrypt_pin(blob) == "012345678903"
    assert pins.encrypt_pin("012345678903") != blob  # fresh nonce each time


def test_rotated_encryption_key_decrypts_old_and_encrypts_new(settings):
    old_blob = pins.encrypt_pin("012345678903")
    new_key = base64.urlsafe_b64encode(b"n" * 32).decode().rstrip("=")
    settings.PIN_ENCRYPTION_KEYS = [f"k2:{new_key}", *settings.PIN_ENCRYPTION_KEYS]

    assert pins.decrypt_pin(old_blob) == "012345678903"
    assert pins.encryption_key_id(pins.encrypt_pin("1")) == "k2"


def test_missing_or_malformed_keys_are_a_clear_configuration_error(settings):
    settings.PIN_ENCRYPTION_KEYS = ["k1:tooshort"]
    with pytest.raises(ImproperlyConfigured, match="32 random bytes"):
        pins.encrypt_pin("1")
    settings.PIN_DIGEST_KEYS = []
    with pytest.raises(ImproperlyConfigured, match="PIN_DIGEST_KEYS"):
        pins.pin_digest("1")
