//! One client connection: its SQL session and the handlers `pgwire` calls
//! for it. Startup trusts the client (the server listens on loopback
//! only until authentication is built). A simple Query runs its
//! statements through [`QueryHandler::execute`] and answers each with
//! rows and a command tag or an error, then ReadyForQuery with the
//! session's own transaction status.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::{Sink, SinkExt, StreamExt};
use omendb_sql::datafusion::arrow::datatypes::Schema;
use omendb_sql::datafusion::execution::SendableRecordBatchStream;
use omendb_sql::{QueryHandler, SqlError, StatementResult, TransactionStatus};
use pgwire::api::auth::StartupHandler;
use pgwire::api::auth::noop::NoopStartupHandler;
use pgwire::api::query::SimpleQueryHandler;
use pgwire::api::results::Response;
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, PgWireConnectionState, PgWireServerHandlers};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::response::{
    CommandComplete, EmptyQueryResponse, ReadyForQuery, TransactionStatus as WireStatus,
};
use pgwire::messages::simplequery::Query;
use tokio::sync::Mutex;

use super::errors::error_response;
use super::rows::{data_rows, row_description};

/// The handlers of one connection.
pub(super) struct Connection<H: QueryHandler> {
    session: Arc<Session<H>>,
}

impl<H: QueryHandler> Connection<H> {
    pub(super) fn new(engine: Arc<H>) -> Connection<H> {
        let session = Mutex::new(engine.new_session());
        Connection {
            session: Arc::new(Session { engine, session }),
        }
    }
}

impl<H: QueryHandler + 'static> PgWireServerHandlers for Connection<H> {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.session.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.session.clone()
    }
}

/// Sends a statement's rows: their description, each row, then the command
/// tag (`SELECT n` for a query), or an ErrorResponse if the stream fails
/// (then false).
async fn send_rows<C>(
    client: &mut C,
    schema: &Schema,
    mut stream: SendableRecordBatchStream,
    tag: Option<String>,
) -> PgWireResult<bool>
where
    C: Sink<PgWireBackendMessage> + Unpin,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    client
        .feed(PgWireBackendMessage::RowDescription(row_description(
            schema,
        )))
        .await?;
    let mut rows = 0;
    while let Some(batch) = stream.next().await {
        let batch = match batch {
            Ok(batch) => batch,
            Err(error) => {
                let error = error_response(&SqlError::from(error));
                client
                    .feed(PgWireBackendMessage::ErrorResponse(error))
                    .await?;
                return Ok(false);
            }
        };
        rows += batch.num_rows();
        for row in data_rows(&batch) {
            client.feed(PgWireBackendMessage::DataRow(row)).await?;
        }
    }
    let tag = tag.unwrap_or_else(|| format!("SELECT {rows}"));
    client
        .feed(PgWireBackendMessage::CommandComplete(CommandComplete::new(
            tag,
        )))
        .await?;
    Ok(true)
}

/// A connection's SQL session. Messages of one connection arrive one at a
/// time, so the lock is never contended; it makes the session shareable
/// with the handlers `pgwire` holds.
pub(super) struct Session<H: QueryHandler> {
    engine: Arc<H>,
    session: Mutex<H::Session>,
}

#[async_trait]
impl<H: QueryHandler + 'static> NoopStartupHandler for Session<H> {}

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
        let mut session = self.session.lock().await;
        let results = self.engine.execute(&mut session, &query.query, &[]).await;
        if results.is_empty() {
            client
                .feed(PgWireBackendMessage::EmptyQueryResponse(
                    EmptyQueryResponse::new(),
                ))
                .await?;
        }
        let mut stream_failed = false;
        for result in results {
            match result {
                Ok(StatementResult::Command { tag }) => {
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
                    stream_failed = !send_rows(client, &schema, stream, tag).await?;
                }
                Err(error) => {
                    client
                        .feed(PgWireBackendMessage::ErrorResponse(error_response(&error)))
                        .await?;
                }
            }
            // An error ends the query string, as in PostgreSQL.
            if stream_failed {
                break;
            }
        }
        let status = match self.engine.transaction_status(&session) {
            TransactionStatus::Idle => WireStatus::Idle,
            // The engine fails the block for a failed row stream when the
            // session next runs; the client learns it now.
            TransactionStatus::InBlock if stream_failed => WireStatus::Error,
            TransactionStatus::InBlock => WireStatus::Transaction,
            TransactionStatus::Failed => WireStatus::Error,
        };
        client.set_state(PgWireConnectionState::ReadyForQuery);
        client.set_transaction_status(status);
        client
            .send(PgWireBackendMessage::ReadyForQuery(ReadyForQuery::new(
                status,
            )))
            .await?;
        Ok(())
    }

    /// Not called: [`Self::on_query`] runs simple queries itself.
    async fn do_query<C>(&self, _client: &mut C, _query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        Err(PgWireError::UserError(Box::new(ErrorInfo::new(
            "ERROR".to_owned(),
            "XX000".to_owned(),
            "simple queries run through on_query".to_owned(),
        ))))
    }
}
