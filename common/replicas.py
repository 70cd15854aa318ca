"""Read replicas: reads that may be slightly stale go to a PostgreSQL streaming replica.

The router's answer is always the primary ("default") unless code marks its reads stale-tolerant
with `stale_ok()` (or a view with `stale_ok_view`). Inside such a block, reads of the data models
in STALE_OK_MODELS go to one replica, chosen once for the block so a page reads one snapshot,
except when (docs/replicas.md):

- a transaction is open on the primary: a read inside a write must see the write;
- the user wrote something and no replica has replayed past it yet (ReadYourWritesMiddleware
  keeps the primary's WAL position after each write request of a staff user in a signed cookie);
- no replica is reachable, still a standby, and within REPLICA_MAX_LAG_SECONDS (checked at most
  every REPLICA_HEALTH_CHECK_SECONDS per process, not per query): the block reads the primary,
  and an admin page says so.

Who may do what (users, permissions, sessions, staff scoping, API credentials) and counters are
never read from a replica: a revoked permission or scope must take effect at once.
"""

import itertools
import logging
import threading
import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connections
from django.template.response import TemplateResponse

log = logging.getLogger(__name__)

# Data the stale-tolerant pages read (lower-case model labels; strings, so this module imports no
# app above it). A model not listed is read from the primary even inside `stale_ok()`.
STALE_OK_MODELS = frozenset(
    {
        "cards.cardseries",
        "cards.cardbatch",
        "cards.topupcard",
        "cards.cardevent",
        "subscribers.reseller",
        "subscribers.group",
        "subscribers.subscriber",
        "subscribers.subscription",
        "subscribers.accessnumber",
        "wallets.wallet",
        "wallets.balancetemplate",
        "wallets.balance",
        "wallets.balanceinterval",
        "wallets.ledgerentry",
        "wallets.balanceevent",
        "wallets.externalvoucher",
    }
)

WARNING = (
    "The read replica is unavailable or too far behind ({reasons}): reports, exports and the card "
    "list are read from the primary database for now."
)
SESSION_KEY = "replicas_wrote"  # [WAL position, time.time()] of the user's last write request
_SAFE_METHODS = ("GET", "HEAD")
_CONNECTION_ERRORS = (OperationalError, InterfaceError)
# clock_timestamp(), not now(): now() is the start of the probe's transaction.
_PROBE = (
    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text,"
    " EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8"
)


def replica_aliases() -> list[str]:
    """The configured replicas (settings.DATABASE_REPLICAS), on a PostgreSQL primary only."""
    aliases = getattr(settings, "DATABASE_REPLICAS", [])
    if not aliases or connections[DEFAULT_DB_ALIAS].vendor != "postgresql":
        return []
    return list(aliases)


def parse_lsn(text: str | None) -> int | None:
    """A WAL position ('16/B374D848') as an integer, to compare."""
    if not text:
        return None
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def primary_lsn() -> int | None:
    """The primary's current WAL position: every transaction committed so far lies before it."""
    primary = connections[DEFAULT_DB_ALIAS]
    if primary.vendor != "postgresql":
        return None
    with primary.cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_lsn()::text")
        return parse_lsn(cursor.fetchone()[0])


# --- Health, cached per process ----------------------------------------------------------------


@dataclass(frozen=True)
class Health:
    usable: bool
    replay_lsn: int  # what the replica had replayed when checked (0 when unknown)
    problem: str  # why it is not usable ("" when it is)
    checked: float  # _clock() of the check


def _clock() -> float:
    return time.monotonic()


_health: dict[str, Health] = {}
_health_lock = threading.Lock()
_rotation = itertools.count()


def _discard_connection(alias: str) -> None:
    try:
        connections[alias].close()
    except Exception:  # noqa: BLE001 - a broken connection may fail to close: it is gone anyway
        log.debug("closing the connection to %s failed", alias, exc_info=True)


