//! Bytes for catalog operations (inside WAL records) and for the whole
//! catalog (inside the manifest). Varints and length-prefixed strings, as
//! the row codec; decoding checks everything and never panics.

use super::{Catalog, CatalogOp, ColumnDef, TableDef, UniqueIndex};
use crate::types::row_codec::{Reader, put_varint};
use crate::types::{DataType, Value, decode_row, encode_row};

const CREATE: u8 = 1;
const DROP: u8 = 2;
const ALTER: u8 = 3;
const CREATE_SCHEMA: u8 = 4;
const DROP_SCHEMA: u8 = 5;

/// Appends `op`.
pub(crate) fn encode_op(op: &CatalogOp, out: &mut Vec<u8>) {
    match op {
        CatalogOp::CreateTable(def) => {
            out.push(CREATE);
            encode_table(def, out);
        }
        CatalogOp::DropTable(id) => {
            out.push(DROP);
            put_varint(out, *id);
        }
        CatalogOp::AlterTable(def) => {
            out.push(ALTER);
            encode_table(def, out);
        }
        CatalogOp::CreateSchema(name) => {
            out.push(CREATE_SCHEMA);
            put_str(out, name);
        }
        CatalogOp::DropSchema(name) => {
            out.push(DROP_SCHEMA);
            put_str(out, name);
        }
    }
}

/// Reads one operation.
pub(crate) fn decode_op(reader: &mut Reader<'_>) -> Result<CatalogOp, String> {
    Ok(match reader.u8()? {
        CREATE => CatalogOp::CreateTable(decode_table(reader)?),
        DROP => CatalogOp::DropTable(reader.varint()?),
        ALTER => CatalogOp::AlterTable(decode_table(reader)?),
        CREATE_SCHEMA => CatalogOp::CreateSchema(get_str(reader)?),
        DROP_SCHEMA => CatalogOp::DropSchema(get_str(reader)?),
        other => return Err(format!("unknown catalog operation {other}")),
    })
}

/// Appends the whole catalog.
pub(crate) fn encode_catalog(catalog: &Catalog, out: &mut Vec<u8>) {
    put_varint(out, catalog.next_table_id);
    put_varint(out, catalog.schemas.len() as u64);
    for schema in &catalog.schemas {
        put_str(out, schema);
    }
    put_varint(out, catalog.tables.len() as u64);
    for def in catalog.tables.values() {
        encode_table(def, out);
    }
}

/// Reads a whole catalog.
pub(crate) fn decode_catalog(reader: &mut Reader<'_>) -> Result<Catalog, String> {
    let next_table_id = reader.varint()?;
    let mut catalog = Catalog::default();
    for _ in 0..reader.count("schemas")? {
        catalog
            .apply(&CatalogOp::CreateSchema(get_str(reader)?))
            .map_err(|e| e.to_string())?;
    }
    let count = reader.count("tables")?;
    for _ in 0..count {
        let def = decode_table(reader)?;
        catalog
            .apply(&CatalogOp::CreateTable(def))
            .map_err(|e| e.to_string())?;
    }
    if catalog.next_table_id > next_table_id {
        return Err(format!("next table id {next_table_id} below a table's id"));
    }
    catalog.next_table_id = next_table_id;
    Ok(catalog)
}

fn encode_table(def: &TableDef, out: &mut Vec<u8>) {
    put_varint(out, def.id);
    put_str(out, &def.name);
    put_varint(out, u64::from(def.next_column_id));
    put_varint(out, def.columns.len() as u64);
    for column in &def.columns {
        put_varint(out, u64::from(column.id));
        put_str(out, &column.name);
        encode_type(&column.data_type, out);
        out.push(u8::from(column.nullable));
        match &column.default {
            Some(text) => {
                out.push(1);
                put_str(out, text);
            }
            None => out.push(0),
        }
        let mut missing = Vec::new();
        encode_row(std::iter::once((0, &column.missing)), &mut missing);
        put_bytes(out, &missing);
    }
    put_varint(out, def.primary_key.len() as u64);
    for &id in &def.primary_key {
        put_varint(out, u64::from(id));
    }
    put_varint(out, def.unique.len() as u64);
    for unique in &def.unique {
        put_str(out, &unique.name);
        put_varint(out, unique.columns.len() as u64);
        for &id in &unique.columns {
            put_varint(out, u64::from(id));
        }
        put_varint(out, unique.table);
    }
    // 0: an ordinary table; else 1 + the id of the table it indexes.
    put_varint(out, def.index_of.map_or(0, |id| id + 1));
}

