"""Kill a PostgreSQL backend at a precise point of an operation, from a second connection.

The victim (the server thread handling a request) reaches a chosen point through a patched
function and calls `Killer.pause()`: it asks for an advisory lock the killer holds, so its
backend waits *inside* the operation's transaction, in the middle of a query. The killer's
thread sees it waiting in `pg_locks`/`pg_stat_activity`, records what that backend was doing
(its transaction id proves it had already written), and terminates it with
`pg_terminate_backend`. The victim's query then fails as it would if the connection died.

A COPY cannot run another query on its connection: `Killer.kill_copy()` instead blocks the row
generator and terminates the backend whose `pg_stat_activity.query` is that COPY.
"""

import threading
import time

import psycopg
from django.db import connection

ADVISORY_KEY = 740_001


def conninfo() -> str:
    settings = connection.settings_dict
    return psycopg.conninfo.make_conninfo(
        dbname=settings["NAME"],
        user=settings["USER"],
        password=settings["PASSWORD"],
        host=settings["HOST"] or "127.0.0.1",
        port=str(settings["PORT"] or 5432),
    )


class Killer:
    def __init__(self):
        self.conn = psycopg.connect(conninfo(), autocommit=True)
        self.victims: list[dict] = []
        self._armed = True

    def close(self) -> None:
        self.conn.close()

    def _terminate(self, pid: int) -> None:
        row = self.conn.execute(
            "SELECT state, backend_xid::text, left(query, 60), xact_start IS NOT NULL"
            " FROM pg_stat_activity WHERE pid = %s",
            [pid],
        ).fetchone()
        state, xid, query, in_transaction = row
        # Wait (up to 10 s) until the backend is really gone.
        terminated = self.conn.execute("SELECT pg_terminate_backend(%s, 10000)", [pid]).fetchone()
        self.victims.append(
            {
                "pid": pid,
                "state": state,
                "xid": xid,
                "query": query,
                "in_transaction": in_transaction,
                "terminated": terminated[0],
            }
        )

    # --- kill a backend waiting at a pause point -------------------------------------------

    def pause(self) -> None:
        """Called by the victim at the chosen point: wait there until killed (once)."""
        if not self._armed:
            return
        self._armed = False
        self.conn.execute("SELECT pg_advisory_lock(%s)", [ADVISORY_KEY])
        waiter = threading.Thread(target=self._kill_the_waiter, daemon=True)
        waiter.start()
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_lock(%s)", [ADVISORY_KEY])
        finally:
            waiter.join(timeout=15)

    def _kill_the_waiter(self) -> None:
        deadline = time.monotonic() + 10
        try:
            while time.monotonic() < deadline:
                row = self.conn.execute(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                    " AND objid = %s AND database ="
                    " (SELECT oid FROM pg_database WHERE datname = current_database())",
                    [ADVISORY_KEY],
                ).fetchone()
                if row:
                    self._terminate(row[0])
                    return
                time.sleep(0.01)
        finally:
            self.conn.execute("SELECT pg_advisory_unlock_all()")

    # --- kill a COPY in progress ------------------------------------------------------------

    def kill_copy(self) -> None:
        """Called by the victim's row generator mid-COPY: returns once its backend is gone."""
        if not self._armed:
            return
        self._armed = False
        done = threading.Event()

        def find_and_kill():
            deadline = time.monotonic() + 10
            try:
                while time.monotonic() < deadline:
                    row = self.conn.execute(
                        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                        " AND pid <> pg_backend_pid() AND query LIKE 'COPY %%'"
                        " AND state = 'active'"
                    ).fetchone()
                    if row:
                        self._terminate(row[0])
                        return
                    time.sleep(0.01)
            finally:
                done.set()

        threading.Thread(target=find_and_kill, daemon=True).start()
        done.wait(timeout=15)


def kill_lock_waiter(killer: Killer, table: str, timeout: float = 10) -> None:
    """Terminate the first backend found waiting for a row lock of `table`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = killer.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND query LIKE %s",
            [f"%{table}%FOR UPDATE%"],
        ).fetchone()
        if row:
            killer._terminate(row[0])
            return
        time.sleep(0.01)
    raise AssertionError(f"no backend waited for a lock on {table}")
