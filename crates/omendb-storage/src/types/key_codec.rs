//! Primary keys as bytes whose lexicographic order is the keys' order
//! ("memcomparable"), so that the memtable and segments can sort and
//! compare keys of any type, composite keys included, as plain bytes.
//!
//! | type | bytes |
//! |---|---|
//! | `bool` | 1 byte, 0 or 1 |
//! | integers, `date`, `timestamp[tz]` | 8 bytes, big-endian `encode_i64` (all widths alike) |
//! | `real`, `double precision` | 8 bytes, big-endian `encode_f64` (PostgreSQL's order) |
//! | `numeric` | 16 bytes, big-endian `i128` with the sign bit flipped (one scale per column) |
//! | `text`, `varchar`, `bytea` | the bytes with `00` escaped as `00 FF`, then `00 01` |
//! | `uuid` | its 16 bytes |
//!
//! The escape keeps composite keys ordered: `("a", x) < ("a\0", y)` for any
//! `x` and `y`, because the terminator `00 01` sorts below the escaped zero
//! `00 FF`. Intervals (PostgreSQL equates `'1 mon'` and `'30 days'`), `jsonb`
//! and vectors cannot be keys.

use crate::error::{Result, StorageError};
use crate::index::key_encoding::{
    decode_f64, decode_i64, encode_bytes_prefix, encode_f64, encode_i64,
};

use super::{DataType, Value};

/// Encodes and decodes the primary key of one table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyCodec {
    types: Vec<DataType>,
}

impl KeyCodec {
    /// A codec for keys made of columns of these types, in key order.
    pub fn new(types: Vec<DataType>) -> Result<KeyCodec> {
        if let Some(bad) = types
            .iter()
            .find(|t| !t.can_be_key() || matches!(t, DataType::Interval))
        {
            return Err(StorageError::Unsupported {
                message: format!("a column of type {bad} cannot be part of a primary key"),
            });
        }
        Ok(KeyCodec { types })
    }

    /// The key column types, in key order.
    pub fn types(&self) -> &[DataType] {
        &self.types
    }

    /// Appends the encoding of `values` (one per key column, none NULL).
    pub fn encode(&self, values: &[&Value], out: &mut Vec<u8>) -> Result<()> {
        if values.len() != self.types.len() {
            return Err(StorageError::invalid(format!(
                "key has {} values for {} key columns",
                values.len(),
                self.types.len()
            )));
        }
        self.encode_prefix(values, out)
    }

    /// Appends the encoding of the first key columns: every key that
    /// starts with these values starts with these bytes.
    pub fn encode_prefix(&self, values: &[&Value], out: &mut Vec<u8>) -> Result<()> {
        if values.len() > self.types.len() {
            return Err(StorageError::invalid(format!(
                "key prefix has {} values for {} key columns",
                values.len(),
                self.types.len()
            )));
        }
        for (ty, value) in self.types.iter().zip(values) {
            encode_component(ty, value, out)?;
        }
        Ok(())
    }

    /// The values of an encoded key. Malformed bytes are an error.
    pub fn decode(&self, bytes: &[u8]) -> Result<Vec<Value>, String> {
        let mut rest = bytes;
        let mut values = Vec::with_capacity(self.types.len());
        for ty in &self.types {
            let (value, used) = decode_component(ty, rest)?;
            values.push(value);
            rest = &rest[used..];
        }
        if !rest.is_empty() {
            return Err(format!("{} trailing bytes after the key", rest.len()));
        }
        Ok(values)
    }
}

