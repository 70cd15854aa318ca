"""Local development: safe defaults that must never be used in production."""

import os

os.environ.setdefault("SECRET_KEY", "local-dev-only-not-secret")
os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
# Development-only PIN keys: production must set its own (settings/production.py refuses these).
from .dev_keys import DEV_PIN_DIGEST_KEY, DEV_PIN_ENCRYPTION_KEY  # noqa: E402

os.environ.setdefault("PIN_DIGEST_KEYS", DEV_PIN_DIGEST_KEY)
os.environ.setdefault("PIN_ENCRYPTION_KEYS", DEV_PIN_ENCRYPTION_KEY)

from .base import *  # noqa: E402,F403
