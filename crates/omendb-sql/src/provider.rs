//! Storage tables as DataFusion sees them: a schema provider listing the
//! session's tables and a table provider whose scans read the session's
//! transaction as the running statement saw it (its snapshot and writes),
//! whenever DataFusion runs them. The transaction itself lives in a slot
//! the engine writes through.

use std::fmt;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning,
    PlanProperties, ReplaceChildrenOptions,
};
use omendb_storage::{
    Catalog, KEY_COLUMN, KeyRange, ScanRequest, TableDef, Transaction, TxnReader,
};

use crate::error::{SqlError, external};
use crate::pushdown::{self, ColumnBounds};
use crate::skip_scan::SkipScan;

/// The transaction a session's statements run in, shared with the table
/// providers of its DataFusion context. Empty between statements in
/// autocommit mode.
#[derive(Debug, Default)]
pub(crate) struct TxnSlot(Mutex<Option<Transaction>>);

impl TxnSlot {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Option<Transaction>> {
        // A panic while the slot is held leaves at worst a transaction that
        // the session rolls back; the slot itself stays valid.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the current transaction.
    pub(crate) fn with<T>(
        &self,
        f: impl FnOnce(&mut Transaction) -> Result<T, SqlError>,
    ) -> Result<T, SqlError> {
        match self.lock().as_mut() {
            Some(txn) => f(txn),
            None => Err(SqlError::internal("no transaction for the statement")),
        }
    }
}

/// The view of the transaction the running statement reads: set when the
/// statement starts, so its scans see the transaction as it stood then,
/// whenever DataFusion runs them.
#[derive(Debug, Default)]
pub(crate) struct ReaderSlot(Mutex<Option<TxnReader>>);

impl ReaderSlot {
    pub(crate) fn set(&self, reader: Option<TxnReader>) {
        // Only assigns; a poisoned slot still holds a valid value.
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = reader;
    }

    pub(crate) fn get(&self) -> Option<TxnReader> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The schema whose tables carry their `_key` column.
pub(crate) const KEYS_SCHEMA: &str = "_omendb_keys";

impl StorageTable {
    /// A provider of `def` read through `reader`; with `with_keys`, the
    /// table has one more column, `_key`: the encoded primary key (or hidden
    /// row id) a write addresses.
    pub(crate) fn new(
        def: Arc<TableDef>,
        reader: Arc<ReaderSlot>,
        with_keys: bool,
    ) -> StorageTable {
        let mut schema = table_schema(&def);
        if with_keys {
            let mut fields: Vec<Field> =
                schema.fields().iter().map(|f| f.as_ref().clone()).collect();
            fields.push(Field::new(KEY_COLUMN, DataType::Binary, false));
            schema = Arc::new(Schema::new(fields));
        }
        StorageTable {
            schema,
            def,
            reader,
        }
    }
}

/// The Arrow schema of a table's rows.
pub(crate) fn table_schema(def: &TableDef) -> SchemaRef {
    let fields: Vec<Field> = def
        .columns
        .iter()
        .map(|c| Field::new(&c.name, c.data_type.arrow_type(), c.nullable))
        .collect();
    Arc::new(Schema::new(fields))
}

/// One storage table, as it was when a statement was planned. A plan may
/// outlive its statement (prepared statements keep theirs), so scans read
/// the transaction of the statement running them, from the slot.
#[derive(Debug)]
pub(crate) struct StorageTable {
    def: Arc<TableDef>,
    schema: SchemaRef,
    reader: Arc<ReaderSlot>,
}

impl StorageTable {
    /// The table's definition when the plan was made.
    pub(crate) fn def(&self) -> &Arc<TableDef> {
        &self.def
    }

