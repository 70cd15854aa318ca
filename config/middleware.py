"""A Content-Security-Policy header on every response (Django 5.2 has no CSP support of its own).

Every page of the admin, the panel and the API docs loads only this site's own scripts, styles
and images, with no inline script or style, so the policy can forbid everything else: an injected
`<script>`, a foreign stylesheet, a form posting elsewhere, framing. A view that sets its own
policy (the panel's is stricter) keeps it.
"""

from django.conf import settings


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
