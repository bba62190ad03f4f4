//! The claim loop: leases due deliveries in batches (committed at once) and starts each with a
//! slot. It never waits on a receiver, and it claims no more than the slots it sees free and
//! the room each subscription has, so one query fills a batch instead of one row per query.

use hookline_core::Timestamp;
use std::ops::ControlFlow::{self, Break, Continue};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::dispatcher::Dispatcher;
use super::slots::Slots;
use crate::config::DeliverySettings;
use crate::store::{Capacity, ClaimRequest, Claimed, DynStore, StoreResult};
use crate::telemetry;

/// Most deliveries claimed in one query.
const CLAIM_BATCH: u32 = 256;
/// When fewer slots than this are free, the loop waits up to [`BATCH_WINDOW`] for more.
fn low_water(settings: &DeliverySettings) -> usize {
    (settings.max_in_flight / 8).clamp(1, 64)
}
const BATCH_WINDOW: Duration = Duration::from_millis(2);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

pub(super) struct ClaimLoop {
    pub dispatcher: Dispatcher,
    pub store: DynStore,
    pub settings: Arc<DeliverySettings>,
    /// Woken by new work: a publish that queued deliveries, a scheduled retry, another node.
    pub wake: Arc<Notify>,
    pub slots: Slots,
    pub cancel: CancellationToken,
}

