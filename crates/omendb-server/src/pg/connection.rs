//! One client connection: its SQL session, its prepared statements and
//! portals, and the handlers `pgwire` calls for it (startup in
//! `startup.rs`, the extended protocol in `extended.rs`). A simple Query
//! runs its statements through [`QueryHandler::execute`] and answers each
//! with rows and a command tag or an error, then ReadyForQuery with the
//! session's own transaction status.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::{Sink, SinkExt};
use omendb_sql::{QueryHandler, StatementResult, TransactionStatus};
use pgwire::api::auth::StartupHandler;
use pgwire::api::cancel::CancelHandler;
use pgwire::api::copy::CopyHandler;
use pgwire::api::portal::Format;
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::Response;
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, PgWireConnectionState, PgWireServerHandlers};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::response::{
    CommandComplete, EmptyQueryResponse, ReadyForQuery, TransactionStatus as WireStatus,
};
use pgwire::messages::simplequery::Query;
use pgwire::messages::startup::ParameterStatus;
use std::time::Instant;
use tokio::sync::{Mutex, MutexGuard};

use crate::metrics::{Metrics, Protocol};

use super::cancel::{Registration, Registry};
use super::copy::{send_copy_out, start_copy_in};
use super::deallocate::{self, Deallocate};
use super::errors::{error_response, wire_error};
use super::extended::{Portal, Prepared, RowsLeft, send_rows};
use super::idle::IdleTimer;
use super::rows::row_description;

/// The handlers of one connection.
pub(super) struct Connection<H: QueryHandler> {
    session: Arc<Session<H>>,
}

impl<H: QueryHandler> Connection<H> {
    /// A connection of a server whose connections share `registry`;
    /// refused at startup unless `within_limit`.
    pub(super) fn new(
        engine: Arc<H>,
        registry: Arc<Registry>,
        within_limit: bool,
    ) -> Connection<H> {
        let state = Mutex::new(State {
            sql: engine.new_session(),
            statements: HashMap::new(),
            portals: HashMap::new(),
            reported: Vec::new(),
            registration: None,
        });
        let session = Arc::new(Session {
            engine,
            state,
            registry,
            within_limit,
            idle: Arc::new(IdleTimer::default()),
        });
        Connection { session }
    }

    /// The connection's idle-in-transaction timer (see `idle.rs`).
    pub(super) fn idle_timer(&self) -> Arc<IdleTimer> {
        self.session.idle.clone()
    }
}

impl<H: QueryHandler + 'static> PgWireServerHandlers for Connection<H> {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.session.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.session.clone()
    }

    fn copy_handler(&self) -> Arc<impl CopyHandler> {
        self.session.clone()
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        self.session.registry.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.session.clone()
    }
}

/// A connection's session. Messages of one connection arrive one at a
/// time, so the lock is never contended; it makes the session shareable
/// with the handlers `pgwire` holds.
pub(super) struct Session<H: QueryHandler> {
    pub(super) engine: Arc<H>,
    pub(super) state: Mutex<State<H>>,
    pub(super) registry: Arc<Registry>,
    /// Whether the server's connection limit lets this one in.
    pub(super) within_limit: bool,
    pub(super) idle: Arc<IdleTimer>,
}

/// What a connection holds between messages.
pub(super) struct State<H: QueryHandler> {
    /// The SQL session: settings and transaction.
    pub(super) sql: H::Session,
    /// Prepared statements by name (`""`: the unnamed one).
    pub(super) statements: HashMap<String, Arc<Prepared>>,
    /// Portals by name (`""`: the unnamed one).
    pub(super) portals: HashMap<String, Portal>,
    /// The reported settings as the client was last told them.
    pub(super) reported: Vec<(&'static str, String)>,
    /// Cancel requests reach the session while this is held.
    pub(super) registration: Option<Registration>,
}

impl<H: QueryHandler> Session<H> {
    /// The session's transaction status as ReadyForQuery reports it.
    pub(super) fn wire_status(&self, state: &State<H>) -> WireStatus {
        match self.engine.transaction_status(&state.sql) {
            TransactionStatus::Idle => WireStatus::Idle,
            TransactionStatus::InBlock => WireStatus::Transaction,
            TransactionStatus::Failed => WireStatus::Error,
        }
    }
}

impl<H: QueryHandler> Session<H> {
    pub(super) fn metrics(&self) -> &Metrics {
        &self.registry.metrics
    }

    /// The state, for a message that just arrived (so the connection is
    /// not idle).
    pub(super) async fn lock_state(&self) -> MutexGuard<'_, State<H>> {
        self.idle.disarm();
        self.state.lock().await
    }

    /// Ends a simple Query or an extended-protocol Sync: ReadyForQuery
    /// with the session's status (a portal ends with its transaction).
    pub(super) async fn ready_for_query<C>(
        &self,
        client: &mut C,
        state: &mut State<H>,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let status = self.wire_status(state);
        state.end_of_transaction(status);
        match status {
            WireStatus::Idle => self.idle.disarm(),
            _ => self
                .idle
                .arm(self.engine.idle_in_transaction_timeout(&state.sql)),
        }
        client.set_state(PgWireConnectionState::ReadyForQuery);
        client.set_transaction_status(status);
        client
            .send(PgWireBackendMessage::ReadyForQuery(ReadyForQuery::new(
                status,
            )))
            .await?;
        Ok(())
    }

