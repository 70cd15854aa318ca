"""Settings shared by every environment.

Everything secret or host-specific comes from the environment.
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def env(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None:
        raise ImproperlyConfigured(f"Set the environment variable {name}.")
    return value


def env_bool(name: str, default: bool) -> bool:
    return env(name, "1" if default else "0").strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


SECRET_KEY = env("SECRET_KEY")
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "import_export",
    "django_tasks",
    "django_tasks_db",
    "axes",
    "subscribers",
    "wallets",
    "cards",
    "reports",
    "panel",
    "rsgateway",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # The client panel in the subscriber's language; everything else stays English (docs/panel.md).
    "panel.middleware.PanelLanguageMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # After a staff user's write, their stale-tolerant reads stay on the primary (docs/replicas.md).
    "common.replicas.ReadYourWritesMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "config.middleware.ContentSecurityPolicyMiddleware",
    "config.middleware.DatabaseBusyMiddleware",
    # Last, as django-axes asks: it turns a locked login into the lock page (common/login_guard.py).
    "axes.middleware.AxesMiddleware",
]

# The login guard first: it refuses a locked (username, address) before the password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    # Django's ModelBackend, reading a session's user with a prepared statement.
    "config.auth.ModelBackend",
]
# Django's database sessions, read with a prepared statement.
SESSION_ENGINE = "config.sessions"

# Content-Security-Policy of every response (config/middleware.py): only this site's own files.
# Empty dict: no header.
CONTENT_SECURITY_POLICY = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'"],
    "font-src": ["'self'"],
    "connect-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'none'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# SQLite is the embedded default so `make run` works on a bare machine; production sets
# DATABASE_URL.
DATABASES = {
    "default": dj_database_url.parse(
        env("DATABASE_URL", "") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=int(env("CONN_MAX_AGE", "0")),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # `make run` writes from two processes (runserver and run_worker): a background batch holds
    # the write lock for seconds or minutes. In WAL mode readers never wait on it; IMMEDIATE
    # transactions take the write lock at BEGIN, so a writer waits up to the timeout for its
    # turn instead of failing at once when a read turns into a write (docs/domain.md, "SQLite").
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
        "timeout": int(env("SQLITE_BUSY_TIMEOUT_SECONDS", "60")),
        "transaction_mode": "IMMEDIATE",
        **DATABASES["default"].get("OPTIONS", {}),
    }
# "transaction" when DATABASE_URL reaches PostgreSQL through a pooler in transaction mode
# (PgBouncer: deploy/pgbouncer/): each transaction may run on another server connection, so
# nothing may outlive one. Django's server-side cursors (QuerySet.iterator() outside a
# transaction declares a cursor WITH HOLD and fetches it later) are turned off.
DATABASE_POOLER = env("DATABASE_POOLER", "").strip().lower()
if DATABASE_POOLER not in {"", "session", "transaction"}:
    raise ImproperlyConfigured("DATABASE_POOLER is empty, 'session' or 'transaction'.")
if DATABASE_POOLER == "transaction":
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True


def _without_jit(database: dict) -> dict:
    """PostgreSQL's JIT compiler off for this connection. The planner's estimates for the
    reports' and exports' queries over millions of cards pass JIT's thresholds, and compiling
    took longer than running: Liability today at 10M cards 926-966 ms with JIT, 277-282 ms
    without (0.96 s of one query's 1.5 s was compiling a 30 ms query). This app runs short,
    indexed queries, where JIT never pays. A pooler refuses startup options (PgBouncer: an
    "unsupported startup parameter" error), so behind one the pooler sets it when it connects
    (`connect_query`, README "Deploying for real")."""
    if DATABASE_POOLER or database["ENGINE"] != "django.db.backends.postgresql":
        return database
    options = database.setdefault("OPTIONS", {})
    options["options"] = f"{options.get('options', '')} -c jit=off".strip()
    return database


_without_jit(DATABASES["default"])
# --- Read replicas (docs/replicas.md): none by default, everything reads the primary. ---
# Comma-separated URLs of PostgreSQL streaming replicas of DATABASE_URL (aliases replica1, …).
# Only reads marked stale-tolerant go there (common/replicas.py); a replica that is down or
# lags more than REPLICA_MAX_LAG_SECONDS is skipped, checked at most every
# REPLICA_HEALTH_CHECK_SECONDS per process. After a staff user's write, their reads stay on the
# primary until a replica has replayed it (at most REPLICA_READ_YOUR_WRITES_SECONDS).
DATABASE_REPLICAS = []
for _number, _url in enumerate(env_list("DATABASE_REPLICA_URLS"), start=1):
    _replica = dj_database_url.parse(_url, conn_max_age=int(env("CONN_MAX_AGE", "0")))
    # A replica that does not answer costs a page at most this long, once per health check.
    _replica["OPTIONS"] = {"connect_timeout": 2, **_replica.get("OPTIONS", {})}
    _replica["TEST"] = {"MIRROR": "default"}
    DATABASES[f"replica{_number}"] = _without_jit(_replica)
    DATABASE_REPLICAS.append(f"replica{_number}")
DATABASE_ROUTERS = ["common.replicas.ReplicaRouter"]
REPLICA_MAX_LAG_SECONDS = float(env("REPLICA_MAX_LAG_SECONDS", "10"))
REPLICA_HEALTH_CHECK_SECONDS = float(env("REPLICA_HEALTH_CHECK_SECONDS", "5"))
REPLICA_READ_YOUR_WRITES_SECONDS = int(env("REPLICA_READ_YOUR_WRITES_SECONDS", "300"))

# The statements every REST request runs are prepared once per connection (wallets/sql.py).
# Off by default behind a pooler in transaction mode: PgBouncer keeps prepared statements only
# from 1.21 with max_prepared_statements set (then set 1); Debian 12's 1.18 does not.
DATABASE_PREPARED_STATEMENTS = env_bool(
    "DATABASE_PREPARED_STATEMENTS", DATABASE_POOLER != "transaction"
)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
# The client panel's languages (docs/panel.md, "Languages"); the admin, the REST API and the
# reports are English whatever the browser asks. The catalogs are in locale/, .mo files
# committed so `make run` needs no GNU gettext.
LANGUAGES = [
    ("en", "English"),
    ("es", "Español"),
    ("fr", "Français"),
]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"

LOGIN_URL = "/panel/login/"
LOGIN_REDIRECT_URL = "/panel/"

# --- Redemption brute-force protection (docs/panel.md, cards/lockout.py) ---
# N wrong codes within the window lock redemption for the duration: per subscriber (panel) and
# per API client and end subscriber (REST), strictly.
REDEEM_LOCKOUT_FAILURES = int(env("REDEEM_LOCKOUT_FAILURES", "5"))
REDEEM_LOCKOUT_API_FAILURES = int(env("REDEEM_LOCKOUT_API_FAILURES", str(REDEEM_LOCKOUT_FAILURES)))
# Shared keys, sized so that customers are never locked by others: one client address (carrier
# NAT: hundreds of subscribers behind it; locks only those who failed themselves) and one API
# client as a whole (thousands of end users; one end user can add at most the strict limit).
REDEEM_LOCKOUT_ADDRESS_FAILURES = int(env("REDEEM_LOCKOUT_ADDRESS_FAILURES", "50"))
REDEEM_LOCKOUT_API_CLIENT_FAILURES = int(env("REDEEM_LOCKOUT_API_CLIENT_FAILURES", "250"))
REDEEM_LOCKOUT_WINDOW = timedelta(minutes=int(env("REDEEM_LOCKOUT_WINDOW_MINUTES", "15")))
REDEEM_LOCKOUT_DURATION = timedelta(minutes=int(env("REDEEM_LOCKOUT_DURATION_MINUTES", "15")))
# IPv6 clients are counted per network of this prefix length (one home or phone gets a /64).
REDEEM_LOCKOUT_IPV6_PREFIX = int(env("REDEEM_LOCKOUT_IPV6_PREFIX", "64"))
# Global failure budget: more failed redemptions than this across everyone within the window
# raises an alert on every admin page, with the top sources.
REDEEM_FAILURE_BUDGET = int(env("REDEEM_FAILURE_BUDGET", "100"))
REDEEM_FAILURE_BUDGET_WINDOW = timedelta(
    minutes=int(env("REDEEM_FAILURE_BUDGET_WINDOW_MINUTES", "10"))
)
# Reverse proxies in front of the app that append to X-Forwarded-For (0: use REMOTE_ADDR).
TRUSTED_PROXY_COUNT = int(env("TRUSTED_PROXY_COUNT", "0"))

# --- Login protection for the admin and the client panel (docs/panel.md "Logins") ---
# django-axes with its database handler (every app server counts the same), specialised in
# common/login_guard.py: counted per (username, client address), the check and the count made
# together so parallel attempts cannot slip past the limit.
LOGIN_LOCKOUT_FAILURES = int(env("LOGIN_LOCKOUT_FAILURES", "5"))
# Failed logins within the cool-off from one address (all usernames: sized for 200 subscribers
# behind one carrier NAT address) or on one username (all addresses) above which every
# (username, address) pair gets one try only: who has not failed still logs in.
LOGIN_LOCKOUT_ADDRESS_FAILURES = int(env("LOGIN_LOCKOUT_ADDRESS_FAILURES", "100"))
LOGIN_LOCKOUT_USERNAME_FAILURES = int(env("LOGIN_LOCKOUT_USERNAME_FAILURES", "20"))
# More failed logins than this across everyone within REDEEM_FAILURE_BUDGET_WINDOW joins the
# failure alert on every admin page (cards/templatetags/redemption_alert.py).
LOGIN_FAILURE_BUDGET = int(env("LOGIN_FAILURE_BUDGET", "50"))

AXES_HANDLER = "common.login_guard.LoginGuardHandler"
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_FAILURE_LIMIT = "common.login_guard.failure_limit"
# A pair is locked until this long after its last counted failure.
AXES_COOLOFF_TIME = timedelta(minutes=int(env("LOGIN_LOCKOUT_COOLOFF_MINUTES", "15")))
# Attempts refused by a lock are audited but do not extend it: the lock ends when it says.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_RESET_ON_SUCCESS = False
AXES_CLIENT_IP_CALLABLE = "common.login_guard.client_address"
AXES_USERNAME_CALLABLE = "common.login_guard.login_username"
AXES_LOCKOUT_CALLABLE = "common.login_guard.lockout_response"
AXES_HTTP_RESPONSE_CODE = 429
AXES_ENABLE_ACCESS_FAILURE_LOG = True
# The audit pages are registered read-only and closed to reseller-scoped staff in
# subscribers/admin_logins.py instead of axes' own editable ones.
AXES_ENABLE_ADMIN = False

# --- PIN secrets: kept outside the database (see README, "Rotating the PIN keys"). ---
# Keyed digest for lookups: HMAC-SHA256. The first key is current; older keys still find old cards.
PIN_DIGEST_KEYS = env_list("PIN_DIGEST_KEYS")
# Encrypted copy for staff holding cards.view_pin: AES-256-GCM, "key_id:base64url(32 bytes)".
# The first key encrypts; every listed key decrypts.
PIN_ENCRYPTION_KEYS = env_list("PIN_ENCRYPTION_KEYS")

# Rule E5: MATRIXX "Should a manual balance adjustment allow the end time be set in the past".
ALLOW_END_TIME_IN_PAST = env_bool("ALLOW_END_TIME_IN_PAST", False)

# Throttle and failed-login counters must be shared by every app server process: keep them in
# the database (`manage.py createcachetable`; the test runner creates the table itself).
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "topup_cache",
    }
}

# Background work (large card batches) runs on Django's tasks framework through the
# django-tasks backport and its database backend: no extra broker to run, and the queue lives
# in PostgreSQL with everything else. Start a worker with `manage.py run_worker` (db_worker that
# waits out a database restart).
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
# Batches up to this many cards are generated during the request; larger ones in the background.
GENERATION_SYNC_LIMIT = int(env("GENERATION_SYNC_LIMIT", "20000"))
# A running job whose progress has not moved for this long is shown as interrupted.
GENERATION_JOB_STALE_SECONDS = int(env("GENERATION_JOB_STALE_SECONDS", "120"))
# Mass Edit and Delete all of up to this many cards run during the request; larger selections
# in the background (a request must end within gunicorn's 30 s; 100,000 cards take about 7 s).
MASS_EDIT_SYNC_LIMIT = int(env("MASS_EDIT_SYNC_LIMIT", "50000"))
# PostgreSQL cancels a statement of the cards' table page (Advanced Search, counts, the page of
# rows) that runs or waits longer than this; the operator is told to narrow the search instead of
# waiting for gunicorn to kill the request at 30 s (a search held up by a lock waits here too).
CARD_SEARCH_TIMEOUT_MS = int(env("CARD_SEARCH_TIMEOUT_MS", "10000"))
# The admin streams an export of at most this many cards. gunicorn's sync worker is killed 30 s
# into a request, streaming or not: 1M cards with PINs are about 120 MB and 7 s on a quiet
# server, 10M would be cut off half-way. Larger selections are refused with the way round
# (a narrower search, `manage.py export_cards`, a print order): docs/cards.md, "Export".
EXPORT_HTTP_MAX_CARDS = int(env("EXPORT_HTTP_MAX_CARDS", "1000000"))
# A background Mass Edit / Delete all changes this many cards per transaction: a redemption of a
# card in its selection waits for one chunk at most (docs/cards.md, Background jobs).
MASS_EDIT_CHUNK_SIZE = int(env("MASS_EDIT_CHUNK_SIZE", "1000"))
# Print orders (docs/printing.md): gpg works in a private directory made here for each
# operation (the system's temporary directory when unset); it only ever holds public keys and
# ciphertext. At most this many cards per print order.
PRINT_TEMP_DIR = env("PRINT_TEMP_DIR", "") or None
PRINT_ORDER_MAX_CARDS = int(env("PRINT_ORDER_MAX_CARDS", "1000000"))
# The finance reports' daily summary takes a day this long after it closed, so a transaction
# still open at midnight (a large batch, a Mass Edit job) has committed (reports/README.md).
REPORTS_SUMMARY_SETTLE = timedelta(minutes=int(env("REPORTS_SUMMARY_SETTLE_MINUTES", "60")))

# django-import-export: importing cards needs cards.add_topupcard (and cards.view_pin, unscoped:
# docs/reliability.md), the Export action cards.view_topupcard. An uploaded file holds clear
# PINs: it waits for its confirmation encrypted under the PIN key in the shared cache (not on one
# app server's disk), for IMPORT_UPLOAD_LIFETIME at most (cards/import_storage.py).
IMPORT_EXPORT_IMPORT_PERMISSION_CODE = "add"
IMPORT_EXPORT_EXPORT_PERMISSION_CODE = "view"
IMPORT_EXPORT_TMP_STORAGE_CLASS = "cards.import_storage.EncryptedImportStorage"
IMPORT_UPLOAD_LIFETIME = timedelta(minutes=30)
# Import files of up to this many rows are checked during the request; larger ones by the worker
# (docs/cards.md, "Import"): 10,000 rows took 4.8 s to preview and 4.5 s to import in the
# request on the shared 2-core machine at load 10 (bench/README.md), well inside gunicorn's 30 s
# with the preview page's table of every row on top.
IMPORT_SYNC_LIMIT = int(env("IMPORT_SYNC_LIMIT", "10000"))
# Uploads stay in memory, never in a temporary file (Django writes larger ones to disk): files
# larger than this are refused.
FILE_UPLOAD_HANDLERS = ["django.core.files.uploadhandler.MemoryFileUploadHandler"]
FILE_UPLOAD_MAX_MEMORY_SIZE = 32 * 1024 * 1024

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.BasicAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # Per API client (user); the cache must be shared by every worker in production (CACHES).
    "DEFAULT_THROTTLE_RATES": {"rsgateway": env("RSGATEWAY_THROTTLE_RATE", "3000/min")},
    # Throttling identifies clients behind the same proxies as the lockout (TRUSTED_PROXY_COUNT).
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    # django-axes logs every login and clean-up at INFO; the audit is in its tables.
    "loggers": {"axes": {"level": env("AXES_LOG_LEVEL", "WARNING")}},
}
