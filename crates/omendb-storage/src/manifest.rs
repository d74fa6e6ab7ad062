//! The manifest: which segments make up each table, the catalog as of the
//! last flush, and where WAL replay starts. Replaced atomically: written
//! to `MANIFEST.tmp`, synced, renamed over `MANIFEST`, directory synced.
//! Only then may the WAL files it covers be deleted.
//!
//! ```text
//! file  := magic "OMMF" | version u16 | reserved u16 | body length u32 | CRC-32C(body) u32 | body
//! body  := varint next_segment_id | varint max_ts | varint wal_file
//!          | catalog | varint n { varint table, varint next_row_id }
//!          | varint n { segment }
//! segment := varint id | varint table | varint rows | varint min_ts | varint max_ts
//!            | bytes min_key | bytes max_key | varint file_bytes | varint crc
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;

use crate::catalog::{Catalog, TableId, decode_catalog, encode_catalog};
use crate::error::{Result, StorageError};
use crate::io::FileSystem;
use crate::segment::SegmentMeta;
use crate::types::row_codec::{Reader, put_varint};

const MAGIC: [u8; 4] = *b"OMMF";
/// 2: the catalog lists its schemas and tables their unique constraints.
const VERSION: u16 = 2;
const HEADER_LEN: usize = 16;
pub(crate) const MANIFEST: &str = "MANIFEST";
const MANIFEST_TMP: &str = "MANIFEST.tmp";

/// The durable description of the database outside the WAL.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Manifest {
    pub next_segment_id: u64,
    /// Every commit up to this timestamp is in the segments.
    pub max_ts: u64,
    /// WAL replay starts at the beginning of this WAL file.
    pub wal_file: u64,
    pub catalog: Catalog,
    pub next_row_ids: BTreeMap<TableId, i64>,
    /// Segments, newest first within each table.
    pub segments: Vec<SegmentMeta>,
}

