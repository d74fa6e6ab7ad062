//! PostgreSQL's binary format (what `typsend` writes and `typreceive`
//! reads): values of Arrow arrays written for binary result columns, and
//! binary parameter values read into scalars. Integers and floats are
//! big-endian; dates count days and timestamps microseconds from
//! 2000-01-01; numerics are base-10,000 digit groups. A type without a
//! binary form of its own here is sent as its text's bytes, which is the
//! binary form of text.

use bytes::{BufMut, BytesMut};
use omendb_sql::datafusion::arrow::array::{Array, AsArray};
use omendb_sql::datafusion::arrow::datatypes::IntervalMonthDayNano;
use omendb_sql::datafusion::arrow::datatypes::{
    DataType, Date32Type, Date64Type, DurationMicrosecondType, DurationMillisecondType,
    DurationNanosecondType, DurationSecondType, Float16Type, Float32Type, Float64Type, Int8Type,
    Int16Type, Int32Type, Int64Type, IntervalDayTimeType, IntervalMonthDayNanoType, IntervalUnit,
    IntervalYearMonthType, Time32MillisecondType, Time32SecondType, Time64MicrosecondType,
    Time64NanosecondType, TimeUnit, UInt8Type, UInt16Type, UInt32Type,
};
use omendb_sql::datafusion::common::ScalarValue;
use omendb_sql::{pg_text, timestamp_micros};
use pgwire::api::Type;

/// Days from 1970-01-01 to 2000-01-01, PostgreSQL's epoch.
const EPOCH_DAYS: i64 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
const EPOCH_MICROS: i64 = EPOCH_DAYS * 86_400_000_000;

/// Writes `array[row]` in binary format, length-prefixed (-1 for NULL).
pub(super) fn put_value(array: &dyn Array, row: usize, out: &mut BytesMut) {
    if array.is_null(row) {
        out.put_i32(-1);
        return;
    }
    match array.data_type() {
        DataType::Boolean => put_fixed(out, &[u8::from(array.as_boolean().value(row))]),
        DataType::Int8 => put_i16(out, array.as_primitive::<Int8Type>().value(row).into()),
        DataType::UInt8 => put_i16(out, array.as_primitive::<UInt8Type>().value(row).into()),
        DataType::Int16 => put_i16(out, array.as_primitive::<Int16Type>().value(row)),
        DataType::UInt16 => put_i32(out, array.as_primitive::<UInt16Type>().value(row).into()),
        DataType::Int32 => put_i32(out, array.as_primitive::<Int32Type>().value(row)),
        DataType::UInt32 => put_fixed(
            out,
            &array.as_primitive::<UInt32Type>().value(row).to_be_bytes(),
        ),
        DataType::Int64 => put_i64(out, array.as_primitive::<Int64Type>().value(row)),
        DataType::Float16 => put_f32(out, array.as_primitive::<Float16Type>().value(row).into()),
        DataType::Float32 => put_f32(out, array.as_primitive::<Float32Type>().value(row)),
        DataType::Float64 => {
            put_fixed(
                out,
                &array.as_primitive::<Float64Type>().value(row).to_be_bytes(),
            );
        }
        DataType::Date32 => {
            let days = i64::from(array.as_primitive::<Date32Type>().value(row));
            put_i32(out, clamp_i32(days - EPOCH_DAYS));
        }
        DataType::Date64 => {
            let days = array
                .as_primitive::<Date64Type>()
                .value(row)
                .div_euclid(86_400_000);
            put_i32(out, clamp_i32(days - EPOCH_DAYS));
        }
        DataType::Timestamp(unit, _) => {
            let micros = timestamp_micros(array, row, *unit);
            put_i64(out, micros.saturating_sub(EPOCH_MICROS));
        }
        DataType::Time32(TimeUnit::Second) => {
            let seconds = i64::from(array.as_primitive::<Time32SecondType>().value(row));
            put_i64(out, seconds * 1_000_000);
        }
        DataType::Time32(_) => {
            let millis = i64::from(array.as_primitive::<Time32MillisecondType>().value(row));
            put_i64(out, millis * 1_000);
        }
        DataType::Time64(TimeUnit::Nanosecond) => {
            put_i64(
                out,
                array.as_primitive::<Time64NanosecondType>().value(row) / 1_000,
            );
        }
        DataType::Time64(_) => {
            put_i64(
                out,
                array.as_primitive::<Time64MicrosecondType>().value(row),
            );
        }
        DataType::Interval(unit) => {
            let (months, days, micros) = interval_parts(array, row, *unit);
            let mut bytes = [0u8; 16];
            bytes[..8].copy_from_slice(&micros.to_be_bytes());
            bytes[8..12].copy_from_slice(&days.to_be_bytes());
            bytes[12..].copy_from_slice(&months.to_be_bytes());
            put_fixed(out, &bytes);
        }
        DataType::Duration(unit) => {
            let micros = duration_micros(array, row, *unit);
            let mut bytes = [0u8; 16];
            bytes[..8].copy_from_slice(&micros.to_be_bytes());
            put_fixed(out, &bytes);
        }
        DataType::Binary => put_fixed(out, array.as_binary::<i32>().value(row)),
        DataType::LargeBinary => put_fixed(out, array.as_binary::<i64>().value(row)),
        DataType::BinaryView => put_fixed(out, array.as_binary_view().value(row)),
        DataType::FixedSizeBinary(16) => put_fixed(out, array.as_fixed_size_binary().value(row)),
        DataType::List(_) if super::types::pg_type(array.data_type()) != Type::TEXT => {
            put_array(array.as_list::<i32>().value(row).as_ref(), out);
        }
        DataType::UInt64 | DataType::Decimal128(..) | DataType::Decimal256(..) => {
            let text = pg_text(array, row).unwrap_or_default();
            put_fixed(out, &numeric_bytes(&text));
        }
        _ => {
            let text = pg_text(array, row).unwrap_or_default();
            put_fixed(out, text.as_bytes());
        }
    }
}

