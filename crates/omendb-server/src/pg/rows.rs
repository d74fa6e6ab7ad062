//! Arrow results as PostgreSQL rows: a RowDescription naming each column's
//! type (by OID, with its size) and format, and DataRows of values in
//! PostgreSQL's text format (`omendb_sql::pg_text`, the format psql
//! prints) or binary format (`binary.rs`), column by column as the client
//! asked.

use bytes::{BufMut, BytesMut};
use omendb_sql::datafusion::arrow::datatypes::Schema;
use omendb_sql::datafusion::arrow::record_batch::RecordBatch;
use omendb_sql::pg_text;
use pgwire::api::portal::Format;
use pgwire::messages::data::{DataRow, FieldDescription, RowDescription};

use super::binary;
use super::types::{pg_type, type_size};

/// The RowDescription of rows of `schema` sent in `formats`.
pub(super) fn row_description(schema: &Schema, formats: &Format) -> RowDescription {
    let fields = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, field)| {
            let ty = pg_type(field.data_type());
            let format = formats.format_for(i).value();
            FieldDescription::new(
                field.name().clone(),
                0,
                0,
                ty.oid(),
                type_size(&ty),
                -1,
                format,
            )
        })
        .collect();
    RowDescription::new(fields)
}

/// Row `row` of `batch` as a DataRow, each value in its column's format.
pub(super) fn data_row(batch: &RecordBatch, row: usize, formats: &Format) -> DataRow {
    let columns = batch.columns();
    let mut data = BytesMut::new();
    for (i, column) in columns.iter().enumerate() {
        if formats.is_binary(i) {
            binary::put_value(column.as_ref(), row, &mut data);
            continue;
        }
        match pg_text(column.as_ref(), row) {
            None => data.put_i32(-1),
            Some(text) => {
                // A value's length prefix is an i32: no text value of a
                // batch comes near 2 GiB.
                data.put_i32(i32::try_from(text.len()).unwrap_or(i32::MAX));
                data.put_slice(text.as_bytes());
            }
        }
    }
    DataRow::new(data, i16::try_from(columns.len()).unwrap_or(i16::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use omendb_sql::datafusion::arrow::array::{ArrayRef, Int64Array, StringArray};
    use omendb_sql::datafusion::arrow::datatypes::DataType;
    use omendb_sql::datafusion::arrow::datatypes::Field;
    use pgwire::api::Type;
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
        let rows: Vec<DataRow> = (0..2)
            .map(|row| data_row(&batch, row, &Format::UnifiedText))
            .collect();
        assert_eq!(rows[0].field_count, 2);
        assert_eq!(&rows[0].data[..], b"\0\0\0\x0242\0\0\0\x03h\xc3\xa9");
        assert_eq!(&rows[1].data[..], b"\xff\xff\xff\xff\0\0\0\0");
        let binary = data_row(&batch, 0, &Format::Individual(vec![1, 0]));
        assert_eq!(
            &binary.data[..],
            b"\0\0\0\x08\0\0\0\0\0\0\0\x2a\0\0\0\x03h\xc3\xa9"
        );
        let description = row_description(&schema, &Format::Individual(vec![1, 0]));
        let types: Vec<(u32, i16, i16)> = description
            .fields
            .iter()
            .map(|f| (f.type_id, f.type_size, f.format_code))
            .collect();
        assert_eq!(
            types,
            vec![(Type::INT8.oid(), 8, 1), (Type::TEXT.oid(), -1, 0)]
        );
    }
}
