//! SQL type names as PostgreSQL spells them, mapped to storage column types.

use datafusion::sql::sqlparser::ast::{
    CharacterLength, DataType as SqlType, ExactNumberInfo, TimezoneInfo,
};
use omendb_storage::{DataType, MAX_NUMERIC_PRECISION};

use crate::error::{ErrorClass, Result, SqlError};

/// Precision and scale of an unconstrained `numeric` (PostgreSQL's is
/// arbitrary; Arrow's decimal needs both).
const DEFAULT_NUMERIC: (u8, i8) = (38, 10);

/// The storage type of a column declared as `ty`.
pub(crate) fn column_type(ty: &SqlType) -> Result<DataType> {
    let unsupported = || {
        SqlError::new(
            ErrorClass::UndefinedObject,
            format!("type \"{ty}\" does not exist or is not supported"),
        )
    };
    Ok(match ty {
        SqlType::Bool | SqlType::Boolean => DataType::Bool,
        SqlType::SmallInt(_) | SqlType::Int2(_) => DataType::Int16,
        SqlType::Int(_) | SqlType::Integer(_) | SqlType::Int4(_) => DataType::Int32,
        SqlType::BigInt(_) | SqlType::Int8(_) => DataType::Int64,
        SqlType::Real | SqlType::Float4 => DataType::Float32,
        SqlType::DoublePrecision | SqlType::Float8 | SqlType::Double(ExactNumberInfo::None) => {
            DataType::Float64
        }
        // PostgreSQL: float(1..24) is real, float(25..53) and float are double.
        SqlType::Float(ExactNumberInfo::Precision(p)) if *p <= 24 => DataType::Float32,
        SqlType::Float(_) => DataType::Float64,
        SqlType::Numeric(info) | SqlType::Decimal(info) | SqlType::Dec(info) => {
            let (precision, scale) = match info {
                ExactNumberInfo::None => DEFAULT_NUMERIC,
                ExactNumberInfo::Precision(p) => (numeric_precision(*p)?, 0),
                ExactNumberInfo::PrecisionAndScale(p, s) => {
                    let precision = numeric_precision(*p)?;
                    let scale = i8::try_from(*s)
                        .ok()
                        .filter(|s| (0..=precision as i8).contains(s))
                        .ok_or_else(|| {
                            SqlError::new(
                                ErrorClass::DataException,
                                format!(
                                    "NUMERIC scale {s} must be between 0 and precision {precision}"
                                ),
                            )
                        })?;
                    (precision, scale)
                }
            };
            DataType::Numeric { precision, scale }
        }
        SqlType::Text => DataType::Text { max_chars: None },
        SqlType::Varchar(length)
        | SqlType::CharacterVarying(length)
        | SqlType::CharVarying(length) => DataType::Text {
            max_chars: match length {
                None => None,
                Some(CharacterLength::IntegerLength { length, .. }) => Some(
                    u32::try_from(*length)
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or_else(|| {
                            SqlError::new(
                                ErrorClass::DataException,
                                format!("length for type varchar must be at least 1: {length}"),
                            )
                        })?,
                ),
                Some(CharacterLength::Max) => return Err(unsupported()),
            },
        },
        SqlType::Char(length) | SqlType::Character(length) => DataType::Char {
            len: match length {
                None => 1,
                Some(CharacterLength::IntegerLength { length, .. }) => u32::try_from(*length)
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| {
                        SqlError::new(
                            ErrorClass::DataException,
                            format!("length for type char must be at least 1: {length}"),
                        )
                    })?,
                Some(CharacterLength::Max) => return Err(unsupported()),
            },
        },
        SqlType::Bytea => DataType::Bytea,
        SqlType::Date => DataType::Date,
        SqlType::Timestamp(_, TimezoneInfo::None | TimezoneInfo::WithoutTimeZone) => {
            DataType::Timestamp
        }
        SqlType::Timestamp(_, TimezoneInfo::WithTimeZone | TimezoneInfo::Tz) => {
            DataType::TimestampTz
        }
        SqlType::Interval { .. } => DataType::Interval,
        SqlType::Uuid => DataType::Uuid,
        SqlType::JSONB | SqlType::JSON => DataType::Jsonb,
        SqlType::Custom(name, args) => {
            let name = name.to_string().to_lowercase();
            match (name.as_str(), args.as_slice()) {
                ("vector", []) => DataType::Vector { dims: None },
                ("vector", [dims]) => DataType::Vector {
                    dims: Some(dims.parse::<u32>().ok().filter(|&d| d > 0).ok_or_else(|| {
                        SqlError::new(
                            ErrorClass::DataException,
                            format!("dimensions for type vector must be at least 1: {dims}"),
                        )
                    })?),
                },
                ("timestamptz", []) => DataType::TimestampTz,
                _ => return Err(unsupported()),
            }
        }
        _ => return Err(unsupported()),
    })
}

fn numeric_precision(p: u64) -> Result<u8> {
    u8::try_from(p)
        .ok()
        .filter(|p| (1..=MAX_NUMERIC_PRECISION).contains(p))
        .ok_or_else(|| {
            SqlError::new(
                ErrorClass::DataException,
                format!("NUMERIC precision {p} must be between 1 and {MAX_NUMERIC_PRECISION}"),
            )
        })
}