    /// Tells the client of each reported setting that `tag`'s command
    /// may have changed (SET, RESET, the end of a block) and did.
    pub(super) async fn report_changes<C>(
        &self,
        client: &mut C,
        state: &mut State<H>,
        tag: &str,
    ) -> PgWireResult<()>
    where
        C: Sink<PgWireBackendMessage> + Unpin,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if !["SET", "RESET", "COMMIT", "ROLLBACK"].contains(&tag) {
            return Ok(());
        }
        let now = self.engine.reported_settings(&state.sql);
        for (name, value) in &now {
            if !state.reported.contains(&(*name, value.clone())) {
                let status = ParameterStatus::new((*name).to_owned(), value.clone());
                client
                    .feed(PgWireBackendMessage::ParameterStatus(status))
                    .await?;
            }
        }
        state.reported = now;
        Ok(())
    }
}

impl<H: QueryHandler> State<H> {
    /// Drops the prepared statements `target` names; the command tag.
    pub(super) fn deallocate(&mut self, target: Deallocate) -> PgWireResult<&'static str> {
        match target {
            Deallocate::All => {
                self.statements.clear();
                Ok("DEALLOCATE ALL")
            }
            Deallocate::Named(name) => match self.statements.remove(&name) {
                Some(_) => Ok("DEALLOCATE"),
                None => Err(wire_error(
                    "26000",
                    format!("prepared statement \"{name}\" does not exist"),
                )),
            },
        }
    }

    /// Drops the portals when no transaction block is open: a portal
    /// lives until the end of its transaction, as in PostgreSQL.
    pub(super) fn end_of_transaction(&mut self, status: WireStatus) {
        if status == WireStatus::Idle {
            self.portals.clear();
        }
    }
}

#[async_trait]
impl<H: QueryHandler + 'static> SimpleQueryHandler for Session<H> {
    async fn on_query<C>(&self, client: &mut C, query: Query) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if !matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
            return Err(PgWireError::NotReadyForQuery);
        }
        client.set_state(PgWireConnectionState::QueryInProgress);
        let mut state = self.lock_state().await;
        // A simple Query replaces the unnamed statement and portal.
        state.statements.remove("");
        state.portals.remove("");
        if let Some(target) = deallocate::parse(&query.query) {
            let message = match state.deallocate(target) {
                Ok(tag) => PgWireBackendMessage::CommandComplete(CommandComplete::new(tag.into())),
                Err(error) => PgWireBackendMessage::ErrorResponse(ErrorInfo::from(error).into()),
            };
            client.feed(message).await?;
            return self.ready_for_query(client, &mut state).await;
        }
        let mut started = Instant::now();
        let results = self.engine.execute(&mut state.sql, &query.query, &[]).await;
        if results.is_empty() {
            client
                .feed(PgWireBackendMessage::EmptyQueryResponse(
                    EmptyQueryResponse::new(),
                ))
                .await?;
        }
        for result in results {
            match result {
                Ok(StatementResult::Command { tag }) => {
                    self.report_changes(client, &mut state, &tag).await?;
                    self.metrics()
                        .statement(Protocol::Pg, &query.query, &tag, started.elapsed());
                    client
                        .feed(PgWireBackendMessage::CommandComplete(CommandComplete::new(
                            tag,
                        )))
                        .await?;
                }
                Ok(StatementResult::Rows {
                    schema,
                    stream,
                    tag,
                }) => {
                    let text = Format::UnifiedText;
                    let description = row_description(&schema, &text);
                    client
                        .feed(PgWireBackendMessage::RowDescription(description))
                        .await?;
                    let mut rows = RowsLeft::new(stream, tag);
                    match send_rows(client, &mut rows, &text, None).await {
                        Ok(_) => self.metrics().statement(
                            Protocol::Pg,
                            &query.query,
                            rows.kind_tag(),
                            started.elapsed(),
                        ),
                        // A failed stream ends the query string, as an
                        // error does in PostgreSQL.
                        Err(PgWireError::UserError(error)) => {
                            self.metrics().error(&error.code);
                            client
                                .feed(PgWireBackendMessage::ErrorResponse((*error).into()))
                                .await?;
                            break;
                        }
                        Err(other) => return Err(other),
                    }
                }
                Ok(StatementResult::CopyIn { columns }) => {
                    // ReadyForQuery follows the COPY's end.
                    return start_copy_in(client, columns, false).await;
                }
                Ok(StatementResult::CopyOut { columns, data }) => {
                    if let Err(error) = send_copy_out(client, columns, data).await {
                        let error = ErrorInfo::from(error).into();
                        client
                            .feed(PgWireBackendMessage::ErrorResponse(error))
                            .await?;
                        break;
                    }
                }
                Err(error) => {
                    self.metrics().error(error.sqlstate());
                    client
                        .feed(PgWireBackendMessage::ErrorResponse(error_response(&error)))
                        .await?;
                }
            }
            started = Instant::now();
        }
        self.ready_for_query(client, &mut state).await
    }

    /// Not called: [`Self::on_query`] runs simple queries itself.
    async fn do_query<C>(&self, _client: &mut C, _query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        Err(wire_error("XX000", "simple queries run through on_query"))
    }
}
