//! Statements in, results out: transaction control and DDL/DML handled
//! here over the storage engine, queries planned and run by DataFusion
//! over the session's transaction.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, StringArray};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{DataType as ArrowType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::catalog::MemorySchemaProvider;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{ScalarValue, TableReference};
use datafusion::datasource::MemTable;
use datafusion::execution::context::{SessionConfig, SessionContext};
use datafusion::execution::{FunctionRegistry, SendableRecordBatchStream};
use datafusion::logical_expr::expr::{Cast, Placeholder};
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{ExecutionPlan, collect, execute_stream};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    AssignmentTarget, ContextModifier, Expr as SqlExpr, Ident, ObjectName, ObjectType, Query,
    Reset, Set, SetExpr, Statement, TableObject, TransactionIsolationLevel, TransactionMode,
    UnaryOperator, Value as SqlValue,
};
use futures::TryStreamExt;
use omendb_storage::{
    Catalog, ColumnBuilder, Database, Isolation, ScanRequest, TableDef, Transaction, TxnReader,
    Value, value_at,
};
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::runtime::RuntimeFlavor;

use crate::arith::IntegerArithmetic;
use crate::copy::{self, Copy, CopyIn};
use crate::error::{ErrorClass, Result, SqlError};
use crate::handler::{Description, QueryHandler, StatementResult, TransactionStatus};
use crate::interrupt::{Canceller, Interrupt, Interruptible, Watch};
use crate::pg_catalog::{self, CatalogSource};
use crate::prepared::{FastRead, FastTarget, GenericQuery, PlanCache, PreparedQuery};
use crate::provider::{ReaderSlot, TxnSlot, range_text};
use crate::schemas::{self, ROWS_SCHEMA, SEARCH_PATH_SCHEMA, StorageCatalog, TableName};
use crate::settings::{self, SharedSettings};
use crate::{ddl, dml, insert, keywords, names, pg_syntax, timeseries};

/// The DataFusion catalog of a session's tables.
const CATALOG: &str = "omendb";

/// The SQL engine of one database.
#[derive(Clone, Debug)]
pub struct SqlEngine {
    db: Database,
}

/// A client's session.
pub struct SqlSession {
    pub(crate) ctx: SessionContext,
    txn: Arc<TxnSlot>,
    /// The transaction as the running statement reads it.
    reader: Arc<ReaderSlot>,
    status: TransactionStatus,
    /// The isolation new transactions get.
    isolation: Isolation,
    /// A statement has run in the current block (its isolation is fixed).
    block_used: bool,
    settings: Arc<SharedSettings>,
    /// The parameters of the statements running now.
    params: Vec<ScalarValue>,
    /// Set when a returned row stream failed: the block fails with it.
    stream_failed: Arc<AtomicBool>,
    /// Queries planned before, by their SQL text.
    plans: PlanCache,
    /// A COPY FROM STDIN waiting for data.
    copy: Option<CopyIn>,
    /// Statements outside a block sharing one transaction.
    implicit: Implicit,
    /// Set by a cancel request.
    interrupt: Arc<Interrupt>,
    /// The limits of the statements running now (their rows check them).
    watch: Option<Watch>,
    /// `statement_timeout` as of the last statement that could change it
    /// (read once per call, not per statement: the fast path is short).
    statement_timeout: Option<std::time::Duration>,
}

/// The implicit transaction of statements outside a block that run as
/// one: those of a multi-statement query string, or of the extended
/// protocol up to a Sync, as in PostgreSQL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Implicit {
    /// Each statement outside a block commits on its own.
    Off,
    /// The next statement begins the implicit transaction.
    Pending,
    /// The implicit transaction is in the transaction slot.
    Open,
    /// A statement failed: the implicit transaction was rolled back.
    Failed,
}

/// One statement to run.
#[derive(Clone)]
enum Work {
    Statement(Box<Statement>),
    /// A query that is the whole SQL text: it is planned and kept, to run
    /// again from its plan.
    Query(String, Box<Query>),
    /// A query planned before.
    Prepared(Arc<PreparedQuery>),
    /// A query that is the whole SQL text, with constants to try as
    /// parameters of a plan kept for every value.
    Generic(Box<GenericQuery>),
}

impl Work {
    /// Whether running it may write (and so have to run again, see
    /// `run_until_written`): anything but a query.
    fn writes(&self) -> bool {
        matches!(self, Work::Statement(s) if !matches!(**s, Statement::Query(_)))
    }
}

impl std::fmt::Debug for SqlSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlSession")
            .field("session_id", &self.ctx.session_id())
            .field("status", &self.status)
            .field("isolation", &self.isolation)
            .finish()
    }
}

impl SqlSession {
    pub(crate) fn txn(&self) -> &TxnSlot {
        &self.txn
    }

    /// A statement failed midway: an open block fails (until ROLLBACK),
    /// an implicit transaction is rolled back.
    pub(crate) fn fail_block(&mut self) {
        if self.status == TransactionStatus::InBlock {
            self.status = TransactionStatus::Failed;
        } else if self.implicit == Implicit::Open {
            self.txn.lock().take();
            self.implicit = Implicit::Failed;
        }
    }

    /// Whether statements outside a block run in the open implicit
    /// transaction.
    pub(crate) fn in_implicit(&self) -> bool {
        self.status == TransactionStatus::Idle && self.implicit == Implicit::Open
    }

    /// The schemas of the session's `search_path`.
    pub(crate) fn search_path(&self) -> Vec<String> {
        schemas::search_path(&self.search_path_setting())
    }

    /// The session's `search_path` as set.
    pub(crate) fn search_path_setting(&self) -> String {
        self.settings.lock().get("search_path").unwrap_or_default()
    }

    /// The catalog as the session's transaction (else its statement
    /// reader, as when describing) sees it.
    fn catalog(&self) -> Result<Arc<Catalog>> {
        if let Some(txn) = self.txn.lock().as_mut() {
            return Ok(txn.catalog());
        }
        self.reader
            .get()
            .map(|reader| reader.catalog().clone())
            .ok_or_else(|| SqlError::internal("no transaction for the statement"))
    }

    /// The storage name of the existing table `name` means, if any.
    pub(crate) fn find_table(&self, name: &ObjectName) -> Result<Option<String>> {
        let name = TableName::of(name)?;
        Ok(name.find(&*self.catalog()?, &self.search_path()))
    }

    /// The storage name of the existing table `name` means; 42P01 if none.
    pub(crate) fn table_name(&self, name: &ObjectName) -> Result<String> {
        let name = TableName::of(name)?;
        name.resolve(&*self.catalog()?, &self.search_path())
    }

    /// The running statement's view of the transaction.
    pub(crate) fn reader(&self) -> Option<TxnReader> {
        self.reader.get()
    }

