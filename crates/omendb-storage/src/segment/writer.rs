//! Writing a segment: versions in `(key, newest first)` order in, one
//! Parquet file out, with the learned index and the key space in its
//! footer metadata (both need every key, so they are written last) and its
//! CRC-32C computed on the way.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, BinaryBuilder, BooleanBuilder, UInt64Builder};
use arrow::datatypes::{DataType as ArrowType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use base64::Engine as _;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use super::key_space::KeySpace;
use super::{
    BLOCK_ROWS, DELETED_COLUMN, DICTIONARY_PAGE_BYTES, KEY_COLUMN, ROW_GROUP_ROWS, SYSTEM_COLUMNS,
    SegmentMeta, TS_COLUMN, column_name, segment_path,
};
use crate::catalog::TableDef;
use crate::error::{Result, StorageError};
use crate::index::learned::LearnedIndex;
use crate::io::{FileSystem, WriteFile};
use crate::types::{ColumnBuilder, Value};

/// Footer metadata keys.
pub(crate) const META_VERSION: &str = "omendb.segment_version";
pub(crate) const META_TABLE: &str = "omendb.table";
pub(crate) const META_KEY_SPACE: &str = "omendb.key_space";
pub(crate) const META_INDEX: &str = "omendb.learned_index";

/// Rows buffered before they go to the Parquet writer.
const BATCH_ROWS: usize = 8192;

/// The Arrow schema of `def`'s segments.
pub(crate) fn segment_schema(def: &TableDef) -> SchemaRef {
    let mut fields = system_fields().to_vec();
    // Tombstones leave every table column empty, so all are nullable here.
    fields.extend(
        def.columns
            .iter()
            .map(|c| Field::new(column_name(c.id), c.data_type.arrow_type(), true)),
    );
    Arc::new(Schema::new(fields))
}

/// The fields of the system columns, which every segment starts with.
pub(crate) fn system_fields() -> [Field; SYSTEM_COLUMNS] {
    [
        Field::new(KEY_COLUMN, ArrowType::Binary, false),
        Field::new(TS_COLUMN, ArrowType::UInt64, false),
        Field::new(DELETED_COLUMN, ArrowType::Boolean, false),
    ]
}

/// Counts bytes and their CRC-32C on the way to the file.
struct Sink {
    file: Box<dyn WriteFile>,
    crc: u32,
    bytes: u64,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write_all(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, buf);
        self.bytes += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes one segment; see the module docs.
pub(crate) struct SegmentWriter {
    def: Arc<TableDef>,
    id: u64,
    path: PathBuf,
    schema: SchemaRef,
    writer: ArrowWriter<BufWriter<Sink>>,
    keys: Vec<Bytes>,
    key_builder: BinaryBuilder,
    ts_builder: UInt64Builder,
    deleted_builder: BooleanBuilder,
    columns: Vec<ColumnBuilder>,
    buffered: usize,
    min_ts: u64,
    max_ts: u64,
}

impl std::fmt::Debug for SegmentWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentWriter")
            .field("path", &self.path)
            .field("rows", &self.keys.len())
            .finish()
    }
}

impl SegmentWriter {
    /// Starts segment `id` of table `def` in `dir`.
    pub(crate) fn create(
        fs: &dyn FileSystem,
        dir: &Path,
        id: u64,
        def: Arc<TableDef>,
    ) -> Result<SegmentWriter> {
        let path = segment_path(dir, id);
        let file = fs.create(&path).map_err(|e| StorageError::io(&path, e))?;
        let schema = segment_schema(&def);
        let ts = ColumnPath::from(TS_COLUMN);
        // Pages of at most a block, located by the offset index (always
        // written), let a point read decode one page per column. A small
        // dictionary page keeps that cheap too: every read of a column
        // chunk decodes its dictionary first. Keys are unique, so never
        // dictionary-encoded.
        let props = WriterProperties::builder()
            .set_compression(Compression::LZ4_RAW)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_data_page_row_count_limit(BLOCK_ROWS)
            .set_dictionary_page_size_limit(DICTIONARY_PAGE_BYTES)
            .set_column_dictionary_enabled(ColumnPath::from(KEY_COLUMN), false)
            .set_column_dictionary_enabled(ts.clone(), false)
            .set_column_encoding(ts, Encoding::DELTA_BINARY_PACKED);
        let sink = BufWriter::with_capacity(
            1 << 20,
            Sink {
                file,
                crc: 0,
                bytes: 0,
            },
        );
        let writer = ArrowWriter::try_new(sink, schema.clone(), Some(props.build()))
            .map_err(|e| StorageError::internal(format!("creating {}: {e}", path.display())))?;
        let columns = def
            .columns
            .iter()
            .map(|c| ColumnBuilder::new(&c.data_type, BATCH_ROWS))
            .collect();
        Ok(SegmentWriter {
            def,
            id,
            path,
            schema,
            writer,
            keys: Vec::new(),
            key_builder: BinaryBuilder::new(),
            ts_builder: UInt64Builder::new(),
            deleted_builder: BooleanBuilder::new(),
            columns,
            buffered: 0,
            min_ts: u64::MAX,
            max_ts: 0,
        })
    }