fn encode_component(ty: &DataType, value: &Value, out: &mut Vec<u8>) -> Result<()> {
    let ordered = |v: i64| encode_i64(v).to_be_bytes();
    match (ty, value) {
        (DataType::Bool, Value::Bool(b)) => out.push(u8::from(*b)),
        (DataType::Int16, Value::Int16(v)) => out.extend(ordered(i64::from(*v))),
        (DataType::Int32, Value::Int32(v)) => out.extend(ordered(i64::from(*v))),
        (DataType::Int64, Value::Int64(v)) => out.extend(ordered(*v)),
        (DataType::Date, Value::Date(v)) => out.extend(ordered(i64::from(*v))),
        (DataType::Timestamp, Value::Timestamp(v))
        | (DataType::TimestampTz, Value::TimestampTz(v)) => out.extend(ordered(*v)),
        (DataType::Float32, Value::Float32(v)) => {
            out.extend(encode_f64(f64::from(*v)).to_be_bytes())
        }
        (DataType::Float64, Value::Float64(v)) => out.extend(encode_f64(*v).to_be_bytes()),
        (DataType::Numeric { scale, .. }, Value::Numeric { unscaled, scale: s }) if s == scale => {
            out.extend(((*unscaled as u128) ^ (1 << 127)).to_be_bytes());
        }
        (DataType::Text { .. }, Value::Text(s)) => escape(s.as_bytes(), out),
        (DataType::Char { .. }, Value::Text(s)) => escape(s.trim_end_matches(' ').as_bytes(), out),
        (DataType::Bytea, Value::Bytes(b)) => escape(b, out),
        (DataType::Uuid, Value::Uuid(u)) => out.extend_from_slice(u),
        (_, Value::Null) => {
            return Err(StorageError::invalid("a primary key column cannot be NULL"));
        }
        _ => {
            return Err(StorageError::invalid(format!(
                "key value {value:?} does not fit a key column of type {ty}"
            )));
        }
    }
    Ok(())
}

fn decode_component(ty: &DataType, bytes: &[u8]) -> Result<(Value, usize), String> {
    let fixed = |n: usize| -> Result<&[u8], String> {
        bytes
            .get(..n)
            .ok_or_else(|| format!("key ends inside a {ty} value"))
    };
    let int = || -> Result<i64, String> {
        let raw = fixed(8)?;
        Ok(decode_i64(u64::from_be_bytes(
            raw.try_into().map_err(|_| "8 bytes")?,
        )))
    };
    let narrow = |v: i64| format!("{ty} key value {v} out of range");
    Ok(match ty {
        DataType::Bool => match fixed(1)?[0] {
            0 => (Value::Bool(false), 1),
            1 => (Value::Bool(true), 1),
            b => return Err(format!("bool key byte {b}")),
        },
        DataType::Int16 => (
            Value::Int16(int().and_then(|v| i16::try_from(v).map_err(|_| narrow(v)))?),
            8,
        ),
        DataType::Int32 => (
            Value::Int32(int().and_then(|v| i32::try_from(v).map_err(|_| narrow(v)))?),
            8,
        ),
        DataType::Date => (
            Value::Date(int().and_then(|v| i32::try_from(v).map_err(|_| narrow(v)))?),
            8,
        ),
        DataType::Int64 => (Value::Int64(int()?), 8),
        DataType::Timestamp => (Value::Timestamp(int()?), 8),
        DataType::TimestampTz => (Value::TimestampTz(int()?), 8),
        DataType::Float32 | DataType::Float64 => {
            let raw: [u8; 8] = fixed(8)?.try_into().map_err(|_| "8 bytes")?;
            let v = decode_f64(u64::from_be_bytes(raw));
            let value = if *ty == DataType::Float32 {
                Value::Float32(v as f32)
            } else {
                Value::Float64(v)
            };
            (value, 8)
        }
        DataType::Numeric { scale, .. } => {
            let raw: [u8; 16] = fixed(16)?.try_into().map_err(|_| "16 bytes")?;
            let unscaled = (u128::from_be_bytes(raw) ^ (1 << 127)) as i128;
            (
                Value::Numeric {
                    unscaled,
                    scale: *scale,
                },
                16,
            )
        }
        DataType::Text { .. } | DataType::Char { .. } => {
            let (raw, used) = unescape(bytes)?;
            let text =
                String::from_utf8(raw).map_err(|e| format!("invalid UTF-8 in text key: {e}"))?;
            (Value::Text(text), used)
        }
        DataType::Bytea => {
            let (raw, used) = unescape(bytes)?;
            (Value::Bytes(raw), used)
        }
        DataType::Uuid => (
            Value::Uuid(fixed(16)?.try_into().map_err(|_| "16 bytes")?),
            16,
        ),
        DataType::Interval | DataType::Jsonb | DataType::Vector { .. } => {
            return Err(format!("{ty} cannot be a key column"));
        }
    })
}

