//! The byte encoding of a row, as the WAL and the memtable keep it.
//!
//! ```text
//! row   := varint(count) { varint(column_id) value }*
//! value := tag:u8 payload                  little-endian; NULL is tag 0
//! ```
//!
//! Rows name columns by id, not position, so a row written before `ADD`,
//! `DROP` or `RENAME COLUMN` still decodes afterwards: a column the row
//! lacks takes the column's missing value, so NULLs are stored explicitly
//! (a NULL is not the same as "the column did not exist yet"). Values carry
//! their own tag, so a row decodes without its schema. Decoding checks every
//! length and tag and returns an error on any malformed input, never a
//! panic.

use std::sync::Arc;

use super::{Interval, Value};

const NULL: u8 = 0;
const BOOL: u8 = 1;
const INT16: u8 = 2;
const INT32: u8 = 3;
const INT64: u8 = 4;
const FLOAT32: u8 = 5;
const FLOAT64: u8 = 6;
const NUMERIC: u8 = 7;
const TEXT: u8 = 8;
const BYTES: u8 = 9;
const DATE: u8 = 10;
const TIMESTAMP: u8 = 11;
const TIMESTAMPTZ: u8 = 12;
const INTERVAL: u8 = 13;
const UUID: u8 = 14;
const JSON: u8 = 15;
const VECTOR: u8 = 16;

/// Appends the values of a row, each tagged with its column id.
pub(crate) fn encode_row<'v>(
    values: impl ExactSizeIterator<Item = (u32, &'v Value)>,
    out: &mut Vec<u8>,
) {
    put_varint(out, values.len() as u64);
    for (column, value) in values {
        put_varint(out, u64::from(column));
        encode_value(value, out);
    }
}

/// The `(column id, value)` pairs of an encoded row.
pub(crate) fn decode_row(bytes: &[u8]) -> Result<Vec<(u32, Value)>, String> {
    let mut reader = Reader { bytes, pos: 0 };
    let count = reader.count("values")?;
    let mut row = Vec::with_capacity(count);
    for _ in 0..count {
        let column = u32::try_from(reader.varint()?).map_err(|_| "column id over u32")?;
        row.push((column, reader.value()?));
    }
    if reader.pos != bytes.len() {
        return Err(format!(
            "{} trailing bytes after the row",
            bytes.len() - reader.pos
        ));
    }
    Ok(row)
}

fn encode_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.push(NULL),
        Value::Bool(b) => out.extend([BOOL, u8::from(*b)]),
        Value::Int16(v) => tagged(out, INT16, &v.to_le_bytes()),
        Value::Int32(v) => tagged(out, INT32, &v.to_le_bytes()),
        Value::Int64(v) => tagged(out, INT64, &v.to_le_bytes()),
        Value::Float32(v) => tagged(out, FLOAT32, &v.to_le_bytes()),
        Value::Float64(v) => tagged(out, FLOAT64, &v.to_le_bytes()),
        Value::Numeric { unscaled, scale } => {
            tagged(out, NUMERIC, &unscaled.to_le_bytes());
            out.push(*scale as u8);
        }
        Value::Text(s) => tagged_bytes(out, TEXT, s.as_bytes()),
        Value::Bytes(b) => tagged_bytes(out, BYTES, b),
        Value::Date(d) => tagged(out, DATE, &d.to_le_bytes()),
        Value::Timestamp(t) => tagged(out, TIMESTAMP, &t.to_le_bytes()),
        Value::TimestampTz(t) => tagged(out, TIMESTAMPTZ, &t.to_le_bytes()),
        Value::Interval(i) => {
            tagged(out, INTERVAL, &i.months.to_le_bytes());
            out.extend(i.days.to_le_bytes());
            out.extend(i.micros.to_le_bytes());
        }
        Value::Uuid(u) => tagged(out, UUID, u),
        Value::Json(s) => tagged_bytes(out, JSON, s.as_bytes()),
        Value::Vector(v) => {
            out.push(VECTOR);
            put_varint(out, v.len() as u64);
            for x in v.iter() {
                out.extend(x.to_le_bytes());
            }
        }
    }
}

fn tagged(out: &mut Vec<u8>, tag: u8, payload: &[u8]) {
    out.push(tag);
    out.extend_from_slice(payload);
}

fn tagged_bytes(out: &mut Vec<u8>, tag: u8, payload: &[u8]) {
    out.push(tag);
    put_varint(out, payload.len() as u64);
    out.extend_from_slice(payload);
}

