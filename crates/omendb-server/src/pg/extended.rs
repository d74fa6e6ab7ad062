//! The extended query protocol: Parse describes a statement once (the
//! type of each parameter, the columns of its rows) and keeps it; Bind
//! reads parameter values into a portal; Execute runs the portal, sending
//! at most the rows asked for (then PortalSuspended; the next Execute goes
//! on from there); Describe, Close and Sync as PostgreSQL answers them.
//! Statements and portals live in the connection's state; a portal ends
//! with its transaction.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::{Sink, SinkExt, StreamExt};
use omendb_sql::datafusion::arrow::datatypes::SchemaRef;
use omendb_sql::datafusion::arrow::record_batch::RecordBatch;
use omendb_sql::datafusion::common::ScalarValue;
use omendb_sql::datafusion::execution::SendableRecordBatchStream;
use omendb_sql::{QueryHandler, SqlError, StatementResult};
use pgwire::api::portal::{Format, Portal as WirePortal};
use pgwire::api::query::ExtendedQueryHandler;
use pgwire::api::results::Response;
use pgwire::api::stmt::NoopQueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, Type};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::data::{NoData, ParameterDescription};
use pgwire::messages::extendedquery::{
    Bind, BindComplete, Close, CloseComplete, Describe, Execute, Parse, ParseComplete,
    PortalSuspended, Sync as PgSync, TARGET_TYPE_BYTE_PORTAL, TARGET_TYPE_BYTE_STATEMENT,
};
use pgwire::messages::response::{CommandComplete, EmptyQueryResponse};

use std::time::Instant;

use super::connection::Session;
use super::copy::{send_copy_out, start_copy_in};
use super::deallocate;
use super::errors::{error_response, user_error, wire_error};
use super::params::{Param, bind_values, formats};
use super::rows::{data_row, row_description};
use crate::metrics::Protocol;

/// A statement prepared by Parse.
#[derive(Debug)]
pub(super) struct Prepared {
    sql: String,
    params: Vec<Param>,
    /// The columns of its rows, if it returns rows.
    columns: Option<SchemaRef>,
}

/// A statement bound to parameter values by Bind.
pub(super) struct Portal {
    statement: Arc<Prepared>,
    params: Vec<ScalarValue>,
    /// The format of each result column.
    formats: Format,
    state: PortalState,
}

enum PortalState {
    /// Not run yet.
    Ready,
    /// Run; rows are left to send.
    Rows(RowsLeft),
    /// Run to its end; `rows` if it returned rows.
    Done { rows: bool },
}

/// A statement's rows still to send.
pub(super) struct RowsLeft {
    stream: SendableRecordBatchStream,
    /// A batch partly sent, and its next row.
    pending: Option<(RecordBatch, usize)>,
    /// The command tag; `None` for a query (`SELECT n`).
    tag: Option<String>,
}

impl RowsLeft {
    pub(super) fn new(stream: SendableRecordBatchStream, tag: Option<String>) -> RowsLeft {
        RowsLeft {
            stream,
            pending: None,
            tag,
        }
    }

    /// A tag of the statement's kind (for metrics).
    pub(super) fn kind_tag(&self) -> &str {
        self.tag.as_deref().unwrap_or("SELECT")
    }
}

/// The name of a statement or portal; `""` is the unnamed one.
fn name_of(name: Option<String>) -> String {
    name.unwrap_or_default()
}

