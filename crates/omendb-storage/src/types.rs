//! Column types and values: what a table can store, how each type maps to
//! Arrow, and the checks a value passes before it is written.
//!
//! Values are typed by their column. Temporal values follow Arrow: dates are
//! days and timestamps microseconds since 1970-01-01 (UTC for
//! `timestamptz`). A numeric is an `i128` scaled by its column's scale.

mod arrow_conv;
mod key_codec;
pub(crate) mod row_codec;

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType as ArrowType, Field, IntervalUnit, TimeUnit};

pub use arrow_conv::{ColumnBuilder, value_at};
pub use key_codec::{KeyCodec, ordered_u64};
pub(crate) use row_codec::{decode_row, encode_row};

use crate::error::{Result, StorageError};

/// Largest precision of a `numeric(p, s)` column (Arrow's `Decimal128`).
pub const MAX_NUMERIC_PRECISION: u8 = 38;

/// The type of a column.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DataType {
    Bool,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    /// `numeric(precision, scale)`, stored as a scaled `i128`.
    Numeric {
        precision: u8,
        scale: i8,
    },
    /// `text`, or `varchar(n)` with a length limit in characters.
    Text {
        max_chars: Option<u32>,
    },
    /// `character(n)` (`bpchar`): at most `n` characters, blank-padded in
    /// PostgreSQL. Trailing spaces are insignificant to a `character(n)`
    /// value (they compare, hash and count as absent), so they are not
    /// stored.
    Char {
        len: u32,
    },
    Bytea,
    Date,
    Timestamp,
    TimestampTz,
    Interval,
    Uuid,
    /// `jsonb`, kept as its text for now.
    Jsonb,
    /// `vector(n)`: `n` `f32`s; `None` for an unconstrained `vector`.
    Vector {
        dims: Option<u32>,
    },
}

/// A value of some column; `Null` fits every nullable column.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int16(i16),
    Int32(i32),
    Int64(i64),
    Float32(f32),
    Float64(f64),
    /// A scaled integer: the value is `unscaled / 10^scale`.
    Numeric {
        unscaled: i128,
        scale: i8,
    },
    Text(String),
    Bytes(Vec<u8>),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since 1970-01-01, no time zone.
    Timestamp(i64),
    /// Microseconds since 1970-01-01 UTC.
    TimestampTz(i64),
    Interval(Interval),
    Uuid([u8; 16]),
    Json(String),
    Vector(Arc<[f32]>),
}

/// A PostgreSQL interval: months, days and microseconds, kept apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Interval {
    pub months: i32,
    pub days: i32,
    pub micros: i64,
}

impl Interval {
    /// PostgreSQL's comparison value: a month counts 30 days, a day 24 hours,
    /// so `'1 mon'` equals `'30 days'`.
    pub fn cmp_value(&self) -> i128 {
        const DAY: i128 = 86_400_000_000;
        (i128::from(self.months) * 30 + i128::from(self.days)) * DAY + i128::from(self.micros)
    }
}