/// Appends `value` as LEB128.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A cursor over encoded rows (and, in the WAL, records).
pub(crate) struct Reader<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, pos: 0 }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    /// A varint count of entries that follow, each at least one byte: a
    /// count the remaining input cannot hold is an error, so a hostile
    /// count never makes the caller allocate.
    pub(crate) fn count(&mut self, what: &str) -> Result<usize, String> {
        let count = self.varint()?;
        let left = self.bytes.len() - self.pos;
        usize::try_from(count)
            .ok()
            .filter(|&n| n <= left)
            .ok_or_else(|| format!("{count} {what} cannot fit in {left} bytes"))
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len());
        let end = end.ok_or_else(|| {
            format!(
                "{n} bytes wanted at {}, only {} left",
                self.pos,
                self.bytes.len() - self.pos
            )
        })?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let slice = self.take(N)?;
        let mut out = [0; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u64(&mut self) -> Result<u64, String> {
        self.array().map(u64::from_le_bytes)
    }

    pub(crate) fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint longer than 10 bytes".into())
    }

    /// A varint length followed by that many bytes.
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], String> {
        let len = usize::try_from(self.varint()?).map_err(|_| "length over usize")?;
        self.take(len)
    }

    fn text(&mut self) -> Result<String, String> {
        let bytes = self.bytes()?;
        String::from_utf8(bytes.to_vec()).map_err(|e| format!("invalid UTF-8 in text: {e}"))
    }

    fn value(&mut self) -> Result<Value, String> {
        let tag = self.u8()?;
        Ok(match tag {
            NULL => Value::Null,
            BOOL => match self.u8()? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(format!("bool byte {b}")),
            },
            INT16 => Value::Int16(i16::from_le_bytes(self.array()?)),
            INT32 => Value::Int32(i32::from_le_bytes(self.array()?)),
            INT64 => Value::Int64(i64::from_le_bytes(self.array()?)),
            FLOAT32 => Value::Float32(f32::from_le_bytes(self.array()?)),
            FLOAT64 => Value::Float64(f64::from_le_bytes(self.array()?)),
            NUMERIC => {
                let unscaled = i128::from_le_bytes(self.array()?);
                Value::Numeric {
                    unscaled,
                    scale: self.u8()? as i8,
                }
            }
            TEXT => Value::Text(self.text()?),
            BYTES => Value::Bytes(self.bytes()?.to_vec()),
            DATE => Value::Date(i32::from_le_bytes(self.array()?)),
            TIMESTAMP => Value::Timestamp(i64::from_le_bytes(self.array()?)),
            TIMESTAMPTZ => Value::TimestampTz(i64::from_le_bytes(self.array()?)),
            INTERVAL => Value::Interval(Interval {
                months: i32::from_le_bytes(self.array()?),
                days: i32::from_le_bytes(self.array()?),
                micros: i64::from_le_bytes(self.array()?),
            }),
            UUID => Value::Uuid(self.array()?),
            JSON => Value::Json(self.text()?),
            VECTOR => {
                let dims = usize::try_from(self.varint()?).map_err(|_| "dims over usize")?;
                let raw = self.take(dims.checked_mul(4).ok_or("vector too long")?)?;
                let floats: Vec<f32> = raw
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                Value::Vector(Arc::from(floats))
            }
            other => return Err(format!("unknown value tag {other}")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::TestRng;

    fn sample_values() -> Vec<Value> {
        vec![
            Value::Bool(true),
            Value::Int16(-3),
            Value::Int32(i32::MIN),
            Value::Int64(i64::MAX),
            Value::Float32(1.5),
            Value::Float64(f64::NEG_INFINITY),
            Value::Numeric {
                unscaled: -123_456_789_012_345_678_901_234,
                scale: 4,
            },
            Value::Text("héllo\0world".into()),
            Value::Bytes(vec![0, 255, 7]),
            Value::Date(-719_528),
            Value::Timestamp(-1),
            Value::TimestampTz(1_700_000_000_000_000),
            Value::Interval(Interval {
                months: -1,
                days: 2,
                micros: 3,
            }),
            Value::Uuid([9; 16]),
            Value::Json(r#"{"a": [1, 2]}"#.into()),
            Value::Vector(Arc::from([0.5, -1.0, 3.25])),
        ]
    }

    #[test]
    fn every_value_type_and_null_round_trips() {
        let mut values = sample_values();
        values.insert(3, Value::Null);
        let mut bytes = Vec::new();
        encode_row(
            values.iter().enumerate().map(|(i, v)| (i as u32 * 3, v)),
            &mut bytes,
        );
        let decoded = decode_row(&bytes).unwrap();
        let expected: Vec<(u32, Value)> = values
            .iter()
            .enumerate()
            .map(|(i, v)| (i as u32 * 3, v.clone()))
            .collect();
        assert_eq!(decoded, expected);
    }

    #[test]
    fn truncated_and_garbled_rows_are_errors_not_panics() {
        let values = sample_values();
        let mut bytes = Vec::new();
        encode_row(
            values.iter().enumerate().map(|(i, v)| (i as u32, v)),
            &mut bytes,
        );
        for len in 0..bytes.len() {
            assert!(decode_row(&bytes[..len]).is_err(), "truncated to {len}");
        }
        let mut rng = TestRng::new("truncated_and_garbled_rows_are_errors_not_panics");
        for _ in 0..5000 {
            let mut garbled = bytes.clone();
            for _ in 0..1 + rng.below(3) {
                let i = rng.below(garbled.len() as u64) as usize;
                garbled[i] = rng.u64() as u8;
            }
            let _ = decode_row(&garbled);
        }
        assert!(decode_row(&[0xff; 11]).is_err(), "overlong varint");
        assert!(decode_row(&[200, 1]).is_err(), "count beyond the bytes");
    }
}
