"""OpenPGP through Debian's GnuPG (python-gnupg): the printers' public keys and the print files
encrypted to them (docs/printing.md). No cryptography of our own.

Every operation runs gpg in a throwaway GNUPGHOME, a private directory (mode 0700) made for it
and removed after it, that only ever holds public keys: a printer's key is imported there, used
and forgotten. No secret key is ever imported (`key_check` refuses a private key block before
anything is imported), so gpg never needs its agent, and is told not to start one.

A print file's clear text never touches the disk: the caller's rows go through a bounded queue
into gpg's standard input, and gpg writes only the ciphertext (to a file in the same private
directory, which the caller reads back before the directory goes).
"""

import contextlib
import datetime as dt
import logging
import queue
import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import gnupg
from django.conf import settings
from django.utils import timezone

from .exceptions import PrintError

logger = logging.getLogger(__name__)

GPG_BINARY = "gpg"
# Never start gpg-agent or dirmngr, never look a key up on the network: only public keys are
# used here, and a printer's key is exactly the one the operator pasted.
_GPG_OPTIONS = ["--no-autostart", "--no-auto-key-retrieve", "--no-auto-key-locate"]

# What "weak" means (docs/printing.md, "Which keys are refused"): OpenPGP public key algorithm
# ids (RFC 4880 §9.1, RFC 9580 §9.1) and the smallest RSA modulus taken.
_RSA = {"1", "2", "3"}
_ELGAMAL = {"16", "20"}
_DSA = {"17"}
_ECDH, _ECDSA, _EDDSA = "18", "19", "22"
_CURVES = {"ed25519", "cv25519", "curve25519", "nistp256", "nistp384", "nistp521"}
MIN_RSA_BITS = 3072


@dataclass(frozen=True)
class KeyInfo:
    fingerprint: str
    description: str
    """The primary key's algorithm and size, e.g. "RSA 4096" or "ed25519"."""
    expires_at: dt.datetime | None
    user_ids: tuple[str, ...]


def group_fingerprint(fingerprint: str) -> str:
    """In groups of four, as gpg prints it and as a person compares it on the phone."""
    return " ".join(fingerprint[i : i + 4] for i in range(0, len(fingerprint), 4))


@contextlib.contextmanager
def _private_home() -> Iterator[Path]:
    """A new GNUPGHOME of mode 0700, removed with everything in it afterwards."""
    home = Path(tempfile.mkdtemp(prefix="topup-gpg-", dir=settings.PRINT_TEMP_DIR))
    try:
        yield home
    finally:
        _remove(home)


def _remove(home: Path) -> None:
    shutil.rmtree(home, ignore_errors=True)


def _gpg(home: Path) -> gnupg.GPG:
    return gnupg.GPG(gpgbinary=GPG_BINARY, gnupghome=str(home), options=list(_GPG_OPTIONS))


def _algorithm(record: dict) -> str:
    algo, curve, length = record.get("algo", ""), record.get("curve", ""), record.get("length", "")
    if algo in _RSA:
        return f"RSA {length}"
    if algo in _DSA:
        return f"DSA {length}"
    if algo in _ELGAMAL:
        return f"ElGamal {length}"
    return curve or f"algorithm {algo}"


def _weakness(record: dict) -> str | None:
    """Why a key or subkey's algorithm is refused, or None."""
    algo = record.get("algo", "")
    if algo in _RSA:
        if int(record.get("length") or 0) < MIN_RSA_BITS:
            return f"RSA keys must have at least {MIN_RSA_BITS} bits"
        return None
    if algo in _DSA or algo in _ELGAMAL:
        return "DSA and ElGamal keys are no longer considered safe"
    if algo in (_ECDH, _ECDSA, _EDDSA):
        if record.get("curve", "").lower() not in _CURVES:
            return "only Curve25519 and NIST P-256, P-384 or P-521 curves are taken"
        return None
    return "its algorithm is not one this system accepts"


def _expiry(record: dict) -> dt.datetime | None:
    stamp = record.get("expires") or ""
    return dt.datetime.fromtimestamp(int(stamp), tz=dt.UTC) if stamp else None


def _usable(record: dict, now: dt.datetime) -> bool:
    expires = _expiry(record)
    return record.get("trust") not in ("r", "e") and (expires is None or expires > now)


def _scan(armored: str) -> list[dict]:
    if "PRIVATE KEY BLOCK" in armored:
        # Refused before gpg sees it: a secret key would be written into the keyring's home.
        raise PrintError(
            "This is a private key. Ask the printing house for its public key only, and tell "
            "them their private key has been seen by someone else.",
            field="public_key",
        )
    if "-----BEGIN PGP PUBLIC KEY BLOCK-----" not in armored:
        raise PrintError(
            "Paste the printing house's ASCII-armored OpenPGP public key "
            "(-----BEGIN PGP PUBLIC KEY BLOCK----- …).",
            field="public_key",
        )
    with _private_home() as home:
        # A dry run (`--import-options show-only`): gpg lists the key without importing it.
        return list(_gpg(home).scan_keys_mem(armored))


