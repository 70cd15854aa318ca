"""Test settings: the local defaults with fast password hashing.

DATABASE_URL picks SQLite (default) or PostgreSQL.
"""

from .local import *  # noqa: F403

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
