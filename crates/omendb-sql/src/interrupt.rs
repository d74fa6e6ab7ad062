//! Stopping a running statement: a cancel request (from another
//! connection, through a [`Canceller`]) or the session's
//! `statement_timeout`. The statement's work is a future; it is raced
//! against both and dropped when either comes first (storage calls are
//! synchronous, so a drop never tears one), then the session is put back
//! in order by the engine. Rows still streaming to the client check both
//! at every poll ([`Interruptible`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream};
use futures::{Stream, StreamExt};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::error::{ErrorClass, SqlError};

/// A session's interrupt: set by a cancel, cleared when a statement starts.
#[derive(Debug, Default)]
pub(crate) struct Interrupt {
    requested: AtomicBool,
    notify: Notify,
}

/// Cancels whatever statement a session is running, from any task: what
/// a PostgreSQL cancel request does. A cancel while nothing runs is lost.
#[derive(Clone, Debug)]
pub struct Canceller(pub(crate) Arc<Interrupt>);

impl Canceller {
    pub fn cancel(&self) {
        self.0.requested.store(true, Ordering::SeqCst);
        self.0.notify.notify_waiters();
    }
}

/// Why a statement stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    Cancelled,
    TimedOut,
}

impl Stop {
    pub(crate) fn error(self) -> SqlError {
        let message = match self {
            Stop::Cancelled => "canceling statement due to user request",
            Stop::TimedOut => "canceling statement due to statement timeout",
        };
        SqlError::new(ErrorClass::QueryCanceled, message)
    }
}

/// The limits one statement runs under.
#[derive(Debug, Clone)]
pub(crate) struct Watch {
    interrupt: Arc<Interrupt>,
    deadline: Option<Instant>,
}

impl Interrupt {
    /// A statement starts now, with `timeout` (none: no limit); earlier
    /// cancels are forgotten.
    pub(crate) fn start(self: &Arc<Self>, timeout: Option<Duration>) -> Watch {
        self.requested.store(false, Ordering::SeqCst);
        Watch {
            interrupt: self.clone(),
            deadline: timeout.map(|t| Instant::now() + t),
        }
    }
}

impl Watch {
    /// Runs `work` unless a cancel or the deadline comes first.
    pub(crate) async fn run<T>(&self, work: impl Future<Output = T>) -> Result<T, Stop> {
        tokio::select! {
            result = work => Ok(result),
            stop = self.clone().until_stopped() => Err(stop),
        }
    }

    /// Completes when the statement is cancelled or its deadline passes.
    async fn until_stopped(self) -> Stop {
        let cancelled = async {
            loop {
                let notified = self.interrupt.notify.notified();
                if self.interrupt.requested.load(Ordering::SeqCst) {
                    return Stop::Cancelled;
                }
                notified.await;
            }
        };
        let timed_out = async {
            match self.deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
            Stop::TimedOut
        };
        tokio::select! {
            stop = cancelled => stop,
            stop = timed_out => stop,
        }
    }
}

/// A row stream that ends with the statement's cancel or timeout error
/// once either comes, even while it waits on work elsewhere (DataFusion
/// computes partitions in tasks of their own); dropping the stream stops
/// that work.
pub(crate) struct Interruptible {
    inner: SendableRecordBatchStream,
    stop: Pin<Box<dyn Future<Output = Stop> + Send>>,
    stopped: bool,
}

impl Interruptible {
    pub(crate) fn new(inner: SendableRecordBatchStream, watch: Watch) -> Interruptible {
        Interruptible {
            inner,
            stop: Box::pin(watch.until_stopped()),
            stopped: false,
        }
    }
}

impl Stream for Interruptible {
    type Item = DfResult<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.stopped {
            return Poll::Ready(None);
        }
        if let Poll::Ready(stop) = self.stop.as_mut().poll(cx) {
            self.stopped = true;
            let error = DataFusionError::External(Box::new(stop.error()));
            return Poll::Ready(Some(Err(error)));
        }
        self.inner.poll_next_unpin(cx)
    }
}

impl RecordBatchStream for Interruptible {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_cancel_or_the_deadline_stops_the_work_and_a_late_cancel_is_forgotten() {
        let interrupt = Arc::new(Interrupt::default());
        let canceller = Canceller(interrupt.clone());
        let watch = interrupt.start(None);
        assert_eq!(watch.run(async { 7 }).await, Ok(7));
        // A cancel before the next statement starts is forgotten.
        canceller.cancel();
        let watch = interrupt.start(None);
        assert_eq!(watch.run(async { 8 }).await, Ok(8));
        let cancel = canceller.clone();
        let work = async {
            tokio::task::yield_now().await;
            cancel.cancel();
            std::future::pending::<()>().await;
        };
        assert_eq!(watch.run(work).await, Err(Stop::Cancelled));

        let watch = interrupt.start(Some(Duration::from_millis(20)));
        let slow = tokio::time::sleep(Duration::from_secs(30));
        assert_eq!(watch.run(slow).await, Err(Stop::TimedOut));
    }
}
