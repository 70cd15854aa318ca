"""Real OpenPGP keys made by the tests in their own GNUPGHOME (a pytest temp dir), for the
printing house's side: its public key to register, its private key to decrypt a print file.

Debian's gpg (`apt-get install gnupg`); the tests that need it skip without it.
"""

import shutil
import subprocess
from pathlib import Path

import pytest

GPG = shutil.which("gpg")
needs_gpg = pytest.mark.skipif(GPG is None, reason="needs gpg (apt-get install gnupg)")


class PrintingHouse:
    """A GNUPGHOME of its own holding the printing house's keys (private ones included: this is
    the printer's machine, not ours)."""

    def __init__(self, home: Path):
        self.home = home
        home.mkdir(mode=0o700, parents=True, exist_ok=True)

    def gpg(self, *args: str, data: bytes | None = None, check=True) -> bytes:
        done = subprocess.run(
            [
                GPG,
                "--homedir",
                str(self.home),
                "--batch",
                "--yes",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
                *args,
            ],
            input=data,
            capture_output=True,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(done.stderr.decode(errors="replace"))
        return done.stdout

    def make_key(
        self,
        uid: str,
        algo: str = "ed25519",
        usage: str = "sign,cert",
        expire: str = "never",
        encryption: str | None = "cv25519",
        faked_time: str | None = None,
    ) -> str:
        """A new key (and an encryption subkey of `encryption`); its fingerprint."""
        faked = ["--faked-system-time", faked_time] if faked_time else []
        self.gpg(*faked, "--quick-gen-key", uid, algo, usage, expire)
        fingerprint = self.fingerprint(uid)
        if encryption:
            self.gpg(*faked, "--quick-add-key", fingerprint, encryption, "encr", expire)
        return fingerprint

    def fingerprint(self, uid: str) -> str:
        listing = self.gpg("--with-colons", "--list-keys", uid).decode()
        return next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr"))

    def public_key(self, fingerprint: str) -> str:
        return self.gpg("--armor", "--export", fingerprint).decode()

    def private_key(self, fingerprint: str) -> str:
        return self.gpg("--armor", "--export-secret-keys", fingerprint).decode()

    def revoke(self, fingerprint: str) -> None:
        certificate = (self.home / "openpgp-revocs.d" / f"{fingerprint}.rev").read_text()
        self.gpg("--import", data=certificate.replace(":-----BEGIN", "-----BEGIN").encode())

    def decrypt(self, ciphertext: bytes) -> bytes:
        return self.gpg("--decrypt", data=ciphertext)

    def close(self) -> None:
        subprocess.run(
            ["gpgconf", "--homedir", str(self.home), "--kill", "all"],
            capture_output=True,
            check=False,
        )
