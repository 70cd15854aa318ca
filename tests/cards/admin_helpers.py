"""Shared helpers for the card admin tests."""

from django.contrib.auth.models import Permission

from tests.factories import UserFactory

CARD_PERMS = ["view_topupcard", "add_topupcard", "change_topupcard", "delete_topupcard"]


def operator(*codenames, username="operator", **kwargs):
    """A staff user with the given card permissions (all card permissions by default)."""
    user = UserFactory(username=username, is_staff=True, **kwargs)
    for codename in codenames or CARD_PERMS:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return user


def snapshot(model):
    """Every row of a model as plain values: to assert that a failure changed nothing."""
    return [tuple(sorted(row.items())) for row in model.objects.order_by("pk").values()]
