//! The COPY sub-protocol. COPY FROM STDIN: CopyInResponse, then the
//! client's CopyData go to [`QueryHandler::copy_data`] as they come, and
//! CopyDone ends it with the command tag (CopyFail gives it up). COPY TO
//! STDOUT: CopyOutResponse, a CopyData per line (as PostgreSQL sends
//! them; psycopg reads a row from each), CopyDone and the command tag. Both are text format (CSV is text to the protocol).

use std::fmt::Debug;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Sink, SinkExt, StreamExt};
use omendb_sql::{CopyData, QueryHandler, Result as SqlResult};
use pgwire::api::copy::CopyHandler;
use pgwire::api::{ClientInfo, PgWireConnectionState};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::copy::{
    CopyData as CopyDataMessage, CopyDone, CopyFail, CopyInResponse, CopyOutResponse,
};
use pgwire::messages::response::CommandComplete;

use super::connection::Session;
use super::errors::user_error;

/// Text format, for the whole row and each column.
const TEXT: i8 = 0;

fn text_formats(columns: usize) -> (i16, Vec<i16>) {
    let columns = i16::try_from(columns).unwrap_or(i16::MAX);
    (columns, vec![0; columns as usize])
}

/// Asks the client for COPY FROM data; the connection is in COPY mode
/// until CopyDone or CopyFail (`extended`: it was started by Execute).
pub(super) async fn start_copy_in<C>(
    client: &mut C,
    columns: usize,
    extended: bool,
) -> PgWireResult<()>
where
    C: ClientInfo + Sink<PgWireBackendMessage> + Unpin,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let (count, formats) = text_formats(columns);
    client
        .send(PgWireBackendMessage::CopyInResponse(CopyInResponse::new(
            TEXT, count, formats,
        )))
        .await?;
    client.set_state(PgWireConnectionState::CopyInProgress(extended));
    Ok(())
}

/// Sends COPY TO output; a failing stream ends it with its error (not
/// sent).
pub(super) async fn send_copy_out<C>(
    client: &mut C,
    columns: usize,
    mut data: BoxStream<'static, SqlResult<CopyData>>,
) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let (count, formats) = text_formats(columns);
    client
        .feed(PgWireBackendMessage::CopyOutResponse(CopyOutResponse::new(
            TEXT, count, formats,
        )))
        .await?;
    let mut rows = 0;
    while let Some(piece) = data.next().await {
        match piece {
            Ok(piece) => {
                rows += piece.rows;
                let bytes = Bytes::from(piece.bytes);
                let mut start = 0;
                for end in piece.line_ends {
                    let line = CopyDataMessage::new(bytes.slice(start..end));
                    client.feed(PgWireBackendMessage::CopyData(line)).await?;
                    start = end;
                }
            }
            Err(error) => return Err(user_error(&error)),
        }
    }
    client
        .feed(PgWireBackendMessage::CopyDone(CopyDone::new()))
        .await?;
    client
        .feed(PgWireBackendMessage::CommandComplete(CommandComplete::new(
            format!("COPY {rows}"),
        )))
        .await?;
    Ok(())
}

#[async_trait]
impl<H: QueryHandler + 'static> CopyHandler for Session<H> {
    async fn on_copy_data<C>(&self, _client: &mut C, data: CopyDataMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut state = self.lock_state().await;
        self.engine
            .copy_data(&mut state.sql, &data.data)
            .await
            .map_err(|e| user_error(&e))
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut state = self.lock_state().await;
        let done = self.engine.copy_done(&mut state.sql).await;
        // pgwire sends ReadyForQuery after a simple-protocol COPY with
        // the status it holds.
        client.set_transaction_status(self.wire_status(&state));
        let tag = done.map_err(|e| user_error(&e))?;
        client
            .feed(PgWireBackendMessage::CommandComplete(CommandComplete::new(
                tag,
            )))
            .await?;
        Ok(())
    }

    async fn on_copy_fail<C>(&self, client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut state = self.lock_state().await;
        let error = self.engine.copy_fail(&mut state.sql, &fail.message);
        client.set_transaction_status(self.wire_status(&state));
        user_error(&error)
    }
}