def key_check(armored: str, *, now: dt.datetime | None = None) -> KeyInfo:
    """The key's details if it may receive print files, else PrintError saying why not: exactly
    one public key, not revoked or expired, strong enough (see `_weakness`), with at least one
    usable encryption (sub)key and no weak one gpg could pick."""
    now = now or timezone.now()
    keys = _scan(armored)
    if any(key.get("type") == "sec" for key in keys):
        raise PrintError("This is a private key: paste the public key only.", field="public_key")
    if len(keys) != 1:
        raise PrintError(
            "Paste exactly one public key"
            + (" (this text holds none that can be read)." if not keys else f" (not {len(keys)})."),
            field="public_key",
        )
    (key,) = keys
    if key.get("trust") == "r":
        raise PrintError("This key has been revoked by its owner.", field="public_key")
    expires = _expiry(key)
    if key.get("trust") == "e" or (expires is not None and expires <= now):
        raise PrintError(
            "This key has expired: ask the printing house for a current one.", field="public_key"
        )
    weakness = _weakness(key)
    if weakness:
        raise PrintError(f"This key is too weak: {weakness}.", field="public_key")
    encrypting = [key] if "e" in key.get("cap", "") and _usable(key, now) else []
    encrypting += [
        sub
        for sub in key.get("subkey_info", {}).values()
        if "e" in sub.get("cap", "") and _usable(sub, now)
    ]
    if not encrypting:
        raise PrintError(
            "This key cannot encrypt (no valid encryption subkey): ask the printing house for "
            "a key with one.",
            field="public_key",
        )
    for sub in encrypting:
        weakness = _weakness(sub)
        if weakness:
            raise PrintError(
                f"This key's encryption subkey is too weak: {weakness}.", field="public_key"
            )
    return KeyInfo(
        fingerprint=key["fingerprint"],
        description=_algorithm(key),
        expires_at=expires,
        user_ids=tuple(key.get("uids", ())),
    )


class _Feed:
    """What gpg's standard input reads: the caller's blocks, handed over through a small queue
    (a few blocks in memory at most), read by python-gnupg's copying thread."""

    def __init__(self):
        self.blocks: queue.Queue[bytes] = queue.Queue(maxsize=8)
        self.pending = b""

    def read(self, size: int = -1) -> bytes:
        if not self.pending:
            self.pending = self.blocks.get()
        if size is None or size < 0:
            size = len(self.pending)
        data, self.pending = self.pending[:size], self.pending[size:]
        return data

    def put(self, block: bytes, *, alive) -> None:
        while True:
            try:
                self.blocks.put(block, timeout=0.5)
                return
            except queue.Full:
                if not alive():
                    raise PrintError("gpg stopped reading the print file.") from None


@contextlib.contextmanager
def encrypted(*, public_key: str, fingerprint: str, clear: Iterable[bytes]) -> Iterator[BinaryIO]:
    """Encrypt the blocks `clear` yields to the key `fingerprint` (binary OpenPGP, gpg's default
    cipher and compression); yields the ciphertext as an open file, gone after the block.

    `clear` is consumed in the calling thread (it may read the database); gpg runs in a helper
    thread that python-gnupg feeds from `_Feed`."""
    with _private_home() as home:
        gpg = _gpg(home)
        imported = gpg.import_keys(public_key)
        if fingerprint not in (imported.fingerprints or []):
            raise PrintError("The printer's key could not be imported.")
        output = home / "print.gpg"
        feed = _Feed()
        outcome: dict = {}

        def run() -> None:
            try:
                outcome["result"] = gpg.encrypt_file(
                    feed,
                    [fingerprint],
                    always_trust=True,  # the operator checked the fingerprint on registration
                    armor=False,
                    output=str(output),
                )
            except Exception as error:  # reported to the calling thread below
                outcome["error"] = error

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        try:
            for block in clear:
                if block:
                    feed.put(block, alive=worker.is_alive)
        finally:
            # The end of the input (also when the rows failed: gpg then stops and the
            # partial ciphertext is thrown away with the directory).
            with contextlib.suppress(PrintError):
                feed.put(b"", alive=worker.is_alive)
            worker.join()
        if "error" in outcome:
            raise PrintError("gpg failed to encrypt the print file.") from outcome["error"]
        result = outcome.get("result")
        if result is None or not result.ok:
            status = getattr(result, "status", "") or "no status"
            raise PrintError(f"gpg failed to encrypt the print file ({status}).")
        with output.open("rb") as file:
            yield file
