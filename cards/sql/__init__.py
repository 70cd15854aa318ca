"""The raw SQL statements of cards, one module per concern, each statement beside the ORM path it
stands in for:

- `generation`: a batch's cards by COPY, or staged and moved by INSERT … ON CONFLICT;
- `selection`: the selection of Mass Edit, Delete all and deliveries locked once, a job's
  selection written once, one audit event per selected card;
- `exports`: the CSV export's COPY … TO STDOUT;
- `redemption`: the REST top-up's and the panel's redemption statements, their locks and waits;
- `importing`: the import's staged rows and their checks (on every database: no stand-in).

The ORM path is the reference: it runs on every database (SQLite in development and tests), and
each statement must write what that path writes. Identifiers are composed with `psycopg.sql`,
never pasted into the text; a statement is rendered to text once when its text must stay the
same between calls (the prepared REST statement). Callers import the module that holds a name
(`from cards.sql import redemption as sql`): this package itself holds no name.
"""