fn decode_table(reader: &mut Reader<'_>) -> Result<TableDef, String> {
    let id = reader.varint()?;
    let name = get_str(reader)?;
    let next_column_id = get_u32(reader)?;
    let count = reader.count("columns")?;
    let mut columns = Vec::with_capacity(count);
    for _ in 0..count {
        let column_id = get_u32(reader)?;
        let column_name = get_str(reader)?;
        let data_type = decode_type(reader)?;
        let nullable = reader.u8()? != 0;
        let default = match reader.u8()? {
            0 => None,
            _ => Some(get_str(reader)?),
        };
        let missing = match decode_row(reader.bytes()?)?.pop() {
            Some((_, value)) => value,
            None => Value::Null,
        };
        columns.push(ColumnDef {
            id: column_id,
            name: column_name,
            data_type,
            nullable,
            default,
            missing,
        });
    }
    let key_count = reader.count("key columns")?;
    let mut primary_key = Vec::with_capacity(key_count);
    for _ in 0..key_count {
        primary_key.push(get_u32(reader)?);
    }
    let mut unique = Vec::new();
    for _ in 0..reader.count("unique constraints")? {
        let name = get_str(reader)?;
        let columns = (0..reader.count("unique columns")?)
            .map(|_| get_u32(reader))
            .collect::<Result<Vec<_>, _>>()?;
        unique.push(UniqueIndex {
            name,
            columns,
            table: reader.varint()?,
        });
    }
    let index_of = reader.varint()?.checked_sub(1);
    let mut def = TableDef::assemble(id, name, columns, primary_key).map_err(|e| e.to_string())?;
    def.unique = unique;
    def.index_of = index_of;
    if next_column_id < def.next_column_id {
        return Err(format!(
            "next column id {next_column_id} below a column's id"
        ));
    }
    def.next_column_id = next_column_id;
    Ok(def)
}

fn encode_type(ty: &DataType, out: &mut Vec<u8>) {
    match ty {
        DataType::Bool => out.push(1),
        DataType::Int16 => out.push(2),
        DataType::Int32 => out.push(3),
        DataType::Int64 => out.push(4),
        DataType::Float32 => out.push(5),
        DataType::Float64 => out.push(6),
        DataType::Numeric { precision, scale } => out.extend([7, *precision, *scale as u8]),
        DataType::Text { max_chars } => {
            out.push(8);
            put_varint(out, max_chars.map_or(0, |n| u64::from(n) + 1));
        }
        DataType::Bytea => out.push(9),
        DataType::Date => out.push(10),
        DataType::Timestamp => out.push(11),
        DataType::TimestampTz => out.push(12),
        DataType::Interval => out.push(13),
        DataType::Uuid => out.push(14),
        DataType::Jsonb => out.push(15),
        DataType::Char { len } => {
            out.push(17);
            put_varint(out, u64::from(*len));
        }
        DataType::Vector { dims } => {
            out.push(16);
            put_varint(out, dims.map_or(0, |n| u64::from(n) + 1));
        }
    }
}