    /// Runs the query `sql(relation)` with `batch` readable as `relation`
    /// (a table of the statement's own rows: RETURNING, EXCLUDED).
    pub(crate) async fn with_rows_table(
        &self,
        name: &str,
        batch: RecordBatch,
        sql: impl FnOnce(&str) -> String,
    ) -> Result<(datafusion::arrow::datatypes::SchemaRef, Vec<RecordBatch>)> {
        let reference = TableReference::full(CATALOG, ROWS_SCHEMA, name);
        let table = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
        self.ctx
            .register_table(reference.clone(), Arc::new(table))?;
        let result = query_text(self, &sql(&format!("{ROWS_SCHEMA}.\"{name}\""))).await;
        self.ctx.deregister_table(reference)?;
        result
    }
}

impl SqlEngine {
    pub fn new(db: Database) -> SqlEngine {
        SqlEngine { db }
    }

    /// The storage engine underneath.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Runs the statements of `sql`; see [`QueryHandler::execute`].
    async fn execute_statements(
        &self,
        session: &mut SqlSession,
        sql: &str,
        params: &[ScalarValue],
    ) -> Vec<Result<StatementResult>> {
        session.params = params.to_vec();
        let work = match session.plans.get(sql) {
            Some(prepared) => vec![Work::Prepared(prepared)],
            None => match parse(sql) {
                Ok(mut statements) => match (statements.pop(), statements.is_empty()) {
                    (Some(Statement::Query(query)), true) if params.is_empty() => {
                        match GenericQuery::of(sql, query) {
                            Ok(generic) => vec![Work::Generic(Box::new(generic))],
                            Err(query) => vec![Work::Query(sql.into(), query)],
                        }
                    }
                    (Some(Statement::Query(query)), true) => vec![Work::Query(sql.into(), query)],
                    (last, _) => statements
                        .into_iter()
                        .chain(last)
                        .map(|s| Work::Statement(Box::new(s)))
                        .collect(),
                },
                Err(error) => {
                    if session.status == TransactionStatus::InBlock {
                        session.status = TransactionStatus::Failed;
                    }
                    return vec![Err(error)];
                }
            },
        };
        // Several statements outside a block run as one transaction.
        let implicit = work.len() > 1
            && session.status == TransactionStatus::Idle
            && session.implicit == Implicit::Off;
        if implicit {
            session.implicit = Implicit::Pending;
        }
        let mut results = Vec::with_capacity(work.len());
        for work in work {
            let result = self.run(session, work).await;
            let failed = result.is_err();
            // Any error inside a block aborts it, as in PostgreSQL.
            if failed && session.status == TransactionStatus::InBlock {
                session.status = TransactionStatus::Failed;
            }
            results.push(result);
            if failed {
                break;
            }
        }
        if implicit && let Err(error) = end_implicit(session) {
            results.push(Err(error));
        }
        results
    }

    /// Runs `prepared` outside a transaction block when the fast path
    /// answers it with `params`: a point or range read at a fresh snapshot,
    /// without a transaction (it would write nothing) or DataFusion.
    /// `None` sends it the general way.
    fn run_fast_autocommit(
        &self,
        session: &SqlSession,
        prepared: &PreparedQuery,
        params: &[ScalarValue],
    ) -> Option<Result<StatementResult>> {
        let read = prepared.fast_path(params)?;
        let reader = self.db.reader();
        // A plan gone stale is planned again on the general path.
        if !is_current(session, prepared, &reader) {
            return None;
        }
        Some(run_fast(session, prepared, &read, &reader))
    }

    async fn run(&self, session: &mut SqlSession, work: Work) -> Result<StatementResult> {
        if session.status == TransactionStatus::Failed
            && !matches!(
                &work,
                Work::Statement(s) if matches!(**s, Statement::Commit { .. } | Statement::Rollback { .. })
            )
        {
            return Err(aborted());
        }
        let statement = match work {
            Work::Statement(statement) => *statement,
            work => return self.run_statement(session, work).await,
        };
        match statement {
            Statement::StartTransaction { modes, .. } => {
                if session.status == TransactionStatus::Idle {
                    // An open implicit transaction becomes the block, as
                    // in PostgreSQL.
                    if session.implicit != Implicit::Open {
                        let isolation = isolation_of(&modes).unwrap_or(session.isolation);
                        *session.txn.lock() = Some(self.db.begin(isolation));
                    }
                    session.implicit = Implicit::Off;
                    session.status = TransactionStatus::InBlock;
                    session.block_used = false;
                    session.settings.lock().begin_block();
                }
                Ok(command("BEGIN"))
            }
            Statement::Set(Set::SetTransaction {
                modes,
                session: characteristics,
                ..
            }) => {
                let Some(isolation) = isolation_of(&modes) else {
                    return Ok(command("SET"));
                };
                if characteristics {
                    session.isolation = isolation;
                } else if session.status == TransactionStatus::Idle {
                    // PostgreSQL warns and does nothing outside a block.
                } else if session.block_used {
                    return Err(SqlError::new(
                        ErrorClass::ActiveTransaction,
                        "SET TRANSACTION ISOLATION LEVEL must be called before any query",
                    ));
                } else {
                    *session.txn.lock() = Some(self.db.begin(isolation));
                }
                Ok(command("SET"))
            }
            Statement::Set(Set::SingleAssignment {
                scope,
                variable,
                values,
                ..
            }) => {
                let local = matches!(scope, Some(ContextModifier::Local));
                let value = setting_text(&values)?;
                let name = variable.to_string();
                session
                    .settings
                    .lock()
                    .set(&name, value.as_deref(), local)?;
                Ok(command("SET"))
            }
            Statement::Set(Set::SetTimeZone { local, value }) => {
                let value = setting_text(std::slice::from_ref(&value))?;
                session
                    .settings
                    .lock()
                    .set("TimeZone", value.as_deref(), local)?;
                Ok(command("SET"))
            }
            Statement::Reset(reset) => {
                let mut settings = session.settings.lock();
                match reset.reset {
                    Reset::ALL => settings.reset_all()?,
                    Reset::ConfigurationParameter(name) => {
                        settings.set(&name.to_string(), None, false)?;
                    }
                }
                Ok(command("RESET"))
            }
            Statement::ShowVariable { variable } => show(session, &variable),
            statement @ Statement::Copy { to: false, .. } => {
                self.start_copy_in(session, &statement)
            }
            Statement::Savepoint { name } => {
                in_block(session, "SAVEPOINT")?;
                let name = ident(&name);
                session.txn.with(|txn| {
                    txn.savepoint(&name);
                    Ok(())
                })?;
                Ok(command("SAVEPOINT"))
            }
            Statement::ReleaseSavepoint { name } => {
                in_block(session, "RELEASE SAVEPOINT")?;
                let name = ident(&name);
                session
                    .txn
                    .with(|txn| txn.release(&name).map_err(no_savepoint))?;
                Ok(command("RELEASE"))
            }
            Statement::Rollback {
                savepoint: Some(name),
                ..
            } => {
                in_block(session, "ROLLBACK TO SAVEPOINT")?;
                let name = ident(&name);
                session
                    .txn
                    .with(|txn| txn.rollback_to(&name).map_err(no_savepoint))?;
                // Rolling back to a savepoint ends the failure too.
                session.status = TransactionStatus::InBlock;
                Ok(command("ROLLBACK"))
            }
            Statement::Commit { .. } => {
                session.implicit = Implicit::Off;
                let txn = session.txn.lock().take();
                let failed = session.status == TransactionStatus::Failed;
                session.status = TransactionStatus::Idle;
                let commits = txn.is_some() && !failed;
                session.settings.lock().end_block(commits);
                match txn {
                    Some(txn) if !failed => {
                        commit(txn)?;
                        Ok(command("COMMIT"))
                    }
                    // PostgreSQL answers COMMIT of a failed block with ROLLBACK.
                    Some(_) => Ok(command("ROLLBACK")),
                    None => Ok(command("COMMIT")),
                }
            }
            Statement::Rollback { .. } => {
                session.implicit = Implicit::Off;
                session.txn.lock().take();
                session.status = TransactionStatus::Idle;
                session.settings.lock().end_block(false);
                Ok(command("ROLLBACK"))
            }
            statement => {
                self.run_statement(session, Work::Statement(Box::new(statement)))
                    .await
            }
        }
    }

