//! Cancel requests and the connection limit. Each connection registers
//! its process id and secret key with the statement canceller of its
//! session; a cancel request (a new connection naming both) cancels the
//! statement running there, if the key matches. Connections beyond the
//! limit are refused at startup with 53300, as PostgreSQL refuses them.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use omendb_sql::Canceller;
use pgwire::api::cancel::CancelHandler;
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::startup::SecretKey;

use crate::metrics::Metrics;

/// What the connections of one server share.
#[derive(Debug)]
pub(super) struct Registry {
    cancellers: Mutex<HashMap<i32, (SecretKey, Canceller)>>,
    /// Counts the open connections (and the statements they run).
    pub(super) metrics: Arc<Metrics>,
    max_connections: usize,
}

impl Registry {
    pub(super) fn new(max_connections: usize, metrics: Arc<Metrics>) -> Arc<Registry> {
        Arc::new(Registry {
            cancellers: Mutex::new(HashMap::new()),
            metrics,
            max_connections,
        })
    }

    /// Counts a connection open until the guard drops; whether it is
    /// within the limit.
    pub(super) fn open(self: &Arc<Self>) -> (OpenGuard, bool) {
        let open = self.metrics.connections.fetch_add(1, Ordering::SeqCst) + 1;
        let within = usize::try_from(open).is_ok_and(|open| open <= self.max_connections);
        (OpenGuard(self.clone()), within)
    }

    /// Lets cancel requests with `pid` and `secret` reach `canceller`
    /// until the registration drops.
    pub(super) fn register(
        self: &Arc<Self>,
        pid: i32,
        secret: SecretKey,
        canceller: Canceller,
    ) -> Registration {
        self.lock().insert(pid, (secret, canceller));
        Registration {
            registry: self.clone(),
            pid,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, (SecretKey, Canceller)>> {
        // A panic while holding this lock cannot leave the map half-changed.
        self.cancellers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A connection counted open.
#[derive(Debug)]
pub(super) struct OpenGuard(Arc<Registry>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.metrics.connections.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A connection reachable by cancel requests.
#[derive(Debug)]
pub(super) struct Registration {
    registry: Arc<Registry>,
    pid: i32,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.pid);
    }
}

#[async_trait]
impl CancelHandler for Registry {
    async fn on_cancel_request(&self, request: CancelRequest) {
        let canceller = match self.lock().get(&request.pid) {
            // The key may come back as bytes on the cancel connection.
            Some((secret, canceller)) if secret.eq_value(&request.secret_key) => canceller.clone(),
            // A wrong key is ignored without a word, as in PostgreSQL.
            _ => return,
        };
        canceller.cancel();
    }
}
