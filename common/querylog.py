"""A bounded query log for long commands and jobs.

With DEBUG on, Django keeps each query of a connection, its full SQL text included, until the
next request starts (up to 9,000 of them): a command or background job that runs thousands of
statements (a million-card generation, an export) never starts a request and would hold hundreds
of megabytes of SQL text. Inside `bounded_query_log()` only the last few are kept, enough to
debug the statement that failed.
"""

from collections import deque
from contextlib import contextmanager

from django.db import connection

KEPT_QUERIES = 50


@contextmanager
def bounded_query_log(keep: int = KEPT_QUERIES):
    saved = connection.queries_log
    connection.queries_log = deque(maxlen=keep)
    try:
        yield
    finally:
        connection.queries_log = saved
