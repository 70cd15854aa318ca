"""The streamed CSV: exact content, on SQLite and on PostgreSQL (COPY path)."""

import datetime as dt
from decimal import Decimal

import pytest

from cards.exports import COLUMNS, export_csv
from cards.models import TopUpCard
from tests.factories import ResellerFactory, SubscriberFactory, TopUpCardFactory

pytestmark = pytest.mark.django_db

AT = dt.datetime(2026, 11, 23, 12, 0, 0, tzinfo=dt.UTC)


def as_text(queryset, **kwargs) -> str:
    return b"".join(export_csv(queryset, at=AT, **kwargs)).decode()


@pytest.fixture
def series():
    reseller = ResellerFactory(name='Reseller "One", Ltd')
    created = dt.datetime(2026, 11, 1, 8, 30, 15, 123456, tzinfo=dt.UTC)
    expires = dt.datetime(2026, 12, 31, 0, 0, tzinfo=dt.UTC)
    cards = [
        TopUpCardFactory(
            series="4",
            number=2,
            pin="123456789015",
            amount=Decimal("25.00"),
            reseller=reseller,
            created_at=created,
            expires_at=expires,
        ),
        TopUpCardFactory(
            series="4",
            number=1,
            pin="000000000018",
            amount=Decimal("8.50"),
            reseller=None,
            created_at=created,
            expires_at=expires,
            currency="EUR",
        ),
        TopUpCardFactory(
            series="4",
            number=3,
            pin="4524282938597",
            amount=Decimal("1000.00"),
            reseller=reseller,
            created_at=created,
            expires_at=AT - dt.timedelta(days=1),
        ),
        TopUpCardFactory(
            series="4",
            number=4,
            pin="62172991849",
            amount=Decimal("26.00"),
            reseller=reseller,
            created_at=created,
            expires_at=expires,
            blocked=True,
        ),
        TopUpCardFactory(
            series="4",
            number=5,
            pin="42360187331",
            amount=Decimal("15.00"),
            reseller=reseller,
            created_at=created,
            expires_at=expires,
            activated_at=dt.datetime(2026, 11, 20, 9, 0, 1, tzinfo=dt.UTC),
            activated_by=SubscriberFactory(name="Rose Orig"),
        ),
    ]
    TopUpCardFactory(series="5", number=1)  # another series: never exported with series 4
    return cards


def test_export_with_pins_has_every_column_in_serial_order(series):
    text = as_text(TopUpCard.objects.filter(series="4"), with_pins=True)

    assert text.splitlines() == [
        ",".join(COLUMNS),
        "4-000000001,8.50,EUR,000000000018,,new,"
        "2026-12-31 00:00:00+00:00,,2026-11-01 08:30:15+00:00",
        '4-000000002,25.00,USD,123456789015,"Reseller ""One"", Ltd",new,'
        "2026-12-31 00:00:00+00:00,,2026-11-01 08:30:15+00:00",
        '4-000000003,1000.00,USD,4524282938597,"Reseller ""One"", Ltd",expired,'
        "2026-11-22 12:00:00+00:00,,2026-11-01 08:30:15+00:00",
        '4-000000004,26.00,USD,62172991849,"Reseller ""One"", Ltd",blocked,'
        "2026-12-31 00:00:00+00:00,,2026-11-01 08:30:15+00:00",
        '4-000000005,15.00,USD,42360187331,"Reseller ""One"", Ltd",activated,'
        "2026-12-31 00:00:00+00:00,2026-11-20 09:00:01+00:00 Rose Orig,2026-11-01 08:30:15+00:00",
    ]


def test_export_without_the_right_masks_pins(series):
    lines = as_text(TopUpCard.objects.filter(series="4"), with_pins=False).splitlines()

    pins_column = [line.split(",")[3] for line in lines[1:]]
    assert pins_column == [
        "•••• •••• 0018",
        "•••• •••• 9015",
        "•••• •••• •859 7",
        "•••• •••1 849",
        "•••• •••7 331",
    ]
    assert "123456789015" not in "".join(lines)


def test_empty_selection_is_just_the_header():
    assert as_text(TopUpCard.objects.none(), with_pins=True) == ",".join(COLUMNS) + "\n"


def test_progress_reports_rows_written(series):
    seen = []

    as_text(TopUpCard.objects.filter(series="4"), with_pins=True, progress=seen.append)

    assert seen and seen[-1] == 5


def test_export_command_writes_the_file_and_audits(series, tmp_path, capsys):
    from django.core.management import call_command

    from cards.models import CardEvent
    from cards.models.events import CardEventKind
    from tests.factories import UserFactory

    UserFactory(username="ops")
    target = tmp_path / "series4.csv"

    call_command(
        "export_cards", "--series", "4", "--output", str(target), "--with-pins", "--actor", "ops"
    )

    lines = target.read_text().splitlines()
    assert len(lines) == 6 and lines[1].startswith("4-000000001,8.50,EUR,000000000018,")
    event = CardEvent.objects.get(kind=CardEventKind.EXPORTED)
    assert event.actor.username == "ops"
    assert event.changes == {
        "filter": {"series": "4", "status": []},
        "rows": 5,
        "with_pins": True,
        "complete": True,
    }
    assert "Exported 5 cards of series 4" in capsys.readouterr().err


def test_export_command_filters_by_status_and_masks_by_default(series, tmp_path):
    from django.core.management import call_command

    target = tmp_path / "new.csv"
    call_command(
        "export_cards",
        "--series",
        "4",
        "--status",
        "new",
        "--status",
        "blocked",
        "--output",
        str(target),
    )

    rows = target.read_text().splitlines()[1:]
    assert [r.split(",")[0] for r in rows] == ["4-000000001", "4-000000002", "4-000000004"]
    assert all("•" in r.split(",")[3] for r in rows)


def test_export_command_refuses_a_bad_series():
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="1 to 6 digits"):
        call_command("export_cards", "--series", "4-1")


def test_abandoned_stream_is_still_audited_as_incomplete(series):
    from cards.exports import export_with_audit
    from cards.models import CardEvent
    from cards.models.events import CardEventKind

    stream = export_with_audit(
        TopUpCard.objects.filter(series="4"),
        actor=None,
        with_pins=False,
        description={"series": "4"},
        channel="admin",
    )
    next(stream)  # the header, then the client goes away
    stream.close()

    event = CardEvent.objects.get(kind=CardEventKind.EXPORTED)
    assert event.changes["complete"] is False