impl Manifest {
    /// A database with nothing flushed yet.
    pub(crate) fn empty() -> Manifest {
        Manifest {
            next_segment_id: 1,
            wal_file: 1,
            ..Manifest::default()
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        put_varint(&mut body, self.next_segment_id);
        put_varint(&mut body, self.max_ts);
        put_varint(&mut body, self.wal_file);
        encode_catalog(&self.catalog, &mut body);
        put_varint(&mut body, self.next_row_ids.len() as u64);
        for (table, next) in &self.next_row_ids {
            put_varint(&mut body, *table);
            put_varint(&mut body, *next as u64);
        }
        put_varint(&mut body, self.segments.len() as u64);
        for s in &self.segments {
            for n in [s.id, s.table, s.rows, s.min_ts, s.max_ts] {
                put_varint(&mut body, n);
            }
            for key in [&s.min_key, &s.max_key] {
                put_varint(&mut body, key.len() as u64);
                body.extend_from_slice(key);
            }
            put_varint(&mut body, s.bytes);
            put_varint(&mut body, u64::from(s.crc));
        }
        let mut out = Vec::with_capacity(HEADER_LEN + body.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    fn decode(bytes: &[u8]) -> Result<Manifest, String> {
        let header = bytes.get(..HEADER_LEN).ok_or("shorter than its header")?;
        if header[..4] != MAGIC {
            return Err("not a manifest".into());
        }
        let version = u16::from_le_bytes([header[4], header[5]]);
        if version != VERSION {
            return Err(format!("unsupported manifest version {version}"));
        }
        if header[6..8] != [0, 0] {
            return Err("reserved header bytes are not zero".into());
        }
        let len = u32::from_le_bytes([header[8], header[9], header[10], header[11]]) as usize;
        let crc = u32::from_le_bytes([header[12], header[13], header[14], header[15]]);
        let body = &bytes[HEADER_LEN..];
        if body.len() != len {
            return Err(format!("body is {} bytes, header says {len}", body.len()));
        }
        if crc32c::crc32c(body) != crc {
            return Err("checksum mismatch".into());
        }
        let mut r = Reader::new(body);
        let mut manifest = Manifest {
            next_segment_id: r.varint()?,
            max_ts: r.varint()?,
            wal_file: r.varint()?,
            catalog: decode_catalog(&mut r)?,
            ..Manifest::default()
        };
        for _ in 0..r.count("row id counters")? {
            let table = r.varint()?;
            manifest.next_row_ids.insert(table, r.varint()? as i64);
        }
        for _ in 0..r.count("segments")? {
            let (id, table, rows, min_ts, max_ts) = (
                r.varint()?,
                r.varint()?,
                r.varint()?,
                r.varint()?,
                r.varint()?,
            );
            let min_key = Bytes::copy_from_slice(r.bytes()?);
            let max_key = Bytes::copy_from_slice(r.bytes()?);
            let file_bytes = r.varint()?;
            let crc = u32::try_from(r.varint()?).map_err(|_| "segment checksum over u32")?;
            if id >= manifest.next_segment_id || min_ts > max_ts || min_key > max_key {
                return Err(format!("segment {id} is inconsistent"));
            }
            manifest.segments.push(SegmentMeta {
                id,
                table,
                rows,
                min_ts,
                max_ts,
                min_key,
                max_key,
                bytes: file_bytes,
                crc,
            });
        }
        if !r.is_empty() {
            return Err("trailing bytes".into());
        }
        Ok(manifest)
    }

    /// Reads the manifest in `dir`, or `None` if there is none yet.
    pub(crate) fn load(fs: &dyn FileSystem, dir: &Path) -> Result<Option<Manifest>> {
        let path = dir.join(MANIFEST);
        let bytes = match fs.read_all(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StorageError::io(&path, e)),
        };
        Manifest::decode(&bytes)
            .map(Some)
            .map_err(|detail| StorageError::corruption("manifest", path, 0, detail))
    }

    /// Makes this the manifest of `dir`, atomically and durably.
    pub(crate) fn store(&self, fs: &dyn FileSystem, dir: &Path) -> Result<()> {
        let tmp = dir.join(MANIFEST_TMP);
        let on_tmp = |e| StorageError::io(&tmp, e);
        let mut file = fs.create(&tmp).map_err(on_tmp)?;
        file.write_all(&self.encode()).map_err(on_tmp)?;
        file.sync().map_err(on_tmp)?;
        let path = dir.join(MANIFEST);
        fs.rename(&tmp, &path)
            .map_err(|e| StorageError::io(&path, e))?;
        fs.sync_dir(dir).map_err(|e| StorageError::io(dir, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{CatalogOp, ColumnSpec, TableDef};
    use crate::io::fault::{CrashMode, Fault, FaultFs, Op};
    use crate::types::DataType;
    use std::path::PathBuf;

    fn sample() -> Manifest {
        let mut catalog = Catalog::default();
        let def =
            TableDef::new(3, "t", vec![ColumnSpec::new("a", DataType::Int64)], &["a"]).unwrap();
        catalog.apply(&CatalogOp::CreateTable(def)).unwrap();
        let segment = SegmentMeta {
            id: 4,
            table: 3,
            rows: 10,
            min_ts: 2,
            max_ts: 9,
            min_key: Bytes::from_static(b"a"),
            max_key: Bytes::from_static(b"z"),
            bytes: 1234,
            crc: 0xdead_beef,
        };
        Manifest {
            next_segment_id: 5,
            max_ts: 9,
            wal_file: 3,
            catalog,
            next_row_ids: BTreeMap::from([(3, 77)]),
            segments: vec![segment],
        }
    }

    #[test]
    fn manifests_round_trip_and_damage_is_detected() {
        let bytes = sample().encode();
        assert_eq!(Manifest::decode(&bytes).unwrap(), sample());
        for len in 0..bytes.len() {
            assert!(
                Manifest::decode(&bytes[..len]).is_err(),
                "truncated to {len}"
            );
        }
        for i in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[i] ^= 0x20;
            assert!(Manifest::decode(&damaged).is_err(), "byte {i} flipped");
        }
    }

    #[test]
    fn a_crash_leaves_the_old_or_the_new_manifest_never_a_mix() {
        let fs = FaultFs::new();
        let dir = PathBuf::from("/db");
        fs.create_dir_all(&dir).unwrap();
        let old = Manifest::empty();
        old.store(&fs, &dir).unwrap();
        // Fail the rename: the old manifest stays.
        fs.inject(Fault {
            times: Some(1),
            ..Fault::new(Op::Rename, "MANIFEST", std::io::ErrorKind::Other)
        });
        assert!(sample().store(&fs, &dir).is_err());
        assert_eq!(Manifest::load(&fs, &dir).unwrap(), Some(old.clone()));
        // Crash before the directory sync: still the old one on disk.
        fs.inject(Fault {
            times: Some(1),
            ..Fault::new(Op::SyncDir, "db", std::io::ErrorKind::Other)
        });
        assert!(sample().store(&fs, &dir).is_err());
        let crashed = fs.crash(CrashMode::DropUnsynced);
        assert_eq!(Manifest::load(&crashed, &dir).unwrap(), Some(old));
        sample().store(&fs, &dir).unwrap();
        assert_eq!(
            Manifest::load(&fs.crash(CrashMode::DropUnsynced), &dir).unwrap(),
            Some(sample())
        );
    }
}