    /// Runs a statement that is not transaction control: in the session's
    /// block, or in a transaction of its own (autocommit).
    async fn run_statement(&self, session: &mut SqlSession, work: Work) -> Result<StatementResult> {
        let autocommit = session.status == TransactionStatus::Idle;
        let implicit = autocommit && session.implicit != Implicit::Off;
        if implicit {
            match session.implicit {
                Implicit::Open => self.statement_txn(session, false)?,
                Implicit::Failed => return Err(aborted()),
                Implicit::Pending | Implicit::Off => {
                    self.statement_txn(session, true)?;
                    session.implicit = Implicit::Open;
                }
            }
        } else {
            self.statement_txn(session, autocommit)?;
        }
        let result = self.run_until_written(session, work).await;
        if implicit {
            // The implicit transaction commits at its end.
            if result.is_err() {
                session.fail_block();
            }
            return result;
        }
        let txn = if autocommit {
            session.txn.lock().take()
        } else {
            None
        };
        match (result, txn) {
            (Ok(result), Some(txn)) => {
                commit(txn)?;
                Ok(result)
            }
            (Ok(result), None) => Ok(result),
            (Err(error), _) => Err(error),
        }
    }

    /// Runs the statement in the transaction. A row it writes may be held
    /// by another transaction, or changed by a commit after the
    /// statement's snapshot: then the statement is undone, waits for that
    /// transaction to end, and runs again, at a new snapshot under READ
    /// COMMITTED (REPEATABLE READ keeps its snapshot, and the changed row
    /// fails it). Concurrent updates of a row so queue up, as in
    /// PostgreSQL, which re-checks just the row; running the statement
    /// again gives the same answer for the single-row writes of OLTP.
    async fn run_until_written(
        &self,
        session: &mut SqlSession,
        work: Work,
    ) -> Result<StatementResult> {
        let mark = session.txn.with(|txn| Ok(txn.statement_mark()))?;
        let mut work = work;
        loop {
            // Queries write nothing, so never run again: no copy kept.
            let again = work.writes().then(|| work.clone());
            // The statement reads the transaction as it stands now.
            let reader = session.txn.with(|txn| Ok(txn.reader()))?;
            session.reader.set(Some(reader));
            let result = self.run_in_transaction(session, work).await;
            session.reader.set(None);
            let restart = match &result {
                Ok(_) => None,
                Err(_) => session.txn.lock().as_mut().and_then(|t| t.take_restart()),
            };
            let (Some(restart), Some(again)) = (restart, again) else {
                return result;
            };
            work = again;
            session.txn.with(|txn| {
                txn.rollback_statement(mark);
                Ok(())
            })?;
            restart.wait().await;
            session.txn.with(|txn| {
                txn.begin_statement();
                Ok(())
            })?;
        }
    }

    /// Readies the transaction slot for the next statement: a transaction
    /// of its `own`, or the open one (a block's, or the implicit one) at a
    /// new statement.
    fn statement_txn(&self, session: &mut SqlSession, own: bool) -> Result<()> {
        if own {
            *session.txn.lock() = Some(self.db.begin(session.isolation));
            return Ok(());
        }
        if session.status != TransactionStatus::Idle {
            session.block_used = true;
        }
        session.txn.with(|txn| {
            txn.begin_statement();
            Ok(())
        })
    }

    /// Starts a COPY FROM STDIN: in the session's block, or in a
    /// transaction of its own until `copy_done`.
    fn start_copy_in(
        &self,
        session: &mut SqlSession,
        statement: &Statement,
    ) -> Result<StatementResult> {
        let Copy::In {
            table,
            columns,
            format,
        } = Copy::of(statement)?
        else {
            return Err(SqlError::internal("COPY TO run as COPY FROM"));
        };
        // In a block or an implicit transaction, the COPY joins it.
        let autocommit = session.status == TransactionStatus::Idle && !session.in_implicit();
        self.statement_txn(session, autocommit)?;
        let started = session.table_name(&table).and_then(|name| {
            let def = session.txn.with(|txn| Ok(txn.table(&name)?))?;
            CopyIn::new(def, columns, format, autocommit)
        });
        match started {
            Ok(copy) => {
                let columns = copy.fields();
                session.copy = Some(copy);
                Ok(StatementResult::CopyIn { columns })
            }
            Err(error) => {
                if autocommit {
                    session.txn.lock().take();
                }
                Err(error)
            }
        }
    }

    /// Runs `step` on the session's COPY FROM; an error ends the COPY,
    /// undoing it.
    async fn copy_step<T>(
        &self,
        session: &mut SqlSession,
        step: impl AsyncFnOnce(&mut CopyIn, &SqlSession) -> Result<T>,
    ) -> Result<(CopyIn, T)> {
        let mut copy = session.copy.take().ok_or_else(|| {
            SqlError::new(ErrorClass::SyntaxError, "no COPY FROM STDIN is in progress")
        })?;
        // No statement reader: its copy of the transaction's writes would
        // cost the whole COPY so far on every piece of data (and the
        // conversion reads no table).
        let result = step(&mut copy, session).await;
        match result {
            Ok(value) => Ok((copy, value)),
            Err(error) => {
                copy::abort(session, &copy);
                Err(error)
            }
        }
    }