    /// Appends one version. Versions must come in key order, newest first
    /// within a key. `values` follow the table's columns; `None` is a delete.
    pub(crate) fn push(&mut self, key: Bytes, ts: u64, values: Option<&[Value]>) -> Result<()> {
        if self.keys.last().is_some_and(|last| *last > key) {
            return Err(StorageError::internal(format!(
                "segment {} got keys out of order",
                self.id
            )));
        }
        self.key_builder.append_value(&key);
        self.ts_builder.append_value(ts);
        self.deleted_builder.append_value(values.is_none());
        match values {
            Some(values) => {
                for (builder, value) in self.columns.iter_mut().zip(values) {
                    builder.append(value)?;
                }
            }
            None => {
                for builder in &mut self.columns {
                    builder.append(&Value::Null)?;
                }
            }
        }
        self.keys.push(key);
        self.min_ts = self.min_ts.min(ts);
        self.max_ts = self.max_ts.max(ts);
        self.buffered += 1;
        if self.buffered == BATCH_ROWS {
            self.write_batch()?;
        }
        Ok(())
    }

    /// Whether no version was pushed.
    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The file being written.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn write_batch(&mut self) -> Result<()> {
        if self.buffered == 0 {
            return Ok(());
        }
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        columns.push(Arc::new(self.key_builder.finish()));
        columns.push(Arc::new(self.ts_builder.finish()));
        columns.push(Arc::new(self.deleted_builder.finish()));
        columns.extend(self.columns.iter_mut().map(ColumnBuilder::finish));
        let batch = RecordBatch::try_new(self.schema.clone(), columns).map_err(|e| {
            StorageError::internal(format!("segment batch for {}: {e}", self.path.display()))
        })?;
        self.writer.write(&batch).map_err(|e| self.write_error(e))?;
        self.buffered = 0;
        Ok(())
    }

    fn write_error(&self, error: parquet::errors::ParquetError) -> StorageError {
        match error {
            parquet::errors::ParquetError::External(e) => match e.downcast::<std::io::Error>() {
                Ok(io) => StorageError::io(&self.path, *io),
                Err(e) => StorageError::internal(format!("writing {}: {e}", self.path.display())),
            },
            other => StorageError::internal(format!("writing {}: {other}", self.path.display())),
        }
    }

    /// Writes the footer (learned index included), syncs the file and
    /// returns what the manifest needs. The directory entry is the
    /// caller's to sync.
    pub(crate) fn finish(mut self) -> Result<SegmentMeta> {
        self.write_batch()?;
        let codec = self.def.key_codec().clone();
        let space = KeySpace::plan(&codec, self.keys.iter().map(|k| k.as_ref()));
        let index_keys: Vec<u64> = self.keys.iter().map(|k| space.index_key(k).key).collect();
        let index = LearnedIndex::build(&index_keys).map_err(|e| {
            StorageError::internal(format!("learned index of {}: {e}", self.path.display()))
        })?;
        let encoded = base64::engine::general_purpose::STANDARD.encode(index.to_bytes());
        for (key, value) in [
            (META_VERSION, "1".to_string()),
            (META_TABLE, self.def.id.to_string()),
            (META_KEY_SPACE, space.to_text()),
            (META_INDEX, encoded),
        ] {
            self.writer
                .append_key_value_metadata(KeyValue::new(key.into(), value));
        }
        let path = self.path.clone();
        let sink = self
            .writer
            .into_inner()
            .map_err(|e| StorageError::internal(format!("closing {}: {e}", path.display())))?;
        let mut sink = sink
            .into_inner()
            .map_err(|e| StorageError::io(&path, e.into_error()))?;
        sink.file.sync().map_err(|e| StorageError::io(&path, e))?;
        let (Some(min_key), Some(max_key)) = (self.keys.first(), self.keys.last()) else {
            return Err(StorageError::internal(format!(
                "segment {} is empty",
                self.id
            )));
        };
        Ok(SegmentMeta {
            id: self.id,
            table: self.def.id,
            rows: self.keys.len() as u64,
            min_ts: self.min_ts,
            max_ts: self.max_ts,
            min_key: min_key.clone(),
            max_key: max_key.clone(),
            bytes: sink.bytes,
            crc: sink.crc,
        })
    }
}