    /// The running statement's view of the transaction; an error if the
    /// table has changed since planning (the plan cache re-plans first).
    fn current_reader(&self) -> DfResult<TxnReader> {
        let reader = self
            .reader
            .get()
            .ok_or_else(|| DataFusionError::Internal("table scanned outside a statement".into()))?;
        if !unchanged(reader.catalog(), &self.def) {
            return Err(DataFusionError::Internal(format!(
                "table \"{}\" changed since the statement was planned",
                self.def.name
            )));
        }
        Ok(reader)
    }
}

/// Full scans of tables whose segments hold at least this many versions
/// are cut into one part per core.
const PARALLEL_SCAN_ROWS: u64 = 100_000;

/// The smallest and largest value of an integer first key column over the
/// table's segments, and the versions they hold (see
/// `TxnReader::segment_key_span`); `None` for other key types.
fn integer_key_span(
    reader: &TxnReader,
    def: &TableDef,
) -> omendb_storage::Result<Option<(i128, i128, u64)>> {
    let Some((low, high, rows)) = reader.segment_key_span(&def.name)? else {
        return Ok(None);
    };
    Ok(integer(&low)
        .zip(integer(&high))
        .map(|(low, high)| (low, high, rows)))
}

/// An integer value, widened.
fn integer(value: &omendb_storage::Value) -> Option<i128> {
    use omendb_storage::Value as V;
    match value {
        V::Int16(v) => Some(i128::from(*v)),
        V::Int32(v) => Some(i128::from(*v)),
        V::Int64(v) => Some(i128::from(*v)),
        _ => None,
    }
}

/// Rows a plain scan reads in the time a skip scan's seek takes (measured
/// at 10M rows before segments were memory-mapped: a seek ~35 us, a plain
/// scan ~90M rows/s over two cores; both are faster now, not re-tuned).
const SEEK_ROWS: u64 = 2_000;

/// Whether a plain scan of what zone maps leave costs less than a skip
/// scan's two seeks per value of the first key column (an integer: its
/// span bounds the values). A time range over time-cut segments leaves
/// the segments of that time.
fn plain_scan_is_cheaper(
    reader: &TxnReader,
    def: &TableDef,
    request: &ScanRequest,
) -> omendb_storage::Result<bool> {
    let Some((mut low, mut high, _)) = integer_key_span(reader, def)? else {
        return Ok(false);
    };
    // Values outside the scan's range of the first column are not sought.
    // (value, whether the bound excludes that value itself)
    let first = |bound: &Bound<Vec<omendb_storage::Value>>| {
        let (values, excluded) = match bound {
            Bound::Included(v) => (v, false),
            Bound::Excluded(v) => (v, v.len() == 1),
            Bound::Unbounded => return None,
        };
        Some((integer(values.first()?)?, excluded))
    };
    if let Some((start, excluded)) = first(&request.range.start) {
        low = low.max(start + i128::from(excluded));
    }
    if let Some((end, excluded)) = first(&request.range.end) {
        high = high.min(end - i128::from(excluded));
    }
    if high < low {
        return Ok(true);
    }
    let values = u64::try_from(high - low + 1).unwrap_or(0);
    let rows = reader.scan_batches(&def.name, request)?.segment_rows();
    Ok(rows < values.saturating_mul(2 * SEEK_ROWS))
}

/// Key ranges that cut a full scan of `def` into `parts` parts of similar
/// size, by the span of the first key column over the table's segments
/// (an integer column; cut evenly by value). Together they hold every key,
/// whatever the span says. Empty (one part) for small tables, other key
/// types, or one part.
fn split(
    reader: &TxnReader,
    def: &TableDef,
    parts: usize,
) -> omendb_storage::Result<Vec<KeyRange>> {
    use omendb_storage::{DataType as T, Value as V};
    let Some(&first) = def.key_positions().first() else {
        return Ok(Vec::new());
    };
    let ty = &def.columns[first].data_type;
    if parts < 2 {
        return Ok(Vec::new());
    }
    let Some((low, high, rows)) = integer_key_span(reader, def)? else {
        return Ok(Vec::new());
    };
    if rows < PARALLEL_SCAN_ROWS || high - low < parts as i128 {
        return Ok(Vec::new());
    }
    // Cuts lie strictly between `low` and `high`, so they fit the type.
    let value = |n: i128| match ty {
        T::Int16 => V::Int16(n as i16),
        T::Int32 => V::Int32(n as i32),
        _ => V::Int64(n as i64),
    };
    let mut ranges = Vec::with_capacity(parts);
    let mut start = Bound::Unbounded;
    for i in 1..parts {
        let cut = vec![value(low + (high - low) * i as i128 / parts as i128)];
        ranges.push(KeyRange {
            start,
            end: Bound::Excluded(cut.clone()),
        });
        start = Bound::Included(cut);
    }
    ranges.push(KeyRange {
        start,
        end: Bound::Unbounded,
    });
    Ok(ranges)
}

/// Whether `catalog` still has the table `def` as it was (same id, name,
/// columns and key).
pub(crate) fn unchanged(catalog: &Catalog, def: &Arc<TableDef>) -> bool {
    catalog
        .table_by_id(def.id)
        .is_some_and(|now| Arc::ptr_eq(now, def) || **now == **def)
}

#[async_trait]
impl TableProvider for StorageTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // Key predicates narrow the scan to a key range; the filter still
        // runs on what the range returns.
        Ok(filters
            .iter()
            .map(|f| {
                if pushdown::is_usable(&self.def, f) {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let positions: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let schema = Arc::new(self.schema.project(&positions)?);
        // Storage returns the table columns asked for, then `_key` last.
        let key_at = self.def.columns.len();
        let columns: Vec<String> = positions
            .iter()
            .filter(|&&i| i != key_at)
            .map(|&i| self.def.columns[i].name.clone())
            .collect();
        let with_keys = positions.contains(&key_at);
        let order = with_keys.then(|| {
            let mut next = 0;
            positions
                .iter()
                .map(|&i| {
                    if i == key_at {
                        columns.len()
                    } else {
                        next += 1;
                        next - 1
                    }
                })
                .collect()
        });
        let request = ScanRequest {
            range: pushdown::key_range(&self.def, filters),
            predicates: pushdown::predicates(&self.def, filters),
            columns: Some(columns),
            with_keys,
            // Rows wanted at most (no filter above needs more).
            limit,
            ..ScanRequest::default()
        };
        let reader = self.current_reader()?;
        let mut skip = pushdown::skip_bounds(&self.def, filters);
        if skip.is_some()
            && limit.is_none()
            && plain_scan_is_cheaper(&reader, &self.def, &request).map_err(external)?
        {
            skip = None;
        }
        // A full scan or a skip scan of a large table runs in parts, each
        // over a range of the first key column.
        let parts = if limit.is_none() && request.range == KeyRange::all() {
            split(&reader, &self.def, state.config().target_partitions()).map_err(external)?
        } else {
            Vec::new()
        };
        Ok(Arc::new(StorageScanExec::new(
            self.def.clone(),
            schema,
            request,
            skip,
            parts,
            order,
            reader,
        )))
    }
}

/// Reads a table through the session's transaction.
#[derive(Debug)]
pub(crate) struct StorageScanExec {
    def: Arc<TableDef>,
    request: ScanRequest,
    /// Bounds on the second key column for a skip scan.
    skip: Option<ColumnBounds>,
    /// The key ranges of the scan's partitions, when it is cut into
    /// several (a full scan of a large table); else one partition.
    parts: Vec<KeyRange>,
    /// Where each output column is in the storage batches, when not in
    /// order (`_key` comes last from storage).
    order: Option<Vec<usize>>,
    /// Rows and time, for EXPLAIN ANALYZE.
    metrics: ExecutionPlanMetricsSet,
    /// The transaction as the statement saw it: the scan may run late, or
    /// more than once (a recursive CTE), and always reads the same.
    reader: TxnReader,
    properties: Arc<PlanProperties>,
}

impl StorageScanExec {
    fn new(
        def: Arc<TableDef>,
        schema: SchemaRef,
        request: ScanRequest,
        skip: Option<ColumnBounds>,
        parts: Vec<KeyRange>,
        order: Option<Vec<usize>>,
        reader: TxnReader,
    ) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(parts.len().max(1)),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        StorageScanExec {
            def,
            request,
            skip,
            parts,
            order,
            metrics: ExecutionPlanMetricsSet::new(),
            reader,
            properties: Arc::new(properties),
        }
    }
}

impl DisplayAs for StorageScanExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        // A bounded key range is the learned index's work: each segment's
        // index finds where the range starts.
        let range = &self.request.range;
        let name = match (&self.skip, *range == KeyRange::all()) {
            (Some(_), _) => "LearnedIndexSkipScan",
            (None, true) => "StorageScan",
            (None, false) => "LearnedIndexScan",
        };
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => {
                write!(f, "{name}: table={}", self.def.name)?;
                if *range != KeyRange::all() {
                    write!(f, ", range={}", range_text(range))?;
                }
                if let Some(skip) = &self.skip {
                    write!(f, ", {}", skip_text(&self.def, skip))?;
                }
                if self.parts.len() > 1 {
                    write!(f, ", partitions={}", self.parts.len())?;
                }
                if !self.request.predicates.is_empty() {
                    let pruning: Vec<String> = self
                        .request
                        .predicates
                        .iter()
                        .map(|p| format!("{} {:?} {}", p.column, p.op, value_text(&p.value)))
                        .collect();
                    write!(f, ", zone_maps=[{}]", pruning.join(", "))?;
                }
                if let Some(limit) = self.request.limit {
                    write!(f, ", limit={limit}")?;
                }
                Ok(())
            }
            DisplayFormatType::TreeRender => write!(f, "table={}", self.def.name),
        }
    }
}

