"""Queue card jobs in the worker-outage test's own cluster (not a test module):
`python -m tests.reliability.worker_outage_jobs seed|mass_edit|generate`. Prints the job id.

Run in a process of its own with DATABASE_URL naming the throwaway cluster, as an operator's
request would queue them (the job row and its task committed together).
"""

import datetime as dt
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")

import django  # noqa: E402

django.setup()

from django.utils import timezone  # noqa: E402

from cards.jobs.generation import generation_job_start  # noqa: E402
from cards.jobs.mass import mass_edit_job_start  # noqa: E402
from tests.factories import BalanceTemplateFactory, TopUpCardFactory, UserFactory  # noqa: E402

OPERATOR = "ops"
SERIES = "7"


def main() -> None:
    action = sys.argv[1]
    if action == "seed":
        UserFactory(username=OPERATOR, is_staff=True, is_superuser=True)
        BalanceTemplateFactory(currency="USD")  # cards are generated only in a redeemable currency
        for number in range(1, 6):
            TopUpCardFactory(series=SERIES, number=number, reseller=None)
        return
    from django.contrib.auth import get_user_model

    operator = get_user_model().objects.get(username=OPERATOR)
    if action == "mass_edit":
        job = mass_edit_job_start(
            filters={"series": SERIES}, expected=5, changes={"blocked": True}, actor=operator
        )
    else:
        job = generation_job_start(
            series="8",
            quantity=20,
            amount="5.00",
            currency="USD",
            pin_length=12,
            reseller=None,
            expires_at=timezone.now() + dt.timedelta(days=30),
            actor=operator,
        )
    print(job.pk)


if __name__ == "__main__":
    main()