impl ClaimLoop {
    /// Claims until `cancel`; what was started keeps running (the dispatcher drains it).
    pub async fn run(self) {
        let mut backoff = FIRST_BACKOFF;
        while !self.cancel.is_cancelled() {
            if self.wait_for_room().await.is_break() {
                break;
            }
            let free = self.slots.free();
            if free == 0 {
                continue;
            }
            let now = Timestamp::now();
            let claimed = match self.claim(now, free).await {
                Ok(claimed) => claimed,
                Err(e) => {
                    telemetry::store_error("claim");
                    tracing::warn!(error = %e, "claiming deliveries failed; retrying");
                    if self.pause(backoff).await.is_break() {
                        break;
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            backoff = FIRST_BACKOFF;
            if self.start_and_wait(claimed, now).await.is_break() {
                break;
            }
        }
    }

    /// Claiming one delivery per finished one costs a transaction each: when few slots are free,
    /// wait until a batch's worth is (or briefly, when the receivers are slow).
    async fn wait_for_room(&self) -> ControlFlow<()> {
        let low_water = low_water(&self.settings);
        if self.slots.free() >= low_water {
            return Continue(());
        }
        tokio::select! {
            _ = self.slots.freed() => {}
            _ = self.cancel.cancelled() => return Break(()),
        }
        if self.slots.free() < low_water {
            return self.pause(BATCH_WINDOW).await;
        }
        Continue(())
    }

    async fn claim(&self, now: Timestamp, free: usize) -> StoreResult<Claimed> {
        let in_flight = self.slots.in_flight();
        let (limits, default_limit) = self.slots.limits();
        let request = ClaimRequest {
            now,
            lease_until: now + self.settings.lease,
            limit: (free as u32).min(CLAIM_BATCH),
            capacity: Capacity {
                per_subscription_cap: default_limit,
                in_flight: &in_flight,
                limits: &limits,
            },
        };
        let started = std::time::Instant::now();
        let claimed = self.store.claim_due(&request).await;
        let rows = claimed.as_ref().map_or(0, |c| c.deliveries.len());
        telemetry::store_commit("claim", started.elapsed(), rows);
        claimed
    }

    /// Starts what was claimed, then decides when to claim again: at once when more is due,
    /// else on a wake-up, a freed slot (if work was held back), or the next due time.
    async fn start_and_wait(&self, claimed: Claimed, claimed_at: Timestamp) -> ControlFlow<()> {
        let (more_due, held_back) = (claimed.more_due, claimed.held_back);
        let handed_out = !claimed.deliveries.is_empty();
        for delivery in claimed.deliveries {
            // Usually granted at once; waits if a publish hand-off took the room since the
            // claim's snapshot of `in_flight`.
            let reservation = self.slots.reserve(&delivery.subscription_id);
            self.dispatcher.spawn_attempt(delivery, reservation);
        }
        if more_due {
            // Only cancellations, or rows another node is committing right now: a moment's
            // pause, not a spin.
            return match handed_out {
                true => Continue(()),
                false => self.pause(Duration::from_millis(1)).await,
            };
        }
        let sleep = self.until_next_due(claimed_at).await;
        tokio::select! {
            _ = self.wake.notified() => Continue(()),
            // A full subscription may have room now. Let a few more of its deliveries finish
            // so the claim takes a batch, not one row per transaction.
            _ = self.slots.freed(), if held_back => self.pause(BATCH_WINDOW).await,
            _ = tokio::time::sleep(sleep) => Continue(()),
            _ = self.cancel.cancelled() => Break(()),
        }
    }

    /// How long to sleep when nothing wakes us: until the earliest delivery due after the claim
    /// at `claimed_at`, at most the poll interval.
    async fn until_next_due(&self, claimed_at: Timestamp) -> Duration {
        let poll = self.settings.poll_interval;
        match self.store.next_due_after(claimed_at).await {
            Ok(Some(at)) => {
                let now = Timestamp::now();
                if at <= now {
                    Duration::from_millis(1)
                } else {
                    at.since(now).min(poll)
                }
            }
            _ => poll,
        }
    }

    /// Sleeps `d`, or stops early on cancellation.
    async fn pause(&self, d: Duration) -> ControlFlow<()> {
        tokio::select! {
            _ = tokio::time::sleep(d) => Continue(()),
            _ = self.cancel.cancelled() => Break(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::slots::{Permit, Slots};
    use crate::store::sqlite::SqliteStore;
    use crate::store::DueDelivery;
    use crate::store::NewSubscription;
    use hookline_core::{
        DeliveryId, EventId, EventTime, EventType, Partner, SigningSecret, Subscription,
        SubscriptionId, TargetUrl, TraceId,
    };
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;

    /// A receiver on 127.0.0.1 that reports each request as it arrives and answers 200.
    async fn receiver() -> (u16, mpsc::UnboundedReceiver<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (arrived, arrivals) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let arrived = arrived.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 8192];
                    while tcp.read(&mut buf).await.is_ok_and(|n| n > 0) {
                        let _ = arrived.send(());
                        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                        if tcp.write_all(ok).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (port, arrivals)
    }

    fn delivery(sub: &Subscription) -> DueDelivery {
        DueDelivery {
            delivery_id: DeliveryId::from_stored(1),
            attempt: 1,
            attempt_base: 0,
            subscription_id: sub.id.clone(),
            target_url: sub.target_url.as_str().to_owned(),
            signing_secret: SigningSecret::generate().expose().to_owned(),
            previous_secret: None,
            routing_id_header: None,
            routing_key_header: None,
            partner_id: sub.partner_id.clone(),
            event_id: EventId::generate(),
            event_type: EventType::parse("message.sent").unwrap(),
            created_at: EventTime::at(Timestamp::now()),
            trace_id: TraceId::generate(),
            data: "{}".to_owned(),
            data_v2025: None,
            accepted_at: Timestamp::now(),
        }
    }

    /// A stored subscription to `url`, a dispatcher with one slot per subscription, and the
    /// temporary directory holding the store.
    async fn one_slot_dispatcher(
        url: &str,
    ) -> (Dispatcher, DynStore, Subscription, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store: DynStore = Arc::new(SqliteStore::open(&dir.path().join("t.db")).await.unwrap());
        let partner = Partner::issue("p", Timestamp::now()).unwrap();
        store.create_partner(&partner).await.unwrap();
        let now = Timestamp::now();
        let sub = Subscription {
            id: SubscriptionId::generate(),
            partner_id: partner.id.clone(),
            target_url: TargetUrl::parse(url, true).unwrap(),
            subscribed_events: vec![EventType::parse("message.sent").unwrap()],
            phone_numbers: vec![],
            is_active: true,
            routing_id_header: None,
            routing_key_header: None,
            created_at: now,
            updated_at: now,
        };
        let new = NewSubscription {
            subscription: sub.clone(),
            signing_secret: SigningSecret::generate().expose().to_owned(),
        };
        store.insert_subscription(&new, 10).await.unwrap();
        let settings = Arc::new(DeliverySettings {
            ssrf_allow: vec!["127.0.0.0/8".parse().unwrap()],
            max_in_flight_per_subscription: 1,
            ..crate::config::Settings::default().delivery
        });
        let d = Dispatcher::new(
            store.clone(),
            settings,
            crate::secrets::Secrets::default(),
            Arc::new(Notify::new()),
            crate::delivery::ListenHub::default(),
        )
        .unwrap();
        (d, store, sub, dir)
    }

    /// The claim/hand-off race: the claim chose `claimed` while its subscription had room, a
    /// publish hand-off took that room before the claim returned. Returns the hand-off's permit
    /// with the claimed delivery waiting behind it.
    async fn claimed_behind_a_hand_off(d: &Dispatcher, claimed: DueDelivery) -> (Permit, Slots) {
        let sub = claimed.subscription_id.clone();
        let claim_loop = d.claim_loop(CancellationToken::new());
        let handed_off = d
            .try_acquire(&sub)
            .expect("the hand-off takes the only slot");
        let claim = Claimed {
            deliveries: vec![claimed],
            more_due: true,
            held_back: false,
        };
        assert!(claim_loop
            .start_and_wait(claim, Timestamp::now())
            .await
            .is_continue());
        // Started, and waiting: one attempt holds the subscription's slot, one is promised it.
        assert_eq!(
            claim_loop.slots.held(),
            1,
            "the claimed delivery exceeded the cap"
        );
        assert_eq!(claim_loop.slots.in_flight().get(&sub), Some(&2));
        (handed_off, claim_loop.slots.clone())
    }

    /// Through the real claim path, the claimed delivery waits for the hand-off's attempt to
    /// finish, not run beside it.
    #[tokio::test]
    async fn a_claimed_delivery_waits_for_the_slot_a_hand_off_took() {
        let (port, mut arrivals) = receiver().await;
        let url = format!("http://127.0.0.1:{port}/hook");
        let (d, _store, sub, _dir) = one_slot_dispatcher(&url).await;
        let (handed_off, _) = claimed_behind_a_hand_off(&d, delivery(&sub)).await;
        assert!(arrivals.try_recv().is_err());

        drop(handed_off);
        tokio::time::timeout(Duration::from_secs(10), arrivals.recv())
            .await
            .expect("sent once the slot was freed")
            .unwrap();
    }

    /// A DELETE answered while the claimed delivery waited for its slot: it is not sent (the
    /// next claim after its lease cancels the row).
    #[tokio::test]
    async fn a_delivery_waiting_for_a_slot_is_not_sent_once_its_subscription_is_deleted() {
        let (port, mut arrivals) = receiver().await;
        let url = format!("http://127.0.0.1:{port}/hook");
        let (d, store, sub, _dir) = one_slot_dispatcher(&url).await;
        let (handed_off, slots) = claimed_behind_a_hand_off(&d, delivery(&sub)).await;
        assert!(store
            .delete_subscription(&sub.partner_id, &sub.id, Timestamp::now())
            .await
            .unwrap());

        drop(handed_off);
        // Sent or not, the waiting delivery takes the slot and gives it back (after the answer,
        // had it been sent), and the subscription has nothing in flight or waiting.
        let gone = async {
            while slots.in_flight().contains_key(&sub.id) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), gone)
            .await
            .expect("the waiting delivery took its slot and gave it back");
        assert!(
            arrivals.try_recv().is_err(),
            "sent after the DELETE returned"
        );
    }

    /// A new `target_url` answered while the claimed delivery waited: it goes to the new one.
    #[tokio::test]
    async fn a_delivery_waiting_for_a_slot_goes_to_the_url_its_subscription_has_now() {
        let (old_port, mut old) = receiver().await;
        let (new_port, mut new) = receiver().await;
        let url = format!("http://127.0.0.1:{old_port}/hook");
        let (d, store, sub, _dir) = one_slot_dispatcher(&url).await;
        let (handed_off, _) = claimed_behind_a_hand_off(&d, delivery(&sub)).await;
        let moved = Subscription {
            target_url: TargetUrl::parse(&format!("http://127.0.0.1:{new_port}/hook"), true)
                .unwrap(),
            updated_at: Timestamp::now(),
            ..sub.clone()
        };
        store
            .update_subscription(&moved, sub.updated_at, false)
            .await
            .unwrap();

        drop(handed_off);
        tokio::time::timeout(Duration::from_secs(10), new.recv())
            .await
            .expect("sent to the new URL")
            .unwrap();
        assert!(old.try_recv().is_err(), "sent to the old URL");
    }
}
