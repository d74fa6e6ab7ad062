//! The byte format of a [`LearnedIndex`], as stored inside segment files.
//!
//! Little-endian throughout (layout in `docs/design/learned-index.md`):
//!
//! ```text
//! header   magic "OMLI" | version u16 | flags u16 | key count u64
//!          | epsilon u32 | epsilon_upper u32 | level count u32 | reserved u32 (0)
//! levels   bottom first, each: piece count u64 | radius u64
//!          | pieces: first key u64 | slope f64 | intercept f64 | end u64
//! trailer  crc32c u32 of every byte before it
//! ```
//!
//! Decoding never trusts the input: the checksum is verified first, then
//! every count is checked against the bytes actually present before anything
//! is allocated, and the model's invariants (sorted keys, finite
//! non-negative slopes, ends inside the level below, one piece on top) are
//! checked, so a decoded index can answer any lookup without panicking.

use super::{
    LearnedIndex, LearnedIndexConfig, Level, Line, MAX_EPSILON, MAX_KEYS, MAX_ROOT_PIECES,
};

const MAGIC: [u8; 4] = *b"OMLI";
const VERSION: u16 = 1;
const HEADER_LEN: usize = 32;
const LEVEL_HEADER_LEN: usize = 16;
const PIECE_LEN: usize = 32;
const CHECKSUM_LEN: usize = 4;
/// More levels than this would mean pieces that do not shrink per level.
const MAX_LEVELS: usize = 64;
/// Flag bit: some key repeats.
const FLAG_DUPLICATES: u16 = 1;

/// Why bytes are not a valid learned index.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("learned index truncated: {len} bytes, need at least {needed}")]
    Truncated { len: usize, needed: usize },
    #[error("not a learned index: bad magic bytes")]
    BadMagic,
    #[error("learned index checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    ChecksumMismatch { stored: u32, computed: u32 },
    #[error("unsupported learned index format version {version} (this build reads {VERSION})")]
    UnsupportedVersion { version: u16 },
    #[error("corrupt learned index: {0}")]
    Corrupt(&'static str),
}

