"""What the database told us, in the terms a page needs."""

from django.db import OperationalError


def database_busy(error: BaseException) -> bool:
    """SQLite's answer when another connection kept the write lock for longer than the busy
    timeout (config/settings/base.py): the request may be tried again, nothing was wrong with it.
    PostgreSQL waits on row locks instead and never says this."""
    return isinstance(error, OperationalError) and "database is locked" in str(error)
