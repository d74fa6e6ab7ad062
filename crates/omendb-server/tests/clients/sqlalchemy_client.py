"""SQLAlchemy's PostgreSQL dialect (over psycopg 3) introspecting a
running OmenDB: has_table, table names, columns with types, nullability
and defaults, primary key, unique constraints, indexes, and reflecting a
Table. Usage: sqlalchemy_client.py PORT. Exits non-zero on the first
failed check."""

import sys

import sqlalchemy as sa

port = int(sys.argv[1])
engine = sa.create_engine(f"postgresql+psycopg://omendb@127.0.0.1:{port}/omendb")


def check(got, want, what):
    if got != want:
        sys.exit(f"{what}: got {got!r}, want {want!r}")


with engine.begin() as conn:
    conn.exec_driver_sql(
        "CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL DEFAULT 'x',"
        " price numeric(10,2), code varchar(8) UNIQUE, seen timestamptz)"
    )
    conn.exec_driver_sql("CREATE SCHEMA sensors")
    conn.exec_driver_sql(
        "CREATE TABLE sensors.readings (device int, ts timestamp, v float8,"
        " PRIMARY KEY (device, ts))"
    )

inspector = sa.inspect(engine)
check(inspector.has_table("items"), True, "has_table items")
check(inspector.has_table("nope"), False, "has_table nope")
check(inspector.has_table("readings", schema="sensors"), True, "has_table sensors.readings")
check(inspector.get_table_names(), ["items"], "table names")
check(inspector.get_table_names(schema="sensors"), ["readings"], "sensors table names")
check("sensors" in inspector.get_schema_names(), True, "schema names")

# PostgreSQL deparses the default as 'x'::text; OmenDB keeps it as written.
columns = [
    (c["name"], str(c["type"]), c["nullable"], c["default"] and c["default"].removesuffix("::text"))
    for c in inspector.get_columns("items")
]
check(
    columns,
    [
        ("id", "BIGINT", False, None),
        ("name", "TEXT", False, "'x'"),
        ("price", "NUMERIC(10, 2)", True, None),
        ("code", "VARCHAR(8)", True, None),
        ("seen", "TIMESTAMP", True, None),
    ],
    "columns",
)
check(
    inspector.get_columns("items")[4]["type"].timezone, True, "timestamptz has a time zone"
)
pk = inspector.get_pk_constraint("items")
check((pk["name"], pk["constrained_columns"]), ("items_pkey", ["id"]), "primary key")
pk = inspector.get_pk_constraint("readings", schema="sensors")
check(pk["constrained_columns"], ["device", "ts"], "composite key in order")
uniques = inspector.get_unique_constraints("items")
check(
    [(u["name"], u["column_names"]) for u in uniques],
    [("items_code_key", ["code"])],
    "unique constraints",
)
indexes = inspector.get_indexes("items")
check(
    [(i["name"], i["unique"], i["column_names"]) for i in indexes],
    [("items_code_key", True, ["code"])],
    "indexes",
)
check(inspector.get_foreign_keys("items"), [], "foreign keys")

table = sa.Table("items", sa.MetaData(), autoload_with=engine)
check([c.name for c in table.columns], ["id", "name", "price", "code", "seen"], "reflected")
check(list(table.primary_key.columns.keys()), ["id"], "reflected key")
with engine.begin() as conn:
    conn.execute(table.insert().values(id=1, code="a1"))
    row = conn.execute(sa.select(table.c.name, table.c.code).where(table.c.id == 1)).one()
check(tuple(row), ("x", "a1"), "insert and select through the reflected table")
print("ok")
