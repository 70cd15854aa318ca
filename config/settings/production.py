"""Production: every secret comes from the environment, nothing has a default."""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import PIN_DIGEST_KEYS, PIN_ENCRYPTION_KEYS, env, env_bool, env_list
from .dev_keys import DEV_PIN_DIGEST_KEY, DEV_PIN_ENCRYPTION_KEY

if DEBUG:
    raise ImproperlyConfigured("DEBUG must be off in production.")
if not PIN_DIGEST_KEYS or not PIN_ENCRYPTION_KEYS:
    raise ImproperlyConfigured("Set PIN_DIGEST_KEYS and PIN_ENCRYPTION_KEYS.")
if DEV_PIN_DIGEST_KEY in PIN_DIGEST_KEYS or DEV_PIN_ENCRYPTION_KEY in PIN_ENCRYPTION_KEYS:
    raise ImproperlyConfigured("The development PIN keys must not be used in production.")

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = int(env("SECURE_HSTS_SECONDS", "31536000"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_SECURE = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_AGE = 60 * 60 * 8
# Sessions and CSRF (client panel and admin). "__Host-" cookies are accepted by browsers only
# when Secure, for this exact host and path /, so a sibling subdomain cannot plant or read them.
SESSION_COOKIE_NAME = "__Host-sessionid"
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
CSRF_COOKIE_NAME = "__Host-csrftoken"
CSRF_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# SECURE_PROXY_SSL_HEADER above assumes one reverse proxy; the redemption lockout must then count
# the client address it forwards, not the proxy's own (common.http.client_ip).
TRUSTED_PROXY_COUNT = int(env("TRUSTED_PROXY_COUNT", "1"))
REST_FRAMEWORK = {**REST_FRAMEWORK, "NUM_PROXIES": TRUSTED_PROXY_COUNT}
# Keep each app server's database connections for a minute (Django's default closes them after
# every request): saves a connection set-up per request and keeps the REST hot path's prepared
# statements (wallets/sql.py). Checked before reuse, so a restarted database costs no request.
DATABASES["default"]["CONN_MAX_AGE"] = int(env("CONN_MAX_AGE", "60"))
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
for _alias in DATABASE_REPLICAS:
    DATABASES[_alias]["CONN_MAX_AGE"] = DATABASES["default"]["CONN_MAX_AGE"]
    DATABASES[_alias]["CONN_HEALTH_CHECKS"] = True
