"""nginx in front of gunicorn (deploy/nginx/, README "Deploying for real").

gunicorn's sync workers serve one request each from its first byte to its last: clients that
send their headers and stall their body hold every worker, and everyone else waits. The first
test proves the harness (bare gunicorn does hang); the second runs the repository's nginx config
in front of the same gunicorn and shows a normal request answered while more slow clients than
workers stall. Skipped when nginx is missing, except in CI (.ci/run sets
DEPLOY_TESTS_REQUIRED=1 and installs Debian's nginx).
"""

import os
import socket
import subprocess
import time

import pytest

from tests.deploy.servers import (
    DEPLOY,
    NGINX,
    NGINX_MISSING,
    free_port,
    http,
    nginx_config,
    request_bytes,
    start_app,
    start_nginx,
    stop,
)
from tests.rsgateway.api import TOPUP, body

WORKERS = 2
SLOW_CLIENTS = WORKERS + 2
# gunicorn kills a worker silent this long: longer than any wait below, so a worker held by a
# slow client is never freed during a test.
WORKER_TIMEOUT = 120
GENEROUS = 30  # seconds a normal request may take before it counts as unanswered
HELD = 5  # seconds the harness test waits to show that bare gunicorn does not answer

needs_nginx = pytest.mark.skipif(
    NGINX is None and not os.environ.get("DEPLOY_TESTS_REQUIRED"), reason=NGINX_MISSING
)


@pytest.fixture
def app(tmp_path):
    server = start_app(tmp_path, workers=WORKERS, timeout=WORKER_TIMEOUT, proxies=1)
    yield server
    stop(server.process)


@pytest.fixture
def nginx(tmp_path, app):
    if NGINX is None:
        pytest.fail(NGINX_MISSING)
    port, process = start_nginx(tmp_path, upstream=app.port)
    yield port
    stop(process)


def stall_bodies(port: int, count: int) -> list[socket.socket]:
    """Clients that send a login form's headers and 9 of its 100,000 bytes, then nothing.
    The panel's login needs no account and any well-formed CSRF cookie will do: anyone can do
    this. (The CSRF check reads the form before any view runs, so the worker waits for the
    rest.)"""
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        head = request_bytes(
            "POST",
            "/panel/login/",
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Content-Length": "100000",
                "Cookie": "csrftoken=" + "a" * 32,
            },
        )
        sock.sendall(head.replace(b"Connection: close\r\n", b"") + b"username=")
        sockets.append(sock)
    time.sleep(1)  # let the workers (or nginx) take them
    return sockets


def normal_request(app, port: int, timeout: float):
    data = body("xml", TOPUP, {"Amount": "1.00", "Voucher": f"N-{time.monotonic_ns()}"})
    path = f"/rsgateway/data/v3/subscription/{app.ref}/wallet/{app.resource_id}/topup"
    headers = {**app.auth(), "Content-Type": "application/xml"}
    started = time.monotonic()
    reply = http(
        port, request_bytes("PUT", path, body=data.encode(), headers=headers), timeout=timeout
    )
    return reply, time.monotonic() - started


def close(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.close()


def test_the_harness_slow_bodies_hang_bare_gunicorn(app):
    slow = stall_bodies(app.port, SLOW_CLIENTS)
    try:
        with pytest.raises(TimeoutError):
            normal_request(app, app.port, timeout=HELD)
        print(
            f"\nbare gunicorn, {WORKERS} sync workers, {SLOW_CLIENTS} slow clients: "
            f"no answer within {HELD} s (load {os.getloadavg()[0]:.2f})"
        )
    finally:
        close(slow)


@needs_nginx
def test_behind_nginx_slow_bodies_do_not_block_a_normal_request(app, nginx):
    _, unloaded = normal_request(app, nginx, timeout=GENEROUS)  # also warms the workers
    slow = stall_bodies(nginx, SLOW_CLIENTS)
    try:
        reply, seconds = normal_request(app, nginx, timeout=GENEROUS)
    finally:
        close(slow)

    assert reply.status == 200, reply
    assert b"<Result>0</Result>" in reply.body
    print(
        f"\nnginx + gunicorn, {WORKERS} sync workers, {SLOW_CLIENTS} slow clients: "
        f"answered in {seconds:.3f} s (without slow clients: {unloaded:.3f} s; "
        f"load {os.getloadavg()[0]:.2f})"
    )


@needs_nginx
def test_behind_nginx_a_client_cannot_choose_the_address_the_app_counts(app, nginx):
    """TRUSTED_PROXY_COUNT=1 (production) takes the last X-Forwarded-For entry as the client:
    nginx must write the address it saw there, whatever the client sent, or every guess could
    come from a fresh made-up address. Twenty wrong credentials from one address stop the
    API from checking that address's credentials (docs/rest-api.md)."""
    path = f"/rsgateway/data/v3/subscription/{app.ref}/wallet"
    wrong = {"Authorization": "Basic dm1zLWRlcGxveTp3cm9uZw=="}  # vms-deploy:wrong

    statuses = [
        http(
            nginx,
            request_bytes("GET", path, headers={**wrong, "X-Forwarded-For": f"203.0.113.{i}"}),
        ).status
        for i in range(21)
    ]
    right = http(
        nginx, request_bytes("GET", path, headers={**app.auth(), "X-Forwarded-For": "198.51.100.7"})
    )

    assert statuses[:20] == [401] * 20
    assert statuses[20] == 429
    assert right.status == 429  # the same address, whatever it claims


@needs_nginx
def test_the_shipped_site_config_passes_nginx_t(tmp_path):
    """deploy/nginx/topup.conf as an operator installs it (TLS, the static files, the proxy
    rules), with a throwaway certificate in place of the real one."""
    if NGINX is None:
        pytest.fail(NGINX_MISSING)
    cert, key = self_signed(tmp_path)
    site = (DEPLOY / "topup.conf").read_text()
    site = site.replace("/etc/nginx/topup-proxy.conf", str(DEPLOY / "topup-proxy.conf"))
    site = site.replace("/etc/ssl/certs/topup.pem", str(cert))
    site = site.replace("/etc/ssl/private/topup.key", str(key))
    (tmp_path / "topup.conf").write_text(site)
    main = nginx_config(tmp_path, listen=free_port(), upstream=free_port())
    text = main.read_text()
    # The test's own upstream and server make way for the shipped ones.
    text = (
        text[: text.index("    upstream topup_app")]
        + f"    include {tmp_path / 'topup.conf'};\n}}\n"
    )
    main.write_text(text)

    checked = subprocess.run(
        [NGINX, "-t", "-p", str(tmp_path), "-c", str(main), "-e", str(tmp_path / "error.log")],
        capture_output=True,
        text=True,
    )

    assert checked.returncode == 0, checked.stderr


def self_signed(directory):
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "topup.example.com")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path
