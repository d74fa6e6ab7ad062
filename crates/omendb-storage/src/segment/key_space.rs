//! The `u64` key space a segment's learned index is built on.
//!
//! Keys are memcomparable bytes (see `types/key_codec.rs`); the learned
//! index wants sorted `u64`s. A segment maps its keys one of two ways:
//!
//! - **Packed**, when every key column is fixed-width (booleans, integers,
//!   dates, timestamps, floats) and the columns' value ranges *within this
//!   segment* fit in 64 bits together: each column contributes
//!   `value - segment_min` in its own bit field. `(device_id, ts)` over a
//!   few hundred devices and a few days packs exactly: the map is
//!   injective, and the index alone decides equality.
//! - **Prefix** otherwise: the first 8 bytes of the key. Order-preserving
//!   but not injective, so lookups finish on the full key bytes.
//!
//! Any byte string (a whole key, a key prefix, a range bound) maps to the
//! space monotonically, so range scans can start from the index as well:
//! short columns are zero-padded, missing ones take the segment minimum,
//! and a column outside the segment's range clamps it and everything after
//! it to the minimum or maximum.

use std::fmt::Write as _;

use crate::types::{DataType, KeyCodec};

/// A fixed-width key column inside the packed `u64`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Field {
    /// Bytes of the column in the memcomparable key (1 or 8).
    width: usize,
    min: u64,
    max: u64,
    /// Position of the field's lowest bit.
    shift: u32,
}

/// How one segment turns keys into index keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum KeySpace {
    Packed(Vec<Field>),
    Prefix,
}

/// Where a byte string falls relative to the segment's packed ranges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IndexKey {
    pub key: u64,
    /// The bytes are a whole key inside every column's range, and the space
    /// is packed: equal index keys then mean equal keys.
    pub exact: bool,
    /// The bytes sort before every key of the segment with this index key
    /// (a column fell below its range, or the bytes end at a column).
    pub below: bool,
    /// The bytes sort after every key of the segment with this index key
    /// (a column rose above its range).
    pub above: bool,
}

/// The memcomparable width of a fixed-width key column.
fn fixed_width(ty: &DataType) -> Option<usize> {
    match ty {
        DataType::Bool => Some(1),
        DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::Date
        | DataType::Timestamp
        | DataType::TimestampTz
        | DataType::Float32
        | DataType::Float64 => Some(8),
        _ => None,
    }
}

/// Reads a big-endian number of `width` bytes, zero-padding a short slice.
fn read_be(bytes: &[u8], width: usize) -> u64 {
    let mut buf = [0u8; 8];
    let n = bytes.len().min(width);
    buf[8 - width..8 - width + n].copy_from_slice(&bytes[..n]);
    u64::from_be_bytes(buf)
}

