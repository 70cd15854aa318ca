"""What one app server process remembers between REST requests, to spare the common card top-up
a round trip (views.TopupView, docs/rest-api.md "Speed on PostgreSQL").

- Rate leases: the throttle counts a token client's requests in the shared counter a few at a
  time (`lease_size`, at most 1/LEASE_SHARE of the rate) and hands them out here, so most
  requests need no write to the counter. A lease is good for the counter's slot it was counted
  in only. Requests counted but not made are never handed back to the counter: a client may be
  refused up to (processes x lease) requests before its rate, never let past it.
- Token hints: which user a token named when it last authenticated in this process, as a keyed
  digest (no token is kept). A hint only lets the view ask the database for that user and the
  top-up in one statement; the statement checks the token, the user and their rights again,
  and nobody whose token never authenticated here makes the API read a body before its checks.
"""

import hashlib
import hmac
import threading
from collections import OrderedDict

from django.conf import settings

LEASE_SHARE = 200
LEASE_MAX = 100
HINTS_SIZE = 1024


def lease_size(limit: int) -> int:
    """Requests counted at once for a rate of `limit` a period: 1 up to 399 a period."""
    return max(1, min(LEASE_MAX, limit // LEASE_SHARE))


class Leases:
    def __init__(self):
        self._lock = threading.Lock()
        self._left: dict[str, tuple[int, int]] = {}

    def keep(self, key: str, slot: int, count: int) -> None:
        """`count` more requests counted under `key` in `slot` and not made yet."""
        with self._lock:
            held = self._left.get(key)
            left = held[1] if held is not None and held[0] == slot else 0
            self._left[key] = (slot, left + count)

    def take(self, key: str, slot: int) -> bool:
        """One request of the lease, if it holds one for this slot."""
        with self._lock:
            held = self._left.get(key)
            if held is None or held[0] != slot or held[1] <= 0:
                return False
            self._left[key] = (slot, held[1] - 1)
            return True

    def clear(self) -> None:
        with self._lock:
            self._left.clear()

    def give_back(self, key: str, slot: int) -> None:
        """A request taken and then not made (its caller failed the view's checks)."""
        with self._lock:
            held = self._left.get(key)
            if held is not None and held[0] == slot:
                self._left[key] = (slot, held[1] + 1)


class TokenHints:
    def __init__(self):
        self._lock = threading.Lock()
        self._users: OrderedDict[bytes, int] = OrderedDict()

    @staticmethod
    def _digest(token: str) -> bytes:
        return hmac.new(settings.SECRET_KEY.encode(), token.encode(), hashlib.sha256).digest()

    def remember(self, token: str, user_id: int) -> None:
        digest = self._digest(token)
        with self._lock:
            self._users[digest] = user_id
            self._users.move_to_end(digest)
            while len(self._users) > HINTS_SIZE:
                self._users.popitem(last=False)

    def user_of(self, token: str) -> int | None:
        with self._lock:
            return self._users.get(self._digest(token))

    def clear(self) -> None:
        with self._lock:
            self._users.clear()

    def forget(self, token: str) -> None:
        with self._lock:
            self._users.pop(self._digest(token), None)


leases = Leases()
token_hints = TokenHints()
