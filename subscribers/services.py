"""Writes of the subscribers app."""

from django.conf import settings
from django.db import transaction

from .models import Subscriber


@transaction.atomic
def subscriber_language_set(*, subscriber: Subscriber, language: str, actor) -> Subscriber:
    """Saves the language the subscriber reads the client panel in (docs/panel.md,
    "Languages"): one of settings.LANGUAGES, or "" to follow the browser. Only the subscriber
    whose login `actor` is may choose it. A preference, not money: no audit event."""
    if language and language not in dict(settings.LANGUAGES):
        raise ValueError(f"The client panel does not speak {language!r}.")
    if subscriber.user_id is None or subscriber.user_id != actor.pk:
        raise PermissionError("Only the subscriber may choose the language of their panel.")
    Subscriber.objects.filter(pk=subscriber.pk).update(language=language)
    subscriber.language = language
    return subscriber
