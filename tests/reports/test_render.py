"""The report table's rows are built in Python (Section.body_html) for speed: the markup must be
the one the template's loops over cells wrote, every cell escaped."""

import datetime as dt
import re
from decimal import Decimal

from django.template import Context, Template

from reports.tables.section import Column, Section

# The template's loops the rows were written with before (templates/admin/reports/report.html).
CELL_LOOPS = Template(
    '{% for cells in rows %}<tr{% if total %} class="total"{% endif %}>'
    '{% for text, numeric in cells %}<td{% if numeric %} class="num"{% endif %}>{{ text }}</td>'
    "{% endfor %}</tr>{% endfor %}"
)


def _section() -> Section:
    rows = [
        {
            "period": dt.date(2026, 3, day),
            "currency": currency,
            "reseller": name,
            "opening": Decimal("1234.5"),
            "issued": Decimal("-0.10") * day,
            "count": 1000 * day,
            "note": None,
        }
        for day in (1, 2)
        for currency, name in (
            ("USD", "<script>alert(1)</script>"),
            ("USD", "Smith & Sons \"quoted\" 'single'"),
            ("EUR", "=HYPERLINK()"),
        )
    ]
    return Section(
        key="rollforward",
        title="t",
        columns=[
            Column("period", "Day", "period"),
            Column("currency", "Currency"),
            Column("reseller", "Reseller"),
            Column("opening", "Opening", "money", total="first"),
            Column("issued", "Issued", "money"),
            Column("count", "Cards", "count"),
            Column("note", "Note"),
        ],
        rows=rows,
        granularity="day",
    )


def _loops(section: Section, rows: list[dict], total: bool) -> str:
    cells = [section.display(row) for row in rows]
    return CELL_LOOPS.render(Context({"rows": cells, "total": total}))


def test_rows_and_totals_are_the_markup_the_template_loops_wrote():
    section = _section()

    body = re.sub(r">\s+<", "><", str(section.body_html)).strip()
    foot = re.sub(r">\s+<", "><", str(section.foot_html)).strip()

    assert body == _loops(section, section.rows, total=False)
    assert foot == _loops(section, section.totals, total=True)
    assert "<script>" not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "Smith &amp; Sons &quot;quoted&quot; &#x27;single&#x27;" in body
    assert '<td class="num">1,234.50</td>' in body and "<td>—</td>" in body


def test_no_total_line_gives_an_empty_foot():
    section = _section()
    section.rows = section.rows[:1]
    assert section.foot_html == ""