    async fn run_in_transaction(
        &self,
        session: &mut SqlSession,
        work: Work,
    ) -> Result<StatementResult> {
        let statement = match work {
            Work::Statement(statement) => *statement,
            Work::Query(sql, query) => {
                let prepared = Arc::new(PreparedQuery::plan(session, sql, query).await?);
                session.plans.insert(prepared.clone());
                return run_prepared(session, prepared).await;
            }
            Work::Prepared(prepared) => return run_prepared(session, prepared).await,
            Work::Generic(generic) => return run_generic(session, *generic).await,
        };
        match statement {
            Statement::CreateTable(create) => ddl::create_table(session, create),
            Statement::CreateSchema {
                schema_name,
                if_not_exists,
                ..
            } => ddl::create_schema(session, &schema_name, if_not_exists),
            Statement::Drop {
                object_type: ObjectType::Schema,
                if_exists,
                names,
                cascade,
                ..
            } => ddl::drop_schemas(session, &names, if_exists, cascade),
            Statement::AlterTable(alter) => ddl::alter_table(session, alter).await,
            Statement::Truncate(truncate) => ddl::truncate(session, truncate),
            Statement::Drop {
                object_type: ObjectType::Table,
                if_exists,
                names,
                ..
            } => {
                for name in &names {
                    match session.find_table(name)? {
                        Some(name) => session.txn.with(|txn| Ok(txn.drop_table(&name)?))?,
                        None if if_exists => {}
                        None => {
                            return Err(SqlError::new(
                                ErrorClass::UndefinedTable,
                                format!("table \"{}\" does not exist", TableName::of(name)?),
                            ));
                        }
                    }
                }
                Ok(command("DROP TABLE"))
            }
            // Storage reclaims space and keeps zone maps on its own
            // (flush, compaction): VACUUM and ANALYZE only check their
            // tables exist.
            Statement::Vacuum(vacuum) => {
                if session.status != TransactionStatus::Idle {
                    return Err(SqlError::new(
                        ErrorClass::ActiveTransaction,
                        "VACUUM cannot run inside a transaction block",
                    ));
                }
                if let Some(name) = &vacuum.table_name {
                    session.table_name(name)?;
                }
                Ok(command("VACUUM"))
            }
            Statement::Analyze(analyze) => {
                if let Some(name) = &analyze.table_name {
                    session.table_name(name)?;
                }
                Ok(command("ANALYZE"))
            }
            Statement::Insert(insert) => insert::insert(session, insert).await,
            Statement::Update(update) => dml::update(session, update).await,
            Statement::Delete(delete) => dml::delete(session, delete).await,
            Statement::Query(query) => {
                let prepared = PreparedQuery::plan(session, query.to_string(), query).await?;
                run_prepared(session, Arc::new(prepared)).await
            }
            statement @ Statement::Copy { .. } => {
                let Copy::Out { query, format } = Copy::of(&statement)? else {
                    return Err(SqlError::internal("COPY FROM run as a query"));
                };
                let Some(Statement::Query(parsed)) = parse(&query)?.pop() else {
                    return Err(SqlError::internal(format!("COPY query {query}")));
                };
                let prepared = PreparedQuery::plan(session, query, parsed).await?;
                copy::copy_out(run_prepared(session, Arc::new(prepared)).await?, format)
            }
            statement @ Statement::Explain { .. } => {
                // A query the fast path answers: EXPLAIN says so.
                if let Statement::Explain {
                    analyze: false,
                    statement: inner,
                    ..
                } = &statement
                    && let Statement::Query(query) = inner.as_ref()
                {
                    let prepared =
                        PreparedQuery::plan(session, query.to_string(), query.clone()).await?;
                    if let Some(read) = prepared.fast_path(&session.params) {
                        return explain_fast_path(&read.def.name, &read.request());
                    }
                }
                let physical = physical_plan(session, statement).await?;
                Ok(rows_result(
                    session,
                    physical.schema(),
                    execute_stream(physical, session.ctx.task_ctx())?,
                ))
            }
            other => Err(SqlError::unsupported(format!(
                "statement not supported yet: {}",
                first_words(&other.to_string())
            ))),
        }
    }
}

#[async_trait]
impl QueryHandler for SqlEngine {
    type Session = SqlSession;

    fn new_session(&self) -> SqlSession {
        let txn = Arc::new(TxnSlot::default());
        let config = SessionConfig::new()
            .with_default_catalog_and_schema(CATALOG, SEARCH_PATH_SCHEMA)
            .with_create_default_catalog_and_schema(false);
        let mut ctx = SessionContext::new_with_config(config);
        let reader = Arc::new(ReaderSlot::default());
        let settings = Arc::new(SharedSettings::default());
        let catalog = StorageCatalog {
            reader: reader.clone(),
            settings: settings.clone(),
            rows: Arc::new(MemorySchemaProvider::new()),
        };
        ctx.register_catalog(CATALOG, Arc::new(catalog));
        // Registering a planner on a fresh context cannot fail.
        let _ = ctx.register_expr_planner(Arc::new(IntegerArithmetic::new()));
        let system = CatalogSource {
            reader: reader.clone(),
            settings: settings.clone(),
        };
        for function in settings::functions(&settings, &reader)
            .into_iter()
            .chain(pg_catalog::functions(&system))
            .chain(timeseries::scalar_functions())
            .chain([crate::arith::mod_function()])
        {
            ctx.register_udf(function);
        }
        for function in own_aggregates() {
            ctx.register_udaf(function);
        }
        SqlSession {
            ctx,
            txn,
            reader,
            status: TransactionStatus::Idle,
            isolation: Isolation::ReadCommitted,
            block_used: false,
            settings,
            params: Vec::new(),
            stream_failed: Arc::new(AtomicBool::new(false)),
            plans: PlanCache::default(),
            copy: None,
            implicit: Implicit::Off,
            interrupt: Arc::new(Interrupt::default()),
            watch: None,
            statement_timeout: None,
        }
    }

    async fn execute(
        &self,
        session: &mut SqlSession,
        sql: &str,
        params: &[ScalarValue],
    ) -> Vec<Result<StatementResult>> {
        // A COPY FROM whose data never ended is given up.
        if let Some(copy) = session.copy.take() {
            copy::abort(session, &copy);
        }
        // A row stream of an earlier call failed while read: that error
        // aborted the block, as it would have mid-statement.
        if session.stream_failed.swap(false, Ordering::Relaxed)
            && session.status == TransactionStatus::InBlock
        {
            session.status = TransactionStatus::Failed;
        }
        let watch = session.interrupt.start(session.statement_timeout);
        session.watch = Some(watch.clone());
        // The fast path is a few synchronous reads: not worth a race (its
        // rows, if a range, still check the watch).
        if session.status == TransactionStatus::Idle
            && !session.in_implicit()
            && let Some(prepared) = session.plans.get(sql)
            && let Some(result) = self.run_fast_autocommit(session, &prepared, params)
        {
            return vec![result];
        }
        // Boxed: the general path's future is large, and a caller moves
        // this one (the fast path's) on every call.
        let work = Box::pin(self.execute_statements(session, sql, params));
        let results = match watch.run(work).await {
            Ok(results) => results,
            Err(stop) => {
                interrupted(session);
                vec![Err(stop.error())]
            }
        };
        // SET, RESET, the end of a block or set_config() may have changed it.
        session.statement_timeout = session.settings.lock().timeout("statement_timeout");
        results
    }