impl DataType {
    /// The Arrow type that holds this column in batches and segments.
    pub fn arrow_type(&self) -> ArrowType {
        match self {
            DataType::Bool => ArrowType::Boolean,
            DataType::Int16 => ArrowType::Int16,
            DataType::Int32 => ArrowType::Int32,
            DataType::Int64 => ArrowType::Int64,
            DataType::Float32 => ArrowType::Float32,
            DataType::Float64 => ArrowType::Float64,
            DataType::Numeric { precision, scale } => ArrowType::Decimal128(*precision, *scale),
            DataType::Text { .. } | DataType::Char { .. } | DataType::Jsonb => ArrowType::Utf8,
            DataType::Bytea => ArrowType::Binary,
            DataType::Date => ArrowType::Date32,
            DataType::Timestamp => ArrowType::Timestamp(TimeUnit::Microsecond, None),
            DataType::TimestampTz => {
                ArrowType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()))
            }
            DataType::Interval => ArrowType::Interval(IntervalUnit::MonthDayNano),
            DataType::Uuid => ArrowType::FixedSizeBinary(16),
            DataType::Vector { dims: Some(n) } => ArrowType::FixedSizeList(
                Arc::new(Field::new("item", ArrowType::Float32, false)),
                *n as i32,
            ),
            DataType::Vector { dims: None } => {
                ArrowType::List(Arc::new(Field::new("item", ArrowType::Float32, false)))
            }
        }
    }

    /// Whether the type can be (part of) a primary key.
    pub fn can_be_key(&self) -> bool {
        !matches!(self, DataType::Jsonb | DataType::Vector { .. })
    }

    /// Checks the type's own parameters (precision, lengths, dimensions).
    pub fn validate(&self) -> Result<()> {
        match *self {
            DataType::Numeric { precision, scale } => {
                if precision == 0 || precision > MAX_NUMERIC_PRECISION {
                    return Err(StorageError::invalid(format!(
                        "NUMERIC precision {precision} must be between 1 and {MAX_NUMERIC_PRECISION}"
                    )));
                }
                if scale < 0 || scale as u8 > precision {
                    return Err(StorageError::invalid(format!(
                        "NUMERIC scale {scale} must be between 0 and precision {precision}"
                    )));
                }
            }
            DataType::Text { max_chars: Some(0) } => {
                return Err(StorageError::invalid(
                    "length for type varchar must be at least 1",
                ));
            }
            DataType::Char { len: 0 } => {
                return Err(StorageError::invalid(
                    "length for type char must be at least 1",
                ));
            }
            DataType::Vector { dims: Some(n) } if n == 0 || n > 16_000 => {
                return Err(StorageError::invalid(format!(
                    "dimensions for type vector must be between 1 and 16000, not {n}"
                )));
            }
            _ => {}
        }
        Ok(())
    }

    /// Checks that `value` fits this type (NULL always fits here; NOT NULL is
    /// the column's business).
    pub fn check(&self, value: &Value) -> Result<()> {
        let fits = match (self, value) {
            (_, Value::Null) => true,
            (DataType::Bool, Value::Bool(_))
            | (DataType::Int16, Value::Int16(_))
            | (DataType::Int32, Value::Int32(_))
            | (DataType::Int64, Value::Int64(_))
            | (DataType::Float32, Value::Float32(_))
            | (DataType::Float64, Value::Float64(_))
            | (DataType::Bytea, Value::Bytes(_))
            | (DataType::Date, Value::Date(_))
            | (DataType::Timestamp, Value::Timestamp(_))
            | (DataType::TimestampTz, Value::TimestampTz(_))
            | (DataType::Interval, Value::Interval(_))
            | (DataType::Uuid, Value::Uuid(_))
            | (DataType::Jsonb, Value::Json(_)) => true,
            (DataType::Numeric { precision, scale }, Value::Numeric { unscaled, scale: s }) => {
                if s != scale {
                    return Err(StorageError::invalid(format!(
                        "numeric value has scale {s}, column {self} needs {scale}"
                    )));
                }
                if unscaled.unsigned_abs() >= 10u128.pow(u32::from(*precision)) {
                    return Err(StorageError::invalid(format!(
                        "numeric field overflow: a field with precision {precision}, scale {scale} \
                         must round to an absolute value less than 10^{}",
                        *precision as i8 - *scale
                    )));
                }
                true
            }
            (DataType::Text { max_chars }, Value::Text(text)) => {
                if let Some(max) = max_chars
                    && text.chars().count() > *max as usize
                {
                    return Err(StorageError::StringTooLong {
                        ty: self.to_string(),
                    });
                }
                true
            }
            (DataType::Char { len }, Value::Text(text)) => {
                if text.trim_end_matches(' ').chars().count() > *len as usize {
                    return Err(StorageError::StringTooLong {
                        ty: self.to_string(),
                    });
                }
                true
            }
            (DataType::Vector { dims }, Value::Vector(v)) => {
                if let Some(n) = dims
                    && v.len() != *n as usize
                {
                    return Err(StorageError::invalid(format!(
                        "expected {n} dimensions, not {}",
                        v.len()
                    )));
                }
                if v.iter().any(|x| !x.is_finite()) {
                    return Err(StorageError::invalid(
                        "NaN and infinity not allowed in vector",
                    ));
                }
                true
            }
            _ => false,
        };
        if fits {
            Ok(())
        } else {
            Err(StorageError::invalid(format!(
                "value {value:?} does not fit a column of type {self}"
            )))
        }
    }
}