/// A storage scan that counts its time and rows for EXPLAIN ANALYZE.
struct Timed<I> {
    inner: I,
    metrics: BaselineMetrics,
}

impl<I: Iterator<Item = omendb_storage::Result<RecordBatch>>> Iterator for Timed<I> {
    type Item = omendb_storage::Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        let timer = self.metrics.elapsed_compute().timer();
        let next = self.inner.next();
        timer.done();
        match &next {
            Some(Ok(batch)) => self.metrics.record_output(batch.num_rows()),
            Some(Err(_)) => {}
            None => self.metrics.done(),
        }
        next
    }
}

/// A skip scan's ranges as `each device: ts [100..(300`: every value of
/// the first key column, and this range of the second (brackets include,
/// parentheses exclude).
fn skip_text(def: &TableDef, skip: &ColumnBounds) -> String {
    let keys = def.key_positions();
    let lower = match &skip.lower {
        Some((v, true)) => format!("[{}", value_text(v)),
        Some((v, false)) => format!("({}", value_text(v)),
        None => String::new(),
    };
    let upper = match &skip.upper {
        Some((v, true)) => format!("{}]", value_text(v)),
        Some((v, false)) => format!("{})", value_text(v)),
        None => String::new(),
    };
    format!(
        "each {}: {} {lower}..{upper}",
        def.columns[keys[0]].name, def.columns[keys[1]].name
    )
}