    async fn describe(&self, session: &mut SqlSession, sql: &str) -> Result<Description> {
        let mut statements = parse(sql)?;
        let statement = match (statements.pop(), statements.is_empty()) {
            (Some(statement), true) => statement,
            (None, _) => {
                return Ok(Description {
                    params: Vec::new(),
                    columns: None,
                });
            }
            _ => {
                return Err(SqlError::new(
                    ErrorClass::SyntaxError,
                    "cannot insert multiple commands into a prepared statement",
                ));
            }
        };
        if self.transaction_status(session) == TransactionStatus::Failed
            && !matches!(
                statement,
                Statement::Commit { .. } | Statement::Rollback { .. }
            )
        {
            return Err(aborted());
        }
        // Plan against the transaction as it stands (or a fresh snapshot).
        let reader = match session.txn.lock().as_mut() {
            Some(txn) => txn.reader(),
            None => self.db.begin(session.isolation).reader(),
        };
        session.reader.set(Some(reader));
        let described = describe_statement(session, sql, statement).await;
        session.reader.set(None);
        described
    }

    fn transaction_status(&self, session: &SqlSession) -> TransactionStatus {
        // A row stream failed while read: the block fails with it when the
        // session next runs, and reports so now.
        if session.status == TransactionStatus::InBlock
            && session.stream_failed.load(Ordering::Relaxed)
        {
            return TransactionStatus::Failed;
        }
        session.status
    }

    fn reported_settings(&self, session: &SqlSession) -> Vec<(&'static str, String)> {
        session.settings.lock().reported()
    }

    fn idle_in_transaction_timeout(&self, session: &SqlSession) -> Option<std::time::Duration> {
        session
            .settings
            .lock()
            .timeout("idle_in_transaction_session_timeout")
    }

    fn begin_implicit(&self, session: &mut SqlSession) {
        if session.status == TransactionStatus::Idle && session.implicit == Implicit::Off {
            session.implicit = Implicit::Pending;
        }
    }

    fn end_implicit(&self, session: &mut SqlSession) -> Result<()> {
        end_implicit(session)
    }

    fn storage_stats(&self) -> omendb_storage::StorageStats {
        self.db.stats()
    }

    fn canceller(&self, session: &SqlSession) -> Canceller {
        Canceller(session.interrupt.clone())
    }

    async fn copy_data(&self, session: &mut SqlSession, data: &[u8]) -> Result<()> {
        let (copy, ()) = self
            .copy_step(session, async |copy, session| {
                copy.push(session, data).await
            })
            .await?;
        session.copy = Some(copy);
        Ok(())
    }

    async fn copy_done(&self, session: &mut SqlSession) -> Result<String> {
        let (copy, tag) = self
            .copy_step(session, async |copy, session| copy.finish(session).await)
            .await?;
        if copy.autocommit
            && let Some(txn) = session.txn.lock().take()
        {
            commit(txn)?;
        }
        Ok(tag)
    }

    fn copy_fail(&self, session: &mut SqlSession, message: &str) -> SqlError {
        if let Some(copy) = session.copy.take() {
            copy::abort(session, &copy);
        }
        SqlError::new(
            ErrorClass::QueryCanceled,
            format!("COPY from stdin failed: {message}"),
        )
    }
}

/// Puts `session` back in order after its statement was dropped midway:
/// a statement of its own is rolled back, a block fails, a COPY ends.
fn interrupted(session: &mut SqlSession) {
    session.reader.set(None);
    if let Some(copy) = session.copy.take() {
        copy::abort(session, &copy);
    }
    if session.status == TransactionStatus::Idle && !session.in_implicit() {
        session.txn.lock().take();
    } else {
        session.fail_block();
    }
}

/// Commits `txn`. A commit that writes waits for the WAL's fsync, which
/// must not hold up the other sessions on this runtime worker: on a
/// multi-threaded runtime the worker hands its tasks to another thread
/// meanwhile. The commit stays a synchronous call, so an interrupt can
/// never drop one midway.
fn commit(txn: Transaction) -> Result<()> {
    let multi_threaded = tokio::runtime::Handle::try_current()
        .is_ok_and(|runtime| runtime.runtime_flavor() == RuntimeFlavor::MultiThread);
    if multi_threaded && txn.writes_anything() {
        tokio::task::block_in_place(|| txn.commit())?;
    } else {
        txn.commit()?;
    }
    Ok(())
}

/// Ends the session's implicit transaction: it commits unless a statement
/// in it failed (it was rolled back then).
fn end_implicit(session: &mut SqlSession) -> Result<()> {
    let open = session.in_implicit();
    session.implicit = Implicit::Off;
    if open && let Some(txn) = session.txn.lock().take() {
        commit(txn)?;
    }
    Ok(())
}

/// The error of a statement in a failed transaction block.
fn aborted() -> SqlError {
    SqlError::new(
        ErrorClass::InFailedTransaction,
        "current transaction is aborted, commands ignored until end of transaction block",
    )
}

/// The aggregates a session has beside DataFusion's (`avg` and `sum`
/// replace DataFusion's own).
pub(crate) fn own_aggregates() -> Vec<datafusion::logical_expr::AggregateUDF> {
    timeseries::aggregate_functions()
        .into_iter()
        .chain([
            crate::average::avg_function(),
            crate::sum::sum_function(),
            crate::single_row::single_row_function(),
        ])
        .collect()
}

/// The statements of SQL text, in PostgreSQL's grammar (as sqlparser has
/// it).
fn parse_grammar(sql: &str) -> Result<Vec<Statement>> {
    pg_syntax::parse_statements(sql)
        .map_err(|e| SqlError::new(ErrorClass::SyntaxError, e.to_string()))
}

/// The statements of a client's SQL text: its grammar, and names no
/// reserved keyword can be.
pub(crate) fn parse(sql: &str) -> Result<Vec<Statement>> {
    let mut statements = parse_grammar(sql)?;
    statements
        .iter()
        .try_for_each(keywords::check_relation_names)?;
    statements.iter_mut().for_each(pg_syntax::rewrite);
    Ok(statements)
}

/// Records `ty` as the type of the parameter named `name` (`$n`).
fn set_param(params: &mut Vec<Option<ArrowType>>, name: &str, ty: Option<ArrowType>) -> Result<()> {
    let index = name
        .strip_prefix('$')
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|&i| i > 0)
        .ok_or_else(|| SqlError::new(ErrorClass::SyntaxError, format!("bad parameter {name}")))?;
    if params.len() < index {
        params.resize(index, None);
    }
    params[index - 1] = ty;
    Ok(())
}

