"""The Reports section as a finance user and a reseller-scoped staff user use it: admin index,
filters, tables, charts, CSV, permissions and URL tampering."""

import csv
import html
import io
import re

import pytest
from django.urls import reverse

from cards.models import CardEvent, TopUpCard
from tests.factories import ResellerFactory, TopUpCardFactory, UserFactory
from wallets.models import LedgerEntry

pytestmark = pytest.mark.django_db

REPORTS = [
    "liabilityreport",
    "redemptionreport",
    "breakagereport",
    "expiringreport",
    "balancereport",
    "rollforwardreport",
]


def url(model: str) -> str:
    return reverse(f"admin:reports_{model}_changelist")


def hrefs(response, text: str) -> list[str]:
    """The targets of the links whose text is `text`."""
    body = response.content.decode()
    return [
        html.unescape(href)
        for href, label in re.findall(r'<a [^>]*href="([^"]+)"[^>]*>([^<]+)</a>', body)
        if label.strip() == text
    ]


def table_rows(response) -> list[list[str]]:
    body = response.content.decode()
    tbody = re.search(r"<tbody>(.*?)</tbody>", body, re.S)
    if tbody is None:
        return []
    return [
        [html.unescape(cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr>(.*?)</tr>", tbody.group(1), re.S)
    ]


def csv_rows(response) -> list[list[str]]:
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(response.content.decode())))


def test_finance_question_in_two_clicks_from_the_admin_index(finance_client, finance):
    """How much do we owe on unredeemed cards of Reseller 1 in USD as of last month's end?"""
    index = finance_client.get(reverse("admin:index"))
    assert "Reports" in index.content.decode()

    # Click 1: "Liability" in the Reports section of the index.
    (liability_url,) = hrefs(index, "Liability")
    page = finance_client.get(liability_url)
    assert page.status_code == 200

    # Click 2: the "End of last month" shortcut.
    (end_of_month_url,) = hrefs(page, "End of last month")
    answer = finance_client.get(liability_url + end_of_month_url)

    assert answer.status_code == 200
    assert f"As of the end of {finance.day:%Y-%m-%d}" in answer.content.decode()
    # Blocked cards are still owed (reports/README.md): c8, and c10 whose redemption was reversed.
    assert ["USD", "Reseller 1", "8", "9,733.00", "6,400.00", "0.00"] in table_rows(answer)
    assert "<svg" in answer.content.decode() and "Liability (USD)" in answer.content.decode()


@pytest.mark.parametrize("model", REPORTS)
def test_every_report_has_filters_a_table_a_chart_and_a_csv(finance_client, finance, model):
    response = finance_client.get(url(model), {"date_from": finance.day, "granularity": "day"})

    body = response.content.decode()
    assert response.status_code == 200
    assert '<form method="get" class="report-filters"' in body
    assert '<table class="report-table">' in body
    assert '<svg class="report-chart"' in body
    assert "reports/reports.css" in body
    (csv_link, *_) = hrefs(response, "Download CSV")
    download = finance_client.get(url(model) + csv_link)
    assert download.status_code == 200
    rows = csv_rows(download)
    assert len(rows) >= 2


def test_the_reports_section_lists_every_report(finance_client):
    response = finance_client.get(reverse("admin:app_list", args=["reports"]))

    for model, label in zip(
        REPORTS,
        [
            "Liability",
            "Redemptions",
            "Breakage",
            "Expiring soon",
            "Balances",
            "Liability roll-forward",
        ],
        strict=True,
    ):
        assert hrefs(response, label) == [url(model)]


def test_liability_csv_matches_the_table(finance_client, finance):
    response = finance_client.get(
        url("liabilityreport"), {"as_of": finance.day, "group_by": "series", "format": "csv"}
    )

    assert response["Content-Disposition"] == 'attachment; filename="liability.csv"'
    # The page's total line per currency too.
    assert csv_rows(response) == [
        [
            "Currency",
            "Reseller",
            "Series",
            "Cards",
            "Liability",
            "of which blocked",
            "of which dormant",
        ],
        ["EUR", "Reseller 1", "300", "1", "5.00", "0.00", "0.00"],
        ["USD", "Reseller 1", "100", "7", "9730.00", "6400.00", "0.00"],
        ["USD", "Reseller 1", "200", "1", "3.00", "0.00", "0.00"],
        ["USD", "Reseller 2", "100", "1", "7.00", "0.00", "0.00"],
        ["USD", "(no reseller)", "100", "1", "11.00", "0.00", "0.00"],
        ["EUR", "Total", "", "1", "5.00", "0.00", "0.00"],
        ["USD", "Total", "", "10", "9751.00", "6400.00", "0.00"],
    ]