/// A one-dimensional array in `array_send`'s form: dimensions, a has-NULL
/// flag, the element type, the length and lower bound, then each element
/// length-prefixed.
fn put_array(values: &dyn Array, out: &mut BytesMut) {
    let mut body = BytesMut::new();
    let n = i32::try_from(values.len()).unwrap_or(i32::MAX);
    body.put_i32(i32::from(n > 0));
    body.put_i32(i32::from(values.null_count() > 0));
    body.put_u32(super::types::pg_type(values.data_type()).oid());
    if n > 0 {
        body.put_i32(n);
        body.put_i32(1);
    }
    for i in 0..values.len() {
        put_value(values, i, &mut body);
    }
    put_fixed(out, &body);
}

fn put_fixed(out: &mut BytesMut, bytes: &[u8]) {
    // One value of a batch never nears 2 GiB.
    out.put_i32(i32::try_from(bytes.len()).unwrap_or(i32::MAX));
    out.put_slice(bytes);
}

fn put_i16(out: &mut BytesMut, v: i16) {
    put_fixed(out, &v.to_be_bytes());
}

fn put_i32(out: &mut BytesMut, v: i32) {
    put_fixed(out, &v.to_be_bytes());
}

fn put_i64(out: &mut BytesMut, v: i64) {
    put_fixed(out, &v.to_be_bytes());
}

fn put_f32(out: &mut BytesMut, v: f32) {
    put_fixed(out, &v.to_be_bytes());
}

fn clamp_i32(v: i64) -> i32 {
    i32::try_from(v).unwrap_or(if v < 0 { i32::MIN } else { i32::MAX })
}

fn duration_micros(array: &dyn Array, row: usize, unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => array
            .as_primitive::<DurationSecondType>()
            .value(row)
            .saturating_mul(1_000_000),
        TimeUnit::Millisecond => array
            .as_primitive::<DurationMillisecondType>()
            .value(row)
            .saturating_mul(1_000),
        TimeUnit::Microsecond => array.as_primitive::<DurationMicrosecondType>().value(row),
        TimeUnit::Nanosecond => array.as_primitive::<DurationNanosecondType>().value(row) / 1_000,
    }
}

/// Months, days and microseconds of an interval.
fn interval_parts(array: &dyn Array, row: usize, unit: IntervalUnit) -> (i32, i32, i64) {
    match unit {
        IntervalUnit::YearMonth => (
            array.as_primitive::<IntervalYearMonthType>().value(row),
            0,
            0,
        ),
        IntervalUnit::DayTime => {
            let v = array.as_primitive::<IntervalDayTimeType>().value(row);
            (0, v.days, i64::from(v.milliseconds) * 1_000)
        }
        IntervalUnit::MonthDayNano => {
            let v = array.as_primitive::<IntervalMonthDayNanoType>().value(row);
            (v.months, v.days, v.nanoseconds / 1_000)
        }
    }
}