fn decode_type(reader: &mut Reader<'_>) -> Result<DataType, String> {
    let optional = |raw: u64| -> Result<Option<u32>, String> {
        match raw {
            0 => Ok(None),
            n => u32::try_from(n - 1)
                .map(Some)
                .map_err(|_| format!("type parameter {n} over u32")),
        }
    };
    let ty = match reader.u8()? {
        1 => DataType::Bool,
        2 => DataType::Int16,
        3 => DataType::Int32,
        4 => DataType::Int64,
        5 => DataType::Float32,
        6 => DataType::Float64,
        7 => DataType::Numeric {
            precision: reader.u8()?,
            scale: reader.u8()? as i8,
        },
        8 => DataType::Text {
            max_chars: optional(reader.varint()?)?,
        },
        9 => DataType::Bytea,
        10 => DataType::Date,
        11 => DataType::Timestamp,
        12 => DataType::TimestampTz,
        13 => DataType::Interval,
        14 => DataType::Uuid,
        17 => DataType::Char {
            len: u32::try_from(reader.varint()?).map_err(|_| "character length over u32")?,
        },
        15 => DataType::Jsonb,
        16 => DataType::Vector {
            dims: optional(reader.varint()?)?,
        },
        other => return Err(format!("unknown type tag {other}")),
    };
    ty.validate().map_err(|e| e.to_string())?;
    Ok(ty)
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_bytes(out, s.as_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn get_str(reader: &mut Reader<'_>) -> Result<String, String> {
    String::from_utf8(reader.bytes()?.to_vec()).map_err(|e| format!("invalid UTF-8 in name: {e}"))
}

fn get_u32(reader: &mut Reader<'_>) -> Result<u32, String> {
    let value = reader.varint()?;
    u32::try_from(value).map_err(|_| format!("{value} over u32"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::ColumnSpec;
    use crate::test_rng::TestRng;

    fn sample() -> Catalog {
        let every_type = vec![
            ColumnSpec::new("id", DataType::Int64),
            ColumnSpec::new("b", DataType::Bool),
            ColumnSpec::new(
                "n",
                DataType::Numeric {
                    precision: 12,
                    scale: 3,
                },
            ),
            ColumnSpec::new(
                "v",
                DataType::Text {
                    max_chars: Some(20),
                },
            ),
            ColumnSpec {
                default: Some("now()".into()),
                ..ColumnSpec::new("t", DataType::TimestampTz)
            },
            ColumnSpec::new("e", DataType::Vector { dims: Some(3) }),
            ColumnSpec::new("j", DataType::Jsonb),
            ColumnSpec::new("u", DataType::Uuid),
            ColumnSpec::new("c", DataType::Char { len: 22 }),
        ];
        let a = TableDef::new(3, "metrics.a", every_type, &["id"]).unwrap();
        let mut a = a
            .with_column_added(ColumnSpec::new("x", DataType::Int16), Value::Int16(7))
            .unwrap();
        let index = a.unique_index(4, "a_v_x_key", &["v", "x"]).unwrap();
        a.unique.push(UniqueIndex {
            name: index.name.clone(),
            columns: vec![3, 8],
            table: index.id,
        });
        let b = TableDef::new(5, "b", vec![ColumnSpec::new("x", DataType::Float32)], &[]).unwrap();
        let mut catalog = Catalog::default();
        for schema in ["metrics", "empty"] {
            catalog
                .apply(&CatalogOp::CreateSchema(schema.into()))
                .unwrap();
        }
        catalog.apply(&CatalogOp::CreateTable(a)).unwrap();
        catalog.apply(&CatalogOp::CreateTable(index)).unwrap();
        catalog.apply(&CatalogOp::CreateTable(b)).unwrap();
        catalog
    }

    #[test]
    fn catalog_and_operations_round_trip() {
        let catalog = sample();
        let mut bytes = Vec::new();
        encode_catalog(&catalog, &mut bytes);
        assert_eq!(decode_catalog(&mut Reader::new(&bytes)).unwrap(), catalog);

        let def = catalog.table("metrics.a").unwrap().as_ref().clone();
        for op in [
            CatalogOp::CreateTable(def.clone()),
            CatalogOp::AlterTable(def),
            CatalogOp::DropTable(9),
            CatalogOp::CreateSchema("s".into()),
            CatalogOp::DropSchema("s".into()),
        ] {
            let mut bytes = Vec::new();
            encode_op(&op, &mut bytes);
            let mut reader = Reader::new(&bytes);
            assert_eq!(decode_op(&mut reader).unwrap(), op);
            assert!(reader.is_empty());
        }
    }

    #[test]
    fn garbled_catalogs_are_errors_not_panics() {
        let mut bytes = Vec::new();
        encode_catalog(&sample(), &mut bytes);
        for len in 0..bytes.len() {
            assert!(
                decode_catalog(&mut Reader::new(&bytes[..len])).is_err(),
                "truncated to {len}"
            );
        }
        let mut rng = TestRng::new("garbled_catalogs_are_errors_not_panics");
        for _ in 0..5000 {
            let mut garbled = bytes.clone();
            let i = rng.below(garbled.len() as u64) as usize;
            garbled[i] = rng.u64() as u8;
            let _ = decode_catalog(&mut Reader::new(&garbled));
        }
    }
}