/// A key range as `[5, 10] .. (5, 20)`: brackets include, parentheses
/// exclude, `..` alone is unbounded.
pub(crate) fn range_text(range: &KeyRange) -> String {
    let values =
        |v: &Vec<omendb_storage::Value>| v.iter().map(value_text).collect::<Vec<_>>().join(", ");
    let bound = |b: &Bound<Vec<omendb_storage::Value>>| match b {
        Bound::Included(v) => format!("[{}]", values(v)),
        Bound::Excluded(v) => format!("({})", values(v)),
        Bound::Unbounded => String::new(),
    };
    format!("{}..{}", bound(&range.start), bound(&range.end))
}

fn value_text(value: &omendb_storage::Value) -> String {
    use omendb_storage::Value as V;
    match value {
        V::Int16(v) => v.to_string(),
        V::Int32(v) => v.to_string(),
        V::Int64(v) => v.to_string(),
        V::Text(v) => format!("'{v}'"),
        V::Float64(v) => v.to_string(),
        other => format!("{other:?}"),
    }
}

impl ExecutionPlan for StorageScanExec {
    fn name(&self) -> &'static str {
        "StorageScan"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let request = match self.parts.get(partition) {
            Some(range) => ScanRequest {
                range: range.clone(),
                ..self.request.clone()
            },
            None if partition == 0 => self.request.clone(),
            None => {
                return Err(DataFusionError::Internal(format!(
                    "storage scan of {} has {} partitions, asked for {partition}",
                    self.def.name,
                    self.parts.len().max(1)
                )));
            }
        };
        type Batches = Box<dyn Iterator<Item = omendb_storage::Result<RecordBatch>> + Send>;
        let scan: Batches = match &self.skip {
            Some(second) => Box::new(SkipScan::new(
                self.reader.clone(),
                &self.def,
                request,
                second.clone(),
            )),
            None => Box::new(
                self.reader
                    .scan_batches(&self.def.name, &request)
                    .map_err(external)?,
            ),
        };
        let schema = self.properties.eq_properties.schema().clone();
        let order = self.order.clone();
        let out = schema.clone();
        let mut left = self.request.limit.unwrap_or(usize::MAX);
        let scan = Timed {
            inner: scan,
            metrics: BaselineMetrics::new(&self.metrics, partition),
        };
        let scan = scan.map_while(move |batch| {
            // Stop reading once the limit is reached.
            if left == 0 {
                return None;
            }
            Some(batch.map(|b| {
                let b = b.slice(0, b.num_rows().min(left));
                left -= b.num_rows();
                b
            }))
        });
        let batches = futures::stream::iter(scan.map(move |batch| {
            let batch = batch.map_err(external)?;
            match &order {
                None => Ok(batch),
                Some(order) => {
                    let columns = order.iter().map(|&i| batch.column(i).clone()).collect();
                    Ok(RecordBatch::try_new_with_options(
                        out.clone(),
                        columns,
                        &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
                    )?)
                }
            }
        }));
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)))
    }
}
