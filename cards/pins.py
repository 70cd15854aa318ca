"""PIN secrets: generation with a Luhn check digit, keyed digest for lookup, encrypted copy.

Keys live in settings (from the environment), never in the database. The first key of each
list is current; the others are kept so cards made before a rotation still work.
"""

import base64
import hmac
import os
import re
import secrets
from functools import lru_cache

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

_SEPARATORS = re.compile(r"[\s\-]+")
_NONCE_BYTES = 12

# Luhn doubling of one digit, with the digits of the result summed: 7 -> 14 -> 5.
_LUHN_DOUBLED = str.maketrans("0123456789", "0246813579")


def luhn_check_digit(payload: str) -> str:
    """The digit to append to `payload` so that the whole string passes the Luhn check.

    Every second digit from the right of the payload is doubled; summing ASCII codes in C
    (bytes) instead of a Python loop keeps a million PINs cheap.
    """
    reverse = payload[::-1]
    doubled = reverse[0::2].translate(_LUHN_DOUBLED)
    total = sum(doubled.encode()) + sum(reverse[1::2].encode()) - 48 * len(payload)
    return str(-total % 10)


def luhn_valid(pin: str) -> bool:
    return (
        len(pin) >= 2 and pin.isascii() and pin.isdigit() and luhn_check_digit(pin[:-1]) == pin[-1]
    )


def normalize_pin(typed: str) -> str:
    """What a person typed, without the spaces and dashes used when printing PINs."""
    return _SEPARATORS.sub("", typed or "")


def generate_pin(length: int) -> str:
    """A uniform random PIN from the OS CSPRNG: length-1 random digits and a Luhn check digit."""
    payload = f"{secrets.randbelow(10 ** (length - 1)):0{length - 1}d}"
    return payload + luhn_check_digit(payload)


def pin_space(length: int) -> int:
    """How many distinct valid PINs of this length exist (the check digit adds none)."""
    return 10 ** (length - 1)


@lru_cache(maxsize=8)
def _digest_keys(raw: tuple[str, ...]) -> tuple[bytes, ...]:
    if not raw:
        raise ImproperlyConfigured("PIN_DIGEST_KEYS is empty.")
    return tuple(key.encode() for key in raw)


@lru_cache(maxsize=8)
def _encryption_keys(raw: tuple[str, ...]) -> tuple[tuple[bytes, AESGCM], ...]:
    if not raw:
        raise ImproperlyConfigured("PIN_ENCRYPTION_KEYS is empty.")
    keys = []
    for item in raw:
        key_id, _, encoded = item.partition(":")
        try:
            key = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        except ValueError as exc:
            raise ImproperlyConfigured(
                "PIN_ENCRYPTION_KEYS holds a key that is not base64."
            ) from exc
        if not key_id or len(key_id.encode()) > 255 or len(key) != 32:
            raise ImproperlyConfigured(
                "Each PIN_ENCRYPTION_KEYS item is 'key_id:base64url of 32 random bytes'."
            )
        keys.append((key_id.encode(), AESGCM(key)))
    return tuple(keys)


def digest_keys() -> tuple[bytes, ...]:
    return _digest_keys(tuple(settings.PIN_DIGEST_KEYS))


def pin_digest(pin: str, key: bytes | None = None) -> bytes:
    """HMAC-SHA256 of the PIN under the current digest key (or the given one)."""
    return hmac.digest(key or digest_keys()[0], pin.encode(), "sha256")


def pin_digests(pin: str) -> list[bytes]:
    """The PIN's digest under every configured key: finds cards made before a key rotation."""
    return [hmac.digest(key, pin.encode(), "sha256") for key in digest_keys()]


def encrypt_pin(pin: str) -> bytes:
    """AES-256-GCM under the current key: len(key_id) | key_id | nonce | ciphertext+tag."""
    key_id, aead = _encryption_keys(tuple(settings.PIN_ENCRYPTION_KEYS))[0]
    nonce = os.urandom(_NONCE_BYTES)
    return bytes((len(key_id),)) + key_id + nonce + aead.encrypt(nonce, pin.encode(), key_id)


def pin_encrypter():
    """`encrypt_pin` with the current key looked up once: for encrypting many PINs."""
    key_id, aead = _encryption_keys(tuple(settings.PIN_ENCRYPTION_KEYS))[0]
    prefix = bytes((len(key_id),)) + key_id
    urandom = os.urandom

    def encrypt(pin: str) -> bytes:
        nonce = urandom(_NONCE_BYTES)
        return prefix + nonce + aead.encrypt(nonce, pin.encode(), key_id)

    return encrypt


def encryption_key_id(blob: bytes) -> str:
    blob = bytes(blob)
    return blob[1 : 1 + blob[0]].decode()


def decrypt_pin(blob: bytes) -> str:
    blob = bytes(blob)
    id_length = blob[0]
    key_id = blob[1 : 1 + id_length]
    nonce = blob[1 + id_length : 1 + id_length + _NONCE_BYTES]
    for candidate_id, aead in _encryption_keys(tuple(settings.PIN_ENCRYPTION_KEYS)):
        if candidate_id == key_id:
            return aead.decrypt(nonce, blob[1 + id_length + _NONCE_BYTES :], key_id).decode()
    raise ImproperlyConfigured("The key this PIN was encrypted with is no longer configured.")


def encrypt_data(data: bytes, *, context: bytes) -> bytes:
    """Bytes that hold PINs (an uploaded import file), AES-256-GCM under the current PIN key in
    `encrypt_pin`'s layout; `context` (what the data is) is authenticated with it, so the blob
    cannot be read back as anything else."""
    key_id, aead = _encryption_keys(tuple(settings.PIN_ENCRYPTION_KEYS))[0]
    nonce = os.urandom(_NONCE_BYTES)
    return bytes((len(key_id),)) + key_id + nonce + aead.encrypt(nonce, data, key_id + context)


def decrypt_data(blob: bytes, *, context: bytes) -> bytes:
    id_end = 1 + blob[0]
    key_id = blob[1:id_end]
    keys = dict(_encryption_keys(tuple(settings.PIN_ENCRYPTION_KEYS)))
    if key_id not in keys:
        raise ImproperlyConfigured("The key this data was encrypted with is no longer configured.")
    nonce_end = id_end + _NONCE_BYTES
    return keys[key_id].decrypt(blob[id_end:nonce_end], blob[nonce_end:], key_id + context)


def format_pin(pin: str) -> str:
    """Groups of four, as printed on a card: 4524 2829 3854."""
    return " ".join(pin[i : i + 4] for i in range(0, len(pin), 4))


def decryptor():
    """A fast `decrypt_pin` for bulk work (exports): the keys are looked up once."""
    keys = dict(_encryption_keys(tuple(settings.PIN_ENCRYPTION_KEYS)))

    def decrypt(blob: bytes) -> str:
        id_end = 1 + blob[0]
        aead = keys.get(blob[1:id_end])
        if aead is None:
            raise ImproperlyConfigured(
                "The key this PIN was encrypted with is no longer configured."
            )
        nonce_end = id_end + _NONCE_BYTES
        return aead.decrypt(blob[id_end:nonce_end], blob[nonce_end:], blob[1:id_end]).decode()

    return decrypt