/// Parameter types and result columns of one statement.
async fn describe_statement(
    session: &mut SqlSession,
    sql: &str,
    statement: Statement,
) -> Result<Description> {
    match statement {
        // Planned once: Execute runs the kept plan.
        Statement::Query(query) => {
            let prepared = Arc::new(PreparedQuery::plan(session, sql.into(), query).await?);
            let params = plan_params(&prepared.plan)?;
            let columns = Some(prepared.schema.clone());
            session.plans.insert(prepared);
            Ok(Description { params, columns })
        }
        // `INSERT ... VALUES ($1, ...)`: a parameter standing alone in a
        // VALUES row takes its column's type.
        Statement::Insert(insert) => {
            let mut params = Vec::new();
            let (TableObject::TableName(name), Some(source)) = (&insert.table, &insert.source)
            else {
                return Ok(Description {
                    params,
                    columns: None,
                });
            };
            let name = session.table_name(name)?;
            let table = session
                .reader
                .get()
                .ok_or_else(|| SqlError::internal("describe without a reader"))?
                .table(&name)?;
            let columns = match &insert.returning {
                Some(items) => {
                    let alias = insert::alias(&insert, &table);
                    Some(dml::returning_columns(session, &table, &alias, items).await?)
                }
                None => None,
            };
            let targets = insert
                .columns
                .iter()
                .map(column_name)
                .collect::<Result<Vec<_>>>()?;
            let targets = insert::target_positions(&table, &targets)?;
            if let SetExpr::Values(values) = source.body.as_ref() {
                for row in &values.rows {
                    for (expr, &position) in row.iter().zip(&targets) {
                        if let SqlExpr::Value(v) = expr
                            && let SqlValue::Placeholder(p) = &v.value
                        {
                            let ty = table.columns[position].data_type.arrow_type();
                            set_param(&mut params, p, Some(ty))?;
                        }
                    }
                }
            }
            Ok(Description { params, columns })
        }
        // UPDATE and DELETE: the parameters of the query that finds their
        // rows; a parameter assigned alone takes its column's type.
        Statement::Update(update) => {
            let (target, sql) = dml::update_query(session, &update)?;
            let mut params = query_params(session, &sql).await?;
            for assignment in &update.assignments {
                if let (AssignmentTarget::ColumnName(name), SqlExpr::Value(v)) =
                    (&assignment.target, &assignment.value)
                    && let SqlValue::Placeholder(p) = &v.value
                {
                    let name = column_name(name)?;
                    if let Some(column) = target.def.columns.iter().find(|c| c.name == name) {
                        set_param(&mut params, p, Some(column.data_type.arrow_type()))?;
                    }
                }
            }
            let columns = returning_columns(session, &target, update.returning.as_deref()).await?;
            Ok(Description { params, columns })
        }
        Statement::Delete(delete) => {
            let (target, sql) = dml::delete_query(session, &delete)?;
            Ok(Description {
                params: query_params(session, &sql).await?,
                columns: returning_columns(session, &target, delete.returning.as_deref()).await?,
            })
        }
        // Settings are read without effects: SHOW's columns are its own.
        Statement::ShowVariable { variable } => Ok(Description {
            params: Vec::new(),
            columns: show(session, &variable)?.columns(),
        }),
        Statement::Explain { .. } => Ok(Description {
            params: Vec::new(),
            columns: Some(explain_schema()),
        }),
        _ => Ok(Description {
            params: Vec::new(),
            columns: None,
        }),
    }
}

/// The columns of an UPDATE's or DELETE's RETURNING list, if it has one.
async fn returning_columns(
    session: &SqlSession,
    target: &dml::Target,
    items: Option<&[datafusion::sql::sqlparser::ast::SelectItem]>,
) -> Result<Option<SchemaRef>> {
    match items {
        Some(items) => Ok(Some(
            dml::returning_columns(session, &target.def, &target.alias, items).await?,
        )),
        None => Ok(None),
    }
}

/// The types DataFusion infers for the parameters of the query `sql`.
async fn query_params(session: &SqlSession, sql: &str) -> Result<Vec<Option<ArrowType>>> {
    let mut statements = parse_grammar(sql)?;
    let statement = statements
        .pop()
        .ok_or_else(|| SqlError::internal(format!("no statement in {sql}")))?;
    let plan = logical_plan(session, statement).await?;
    plan_params(&plan)
}

/// The type of each `$n` of `plan`, where DataFusion can tell.
fn plan_params(plan: &LogicalPlan) -> Result<Vec<Option<ArrowType>>> {
    let mut params = Vec::new();
    for (name, ty) in plan.get_parameter_types()? {
        set_param(&mut params, &name, ty)?;
    }
    Ok(params)
}

/// The isolation a list of transaction modes asks for; SERIALIZABLE runs
/// as REPEATABLE READ (snapshot isolation), and SHOW will say so.
fn isolation_of(modes: &[TransactionMode]) -> Option<Isolation> {
    modes.iter().rev().find_map(|mode| match mode {
        TransactionMode::IsolationLevel(level) => Some(match level {
            TransactionIsolationLevel::RepeatableRead | TransactionIsolationLevel::Serializable => {
                Isolation::RepeatableRead
            }
            _ => Isolation::ReadCommitted,
        }),
        TransactionMode::AccessMode(_) => None,
    })
}

/// The text a SET assigns; `None` for DEFAULT.
fn setting_text(values: &[SqlExpr]) -> Result<Option<String>> {
    let mut parts = Vec::with_capacity(values.len());
    for value in values {
        parts.push(match value {
            SqlExpr::Identifier(id)
                if id.quote_style.is_none() && id.value.eq_ignore_ascii_case("default") =>
            {
                return Ok(None);
            }
            SqlExpr::Identifier(id) => ident(id),
            SqlExpr::Value(v) => match &v.value {
                SqlValue::SingleQuotedString(s) | SqlValue::DoubleQuotedString(s) => s.clone(),
                SqlValue::Number(n, _) => n.to_string(),
                SqlValue::Boolean(b) => if *b { "on" } else { "off" }.to_string(),
                other => other.to_string(),
            },
            SqlExpr::UnaryOp {
                op: UnaryOperator::Minus,
                expr,
            } => format!("-{expr}"),
            other => {
                return Err(SqlError::new(
                    ErrorClass::SyntaxError,
                    format!("syntax error at or near \"{other}\""),
                ));
            }
        });
    }
    Ok(Some(parts.join(", ")))
}

/// `SHOW name`, `SHOW ALL`, `SHOW TRANSACTION ISOLATION LEVEL`.
fn show(session: &SqlSession, variable: &[Ident]) -> Result<StatementResult> {
    let name = variable
        .iter()
        .map(|i| i.value.to_lowercase())
        .collect::<Vec<_>>()
        .join(" ");
    let settings = session.settings.lock();
    let (column, value) = match name.as_str() {
        "all" => {
            let all = settings.all();
            let schema = Arc::new(Schema::new(vec![
                Field::new("name", ArrowType::Utf8, false),
                Field::new("setting", ArrowType::Utf8, false),
            ]));
            let names = StringArray::from_iter_values(all.iter().map(|(n, _)| *n));
            let values = StringArray::from_iter_values(all.iter().map(|(_, v)| v.as_str()));
            let batch =
                RecordBatch::try_new(schema.clone(), vec![Arc::new(names), Arc::new(values)])
                    .map_err(|e| SqlError::internal(e.to_string()))?;
            return Ok(StatementResult::rows(schema, vec![batch], None));
        }
        "transaction isolation level" | "transaction_isolation" => {
            let isolation = match session.txn.lock().as_ref() {
                Some(txn) => txn.isolation(),
                None => session.isolation,
            };
            let text = match isolation {
                Isolation::ReadCommitted => "read committed",
                Isolation::RepeatableRead => "repeatable read",
            };
            ("transaction_isolation".to_string(), text.to_string())
        }
        _ => (name.clone(), settings.get(&name)?),
    };
    let schema = Arc::new(Schema::new(vec![Field::new(
        column,
        ArrowType::Utf8,
        false,
    )]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(StringArray::from(vec![value]))],
    )
    .map_err(|e| SqlError::internal(e.to_string()))?;
    Ok(StatementResult::rows(schema, vec![batch], None))
}

