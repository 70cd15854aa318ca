"""Test settings: the local defaults with fast password hashing.

DATABASE_URL picks SQLite (default) or PostgreSQL.
"""

from .local import *  # noqa: F403

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# One process per test run: a local-memory cache keeps each test's throttle counters apart
# (the conftest clears it) without a query per request; production shares it in the database.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