def test_liability_table_shows_a_total_per_currency(finance_client, finance):
    response = finance_client.get(url("liabilityreport"), {"as_of": finance.day})
    body = response.content.decode()
    totals = re.search(r"<tfoot>(.*?)</tfoot>", body, re.S).group(1)
    assert "9,751.00" in totals and "5.00" in totals


def test_redemptions_csv_by_channel(finance_client, finance):
    import datetime as dt

    day = finance.day
    response = finance_client.get(
        url("redemptionreport"),
        {
            "date_from": day - dt.timedelta(days=1),
            "date_to": day + dt.timedelta(days=1),
            "granularity": "day",
            "breakdown": "channel",
            "format": "csv",
        },
    )
    assert csv_rows(response) == [
        ["Day", "Currency", "Channel", "Cards", "Value", "of which reversed"],
        [str(day - dt.timedelta(days=1)), "USD", "REST API", "1", "5120.00", "5120.00"],
        [str(day), "USD", "Client panel", "1", "20.00", "0.00"],
        [str(day + dt.timedelta(days=1)), "USD", "Client panel", "1", "2560.00", "2560.00"],
        [str(day + dt.timedelta(days=1)), "USD", "REST API", "1", "40.00", "0.00"],
        ["Total", "USD", "", "4", "7740.00", "7680.00"],
    ]


def test_breakage_and_balances_csv(finance_client, finance):
    import datetime as dt

    day = finance.day
    breakage = finance_client.get(
        url("breakagereport"),
        {
            "date_from": day - dt.timedelta(days=6),
            "date_to": day,
            "breakdown": "none",
            "format": "csv",
        },
    )
    assert csv_rows(breakage) == [
        [
            "Day",
            "Currency",
            "Cards",
            "Breakage",
            "of which blocked",
            "of which dormant",
            "Written off",
            "Reinstated",
            "Net breakage",
        ],
        [
            str(day - dt.timedelta(days=4)),
            "USD",
            "1",
            "0.50",
            "0.50",
            "0.00",
            "0.00",
            "0.00",
            "0.50",
        ],
        [str(day), "USD", "1", "160.00", "0.00", "0.00", "0.00", "0.00", "160.00"],
        ["Total", "USD", "2", "160.50", "0.50", "0.00", "0.00", "0.00", "160.50"],
    ]
    totals = finance_client.get(url("balancereport"), {"format": "csv", "table": "totals"})
    assert totals["Content-Disposition"] == 'attachment; filename="balances-totals.csv"'
    assert csv_rows(totals)[1:] == [
        ["MB", "Data MB", "1", "1024.00"],
        ["USD", "Group USD", "1", "7.00"],
        ["USD", "Main USD", "2", "150.00"],
        ["MB", "Total", "1", "1024.00"],
        ["USD", "Total", "3", "157.00"],
    ]
    flows = finance_client.get(
        url("balancereport"),
        {"date_from": day, "date_to": day, "granularity": "day", "format": "csv", "table": "flows"},
    )
    assert csv_rows(flows) == [
        [
            "Day",
            "Currency / unit",
            "Top-ups",
            "Card redemptions",
            "Adjustments (credit)",
            "Adjustments (debit)",
            "Reversals",
            "Opening balances",
            "Net change",
            "Entries",
        ],
        [str(day), "USD", "34.00", "20.00", "6.00", "0.00", "-5120.00", "0.00", "-5060.00", "6"],
    ]


