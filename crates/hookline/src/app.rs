//! Wiring: shared state, the server entry point, and the background tasks of a process. Every
//! task `serve` starts is in its [`Tasks`] set, so shutdown waits for all of them in one place.

mod http;
mod monitor;

pub use http::raise_open_file_limit;

use anyhow::Context;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::api::AppState;
use crate::config::{DatabaseUrl, Settings, StoreSettings};
use crate::delivery::ListenHub;
use crate::publish::Publisher;
use crate::secrets::Secrets;
use crate::store::postgres::PostgresStore;
use crate::store::sqlite::{ServeLock as SqliteServeLock, SqliteStore};
use crate::store::DynStore;

pub async fn open_store(settings: &StoreSettings) -> anyhow::Result<DynStore> {
    match &settings.database_url {
        DatabaseUrl::Sqlite(path) => Ok(Arc::new(
            SqliteStore::open_with_cache(path, settings.sqlite_cache_mib).await?,
        )),
        DatabaseUrl::Postgres(url) => Ok(Arc::new(
            PostgresStore::connect(url, settings.pool_size).await?,
        )),
    }
}

/// `hookline migrate`: applies the migrations and returns. A SQLite file a server is serving is
/// refused like a second server (that server migrated it when it started).
pub async fn migrate(settings: &StoreSettings) -> anyhow::Result<()> {
    let _serve_lock = match &settings.database_url {
        DatabaseUrl::Sqlite(path) => Some(SqliteServeLock::acquire(path)?),
        DatabaseUrl::Postgres(_) => None,
    };
    open_store(settings).await.map(drop)
}

/// Runs hookline on an already-bound listener until `shutdown` resolves, then drains: the HTTP
/// server stops accepting, the dispatcher stops claiming and finishes in-flight work, and every
/// background task is awaited before this returns. A task that ends while serving is a fault:
/// it is logged, the others are shut down, and `serve` returns the error.
pub async fn serve(
    listener: TcpListener,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let settings = Arc::new(settings);
    crate::telemetry::install();
    let _serve_lock = match &settings.store.database_url {
        DatabaseUrl::Sqlite(path) => Some(SqliteServeLock::acquire(path)?),
        DatabaseUrl::Postgres(_) => None,
    };
    let store = open_store(&settings.store).await?;
    let secrets = Secrets::new(settings.secrets.keys.clone());
    secrets.reconcile(&store).await?;
    let admin_hash = crate::bootstrap::ensure_admin(store.clone(), &settings.secrets).await?;
    let cancel = CancellationToken::new();
    let publisher_stop = CancellationToken::new();
    // `late` holds what must stop after everything in `tasks`: the Publisher.
    let (mut tasks, mut late) = (Tasks::default(), Tasks::default());
    let (publisher, listen, dispatcher) = start_engine(
        &store,
        &settings,
        &secrets,
        &cancel,
        publisher_stop.clone(),
        &mut tasks,
        &mut late,
    )
    .await?;
    let engine = EngineHandles {
        publisher,
        listen,
        slots: dispatcher.as_ref().map(|d| d.slots()),
    };
    let state = app_state(&store, &settings, secrets, admin_hash, engine, &cancel)?;
    start_housekeeping(&state, dispatcher, &settings, &cancel, &mut tasks).await?;
    let addr = listener.local_addr()?;
    tasks.spawn(
        "http server",
        http::serve(
            listener,
            router(state, &settings),
            settings.server.connections.clone(),
            cancel.clone(),
            settings.server.shutdown_grace,
        ),
    );
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    tracing::info!(%addr, role = ?settings.server.role, workers, "hookline listening");

    let ended = tokio::select! {
        () = shutdown => None,
        ended = tasks.first_to_end() => Some(ended),
        ended = late.first_to_end() => Some(ended),
    };
    let served = match ended {
        None => Ok(()),
        Some((name, result)) => {
            let error = result
                .err()
                .unwrap_or_else(|| anyhow::anyhow!("it returned"));
            tracing::error!(task = name, error = ?error, "a task ended while serving; shutting down");
            Err(error.context(format!("{name} ended while serving")))
        }
    };
    cancel.cancel();
    let backstop = join_backstop(&settings);
    let joined = tasks.join_all(backstop).await;
    publisher_stop.cancel();
    let joined = joined.and(late.join_all(backstop).await);
    tracing::info!("hookline stopped");
    served.and(joined)
}

/// What the handlers reach of the engine.
struct EngineHandles {
    publisher: Publisher,
    /// The `hookline listen` streams of this process.
    listen: ListenHub,
    /// The dispatcher's delivery slots, which test events share; none on a node that does not
    /// deliver.
    slots: Option<crate::delivery::slots::Slots>,
}

