//! The gauges sampler: every `HOOKLINE_METRICS_SAMPLE_INTERVAL` it reads the queue and
//! subscription gauges from the store (on PostgreSQL a sample shared by all nodes and recounted
//! by one of them: see `store::Housekeeping::sample_stats`), this process's in-flight attempts,
//! and its readiness, and sets the gauges. Scrapes only render what it set: a scrape never
//! reaches the store, however often it comes.

use hookline_core::Timestamp;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::api::readiness::Readiness;
use crate::delivery::Dispatcher;
use crate::publish::Publisher;
use crate::store::{DynStore, StoreStats};
use crate::telemetry::{self, set_gauge};

pub(super) struct Monitor {
    pub store: DynStore,
    pub dispatcher: Option<Dispatcher>,
    pub readiness: Readiness,
    pub publisher: Publisher,
    pub interval: Duration,
}

impl Monitor {
    pub async fn run(self, cancel: CancellationToken) -> anyhow::Result<()> {
        loop {
            self.sample().await;
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = tokio::time::sleep(self.interval) => {}
            }
        }
    }

    async fn sample(&self) {
        telemetry::upkeep();
        let now = Timestamp::now();
        match self.store.sample_stats(now, self.interval).await {
            Ok(stats) => set_store_gauges(&stats, now),
            Err(e) => {
                telemetry::store_error("sample");
                tracing::warn!(error = %e, "sampling the queue gauges failed");
            }
        }
        let (in_flight, most) = self
            .dispatcher
            .as_ref()
            .map_or((0, 0), Dispatcher::in_flight);
        set_gauge(telemetry::IN_FLIGHT, None, in_flight as f64);
        set_gauge(telemetry::IN_FLIGHT_MAX_SUBSCRIPTION, None, most as f64);
        let ready = self.readiness.check(&self.store, &self.publisher).await;
        set_gauge(telemetry::READY, None, f64::from(u8::from(ready.is_ok())));
    }
}

fn set_store_gauges(s: &StoreStats, now: Timestamp) {
    set_gauge(telemetry::DELIVERIES_PENDING, None, s.pending as f64);
    set_gauge(telemetry::DELIVERIES_RETRYING, None, s.retrying as f64);
    set_gauge(telemetry::DELIVERIES_DUE, None, s.due as f64);
    let oldest = s.oldest_due_age.as_secs_f64();
    set_gauge(telemetry::OLDEST_DUE_AGE, None, oldest);
    let sample_age = now.since(s.sampled_at).as_secs_f64();
    set_gauge(telemetry::QUEUE_SAMPLE_AGE, None, sample_age);
    let active = s.subscriptions_active as f64;
    set_gauge(telemetry::SUBSCRIPTIONS, Some(("state", "active")), active);
    let inactive = s.subscriptions_inactive as f64;
    set_gauge(
        telemetry::SUBSCRIPTIONS,
        Some(("state", "inactive")),
        inactive,
    );
    set_gauge(telemetry::STORE_SIZE, None, s.size_bytes as f64);
}
