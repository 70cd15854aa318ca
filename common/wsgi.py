"""The WSGI application: Django's, reading a request's charset without crashing on it."""

import django
from django.core.handlers.wsgi import WSGIHandler, WSGIRequest
from django.utils.http import parse_header_parameters

from .http import readable_charset


class Request(WSGIRequest):
    def _set_content_type_params(self, meta):
        """As Django's, but a charset that decodes nothing (`charset=rot13`, `charset=idna`) is
        ignored like an unknown one, and the query string is not decoded yet.

        Django's own version decodes the query string while the request is being built, before
        any middleware or error handler can answer: a bad charset or too many fields then
        ends as the server's bare 500 page instead of our answer (docs/rest-api.md).
        """
        self.content_type, self.content_params = parse_header_parameters(
            meta.get("CONTENT_TYPE", "")
        )
        charset = self.content_params.get("charset")
        if charset is not None and readable_charset(charset):
            self._encoding = charset


class Handler(WSGIHandler):
    request_class = Request


def get_wsgi_application() -> Handler:
    django.setup(set_prefix=False)
    return Handler()
