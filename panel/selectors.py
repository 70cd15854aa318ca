"""Reads of the client panel."""

from django.contrib.auth.models import Permission
from django.db.models import Exists, OuterRef, Q, Value

from subscribers.models import Subscriber


def panel_subscriber(user, *, permission: str) -> Subscriber | None:
    """The subscriber `user` logs in as, annotated `can` (whether the user holds `permission`,
    "app_label.codename", as user.has_perm answers it), in one query; None when not linked.

    Loaded on every panel request: the redemption's round trips are counted (docs/panel.md).
    """
    app_label, codename = permission.split(".", 1)
    if user.is_superuser:
        held = Value(user.is_active)
    else:
        granted = Q(user=OuterRef("user")) | Q(group__user=OuterRef("user"))
        held = Exists(
            Permission.objects.filter(granted, content_type__app_label=app_label, codename=codename)
        ) & Value(user.is_active)
    subscriber = Subscriber.objects.filter(user=user).annotate(can=held).order_by().first()
    if subscriber is not None:
        user._state.fields_cache["subscriber"] = subscriber
    return subscriber
