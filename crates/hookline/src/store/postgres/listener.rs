//! `LISTEN` for the wake-ups other nodes `NOTIFY` when they commit deliveries.

use sqlx::postgres::PgListener;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::WAKE_CHANNEL;
use crate::store::StoreResult;

/// Listens until `cancel`, waking `wake` on every notification; the caller owns the task.
pub(super) async fn spawn(
    url: &str,
    wake: Arc<Notify>,
    cancel: CancellationToken,
) -> StoreResult<JoinHandle<()>> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen(WAKE_CHANNEL).await?;
    Ok(tokio::spawn(async move {
        loop {
            // `recv` reconnects by itself after a lost connection; wake anyway, since
            // notifications sent while disconnected are lost and polling must catch up.
            let received = tokio::select! {
                r = listener.recv() => r,
                _ = cancel.cancelled() => return,
            };
            match received {
                Ok(_) => wake.notify_one(),
                Err(e) => {
                    tracing::warn!(error = %e, "PostgreSQL listener error; reconnecting");
                    wake.notify_one();
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                        _ = cancel.cancelled() => return,
                    }
                }
            }
        }
    }))
}
