"""The bench fills drop indexes and keys for speed (bench/bulk.py): a benchmark is only fair if
every index and constraint is back, as it was, when the fill ends, even when the fill fails."""

import pytest
from django.db import connection

from bench.bulk import without_indexes

TABLES = ["cards_topupcard", "cards_cardevent", "wallets_ledgerentry"]


def schema() -> tuple[set, set]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE tablename = ANY(%s)",
            [TABLES],
        )
        indexes = set(cursor.fetchall())
        cursor.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), convalidated "
            "FROM pg_constraint WHERE conrelid = ANY(%s::regclass[]) "
            "OR confrelid = ANY(%s::regclass[])",
            [TABLES, TABLES],
        )
        return indexes, set(cursor.fetchall())


@pytest.mark.postgres
@pytest.mark.django_db
def test_every_index_and_key_is_back_as_it_was():
    before = schema()

    with connection.cursor() as cursor, without_indexes(cursor, TABLES):
        indexes, constraints = schema()
        assert indexes == set()
        assert {row[2].split(" ")[0] for row in constraints} <= {"CHECK"}

    assert schema() == before


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_failed_fill_still_gets_them_back():
    before = schema()

    with pytest.raises(ZeroDivisionError), connection.cursor() as cursor:
        with without_indexes(cursor, TABLES):
            1 / 0  # noqa: B018

    assert schema() == before
