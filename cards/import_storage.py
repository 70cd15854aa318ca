"""Where an uploaded import file waits between its preview and its confirmation.

django-import-export keeps the file in a "temporary storage" (IMPORT_EXPORT_TMP_STORAGE_CLASS)
from the preview until the operator confirms. The file holds clear PINs, so it is kept only
encrypted under the PIN key (AES-256-GCM, bound to its storage name), in the shared cache (every
app server sees it), and for IMPORT_UPLOAD_LIFETIME at most: the cache entry expires then, and
the worker (`manage.py db_worker`) deletes it then (`forget_import_upload`), so an abandoned
preview leaves nothing behind, not even the encrypted copy. A preview that offers no
confirmation (a bad row) deletes its upload at once (cards.admin.cards).
"""

import io
import re
import zlib
from collections.abc import Iterable
from typing import BinaryIO
from uuid import uuid4

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from django_tasks import task
from import_export.tmp_storages import BaseStorage

from . import pins

_PREFIX = "cards-import-"
_NAME = re.compile(r"[0-9a-f]{32}")


def _key(name: str) -> str:
    return _PREFIX + name


def _lifetime():
    return settings.IMPORT_UPLOAD_LIFETIME


# The clear data is compressed before it is encrypted (a million-row CSV to about a third):
# the cache entry, the request that stores it and the worker that reads it hold that much less.
# The mark tells such an upload from one stored uncompressed by an earlier release.
_DEFLATED = b"topup-deflate-1\n"
_STREAM_CHUNK = 64 * 1024


class _Inflating(io.RawIOBase):
    """The clear bytes of compressed data, inflated as they are read (never all at once)."""

    def __init__(self, packed: bytes):
        self.packed = memoryview(packed)
        self.at = 0
        self.inflater = zlib.decompressobj()
        self.pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self.pending:
            if self.at >= len(self.packed):
                self.pending = self.inflater.flush()
                if not self.pending:
                    return 0
                break
            self.pending = self.inflater.decompress(self.packed[self.at : self.at + _STREAM_CHUNK])
            self.at += _STREAM_CHUNK
        size = min(len(buffer), len(self.pending))
        buffer[:size] = self.pending[:size]
        self.pending = self.pending[size:]
        return size


class EncryptedImportStorage(BaseStorage):
    """The upload as `pins.encrypt_data` ciphertext in the cache; `read()` gives the clear bytes
    back in memory only, or None once the upload is gone (expired, confirmed or refused)."""

    def save(self, data) -> None:
        if isinstance(data, str):
            data = data.encode(self.encoding or "utf-8")
        self.save_chunks([bytes(data)])

    def save_chunks(self, chunks: Iterable[bytes]) -> None:
        """Store an upload given in pieces (an uploaded file's `chunks()`), compressing them as
        they come: the clear file is never copied whole."""
        packer = zlib.compressobj(1)
        packed = [_DEFLATED, *(packer.compress(chunk) for chunk in chunks), packer.flush()]
        self.name = self.name or uuid4().hex
        blob = pins.encrypt_data(b"".join(packed), context=_key(self.name).encode())
        del packed
        lifetime = _lifetime()
        cache.set(_key(self.name), blob, int(lifetime.total_seconds()))
        forget_import_upload.using(run_after=timezone.now() + lifetime).enqueue(self.name)

    def _plain(self) -> bytes | None:
        if not _NAME.fullmatch(self.name or ""):
            return None  # the name comes back from the browser
        blob = cache.get(_key(self.name))
        if blob is None:
            return None
        return pins.decrypt_data(blob, context=_key(self.name).encode())

    def read(self) -> bytes | None:
        plain = self._plain()
        if plain is None or not plain.startswith(_DEFLATED):
            return plain
        return zlib.decompress(memoryview(plain)[len(_DEFLATED) :])

    def open(self) -> BinaryIO | None:
        """The upload as a file read as it goes (the worker's check and import), or None."""
        plain = self._plain()
        if plain is None:
            return None
        if not plain.startswith(_DEFLATED):
            return io.BytesIO(plain)
        return io.BufferedReader(_Inflating(memoryview(plain)[len(_DEFLATED) :]))

    def exists(self) -> bool:
        return bool(_NAME.fullmatch(self.name or "")) and cache.has_key(_key(self.name))

    def remove(self) -> None:
        if _NAME.fullmatch(self.name or ""):
            cache.delete(_key(self.name))


@task()
def forget_import_upload(name: str) -> None:
    """The worker's end of an upload's lifetime: delete it if it was neither confirmed nor
    refused (with the database cache an expired entry otherwise stays until it is next read)."""
    EncryptedImportStorage(name=name).remove()