impl KeySpace {
    /// Chooses the space for a segment holding `keys` (sorted or not).
    pub(crate) fn plan<'k>(codec: &KeyCodec, keys: impl Iterator<Item = &'k [u8]>) -> KeySpace {
        let Some(widths) = codec
            .types()
            .iter()
            .map(fixed_width)
            .collect::<Option<Vec<usize>>>()
        else {
            return KeySpace::Prefix;
        };
        let mut ranges = vec![(u64::MAX, 0u64); widths.len()];
        let mut any = false;
        for key in keys {
            any = true;
            let mut offset = 0;
            for (range, &width) in ranges.iter_mut().zip(&widths) {
                let value = read_be(key.get(offset..).unwrap_or(&[]), width);
                range.0 = range.0.min(value);
                range.1 = range.1.max(value);
                offset += width;
            }
        }
        if !any {
            return KeySpace::Prefix;
        }
        let bits: Vec<u32> = ranges
            .iter()
            .map(|(min, max)| 64 - (max - min).leading_zeros())
            .collect();
        if bits.iter().sum::<u32>() > 64 {
            return KeySpace::Prefix;
        }
        let mut shift = bits.iter().sum::<u32>();
        let fields = widths
            .iter()
            .zip(ranges)
            .zip(&bits)
            .map(|((&width, (min, max)), &bits)| {
                shift -= bits;
                Field {
                    width,
                    min,
                    max,
                    shift,
                }
            })
            .collect();
        KeySpace::Packed(fields)
    }

    /// Whether equal index keys mean equal keys (for in-range keys).
    pub(crate) fn is_packed(&self) -> bool {
        matches!(self, KeySpace::Packed(_))
    }

    /// The index key of any byte string; monotone in the bytes.
    pub(crate) fn index_key(&self, bytes: &[u8]) -> IndexKey {
        let KeySpace::Packed(fields) = self else {
            return IndexKey {
                key: crate::index::key_encoding::encode_bytes_prefix(bytes),
                exact: false,
                below: false,
                above: false,
            };
        };
        let mut key = 0u64;
        let mut offset = 0;
        // Once a column falls outside its range, later ones pin to an end.
        let mut pinned: Option<bool> = None;
        let mut exact = true;
        for field in fields {
            let raw = bytes.get(offset..).unwrap_or(&[]);
            exact &= raw.len() >= field.width;
            let value = match pinned {
                Some(high) => {
                    if high {
                        field.max
                    } else {
                        field.min
                    }
                }
                None if raw.is_empty() => {
                    pinned = Some(false);
                    field.min
                }
                None => {
                    let value = read_be(raw, field.width);
                    if value < field.min {
                        pinned = Some(false);
                        field.min
                    } else if value > field.max {
                        pinned = Some(true);
                        field.max
                    } else {
                        value
                    }
                }
            };
            key |= (value - field.min).checked_shl(field.shift).unwrap_or(0);
            offset += field.width;
        }
        exact &= pinned.is_none() && bytes.len() == offset;
        // The columns before the pinned one are in range and equal in every
        // key with this index key, and those keys hold the pinned column's
        // minimum (maximum), which the bytes fall short of (exceed).
        IndexKey {
            key,
            exact,
            below: pinned == Some(false),
            above: pinned == Some(true),
        }
    }

    /// The keys whose index keys are `index_keys`, all of one width, end
    /// to end, and that width: the inverse of [`Self::index_key`] on the
    /// segment's keys, which a packed space maps injectively. `None` for a
    /// prefix space, which cannot invert.
    pub(crate) fn keys_of(&self, index_keys: &[u64]) -> Option<(Vec<u8>, usize)> {
        let KeySpace::Packed(fields) = self else {
            return None;
        };
        let width: usize = fields.iter().map(|f| f.width).sum();
        let mut out = vec![0u8; index_keys.len() * width];
        let mut offset = 0;
        for field in fields {
            let bits = 64 - (field.max - field.min).leading_zeros();
            let mask = u64::MAX.checked_shr(64 - bits).unwrap_or(0);
            let skip = 8 - field.width;
            let value_of = |index_key: u64| {
                field
                    .min
                    .wrapping_add(index_key.checked_shr(field.shift).unwrap_or(0) & mask)
            };
            // Column by column: each pass is one tight loop over the keys,
            // with a store of a known width (a copy of a variable width is
            // a call per key).
            let keys = out.chunks_exact_mut(width).zip(index_keys);
            match field.width {
                8 => keys.for_each(|(key, &k)| {
                    key[offset..offset + 8].copy_from_slice(&value_of(k).to_be_bytes());
                }),
                4 => keys.for_each(|(key, &k)| {
                    let bytes = value_of(k).to_be_bytes();
                    key[offset..offset + 4].copy_from_slice(&bytes[4..]);
                }),
                2 => keys.for_each(|(key, &k)| {
                    let bytes = value_of(k).to_be_bytes();
                    key[offset..offset + 2].copy_from_slice(&bytes[6..]);
                }),
                _ => keys.for_each(|(key, &k)| {
                    let bytes = value_of(k).to_be_bytes();
                    key[offset..offset + field.width].copy_from_slice(&bytes[skip..]);
                }),
            }
            offset += field.width;
        }
        Some((out, width))
    }

    /// A text form for the segment's footer metadata.
    pub(crate) fn to_text(&self) -> String {
        match self {
            KeySpace::Prefix => "prefix".into(),
            KeySpace::Packed(fields) => {
                let mut out = String::from("packed");
                for f in fields {
                    // Writing to a String cannot fail.
                    let _ = write!(out, " {}:{}:{}:{}", f.width, f.min, f.max, f.shift);
                }
                out
            }
        }
    }

    /// Parses [`Self::to_text`]; `None` if malformed.
    pub(crate) fn from_text(text: &str) -> Option<KeySpace> {
        let mut parts = text.split(' ');
        match parts.next()? {
            "prefix" => parts.next().is_none().then_some(KeySpace::Prefix),
            "packed" => {
                let mut fields = Vec::new();
                let mut total_bits = 0u32;
                for part in parts {
                    let mut numbers = part.split(':');
                    let width: usize = numbers.next()?.parse().ok()?;
                    let min: u64 = numbers.next()?.parse().ok()?;
                    let max: u64 = numbers.next()?.parse().ok()?;
                    let shift: u32 = numbers.next()?.parse().ok()?;
                    let bits = 64 - max.checked_sub(min)?.leading_zeros();
                    total_bits += bits;
                    if numbers.next().is_some() || !matches!(width, 1 | 8) || shift + bits > 64 {
                        return None;
                    }
                    fields.push(Field {
                        width,
                        min,
                        max,
                        shift,
                    });
                }
                (total_bits <= 64 && !fields.is_empty()).then_some(KeySpace::Packed(fields))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::TestRng;
    use crate::types::Value;

    fn encode(codec: &KeyCodec, values: &[Value]) -> Vec<u8> {
        let mut out = Vec::new();
        codec
            .encode_prefix(&values.iter().collect::<Vec<_>>(), &mut out)
            .unwrap();
        out
    }

    #[test]
    fn device_and_timestamp_keys_pack_exactly_and_any_bytes_map_monotonically() {
        let mut rng = TestRng::new("device_and_timestamp_keys_pack_exactly");
        let codec = KeyCodec::new(vec![DataType::Int32, DataType::Timestamp]).unwrap();
        let mut keys: Vec<Vec<u8>> = (0..2000)
            .map(|_| {
                let device = Value::Int32(rng.below(300) as i32 - 100);
                let ts = Value::Timestamp(1_700_000_000_000_000 + rng.below(10_000_000_000) as i64);
                encode(&codec, &[device, ts])
            })
            .collect();
        keys.sort();
        keys.dedup();
        let space = KeySpace::plan(&codec, keys.iter().map(Vec::as_slice));
        assert!(space.is_packed(), "{space:?}");
        assert_eq!(KeySpace::from_text(&space.to_text()), Some(space.clone()));
        let packed: Vec<IndexKey> = keys.iter().map(|k| space.index_key(k)).collect();
        assert!(packed.iter().all(|k| k.exact));
        let index_keys: Vec<u64> = packed.iter().map(|k| k.key).collect();
        let (back, width) = space.keys_of(&index_keys).unwrap();
        let back: Vec<&[u8]> = back.chunks(width).collect();
        assert_eq!(back, keys, "the index keys give the keys back");
        assert!(
            packed.windows(2).all(|w| w[0].key < w[1].key),
            "injective and ordered"
        );

        // Probes: prefixes, out-of-range values, successors, junk lengths.
        let mut probes: Vec<Vec<u8>> = keys.clone();
        for _ in 0..3000 {
            let device = Value::Int32(rng.below(600) as i32 - 300);
            let ts = Value::Timestamp(1_699_000_000_000_000 + rng.below(30_000_000_000) as i64);
            let full = encode(&codec, &[device, ts]);
            let cut = rng.below(full.len() as u64 + 1) as usize;
            probes.push(full[..cut].to_vec());
        }
        probes.sort();
        let mapped: Vec<u64> = probes.iter().map(|p| space.index_key(p).key).collect();
        assert!(
            mapped.windows(2).all(|w| w[0] <= w[1]),
            "monotone over all byte strings"
        );
    }

    #[test]
    fn bounds_outside_the_ranges_know_their_side_of_the_keys() {
        let mut rng = TestRng::new("bounds_outside_the_ranges");
        let codec = KeyCodec::new(vec![DataType::Int32, DataType::Timestamp]).unwrap();
        // Dense keys, so that pinned bounds share index keys with real keys.
        let mut keys = Vec::new();
        for device in 0..20 {
            for ts in 0..20 {
                keys.push(encode(
                    &codec,
                    &[Value::Int32(device), Value::Timestamp(ts)],
                ));
            }
        }
        let space = KeySpace::plan(&codec, keys.iter().map(Vec::as_slice));
        let (mut below, mut above) = (0, 0);
        for _ in 0..2000 {
            let device = Value::Int32(rng.below(30) as i32 - 5);
            let ts = Value::Timestamp(rng.below(30) as i64 - 5);
            let full = encode(&codec, &[device, ts]);
            let probe = &full[..[4, 8, 12, 16][rng.below(4) as usize].min(full.len())];
            let at = space.index_key(probe);
            below += usize::from(at.below);
            above += usize::from(at.above);
            for key in keys.iter().filter(|k| space.index_key(k).key == at.key) {
                assert!(
                    !at.below || key.as_slice() > probe,
                    "{probe:?} not below {key:?}"
                );
                assert!(
                    !at.above || key.as_slice() < probe,
                    "{probe:?} not above {key:?}"
                );
            }
        }
        assert!(below > 100 && above > 100, "{below} below, {above} above");
    }

    #[test]
    fn booleans_constant_columns_and_full_width_ranges_give_their_keys_back() {
        let cases = [
            (
                vec![DataType::Bool, DataType::Int64, DataType::Int16],
                vec![
                    vec![Value::Bool(false), Value::Int64(7), Value::Int16(-3)],
                    vec![Value::Bool(true), Value::Int64(7), Value::Int16(9)],
                ],
            ),
            (
                vec![DataType::Int64],
                vec![vec![Value::Int64(i64::MIN)], vec![Value::Int64(i64::MAX)]],
            ),
        ];
        for (types, rows) in cases {
            let codec = KeyCodec::new(types).unwrap();
            let keys: Vec<Vec<u8>> = rows.iter().map(|r| encode(&codec, r)).collect();
            let space = KeySpace::plan(&codec, keys.iter().map(Vec::as_slice));
            let index_keys: Vec<u64> = keys.iter().map(|k| space.index_key(k).key).collect();
            let (back, width) = space.keys_of(&index_keys).unwrap();
            assert_eq!(back.chunks(width).collect::<Vec<_>>(), keys, "{space:?}");
        }
    }

    #[test]
    fn text_keys_and_overwide_ranges_fall_back_to_the_prefix() {
        let text = KeyCodec::new(vec![DataType::Text { max_chars: None }]).unwrap();
        let keys = [encode(&text, &[Value::Text("a".into())])];
        assert_eq!(
            KeySpace::plan(&text, keys.iter().map(Vec::as_slice)),
            KeySpace::Prefix
        );

        let wide = KeyCodec::new(vec![DataType::Int64, DataType::Int64]).unwrap();
        let keys = [
            encode(&wide, &[Value::Int64(i64::MIN), Value::Int64(0)]),
            encode(&wide, &[Value::Int64(i64::MAX), Value::Int64(1)]),
        ];
        assert_eq!(
            KeySpace::plan(&wide, keys.iter().map(Vec::as_slice)),
            KeySpace::Prefix
        );
        assert!(!KeySpace::Prefix.index_key(&keys[0]).exact);
        assert_eq!(KeySpace::Prefix.keys_of(&[0]), None);
        assert_eq!(
            KeySpace::from_text("packed 8:5:1:99"),
            None,
            "field wider than 64 bits"
        );
        assert_eq!(KeySpace::from_text("packed 3:0:1:0"), None);
        assert_eq!(KeySpace::from_text("bogus"), None);
    }
}
