"""Settings of the baseline server: the project's, with the minimal view as the only URL."""

from config.settings.local import *  # noqa: F403

ROOT_URLCONF = "bench.topup_minimal_app"