#[async_trait]
impl<H: QueryHandler + 'static> ExtendedQueryHandler for Session<H> {
    /// Statements live in the connection's state, not in pgwire's store.
    type Statement = String;
    type QueryParser = NoopQueryParser;

    fn query_parser(&self) -> Arc<NoopQueryParser> {
        Arc::new(NoopQueryParser)
    }

    async fn on_parse<C>(&self, client: &mut C, message: Parse) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = name_of(message.name);
        let mut state = self.lock_state().await;
        if !name.is_empty() && state.statements.contains_key(&name) {
            return Err(wire_error(
                "42P05",
                format!("prepared statement \"{name}\" already exists"),
            ));
        }
        let description = self
            .engine
            .describe(&mut state.sql, &message.query)
            .await
            .map_err(|e| user_error(&e))?;
        // A declared type of 0 leaves the parameter's type to the server.
        let declared: Vec<Option<Type>> = message
            .type_oids
            .iter()
            .map(|&oid| Type::from_oid(oid))
            .collect();
        let count = declared.len().max(description.params.len());
        let params = (0..count)
            .map(|i| {
                Param::new(
                    declared.get(i).cloned().flatten(),
                    description.params.get(i).cloned().flatten(),
                )
            })
            .collect();
        let prepared = Prepared {
            sql: message.query,
            params,
            columns: description.columns,
        };
        state.statements.insert(name, Arc::new(prepared));
        // Buffered: Sync (ReadyForQuery) or the client's Flush sends it,
        // as PostgreSQL does (one write per round trip, not one per message).
        client
            .feed(PgWireBackendMessage::ParseComplete(ParseComplete::new()))
            .await?;
        Ok(())
    }

    async fn on_bind<C>(&self, client: &mut C, message: Bind) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statement_name = name_of(message.statement_name);
        let portal_name = name_of(message.portal_name);
        let mut state = self.lock_state().await;
        let statement = state
            .statements
            .get(&statement_name)
            .cloned()
            .ok_or_else(|| {
                wire_error(
                    "26000",
                    format!("prepared statement \"{statement_name}\" does not exist"),
                )
            })?;
        if !portal_name.is_empty() && state.portals.contains_key(&portal_name) {
            return Err(wire_error(
                "42P03",
                format!("portal \"{portal_name}\" already exists"),
            ));
        }
        let (supplied, required) = (message.parameters.len(), statement.params.len());
        if supplied != required {
            return Err(wire_error(
                "08P01",
                format!(
                    "bind message supplies {supplied} parameters, but prepared statement \"{statement_name}\" requires {required}"
                ),
            ));
        }
        let codes = &message.parameter_format_codes;
        let param_formats = formats(codes, required, || {
            format!(
                "bind message has {} parameter formats but {required} parameters",
                codes.len()
            )
        })?;
        let columns = statement.columns.as_ref().map_or(0, |c| c.fields().len());
        let codes = &message.result_column_format_codes;
        let result_formats = formats(codes, columns, || {
            format!(
                "bind message has {} result formats but query has {columns} columns",
                codes.len()
            )
        })?;
        let params = bind_values(&statement.params, &param_formats, &message.parameters)?;
        let portal = Portal {
            statement,
            params,
            formats: result_formats,
            state: PortalState::Ready,
        };
        state.portals.insert(portal_name, portal);
        // Buffered, as ParseComplete is.
        client
            .feed(PgWireBackendMessage::BindComplete(BindComplete::new()))
            .await?;
        Ok(())
    }

    async fn on_execute<C>(&self, client: &mut C, message: Execute) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = name_of(message.name);
        // 0 (or less) asks for every row.
        let limit = usize::try_from(message.max_rows).ok().filter(|&n| n > 0);
        let started = Instant::now();
        let mut guard = self.lock_state().await;
        let state = &mut *guard;
        let portal = state
            .portals
            .get_mut(&name)
            .ok_or_else(|| wire_error("34000", format!("portal \"{name}\" does not exist")))?;
        if matches!(portal.state, PortalState::Ready) {
            if let Some(target) = deallocate::parse(&portal.statement.sql) {
                portal.state = PortalState::Done { rows: false };
                let tag = state.deallocate(target)?;
                client
                    .feed(PgWireBackendMessage::CommandComplete(CommandComplete::new(
                        tag.into(),
                    )))
                    .await?;
                return Ok(());
            }
            // Statements up to the Sync run as one transaction.
            self.engine.begin_implicit(&mut state.sql);
            let sql = &portal.statement.sql;
            let results = self
                .engine
                .execute(&mut state.sql, sql, &portal.params)
                .await;
            match results.into_iter().next() {
                // An empty query stays ready: each Execute answers it again.
                None => {
                    client
                        .feed(PgWireBackendMessage::EmptyQueryResponse(
                            EmptyQueryResponse::new(),
                        ))
                        .await?;
                    return Ok(());
                }
                Some(Err(error)) => {
                    portal.state = PortalState::Done { rows: false };
                    self.metrics().error(error.sqlstate());
                    return Err(user_error(&error));
                }
                Some(Ok(StatementResult::Command { tag })) => {
                    portal.state = PortalState::Done { rows: false };
                    self.metrics().statement(
                        Protocol::Pg,
                        &portal.statement.sql,
                        &tag,
                        started.elapsed(),
                    );
                    self.report_changes(client, state, &tag).await?;
                    client
                        .feed(PgWireBackendMessage::CommandComplete(CommandComplete::new(
                            tag,
                        )))
                        .await?;
                    return Ok(());
                }
                Some(Ok(StatementResult::CopyIn { columns })) => {
                    portal.state = PortalState::Done { rows: false };
                    return start_copy_in(client, columns, true).await;
                }
                Some(Ok(StatementResult::CopyOut { columns, data })) => {
                    portal.state = PortalState::Done { rows: false };
                    return send_copy_out(client, columns, data).await;
                }
                Some(Ok(StatementResult::Rows { stream, tag, .. })) => {
                    portal.state = PortalState::Rows(RowsLeft::new(stream, tag));
                }
            }
        }
        match &mut portal.state {
            PortalState::Rows(rows) => {
                let sent = send_rows(client, rows, &portal.formats, limit).await;
                match &sent {
                    // Suspended: more rows to come.
                    Ok(true) => {}
                    Ok(false) => {
                        let tag = rows.kind_tag();
                        self.metrics().statement(
                            Protocol::Pg,
                            &portal.statement.sql,
                            tag,
                            started.elapsed(),
                        );
                        portal.state = PortalState::Done { rows: true };
                    }
                    Err(error) => {
                        if let PgWireError::UserError(info) = error {
                            self.metrics().error(&info.code);
                        }
                        portal.state = PortalState::Done { rows: true };
                    }
                }
                sent.map(|_| ())
            }
            PortalState::Done { rows: true } => {
                client
                    .feed(PgWireBackendMessage::CommandComplete(CommandComplete::new(
                        "SELECT 0".to_owned(),
                    )))
                    .await?;
                Ok(())
            }
            PortalState::Done { rows: false } | PortalState::Ready => Err(wire_error(
                "55000",
                format!("portal \"{name}\" cannot be run"),
            )),
        }
    }

    async fn on_describe<C>(&self, client: &mut C, message: Describe) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = name_of(message.name);
        let state = self.lock_state().await;
        let (statement, formats) = match message.target_type {
            TARGET_TYPE_BYTE_STATEMENT => {
                let statement = state.statements.get(&name).ok_or_else(|| {
                    wire_error(
                        "26000",
                        format!("prepared statement \"{name}\" does not exist"),
                    )
                })?;
                let types = statement.params.iter().map(|p| p.pg.oid()).collect();
                client
                    .feed(PgWireBackendMessage::ParameterDescription(
                        ParameterDescription::new(types),
                    ))
                    .await?;
                // Formats are not chosen until Bind: text meanwhile.
                (statement.clone(), Format::UnifiedText)
            }
            TARGET_TYPE_BYTE_PORTAL => {
                let portal = state.portals.get(&name).ok_or_else(|| {
                    wire_error("34000", format!("portal \"{name}\" does not exist"))
                })?;
                (portal.statement.clone(), portal.formats.clone())
            }
            other => {
                return Err(wire_error(
                    "08P01",
                    format!("invalid DESCRIBE message subtype {other}"),
                ));
            }
        };
        let message = match &statement.columns {
            Some(columns) => {
                PgWireBackendMessage::RowDescription(row_description(columns, &formats))
            }
            None => PgWireBackendMessage::NoData(NoData::new()),
        };
        client.feed(message).await?;
        Ok(())
    }

    async fn on_close<C>(&self, client: &mut C, message: Close) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = name_of(message.name);
        let mut state = self.lock_state().await;
        match message.target_type {
            TARGET_TYPE_BYTE_STATEMENT => {
                state.statements.remove(&name);
            }
            TARGET_TYPE_BYTE_PORTAL => {
                state.portals.remove(&name);
            }
            other => {
                return Err(wire_error(
                    "08P01",
                    format!("invalid CLOSE message subtype {other}"),
                ));
            }
        }
        client
            .feed(PgWireBackendMessage::CloseComplete(CloseComplete::new()))
            .await?;
        Ok(())
    }

    async fn on_sync<C>(&self, client: &mut C, _message: PgSync) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut state = self.lock_state().await;
        // The implicit transaction commits at the Sync.
        if let Err(error) = self.engine.end_implicit(&mut state.sql) {
            self.metrics().error(error.sqlstate());
            client
                .feed(PgWireBackendMessage::ErrorResponse(error_response(&error)))
                .await?;
        }
        self.ready_for_query(client, &mut state).await
    }

    /// Not called: [`Self::on_execute`] runs portals itself.
    async fn do_query<C>(
        &self,
        _client: &mut C,
        _portal: &WirePortal<Self::Statement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        Err(wire_error("XX000", "portals run through on_execute"))
    }
}

