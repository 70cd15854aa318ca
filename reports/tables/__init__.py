"""Turns a valid filter form into what a report page shows: sections with columns, rows (already
aggregated by the selectors), per-currency totals and charts. The admin view and the CSV
download both read from here, so the page and the file always agree.

`section.py` is the display machinery every report shares (columns, rows as the page and the CSV
show them, totals); `common.py` the parts the builders share (charts per currency, captions,
breakdown columns); one module per report builds its sections, as `selectors/` has one per
report family. Import from the module that owns a name.
"""
