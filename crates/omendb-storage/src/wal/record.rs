//! What a WAL record says: the commit timestamp of one transaction and its
//! operations, in the order the transaction made them.
//!
//! ```text
//! payload := kind:u8 (1 = commit) | commit_ts:u64 | varint(op count) | op*
//! op      := 1 catalog-op                       (catalog/codec.rs)
//!          | 2 varint(table) bytes(key) bytes(row)   put (insert or update)
//!          | 3 varint(table) bytes(key)              delete
//!          | 4 varint(table) varint(segment)         drop a whole segment
//! bytes   := varint(len) len bytes
//! ```

use bytes::Bytes;

use crate::catalog::{CatalogOp, TableId, decode_op, encode_op};
use crate::types::row_codec::{Reader, put_varint};

const COMMIT: u8 = 1;
const CATALOG: u8 = 1;
const PUT: u8 = 2;
const DELETE: u8 = 3;
const DROP_SEGMENT: u8 = 4;

/// One operation of a committed transaction.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum WalOp {
    Catalog(CatalogOp),
    /// Insert or replace the row at `key` (encoded key, encoded row).
    Put {
        table: TableId,
        key: Bytes,
        row: Bytes,
    },
    Delete {
        table: TableId,
        key: Bytes,
    },
    /// Every row of the segment is deleted (time-series retention).
    DropSegment {
        table: TableId,
        segment: u64,
    },
}

/// A committed transaction as the WAL holds it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct CommitRecord {
    pub ts: u64,
    pub ops: Vec<WalOp>,
}

/// Builds a commit payload without copying rows into intermediate values.
#[derive(Debug)]
pub(crate) struct RecordBuilder {
    out: Vec<u8>,
    count: u64,
}

impl RecordBuilder {
    pub(crate) fn new(ts: u64) -> RecordBuilder {
        let mut out = Vec::with_capacity(64);
        out.push(COMMIT);
        out.extend_from_slice(&ts.to_le_bytes());
        RecordBuilder { out, count: 0 }
    }

    pub(crate) fn catalog(&mut self, op: &CatalogOp) {
        self.out.push(CATALOG);
        encode_op(op, &mut self.out);
        self.count += 1;
    }

    pub(crate) fn put(&mut self, table: TableId, key: &[u8], row: &[u8]) {
        self.out.push(PUT);
        put_varint(&mut self.out, table);
        put_bytes(&mut self.out, key);
        put_bytes(&mut self.out, row);
        self.count += 1;
    }

    pub(crate) fn drop_segment(&mut self, table: TableId, segment: u64) {
        self.out.push(DROP_SEGMENT);
        put_varint(&mut self.out, table);
        put_varint(&mut self.out, segment);
        self.count += 1;
    }

    pub(crate) fn delete(&mut self, table: TableId, key: &[u8]) {
        self.out.push(DELETE);
        put_varint(&mut self.out, table);
        put_bytes(&mut self.out, key);
        self.count += 1;
    }

    /// The finished payload: header, then the op count, then the ops.
    pub(crate) fn finish(self) -> Vec<u8> {
        let mut payload = Vec::with_capacity(self.out.len() + 10);
        payload.extend_from_slice(&self.out[..9]);
        put_varint(&mut payload, self.count);
        payload.extend_from_slice(&self.out[9..]);
        payload
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Reads a commit payload. Malformed payloads are an error.
pub(crate) fn decode(payload: &[u8]) -> Result<CommitRecord, String> {
    let mut reader = Reader::new(payload);
    let kind = reader.u8()?;
    if kind != COMMIT {
        return Err(format!("unknown record kind {kind}"));
    }
    let ts = reader.u64()?;
    let count = reader.count("operations")?;
    let mut ops = Vec::with_capacity(count);
    for _ in 0..count {
        let op = match reader.u8()? {
            CATALOG => WalOp::Catalog(decode_op(&mut reader)?),
            PUT => WalOp::Put {
                table: reader.varint()?,
                key: Bytes::copy_from_slice(reader.bytes()?),
                row: Bytes::copy_from_slice(reader.bytes()?),
            },
            DELETE => WalOp::Delete {
                table: reader.varint()?,
                key: Bytes::copy_from_slice(reader.bytes()?),
            },
            DROP_SEGMENT => WalOp::DropSegment {
                table: reader.varint()?,
                segment: reader.varint()?,
            },
            other => return Err(format!("unknown operation {other}")),
        };
        ops.push(op);
    }
    if !reader.is_empty() {
        return Err("trailing bytes after the last operation".into());
    }
    Ok(CommitRecord { ts, ops })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{ColumnSpec, TableDef};
    use crate::types::DataType;

    #[test]
    fn records_round_trip_with_every_operation() {
        let def =
            TableDef::new(4, "t", vec![ColumnSpec::new("a", DataType::Int64)], &["a"]).unwrap();
        let mut builder = RecordBuilder::new(99);
        builder.catalog(&CatalogOp::CreateTable(def.clone()));
        builder.put(4, b"k1", b"row");
        builder.delete(4, b"k0");
        builder.drop_segment(4, 12);
        let payload = builder.finish();
        let record = decode(&payload).unwrap();
        assert_eq!(
            record,
            CommitRecord {
                ts: 99,
                ops: vec![
                    WalOp::Catalog(CatalogOp::CreateTable(def)),
                    WalOp::Put {
                        table: 4,
                        key: Bytes::from_static(b"k1"),
                        row: Bytes::from_static(b"row")
                    },
                    WalOp::Delete {
                        table: 4,
                        key: Bytes::from_static(b"k0")
                    },
                    WalOp::DropSegment {
                        table: 4,
                        segment: 12
                    },
                ],
            }
        );
        for len in 0..payload.len() {
            assert!(decode(&payload[..len]).is_err(), "truncated to {len}");
        }
    }
}