impl LearnedIndex {
    /// Serialises the index (see the module docs for the layout).
    pub fn to_bytes(&self) -> Vec<u8> {
        let pieces: usize = self.levels.iter().map(|level| level.keys.len()).sum();
        let len = HEADER_LEN + self.levels.len() * LEVEL_HEADER_LEN + pieces * PIECE_LEN;
        let mut out = Vec::with_capacity(len + CHECKSUM_LEN);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        let flags = if self.duplicates { FLAG_DUPLICATES } else { 0 };
        out.extend_from_slice(&flags.to_le_bytes());
        out.extend_from_slice(&(self.len as u64).to_le_bytes());
        out.extend_from_slice(&self.config.epsilon.to_le_bytes());
        out.extend_from_slice(&self.config.epsilon_upper.to_le_bytes());
        out.extend_from_slice(&(self.levels.len() as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        for level in &self.levels {
            out.extend_from_slice(&(level.keys.len() as u64).to_le_bytes());
            out.extend_from_slice(&(level.radius as u64).to_le_bytes());
            for (key, line) in level.keys.iter().zip(&level.lines) {
                out.extend_from_slice(&key.to_le_bytes());
                out.extend_from_slice(&line.slope.to_le_bytes());
                out.extend_from_slice(&line.intercept.to_le_bytes());
                out.extend_from_slice(&(line.end as u64).to_le_bytes());
            }
        }
        let checksum = crc32c::crc32c(&out);
        out.extend_from_slice(&checksum.to_le_bytes());
        out
    }

    /// Reads an index written by [`LearnedIndex::to_bytes`]. Any corruption
    /// or truncation is an error, never a panic.
    pub fn from_bytes(bytes: &[u8]) -> Result<LearnedIndex, DecodeError> {
        let needed = HEADER_LEN + CHECKSUM_LEN;
        if bytes.len() < needed {
            return Err(DecodeError::Truncated {
                len: bytes.len(),
                needed,
            });
        }
        if bytes[..4] != MAGIC {
            return Err(DecodeError::BadMagic);
        }
        let (body, trailer) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
        let mut reader = Reader { bytes: trailer };
        let stored = reader.u32()?;
        let computed = crc32c::crc32c(body);
        if stored != computed {
            return Err(DecodeError::ChecksumMismatch { stored, computed });
        }

        let mut reader = Reader { bytes: &body[4..] };
        let version = reader.u16()?;
        if version != VERSION {
            return Err(DecodeError::UnsupportedVersion { version });
        }
        let flags = reader.u16()?;
        if flags & !FLAG_DUPLICATES != 0 {
            return Err(DecodeError::Corrupt("unknown flags"));
        }
        let duplicates = flags & FLAG_DUPLICATES != 0;
        let len = reader.count(MAX_KEYS, "key count over the limit")?;
        let config = LearnedIndexConfig {
            epsilon: reader.u32()?,
            epsilon_upper: reader.u32()?,
        };
        if config.epsilon > MAX_EPSILON || config.epsilon_upper > MAX_EPSILON {
            return Err(DecodeError::Corrupt("error bound over the limit"));
        }
        let height = reader.u32()? as usize;
        if height > MAX_LEVELS || (height == 0) != (len == 0) {
            return Err(DecodeError::Corrupt(
                "level count does not fit the key count",
            ));
        }
        if reader.u32()? != 0 {
            return Err(DecodeError::Corrupt("reserved header field is not zero"));
        }

        let mut levels: Vec<Level> = Vec::with_capacity(height);
        for _ in 0..height {
            let below_len = levels.last().map_or(len, |below| below.keys.len());
            let level = read_level(&mut reader, below_len)?;
            let indexes_below = |below: &Level| {
                level.keys.len() < below.keys.len() && level.keys[0] == below.keys[0]
            };
            if !levels.last().is_none_or(indexes_below) {
                return Err(DecodeError::Corrupt(
                    "a level does not index the level below",
                ));
            }
            levels.push(level);
        }
        if levels
            .last()
            .is_some_and(|top| top.keys.len() > MAX_ROOT_PIECES)
        {
            return Err(DecodeError::Corrupt("top level has too many pieces"));
        }
        if !reader.bytes.is_empty() {
            return Err(DecodeError::Corrupt("trailing bytes after the last level"));
        }
        Ok(LearnedIndex {
            config,
            len,
            duplicates,
            levels,
        })
    }
}

/// Reads one level whose lines point into `below_len` positions.
fn read_level(reader: &mut Reader<'_>, below_len: usize) -> Result<Level, DecodeError> {
    let pieces = reader.count(below_len, "more pieces than keys below")?;
    if pieces == 0 {
        return Err(DecodeError::Corrupt("a level has no pieces"));
    }
    let radius = reader.count(below_len, "radius beyond the keys below")?;
    // Check the bytes are there before allocating for them.
    let needed = pieces * PIECE_LEN;
    if reader.bytes.len() < needed {
        return Err(DecodeError::Corrupt(
            "piece count beyond the end of the bytes",
        ));
    }
    let mut level = Level {
        keys: Vec::with_capacity(pieces),
        lines: Vec::with_capacity(pieces),
        radius,
    };
    for _ in 0..pieces {
        let key = reader.u64()?;
        let slope = f64::from_bits(reader.u64()?);
        let intercept = f64::from_bits(reader.u64()?);
        let end = reader.count(below_len, "piece end beyond the keys below")?;
        if level.keys.last().is_some_and(|&last| key <= last) {
            return Err(DecodeError::Corrupt(
                "piece keys are not strictly increasing",
            ));
        }
        if !slope.is_finite() || slope < 0.0 || !intercept.is_finite() {
            return Err(DecodeError::Corrupt(
                "a piece's line is not finite and rising",
            ));
        }
        if level.lines.last().is_some_and(|last| end < last.end) {
            return Err(DecodeError::Corrupt("piece ends are not increasing"));
        }
        level.keys.push(key);
        level.lines.push(Line {
            slope,
            intercept,
            end,
        });
    }
    if level.lines.last().map(|line| line.end) != Some(below_len) {
        return Err(DecodeError::Corrupt(
            "the last piece does not end at the last key",
        ));
    }
    Ok(level)
}

/// A cursor over little-endian fields.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let Some((head, rest)) = self.bytes.split_first_chunk::<N>() else {
            return Err(DecodeError::Corrupt(
                "a field runs past the end of the bytes",
            ));
        };
        self.bytes = rest;
        Ok(*head)
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        self.take().map(u16::from_le_bytes)
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        self.take().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        self.take().map(u64::from_le_bytes)
    }

    /// A `u64` count or position that must not exceed `max`.
    fn count(&mut self, max: usize, what: &'static str) -> Result<usize, DecodeError> {
        let value = self.u64()?;
        usize::try_from(value)
            .ok()
            .filter(|&v| v <= max)
            .ok_or(DecodeError::Corrupt(what))
    }
}
