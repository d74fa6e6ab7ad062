//! Writing a segment: versions in `(key, newest first)` order in, one
//! Parquet file out, with the learned index and the key space in its
//! footer metadata (both need every key, so they are written last) and its
//! CRC-32C computed on the way.

use std::io::BufWriter;
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
use super::row_file::{RowFileWriter, row_file_path};
use super::{
    BLOCK_ROWS, DELETED_COLUMN, DICTIONARY_PAGE_BYTES, KEY_COLUMN, ROW_GROUP_ROWS, SYSTEM_COLUMNS,
    SegmentMeta, TS_COLUMN, column_name, segment_path,
};
use crate::catalog::TableDef;
use crate::error::{Result, StorageError};
use crate::index::learned::LearnedIndex;
use crate::io::{ChecksumWriter, FileSystem};
use crate::types::{ColumnBuilder, DataType, Value, encode_row};

/// Footer metadata keys.
pub(crate) const META_VERSION: &str = "omendb.segment_version";
pub(crate) const META_TABLE: &str = "omendb.table";
pub(crate) const META_KEY_SPACE: &str = "omendb.key_space";
pub(crate) const META_INDEX: &str = "omendb.learned_index";
pub(crate) const META_ROW_FILE: &str = "omendb.row_file";

/// The segment format version the footer carries.
pub(crate) const FORMAT_VERSION: &str = "2";

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

/// How `def`'s segments are encoded. Pages hold at most a block and the
/// offset index (always written) locates them, so a point read decodes one
/// page per column. Fixed-width columns are stored plain and uncompressed:
/// decoding such a page is a copy, which keeps a block-cache miss cheap.
/// Variable-width columns are LZ4-compressed, with a dictionary page small
/// enough to decode on every read of the column chunk. The system columns
/// are never dictionary-encoded (keys are unique) and never compressed.
fn writer_properties(def: &TableDef) -> WriterProperties {
    let mut props = WriterProperties::builder()
        .set_compression(Compression::UNCOMPRESSED)
        .set_dictionary_enabled(false)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_data_page_row_count_limit(BLOCK_ROWS)
        .set_dictionary_page_size_limit(DICTIONARY_PAGE_BYTES)
        .set_column_encoding(ColumnPath::from(TS_COLUMN), Encoding::DELTA_BINARY_PACKED);
    for column in &def.columns {
        if !is_fixed_width(&column.data_type) {
            let path = ColumnPath::from(column_name(column.id));
            props = props
                .set_column_compression(path.clone(), Compression::LZ4_RAW)
                .set_column_dictionary_enabled(path, true);
        }
    }
    props.build()
}

/// Whether values of `ty` have one width (their pages need no decoding).
/// Vectors count: they are lists of a fixed length of floats, which do not
/// compress.
fn is_fixed_width(ty: &DataType) -> bool {
    !matches!(
        ty,
        DataType::Text { .. } | DataType::Char { .. } | DataType::Bytea | DataType::Jsonb
    )
}

/// Writes one segment; see the module docs.
pub(crate) struct SegmentWriter {
    def: Arc<TableDef>,
    id: u64,
    path: PathBuf,
    schema: SchemaRef,
    writer: ArrowWriter<BufWriter<ChecksumWriter>>,
    row_file: RowFileWriter,
    /// Scratch space for encoding one row.
    row: Vec<u8>,
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
        let props = writer_properties(&def);
        let sink = BufWriter::with_capacity(1 << 20, ChecksumWriter::new(file));
        let writer = ArrowWriter::try_new(sink, schema.clone(), Some(props))
            .map_err(|e| StorageError::internal(format!("creating {}: {e}", path.display())))?;
        let columns = def
            .columns
            .iter()
            .map(|c| ColumnBuilder::new(&c.data_type, BATCH_ROWS))
            .collect();
        let row_file = RowFileWriter::create(fs, row_file_path(dir, id))?;
        Ok(SegmentWriter {
            def,
            id,
            path,
            schema,
            writer,
            row_file,
            row: Vec::new(),
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
        self.row.clear();
        match values {
            Some(values) => {
                for (builder, value) in self.columns.iter_mut().zip(values) {
                    builder.append(value)?;
                }
                let ids = self.def.columns.iter().map(|c| c.id);
                encode_row(ids.zip(values), &mut self.row);
            }
            None => {
                for builder in &mut self.columns {
                    builder.append(&Value::Null)?;
                }
            }
        }
        self.row_file.push(&self.row)?;
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

    /// Abandons the segment, removing what was written of its files.
    pub(crate) fn discard(self, fs: &dyn FileSystem) -> Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new(""));
        let paths = [self.path.clone(), row_file_path(dir, self.id)];
        drop(self);
        for path in paths {
            fs.remove(&path).map_err(|e| StorageError::io(&path, e))?;
        }
        Ok(())
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
        let rows = self.row_file.finish()?;
        for (key, value) in [
            (META_VERSION, FORMAT_VERSION.to_string()),
            (META_ROW_FILE, format!("{} {}", rows.bytes, rows.crc)),
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
