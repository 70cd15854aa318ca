"""Who is calling the REST API, in one query: the user a token or a username names, their API
client, which of the API's permissions they hold, and the wrong credentials counted lately
from their address (views.MtxView's stop on repeated wrong credentials). With a token, the same
query also counts the request against the client's rate (access.ClientRateThrottle), when the
user may make it (active, holding one of the view's permissions, not reseller-scoped): the
token is the secret, so nobody else can spend a client's rate. A password is checked in Python
after the query, so HTTP Basic requests are counted by the throttle's own statement.

Nothing is cached between requests: a revoked token, a deactivated user or a removed permission
takes effect on the next request in every process.
"""

import base64
import binascii
import hashlib
import hmac
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.db import OperationalError, connection

from cards.sql import redemption as redemption_sql
from wallets.models import ApiClient, VoucherMode
from wallets.ratelimits import COUNT_SQL, sliding_count
from wallets.sql import compact, hot_cursor

# The wallets permissions the API's views require (views.*.required_permissions).
API_CODENAMES = ("topup_balance", "adjust_balance", "view_balance")


@dataclass(frozen=True)
class Principal:
    user: object | None
    permissions: frozenset[str] = field(default_factory=frozenset)
    """Those of `checked` the user holds, directly or through a group."""
    checked: tuple[str, ...] = API_CODENAMES
    """The codenames the lookup asked about (API_CODENAMES, or a view's own)."""
    address_failures: float = 0.0
    counted: tuple[int, int, bool] | None = None
    """The rate counter's row (previous, current, allowed) when the lookup counted the request
    (wallets.ratelimits.COUNT_SQL), else None."""
    reseller_scoped: bool = False
    """A staff user limited to one reseller: the API, which reaches every subscription, refuses
    them (access.HasRequiredPermission)."""


_HELD = """EXISTS (
    SELECT 1 FROM auth_permission p
    JOIN django_content_type ct ON ct.id = p.content_type_id
    WHERE ct.app_label = 'wallets' AND p.codename = '{codename}' AND (
        p.id IN (SELECT up.permission_id FROM auth_user_user_permissions up
                 WHERE up.user_id = u.id)
        OR p.id IN (SELECT gp.permission_id FROM auth_group_permissions gp
                    JOIN auth_user_groups ug ON ug.group_id = gp.group_id
                    WHERE ug.user_id = u.id)))"""
_WHO = {
    "token": "u.id = (SELECT t.user_id FROM authtoken_token t WHERE t.key = %(credential)s)",
    "username": "u.{username_column} = %(credential)s",
    None: "1 = 0",
}
_LOOKUP = """
SELECT rc.slot, rc.previous, rc.current, c.id, c.voucher_mode,
       EXISTS (SELECT 1 FROM subscribers_staffreseller sr WHERE sr.user_id = u.id) AS scoped,
       {held}, {user_columns}
FROM (SELECT 1 AS one) one
LEFT JOIN wallets_ratecounter rc ON rc.key = %(address_key)s
LEFT JOIN {user_table} u ON {who}
LEFT JOIN wallets_apiclient c ON c.user_id = u.id
"""
# The lookup, then the request counted under the throttle's key for the user it found, when
# that user passes the view's authentication and permission checks (views.MtxView).
_LOOKUP_COUNTED = """
WITH principal AS ({lookup}), counted AS (
    INSERT INTO wallets_ratecounter AS r (key, slot, previous, current, allowed)
    SELECT %(throttle_prefix)s || p.u0::text, %(slot)s, 0, %(first)s, %(first_allowed)s
    FROM principal p
    WHERE p.u0 IS NOT NULL AND p.active AND NOT p.scoped AND (p.superuser OR {required})
    {count}
)
SELECT principal.*, counted.previous, counted.current, counted.allowed
FROM principal LEFT JOIN counted ON true
"""
# The lookup (read only) with a card top-up (cards.sql.redemption.topup_statement) for the
# user found, when that user is the one the view expects (the token's user this process saw
# before, whose request is counted already: access.ClientRateThrottle's lease) and passes the
# view's checks as above, their API client is in card mode and their address is clearly below
# the stop on wrong credentials (the sliding count is at most previous + current). Otherwise
# the top-up changes nothing, and the view decides with the lookup's row as without it.
_CALLER = """principal AS ({lookup}), caller AS (
    SELECT p.u0 AS actor_id FROM principal p
    WHERE p.u0 = %(expected_user)s AND p.active AND NOT p.scoped AND (p.superuser OR {required})
      AND p.voucher_mode IS DISTINCT FROM {external}
      AND (p.slot IS NULL OR p.previous + p.current < %(address_limit)s)
)"""
_CALLER_RESULT = "SELECT principal.*, (SELECT entry.id FROM entry) FROM principal"


