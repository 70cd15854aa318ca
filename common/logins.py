"""Reads of the login audit (django-axes' AccessFailureLog) for the failure alert."""

import datetime as dt
from dataclasses import dataclass, field

from axes.models import AccessFailureLog
from django.conf import settings
from django.db.models import Subquery
from django.utils import timezone

from common.queries import top_values

# Bounded work on every admin page, even under a flood: only the latest failures are read (by
# primary key: the log has no index on its time); more than this in the window reads "at least".
_SAMPLE = 10_000


@dataclass(frozen=True)
class LoginFailures:
    failures: int
    limit: int
    window: dt.timedelta
    capped: bool = False
    top_addresses: list[tuple[str, int]] = field(default_factory=list)
    top_usernames: list[tuple[str, int]] = field(default_factory=list)

    @property
    def exceeded(self) -> bool:
        return self.failures > self.limit

    @property
    def window_minutes(self) -> int:
        return int(self.window.total_seconds() // 60)


def login_failure_status(*, now: dt.datetime | None = None, top: int = 5) -> LoginFailures:
    """Failed logins (admin and panel, refused-by-lock ones included) in the alert's window;
    the top sources only when over LOGIN_FAILURE_BUDGET."""
    now = now or timezone.now()
    limit = int(getattr(settings, "LOGIN_FAILURE_BUDGET", 50))
    window = getattr(settings, "REDEEM_FAILURE_BUDGET_WINDOW", dt.timedelta(minutes=10))
    since = now - window

    def among_latest(size: int):
        latest = AccessFailureLog.objects.order_by("-pk").values("pk")[:size]
        return AccessFailureLog.objects.filter(
            pk__in=Subquery(latest), attempt_time__gt=since
        ).order_by()

    # The usual case reads limit + 1 rows: fewer of them in the window means the budget holds.
    failures = among_latest(limit + 1).count()
    if failures <= limit:
        return LoginFailures(failures=failures, limit=limit, window=window)
    recent = among_latest(_SAMPLE)
    failures = recent.count()

    return LoginFailures(
        failures=failures,
        limit=limit,
        window=window,
        capped=failures >= _SAMPLE,
        top_addresses=top_values(recent, "ip_address", top=top),
        top_usernames=top_values(recent, "username", top=top),
    )
