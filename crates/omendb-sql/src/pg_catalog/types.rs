//! PostgreSQL's built-in types as `pg_type` lists them, the type a column
//! of each storage type has (OID and type modifier), and `format_type`'s
//! name for a type. OIDs and names are PostgreSQL 15's: drivers know them.

use omendb_storage::DataType;

/// One row of `pg_type`.
#[derive(Debug)]
pub(crate) struct PgType {
    pub oid: u32,
    pub name: &'static str,
    /// Byte length; -1 variable, -2 a C string.
    pub len: i16,
    pub by_value: bool,
    /// `b` base, `p` pseudo, `r` range.
    pub kind: char,
    pub category: char,
    /// The element type of an array type, else 0.
    pub element: u32,
    /// The array type of this type, else 0.
    pub array: u32,
    pub align: char,
    /// 100 (`default`) for collatable types, else 0.
    pub collation: u32,
}

// A row of the table below: the arguments are its columns.
#[allow(clippy::too_many_arguments)]
const fn ty(
    oid: u32,
    name: &'static str,
    len: i16,
    by_value: bool,
    category: char,
    element: u32,
    array: u32,
    align: char,
) -> PgType {
    let collation = match category {
        'S' => 100,
        _ => 0,
    };
    PgType {
        oid,
        name,
        len,
        by_value,
        kind: 'b',
        category,
        element,
        array,
        align,
        collation,
    }
}

const fn pseudo(oid: u32, name: &'static str, len: i16, array: u32, align: char) -> PgType {
    PgType {
        oid,
        name,
        len,
        by_value: false,
        kind: 'p',
        category: 'P',
        element: 0,
        array,
        align,
        collation: 0,
    }
}

/// `vector` (pgvector's type). pgvector's OID is assigned when the
/// extension is created; here it is fixed, in the range PostgreSQL leaves
/// unassigned.
pub(crate) const VECTOR_OID: u32 = 9_000;

pub(crate) const BOOL: u32 = 16;
pub(crate) const INT2: u32 = 21;
pub(crate) const INT4: u32 = 23;
pub(crate) const INT8: u32 = 20;
pub(crate) const TEXT: u32 = 25;
pub(crate) const FLOAT4: u32 = 700;
pub(crate) const FLOAT8: u32 = 701;
pub(crate) const VARCHAR: u32 = 1043;
pub(crate) const NUMERIC: u32 = 1700;

