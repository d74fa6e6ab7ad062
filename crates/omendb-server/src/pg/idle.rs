//! `idle_in_transaction_session_timeout`: a connection left idle inside a
//! transaction block past the session's timeout is ended, as PostgreSQL
//! ends it (FATAL 25P03), so its transaction stops holding a snapshot
//! (which keeps compaction from dropping old versions) and its writes.
//! ReadyForQuery arms the timer when the session is in a block; the next
//! message disarms it.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// When an idle connection's transaction runs out of time.
#[derive(Debug, Default)]
pub(super) struct IdleTimer {
    deadline: Mutex<Option<Instant>>,
    changed: Notify,
}

impl IdleTimer {
    /// Starts waiting `timeout` (none: forever) from now.
    pub(super) fn arm(&self, timeout: Option<Duration>) {
        self.set(timeout.map(|t| Instant::now() + t));
    }

    /// A message arrived: the connection is not idle.
    pub(super) fn disarm(&self) {
        self.set(None);
    }

    fn set(&self, deadline: Option<Instant>) {
        // Only assigned under the lock; a poisoned lock still holds a value.
        *self.deadline.lock().unwrap_or_else(|p| p.into_inner()) = deadline;
        self.changed.notify_waiters();
    }

    fn deadline(&self) -> Option<Instant> {
        *self.deadline.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Completes when an armed deadline passes without being disarmed.
    pub(super) async fn expired(&self) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before reading, so no change is missed.
            changed.as_mut().enable();
            match self.deadline() {
                None => changed.await,
                Some(deadline) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(deadline) => {
                            if self.deadline() == Some(deadline) {
                                return;
                            }
                        }
                        () = changed => {}
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_armed_timer_expires_and_a_disarmed_one_does_not() {
        let ms = Duration::from_millis;
        let timer = std::sync::Arc::new(IdleTimer::default());
        timer.arm(Some(ms(1_000)));
        let waiting = tokio::spawn({
            let timer = timer.clone();
            async move { timer.expired().await }
        });
        tokio::time::sleep(ms(20)).await;
        timer.disarm();
        tokio::time::sleep(ms(1_200)).await;
        assert!(!waiting.is_finished(), "disarmed before the deadline");
        timer.arm(Some(ms(50)));
        // Generous: the machine is shared.
        tokio::time::timeout(ms(5_000), waiting)
            .await
            .expect("armed and left alone, it expires")
            .unwrap();
    }
}
