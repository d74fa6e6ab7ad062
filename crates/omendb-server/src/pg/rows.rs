//! Arrow results as PostgreSQL rows: a RowDescription naming each column's
//! type (by OID, with its size), and DataRows of values in PostgreSQL's
//! text format (`omendb_sql::pg_text`, the format psql prints).

use bytes::{BufMut, BytesMut};
use omendb_sql::datafusion::arrow::datatypes::{DataType, Schema};
use omendb_sql::datafusion::arrow::record_batch::RecordBatch;
use omendb_sql::pg_text;
use pgwire::api::Type;
use pgwire::messages::data::{DataRow, FieldDescription, RowDescription};

/// The PostgreSQL type a column of `ty` is sent as.
pub(super) fn pg_type(ty: &DataType) -> Type {
    match ty {
        DataType::Boolean => Type::BOOL,
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => Type::INT2,
        DataType::Int32 | DataType::UInt16 => Type::INT4,
        DataType::Int64 | DataType::UInt32 => Type::INT8,
        DataType::UInt64 | DataType::Decimal128(..) | DataType::Decimal256(..) => Type::NUMERIC,
        DataType::Float16 | DataType::Float32 => Type::FLOAT4,
        DataType::Float64 => Type::FLOAT8,
        DataType::Date32 | DataType::Date64 => Type::DATE,
        DataType::Timestamp(_, None) => Type::TIMESTAMP,
        DataType::Timestamp(_, Some(_)) => Type::TIMESTAMPTZ,
        DataType::Time32(_) | DataType::Time64(_) => Type::TIME,
        DataType::Interval(_) | DataType::Duration(_) => Type::INTERVAL,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => Type::BYTEA,
        DataType::FixedSizeBinary(16) => Type::UUID,
        _ => Type::TEXT,
    }
}

/// The byte size PostgreSQL gives a type in a RowDescription (-1:
/// variable width).
fn type_size(ty: &Type) -> i16 {
    match *ty {
        Type::BOOL => 1,
        Type::INT2 => 2,
        Type::INT4 | Type::FLOAT4 | Type::DATE => 4,
        Type::INT8 | Type::FLOAT8 | Type::TIMESTAMP | Type::TIMESTAMPTZ | Type::TIME => 8,
        Type::INTERVAL | Type::UUID => 16,
        _ => -1,
    }
}

/// The RowDescription of rows of `schema`, every column in text format.
pub(super) fn row_description(schema: &Schema) -> RowDescription {
    let fields = schema
        .fields()
        .iter()
        .map(|field| {
            let ty = pg_type(field.data_type());
            FieldDescription::new(field.name().clone(), 0, 0, ty.oid(), type_size(&ty), -1, 0)
        })
        .collect();
    RowDescription::new(fields)
}

/// The rows of `batch` as DataRows, values in text format.
pub(super) fn data_rows(batch: &RecordBatch) -> Vec<DataRow> {
    let columns = batch.columns();
    let field_count = i16::try_from(columns.len()).unwrap_or(i16::MAX);
    (0..batch.num_rows())
        .map(|row| {
            let mut data = BytesMut::new();
            for column in columns {
                match pg_text(column.as_ref(), row) {
                    None => data.put_i32(-1),
                    Some(text) => {
                        // A value's length prefix is an i32: no text value
                        // of a batch comes near 2 GiB.
                        data.put_i32(i32::try_from(text.len()).unwrap_or(i32::MAX));
                        data.put_slice(text.as_bytes());
                    }
                }
            }
            DataRow::new(data, field_count)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use omendb_sql::datafusion::arrow::array::{ArrayRef, Int64Array, StringArray};
    use omendb_sql::datafusion::arrow::datatypes::Field;
    use std::sync::Arc;

    #[test]
    fn rows_are_length_prefixed_text_and_nulls_are_minus_one() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![Some(42), None])),
            Arc::new(StringArray::from(vec![Some("hé"), Some("")])),
        ];
        let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
        let rows = data_rows(&batch);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].field_count, 2);
        assert_eq!(&rows[0].data[..], b"\0\0\0\x0242\0\0\0\x03h\xc3\xa9");
        assert_eq!(&rows[1].data[..], b"\xff\xff\xff\xff\0\0\0\0");
        let description = row_description(&schema);
        let types: Vec<(u32, i16)> = description
            .fields
            .iter()
            .map(|f| (f.type_id, f.type_size))
            .collect();
        assert_eq!(types, vec![(Type::INT8.oid(), 8), (Type::TEXT.oid(), -1)]);
    }
}