def probe(alias: str) -> Health:
    """Ask the replica itself: a standby, how far it has replayed, how far behind it is."""
    now = _clock()
    head = primary_lsn() or 0  # first: anything the replica has replayed after it is newer
    try:
        with connections[alias].cursor() as cursor:
            cursor.execute(_PROBE)
            in_recovery, replayed, seconds = cursor.fetchone()
    except _CONNECTION_ERRORS as error:
        _discard_connection(alias)
        return Health(False, 0, f"unreachable ({type(error).__name__})", now)
    if not in_recovery:
        # Promoted after a failover: it no longer follows this primary.
        return Health(False, 0, "not a standby", now)
    replay = parse_lsn(replayed) or 0
    # Caught up: an idle primary commits nothing, so the last replayed commit ages meaninglessly.
    lag = 0.0 if replay >= head else seconds
    if lag is None:
        return Health(False, replay, "has replayed nothing yet", now)
    if lag > settings.REPLICA_MAX_LAG_SECONDS:
        return Health(False, replay, f"{lag:.0f} s behind", now)
    return Health(True, replay, "", now)


def _remember(alias: str, state: Health) -> Health:
    with _health_lock:
        before = _health.get(alias)
        _health[alias] = state
    if not state.usable and (before is None or before.usable):
        log.warning("Read replica %s skipped: %s", alias, state.problem)
    elif state.usable and before is not None and not before.usable:
        log.info("Read replica %s usable again", alias)
    return state


def health(alias: str, *, fresh: bool = False) -> Health:
    """The replica's health, checked again only when older than REPLICA_HEALTH_CHECK_SECONDS."""
    with _health_lock:
        known = _health.get(alias)
    if (
        not fresh
        and known is not None
        and _clock() - known.checked < settings.REPLICA_HEALTH_CHECK_SECONDS
    ):
        return known
    return _remember(alias, probe(alias))


def mark_failed(alias: str, error: BaseException) -> None:
    """A query on the replica failed: skip it until the next health check."""
    _discard_connection(alias)
    problem = f"failed during a read ({type(error).__name__})"
    _remember(alias, Health(False, 0, problem, _clock()))


def forget_health() -> None:
    with _health_lock:
        _health.clear()


# --- Stale-tolerant blocks and the router ------------------------------------------------------


@dataclass
class Block:
    """One stale-tolerant block: the replica it reads (chosen at its first read) and why others
    were skipped."""

    after_lsn: int | None = None
    wait_seconds: float = 0.0
    alias: str | None = None
    skipped: list[str] = field(default_factory=list)

    @property
    def degraded(self) -> bool:
        """Reading the primary because every replica was down or behind."""
        return self.alias == DEFAULT_DB_ALIAS and bool(self.skipped)


_block: ContextVar[Block | None] = ContextVar("replicas_block", default=None)
_written_lsn: ContextVar[int | None] = ContextVar("replicas_written_lsn", default=None)


@contextmanager
def stale_ok(*, after_lsn: int | None = None, wait_seconds: float = 0.0):
    """Reads inside may come from a replica (see the module's docstring). `after_lsn`: only from a
    replica that has replayed that far, waiting up to `wait_seconds` for one."""
    block = Block(after_lsn=after_lsn, wait_seconds=wait_seconds)
    token = _block.set(block)
    try:
        yield block
    finally:
        _block.reset(token)


def _caught_up(alias: str, required: int, wait_seconds: float) -> Health:
    state = health(alias)
    deadline = _clock() + wait_seconds
    while state.usable and state.replay_lsn < required:
        # Behind the write this block must see: it may have replayed it since the last check.
        state = health(alias, fresh=True)
        if state.replay_lsn >= required or _clock() >= deadline:
            break
        time.sleep(0.05)
    return state


def choose(block: Block) -> str:
    """The block's database: the first usable replica (in turn) that has replayed far enough."""
    if block.alias is not None:
        return block.alias
    block.alias = DEFAULT_DB_ALIAS
    aliases = replica_aliases()
    if not aliases:
        return block.alias
    required = max(block.after_lsn or 0, _written_lsn.get() or 0)
    start = next(_rotation) % len(aliases)
    for alias in aliases[start:] + aliases[:start]:
        state = _caught_up(alias, required, block.wait_seconds)
        if not state.usable:
            block.skipped.append(f"{alias}: {state.problem}")
        elif state.replay_lsn >= required:
            block.alias = alias
            break
    return block.alias


