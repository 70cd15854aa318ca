"""Real servers for the deployment tests: gunicorn serving the app on a throwaway SQLite
database, and Debian's nginx in front of it with the repository's deploy/nginx/ config.

Both run as child processes on free loopback ports and are stopped by the fixture that started
them. The raw-socket helpers send exactly the bytes a test means (chunked bodies, stalled
bodies), which no HTTP client library does on request.
"""

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "nginx"
NGINX = shutil.which("nginx") or next(
    (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
)
NGINX_MISSING = "nginx is not installed (Debian: apt-get install nginx)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port} after {timeout} s")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Reply:
    status: int
    headers: dict
    body: bytes


def http(port: int, raw: bytes, *, timeout: float = 30) -> Reply:
    """Send these exact bytes, read one reply (the server closes or says its length)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(raw)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "-1"))
        while length < 0 or len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        return Reply(int(lines[0].split()[1]), headers, body)


def request_bytes(
    method: str, path: str, *, body: bytes | None = None, headers: dict | None = None
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body is not None and "Transfer-Encoding" not in (headers or {}):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


def chunked(body: bytes, size: int = 1000) -> bytes:
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts) + b"0\r\n\r\n"


@dataclass
class App:
    port: int
    workers: int
    username: str
    ref: str
    resource_id: int
    process: subprocess.Popen

    def auth(self) -> dict:
        token = base64.b64encode(f"{self.username}:secret".encode()).decode()
        return {"Authorization": f"Basic {token}"}


def start_app(tmp: Path, *, workers: int = 2, timeout: int = 30, proxies: int = 0) -> App:
    """gunicorn (sync workers, as deployed) on a migrated SQLite file with one API client,
    trusting `proxies` reverse proxies in front (TRUSTED_PROXY_COUNT)."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": f"sqlite:///{tmp / 'app.sqlite3'}",
        "ALLOWED_HOSTS": "127.0.0.1",
        "PYTHONPATH": str(ROOT),
        "TRUSTED_PROXY_COUNT": str(proxies),
    }
    seeded = subprocess.run(
        [sys.executable, "-m", "tests.deploy.app_seed"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    seed = json.loads(seeded.stdout.strip().splitlines()[-1])
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi:application",
            f"--bind=127.0.0.1:{port}",
            f"--workers={workers}",
            "--worker-class=sync",
            f"--timeout={timeout}",
            "--log-level=warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp / "gunicorn.log", "w"),  # noqa: SIM115 - closed with the process
    )
    wait_for_port(port, process)
    return App(port=port, workers=workers, process=process, **seed)


def nginx_config(tmp: Path, *, listen: int, upstream: int) -> Path:
    """A main nginx config for an unprivileged run in `tmp`, serving the repository's
    deploy/nginx/topup-proxy.conf (included verbatim) on `listen` in front of `upstream`."""
    for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp / name).mkdir(exist_ok=True)
    mime = "/etc/nginx/mime.types"
    config = tmp / "nginx.conf"
    config.write_text(
        f"""
daemon off;
{"user root root;" if os.geteuid() == 0 else ""}
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 256; }}
http {{
    {"include " + mime + ";" if os.path.exists(mime) else ""}
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    upstream topup_app {{ server 127.0.0.1:{upstream}; keepalive 8; }}
    server {{
        listen 127.0.0.1:{listen};
        server_name _;
        include {DEPLOY / "topup-proxy.conf"};
    }}
}}
"""
    )
    return config


def start_nginx(tmp: Path, *, upstream: int) -> tuple[int, subprocess.Popen]:
    port = free_port()
    config = nginx_config(tmp, listen=port, upstream=upstream)
    process = subprocess.Popen(
        [NGINX, "-p", str(tmp), "-c", str(config), "-e", str(tmp / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, process)
    return port, process