class TestResellerScopedStaff:
    def test_sees_only_its_resellers_liability(self, r1_client, finance):
        response = r1_client.get(url("liabilityreport"), {"as_of": finance.day})

        rows = table_rows(response)
        assert rows == [
            ["EUR", "Reseller 1", "1", "5.00", "0.00", "0.00"],
            ["USD", "Reseller 1", "8", "9,733.00", "6,400.00", "0.00"],
        ]
        body = response.content.decode()
        assert "Reseller 2" not in body and "no reseller" not in body

    @pytest.mark.parametrize("model", REPORTS)
    def test_cannot_ask_for_another_resellers_figures_by_url(self, r1_client, finance, model):
        other = {"reseller": finance.r2.pk, "as_of": finance.day}

        page = r1_client.get(url(model), other)
        download = r1_client.get(url(model), {**other, "format": "csv"})

        assert page.status_code == 200
        assert "Select a valid choice" in page.content.decode()
        assert table_rows(page) == []
        assert "Reseller 2" not in page.content.decode()
        assert download.status_code == 400
        assert "Reseller 2" not in download.content.decode()

    @pytest.mark.parametrize("model", [*REPORTS[:4], "rollforwardreport"])
    def test_every_card_report_csv_holds_only_its_reseller(self, r1_client, finance, model):
        import datetime as dt

        response = r1_client.get(
            url(model),
            {
                "format": "csv",
                "as_of": finance.day,
                "date_from": finance.day - dt.timedelta(days=6),
                "date_to": finance.day + dt.timedelta(days=1),
                "breakdown": "reseller",
            },
        )

        header, *rows = csv_rows(response)
        rows = [row for row in rows if "Total" not in row]  # the page's total lines
        assert rows, "the fixture gives Reseller 1 figures in every card report"
        column = header.index("Reseller")
        assert {row[column] for row in rows} == {"Reseller 1"}

    def test_balances_exclude_other_resellers_and_group_wallets(self, r1_client, finance):
        response = r1_client.get(url("balancereport"), {"format": "csv", "table": "totals"})
        assert csv_rows(response)[1:] == [
            ["MB", "Data MB", "1", "1024.00"],
            ["USD", "Main USD", "1", "100.00"],
        ]

    def test_ledger_movements_of_its_subscribers_only(self, r1_client, finance):
        day = finance.day
        response = r1_client.get(
            url("balancereport"),
            {
                "date_from": day,
                "date_to": day,
                "granularity": "day",
                "format": "csv",
                "table": "flows",
            },
        )
        # Without Reseller 2's top-up of 9 and the group wallet's adjustment of 1.
        assert csv_rows(response)[1:] == [
            [str(day), "USD", "25.00", "20.00", "5.00", "0.00", "-5120.00", "0.00", "-5070.00", "4"]
        ]

    def test_the_reseller_filter_offers_only_its_own_reseller(self, r1_client, finance):
        body = r1_client.get(url("liabilityreport")).content.decode()
        select = re.search(r'<select name="reseller".*?</select>', body, re.S).group(0)
        assert "Reseller 1" in select and "Reseller 2" not in select
        assert "All resellers" not in select


class TestAccess:
    def test_staff_without_the_report_permission_is_refused(self, client, finance):
        client.force_login(UserFactory(username="clerk", is_staff=True))

        index = client.get(reverse("admin:index"))
        assert "liabilityreport" not in index.content.decode()
        for model in REPORTS:
            assert client.get(url(model)).status_code == 403
            assert client.get(url(model), {"format": "csv"}).status_code == 403

    def test_permission_per_report(self, client, finance):
        from django.contrib.auth.models import Permission

        user = UserFactory(username="treasurer", is_staff=True)
        user.user_permissions.add(Permission.objects.get(codename="view_liabilityreport"))
        client.force_login(user)

        assert client.get(url("liabilityreport")).status_code == 200
        assert client.get(url("balancereport")).status_code == 403

    def test_anonymous_users_are_sent_to_the_login_page(self, client, finance):
        response = client.get(url("liabilityreport"), {"format": "csv"})
        assert response.status_code == 302
        assert "/admin/login/" in response["Location"]

    def test_reports_cannot_be_added_changed_or_deleted(self, admin_client, finance):
        assert admin_client.get(url("liabilityreport") + "add/").status_code == 404
        assert admin_client.get(url("liabilityreport") + "1/change/").status_code == 404


