"""A Content-Security-Policy header on every response (Django 5.2 has no CSP support of its own).

Every page of the admin, the panel and the API docs loads only this site's own scripts, styles
and images, with no inline script or style, so the policy can forbid everything else: an injected
`<script>`, a foreign stylesheet, a form posting elsewhere, framing. A view that sets its own
policy (the panel's is stricter) keeps it.
"""

from django.conf import settings
from django.http import HttpResponse

from common.database import database_busy


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.policy = "; ".join(
            f"{directive} {' '.join(sources)}"
            for directive, sources in settings.CONTENT_SECURITY_POLICY.items()
        )

    def __call__(self, request):
        response = self.get_response(request)
        if self.policy:
            response.headers.setdefault("Content-Security-Policy", self.policy)
        return response


BUSY_RETRY_SECONDS = 30
BUSY_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Busy | Topup</title></head>
<body><h1>Busy: try again in a moment</h1>
<p>The database is busy with background work, such as a large card batch, and this request
could not wait any longer for its turn. Your request was not carried out: send it again in a
minute.</p></body></html>
"""


class DatabaseBusyMiddleware:
    """A request that waited the whole busy timeout for the SQLite write lock (`make run` while
    the worker writes a large batch) is told to come back, with 503 and Retry-After, instead of
    an error page: nothing was wrong with it. (The REST API answers its own MtxResponse,
    rsgateway/errors.py.)"""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not database_busy(exception):
            return None
        return HttpResponse(BUSY_PAGE, status=503, headers={"Retry-After": str(BUSY_RETRY_SECONDS)})
