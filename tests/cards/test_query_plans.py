"""Query plans of the cards changelist on PostgreSQL, with realistic statistics.

No request runs a COUNT(*) of the whole table or a SELECT DISTINCT; the page query of every
single-field search reaches its rows through an index; a capped count may only read the table
sequentially under its LIMIT (the cheapest way to the first cap rows of a filter most rows
match), and then stops early (never the whole table).
"""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from cards import pins, selectors

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]
ROWS = 20_000
CAP = 200
KNOWN_PIN = "45242829385" + pins.luhn_check_digit("45242829385")

LOAD = """
INSERT INTO subscribers_reseller (name, created_at)
    SELECT 'Plan Reseller ' || i, now() FROM generate_series(1, 10) i;
INSERT INTO subscribers_subscriber (name, created_at)
    SELECT 'Plan Client ' || lpad(i::text, 4, '0'), now() FROM generate_series(1, 200) i;
INSERT INTO cards_topupcard (series, number, amount, currency, pin_digest, pin_encrypted,
    pin_length, pin_last4, reseller_id, expires_at, blocked, activated_at, activated_by_id,
    created_at)
SELECT ((i %% 10) + 1)::text, i / 10 + 1, (ARRAY[5, 10, 25, 50, 100])[1 + (i * 7) %% 5], 'USD',
       sha256(('plan-' || i)::bytea), sha256(('enc-' || i)::bytea), 12,
       lpad((i %% 10000)::text, 4, '0'),
       r.ids[1 + (i * 13) %% array_length(r.ids, 1)],
       now() - interval '30 days' + (i %% 400) * interval '1 day',
       i %% 100 = 7,
       CASE WHEN i %% 33 = 0 THEN now() - (i %% 365) * interval '1 day' END,
       CASE WHEN i %% 33 = 0 THEN s.ids[1 + (i / 33) %% array_length(s.ids, 1)] END,
       now() - interval '365 days' + i * (interval '365 days' / %(rows)s)
FROM generate_series(0, %(rows)s - 1) AS i,
     (SELECT array_agg(id ORDER BY id) AS ids FROM subscribers_reseller) AS r,
     (SELECT array_agg(id ORDER BY id) AS ids FROM subscribers_subscriber) AS s;
UPDATE cards_topupcard SET pin_digest = %(digest)s WHERE number = 77 AND series = '3';
ANALYZE cards_topupcard;
ANALYZE subscribers_subscriber;
ANALYZE subscribers_reseller;
"""


@pytest.fixture
def big_table(monkeypatch):
    with connection.cursor() as cursor:
        cursor.execute(LOAD, {"rows": ROWS, "digest": pins.pin_digest(KNOWN_PIN)})
        cursor.execute("SELECT id FROM subscribers_reseller ORDER BY id LIMIT 1 OFFSET 4")
        reseller = cursor.fetchone()[0]
    monkeypatch.setattr(selectors.card_count, "__kwdefaults__", {"cap": CAP})
    return reseller


def walk(node, parent=None):
    yield node, parent
    for child in node.get("Plans", []):
        yield from walk(child, node)


def plan_of(sql: str) -> dict:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql)
        raw = cursor.fetchone()[0]
    return (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]


def searches(reseller):
    today = timezone.localdate()
    return {
        "none": {},
        "serial range": {"serial_from": "3-000000100", "serial_to": "3-000000150"},
        "series": {"serial_from": "3"},
        "pin": "POST",
        "status new": {"status": "new"},
        "status activated": {"status": "activated"},
        "status expired": {"status": "expired"},
        "status blocked": {"status": "blocked"},
        "company": {"reseller": reseller},
        "amount": {"amount_min": "25", "amount_max": "25"},
        "amount from": {"amount_min": "5"},
        "expiry": {
            "expires_from": (today + timezone.timedelta(days=100)).isoformat(),
            "expires_to": (today + timezone.timedelta(days=107)).isoformat(),
        },
        "client": {"client": "Plan Client 0042"},
        "activation": {
            "activated_from": (today - timezone.timedelta(days=30)).isoformat(),
            "activated_to": today.isoformat(),
        },
    }


@pytest.mark.parametrize("name", list(searches(0)))
def test_no_search_scans_the_cards_table(admin_client, big_table, name):
    params = searches(big_table)[name]
    url = reverse("admin:cards_topupcard_changelist")
    if params == "POST":
        location = admin_client.post(reverse("admin:cards_topupcard_search"), {"pin": KNOWN_PIN})
        url, params = location["Location"], None

    with CaptureQueriesContext(connection) as captured:
        response = admin_client.get(url, params)

    assert response.status_code == 200
    if name == "pin":
        assert len(response.context["cl"].result_list) == 1
    card_queries = [
        q["sql"]
        for q in captured.captured_queries
        if "cards_topupcard" in q["sql"] and q["sql"].lstrip().upper().startswith("SELECT")
    ]
    assert card_queries
    for sql in card_queries:
        upper = sql.upper()
        assert "DISTINCT" not in upper
        is_count = upper.startswith("SELECT COUNT(")
        if is_count:
            assert "LIMIT" in upper, "a COUNT(*) without a cap"
        for node, parent in walk(plan_of(sql)):
            if node.get("Relation Name") != "cards_topupcard":
                continue
            read = node["Actual Rows"] + node.get("Rows Removed by Filter", 0)
            # No scan walks the table or a whole index (e.g. a filter on UPPER(serial) would).
            assert read <= ROWS // 4, f"{name}: {node['Node Type']} read {read} of {ROWS} rows"
            if node["Node Type"] == "Seq Scan":
                assert is_count, f"{name}: the page query scans the cards table:\n{sql}"
                assert parent is not None and parent["Node Type"] == "Limit", sql
