//! The narrow interface the server calls: SQL text and parameters in, one
//! result per statement out.

use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::stream::BoxStream;

use crate::error::{Result, SqlError};
use crate::interrupt::Canceller;
use omendb_storage::StorageStats;

/// What one statement produced.
pub enum StatementResult {
    /// Rows: their schema (column names and types), a stream of batches
    /// read as the consumer pulls them (a query holds at most a few
    /// batches in memory; its snapshot stays valid until the stream is
    /// dropped), and the command tag when the rows come from a command
    /// (`INSERT 0 2` for `INSERT ... RETURNING`); `None` for a query
    /// (`SELECT n`). An error in the stream fails the session's
    /// transaction block, as any error does.
    Rows {
        schema: SchemaRef,
        stream: SendableRecordBatchStream,
        tag: Option<String>,
    },
    /// A command without rows and its PostgreSQL command tag, such as
    /// `CREATE TABLE` or `INSERT 0 3`.
    Command { tag: String },
    /// COPY FROM STDIN waits for the client's data, `columns` fields a
    /// row: it goes to [`QueryHandler::copy_data`], then
    /// [`QueryHandler::copy_done`] or [`QueryHandler::copy_fail`].
    CopyIn { columns: usize },
    /// COPY TO STDOUT: the rows as lines of text or CSV, in pieces; an
    /// error in the stream ends the COPY.
    CopyOut {
        columns: usize,
        data: BoxStream<'static, Result<CopyData>>,
    },
}

/// A piece of COPY TO output: whole lines (clients expect one message per
/// line, as PostgreSQL sends them), and how many of them are rows (not a
/// header).
#[derive(Debug)]
pub struct CopyData {
    pub bytes: Vec<u8>,
    /// Where each line ends in `bytes`.
    pub line_ends: Vec<usize>,
    pub rows: usize,
}

impl std::fmt::Debug for StatementResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatementResult::Rows { schema, tag, .. } => f
                .debug_struct("Rows")
                .field("schema", schema)
                .field("tag", tag)
                .finish_non_exhaustive(),
            StatementResult::Command { tag } => {
                f.debug_struct("Command").field("tag", tag).finish()
            }
            StatementResult::CopyIn { columns } => {
                f.debug_struct("CopyIn").field("columns", columns).finish()
            }
            StatementResult::CopyOut { columns, .. } => f
                .debug_struct("CopyOut")
                .field("columns", columns)
                .finish_non_exhaustive(),
        }
    }
}

impl StatementResult {
    /// The columns of the rows, if it has rows.
    pub fn columns(&self) -> Option<SchemaRef> {
        match self {
            StatementResult::Rows { schema, .. } => Some(schema.clone()),
            _ => None,
        }
    }

    /// Rows already in memory, as a stream.
    pub(crate) fn rows(schema: SchemaRef, batches: Vec<RecordBatch>, tag: Option<String>) -> Self {
        let stream = futures::stream::iter(batches.into_iter().map(Ok));
        StatementResult::Rows {
            schema: schema.clone(),
            stream: Box::pin(RecordBatchStreamAdapter::new(schema, stream)),
            tag,
        }
    }
}

/// Where a session stands, as PostgreSQL's ReadyForQuery reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransactionStatus {
    /// Not in a transaction block.
    Idle,
    /// In a transaction block.
    InBlock,
    /// In a failed transaction block: statements are refused until ROLLBACK.
    Failed,
}

/// Executes SQL for the sessions of one database.
#[async_trait]
pub trait QueryHandler: Send + Sync {
    /// A client's session: its settings and transaction.
    type Session: Send;

    fn new_session(&self) -> Self::Session;

    /// Runs the statements of `sql` in order, one result each, stopping
    /// after the first error (that statement's effects are undone; in a
    /// transaction block the block fails until ROLLBACK). Several
    /// statements outside a block run as one transaction, as in
    /// PostgreSQL: an error undoes them all. `params` are the
    /// values of `$1`, `$2`, ... (cast to the type each place needs).
    async fn execute(
        &self,
        session: &mut Self::Session,
        sql: &str,
        params: &[ScalarValue],
    ) -> Vec<Result<StatementResult>>;

    /// What a statement needs and gives, without running it (the extended
    /// protocol's Parse/Describe): the type of each `$n` where the
    /// statement decides it, and its result columns if it returns rows.
    async fn describe(&self, session: &mut Self::Session, sql: &str) -> Result<Description>;

    fn transaction_status(&self, session: &Self::Session) -> TransactionStatus;

    /// The next piece of a COPY FROM STDIN's data (split anywhere). An
    /// error ends the COPY: nothing of it is written.
    async fn copy_data(&self, session: &mut Self::Session, data: &[u8]) -> Result<()>;

    /// The end of a COPY FROM STDIN's data: the rest is written (and
    /// committed, outside a block); the command tag (`COPY n`).
    async fn copy_done(&self, session: &mut Self::Session) -> Result<String>;

    /// The client gave up a COPY FROM STDIN with `message`: nothing of it
    /// is written; the error to report.
    fn copy_fail(&self, session: &mut Self::Session, message: &str) -> SqlError;

    /// A handle that cancels the statement `session` is running, from
    /// another task (a cancel request): it ends with 57014.
    fn canceller(&self, session: &Self::Session) -> Canceller;

    /// Statements outside a block from now until [`Self::end_implicit`]
    /// run as one transaction (the extended protocol's, up to a Sync).
    fn begin_implicit(&self, session: &mut Self::Session);

    /// Commits the implicit transaction (one a statement failed in was
    /// rolled back already).
    fn end_implicit(&self, session: &mut Self::Session) -> Result<()>;

    /// The storage engine's metrics now (for monitoring).
    fn storage_stats(&self) -> StorageStats;

    /// The settings a client is told of (ParameterStatus) when it connects
    /// and again when one changes, with their values now.
    fn reported_settings(&self, session: &Self::Session) -> Vec<(&'static str, String)>;

    /// How long the session may sit idle inside a transaction block
    /// before the server ends its connection
    /// (`idle_in_transaction_session_timeout`; `None`: forever).
    fn idle_in_transaction_timeout(&self, session: &Self::Session) -> Option<Duration>;
}

/// A statement described; see [`QueryHandler::describe`].
#[derive(Debug, Clone)]
pub struct Description {
    /// The type of `$1`, `$2`, ...; `None` where the statement leaves it
    /// open (the client's type, or text, then decides).
    pub params: Vec<Option<DataType>>,
    /// The result columns of a statement that returns rows.
    pub columns: Option<SchemaRef>,
}