class _Lookup:
    """The statements and the value converters, built once from the user model's fields."""

    def __init__(self):
        user_model = get_user_model()
        self.user_model = user_model
        self.fields = list(user_model._meta.concrete_fields)
        self.names = [f.attname for f in self.fields]
        if self.fields[0] is not user_model._meta.pk:
            raise ImproperlyConfigured("rsgateway.credentials: the user's first column is its key")
        quote = connection.ops.quote_name
        self._columns = ", ".join(f"u.{quote(f.column)} AS u{n}" for n, f in enumerate(self.fields))
        self._table = quote(user_model._meta.db_table)
        self._username = quote(user_model._meta.get_field(user_model.USERNAME_FIELD).column)
        self.statements = {kind: compact(self._lookup(kind, API_CODENAMES)) for kind in _WHO}
        active = quote(user_model._meta.get_field("is_active").column)
        superuser = quote(user_model._meta.get_field("is_superuser").column)
        self._flags = f"u.{active} AS active, u.{superuser} AS superuser"
        self.counted_statement = compact(
            _LOOKUP_COUNTED.format(
                lookup=self._flagged(API_CODENAMES),
                required=self._required(API_CODENAMES),
                count=COUNT_SQL,
            )
        )
        self._callers: dict[tuple[str, ...], tuple[str, str]] = {}
        self.converters = {}

    def _lookup(self, kind, codenames) -> str:
        held = ", ".join(
            f"{_HELD.format(codename=codename)} AS held_{codename}" for codename in codenames
        )
        return _LOOKUP.format(
            held=held,
            user_columns=self._columns,
            user_table=self._table,
            who=_WHO[kind].format(username_column=self._username),
        )

    def _flagged(self, codenames) -> str:
        """The token lookup with the user's two flags first (for the conditions in SQL)."""
        return self._lookup("token", codenames).replace(
            "SELECT rc.slot,", f"SELECT {self._flags}, rc.slot,", 1
        )

    @staticmethod
    def _required(codenames) -> str:
        return " OR ".join(
            f"(p.held_{codename} AND '{codename}' = ANY(%(required)s))" for codename in codenames
        )

    def caller(self, codenames: tuple[str, ...]) -> tuple[str, str]:
        """cards.sql.redemption.topup_statement's `caller` for a view that requires any of
        `codenames`: only those are looked up (each costs a scan of the permissions)."""
        caller = self._callers.get(codenames)
        if caller is None:
            statement = _CALLER.format(
                lookup=self._flagged(codenames),
                # The statement is the view's: each of its codenames is one it requires.
                required=" OR ".join(f"p.held_{codename}" for codename in codenames),
                external=f"'{VoucherMode.EXTERNAL.value}'",
            )
            caller = self._callers[codenames] = (compact(statement), _CALLER_RESULT)
        return caller

    def convert(self, values: list) -> list:
        """Database values to Python ones, as the ORM would (SQLite's text dates, 0/1)."""
        converters = self.converters.get(connection.vendor)
        if converters is None:
            converters = []
            for f in self.fields:
                col = f.get_col(f.model._meta.db_table)
                funcs = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
                converters.append((col, funcs))
            self.converters[connection.vendor] = converters
        out = []
        for value, (col, funcs) in zip(values, converters, strict=True):
            for func in funcs:
                value = func(value, col, connection)
            out.append(value)
        return out


_lookup: _Lookup | None = None


def _the_lookup() -> _Lookup:
    global _lookup
    if _lookup is None:
        _lookup = _Lookup()
    return _lookup


def principal_lookup(
    *,
    token: str | None = None,
    username: str | None = None,
    address_key: str = "",
    address_period: float = 1.0,
    count: dict | None = None,
) -> Principal:
    """One query: the user (with `api_client` loaded) the token or username names, if any.

    `count` (a token, on PostgreSQL only): the throttle's `throttle_prefix` (its key less the
    user's id), the view's `required` codenames and wallets.ratelimits.hit_params: the request
    is counted in the same query (Principal.counted)."""
    lookup = _the_lookup()
    kind = "token" if token is not None else "username" if username is not None else None
    params = {"address_key": address_key, "credential": token if token is not None else username}
    counting = count is not None and kind == "token" and connection.vendor == "postgresql"
    statement = lookup.statements[kind]
    if counting:
        statement = lookup.counted_statement
        params.update(count)
    with hot_cursor() as cursor:
        cursor.execute(statement, params)
        row = list(cursor.fetchone())
    counted = None
    if counting:
        row, hit = row[2:-3], row[-3:]  # less the two flags before, the counter's row after
        counted = None if hit[0] is None else (hit[0], hit[1], bool(hit[2]))
    return _principal(row, counted=counted, address_period=address_period)