/// What the handlers reach: the store, the engine's handles, the API's settings.
fn app_state(
    store: &DynStore,
    settings: &Settings,
    secrets: Secrets,
    admin_hash: hookline_core::ApiKeyHash,
    EngineHandles {
        publisher,
        listen,
        slots,
    }: EngineHandles,
    cancel: &CancellationToken,
) -> anyhow::Result<AppState> {
    // Any node that serves the API sends test events itself, whatever its role.
    let test_sender = crate::delivery::TestSender::new(
        store.clone(),
        &settings.delivery,
        secrets.clone(),
        Arc::new(publisher.clone()),
        listen.clone(),
    )
    .context("building the test-event client")?
    .sharing(slots);
    Ok(AppState::new(crate::api::AppShared {
        test_sender: Arc::new(test_sender),
        update_locks: Default::default(),
        list_turns: tokio::sync::Semaphore::new(crate::api::LIST_TURNS),
        store: store.clone(),
        settings: Arc::new(settings.server.clone()),
        secrets,
        admin_hash: Arc::new(admin_hash),
        publisher,
        listen,
        max_attempts: settings.delivery.retry_schedule.max_attempts(),
        known_partners: Arc::default(),
        readiness: crate::api::readiness::Readiness::new(cancel.clone()),
        auth_throttle: Arc::new(crate::api::auth_throttle::AuthThrottle::new(
            &settings.server,
        )),
        payload_check: Arc::new(crate::payload_check::PayloadCheck::new(
            settings.server.validate_payloads,
        )?),
    }))
}

/// The HTTP surface; `/metrics` moves to its own listener with `HOOKLINE_METRICS_LISTEN`.
fn router(state: AppState, settings: &Settings) -> axum::Router {
    match settings.monitoring.metrics_listen {
        None => crate::api::router(state),
        Some(_) => crate::api::router_without_metrics(state),
    }
}

/// The tasks that watch and tend the store: the gauges sampler, the retention purger (on every
/// role: on PostgreSQL one node at a time purges), and `/metrics` on a listener of its own
/// when `HOOKLINE_METRICS_LISTEN` is set.
async fn start_housekeeping(
    state: &AppState,
    dispatcher: Option<crate::delivery::Dispatcher>,
    settings: &Settings,
    cancel: &CancellationToken,
    tasks: &mut Tasks,
) -> anyhow::Result<()> {
    let monitor = monitor::Monitor {
        store: state.store.clone(),
        dispatcher,
        readiness: state.readiness.clone(),
        publisher: state.publisher.clone(),
        interval: settings.monitoring.sample_interval,
    };
    tasks.spawn("gauges sampler", monitor.run(cancel.clone()));
    let purger = crate::retention::Purger {
        store: state.store.clone(),
        settings: settings.retention.clone(),
    };
    tasks.spawn("retention purger", purger.run(cancel.clone()));
    if let Some(addr) = settings.monitoring.metrics_listen {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding HOOKLINE_METRICS_LISTEN {addr}"))?;
        tracing::info!(%addr, "metrics listening");
        tasks.spawn(
            "metrics listener",
            http::serve(
                listener,
                crate::api::metrics_router(),
                settings.server.connections.clone(),
                cancel.clone(),
                settings.server.shutdown_grace,
            ),
        );
    }
    Ok(())
}

/// The delivery side of this process: the dispatcher (when the role delivers) and the
/// Publisher, their tasks added to `tasks`. Returns the handle the API publishes through, and
/// the hub `hookline listen` streams attach to, and the dispatcher (when this node delivers).
async fn start_engine(
    store: &DynStore,
    settings: &Arc<Settings>,
    secrets: &Secrets,
    cancel: &CancellationToken,
    publisher_stop: CancellationToken,
    tasks: &mut Tasks,
    late: &mut Tasks,
) -> anyhow::Result<(Publisher, ListenHub, Option<crate::delivery::Dispatcher>)> {
    let wake = Arc::new(Notify::new());
    let listen = ListenHub::default();
    let dispatcher = if settings.server.role.delivers() {
        // PostgreSQL's LISTEN task (none on SQLite) stops on `cancel` like the dispatcher.
        if let Some(listener) = store.watch_wakeups(wake.clone(), cancel.clone()).await? {
            tasks.spawn("postgres listener", async move {
                listener.await.context("the PostgreSQL listener panicked")
            });
        }
        Some(
            crate::delivery::Dispatcher::new(
                store.clone(),
                Arc::new(settings.delivery.clone()),
                secrets.clone(),
                wake.clone(),
                listen.clone(),
            )
            .context("building the delivery client")?,
        )
    } else {
        None
    };
    let (publisher, publisher_task) = Publisher::new(
        store.clone(),
        wake.clone(),
        dispatcher.clone().map(|d| (d, settings.delivery.lease)),
        settings.server.publish_gather,
    );
    // The Publisher outlives the HTTP server (requests still draining publish through it) and
    // the dispatcher (410 announcements publish through it until the last outcome is written),
    // so it stops on a token of its own, cancelled once both have ended.
    late.spawn("publisher", async move {
        publisher_task.run(publisher_stop).await;
        Ok(())
    });
    if dispatcher.is_some() {
        let runner = crate::delivery::RecoveryRunner {
            store: store.clone(),
            wake: wake.clone(),
            settings: settings.recovery.clone(),
        };
        tasks.spawn("recovery runner", runner.run(cancel.clone()));
    }
    if let Some(d) = dispatcher.clone() {
        let (stop, announcer) = (cancel.clone(), Arc::new(publisher.clone()));
        tasks.spawn("dispatcher", async move {
            d.run(stop, announcer).await;
            Ok(())
        });
    }
    Ok((publisher, listen, dispatcher))
}