/// Sends the rows left, at most `limit`: then PortalSuspended and true if
/// it stopped at the limit, else the command tag and false. A failing
/// stream is an error.
pub(super) async fn send_rows<C>(
    client: &mut C,
    rows: &mut RowsLeft,
    formats: &Format,
    limit: Option<usize>,
) -> PgWireResult<bool>
where
    C: Sink<PgWireBackendMessage> + Unpin,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let mut sent = 0;
    loop {
        // PostgreSQL suspends at the limit even when no rows are left.
        if limit == Some(sent) {
            client
                .feed(PgWireBackendMessage::PortalSuspended(PortalSuspended::new()))
                .await?;
            return Ok(true);
        }
        let (batch, next) = match rows.pending.take() {
            Some(pending) => pending,
            None => match rows.stream.next().await {
                Some(Ok(batch)) => (batch, 0),
                Some(Err(error)) => return Err(user_error(&SqlError::from(error))),
                None => break,
            },
        };
        let wanted = limit.map_or(usize::MAX, |limit| limit - sent);
        let end = batch.num_rows().min(next.saturating_add(wanted));
        for row in next..end {
            client
                .feed(PgWireBackendMessage::DataRow(data_row(
                    &batch, row, formats,
                )))
                .await?;
        }
        sent += end - next;
        if end < batch.num_rows() {
            rows.pending = Some((batch, end));
        }
    }
    let tag = rows.tag.clone().unwrap_or_else(|| format!("SELECT {sent}"));
    client
        .feed(PgWireBackendMessage::CommandComplete(CommandComplete::new(
            tag,
        )))
        .await?;
    Ok(false)
}
