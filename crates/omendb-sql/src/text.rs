//! Values in PostgreSQL's text output format (what psql prints and the wire
//! protocol's text format carries): `t`/`f` booleans, shortest round-trip
//! floats with PostgreSQL's exponent rule, `\x` hex for bytea, timestamps
//! with a space and without trailing fractional zeros.

use std::fmt::Write as _;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{
    DataType as ArrowType, Float32Type, Float64Type, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

/// The text of `array[row]`; `None` for NULL.
pub fn pg_text(array: &dyn Array, row: usize) -> Option<String> {
    if array.is_null(row) {
        return None;
    }
    Some(match array.data_type() {
        ArrowType::Boolean => if array.as_boolean().value(row) {
            "t"
        } else {
            "f"
        }
        .into(),
        ArrowType::Float64 => float_text(array.as_primitive::<Float64Type>().value(row), 15),
        ArrowType::Float32 => float_text(array.as_primitive::<Float32Type>().value(row), 6),
        ArrowType::Binary => hex_text(array.as_binary::<i32>().value(row)),
        ArrowType::LargeBinary => hex_text(array.as_binary::<i64>().value(row)),
        ArrowType::Timestamp(unit, tz) => {
            let mut text = timestamp_text(timestamp_micros(array, row, *unit));
            if tz.is_some() {
                text.push_str("+00");
            }
            text
        }
        ArrowType::List(field) if field.name() == VECTOR_ITEM => {
            let values = array.as_list::<i32>().value(row);
            (0..values.len())
                .filter_map(|i| pg_text(values.as_ref(), i))
                .collect::<Vec<_>>()
                .join(" ")
        }
        ArrowType::List(_) => array_text(array.as_list::<i32>().value(row).as_ref()),
        _ => {
            let options = FormatOptions::default();
            match ArrayFormatter::try_new(array, &options) {
                Ok(formatter) => formatter.value(row).to_string(),
                Err(e) => format!("<{e}>"),
            }
        }
    })
}

/// The element field name of a list that is one of PostgreSQL's vector
/// types (`int2vector`, `oidvector`), written `1 2` rather than `{1,2}`.
pub const VECTOR_ITEM: &str = "vector_item";

/// An array value as PostgreSQL writes it: `{1,2}`, `{a,"b c",NULL}`.
fn array_text(values: &dyn Array) -> String {
    let items: Vec<String> = (0..values.len())
        .map(|i| match pg_text(values, i) {
            None => "NULL".to_owned(),
            Some(item) => {
                let plain = !item.is_empty()
                    && !item.eq_ignore_ascii_case("null")
                    && !item
                        .chars()
                        .any(|c| matches!(c, '{' | '}' | ',' | '"' | '\\') || c.is_whitespace());
                if plain {
                    item
                } else {
                    format!("\"{}\"", item.replace('\\', "\\\\").replace('"', "\\\""))
                }
            }
        })
        .collect();
    format!("{{{}}}", items.join(","))
}

/// Microseconds since 1970 of `array[row]`, a timestamp array of `unit`.
pub fn timestamp_micros(array: &dyn Array, row: usize, unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => array
            .as_primitive::<TimestampSecondType>()
            .value(row)
            .saturating_mul(1_000_000),
        TimeUnit::Millisecond => array
            .as_primitive::<TimestampMillisecondType>()
            .value(row)
            .saturating_mul(1_000),
        TimeUnit::Microsecond => array.as_primitive::<TimestampMicrosecondType>().value(row),
        TimeUnit::Nanosecond => array
            .as_primitive::<TimestampNanosecondType>()
            .value(row)
            .div_euclid(1_000),
    }
}

/// A float as PostgreSQL prints it with `extra_float_digits = 1` (the
/// default): the shortest text that reads back exactly, in exponent form
/// when the decimal exponent is below -4 or at least `digits`.
fn float_text<F>(v: F, digits: i32) -> String
where
    F: Copy + Into<f64> + std::fmt::Display + std::fmt::LowerExp,
{
    let value: f64 = v.into();
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if value == 0.0 {
        return if value.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let scientific = format!("{v:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if exponent < -4 || exponent >= digits {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    } else {
        format!("{v}")
    }
}

fn hex_text(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(2 + 2 * bytes.len());
    text.push_str("\\x");
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(text, "{b:02x}");
    }
    text
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff]` with trailing fractional zeros dropped.
fn timestamp_text(micros: i64) -> String {
    let days = micros.div_euclid(86_400_000_000);
    let in_day = micros.rem_euclid(86_400_000_000);
    let (year, month, day) = civil_from_days(days);
    let seconds = in_day / 1_000_000;
    let fraction = in_day % 1_000_000;
    let mut text = format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    );
    if fraction != 0 {
        let digits = format!("{fraction:06}");
        text.push('.');
        text.push_str(digits.trim_end_matches('0'));
    }
    text
}

/// Year, month, day of a day count since 1970-01-01 (proleptic Gregorian).
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_postgresql_prints_them() {
        // Each pair checked against PostgreSQL 15 (`SELECT x::float8`).
        for (v, text) in [
            (0.1, "0.1"),
            (1.5, "1.5"),
            (100.0, "100"),
            (1e15, "1e+15"),
            (123_456_789_012_345.0, "123456789012345"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (-2.5e-7, "-2.5e-07"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Infinity"),
        ] {
            assert_eq!(float_text(v, 15), text, "{v}");
        }
        assert_eq!(float_text(1e6f32, 6), "1e+06");
        assert_eq!(float_text(123_456f32, 6), "123456");
        assert_eq!(float_text(0.1f32, 6), "0.1");
    }

    #[test]
    fn timestamps_drop_trailing_fractional_zeros() {
        assert_eq!(timestamp_text(0), "1970-01-01 00:00:00");
        assert_eq!(timestamp_text(1_500_000), "1970-01-01 00:00:01.5");
        assert_eq!(timestamp_text(-1), "1969-12-31 23:59:59.999999");
        assert_eq!(timestamp_text(951_782_400_000_000), "2000-02-29 00:00:00");
    }
}
