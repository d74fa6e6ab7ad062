//! Values to Arrow arrays and back, one column type at a time.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryArray, BinaryBuilder, BooleanArray, BooleanBuilder, Date32Array,
    Date32Builder, Decimal128Array, Decimal128Builder, FixedSizeBinaryArray,
    FixedSizeBinaryBuilder, FixedSizeListArray, FixedSizeListBuilder, Float32Array, Float32Builder,
    Float64Array, Float64Builder, Int16Array, Int16Builder, Int32Array, Int32Builder, Int64Array,
    Int64Builder, IntervalMonthDayNanoArray, IntervalMonthDayNanoBuilder, ListArray, ListBuilder,
    StringArray, StringBuilder, TimestampMicrosecondArray, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType as ArrowType, Field, IntervalMonthDayNano};

use super::{DataType, Interval, Value};
use crate::error::{Result, StorageError};

/// Builds one Arrow array from values of one column type.
#[derive(Debug)]
pub enum ColumnBuilder {
    Bool(BooleanBuilder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Numeric(Decimal128Builder),
    Text(StringBuilder),
    Bytes(BinaryBuilder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
    Interval(IntervalMonthDayNanoBuilder),
    Uuid(FixedSizeBinaryBuilder),
    Vector(FixedSizeListBuilder<Float32Builder>),
    VectorList(ListBuilder<Float32Builder>),
}

fn item_field() -> Arc<Field> {
    Arc::new(Field::new("item", ArrowType::Float32, false))
}

fn mismatch(ty: &str, value: &Value) -> StorageError {
    StorageError::internal(format!("value {value:?} given to a {ty} column builder"))
}

impl ColumnBuilder {
    pub fn new(ty: &DataType, capacity: usize) -> ColumnBuilder {
        match ty {
            DataType::Bool => ColumnBuilder::Bool(BooleanBuilder::with_capacity(capacity)),
            DataType::Int16 => ColumnBuilder::Int16(Int16Builder::with_capacity(capacity)),
            DataType::Int32 => ColumnBuilder::Int32(Int32Builder::with_capacity(capacity)),
            DataType::Int64 => ColumnBuilder::Int64(Int64Builder::with_capacity(capacity)),
            DataType::Float32 => ColumnBuilder::Float32(Float32Builder::with_capacity(capacity)),
            DataType::Float64 => ColumnBuilder::Float64(Float64Builder::with_capacity(capacity)),
            DataType::Numeric { precision, scale } => ColumnBuilder::Numeric(
                Decimal128Builder::with_capacity(capacity)
                    .with_data_type(ArrowType::Decimal128(*precision, *scale)),
            ),
            DataType::Text { .. } | DataType::Char { .. } | DataType::Jsonb => {
                ColumnBuilder::Text(StringBuilder::with_capacity(capacity, capacity * 16))
            }
            DataType::Bytea => {
                ColumnBuilder::Bytes(BinaryBuilder::with_capacity(capacity, capacity * 16))
            }
            DataType::Date => ColumnBuilder::Date(Date32Builder::with_capacity(capacity)),
            DataType::Timestamp | DataType::TimestampTz => ColumnBuilder::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(capacity)
                    .with_data_type(ty.arrow_type()),
            ),
            DataType::Interval => {
                ColumnBuilder::Interval(IntervalMonthDayNanoBuilder::with_capacity(capacity))
            }
            DataType::Uuid => {
                ColumnBuilder::Uuid(FixedSizeBinaryBuilder::with_capacity(capacity, 16))
            }
            DataType::Vector { dims: Some(n) } => ColumnBuilder::Vector(
                FixedSizeListBuilder::with_capacity(Float32Builder::new(), *n as i32, capacity)
                    .with_field(item_field()),
            ),
            DataType::Vector { dims: None } => ColumnBuilder::VectorList(
                ListBuilder::with_capacity(Float32Builder::new(), capacity)
                    .with_field(item_field()),
            ),
        }
    }

    /// Appends `value`, which must fit the builder's type (or be NULL).
    pub fn append(&mut self, value: &Value) -> Result<()> {
        match (self, value) {
            (ColumnBuilder::Bool(b), Value::Bool(v)) => b.append_value(*v),
            (ColumnBuilder::Int16(b), Value::Int16(v)) => b.append_value(*v),
            (ColumnBuilder::Int32(b), Value::Int32(v)) => b.append_value(*v),
            (ColumnBuilder::Int64(b), Value::Int64(v)) => b.append_value(*v),
            (ColumnBuilder::Float32(b), Value::Float32(v)) => b.append_value(*v),
            (ColumnBuilder::Float64(b), Value::Float64(v)) => b.append_value(*v),
            (ColumnBuilder::Numeric(b), Value::Numeric { unscaled, .. }) => {
                b.append_value(*unscaled)
            }
            (ColumnBuilder::Text(b), Value::Text(v) | Value::Json(v)) => b.append_value(v),
            (ColumnBuilder::Bytes(b), Value::Bytes(v)) => b.append_value(v),
            (ColumnBuilder::Date(b), Value::Date(v)) => b.append_value(*v),
            (ColumnBuilder::Timestamp(b), Value::Timestamp(v) | Value::TimestampTz(v)) => {
                b.append_value(*v)
            }
            (ColumnBuilder::Interval(b), Value::Interval(i)) => b.append_value(
                IntervalMonthDayNano::new(i.months, i.days, i.micros.saturating_mul(1000)),
            ),
            (ColumnBuilder::Uuid(b), Value::Uuid(u)) => b
                .append_value(u)
                .map_err(|e| StorageError::internal(e.to_string()))?,
            (ColumnBuilder::Vector(b), Value::Vector(v)) => {
                b.values().append_slice(v);
                b.append(true);
            }
            (ColumnBuilder::VectorList(b), Value::Vector(v)) => {
                b.values().append_slice(v);
                b.append(true);
            }
            (builder, Value::Null) => builder.append_null(),
            (builder, value) => return Err(mismatch(builder.name(), value)),
        }
        Ok(())
    }

    fn append_null(&mut self) {
        match self {
            ColumnBuilder::Bool(b) => b.append_null(),
            ColumnBuilder::Int16(b) => b.append_null(),
            ColumnBuilder::Int32(b) => b.append_null(),
            ColumnBuilder::Int64(b) => b.append_null(),
            ColumnBuilder::Float32(b) => b.append_null(),
            ColumnBuilder::Float64(b) => b.append_null(),
            ColumnBuilder::Numeric(b) => b.append_null(),
            ColumnBuilder::Text(b) => b.append_null(),
            ColumnBuilder::Bytes(b) => b.append_null(),
            ColumnBuilder::Date(b) => b.append_null(),
            ColumnBuilder::Timestamp(b) => b.append_null(),
            ColumnBuilder::Interval(b) => b.append_null(),
            ColumnBuilder::Uuid(b) => b.append_null(),
            ColumnBuilder::Vector(b) => {
                // A null list still occupies its fixed number of child slots.
                let n = b.value_length() as usize;
                b.values().append_nulls(n);
                b.append(false);
            }
            ColumnBuilder::VectorList(b) => b.append(false),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            ColumnBuilder::Bool(_) => "boolean",
            ColumnBuilder::Int16(_) => "smallint",
            ColumnBuilder::Int32(_) => "integer",
            ColumnBuilder::Int64(_) => "bigint",
            ColumnBuilder::Float32(_) => "real",
            ColumnBuilder::Float64(_) => "double",
            ColumnBuilder::Numeric(_) => "numeric",
            ColumnBuilder::Text(_) => "text",
            ColumnBuilder::Bytes(_) => "bytea",
            ColumnBuilder::Date(_) => "date",
            ColumnBuilder::Timestamp(_) => "timestamp",
            ColumnBuilder::Interval(_) => "interval",
            ColumnBuilder::Uuid(_) => "uuid",
            ColumnBuilder::Vector(_) | ColumnBuilder::VectorList(_) => "vector",
        }
    }

    /// The array built so far; the builder starts over.
    pub fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::Bool(b) => Arc::new(b.finish()),
            ColumnBuilder::Int16(b) => Arc::new(b.finish()),
            ColumnBuilder::Int32(b) => Arc::new(b.finish()),
            ColumnBuilder::Int64(b) => Arc::new(b.finish()),
            ColumnBuilder::Float32(b) => Arc::new(b.finish()),
            ColumnBuilder::Float64(b) => Arc::new(b.finish()),
            ColumnBuilder::Numeric(b) => Arc::new(b.finish()),
            ColumnBuilder::Text(b) => Arc::new(b.finish()),
            ColumnBuilder::Bytes(b) => Arc::new(b.finish()),
            ColumnBuilder::Date(b) => Arc::new(b.finish()),
            ColumnBuilder::Timestamp(b) => Arc::new(b.finish()),
            ColumnBuilder::Interval(b) => Arc::new(b.finish()),
            ColumnBuilder::Uuid(b) => Arc::new(b.finish()),
            ColumnBuilder::Vector(b) => Arc::new(b.finish()),
            ColumnBuilder::VectorList(b) => Arc::new(b.finish()),
        }
    }
}