impl fmt::Display for DataType {
    /// The PostgreSQL spelling of the type.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataType::Bool => f.write_str("boolean"),
            DataType::Int16 => f.write_str("smallint"),
            DataType::Int32 => f.write_str("integer"),
            DataType::Int64 => f.write_str("bigint"),
            DataType::Float32 => f.write_str("real"),
            DataType::Float64 => f.write_str("double precision"),
            DataType::Numeric { precision, scale } => write!(f, "numeric({precision},{scale})"),
            DataType::Text { max_chars: None } => f.write_str("text"),
            DataType::Text { max_chars: Some(n) } => write!(f, "character varying({n})"),
            DataType::Char { len } => write!(f, "character({len})"),
            DataType::Bytea => f.write_str("bytea"),
            DataType::Date => f.write_str("date"),
            DataType::Timestamp => f.write_str("timestamp without time zone"),
            DataType::TimestampTz => f.write_str("timestamp with time zone"),
            DataType::Interval => f.write_str("interval"),
            DataType::Uuid => f.write_str("uuid"),
            DataType::Jsonb => f.write_str("jsonb"),
            DataType::Vector { dims: None } => f.write_str("vector"),
            DataType::Vector { dims: Some(n) } => write!(f, "vector({n})"),
        }
    }
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

/// Compares two values of one column type in PostgreSQL's order (text in
/// the C collation, NaN above every float). `None` when either is NULL or
/// the values cannot be compared (different types, vectors, jsonb).
pub fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    use crate::index::key_encoding::encode_f64;
    Some(match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Int16(x), Value::Int16(y)) => x.cmp(y),
        (Value::Int32(x), Value::Int32(y)) | (Value::Date(x), Value::Date(y)) => x.cmp(y),
        (Value::Int64(x), Value::Int64(y))
        | (Value::Timestamp(x), Value::Timestamp(y))
        | (Value::TimestampTz(x), Value::TimestampTz(y)) => x.cmp(y),
        (Value::Float32(x), Value::Float32(y)) => {
            encode_f64(f64::from(*x)).cmp(&encode_f64(f64::from(*y)))
        }
        (Value::Float64(x), Value::Float64(y)) => encode_f64(*x).cmp(&encode_f64(*y)),
        (
            Value::Numeric {
                unscaled: x,
                scale: sx,
            },
            Value::Numeric {
                unscaled: y,
                scale: sy,
            },
        ) if sx == sy => x.cmp(y),
        (Value::Text(x), Value::Text(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Value::Bytes(x), Value::Bytes(y)) => x.cmp(y),
        (Value::Interval(x), Value::Interval(y)) => x.cmp_value().cmp(&y.cmp_value()),
        (Value::Uuid(x), Value::Uuid(y)) => x.cmp(y),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked_against_their_type() {
        let varchar = DataType::Text { max_chars: Some(3) };
        assert!(varchar.check(&Value::Text("abc".into())).is_ok());
        assert!(
            varchar.check(&Value::Text("日本語".into())).is_ok(),
            "limit counts characters"
        );
        assert!(varchar.check(&Value::Text("abcd".into())).is_err());
        assert!(DataType::Int32.check(&Value::Int64(1)).is_err());
        assert!(DataType::Int32.check(&Value::Null).is_ok());

        let numeric = DataType::Numeric {
            precision: 5,
            scale: 2,
        };
        assert!(
            numeric
                .check(&Value::Numeric {
                    unscaled: 99_999,
                    scale: 2
                })
                .is_ok()
        );
        assert!(
            numeric
                .check(&Value::Numeric {
                    unscaled: 100_000,
                    scale: 2
                })
                .is_err()
        );
        assert!(
            numeric
                .check(&Value::Numeric {
                    unscaled: 1,
                    scale: 3
                })
                .is_err()
        );

        let vector = DataType::Vector { dims: Some(2) };
        assert!(vector.check(&Value::Vector(Arc::from([1.0, 2.0]))).is_ok());
        assert!(vector.check(&Value::Vector(Arc::from([1.0]))).is_err());
        assert!(
            vector
                .check(&Value::Vector(Arc::from([1.0, f32::NAN])))
                .is_err()
        );
    }

    #[test]
    fn type_parameters_are_validated() {
        assert!(
            DataType::Numeric {
                precision: 39,
                scale: 0
            }
            .validate()
            .is_err()
        );
        assert!(
            DataType::Numeric {
                precision: 5,
                scale: 6
            }
            .validate()
            .is_err()
        );
        assert!(DataType::Vector { dims: Some(0) }.validate().is_err());
        assert!(DataType::Vector { dims: Some(4096) }.validate().is_ok());
    }

    #[test]
    fn a_month_compares_as_thirty_days() {
        let month = Interval {
            months: 1,
            ..Interval::default()
        };
        let days = Interval {
            days: 30,
            ..Interval::default()
        };
        assert_eq!(month.cmp_value(), days.cmp_value());
    }
}