class TestBadFilters:
    def test_bad_values_get_clear_errors_and_change_nothing(self, finance_client, finance):
        before = (TopUpCard.objects.count(), LedgerEntry.objects.count(), CardEvent.objects.count())

        response = finance_client.get(
            url("redemptionreport"),
            {"currency": "dollars", "series": "12a", "date_from": "2026-13-40"},
        )

        body = html.unescape(response.content.decode())
        assert "Currency must be a three-letter code such as USD." in body
        assert "Series must be 1 to 6 digits." in body
        assert "Enter a valid date." in body
        assert table_rows(response) == []
        after = (TopUpCard.objects.count(), LedgerEntry.objects.count(), CardEvent.objects.count())
        assert after == before

    def test_a_period_that_ends_before_it_starts(self, finance_client, finance):
        response = finance_client.get(
            url("breakagereport"), {"date_from": "2026-05-02", "date_to": "2026-05-01"}
        )
        assert "The period must start before it ends." in response.content.decode()

    def test_too_many_days(self, finance_client, finance):
        response = finance_client.get(
            url("redemptionreport"),
            {"date_from": "2020-01-01", "date_to": "2026-01-01", "granularity": "day"},
        )
        assert "At most 400 days at a time" in response.content.decode()
        monthly = finance_client.get(
            url("redemptionreport"),
            {"date_from": "2020-01-01", "date_to": "2026-01-01", "granularity": "month"},
        )
        assert "At most" not in monthly.content.decode()

    def test_bad_csv_request_is_a_400_with_the_reason(self, finance_client, finance):
        response = finance_client.get(
            url("liabilityreport"), {"as_of": "yesterday", "format": "csv"}
        )
        assert response.status_code == 400
        assert "as_of: Enter a valid date." in response.content.decode()


class TestHostileNames:
    def test_reseller_names_are_escaped_in_table_and_chart(self, finance_client, finance):
        evil = ResellerFactory(name='<script>alert("x")</script>')
        TopUpCardFactory(reseller=evil, created_at=finance.T - 5 * finance.T.resolution)

        body = finance_client.get(url("liabilityreport")).content.decode()

        assert "<script>alert" not in body
        assert "&lt;script&gt;alert" in body

    def test_csv_cells_cannot_run_as_spreadsheet_formulas(self, finance_client, finance):
        evil = ResellerFactory(name='=HYPERLINK("http://x")')
        TopUpCardFactory(reseller=evil, amount="1.00")

        rows = csv_rows(finance_client.get(url("liabilityreport"), {"format": "csv"}))

        names = [row[1] for row in rows[1:]]
        assert '\'=HYPERLINK("http://x")' in names
        assert not any(name.startswith("=") for name in names)


@pytest.mark.parametrize("model", REPORTS)
def test_report_pages_run_few_queries(admin_client, finance, model, django_assert_max_num_queries):
    TopUpCardFactory.create_batch(10, reseller=finance.r1)
    # The session and user, then the report's own (at most 10 a liability or breakage figure;
    # the roll-forward asks three: opening, movements, closing).
    limit = 33 if model == "rollforwardreport" else 16
    with django_assert_max_num_queries(limit):
        assert admin_client.get(url(model)).status_code == 200


class TestLiabilityToday:
    def test_today_counts_cards_that_expire_later_today(self, finance_client, db):
        from django.utils import timezone

        from reports.selectors.common import end_of_day

        now = timezone.now()
        end_of_today = end_of_day(timezone.localdate())
        reseller = ResellerFactory(name="Reseller 7")
        TopUpCardFactory(
            reseller=reseller, amount="12.00", expires_at=now + (end_of_today - now) / 2
        )

        response = finance_client.get(url("liabilityreport"))

        assert "As of now (" in response.content.decode()
        assert ["USD", "Reseller 7", "1", "12.00", "0.00", "0.00"] in table_rows(response)

    def test_a_future_day_is_refused(self, finance_client, db):
        import datetime as dt

        from django.utils import timezone

        tomorrow = timezone.localdate() + dt.timedelta(days=1)
        response = finance_client.get(url("liabilityreport"), {"as_of": tomorrow})

        assert "Choose today or an earlier day" in response.content.decode()
        assert table_rows(response) == []