/// Refuses `what` outside a transaction block, as PostgreSQL does.
fn in_block(session: &SqlSession, what: &str) -> Result<()> {
    match session.status {
        TransactionStatus::Idle => Err(SqlError::new(
            ErrorClass::NoActiveTransaction,
            format!("{what} can only be used in transaction blocks"),
        )),
        _ => Ok(()),
    }
}

/// A missing savepoint is PostgreSQL's 3B001.
fn no_savepoint(error: omendb_storage::StorageError) -> SqlError {
    SqlError::new(ErrorClass::InvalidSavepoint, error.to_string())
}

pub(crate) fn command(tag: &str) -> StatementResult {
    StatementResult::Command { tag: tag.into() }
}

fn first_words(sql: &str) -> String {
    sql.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// An identifier as PostgreSQL folds it: unquoted names are lower-cased.
pub(crate) fn ident(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_lowercase(),
    }
}

pub(crate) fn column_name(name: &ObjectName) -> Result<String> {
    match name.0.as_slice() {
        [part] => part
            .as_ident()
            .map(ident)
            .ok_or_else(|| SqlError::unsupported(format!("column name {name}"))),
        _ => Err(SqlError::unsupported(format!("column name {name}"))),
    }
}

/// Plans and runs the query `sql` (text the engine wrote) in the session's
/// transaction.
pub(crate) async fn query_text(
    session: &SqlSession,
    sql: &str,
) -> Result<(datafusion::arrow::datatypes::SchemaRef, Vec<RecordBatch>)> {
    let mut statements = parse_grammar(sql)?;
    let (Some(Statement::Query(mut query)), true) = (statements.pop(), statements.is_empty())
    else {
        return Err(SqlError::internal(format!("not one query: {sql}")));
    };
    let names = names::output_names(&query);
    names::alias_repeated_names(&mut query);
    let (schema, batches) = statement_rows(session, Statement::Query(query)).await?;
    let named = renamed(&schema, names);
    let batches = batches
        .into_iter()
        .map(|batch| with_schema(&named, &batch))
        .collect::<Result<Vec<_>>>()?;
    Ok((named, batches))
}

/// `batch`'s columns under `schema` (the same types, other names).
fn with_schema(schema: &SchemaRef, batch: &RecordBatch) -> Result<RecordBatch> {
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    Ok(
        RecordBatch::try_new_with_options(schema.clone(), batch.columns().to_vec(), &options)
            .map_err(datafusion::error::DataFusionError::from)?,
    )
}

/// Plans and runs a query in the session's transaction.
pub(crate) async fn query(session: &SqlSession, q: Query) -> Result<Vec<RecordBatch>> {
    Ok(statement_rows(session, Statement::Query(Box::new(q)))
        .await?
        .1)
}

/// Runs a query sent with its constants written in: through the plan kept
/// for its generic form when that plan's fast path answers with these
/// constants (exactly, or not at all), else planned as written.
async fn run_generic(session: &mut SqlSession, query: GenericQuery) -> Result<StatementResult> {
    let reader = session
        .reader
        .get()
        .ok_or_else(|| SqlError::internal("query without a reader"))?;
    let kept = session
        .plans
        .get(&query.generic_sql)
        .filter(|prepared| is_current(session, prepared, &reader));
    let generic = match kept {
        Some(prepared) => Some(prepared),
        // A generic form DataFusion cannot plan (a parameter whose type
        // it cannot infer) is planned as written instead.
        None => PreparedQuery::plan(session, query.generic_sql, query.generic)
            .await
            .ok()
            .map(Arc::new)
            .inspect(|prepared| session.plans.insert(prepared.clone())),
    };
    if let Some(prepared) = generic
        && prepared.fast_path(&query.values).is_some()
    {
        session.params = query.values;
        return run_prepared(session, prepared).await;
    }
    let prepared = Arc::new(PreparedQuery::plan(session, query.sql, query.query).await?);
    session.plans.insert(prepared.clone());
    run_prepared(session, prepared).await
}

/// Runs a prepared query in the session's transaction: through the fast
/// path when it takes it with these parameters, else through DataFusion.
async fn run_prepared(
    session: &mut SqlSession,
    prepared: Arc<PreparedQuery>,
) -> Result<StatementResult> {
    let reader = session
        .reader
        .get()
        .ok_or_else(|| SqlError::internal("query without a reader"))?;
    // A table it reads or the search path has changed since it was
    // planned: plan it again.
    let prepared = if is_current(session, &prepared, &reader) {
        prepared
    } else {
        let mut statements = parse(&prepared.sql)?;
        let Some(Statement::Query(query)) = statements.pop() else {
            return Err(SqlError::internal(format!(
                "prepared query is not a query: {}",
                prepared.sql
            )));
        };
        let again = Arc::new(PreparedQuery::plan(session, prepared.sql.clone(), query).await?);
        session.plans.insert(again.clone());
        again
    };
    if let Some(read) = prepared.fast_path(&session.params) {
        return run_fast(session, &prepared, &read, &reader);
    }
    let state = session.ctx.state();
    let mut plan = prepared.plan.clone();
    if !session.params.is_empty() {
        plan = plan.with_param_values(session.params.clone())?;
    }
    let physical = state.create_physical_plan(&plan).await?;
    let schema = renamed(&physical.schema(), prepared.names.clone());
    let stream = execute_stream(physical, session.ctx.task_ctx())?;
    Ok(rows_result(session, schema, stream))
}

/// Whether `prepared` still holds for `session` reading through `reader`:
/// no table it reads nor the search path has changed since it was planned.
fn is_current(session: &SqlSession, prepared: &PreparedQuery, reader: &TxnReader) -> bool {
    let settings = session.settings.lock();
    let search_path = settings.value("search_path").unwrap_or_default();
    prepared.is_current(reader.catalog(), search_path)
}

/// Answers `prepared` by the storage read `read` (its fast path) through
/// `reader`.
fn run_fast(
    session: &SqlSession,
    prepared: &PreparedQuery,
    read: &FastRead<'_>,
    reader: &TxnReader,
) -> Result<StatementResult> {
    let schema = prepared.schema.clone();
    let table = &read.def.name;
    if let FastTarget::Key(key) = &read.target {
        let row = reader.get(table, key)?;
        let batch = one_row(read.def, read.positions, &schema, row.as_deref())?;
        return Ok(StatementResult::rows(schema, vec![batch], None));
    }
    // `rows_result` gives the batches the query's column names.
    let scan = reader
        .scan_batches(table, &read.request())?
        .map(|batch| batch.map_err(crate::error::external));
    let stream = RecordBatchStreamAdapter::new(schema.clone(), futures::stream::iter(scan));
    Ok(rows_result(session, schema, Box::pin(stream)))
}

