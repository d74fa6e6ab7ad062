//! A prepared statement's parameters: the type each one has (the type the
//! client declared at Parse, else the one the statement gives it, else
//! text) and its Bind values, text or binary, turned into scalars of the
//! Arrow type the statement wants.

use bytes::Bytes;
use omendb_sql::datafusion::arrow::compute::CastOptions;
use omendb_sql::datafusion::arrow::datatypes::DataType;
use omendb_sql::datafusion::common::ScalarValue;
use pgwire::api::Type;
use pgwire::api::portal::Format;
use pgwire::error::PgWireError;

use super::binary;
use super::errors::wire_error;
use super::types::{arrow_type, pg_type, type_name};

/// One parameter of a prepared statement.
#[derive(Debug, Clone)]
pub(super) struct Param {
    /// The type the client sees (ParameterDescription) and sends.
    pub(super) pg: Type,
    /// The type the statement takes the value as.
    arrow: DataType,
}

impl Param {
    /// The parameter the client `declared` (its type OID at Parse, if not
    /// 0) where the statement `wants` a type (if it decides one).
    pub(super) fn new(declared: Option<Type>, wants: Option<DataType>) -> Param {
        let arrow = wants
            .or_else(|| declared.as_ref().and_then(arrow_type))
            .unwrap_or(DataType::Utf8);
        let pg = declared.unwrap_or_else(|| pg_type(&arrow));
        Param { pg, arrow }
    }

    /// The value of `bytes` (`None`: NULL) sent in `binary` or text format.
    fn value(
        &self,
        position: usize,
        bytes: Option<&Bytes>,
        binary: bool,
    ) -> Result<ScalarValue, PgWireError> {
        let Some(bytes) = bytes else {
            return ScalarValue::try_from(&self.arrow)
                .map_err(|e| wire_error("XX000", e.to_string()));
        };
        let value = if binary {
            binary::scalar(&self.pg, bytes).ok_or_else(|| {
                wire_error(
                    "22P03",
                    format!("incorrect binary data format in bind parameter {position}"),
                )
            })?
        } else {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| wire_error("22021", "invalid byte sequence for encoding \"UTF8\""))?;
            ScalarValue::Utf8(Some(text.to_owned()))
        };
        if value.data_type() == self.arrow {
            return Ok(value);
        }
        let options = CastOptions {
            safe: false,
            ..CastOptions::default()
        };
        value
            .cast_to_with_options(&self.arrow, &options)
            .map_err(|_| {
                let wanted = pg_type(&self.arrow);
                match value {
                    ScalarValue::Utf8(Some(text)) => wire_error(
                        "22P02",
                        format!(
                            "invalid input syntax for type {}: \"{text}\"",
                            type_name(&wanted)
                        ),
                    ),
                    _ => wire_error("22003", format!("{} out of range", type_name(&wanted))),
                }
            })
    }
}

/// The values of a Bind's `parameters` for `params`, each in its format.
pub(super) fn bind_values(
    params: &[Param],
    formats: &Format,
    values: &[Option<Bytes>],
) -> Result<Vec<ScalarValue>, PgWireError> {
    params
        .iter()
        .zip(values)
        .enumerate()
        .map(|(i, (param, bytes))| param.value(i + 1, bytes.as_ref(), formats.is_binary(i)))
        .collect()
}

/// The format codes of a Bind as a [`Format`] for `count` values; an
/// error (08P01, with `mismatch`'s message) unless there are none, one, or
/// `count` of them, and 22023 for a code that is neither text nor binary.
pub(super) fn formats(
    codes: &[i16],
    count: usize,
    mismatch: impl FnOnce() -> String,
) -> Result<Format, PgWireError> {
    if let Some(code) = codes.iter().find(|&&c| c != 0 && c != 1) {
        return Err(wire_error(
            "22023",
            format!("unsupported format code: {code}"),
        ));
    }
    Ok(match codes {
        [] => Format::UnifiedText,
        [code] => Format::from(*code),
        codes if codes.len() == count => Format::Individual(codes.to_vec()),
        _ => return Err(wire_error("08P01", mismatch())),
    })
}