/// A decimal's text (`-12.340`) as a binary numeric: digit count, weight
/// (of the first group, in powers of 10,000), sign, display scale, then
/// the base-10,000 groups without leading or trailing zero groups.
fn numeric_bytes(text: &str) -> Vec<u8> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (integer, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let integer = integer.trim_start_matches('0');
    // Align both parts to groups of four around the point.
    let lead = (4 - integer.len() % 4) % 4;
    let trail = (4 - fraction.len() % 4) % 4;
    let aligned: Vec<u8> = std::iter::repeat_n(b'0', lead)
        .chain(integer.bytes())
        .chain(fraction.bytes())
        .chain(std::iter::repeat_n(b'0', trail))
        .collect();
    let mut groups: Vec<i16> = aligned
        .chunks(4)
        .map(|chunk| {
            chunk.iter().fold(0i16, |acc, d| {
                acc * 10 + i16::from(d.wrapping_sub(b'0') % 10)
            })
        })
        .collect();
    let mut weight = i16::try_from((lead + integer.len()) / 4).unwrap_or(i16::MAX) - 1;
    let leading_zeros = groups.iter().take_while(|&&g| g == 0).count();
    groups.drain(..leading_zeros);
    weight -= i16::try_from(leading_zeros).unwrap_or(0);
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let sign: u16 = if negative && !groups.is_empty() {
        0x4000
    } else {
        0
    };
    let scale = u16::try_from(fraction.len()).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(8 + 2 * groups.len());
    out.extend_from_slice(&i16::try_from(groups.len()).unwrap_or(0).to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&scale.to_be_bytes());
    for group in groups {
        out.extend_from_slice(&group.to_be_bytes());
    }
    out
}

/// A binary numeric as decimal text with its display scale; `None` if
/// malformed or NaN/infinite.
fn numeric_text(bytes: &[u8]) -> Option<String> {
    let word = |i: usize| -> Option<i16> {
        Some(i16::from_be_bytes(bytes.get(i..i + 2)?.try_into().ok()?))
    };
    let count = usize::try_from(word(0)?).ok()?;
    let weight = i64::from(word(2)?);
    let sign = word(4)? as u16;
    let scale = usize::try_from(word(6)?).ok()?;
    if bytes.len() != 8 + 2 * count || !matches!(sign, 0 | 0x4000) {
        return None;
    }
    let groups: Vec<i16> = (0..count).map(|i| word(8 + 2 * i)).collect::<Option<_>>()?;
    if groups.iter().any(|g| !(0..10_000).contains(g)) {
        return None;
    }
    // The group at power 10,000^p.
    let group = |p: i64| -> i16 {
        usize::try_from(weight - p)
            .ok()
            .and_then(|i| groups.get(i).copied())
            .unwrap_or(0)
    };
    let mut text = String::new();
    if sign == 0x4000 {
        text.push('-');
    }
    if weight < 0 {
        text.push('0');
    } else {
        text.push_str(&group(weight).to_string());
        for p in (0..weight).rev() {
            text.push_str(&format!("{:04}", group(p)));
        }
    }
    if scale > 0 {
        let mut fraction = String::new();
        let mut p = -1;
        while fraction.len() < scale {
            fraction.push_str(&format!("{:04}", group(p)));
            p -= 1;
        }
        fraction.truncate(scale);
        text.push('.');
        text.push_str(&fraction);
    }
    Some(text)
}