def principal_lookup_and_topup(
    *,
    token: str,
    expected_user: int,
    required: list[str],
    address_key: str,
    address_period: float,
    address_limit: float,
    topup: tuple[str, dict],
) -> tuple[Principal, bool] | None:
    """principal_lookup for a token (nothing counted), and in the same statement the card
    top-up `topup` (cards.services.topup.one_statement_topup) when the user found is
    `expected_user` and may make it (_CALLER; `required`: the view's codenames). Returns (the
    principal, whether the top-up was made); None when a lock the top-up needed stayed taken
    past its lock timeout: then nothing was written. PostgreSQL only."""
    lookup = _the_lookup()
    kind, params = topup
    codenames = tuple(sorted(set(required)))
    params = {
        **params,
        "address_key": address_key,
        "credential": token,
        "expected_user": expected_user,
        "address_limit": address_limit,
    }
    try:
        with hot_cursor() as cursor:
            cursor.execute(redemption_sql.topup_statement(kind, lookup.caller(codenames)), params)
            row = list(cursor.fetchone())
    except OperationalError as error:
        if redemption_sql.gave_up_waiting(error):
            return None
        raise
    principal = _principal(
        row[2:-1], counted=None, address_period=address_period, codenames=codenames
    )
    return principal, row[-1] is not None


def _principal(
    row: list, *, counted, address_period: float, codenames: tuple[str, ...] = API_CODENAMES
) -> Principal:
    """The Principal of a lookup's row (less the counted statement's flags and counter) that
    looked up `codenames` (Principal.permissions holds those of them the user has)."""
    lookup = _the_lookup()
    slot, previous, current, client_id, voucher_mode, scoped = row[:6]
    held = row[6 : 6 + len(codenames)]
    failures = (
        sliding_count(slot, previous, current, period=address_period) if slot is not None else 0.0
    )
    values = row[6 + len(codenames) :]
    if values[0] is None:
        return Principal(user=None, address_failures=failures)
    user = lookup.user_model.from_db(connection.alias, lookup.names, lookup.convert(values))
    client = None
    if client_id is not None:
        client = ApiClient.from_db(
            connection.alias, ["id", "user_id", "voucher_mode"], [client_id, user.pk, voucher_mode]
        )
        client._state.fields_cache["user"] = user
    user._state.fields_cache["api_client"] = client
    permissions = frozenset(name for name, has in zip(codenames, held, strict=True) if has)
    return Principal(
        user=user,
        permissions=permissions,
        checked=codenames,
        address_failures=failures,
        counted=counted,
        reseller_scoped=bool(scoped),
    )


def credentials_in(request) -> tuple[str | None, str | None]:
    """(token, username) from the Authorization header, as DRF's authenticators read them."""
    parts = request.META.get("HTTP_AUTHORIZATION", "").split()
    if len(parts) != 2:
        return None, None
    keyword, value = parts
    if keyword.lower() == "token":
        return value, None
    if keyword.lower() == "basic":
        try:
            decoded = base64.b64decode(value).decode("utf-8")
        except (TypeError, ValueError, UnicodeDecodeError, binascii.Error):
            return None, None
        username, colon, _ = decoded.partition(":")
        return (None, username) if colon else (None, None)
    return None, None


# --- HTTP Basic: the password hash checked once, not on every request --------------------------
# Django hashes a password with PBKDF2 at 1,000,000 iterations, a quarter of a CPU second: on every
# Basic-authenticated request that would cap a partner at a few requests a second per core. A
# password that checked out is remembered, in this process, as a keyed digest of the user, their
# current password hash and the password given: a changed password (new hash), a deactivated user
# (checked on every request) or a removed permission take effect at once, the entry only saves
# the hashing. Nothing here must be shared between processes: each learns its own.

BASIC_CACHE_SECONDS = 300
BASIC_CACHE_SIZE = 1024
_verified: OrderedDict[bytes, float] = OrderedDict()
_verified_lock = threading.Lock()


def _verified_key(user, password: str) -> bytes:
    message = f"{user.pk}\x00{user.password}\x00{password}".encode()
    return hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).digest()


def basic_password_ok(user, password: str, *, now: float | None = None) -> bool:
    """user.check_password(password), skipped when this process checked the same one lately."""
    now = time.monotonic() if now is None else now
    key = _verified_key(user, password)
    with _verified_lock:
        checked_at = _verified.get(key)
        if checked_at is not None and now - checked_at < BASIC_CACHE_SECONDS:
            return True
        _verified.pop(key, None)
    if not user.check_password(password):
        return False
    key = _verified_key(user, password)  # check_password may have upgraded the hash
    with _verified_lock:
        _verified[key] = now
        while len(_verified) > BASIC_CACHE_SIZE:
            _verified.popitem(last=False)
    return True
