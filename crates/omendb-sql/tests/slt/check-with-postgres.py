#!/usr/bin/env python3
"""Replays the .slt files of this directory against a real PostgreSQL and
reports every record whose expectation PostgreSQL does not meet.

    pip install 'psycopg[binary]'
    ../../../../../shared/tools/pg-reference start   # prints a DSN
    python3 check-with-postgres.py DSN [file.slt ...]

Each file runs in a fresh database (created and dropped here). Results are
compared in PostgreSQL's text format, as the .slt files hold them: NULL as
`NULL`, the empty string as `(empty)`, columns separated by one space.
`statement error <pattern>` passes when PostgreSQL fails with a SQLSTATE
or message matching the pattern. A `connection <name>` record runs the
next record in that named session, as the Rust runner does. Records under
`onlyif omendb` (OmenDB functions PostgreSQL lacks, such as time_bucket)
are skipped; their files say how their answers were checked. Exit status 1 if any record
disagrees.
"""

import re
import sys
import uuid
from pathlib import Path

import psycopg


def records(text):
    """Yields (line, kind, header words, sql, expected lines) per record."""
    lines = text.split("\n")
    i = 0
    conditions = []
    while i < len(lines):
        line = lines[i].strip()
        if not line or line.startswith("#"):
            i += 1
            continue
        start = i + 1
        words = line.split()
        if words[0] in ("onlyif", "skipif"):
            conditions.append((words[0], words[1]))
            i += 1
            continue
        if words[0] in ("connection",):
            yield start, "connection", words, "", []
            i += 1
            continue
        if words[0] not in ("statement", "query"):
            i += 1
            continue
        applies = all(
            (kind == "onlyif") == (label == "postgres") for kind, label in conditions
        )
        conditions = []
        i += 1
        sql = []
        while i < len(lines) and lines[i].strip() and lines[i].strip() != "----":
            sql.append(lines[i])
            i += 1
        expected = []
        if i < len(lines) and lines[i].strip() == "----":
            i += 1
            while i < len(lines) and lines[i].strip():
                expected.append(lines[i].strip())
                i += 1
        if applies:
            yield start, words[0], words, "\n".join(sql), expected


class TextLoader(psycopg.adapt.Loader):
    """Keeps a value in PostgreSQL's text output format."""

    def load(self, data):
        return bytes(data).decode()


# Every type the .slt files use: bool, bytea, char, name, int8, int2, int4,
# text, oid, json, float4, float8, unknown, bpchar, varchar, date, time,
# timestamp, timestamptz, interval, numeric, uuid, jsonb.
TEXT_OIDS = [16, 17, 18, 19, 20, 21, 23, 25, 26, 114, 700, 701, 705, 1042, 1043,
             1082, 1083, 1114, 1184, 1186, 1700, 2950, 3802]


def text(value):
    """A value as psql prints it (PostgreSQL's text output format)."""
    if value is None:
        return "NULL"
    if value == "":
        return "(empty)"
    return value


def run_file(dsn, path):
    failures = []
    name = "slt_" + uuid.uuid4().hex[:12]
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        target = psycopg.conninfo.make_conninfo(dsn, dbname=name)
        sessions = {}

        def session(key):
            if key not in sessions:
                conn = psycopg.connect(target, autocommit=True)
                # Text format for every result, as psql shows it.
                for oid in TEXT_OIDS:
                    conn.adapters.register_loader(oid, TextLoader)
                sessions[key] = conn
            return sessions[key]

        current = "default"
        for line, kind, words, sql, expected in records(path.read_text()):
            if kind == "connection":
                current = words[1]
                continue
            conn = session(current)
            # As in sqllogictest: `connection` applies to the next record only.
            current = "default"
            try:
                with conn.cursor() as cur:
                    cur.execute(sql)
                    rows = cur.fetchall() if cur.description else []
                    rowcount = cur.rowcount
                error = None
            except psycopg.Error as e:
                error = e
            if kind == "statement" and words[1] == "ok":
                if error is not None:
                    failures.append(f"{path.name}:{line}: expected ok, got {error.sqlstate}: {error}")
            elif kind == "statement" and words[1] == "count":
                if error is not None:
                    failures.append(f"{path.name}:{line}: expected ok, got {error.sqlstate}: {error}")
                elif rowcount != int(words[2]):
                    failures.append(f"{path.name}:{line}: expected count {words[2]}, got {rowcount}")
            elif kind == "statement" and words[1] == "error":
                pattern = " ".join(words[2:])
                if error is None:
                    failures.append(f"{path.name}:{line}: expected error {pattern!r}, got ok")
                elif pattern and not re.search(pattern, f"{error.sqlstate}: {error}"):
                    failures.append(
                        f"{path.name}:{line}: expected error {pattern!r}, got {error.sqlstate}: {error}"
                    )
            elif kind == "query":
                if error is not None:
                    failures.append(f"{path.name}:{line}: query failed: {error.sqlstate}: {error}")
                    continue
                got = [" ".join(text(v) for v in row) for row in rows]
                if len(words) > 2 and words[2] == "rowsort":
                    got.sort()
                    expected = sorted(expected)
                if got != expected:
                    failures.append(
                        f"{path.name}:{line}: expected\n  " + "\n  ".join(expected)
                        + "\ngot\n  " + "\n  ".join(got)
                    )
        for conn in sessions.values():
            conn.close()
    finally:
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    return failures


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        sys.exit(2)
    dsn = sys.argv[1]
    here = Path(__file__).resolve().parent
    files = [Path(f) for f in sys.argv[2:]] or sorted(here.glob("*.slt"))
    failures = []
    for path in files:
        found = run_file(dsn, path)
        print(f"{'ok  ' if not found else 'FAIL'} {path.name}")
        failures += found
    for failure in failures:
        print(failure)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