fn downcast<'a, T: 'static>(array: &'a dyn Array, ty: &DataType) -> Result<&'a T> {
    array.as_any().downcast_ref::<T>().ok_or_else(|| {
        StorageError::internal(format!("array of type {} read as {ty}", array.data_type()))
    })
}

/// The value at `row` of `array`, read as a column of type `ty`.
pub fn value_at(array: &dyn Array, row: usize, ty: &DataType) -> Result<Value> {
    if array.is_null(row) {
        return Ok(Value::Null);
    }
    Ok(match ty {
        DataType::Bool => Value::Bool(downcast::<BooleanArray>(array, ty)?.value(row)),
        DataType::Int16 => Value::Int16(downcast::<Int16Array>(array, ty)?.value(row)),
        DataType::Int32 => Value::Int32(downcast::<Int32Array>(array, ty)?.value(row)),
        DataType::Int64 => Value::Int64(downcast::<Int64Array>(array, ty)?.value(row)),
        DataType::Float32 => Value::Float32(downcast::<Float32Array>(array, ty)?.value(row)),
        DataType::Float64 => Value::Float64(downcast::<Float64Array>(array, ty)?.value(row)),
        DataType::Numeric { scale, .. } => Value::Numeric {
            unscaled: downcast::<Decimal128Array>(array, ty)?.value(row),
            scale: *scale,
        },
        DataType::Text { .. } => {
            Value::Text(downcast::<StringArray>(array, ty)?.value(row).to_owned())
        }
        // Trailing spaces are not part of a character(n) value.
        DataType::Char { .. } => Value::Text(
            downcast::<StringArray>(array, ty)?
                .value(row)
                .trim_end_matches(' ')
                .to_owned(),
        ),
        DataType::Jsonb => Value::Json(downcast::<StringArray>(array, ty)?.value(row).to_owned()),
        DataType::Bytea => Value::Bytes(downcast::<BinaryArray>(array, ty)?.value(row).to_vec()),
        DataType::Date => Value::Date(downcast::<Date32Array>(array, ty)?.value(row)),
        DataType::Timestamp => {
            Value::Timestamp(downcast::<TimestampMicrosecondArray>(array, ty)?.value(row))
        }
        DataType::TimestampTz => {
            Value::TimestampTz(downcast::<TimestampMicrosecondArray>(array, ty)?.value(row))
        }
        DataType::Interval => {
            let v = downcast::<IntervalMonthDayNanoArray>(array, ty)?.value(row);
            Value::Interval(Interval {
                months: v.months,
                days: v.days,
                micros: v.nanoseconds / 1000,
            })
        }
        DataType::Uuid => {
            let bytes = downcast::<FixedSizeBinaryArray>(array, ty)?.value(row);
            Value::Uuid(
                bytes
                    .try_into()
                    .map_err(|_| StorageError::internal("uuid of wrong width"))?,
            )
        }
        DataType::Vector { dims: Some(_) } => {
            let list = downcast::<FixedSizeListArray>(array, ty)?.value(row);
            Value::Vector(Arc::from(
                downcast::<Float32Array>(list.as_ref(), ty)?
                    .values()
                    .as_ref(),
            ))
        }
        DataType::Vector { dims: None } => {
            let list = downcast::<ListArray>(array, ty)?.value(row);
            Value::Vector(Arc::from(
                downcast::<Float32Array>(list.as_ref(), ty)?
                    .values()
                    .as_ref(),
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips_through_arrow_with_nulls() {
        let cases: Vec<(DataType, Value)> = vec![
            (DataType::Bool, Value::Bool(true)),
            (DataType::Int16, Value::Int16(-2)),
            (DataType::Int32, Value::Int32(3)),
            (DataType::Int64, Value::Int64(i64::MIN)),
            (DataType::Float32, Value::Float32(0.5)),
            (DataType::Float64, Value::Float64(-1e300)),
            (
                DataType::Numeric {
                    precision: 20,
                    scale: 4,
                },
                Value::Numeric {
                    unscaled: -12_345,
                    scale: 4,
                },
            ),
            (
                DataType::Text { max_chars: Some(5) },
                Value::Text("héllo".into()),
            ),
            (DataType::Jsonb, Value::Json("{}".into())),
            (DataType::Bytea, Value::Bytes(vec![0, 1, 2])),
            (DataType::Date, Value::Date(19_000)),
            (DataType::Timestamp, Value::Timestamp(1_700_000_000_000_001)),
            (DataType::TimestampTz, Value::TimestampTz(-5)),
            (
                DataType::Interval,
                Value::Interval(Interval {
                    months: 1,
                    days: -2,
                    micros: 3_000_001,
                }),
            ),
            (DataType::Uuid, Value::Uuid([7; 16])),
            (
                DataType::Vector { dims: Some(3) },
                Value::Vector(Arc::from([1.0, 2.0, 3.0])),
            ),
            (
                DataType::Vector { dims: None },
                Value::Vector(Arc::from([4.0])),
            ),
        ];
        for (ty, value) in cases {
            let mut builder = ColumnBuilder::new(&ty, 3);
            builder.append(&value).unwrap();
            builder.append(&Value::Null).unwrap();
            builder.append(&value).unwrap();
            let array = builder.finish();
            assert_eq!(array.data_type(), &ty.arrow_type(), "{ty}");
            assert_eq!(value_at(array.as_ref(), 0, &ty).unwrap(), value, "{ty}");
            assert_eq!(
                value_at(array.as_ref(), 1, &ty).unwrap(),
                Value::Null,
                "{ty}"
            );
            assert_eq!(value_at(array.as_ref(), 2, &ty).unwrap(), value, "{ty}");
            assert!(builder.append(&Value::Int64(1)).is_err() || ty == DataType::Int64);
        }
    }
}
