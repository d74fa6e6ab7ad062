//! Order-preserving encodings of primary-key values into `u64`, the key
//! space of the learned index.
//!
//! For each encoding, `a < b` implies `encode(a) <= encode(b)`, and for the
//! exact ones (integers, timestamps, floats) also `encode(a) < encode(b)`,
//! with `decode` as the inverse. Integers of every width share one encoding,
//! so `encode_i16(x) == encode_i64(x as i64)`.
//!
//! | value                  | encoding                                   | exact |
//! |------------------------|--------------------------------------------|-------|
//! | `i16`, `i32`, `i64`    | two's complement with the sign bit flipped | yes   |
//! | timestamp (µs, `i64`)  | as `i64`; negative means before 1970/2000  | yes   |
//! | `f64`                  | IEEE bits, negatives inverted (see below)  | yes   |
//! | text / bytes           | first 8 bytes, big-endian, zero-padded     | no    |
//!
//! Floats follow PostgreSQL's order, not IEEE's: `-0.0` equals `0.0`, and
//! every NaN equals every other NaN and sorts above `+inf`. Both are
//! canonicalised before encoding, so equal values get equal keys.
//!
//! Text compares bytewise (the C collation). The prefix is not injective:
//! `"abcdefgh1"` and `"abcdefgh2"` share a key, as do `"a"` and `"a\0"`,
//! so lookups by prefix finish with a search on the full key
//! ([`crate::LearnedIndex::lower_bound_bytes`]).

const SIGN: u64 = 1 << 63;

/// Encodes an `i64` so that unsigned order is signed order.
pub fn encode_i64(value: i64) -> u64 {
    (value as u64) ^ SIGN
}

/// Inverse of [`encode_i64`].
pub fn decode_i64(key: u64) -> i64 {
    (key ^ SIGN) as i64
}

/// Encodes an `i32` exactly as the same value as `i64`.
pub fn encode_i32(value: i32) -> u64 {
    encode_i64(i64::from(value))
}

/// Encodes an `i16` exactly as the same value as `i64`.
pub fn encode_i16(value: i16) -> u64 {
    encode_i64(i64::from(value))
}

/// Encodes a timestamp in microseconds (PostgreSQL counts from 2000-01-01,
/// Unix from 1970; either way it may be negative).
pub fn encode_timestamp_micros(micros: i64) -> u64 {
    encode_i64(micros)
}

/// Encodes an `f64` in PostgreSQL's total order (see the module docs).
pub fn encode_f64(value: f64) -> u64 {
    let value = if value.is_nan() {
        f64::NAN
    } else if value == 0.0 {
        0.0
    } else {
        value
    };
    let bits = value.to_bits();
    // Positive floats order like their bits once above all negatives;
    // negative floats order inversely to their bits.
    if bits & SIGN == 0 { bits | SIGN } else { !bits }
}

/// Inverse of [`encode_f64`] (up to the canonical zero and NaN).
pub fn decode_f64(key: u64) -> f64 {
    let bits = if key & SIGN != 0 { key ^ SIGN } else { !key };
    f64::from_bits(bits)
}

/// The first 8 bytes of `bytes` as a big-endian number, zero-padded.
pub fn encode_bytes_prefix(bytes: &[u8]) -> u64 {
    let mut prefix = [0u8; 8];
    let n = bytes.len().min(8);
    prefix[..n].copy_from_slice(&bytes[..n]);
    u64::from_be_bytes(prefix)
}