/// The types `pg_type` lists: the ones columns, parameters and catalogs
/// use, and their arrays.
pub(crate) const TYPES: &[PgType] = &[
    ty(16, "bool", 1, true, 'B', 0, 1000, 'c'),
    ty(17, "bytea", -1, false, 'U', 0, 1001, 'i'),
    ty(18, "char", 1, true, 'Z', 0, 1002, 'c'),
    ty(19, "name", 64, false, 'S', 18, 1003, 'c'),
    ty(20, "int8", 8, true, 'N', 0, 1016, 'd'),
    ty(21, "int2", 2, true, 'N', 0, 1005, 's'),
    ty(22, "int2vector", -1, false, 'A', 21, 1006, 'i'),
    ty(23, "int4", 4, true, 'N', 0, 1007, 'i'),
    ty(24, "regproc", 4, true, 'N', 0, 1008, 'i'),
    ty(25, "text", -1, false, 'S', 0, 1009, 'i'),
    ty(26, "oid", 4, true, 'N', 0, 1028, 'i'),
    ty(28, "xid", 4, true, 'U', 0, 1011, 'i'),
    ty(30, "oidvector", -1, false, 'A', 26, 1013, 'i'),
    ty(114, "json", -1, false, 'U', 0, 199, 'i'),
    ty(194, "pg_node_tree", -1, false, 'Z', 0, 0, 'i'),
    ty(199, "_json", -1, false, 'A', 114, 0, 'i'),
    ty(700, "float4", 4, true, 'N', 0, 1021, 'i'),
    ty(701, "float8", 8, true, 'N', 0, 1022, 'd'),
    pseudo(705, "unknown", -2, 0, 'c'),
    ty(1000, "_bool", -1, false, 'A', 16, 0, 'i'),
    ty(1001, "_bytea", -1, false, 'A', 17, 0, 'i'),
    ty(1002, "_char", -1, false, 'A', 18, 0, 'i'),
    ty(1003, "_name", -1, false, 'A', 19, 0, 'i'),
    ty(1005, "_int2", -1, false, 'A', 21, 0, 'i'),
    ty(1007, "_int4", -1, false, 'A', 23, 0, 'i'),
    ty(1009, "_text", -1, false, 'A', 25, 0, 'i'),
    ty(1015, "_varchar", -1, false, 'A', 1043, 0, 'i'),
    ty(1016, "_int8", -1, false, 'A', 20, 0, 'd'),
    ty(1021, "_float4", -1, false, 'A', 700, 0, 'i'),
    ty(1022, "_float8", -1, false, 'A', 701, 0, 'd'),
    ty(1028, "_oid", -1, false, 'A', 26, 0, 'i'),
    ty(1033, "aclitem", 12, false, 'U', 0, 1034, 'i'),
    ty(1042, "bpchar", -1, false, 'S', 0, 1014, 'i'),
    ty(1043, "varchar", -1, false, 'S', 0, 1015, 'i'),
    ty(1082, "date", 4, true, 'D', 0, 1182, 'i'),
    ty(1083, "time", 8, true, 'D', 0, 1183, 'd'),
    ty(1114, "timestamp", 8, true, 'D', 0, 1115, 'd'),
    ty(1115, "_timestamp", -1, false, 'A', 1114, 0, 'd'),
    ty(1182, "_date", -1, false, 'A', 1082, 0, 'i'),
    ty(1184, "timestamptz", 8, true, 'D', 0, 1185, 'd'),
    ty(1185, "_timestamptz", -1, false, 'A', 1184, 0, 'd'),
    ty(1186, "interval", 16, false, 'T', 0, 1187, 'd'),
    ty(1187, "_interval", -1, false, 'A', 1186, 0, 'd'),
    ty(1231, "_numeric", -1, false, 'A', 1700, 0, 'i'),
    ty(1700, "numeric", -1, false, 'N', 0, 1231, 'i'),
    ty(2205, "regclass", 4, true, 'N', 0, 2210, 'i'),
    ty(2206, "regtype", 4, true, 'N', 0, 2211, 'i'),
    pseudo(2249, "record", -1, 2287, 'd'),
    pseudo(2275, "cstring", -2, 1263, 'c'),
    pseudo(2277, "anyarray", -1, 0, 'd'),
    pseudo(2278, "void", 4, 0, 'i'),
    ty(2950, "uuid", 16, false, 'U', 0, 2951, 'c'),
    ty(2951, "_uuid", -1, false, 'A', 2950, 0, 'i'),
    ty(3802, "jsonb", -1, false, 'U', 0, 3807, 'i'),
    ty(3807, "_jsonb", -1, false, 'A', 3802, 0, 'i'),
    ty(4089, "regnamespace", 4, true, 'N', 0, 4090, 'i'),
    ty(VECTOR_OID, "vector", -1, false, 'U', 0, 0, 'i'),
];

/// The default btree operator classes (`pg_opclass`): OID, name, input
/// type, family. Indexes list them per column (`pg_index.indclass`).
pub(crate) const OPCLASSES: &[(u32, &str, u32, u32)] = &[
    (10003, "bool_ops", 16, 424),
    (10006, "bytea_ops", 17, 428),
    (3124, "int8_ops", 20, 1976),
    (1979, "int2_ops", 21, 1976),
    (1978, "int4_ops", 23, 1976),
    (3126, "text_ops", 25, 1994),
    (10012, "float4_ops", 700, 1970),
    (3123, "float8_ops", 701, 1970),
    (10004, "bpchar_ops", 1042, 426),
    (3122, "date_ops", 1082, 434),
    (3128, "timestamp_ops", 1114, 434),
    (3127, "timestamptz_ops", 1184, 434),
    (10022, "interval_ops", 1186, 1982),
    (3125, "numeric_ops", 1700, 1988),
    (10065, "uuid_ops", 2950, 2968),
];

/// The default operator class of a key column of type `oid` (0: none).
pub(crate) fn default_opclass(oid: u32) -> u32 {
    let oid = if oid == VARCHAR { TEXT } else { oid };
    OPCLASSES
        .iter()
        .find(|(_, _, input, _)| *input == oid)
        .map_or(0, |(opclass, ..)| *opclass)
}

/// The `pg_type` row of `oid`.
pub(crate) fn by_oid(oid: u32) -> Option<&'static PgType> {
    TYPES.iter().find(|t| t.oid == oid)
}

