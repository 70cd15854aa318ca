"""The card audit table, partitioned by month on PostgreSQL (docs/scaling.md, "Card events"):
an existing database is converted in place with its events and ids, the months ahead are made by
the command or the worker's task, an event of a month without its partition is kept and moved
into it once made, and a run that fails half-way leaves every event where it was."""

import datetime as dt
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection, connections
from django.utils import timezone

from cards.models import CardEvent, CardEventKind
from cards.services.partitions import cardevent_partitions_extend, month_start, next_month

ROOT = Path(__file__).resolve().parents[2]


def partition_of(event_id: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tableoid::regclass::text FROM cards_cardevent WHERE id = %s", [event_id]
        )
        return cursor.fetchone()[0]


def partitions() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT inhrelid::regclass::text FROM pg_inherits "
            "WHERE inhparent = 'cards_cardevent'::regclass ORDER BY 1"
        )
        return [name for (name,) in cursor.fetchall()]


def months_later(months: int) -> dt.datetime:
    start = month_start(timezone.now())
    for _ in range(months):
        start = next_month(start)
    return start


def event_at(at: dt.datetime) -> CardEvent:
    return CardEvent.objects.create(
        kind=CardEventKind.EXPORTED, serial="7-000000001", created_at=at
    )


@pytest.mark.postgres
@pytest.mark.django_db
def test_an_event_of_a_month_without_partition_is_kept_then_moved_into_its_month():
    far = months_later(6) + dt.timedelta(days=10)
    event = event_at(far)
    assert partition_of(event.pk) == "cards_cardevent_default"

    result = cardevent_partitions_extend(now=far)

    assert f"cards_cardevent_{far:%Y_%m}" in result.made and result.moved == 1
    assert partition_of(event.pk) == f"cards_cardevent_{far:%Y_%m}"
    assert CardEvent.objects.get(pk=event.pk).created_at == far
    assert cardevent_partitions_extend(now=far).made == ()


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_run_failing_half_way_keeps_the_months_made_before_and_moves_no_event():
    far = months_later(6) + dt.timedelta(days=10)
    event = event_at(far)
    before = set(partitions())
    with connection.cursor() as cursor:  # a table in the way of that month's partition
        cursor.execute(f"CREATE TABLE cards_cardevent_{far:%Y_%m} (x int)")

    with pytest.raises(Exception, match="already exists"):
        cardevent_partitions_extend(now=far)

    made = set(partitions()) - before
    assert made and all(name < f"cards_cardevent_{far:%Y_%m}" for name in made)
    assert partition_of(event.pk) == "cards_cardevent_default"
    assert CardEvent.objects.filter(pk=event.pk).count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_parallel_runs_make_each_month_once():
    far = months_later(8)
    before = set(partitions())
    results, errors = [], []

    def run():
        try:
            results.append(cardevent_partitions_extend(now=far))
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connections.close_all()

    try:
        threads = [threading.Thread(target=run) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        made = set(partitions()) - before
        assert errors == []
        assert sorted(name for result in results for name in result.made) == sorted(made)
        assert f"cards_cardevent_{months_later(11):%Y_%m}" in made
    finally:
        with connection.cursor() as cursor:
            for name in set(partitions()) - before:
                cursor.execute(f"DROP TABLE {name}")


def test_the_command_says_what_it_made(db, capsys):
    call_command("cardevent_partitions")
    out = capsys.readouterr().out
    assert "partition(s) made" in out and "0 event(s) moved" in out


# --- converting an existing database -------------------------------------------------------------


def manage(database_url: str, *args: str) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
    }
    subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True
    )


@pytest.fixture
def scratch_database():
    """A database of its own, migrated by `manage.py` as an operator would."""
    settings = connection.settings_dict
    name = f"{settings['NAME']}_convert_{uuid.uuid4().hex[:8]}"
    server = dict(
        host=settings["HOST"],
        port=settings["PORT"] or 5432,
        user=settings["USER"],
        password=settings["PASSWORD"],
    )
    with psycopg.connect(dbname="postgres", autocommit=True, **server) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = (
        f"postgres://{server['user']}:{server['password']}@{server['host']}:{server['port']}/{name}"
    )
    try:
        with psycopg.connect(dbname=name, autocommit=True, **server) as database:
            yield url, database
    finally:
        with psycopg.connect(dbname="postgres", autocommit=True, **server) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.postgres
def test_an_existing_database_keeps_its_events_ids_and_checks(scratch_database):
    url, database = scratch_database
    manage(url, "migrate", "cards", "0010_printers_and_dormant_cards")
    database.execute(
        "INSERT INTO cards_cardevent (kind, serial, channel, changes, created_at) "
        "SELECT 'redeemed', '1-' || lpad(i::text, 9, '0'), 'panel', '{}', "
        "now() - i * interval '3 days' FROM generate_series(1, 500) i"
    )
    old = database.execute(
        "SELECT id, kind, serial, created_at FROM cards_cardevent ORDER BY id"
    ).fetchall()

    manage(url, "migrate")

    kind = database.execute("SELECT relkind FROM pg_class WHERE relname = 'cards_cardevent'")
    assert kind.fetchone()[0] == "p"
    rows = database.execute(
        "SELECT id, kind, serial, created_at, tableoid::regclass::text FROM cards_cardevent "
        "ORDER BY id"
    ).fetchall()
    assert [row[:4] for row in rows] == old
    assert {row[4] for row in rows} == {
        name
        for (name,) in database.execute(
            "SELECT relname FROM pg_class WHERE relname LIKE 'cards_cardevent_before_%' "
            "AND relkind = 'r'"
        )
    }
    # Ids go on from the old sequence; every index of the parent has its twin on the old table
    # (attached, not built again), and the foreign keys still hold.
    new_id = database.execute(
        "INSERT INTO cards_cardevent (kind, serial, channel, changes, created_at) "
        "VALUES ('exported', '', 'admin', '{}', now()) RETURNING id"
    ).fetchone()[0]
    assert new_id == old[-1][0] + 1
    legacy = rows[0][4]

    def count(query: str) -> int:
        return database.execute(query, [legacy]).fetchone()[0]

    parent_indexes = count(
        "SELECT count(*) FROM pg_index WHERE indrelid = 'cards_cardevent'::regclass AND %s <> ''"
    )
    legacy_indexes = count("SELECT count(*) FROM pg_index WHERE indrelid = %s::regclass")
    attached = count(
        "SELECT count(*) FROM pg_index i JOIN pg_inherits h ON h.inhrelid = i.indexrelid "
        "WHERE i.indrelid = %s::regclass"
    )
    assert parent_indexes == legacy_indexes == attached == 12
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        database.execute(
            "INSERT INTO cards_cardevent (kind, serial, channel, changes, created_at, card_id) "
            "VALUES ('exported', '', 'admin', '{}', now(), 999999)"
        )
    assert database.execute("SELECT count(*) FROM cards_cardevent").fetchone()[0] == 501

    manage(url, "migrate", "cards", "0010_printers_and_dormant_cards")  # and back: still served
    manage(url, "migrate")
    assert database.execute("SELECT count(*) FROM cards_cardevent").fetchone()[0] == 501
