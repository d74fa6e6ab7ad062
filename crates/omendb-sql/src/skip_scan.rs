//! The skip scan: a range on the second key column with none on the
//! first (`WHERE ts >= $1 AND ts < $2` over a `(device_id, ts)` key) reads,
//! for each value of the first key column, only that value's keys in the
//! range. Each step is two learned-index seeks: one finds the next value
//! of the first column, one reads its keys in range. One hour of 1,000
//! devices' readings is 1,000 short ranges instead of the whole table.
//!
//! When the values of the first column turn out to have few rows in range
//! each (a seek per handful of rows costs more than reading past them),
//! the scan reads the rest of the table as one range instead. Rows outside
//! the range may then come back: the filter stays in the plan.

use std::ops::Bound;

use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::record_batch::RecordBatch;
use omendb_storage::{
    BatchScan, KeyRange, Result, ScanRequest, TableDef, TxnReader, Value, value_at,
};

use crate::pushdown::ColumnBounds;

/// Values of the first key column visited before the scan judges whether
/// seeking pays.
const TRIAL_PREFIXES: u64 = 64;
/// Rows in range per value of the first key column below which a plain
/// scan of the rest is cheaper than seeking.
const MIN_ROWS_PER_SEEK: u64 = 32;

/// A skip scan in progress; yields the rows' batches as a scan would.
#[derive(Debug)]
pub(crate) struct SkipScan {
    reader: TxnReader,
    table: String,
    /// The first key column's name and type.
    first: (String, omendb_storage::DataType),
    /// The scan's request; its range bounds the first key column.
    request: ScanRequest,
    /// Bounds on the second key column.
    second: ColumnBounds,
    /// Where the next value of the first key column is looked for.
    next: Bound<Vec<Value>>,
    current: Option<BatchScan>,
    prefixes: u64,
    rows: u64,
    done: bool,
}

impl SkipScan {
    /// A skip scan of `def`, whose key has two columns or more (those
    /// `pushdown::skip_bounds` gives bounds for).
    pub(crate) fn new(
        reader: TxnReader,
        def: &TableDef,
        request: ScanRequest,
        second: ColumnBounds,
    ) -> SkipScan {
        // skip_bounds only gives bounds for keys of two or more columns.
        let first = def.key_positions()[0];
        let column = &def.columns[first];
        SkipScan {
            reader,
            table: def.name.clone(),
            first: (column.name.clone(), column.data_type.clone()),
            next: request.range.start.clone(),
            request,
            second,
            current: None,
            prefixes: 0,
            rows: 0,
            done: false,
        }
    }

    /// Starts reading the next value's keys in range (or, when seeking
    /// does not pay, the rest of the table); false at the end.
    fn advance(&mut self) -> Result<bool> {
        let rest = KeyRange {
            start: self.next.clone(),
            end: self.request.range.end.clone(),
        };
        if self.prefixes >= TRIAL_PREFIXES && self.rows < MIN_ROWS_PER_SEEK * self.prefixes {
            let request = ScanRequest {
                range: rest,
                ..self.request.clone()
            };
            self.current = Some(self.reader.scan_batches(&self.table, &request)?);
            self.done = true;
            return Ok(true);
        }
        // The next value with a row in a row group whose zone maps allow
        // the range: a lower bound on the next value with rows in range,
        // found without reading segments of other times.
        let probe = ScanRequest {
            range: rest,
            columns: Some(vec![self.first.0.clone()]),
            predicates: self.request.predicates.clone(),
            batch_rows: 1,
            limit: Some(1),
            lower_bound_only: true,
            ..ScanRequest::default()
        };
        let Some(batch) = self.reader.scan_batches(&self.table, &probe)?.next() else {
            return Ok(false);
        };
        let batch = batch?;
        if batch.num_rows() == 0 {
            return Ok(false);
        }
        let value = value_at(batch.column(0).as_ref(), 0, &self.first.1)?;
        // Unbounded on one side: every key of the value on that side.
        let with = |bound: &Option<(Value, bool)>| match bound {
            Some((v, true)) => Bound::Included(vec![value.clone(), v.clone()]),
            Some((v, false)) => Bound::Excluded(vec![value.clone(), v.clone()]),
            None => Bound::Included(vec![value.clone()]),
        };
        let range = KeyRange {
            start: with(&self.second.lower),
            end: with(&self.second.upper),
        };
        self.next = Bound::Excluded(vec![value]);
        self.prefixes += 1;
        let request = ScanRequest {
            range,
            ..self.request.clone()
        };
        self.current = Some(self.reader.scan_batches(&self.table, &request)?);
        Ok(true)
    }
}

impl SkipScan {
    /// The next batch of the scans, as each gives it.
    fn next_piece(&mut self) -> Option<Result<RecordBatch>> {
        loop {
            if let Some(scan) = self.current.as_mut() {
                match scan.next() {
                    Some(Ok(batch)) => {
                        self.rows += batch.num_rows() as u64;
                        return Some(Ok(batch));
                    }
                    Some(Err(e)) => {
                        self.done = true;
                        self.current = None;
                        return Some(Err(e));
                    }
                    None => self.current = None,
                }
            }
            if self.done {
                return None;
            }
            match self.advance() {
                Ok(true) => {}
                Ok(false) => {
                    self.done = true;
                    return None;
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

impl Iterator for SkipScan {
    type Item = Result<RecordBatch>;

    /// The values' short runs joined into batches of about the request's
    /// size: a query engine pays per batch, and one hour of a device is a
    /// few hundred rows.
    fn next(&mut self) -> Option<Result<RecordBatch>> {
        let mut pieces: Vec<RecordBatch> = Vec::new();
        let mut rows = 0;
        while rows < self.request.batch_rows {
            match self.next_piece() {
                Some(Ok(batch)) => {
                    rows += batch.num_rows();
                    pieces.push(batch);
                }
                Some(Err(e)) => return Some(Err(e)),
                None => break,
            }
        }
        if pieces.len() <= 1 {
            return pieces.pop().map(Ok);
        }
        Some(concat_batches(&pieces[0].schema(), &pieces).map_err(|e| {
            omendb_storage::StorageError::Internal {
                message: format!("joining skip scan batches: {e}"),
            }
        }))
    }
}
