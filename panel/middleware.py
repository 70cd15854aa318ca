"""The client panel in the subscriber's language (docs/panel.md, "Languages").

Only requests to the panel are translated: the admin, the REST API and the reports stay English
whatever the browser asks, so the language is activated around the panel's response alone and
never left active on the thread for the next request.
"""

import functools

from django.conf import settings
from django.urls import NoReverseMatch, get_script_prefix, reverse
from django.utils import translation
from django.utils.cache import patch_vary_headers


def supported(language: str | None) -> str | None:
    """`language` when the panel speaks it (exactly one of settings.LANGUAGES), else None."""
    return language if language in dict(settings.LANGUAGES) else None


def use_saved_language(request, subscriber) -> None:
    """Once the page knows its subscriber (loaded anyway: no query of its own), their saved
    choice replaces the browser's for the rest of the response."""
    language = supported(getattr(subscriber, "language", None))
    if language:
        translation.activate(language)
        request.LANGUAGE_CODE = language


def _is_panel(request) -> bool:
    urlconf = getattr(request, "urlconf", None) or settings.ROOT_URLCONF
    prefix = _panel_prefix(get_script_prefix(), urlconf)
    # request.path, like reverse(), carries the script prefix of a site mounted below "/".
    return prefix is not None and request.path.startswith(prefix)


@functools.lru_cache(maxsize=16)
def _panel_prefix(script_prefix: str, urlconf: str) -> str | None:
    """Where the panel's pages start, looked up once per mount point and URLconf (every
    request asks, the REST API's included). None for a URLconf without the panel (a server of
    the REST API alone): its requests pass untouched, never a 500 from the lookup."""
    try:
        return reverse("panel:dashboard", urlconf=urlconf)
    except NoReverseMatch:
        return None


class PanelLanguageMiddleware:
    """Until the subscriber is known: the language cookie (a choice made on the login page),
    else the browser's Accept-Language, else English."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not _is_panel(request):
            return self.get_response(request)
        language = translation.get_language_from_request(request)
        with translation.override(language):
            request.LANGUAGE_CODE = language
            response = self.get_response(request)
            language = translation.get_language()
        patch_vary_headers(response, ("Accept-Language", "Cookie"))
        response.headers.setdefault("Content-Language", language)
        return response
