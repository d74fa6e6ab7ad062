//! The PostgreSQL wire protocol (v3) over TCP. `pgwire` frames the
//! messages and runs startup; each connection gets its own handlers
//! holding its SQL session (`connection.rs`: simple queries;
//! `extended.rs`: Parse/Bind/Execute), which answer queries through the
//! [`QueryHandler`] trait. Arrow rows go out as PostgreSQL rows
//! (`rows.rs`, `types.rs`, `binary.rs`), parameters come in as scalars
//! (`params.rs`), SQL errors go out as ErrorResponses (`errors.rs`).

mod binary;
mod cancel;
mod connection;
mod copy;
mod deallocate;
mod errors;
mod extended;
mod idle;
mod params;
mod rows;
mod startup;
mod types;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use omendb_sql::QueryHandler;
use tokio::net::TcpListener;

use crate::metrics::Metrics;
use cancel::Registry;
use connection::Connection;

/// The PostgreSQL name of the type an Arrow column of `ty` is sent as
/// (`int4`, `text`, `timestamptz`).
pub fn type_name(ty: &omendb_sql::datafusion::arrow::datatypes::DataType) -> String {
    types::pg_type(ty).name().to_owned()
}

/// Ends a connection idle in a transaction past its timeout, with
/// PostgreSQL's FATAL 25P03 on `socket` (a copy of the connection's).
fn idle_timeout_fatal(mut socket: std::net::TcpStream) {
    use std::io::Write;

    use pgwire::error::ErrorInfo;
    use pgwire::messages::{Message, response::ErrorResponse};

    let info = ErrorInfo::new(
        "FATAL".to_owned(),
        "25P03".to_owned(),
        "terminating connection due to idle-in-transaction timeout".to_owned(),
    );
    let mut bytes = bytes::BytesMut::new();
    // The peer may be gone already: nothing is left to tell then.
    if ErrorResponse::from(info).encode(&mut bytes).is_ok() {
        let _ = socket.write_all(&bytes);
    }
    let _ = socket.shutdown(std::net::Shutdown::Both);
}

/// The pause after a failed accept.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// Serves PostgreSQL clients on `listener` with `engine`, at most
/// `max_connections` at once, counting in `metrics`, until `shutdown`
/// completes; then accepts no
/// more connections (open ones end with the process).
pub async fn serve<H>(
    listener: TcpListener,
    engine: Arc<H>,
    max_connections: usize,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) where
    H: QueryHandler + 'static,
{
    let registry = Registry::new(max_connections, metrics);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => return,
        };
        let Ok((socket, _)) = accepted else {
            // A failed accept (the peer gave up, or out of descriptors)
            // ends that attempt only; the pause keeps a lasting failure
            // from spinning.
            tokio::time::sleep(ACCEPT_RETRY).await;
            continue;
        };
        let (open, within_limit) = registry.open();
        let handlers = Arc::new(Connection::new(
            engine.clone(),
            registry.clone(),
            within_limit,
        ));
        let idle = handlers.idle_timer();
        tokio::spawn(async move {
            // A copy of the socket, to say why when the server ends the
            // connection (pgwire owns the stream while it serves it).
            let tell = socket.into_std().and_then(|std| {
                let copy = std.try_clone()?;
                Ok((tokio::net::TcpStream::from_std(std)?, copy))
            });
            let Ok((socket, tell)) = tell else {
                return;
            };
            tokio::select! {
                // A connection's protocol error ends that connection only.
                _ = pgwire::tokio::process_socket(socket, None, handlers) => {}
                () = idle.expired() => {
                    // The session (and its transaction) went with the
                    // dropped future; now the client hears why.
                    idle_timeout_fatal(tell);
                }
            }
            drop(open);
        });
    }
}