/// The `pg_type` row named `name` (`int4`, or an SQL spelling such as
/// `integer`).
pub(crate) fn by_name(name: &str) -> Option<&'static PgType> {
    let name = match name {
        "boolean" => "bool",
        "smallint" => "int2",
        "integer" | "int" => "int4",
        "bigint" => "int8",
        "real" => "float4",
        "double precision" => "float8",
        "character varying" => "varchar",
        "character" => "bpchar",
        "timestamp without time zone" => "timestamp",
        "timestamp with time zone" => "timestamptz",
        "time without time zone" => "time",
        "decimal" => "numeric",
        other => other,
    };
    TYPES.iter().find(|t| t.name == name)
}

/// The type OID and type modifier (`atttypmod`) of a column of `ty`.
pub(crate) fn column_type(ty: &DataType) -> (u32, i32) {
    match ty {
        DataType::Bool => (BOOL, -1),
        DataType::Int16 => (INT2, -1),
        DataType::Int32 => (INT4, -1),
        DataType::Int64 => (INT8, -1),
        DataType::Float32 => (FLOAT4, -1),
        DataType::Float64 => (FLOAT8, -1),
        // PostgreSQL's numeric typmod: ((precision << 16) | scale) + 4.
        DataType::Numeric { precision, scale } => (
            NUMERIC,
            ((i32::from(*precision) << 16) | (i32::from(*scale) & 0xffff)) + 4,
        ),
        DataType::Text { max_chars: None } => (TEXT, -1),
        DataType::Text { max_chars: Some(n) } => (
            VARCHAR,
            i32::try_from(*n).map_or(-1, |n| n.saturating_add(4)),
        ),
        DataType::Char { len } => (
            1042,
            i32::try_from(*len).map_or(-1, |n| n.saturating_add(4)),
        ),
        DataType::Bytea => (17, -1),
        DataType::Date => (1082, -1),
        DataType::Timestamp => (1114, -1),
        DataType::TimestampTz => (1184, -1),
        DataType::Interval => (1186, -1),
        DataType::Uuid => (2950, -1),
        DataType::Jsonb => (3802, -1),
        DataType::Vector { dims } => (
            VECTOR_OID,
            dims.and_then(|d| i32::try_from(d).ok()).unwrap_or(-1),
        ),
    }
}

/// `format_type(oid, typmod)`: the SQL name of a type, with its modifier.
pub(crate) fn format_type(oid: u32, typmod: i32) -> Option<String> {
    let t = by_oid(oid)?;
    if t.category == 'A' && t.element != 0 && t.name.starts_with('_') {
        return format_type(t.element, typmod).map(|e| format!("{e}[]"));
    }
    let modifier = typmod - 4;
    Some(match (t.name, typmod >= 0) {
        ("bool", _) => "boolean".into(),
        ("int2", _) => "smallint".into(),
        ("int4", _) => "integer".into(),
        ("int8", _) => "bigint".into(),
        ("float4", _) => "real".into(),
        ("float8", _) => "double precision".into(),
        ("char", _) => "\"char\"".into(),
        ("varchar", true) => format!("character varying({modifier})"),
        ("varchar", false) => "character varying".into(),
        ("bpchar", true) => format!("character({modifier})"),
        ("bpchar", false) => "bpchar".into(),
        ("numeric", true) => format!("numeric({},{})", modifier >> 16, modifier & 0xffff),
        ("timestamp", _) => "timestamp without time zone".into(),
        ("timestamptz", _) => "timestamp with time zone".into(),
        ("time", _) => "time without time zone".into(),
        ("vector", true) => format!("vector({typmod})"),
        (name, _) => name.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_type_spells_types_as_postgresql_does() {
        let cases = [
            (DataType::Int64, "bigint"),
            (DataType::Float64, "double precision"),
            (
                DataType::Numeric {
                    precision: 10,
                    scale: 2,
                },
                "numeric(10,2)",
            ),
            (
                DataType::Text {
                    max_chars: Some(20),
                },
                "character varying(20)",
            ),
            (DataType::Text { max_chars: None }, "text"),
            (DataType::Char { len: 22 }, "character(22)"),
            (DataType::TimestampTz, "timestamp with time zone"),
            (DataType::Vector { dims: Some(3) }, "vector(3)"),
        ];
        for (ty, name) in cases {
            let (oid, typmod) = column_type(&ty);
            assert_eq!(format_type(oid, typmod).as_deref(), Some(name), "{ty:?}");
        }
        assert_eq!(format_type(1007, -1).as_deref(), Some("integer[]"));
        assert_eq!(format_type(123_456, -1), None);
    }

    #[test]
    fn every_array_type_points_back_at_its_element() {
        for t in TYPES.iter().filter(|t| t.array != 0) {
            if let Some(array) = by_oid(t.array) {
                assert_eq!(array.element, t.oid, "{}", array.name);
            }
        }
    }
}
