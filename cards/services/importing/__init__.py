"""Importing cards from another system's file (docs/cards.md, "Import"): the one owner of the
import rules, for the preview in the request (cards.resources) and the background job
(cards.jobs) alike. Import from the module that owns a name.

- `reading`: the file's header and rows, and each row's own checks (serial, amount, currency,
  PIN, expiry, reseller name) as the row is read; its clear PIN is replaced at once by the digest
  and the encrypted copy.
- `checking`: the rows staged in a temporary table in chunks, the checks across rows and against
  the cards as a few statements over the whole table (`import_check`), and the preview service
  `cards_import_check`.
- `writing`: the import service `cards_import`, which re-runs the same check inside its own
  transaction and moves the rows into the cards with INSERT … SELECT (`import_write`): all of
  them or none.
"""
