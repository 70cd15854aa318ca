"""Real parallel work on PostgreSQL: each call in its own thread and database connection."""

import threading

from django.db import connections


def run_together(calls):
    """Run each call in its own thread and connection, released at once by a barrier; every
    call must return (no exception). Returns the results in the order of `calls`."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)
    errors: list = []

    def work(index, call):
        try:
            barrier.wait(timeout=30)
            results[index] = call()
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(n, c)) for n, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return results
