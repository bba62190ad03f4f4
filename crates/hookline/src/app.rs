//! Wiring: shared state, the server entry point, and the background tasks of a process.

use anyhow::Context;
use hookline_core::ApiKeyHash;
use std::future::{Future, IntoFuture};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::{DatabaseUrl, Settings};
use crate::publish::Publisher;
use crate::store::postgres::PostgresStore;
use crate::store::sqlite::{ServeLock as SqliteServeLock, SqliteStore};
use crate::store::DynStore;

#[derive(Clone)]
pub struct AppState {
    pub store: DynStore,
    pub settings: Arc<Settings>,
    pub admin_hash: Arc<ApiKeyHash>,
    pub publisher: Publisher,
    /// Partner ids known to exist. Partners are never deleted, so a hit needs no query:
    /// this takes a store read off every publish request.
    pub known_partners: Arc<std::sync::RwLock<std::collections::HashSet<String>>>,
}

pub async fn open_store(settings: &Settings) -> anyhow::Result<DynStore> {
    match &settings.database_url {
        DatabaseUrl::Sqlite(path) => Ok(Arc::new(SqliteStore::open(path).await?)),
        DatabaseUrl::Postgres(url) => Ok(Arc::new(
            PostgresStore::connect(url, settings.database_pool_size).await?,
        )),
    }
}

/// Runs hookline on an already-bound listener until `shutdown` resolves, then drains:
/// the HTTP server stops accepting, the dispatcher stops claiming and finishes in-flight work.
pub async fn serve(
    listener: TcpListener,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let settings = Arc::new(settings);
    let _serve_lock = match &settings.database_url {
        DatabaseUrl::Sqlite(path) => Some(SqliteServeLock::acquire(path)?),
        DatabaseUrl::Postgres(_) => None,
    };
    let store = open_store(&settings).await?;
    crate::secrets::Secrets::new(settings.secret_keys.clone())
        .reconcile(&store)
        .await?;
    let admin_hash = crate::bootstrap::ensure_admin(store.clone(), &settings).await?;
    let wake = Arc::new(Notify::new());
    let cancel = CancellationToken::new();
    let mut wake_listener = None;
    let dispatcher = if settings.role.delivers() {
        wake_listener = store.watch_wakeups(wake.clone(), cancel.clone()).await?;
        Some(
            crate::delivery::Dispatcher::new(store.clone(), settings.clone(), wake.clone())
                .context("building the delivery client")?,
        )
    } else {
        None
    };
    let (publisher, publisher_task) = Publisher::new(
        store.clone(),
        wake.clone(),
        dispatcher.clone().map(|d| (d, settings.lease)),
    );
    // Stopped after the dispatcher, whose outcome recorder publishes through it until the end.
    let publisher_stop = CancellationToken::new();
    let publisher_task = tokio::spawn(publisher_task.run(publisher_stop.clone()));
    let dispatcher =
        dispatcher.map(|d| tokio::spawn(d.run(cancel.clone(), Arc::new(publisher.clone()))));
    let state = AppState {
        store: store.clone(),
        settings: settings.clone(),
        admin_hash: Arc::new(admin_hash),
        publisher,
        known_partners: Arc::default(),
    };

    let app = crate::api::router(state);
    let addr = listener.local_addr()?;
    tracing::info!(%addr, role = ?settings.role, "hookline listening");
    let stop = cancel.clone();
    tokio::spawn(async move {
        shutdown.await;
        stop.cancel();
    });
    let server_stop = cancel.clone();
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(async move { server_stop.cancelled().await })
        .into_future();
    tokio::pin!(server);
    // Graceful, but bounded: a client trickling a request body must not keep the process alive.
    tokio::select! {
        done = &mut server => done.context("HTTP server failed")?,
        _ = async {
            cancel.cancelled().await;
            tokio::time::sleep(settings.shutdown_grace).await;
        } => tracing::warn!("open HTTP connections did not finish within the grace period; closing them"),
    }
    if let Some(d) = dispatcher {
        d.await.context("dispatcher panicked")?;
    }
    publisher_stop.cancel();
    publisher_task.await.context("publisher panicked")?;
    if let Some(l) = wake_listener {
        l.await.context("PostgreSQL listener panicked")?;
    }
    tracing::info!("hookline stopped");
    Ok(())
}