/// How long shutdown waits for every task. Each component bounds its own drain (the HTTP grace;
/// the dispatcher's grace for in-flight deliveries plus one delivery timeout for their
/// outcomes), so this only catches a task that does not stop at all.
fn join_backstop(settings: &Settings) -> Duration {
    let delivery = settings.delivery.shutdown_grace + settings.delivery.timeout;
    settings.server.shutdown_grace.max(delivery) + Duration::from_secs(5)
}

/// Every task a process starts, by name: the one place shutdown waits for them all.
#[derive(Default)]
struct Tasks {
    set: JoinSet<anyhow::Result<()>>,
    names: HashMap<tokio::task::Id, &'static str>,
}

impl Tasks {
    fn spawn(
        &mut self,
        name: &'static str,
        task: impl Future<Output = anyhow::Result<()>> + Send + 'static,
    ) {
        let id = self.set.spawn(task).id();
        self.names.insert(id, name);
    }

    /// The first task to end, with how it ended; never resolves while all keep running.
    async fn first_to_end(&mut self) -> (&'static str, anyhow::Result<()>) {
        match self.set.join_next_with_id().await {
            Some(ended) => self.name(ended),
            None => std::future::pending().await,
        }
    }

    /// Waits for every task until `backstop` has passed; a task that failed, panicked or is
    /// still running then (it is aborted) is logged and makes the result an error.
    async fn join_all(mut self, backstop: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + backstop;
        let mut failed = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, self.set.join_next_with_id()).await {
                Ok(None) => break,
                Ok(Some(ended)) => {
                    if let (name, Err(error)) = self.name(ended) {
                        tracing::error!(task = name, error = ?error, "task failed during shutdown");
                        failed.push(name);
                    }
                }
                Err(_elapsed) => {
                    let mut stuck: Vec<_> = self.names.values().copied().collect();
                    stuck.sort_unstable();
                    tracing::error!(tasks = ?stuck, ?backstop, "tasks did not stop; aborting them");
                    self.set.abort_all();
                    failed.extend(stuck);
                    break;
                }
            }
        }
        match failed.as_slice() {
            [] => Ok(()),
            _ => Err(anyhow::anyhow!(
                "shutdown: tasks that did not stop cleanly: {}",
                failed.join(", ")
            )),
        }
    }

    /// Names a joined task and turns a panic or an abort into an error.
    fn name(
        &mut self,
        ended: Result<(tokio::task::Id, anyhow::Result<()>), tokio::task::JoinError>,
    ) -> (&'static str, anyhow::Result<()>) {
        let (id, result) = match ended {
            Ok((id, result)) => (id, result),
            Err(e) => (e.id(), Err(anyhow::anyhow!("{e}"))),
        };
        (self.names.remove(&id).unwrap_or("unnamed task"), result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_that_ends_is_named_with_its_error() {
        let mut tasks = Tasks::default();
        tasks.spawn("forever", std::future::pending());
        tasks.spawn("broken", async { Err(anyhow::anyhow!("boom")) });
        let (name, result) = tasks.first_to_end().await;
        assert_eq!(name, "broken");
        assert_eq!(result.unwrap_err().to_string(), "boom");
    }

    #[tokio::test]
    async fn join_all_reports_panics_and_aborts_tasks_that_do_not_stop() {
        let mut tasks = Tasks::default();
        tasks.spawn("clean", async { Ok(()) });
        tasks.spawn("panics", async { panic!("on purpose") });
        tasks.spawn("stuck", std::future::pending());
        let error = tasks
            .join_all(Duration::from_millis(50))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.ends_with("did not stop cleanly: panics, stuck"),
            "{error}"
        );

        let mut tasks = Tasks::default();
        tasks.spawn("clean", async { Ok(()) });
        tasks.join_all(Duration::from_secs(5)).await.unwrap();
    }
}
