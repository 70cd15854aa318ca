"""Fast bench fills: a large INSERT … SELECT into tables without their indexes and keys, which
are built again afterwards (docs/scaling.md, "Bench data").

PostgreSQL maintains every index row by row during an INSERT, and checks each foreign key with a
trigger per row: at 10M rows, with a dozen indexes on the cards and their events, that is the
difference between hours and minutes. Building an index afterwards is one sort; adding a foreign
key back is one join. Only for bench databases: the tables are unprotected while it runs.
"""

from collections.abc import Iterable, Iterator
from contextlib import contextmanager


@contextmanager
def without_indexes(cursor, tables: Iterable[str]) -> Iterator[None]:
    """Drop the indexes, primary keys, unique constraints and foreign keys of `tables` (and the
    foreign keys that point at them), run the block, then build them all again as they were."""
    tables = list(tables)
    cursor.execute(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), contype "
        "FROM pg_constraint WHERE contype IN ('f', 'p', 'u') AND conparentid = 0 "
        "AND (conrelid = ANY(%s::regclass[]) "
        "     OR (contype = 'f' AND confrelid = ANY(%s::regclass[])))",
        [tables, tables],
    )
    constraints = [row for row in cursor.fetchall() if row[3] == "f" or row[0] in tables]
    cursor.execute(
        "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE i.indrelid = ANY(%s::regclass[]) "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid) "
        "AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.indexrelid)",
        [tables],
    )
    indexes = cursor.fetchall()
    foreign = [row for row in constraints if row[3] == "f"]
    keys = [row for row in constraints if row[3] != "f"]
    for table, name, _definition, _kind in foreign + keys:
        cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    for name, _definition in indexes:
        cursor.execute(f'DROP INDEX "{name}"')
    try:
        yield
    finally:  # a failed fill still leaves the tables as they were, with what it wrote
        cursor.execute("SET maintenance_work_mem = '512MB'")
        for _name, definition in indexes:
            # A partitioned table's index is shown ON ONLY the parent; built plainly it recurses.
            cursor.execute(definition.replace(" ON ONLY ", " ON "))
        for table, name, definition, _kind in keys + foreign:
            cursor.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