/// The prefix key of UTF-8 text in the C collation.
pub fn encode_str_prefix(text: &str) -> u64 {
    encode_bytes_prefix(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::TestRng;
    use std::cmp::Ordering;

    /// PostgreSQL's float8 comparison: NaNs equal and largest, -0 == 0.
    fn pg_float_cmp(a: f64, b: f64) -> Ordering {
        match (a.is_nan(), b.is_nan()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => a.partial_cmp(&b).unwrap(),
        }
    }

    #[test]
    fn integers_keep_order_and_round_trip() {
        let edges = [
            i64::MIN,
            i64::MIN + 1,
            -65_536,
            -1,
            0,
            1,
            65_535,
            i64::MAX - 1,
            i64::MAX,
        ];
        let mut rng = TestRng::new("integers_keep_order_and_round_trip");
        let values: Vec<i64> = edges
            .into_iter()
            .chain((0..2000).map(|_| rng.u64() as i64 >> rng.below(64)))
            .collect();
        for &a in &values {
            assert_eq!(decode_i64(encode_i64(a)), a);
            for &b in &values {
                assert_eq!(a.cmp(&b), encode_i64(a).cmp(&encode_i64(b)), "{a} vs {b}");
            }
        }
        for v in [i16::MIN, -1, 0, 1, i16::MAX] {
            assert_eq!(encode_i16(v), encode_i64(i64::from(v)));
            assert_eq!(encode_i32(i32::from(v)), encode_i64(i64::from(v)));
        }
        assert!(encode_i32(i32::MIN) < encode_i32(-1) && encode_i32(-1) < encode_i32(i32::MAX));
    }

    #[test]
    fn negative_timestamps_sort_before_positive_ones() {
        let before_epoch = -86_400_000_000; // one day before the epoch
        assert!(encode_timestamp_micros(before_epoch) < encode_timestamp_micros(0));
        assert!(encode_timestamp_micros(0) < encode_timestamp_micros(1));
    }

    #[test]
    fn floats_follow_postgres_order() {
        let mut rng = TestRng::new("floats_follow_postgres_order");
        let edges = [
            f64::NEG_INFINITY,
            f64::MIN,
            -1.0,
            -f64::MIN_POSITIVE,
            -5e-324,
            -0.0,
            0.0,
            5e-324,
            f64::MIN_POSITIVE,
            1.0,
            f64::MAX,
            f64::INFINITY,
            f64::NAN,
            -f64::NAN,
            f64::from_bits(0x7ff0_0000_0000_0001),
        ];
        let values: Vec<f64> = edges
            .into_iter()
            .chain((0..2000).map(|_| f64::from_bits(rng.u64())))
            .collect();
        for &a in &values {
            for &b in &values {
                assert_eq!(
                    pg_float_cmp(a, b),
                    encode_f64(a).cmp(&encode_f64(b)),
                    "{a:?} vs {b:?}"
                );
            }
            if !a.is_nan() {
                assert_eq!(pg_float_cmp(decode_f64(encode_f64(a)), a), Ordering::Equal);
            }
        }
    }

    #[test]
    fn byte_prefixes_never_invert_order() {
        let mut rng = TestRng::new("byte_prefixes_never_invert_order");
        let mut values: Vec<Vec<u8>> =
            vec![vec![], vec![0], vec![0, 0], b"a".to_vec(), vec![255; 9]];
        for _ in 0..1000 {
            let len = rng.below(12) as usize;
            // A small alphabet makes shared prefixes common.
            values.push(
                (0..len)
                    .map(|_| [0u8, 1, b'a', b'b', 255][rng.below(5) as usize])
                    .collect(),
            );
        }
        for a in &values {
            for b in &values {
                let (ka, kb) = (encode_bytes_prefix(a), encode_bytes_prefix(b));
                if a < b {
                    assert!(ka <= kb, "{a:?} < {b:?} but prefixes {ka:#x} > {kb:#x}");
                }
                // Short keys without trailing NULs (the padding) never collide.
                let unpadded = |s: &[u8]| s.len() <= 8 && s.last() != Some(&0);
                if a != b && unpadded(a) && unpadded(b) {
                    assert_ne!(ka, kb, "{a:?} and {b:?}");
                }
            }
        }
        assert_eq!(encode_str_prefix("abc"), 0x6162_6300_0000_0000);
    }
}
