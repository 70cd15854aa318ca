"""`generate_cards` with DEBUG on (what `make run` uses) keeps a bounded query log: Django keeps
every query's SQL until a request starts, and a command never starts one."""

import io

import pytest
from django.core.management import call_command
from django.db import connection

from cards.management.commands import generate_cards
from cards.models import TopUpCard
from cards.services import generation
from common.querylog import KEPT_QUERIES

pytestmark = pytest.mark.django_db


def test_generate_cards_with_debug_on_keeps_the_query_log_bounded(settings, monkeypatch):
    settings.DEBUG = True
    # many small statements, so a log that grows would outgrow the bound
    monkeypatch.setattr(generation, "_CHUNK", 2)
    monkeypatch.setattr(generation, "_INSERT_SLICE", 2)
    logged, executed = [], [0]

    class Bar:
        def __init__(self, stream):
            pass

        def __call__(self, done, total):
            logged.append(len(connection.queries_log))

    def count(execute, sql, params, many, context):
        executed[0] += 1
        return execute(sql, params, many, context)

    monkeypatch.setattr(generate_cards, "ProgressBar", Bar)
    # cards already there: on PostgreSQL the staged path, in slices
    call_command(
        "generate_cards",
        series="3",
        quantity=10,
        amount="5",
        expires="2099-01-01",
        stdout=io.StringIO(),
    )
    with connection.execute_wrapper(count):
        call_command(
            "generate_cards",
            series="4",
            quantity=400,
            amount="5",
            expires="2099-01-01",
            stdout=io.StringIO(),
        )

    assert TopUpCard.objects.filter(series="4").count() == 400
    assert executed[0] > 2 * KEPT_QUERIES
    assert logged and max(logged) <= KEPT_QUERIES