/// A binary parameter value of type `ty` as a scalar (of the Arrow type
/// [`super::types::arrow_type`] gives `ty`); `None` if the bytes are not a
/// value of that type.
pub(super) fn scalar(ty: &Type, bytes: &[u8]) -> Option<ScalarValue> {
    let fixed = |n: usize| (bytes.len() == n).then_some(bytes);
    Some(match *ty {
        Type::BOOL => ScalarValue::Boolean(Some(fixed(1)?[0] != 0)),
        Type::INT2 => ScalarValue::Int16(Some(i16::from_be_bytes(fixed(2)?.try_into().ok()?))),
        Type::INT4 => ScalarValue::Int32(Some(i32::from_be_bytes(fixed(4)?.try_into().ok()?))),
        Type::INT8 => ScalarValue::Int64(Some(i64::from_be_bytes(fixed(8)?.try_into().ok()?))),
        Type::OID => {
            ScalarValue::Int64(Some(u32::from_be_bytes(fixed(4)?.try_into().ok()?).into()))
        }
        Type::FLOAT4 => ScalarValue::Float32(Some(f32::from_be_bytes(fixed(4)?.try_into().ok()?))),
        Type::FLOAT8 => ScalarValue::Float64(Some(f64::from_be_bytes(fixed(8)?.try_into().ok()?))),
        Type::NUMERIC => {
            let text = numeric_text(bytes)?;
            let scale = text.split_once('.').map_or(0, |(_, f)| f.len());
            let digits: String = text.chars().filter(|c| *c != '.').collect();
            let value: i128 = digits.parse().ok()?;
            ScalarValue::Decimal128(Some(value), 38, i8::try_from(scale).ok()?)
        }
        Type::BYTEA => ScalarValue::Binary(Some(bytes.to_vec())),
        Type::UUID => ScalarValue::FixedSizeBinary(16, Some(fixed(16)?.to_vec())),
        Type::DATE => {
            let days = i64::from(i32::from_be_bytes(fixed(4)?.try_into().ok()?));
            ScalarValue::Date32(Some(i32::try_from(days + EPOCH_DAYS).ok()?))
        }
        Type::TIMESTAMP | Type::TIMESTAMPTZ => {
            let micros = i64::from_be_bytes(fixed(8)?.try_into().ok()?);
            let zone = (*ty == Type::TIMESTAMPTZ).then(|| "+00:00".into());
            ScalarValue::TimestampMicrosecond(Some(micros.checked_add(EPOCH_MICROS)?), zone)
        }
        Type::TIME => {
            ScalarValue::Time64Microsecond(Some(i64::from_be_bytes(fixed(8)?.try_into().ok()?)))
        }
        Type::INTERVAL => {
            let bytes = fixed(16)?;
            let micros = i64::from_be_bytes(bytes[..8].try_into().ok()?);
            let days = i32::from_be_bytes(bytes[8..12].try_into().ok()?);
            let months = i32::from_be_bytes(bytes[12..].try_into().ok()?);
            ScalarValue::IntervalMonthDayNano(Some(IntervalMonthDayNano::new(
                months,
                days,
                micros.checked_mul(1_000)?,
            )))
        }
        // Text, varchar, name, json and types taken as text: their bytes.
        _ => ScalarValue::Utf8(Some(std::str::from_utf8(bytes).ok()?.to_owned())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes PostgreSQL 15 sends for `SELECT x::numeric` (binary format).
    #[test]
    fn numerics_match_postgresql_bytes() {
        for (text, bytes) in [
            ("0", vec![0, 0, 0, 0, 0, 0, 0, 0]),
            ("1", vec![0, 1, 0, 0, 0, 0, 0, 0, 0, 1]),
            (
                "-12.340",
                vec![0, 2, 0, 0, 0x40, 0, 0, 3, 0, 12, 0x0d, 0x48],
            ),
            ("10000", vec![0, 1, 0, 1, 0, 0, 0, 0, 0, 1]),
            ("0.0001", vec![0, 1, 0xff, 0xff, 0, 0, 0, 4, 0, 1]),
            ("0.00000123", vec![0, 1, 0xff, 0xfe, 0, 0, 0, 8, 0, 123]),
            (
                "123456789.5",
                vec![
                    0, 4, 0, 2, 0, 0, 0, 1, 0, 1, 0x09, 0x29, 0x1a, 0x85, 0x13, 0x88,
                ],
            ),
        ] {
            assert_eq!(numeric_bytes(text), bytes, "{text}");
            assert_eq!(numeric_text(&bytes).as_deref(), Some(text), "{text}");
        }
        assert_eq!(numeric_text(&[0, 1, 0, 0]), None);
    }

    #[test]
    fn parameters_read_back_what_values_write() {
        use omendb_sql::datafusion::arrow::array::ArrayRef;
        for value in [
            ScalarValue::Boolean(Some(true)),
            ScalarValue::Int16(Some(-7)),
            ScalarValue::Int32(Some(1 << 30)),
            ScalarValue::Int64(Some(-(1 << 40))),
            ScalarValue::Float32(Some(1.5)),
            ScalarValue::Float64(Some(-0.25)),
            ScalarValue::Date32(Some(-1)),
            ScalarValue::TimestampMicrosecond(Some(1_700_000_000_123_456), None),
            ScalarValue::TimestampMicrosecond(Some(-5), Some("+00:00".into())),
            ScalarValue::Time64Microsecond(Some(3_600_000_001)),
            ScalarValue::IntervalMonthDayNano(Some(IntervalMonthDayNano::new(14, 3, 5_000))),
            ScalarValue::Binary(Some(vec![0, 255])),
            ScalarValue::Utf8(Some("hé".into())),
            ScalarValue::Decimal128(Some(-12_340), 38, 3),
        ] {
            let array: ArrayRef = value.to_array().unwrap();
            let ty = super::super::types::pg_type(array.data_type());
            let mut out = BytesMut::new();
            put_value(array.as_ref(), 0, &mut out);
            let back = scalar(&ty, &out[4..]).unwrap();
            assert_eq!(back, value, "{ty}");
        }
    }
}
