"""A throwaway PostgreSQL 15 cluster of the soak test's own, which it may crash at will.

Created with `initdb` in a temporary directory on a free loopback port (as the `postgres`
system user when the tests run as root), started and killed (`kill -9`) by the test, and always
removed at the end. The shared cluster of the other tests is never touched.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg


def _bindir() -> Path | None:
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def kill9(pid: int) -> bool:
    try:
        os.kill(pid, signal.SIGKILL)
        return True
    except ProcessLookupError:
        return False


class Unavailable(Exception):
    """The cluster cannot be created here (no PostgreSQL binaries, no postgres user…)."""


class SoakCluster:
    DBNAME = "topup_soak"

    def __init__(self):
        self.bindir = _bindir()
        if self.bindir is None:
            raise Unavailable("no initdb/pg_ctl of PostgreSQL found")
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres and shutil.which("runuser") is None:
            raise Unavailable("running as root without runuser to become postgres")
        self.root = Path(tempfile.mkdtemp(prefix="topup-soak-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = free_port()
        if self.as_postgres:
            try:
                shutil.chown(self.root, user="postgres")
            except (LookupError, PermissionError) as error:
                self.remove()
                raise Unavailable(f"cannot hand the directory to postgres: {error}") from None

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{self.DBNAME}"

    def _run(self, *args: str, check=True, timeout=120) -> subprocess.CompletedProcess:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(  # noqa: S603 - fixed binaries, our own arguments
            command, check=check, capture_output=True, text=True, timeout=timeout, cwd=self.root
        )

    def create(self) -> None:
        try:
            self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E",
                      "UTF8", "--no-sync")  # fmt: skip
        except (subprocess.CalledProcessError, OSError) as error:
            raise Unavailable(f"initdb failed: {getattr(error, 'stderr', error)}") from None

    def start(self, *, durable: bool = True) -> None:
        """Start the postmaster; `durable=False` (loading only): no fsync, much faster."""
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c max_connections=60 -c shared_buffers=32MB"
        )
        if not durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w",
                  "-t", "60", "start")  # fmt: skip

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop", check=False)

    def create_database(self) -> None:
        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f"CREATE DATABASE {self.DBNAME}")

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def backends(self) -> list[int]:
        """Client backends serving the soak database (not the auxiliary processes)."""
        pid = self.postmaster_pid()
        if pid is None:
            return []
        return [child for child in children(pid) if f" {self.DBNAME} " in cmdline(child)]

    def kill_backend(self) -> bool:
        """kill -9 one backend: the postmaster then resets every backend (crash recovery)."""
        backends = self.backends()
        return bool(backends) and kill9(backends[0])

    def crash(self) -> None:
        """kill -9 the postmaster and all its processes, as a crash of the database would."""
        pid = self.postmaster_pid()
        if pid is None:
            return
        victims = children(pid)
        kill9(pid)
        for child in victims:
            kill9(child)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(
            Path(f"/proc/{p}").exists() for p in [pid, *victims]
        ):
            time.sleep(0.05)

    def remove(self) -> None:
        """Stop (immediately) and delete everything; safe to call at any point."""
        if self.data.exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
            pid = self.postmaster_pid()
            if pid is not None and Path(f"/proc/{pid}").exists() and "postgres" in cmdline(pid):
                self.crash()
        shutil.rmtree(self.root, ignore_errors=True)
