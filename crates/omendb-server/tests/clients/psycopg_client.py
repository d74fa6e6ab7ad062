"""psycopg 3 against a running OmenDB: connection settings, parameters
bound server-side in text and binary, prepared statements, transaction
status, errors. Usage: psycopg_client.py PORT. Exits non-zero on the
first failed check."""

import datetime
import decimal
import sys

import psycopg
from psycopg import errors, pq

port = int(sys.argv[1])
conn = psycopg.connect(
    host="127.0.0.1",
    port=port,
    user="omendb",
    dbname="omendb",
    application_name="checks",
    options="-c search_path=public",
)
info = conn.info


def check(got, want, what):
    if got != want:
        sys.exit(f"{what}: got {got!r}, want {want!r}")


# Startup: what the server reports, and settings from the packet applied.
check(info.server_version, 150000, "server_version")
check(info.parameter_status("server_encoding"), "UTF8", "server_encoding")
check(info.parameter_status("application_name"), "checks", "application_name")
check(info.parameter_status("session_authorization"), "omendb", "session_authorization")
check(conn.execute("SHOW search_path").fetchone()[0], "public", "options -c")

# A SET of a reported setting is reported back.
conn.execute("SET application_name = 'renamed'")
check(info.parameter_status("application_name"), "renamed", "SET reported")

cur = conn.cursor()
cur.execute(
    "CREATE TABLE m (id bigint PRIMARY KEY, name text, price numeric(10, 2), "
    "at timestamp, day date, ok bool, ratio float8, raw bytea)"
)
conn.commit()
check(info.transaction_status, pq.TransactionStatus.IDLE, "idle after commit")

rows = [
    (1, "one", decimal.Decimal("9.99"), datetime.datetime(2026, 1, 2, 3, 4, 5, 6),
     datetime.date(2026, 1, 2), True, 0.5, b"\x00\x01"),
    (2, "two's", decimal.Decimal("-0.01"), datetime.datetime(1999, 12, 31, 23, 59, 59),
     datetime.date(1999, 12, 31), False, -1e-7, b""),
    (3, None, None, None, None, None, None, None),
]
# executemany binds each row to one prepared INSERT (text-format values).
cur.executemany("INSERT INTO m VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", rows)
check(info.transaction_status, pq.TransactionStatus.INTRANS, "in a block")
conn.commit()

# Text results, then binary results, read back as the same Python values.
for binary in (False, True):
    cur = conn.cursor(binary=binary)
    got = cur.execute("SELECT * FROM m WHERE id <= %s ORDER BY id", [3]).fetchall()
    check(got, rows, f"rows (binary={binary})")
    names = [c.name for c in cur.description]
    check(names, ["id", "name", "price", "at", "day", "ok", "ratio", "raw"], "columns")

# A statement run often is prepared once (prepare=True forces it).
for i in (1, 2):
    got = conn.execute("SELECT name FROM m WHERE id = %s", [i], prepare=True).fetchone()
    check(got[0], rows[i - 1][1], "prepared")

# COPY: rows written by psycopg (text format), then read back.
with conn.cursor() as cur:
    with cur.copy("COPY m (id, name, ok) FROM STDIN") as copy:
        for i in range(10, 1010):
            copy.write_row((i, f"row\t{i}", i % 2 == 0))
    check(cur.rowcount, 1000, "COPY FROM rowcount")
    with cur.copy("COPY (SELECT id, name, ok FROM m WHERE id >= 10 ORDER BY id) TO STDOUT") as copy:
        copy.set_types(["int8", "text", "bool"])
        got = list(copy.rows())
    check(got[:2], [(10, "row\t10", True), (11, "row\t11", False)], "COPY TO rows")
    check(len(got), 1000, "COPY TO count")
    conn.execute("DELETE FROM m WHERE id >= 10")
conn.commit()

# Errors: their SQLSTATE class, and a failed block until ROLLBACK.
try:
    conn.execute("INSERT INTO m (id) VALUES (%s)", [1])
    sys.exit("duplicate key accepted")
except errors.UniqueViolation:
    pass
check(info.transaction_status, pq.TransactionStatus.INERROR, "failed block")
try:
    conn.execute("SELECT 1")
    sys.exit("statement ran in a failed block")
except errors.InFailedSqlTransaction:
    pass
conn.rollback()
check(info.transaction_status, pq.TransactionStatus.IDLE, "idle after rollback")
try:
    conn.execute("SELECT * FROM missing")
    sys.exit("missing table found")
except errors.UndefinedTable:
    pass
conn.rollback()
check(conn.execute("SELECT count(*) FROM m").fetchone()[0], 3, "rows kept")
conn.close()

# A pipeline outside a block is one transaction up to its Sync: an error
# undoes the statements before it, as in PostgreSQL.
with psycopg.connect(host="127.0.0.1", port=port, user="omendb", autocommit=True) as auto:
    try:
        with auto.pipeline():
            auto.execute("INSERT INTO m (id) VALUES (%s)", [100])
            auto.execute("INSERT INTO m (id) VALUES (%s)", [100])
        sys.exit("duplicate key accepted in a pipeline")
    except errors.UniqueViolation:
        pass
    check(auto.execute("SELECT count(*) FROM m WHERE id = 100").fetchone()[0], 0, "pipeline undone")
    with auto.pipeline():
        auto.execute("INSERT INTO m (id) VALUES (%s)", [101])
        auto.execute("INSERT INTO m (id) VALUES (%s)", [102])
    check(auto.execute("SELECT count(*) FROM m WHERE id > 100").fetchone()[0], 2, "pipeline kept")
    check(auto.info.transaction_status, pq.TransactionStatus.IDLE, "idle after a pipeline")

# An unknown database or role is refused as PostgreSQL refuses it.
for kwargs, error in (({"dbname": "nope"}, errors.InvalidCatalogName),
                      ({"user": "nobody"}, errors.InvalidAuthorizationSpecification)):
    params = {"host": "127.0.0.1", "port": port, "user": "omendb", "dbname": "omendb"}
    params.update(kwargs)
    try:
        psycopg.connect(**params)
        sys.exit(f"connected with {kwargs}")
    except psycopg.OperationalError as e:
        if f'"{next(iter(kwargs.values()))}" does not exist' not in str(e):
            sys.exit(f"{kwargs}: {e}")
print("ok")
