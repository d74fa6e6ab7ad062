//! COPY ... FROM STDIN and COPY ... TO STDOUT. A COPY FROM spans calls:
//! it starts as a statement, the client's data arrives in pieces
//! (`copy_data`), and `copy_done` writes the last rows and commits (in a
//! block, the block's transaction holds them). Records are read in the
//! text or CSV format (`copy_format.rs`) and converted a batch at a time,
//! as INSERT converts text values, so a bad value fails the same way.
//! A COPY TO runs its query and writes each batch's rows as lines.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, StringArray};
use datafusion::arrow::datatypes::{DataType as ArrowType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::sql::sqlparser::ast::{CopySource, CopyTarget, ObjectName, Statement};
use futures::StreamExt;
use omendb_storage::TableDef;

use crate::copy_format::{CopyFormat, Record, RecordReader, write_row};
use crate::engine::{SqlSession, ident};
use crate::error::{ErrorClass, Result, SqlError};
use crate::handler::{CopyData, StatementResult};
use crate::insert::{source_rows, target_positions};
use crate::text::pg_text;

/// Records converted and written at a time.
const BATCH_RECORDS: usize = 8_192;

/// A COPY FROM STDIN under way.
#[derive(Debug)]
pub(crate) struct CopyIn {
    def: Arc<TableDef>,
    /// The columns the fields fill, in order (empty: every column).
    targets: Vec<String>,
    /// Fields per record.
    fields: usize,
    reader: RecordReader,
    records: Vec<Record>,
    rows: u64,
    /// The COPY has a transaction of its own, committed at the end.
    pub(crate) autocommit: bool,
}

/// What a COPY statement reads or writes.
pub(crate) enum Copy {
    /// From the client into `table` (its `columns`, or all).
    In {
        table: ObjectName,
        columns: Vec<String>,
        format: CopyFormat,
    },
    /// The rows of `query` (SQL text) out to the client.
    Out { query: String, format: CopyFormat },
}

impl Copy {
    /// The COPY `statement` asks for; only STDIN and STDOUT are served.
    pub(crate) fn of(statement: &Statement) -> Result<Copy> {
        let Statement::Copy {
            source,
            to,
            target,
            options,
            legacy_options,
            values,
        } = statement
        else {
            return Err(SqlError::internal("not a COPY"));
        };
        let format = CopyFormat::of(options, legacy_options)?;
        match (target, to) {
            (CopyTarget::Stdin, false) | (CopyTarget::Stdout, true) => {}
            _ => {
                return Err(SqlError::unsupported(
                    "COPY to or from a file or program (use STDIN or STDOUT, as psql's \\copy does)",
                ));
            }
        }
        if !values.is_empty() {
            return Err(SqlError::unsupported("COPY data inline in the query text"));
        }
        Ok(match (source, to) {
            (
                CopySource::Table {
                    table_name,
                    columns,
                },
                false,
            ) => Copy::In {
                table: table_name.clone(),
                columns: columns.iter().map(ident).collect(),
                format,
            },
            (CopySource::Query(_), false) => {
                return Err(SqlError::new(
                    ErrorClass::SyntaxError,
                    "COPY FROM takes a table, not a query",
                ));
            }
            (
                CopySource::Table {
                    table_name,
                    columns,
                },
                true,
            ) => {
                let list = if columns.is_empty() {
                    "*".to_owned()
                } else {
                    columns
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                Copy::Out {
                    query: format!("SELECT {list} FROM {table_name}"),
                    format,
                }
            }
            (CopySource::Query(query), true) => Copy::Out {
                query: query.to_string(),
                format,
            },
        })
    }
}

impl CopyIn {
    /// Starts a COPY into `def`, in the session's transaction.
    pub(crate) fn new(
        def: Arc<TableDef>,
        columns: Vec<String>,
        format: CopyFormat,
        autocommit: bool,
    ) -> Result<CopyIn> {
        let fields = target_positions(&def, &columns)?.len();
        Ok(CopyIn {
            def,
            targets: columns,
            fields,
            reader: RecordReader::new(format),
            records: Vec::new(),
            rows: 0,
            autocommit,
        })
    }

    pub(crate) fn fields(&self) -> usize {
        self.fields
    }

    /// Reads `data`; full batches of records are written.
    pub(crate) async fn push(&mut self, session: &SqlSession, data: &[u8]) -> Result<()> {
        self.reader.push(data, &mut self.records)?;
        if self.records.len() >= BATCH_RECORDS {
            self.write(session).await?;
        }
        Ok(())
    }

    /// Reads the end of the data and writes what is left; the command tag.
    pub(crate) async fn finish(&mut self, session: &SqlSession) -> Result<String> {
        self.reader.finish(&mut self.records)?;
        self.write(session).await?;
        Ok(format!("COPY {}", self.rows))
    }

    /// Converts the records read and inserts them.
    async fn write(&mut self, session: &SqlSession) -> Result<()> {
        if self.records.is_empty() {
            return Ok(());
        }
        let records = std::mem::take(&mut self.records);
        let columns: Vec<String> = if self.targets.is_empty() {
            self.def.columns.iter().map(|c| c.name.clone()).collect()
        } else {
            self.targets.clone()
        };
        let first_line = self.reader.line.saturating_sub(records.len() as u64) + 1;
        for (i, record) in records.iter().enumerate() {
            let line = first_line + i as u64;
            if record.len() > self.fields {
                return Err(bad_format(line, "extra data after last expected column"));
            }
            if record.len() < self.fields {
                let missing = &columns[record.len()];
                return Err(bad_format(
                    line,
                    &format!("missing data for column \"{missing}\""),
                ));
            }
        }
        let arrays: Vec<ArrayRef> = (0..self.fields)
            .map(|i| {
                let values = records.iter().map(|r| r[i].as_deref());
                Arc::new(StringArray::from_iter(values)) as ArrayRef
            })
            .collect();
        let fields: Vec<Field> = columns
            .iter()
            .map(|name| Field::new(name, ArrowType::Utf8, true))
            .collect();
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
            .map_err(|e| SqlError::internal(e.to_string()))?;
        let rows = source_rows(session, &self.def, &self.targets, &[batch]).await?;
        let table = &self.def.name;
        session.txn().with(|txn| {
            for row in rows {
                txn.insert(table, row)?;
            }
            Ok(())
        })?;
        self.rows += records.len() as u64;
        Ok(())
    }
}

fn bad_format(line: u64, message: &str) -> SqlError {
    SqlError::new(
        ErrorClass::BadCopyFormat,
        format!("{message} (COPY line {line})"),
    )
}

/// The rows of a query's result as COPY TO lines, a batch per piece.
pub(crate) fn copy_out(result: StatementResult, format: CopyFormat) -> Result<StatementResult> {
    let StatementResult::Rows { schema, stream, .. } = result else {
        return Err(SqlError::internal("COPY TO of a statement without rows"));
    };
    // CSV's HEADER names the columns on a first line.
    let mut header = Vec::new();
    if format.csv && format.header {
        let names: Vec<Option<String>> = schema
            .fields()
            .iter()
            .map(|f| Some(f.name().clone()))
            .collect();
        write_row(&format, &names, &mut header);
    }
    let header = (!header.is_empty()).then(|| {
        Ok(CopyData {
            line_ends: vec![header.len()],
            bytes: header,
            rows: 0,
        })
    });
    let rows = stream.map(move |batch| {
        let batch = batch?;
        let mut bytes = Vec::new();
        let mut line_ends = Vec::with_capacity(batch.num_rows());
        let mut fields = Vec::with_capacity(batch.num_columns());
        for row in 0..batch.num_rows() {
            fields.clear();
            fields.extend(batch.columns().iter().map(|c| pg_text(c.as_ref(), row)));
            write_row(&format, &fields, &mut bytes);
            line_ends.push(bytes.len());
        }
        Ok(CopyData {
            bytes,
            line_ends,
            rows: batch.num_rows(),
        })
    });
    Ok(StatementResult::CopyOut {
        columns: schema.fields().len(),
        data: Box::pin(futures::stream::iter(header).chain(rows)),
    })
}

/// Ends a COPY FROM that failed: its rows are not written (a COPY of its
/// own is rolled back, one in a block fails the block).
pub(crate) fn abort(session: &mut SqlSession, copy: &CopyIn) {
    if copy.autocommit {
        session.txn().lock().take();
    } else {
        session.fail_block();
    }
}
