"""How long the report page takes to render a long table: the product's template (rows built in
Python, reports Section.body_html) against the same page whose rows are written by the template's
own loops over cells (what the page did before), in the same process, alternating.

    .venv/bin/python bench/report_render.py [--rows 625] [--rounds 7] [--repeat 5]

No database: the section is a roll-forward of one currency per day and reseller (30 days × 21
resellers, cut to --rows) with its chart, rendered through templates/admin/reports/report.html
with a request, as the admin view renders it (the filter form aside: the same in both). Each round
renders each variant --repeat times and keeps the median; the variants take turns going first.
Prints every round, the medians of the rounds, the ratio and the load average.
"""

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import AnonymousUser  # noqa: E402
from django.template import engines  # noqa: E402
from django.template.loader import get_template  # noqa: E402
from django.test import RequestFactory  # noqa: E402

from reports.charts import bar_chart, fold_series  # noqa: E402
from reports.models import RollForwardReport  # noqa: E402
from reports.tables.section import Column, ReportResult, Section, period_label  # noqa: E402

TEMPLATE = "admin/reports/report.html"
KINDS = ("issued", "redeemed", "reversed", "breakage", "written_off", "reinstated", "deleted")


class CellLoopSection(Section):
    """The section as the template's cell loops read it (the page before)."""

    @property
    def display_rows(self):
        return [self.display(row) for row in self.rows]

    @property
    def display_totals(self):
        return [self.display(row) for row in self.totals]


CELLS = (
    "{% for text, numeric in cells %}"
    '<td{% if numeric %} class="num"{% endif %}>{{ text }}</td>{% endfor %}'
)
CELL_LOOPS = f"""<tbody>
          {{% for cells in section.display_rows %}}
            <tr>{CELLS}</tr>
          {{% endfor %}}
          </tbody>
          {{% if section.display_totals %}}
          <tfoot>
          {{% for cells in section.display_totals %}}
            <tr class="total">{CELLS}</tr>
          {{% endfor %}}
          </tfoot>
          {{% endif %}}"""


def cell_loop_template():
    """The product's page with its table body written by the loops over cells."""
    source = Path(get_template(TEMPLATE).origin.name).read_text()
    start = source.index("<tbody>")
    end = source.index("{% endwith %}", start) + len("{% endwith %}")
    return engines["django"].from_string(source[:start] + CELL_LOOPS + source[end:])


def roll_forward_rows(count: int) -> list[dict]:
    first = dt.date(2026, 11, 1)
    rows = []
    for day in range(30):
        for reseller in range(21):
            opening = Decimal(100_000 + 37 * reseller + day) / 4
            row = {
                "period": first + dt.timedelta(days=day),
                "currency": "USD",
                "reseller_id": reseller,
                "reseller": f"Reseller {reseller:02d}" if reseller else "(no reseller)",
                "opening": opening,
                **{kind: Decimal(-(day * reseller % 97)) / 4 for kind in KINDS},
                "moved": Decimal(0),
            }
            row["closing"] = opening + sum(row[kind] for kind in KINDS)
            row["difference"] = Decimal(0)
            rows.append(row)
    return rows[:count]


def section(cls, rows: list[dict]) -> Section:
    columns = [
        Column("period", "Day", "period"),
        Column("currency", "Currency"),
        Column("reseller", "Reseller"),
        Column("opening", "Opening liability", "money", total="first"),
        *(Column(kind, kind.replace("_", " ").capitalize(), "money") for kind in KINDS),
        Column("moved", "Moved between resellers", "money"),
        Column("closing", "Closing liability", "money", total="last"),
        Column("difference", "Check (opening + movements − closing)", "money"),
    ]
    result = cls(
        key="rollforward", title="Roll-forward", columns=columns, rows=rows, granularity="day"
    )
    days = sorted({row["period"] for row in rows})
    position = {day: index for index, day in enumerate(days)}
    lines: dict[str, list[Decimal]] = {}
    for row in rows:
        line = lines.setdefault(row["reseller"], [Decimal(0)] * len(days))
        line[position[row["period"]]] += row["closing"]
    title = "Closing liability (USD)"
    categories = [period_label(day, "day") for day in days]
    result.charts = [
        (title, bar_chart(title=title, categories=categories, series=fold_series(lines)))
    ]
    return result


def render_once(template, cls, rows, request) -> tuple[float, str]:
    context = {
        "opts": RollForwardReport._meta,
        "title": "Liability roll-forward",
        "description": "",
        "form": None,
        "result": ReportResult(caption="From … per day", sections=[section(cls, rows)]),
        "presets": [],
        "csv_query": "",
    }
    started = time.perf_counter()
    html = template.render(context, request)
    return (time.perf_counter() - started) * 1000, html


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=625)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args()

    request = RequestFactory().get("/admin/reports/rollforwardreport/")
    request.user = AnonymousUser()
    rows = roll_forward_rows(options.rows)
    variants = {
        "cell loops (before)": (cell_loop_template(), CellLoopSection),
        "rows in Python (now)": (get_template(TEMPLATE), Section),
    }
    pages = {name: render_once(t, cls, rows, request)[1] for name, (t, cls) in variants.items()}
    tables = {
        name: page[page.index("<table") : page.index("</table>")] for name, page in pages.items()
    }
    squeeze = lambda text: " ".join(text.split()).replace("> <", "><")  # noqa: E731
    assert len({squeeze(table) for table in tables.values()}) == 1, "the tables differ"

    medians: dict[str, list[float]] = {name: [] for name in variants}
    for round_number in range(options.rounds):
        order = list(variants) if round_number % 2 == 0 else list(reversed(variants))
        for name in order:
            template, cls = variants[name]
            times = [render_once(template, cls, rows, request)[0] for _ in range(options.repeat)]
            medians[name].append(statistics.median(times))
        print(
            f"round {round_number + 1}: "
            + ", ".join(f"{name} {medians[name][-1]:.1f} ms" for name in variants),
            flush=True,
        )
    before, now = (statistics.median(medians[name]) for name in variants)
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(
        f"{len(rows)} rows, {options.rounds} rounds × {options.repeat} renders, load average {load}"
    )
    print(
        f"median of the rounds: before {before:.1f} ms, now {now:.1f} ms, ratio {before / now:.2f}×"
    )


if __name__ == "__main__":
    main()
