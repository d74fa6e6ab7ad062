//! JSON for the HTTP API: result columns as `{"name", "type"}` (the
//! PostgreSQL type name), values as JSON (integers and floats as numbers,
//! booleans, NULL as null, everything else as PostgreSQL's text), and
//! JSON parameters as scalars of the types the statement wants.

use omendb_sql::datafusion::arrow::array::{Array, AsArray};
use omendb_sql::datafusion::arrow::compute::CastOptions;
use omendb_sql::datafusion::arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, Schema,
    UInt8Type, UInt16Type, UInt32Type,
};
use omendb_sql::datafusion::arrow::record_batch::RecordBatch;
use omendb_sql::datafusion::common::ScalarValue;
use omendb_sql::{ErrorClass, SqlError, pg_text};
use serde_json::{Number, Value as Json, json};

use crate::pg::type_name;

/// `[{"name": ..., "type": ...}]` for each column.
pub(super) fn column_types(schema: &Schema) -> Json {
    schema
        .fields()
        .iter()
        .map(|f| json!({"name": f.name(), "type": type_name(f.data_type())}))
        .collect()
}

/// Every row of `batches` as an array of JSON values.
pub(super) fn rows_json(batches: &[RecordBatch]) -> Vec<Json> {
    let mut rows = Vec::new();
    for batch in batches {
        for row in 0..batch.num_rows() {
            let values = batch.columns().iter().map(|c| value_json(c.as_ref(), row));
            rows.push(Json::Array(values.collect()));
        }
    }
    rows
}

fn value_json(array: &dyn Array, row: usize) -> Json {
    if array.is_null(row) {
        return Json::Null;
    }
    let float =
        |v: f64| Number::from_f64(v).map_or_else(|| Json::String(float_name(v)), Json::Number);
    match array.data_type() {
        DataType::Boolean => Json::Bool(array.as_boolean().value(row)),
        DataType::Int8 => json!(array.as_primitive::<Int8Type>().value(row)),
        DataType::Int16 => json!(array.as_primitive::<Int16Type>().value(row)),
        DataType::Int32 => json!(array.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => json!(array.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => json!(array.as_primitive::<UInt8Type>().value(row)),
        DataType::UInt16 => json!(array.as_primitive::<UInt16Type>().value(row)),
        DataType::UInt32 => json!(array.as_primitive::<UInt32Type>().value(row)),
        DataType::Float32 => float(f64::from(array.as_primitive::<Float32Type>().value(row))),
        DataType::Float64 => float(array.as_primitive::<Float64Type>().value(row)),
        _ => pg_text(array, row).map_or(Json::Null, Json::String),
    }
}

/// NaN and the infinities as PostgreSQL spells them (JSON has no numbers
/// for them).
fn float_name(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v > 0.0 {
        "Infinity".into()
    } else {
        "-Infinity".into()
    }
}

/// The JSON `params` as scalars of the types the statement wants (`None`:
/// as given, strings as text).
pub(super) fn params_for(
    params: &[Json],
    wants: &[Option<DataType>],
) -> Result<Vec<ScalarValue>, SqlError> {
    params
        .iter()
        .enumerate()
        .map(|(i, value)| {
            let given = match value {
                Json::Null => ScalarValue::Null,
                Json::Bool(b) => ScalarValue::Boolean(Some(*b)),
                Json::Number(n) => match n.as_i64() {
                    Some(i) => ScalarValue::Int64(Some(i)),
                    None => ScalarValue::Float64(n.as_f64()),
                },
                Json::String(s) => ScalarValue::Utf8(Some(s.clone())),
                other => ScalarValue::Utf8(Some(other.to_string())),
            };
            let Some(Some(wanted)) = wants.get(i) else {
                return Ok(given);
            };
            if given.is_null() {
                return ScalarValue::try_from(wanted)
                    .map_err(|e| SqlError::internal(e.to_string()));
            }
            let options = CastOptions {
                safe: false,
                ..CastOptions::default()
            };
            given.cast_to_with_options(wanted, &options).map_err(|_| {
                SqlError::new(
                    ErrorClass::InvalidTextRepresentation,
                    format!(
                        "parameter ${} ({value}) is not a value of type {}",
                        i + 1,
                        type_name(wanted)
                    ),
                )
            })
        })
        .collect()
}