/// The batch of the columns at `positions` of `row` (empty without a row).
fn one_row(
    def: &TableDef,
    positions: &[usize],
    schema: &SchemaRef,
    row: Option<&[Value]>,
) -> Result<RecordBatch> {
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(positions.len());
    for &position in positions {
        let column = &def.columns[position];
        let mut builder = ColumnBuilder::new(&column.data_type, 1);
        if let Some(row) = row {
            builder.append(&row[position])?;
        }
        columns.push(builder.finish());
    }
    let options = RecordBatchOptions::new().with_row_count(Some(usize::from(row.is_some())));
    Ok(
        RecordBatch::try_new_with_options(schema.clone(), columns, &options)
            .map_err(datafusion::error::DataFusionError::from)?,
    )
}

/// EXPLAIN's answer for a query the fast path reads from storage without
/// DataFusion, in DataFusion's EXPLAIN shape (`plan_type`, `plan`).
fn explain_fast_path(table: &str, request: &ScanRequest) -> Result<StatementResult> {
    let columns = request.columns.as_deref().unwrap_or_default().join(", ");
    let plan = format!(
        "KeyLookup: table={table}, columns=[{columns}], range={}",
        range_text(&request.range)
    );
    let schema = explain_schema();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec!["fast_path"])),
        Arc::new(StringArray::from(vec![plan])),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns)
        .map_err(datafusion::error::DataFusionError::from)?;
    Ok(StatementResult::rows(schema, vec![batch], None))
}

/// The columns of EXPLAIN's answer, DataFusion's shape.
fn explain_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("plan_type", ArrowType::Utf8, false),
        Field::new("plan", ArrowType::Utf8, false),
    ]))
}

/// A query's rows for the caller: its batches under `schema` (the
/// PostgreSQL column names), and a failure while the caller reads them
/// fails the session's block.
fn rows_result(
    session: &SqlSession,
    schema: SchemaRef,
    stream: SendableRecordBatchStream,
) -> StatementResult {
    // A cancel or the statement's timeout stops the rows.
    let stream: SendableRecordBatchStream = match &session.watch {
        Some(watch) => Box::pin(Interruptible::new(stream, watch.clone())),
        None => stream,
    };
    let out = schema.clone();
    let stream = stream.and_then(move |batch| {
        let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        let renamed =
            RecordBatch::try_new_with_options(out.clone(), batch.columns().to_vec(), &options)
                .map_err(datafusion::error::DataFusionError::from);
        futures::future::ready(renamed)
    });
    let failed = session.stream_failed.clone();
    let stream = stream.inspect_err(move |_| failed.store(true, Ordering::Relaxed));
    StatementResult::Rows {
        schema: schema.clone(),
        stream: Box::pin(RecordBatchStreamAdapter::new(schema, stream)),
        tag: None,
    }
}

/// `schema` with its fields named `names` (PostgreSQL's names), when
/// there is one name per field.
pub(crate) fn renamed(
    schema: &datafusion::arrow::datatypes::SchemaRef,
    names: Option<Vec<String>>,
) -> datafusion::arrow::datatypes::SchemaRef {
    match names {
        Some(names) if names.len() == schema.fields().len() => {
            let fields: Vec<Field> = schema
                .fields()
                .iter()
                .zip(names)
                .map(|(f, name)| f.as_ref().clone().with_name(name))
                .collect();
            Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
        }
        _ => schema.clone(),
    }
}

/// DataFusion's logical plan of `statement`, each `$n` that is cast
/// (`$1::bigint`) and otherwise untyped taking the cast's type, as
/// PostgreSQL infers it (a driver then sends a bigint).
pub(crate) async fn logical_plan(
    session: &SqlSession,
    statement: Statement,
) -> Result<LogicalPlan> {
    let plan = session
        .ctx
        .state()
        .statement_to_plan(DfStatement::Statement(Box::new(statement)))
        .await?;
    let typed = plan.transform_up_with_subqueries(|node| {
        node.map_expressions(|expr| expr.transform_up(|expr| Ok(typed_cast_param(expr))))
    })?;
    Ok(typed.data)
}

/// `$n::type` with `$n` given that type, if `expr` is one and `$n` has no
/// type yet.
fn typed_cast_param(expr: Expr) -> Transformed<Expr> {
    let Expr::Cast(Cast { expr: inner, field }) = &expr else {
        return Transformed::no(expr);
    };
    let Expr::Placeholder(Placeholder { id, field: None }) = inner.as_ref() else {
        return Transformed::no(expr);
    };
    let typed = Arc::new(Field::new("", field.data_type().clone(), true));
    let param = Expr::Placeholder(Placeholder::new_with_field(id.clone(), Some(typed)));
    Transformed::yes(Expr::Cast(Cast::new_from_field(
        Box::new(param),
        field.clone(),
    )))
}

/// The physical plan of a statement DataFusion answers with rows, its
/// parameters filled in.
async fn physical_plan(
    session: &SqlSession,
    statement: Statement,
) -> Result<Arc<dyn ExecutionPlan>> {
    let state = session.ctx.state();
    let mut plan = logical_plan(session, statement).await?;
    if !session.params.is_empty() {
        plan = plan.with_param_values(session.params.clone())?;
    }
    Ok(state.create_physical_plan(&plan).await?)
}

/// Plans and runs a statement DataFusion answers with rows (a query, an
/// EXPLAIN), collecting them.
async fn statement_rows(
    session: &SqlSession,
    statement: Statement,
) -> Result<(datafusion::arrow::datatypes::SchemaRef, Vec<RecordBatch>)> {
    let physical = physical_plan(session, statement).await?;
    let schema = physical.schema();
    let batches = collect(physical, session.ctx.task_ctx()).await?;
    Ok((schema, batches))
}

/// `array` as a column of type `ty`: a value that does not convert is an
/// error (22P02, or 22003 when out of range), never a silent NULL.
pub(crate) fn cast_column(array: &ArrayRef, ty: &omendb_storage::DataType) -> Result<ArrayRef> {
    let options = CastOptions {
        safe: false,
        ..CastOptions::default()
    };
    cast_with_options(array.as_ref(), &ty.arrow_type(), &options)
        .map_err(|e| SqlError::from(datafusion::error::DataFusionError::from(e)))
}

/// A column's default, evaluated now.
pub(crate) async fn default_value(
    session: &SqlSession,
    expr: &str,
    column: &omendb_storage::ColumnDef,
) -> Result<Value> {
    let (_, batches) = query_text(session, &format!("SELECT {expr}")).await?;
    let array = batches
        .first()
        .filter(|b| b.num_rows() == 1)
        .map(|b| b.column(0).clone())
        .ok_or_else(|| SqlError::internal(format!("default {expr} gave no value")))?;
    let array = cast_column(&array, &column.data_type)?;
    Ok(value_at(array.as_ref(), 0, &column.data_type)?)
}