fn escape(bytes: &[u8], out: &mut Vec<u8>) {
    for &b in bytes {
        out.push(b);
        if b == 0 {
            out.push(0xff);
        }
    }
    out.extend([0, 1]);
}

/// The unescaped bytes and how many encoded bytes they used.
fn unescape(bytes: &[u8]) -> Result<(Vec<u8>, usize), String> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b != 0 {
            out.push(b);
            i += 1;
            continue;
        }
        match bytes.get(i + 1) {
            Some(0xff) => out.push(0),
            Some(1) => return Ok((out, i + 2)),
            _ => return Err(format!("bad escape in byte key at {i}")),
        }
        i += 2;
    }
    Err("byte key has no terminator".into())
}

/// An order-preserving `u64` for one key column's value: what the learned
/// index of a segment is built on. Exact (injective) for booleans, integers,
/// dates, timestamps and floats, and for numerics within `i64`'s range
/// (wider ones saturate); the first 8 bytes for text, bytea and uuid.
/// Returns `(key, exact)`.
pub fn ordered_u64(value: &Value) -> (u64, bool) {
    match value {
        Value::Bool(b) => (u64::from(*b), true),
        Value::Int16(v) => (encode_i64(i64::from(*v)), true),
        Value::Int32(v) | Value::Date(v) => (encode_i64(i64::from(*v)), true),
        Value::Int64(v) | Value::Timestamp(v) | Value::TimestampTz(v) => (encode_i64(*v), true),
        Value::Float32(v) => (encode_f64(f64::from(*v)), true),
        Value::Float64(v) => (encode_f64(*v), true),
        Value::Numeric { unscaled, .. } => match i64::try_from(*unscaled) {
            Ok(v) => (encode_i64(v), true),
            Err(_) if *unscaled < 0 => (encode_i64(i64::MIN), false),
            Err(_) => (encode_i64(i64::MAX), false),
        },
        Value::Text(s) => (encode_bytes_prefix(s.as_bytes()), false),
        Value::Bytes(b) => (encode_bytes_prefix(b), false),
        Value::Uuid(u) => (encode_bytes_prefix(u), false),
        Value::Null | Value::Interval(_) | Value::Json(_) | Value::Vector(_) => (0, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::TestRng;
    use std::cmp::Ordering;

    /// The order PostgreSQL gives these values (same type on both sides).
    fn value_cmp(a: &Value, b: &Value) -> Ordering {
        match (a, b) {
            (Value::Int32(x), Value::Int32(y)) => x.cmp(y),
            (Value::Int64(x), Value::Int64(y)) => x.cmp(y),
            (Value::Text(x), Value::Text(y)) => x.as_bytes().cmp(y.as_bytes()),
            (Value::Bytes(x), Value::Bytes(y)) => x.cmp(y),
            (Value::Timestamp(x), Value::Timestamp(y)) => x.cmp(y),
            (Value::Float64(x), Value::Float64(y)) => x.total_cmp(y),
            (Value::Numeric { unscaled: x, .. }, Value::Numeric { unscaled: y, .. }) => x.cmp(y),
            _ => unreachable!("test compares like types"),
        }
    }

    fn random_value(rng: &mut TestRng, ty: &DataType) -> Value {
        match ty {
            DataType::Int32 => Value::Int32(
                [i32::MIN, -1, 0, 1, i32::MAX, rng.u64() as i32][rng.below(6) as usize],
            ),
            DataType::Int64 => Value::Int64(rng.u64() as i64 >> rng.below(64)),
            DataType::Timestamp => Value::Timestamp(rng.u64() as i64 >> 10),
            DataType::Float64 => {
                Value::Float64([-1.5, 0.0, 2.0, f64::INFINITY, rng.normal()][rng.below(5) as usize])
            }
            DataType::Numeric { scale, .. } => Value::Numeric {
                unscaled: (rng.u64() as i64 as i128) << rng.below(40),
                scale: *scale,
            },
            DataType::Text { .. } | DataType::Char { .. } => Value::Text(
                (0..rng.below(5))
                    .map(|_| ['\0', 'a', 'b', 'é'][rng.below(4) as usize])
                    .collect(),
            ),
            DataType::Bytea => Value::Bytes(
                (0..rng.below(5))
                    .map(|_| [0, 1, 0xff][rng.below(3) as usize])
                    .collect(),
            ),
            _ => unreachable!("not generated"),
        }
    }

    #[test]
    fn composite_keys_sort_as_their_values_and_round_trip() {
        let mut rng = TestRng::new("composite_keys_sort_as_their_values_and_round_trip");
        let shapes = vec![
            vec![DataType::Int64],
            vec![DataType::Text { max_chars: None }, DataType::Int32],
            vec![DataType::Bytea, DataType::Bytea],
            vec![DataType::Int32, DataType::Timestamp],
            vec![
                DataType::Float64,
                DataType::Numeric {
                    precision: 38,
                    scale: 2,
                },
                DataType::Text { max_chars: None },
            ],
        ];
        for types in shapes {
            let codec = KeyCodec::new(types.clone()).unwrap();
            let keys: Vec<Vec<Value>> = (0..300)
                .map(|_| types.iter().map(|t| random_value(&mut rng, t)).collect())
                .collect();
            let encoded: Vec<Vec<u8>> = keys
                .iter()
                .map(|k| {
                    let mut out = Vec::new();
                    codec
                        .encode(&k.iter().collect::<Vec<_>>(), &mut out)
                        .unwrap();
                    out
                })
                .collect();
            for (key, bytes) in keys.iter().zip(&encoded) {
                assert_eq!(&codec.decode(bytes).unwrap(), key);
            }
            for (a, ea) in keys.iter().zip(&encoded) {
                for (b, eb) in keys.iter().zip(&encoded) {
                    let want = a
                        .iter()
                        .zip(b)
                        .map(|(x, y)| value_cmp(x, y))
                        .find(|o| o.is_ne())
                        .unwrap_or(Ordering::Equal);
                    assert_eq!(ea.cmp(eb), want, "{a:?} vs {b:?}");
                }
            }
        }
    }

    #[test]
    fn nulls_wrong_types_and_unkeyable_types_are_refused() {
        let codec = KeyCodec::new(vec![DataType::Int32]).unwrap();
        assert!(codec.encode(&[&Value::Null], &mut Vec::new()).is_err());
        assert!(codec.encode(&[&Value::Int64(1)], &mut Vec::new()).is_err());
        assert!(KeyCodec::new(vec![DataType::Jsonb]).is_err());
        assert!(KeyCodec::new(vec![DataType::Interval]).is_err());
        assert!(codec.decode(&[1, 2, 3]).is_err());
        let text = KeyCodec::new(vec![DataType::Text { max_chars: None }]).unwrap();
        assert!(text.decode(b"abc").is_err(), "no terminator");
        assert!(text.decode(&[0, 7]).is_err(), "bad escape");
    }

    #[test]
    fn ordered_u64_preserves_order_and_says_when_exact() {
        assert!(ordered_u64(&Value::Int32(-1)).0 < ordered_u64(&Value::Int32(0)).0);
        assert!(ordered_u64(&Value::Int32(7)).1);
        assert!(!ordered_u64(&Value::Text("abc".into())).1);
        let big = Value::Numeric {
            unscaled: i128::from(i64::MAX) + 1,
            scale: 0,
        };
        assert_eq!(ordered_u64(&big), (encode_i64(i64::MAX), false));
    }
}