class ReplicaRouter:
    """settings.DATABASE_ROUTERS: the primary, except for stale-tolerant reads."""

    def db_for_read(self, model, **hints):
        block = _block.get()
        if block is None or model._meta.label_lower not in STALE_OK_MODELS:
            return DEFAULT_DB_ALIAS
        if connections[DEFAULT_DB_ALIAS].in_atomic_block:
            return DEFAULT_DB_ALIAS
        return choose(block)

    def db_for_write(self, model, **hints):
        # Also for an object read from a replica (Django would otherwise write where it was read).
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints):
        return True  # every alias holds the same data

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == DEFAULT_DB_ALIAS


def after_all_commits(queryset):
    """`queryset` bound to a replica that has replayed everything committed until now (waiting
    up to REPLICA_MAX_LAG_SECONDS for one), else to the primary: for a script that exports what
    it has just generated, with no cookie to carry its writes."""
    if not replica_aliases():
        return queryset
    wait = settings.REPLICA_MAX_LAG_SECONDS
    with stale_ok(after_lsn=primary_lsn(), wait_seconds=wait):
        return queryset.using(queryset.db)


def reachable(alias: str) -> str:
    """`alias`, or the primary when that replica cannot be reached now (checked by connecting:
    for a stream that must not start on a replica that went away after it was chosen)."""
    if alias == DEFAULT_DB_ALIAS:
        return alias
    try:
        connections[alias].ensure_connection()
    except _CONNECTION_ERRORS as error:
        mark_failed(alias, error)
        return DEFAULT_DB_ALIAS
    return alias


def _page(request, view, args, kwargs, block: Block):
    token = _block.set(block)
    try:
        if choose(block) == DEFAULT_DB_ALIAS and block.degraded:
            reasons = "; ".join(block.skipped)
            messages.warning(request, WARNING.format(reasons=reasons), fail_silently=True)
        response = view(request, *args, **kwargs)
        if isinstance(response, TemplateResponse) and not response.is_rendered:
            response.render()  # now: its lazy querysets are read inside the block
        return response
    finally:
        _block.reset(token)


def stale_ok_view(view):
    """Serve a GET page's reads from a replica where allowed. A replica that fails during the page
    is skipped and the page read again from the primary: never an error page."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if request.method not in _SAFE_METHODS or not replica_aliases():
            return view(request, *args, **kwargs)
        block = Block()
        try:
            return _page(request, view, args, kwargs, block)
        except _CONNECTION_ERRORS as error:
            # Only the replica's own failure (Django flags the connection that raised); the
            # primary's is not ours to hide.
            if (
                block.alias in (None, DEFAULT_DB_ALIAS)
                or not connections[block.alias].errors_occurred
            ):
                raise
            mark_failed(block.alias, error)
        return _page(request, view, args, kwargs, Block())

    return wrapped


# --- Read your writes ---------------------------------------------------------------------------


def _wrote_at(request) -> int | None:
    session = getattr(request, "session", None)
    written = session.get(SESSION_KEY) if session is not None else None
    if not written:
        return None
    lsn, at = written
    return lsn if time.time() - at <= settings.REPLICA_READ_YOUR_WRITES_SECONDS else None


def _is_staff(request) -> bool:
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_authenticated and user.is_staff)


class ReadYourWritesMiddleware:
    """After a staff user's write request (any method but GET/HEAD/OPTIONS/TRACE), their reads
    come from the primary until a replica has replayed past the primary's WAL position at the
    end of that request, kept in their session for REPLICA_READ_YOUR_WRITES_SECONDS.

    In the session, not a cookie: the position tells how much the whole database writes, which
    is not for a reseller's staff to follow. Staff only: subscribers and API clients never read
    a stale-tolerant page, and their write requests (redemptions, top-ups) should not pay for a
    query they do not need. Listed after SessionMiddleware and AuthenticationMiddleware."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not replica_aliases():
            return self.get_response(request)
        token = _written_lsn.set(_wrote_at(request))
        try:
            response = self.get_response(request)
        finally:
            _written_lsn.reset(token)
        if request.method not in (*_SAFE_METHODS, "OPTIONS", "TRACE") and _is_staff(request):
            lsn = primary_lsn()
            if lsn is not None:
                request.session[SESSION_KEY] = [lsn, int(time.time())]
        return response
