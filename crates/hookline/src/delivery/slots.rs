//! Delivery slots: how many attempts this process runs at once, globally and per subscription.
//!
//! A [`Permit`] is the right to run one attempt; dropping it frees both its global and its
//! per-subscription slot and wakes whoever waits. Both caps hold at the moment an attempt
//! starts, whichever path the delivery came by (a claim or a publish hand-off): there is no
//! callback to forget and no overdraft. Must never hand out a permit past either cap.
//!
//! A claim chooses its deliveries from a snapshot of [`Slots::in_flight`]; a publish hand-off
//! may take a slot between that snapshot and the claim's return. The claimed delivery then
//! waits ([`Slots::reserve`] → [`Reservation::ready`]) rather than exceed the cap. A waiting
//! reservation counts as taken, so hand-offs cannot starve it (its lease is running) and the
//! next claim does not choose more than there is room for.
//!
//! With adaptive concurrency each subscription's room is its learned limit ([`adaptive`]),
//! never above the per-subscription cap, and none while a `Retry-After` pauses it. The caps
//! stay invariants: a limit only ever lowers a subscription's room below them.
//!
//! [`adaptive`]: super::adaptive

use hookline_core::SubscriptionId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use tokio::sync::Notify;

use super::adaptive::{Limit, Signal, INITIAL_LIMIT};

/// Learned limits kept before the idle ones are dropped (they restart from the initial limit).
const LIMITS_KEPT: usize = 10_000;

/// The slots of one process. Cheap to clone; clones share the counts.
#[derive(Clone)]
pub struct Slots {
    inner: Arc<Inner>,
}

struct Inner {
    global_cap: usize,
    per_subscription_cap: usize,
    /// Each subscription's room adapts (AIMD) below `per_subscription_cap`.
    adaptive: bool,
    counts: Mutex<Counts>,
    /// Wakes waiting reservations and [`Slots::drained`] (every waiter re-checks under the lock).
    changed: Notify,
    /// Wakes the claim loop; `notify_one` keeps the wake-up if the loop is not waiting yet.
    freed: Notify,
}

#[derive(Default)]
struct Counts {
    held: usize,
    waiting: usize,
    by_subscription: HashMap<SubscriptionId, SubscriptionCount>,
    /// Learned limits (adaptive only); a subscription without one is at the initial limit.
    limits: HashMap<SubscriptionId, Limit>,
    closed: bool,
}

#[derive(Default, Clone, Copy)]
struct SubscriptionCount {
    held: usize,
    waiting: usize,
}

impl SubscriptionCount {
    fn taken(self) -> usize {
        self.held + self.waiting
    }
}

impl Counts {
    fn sub(&mut self, subscription_id: &SubscriptionId) -> &mut SubscriptionCount {
        // `entry` would clone the id on every call; a hit is the common case.
        if !self.by_subscription.contains_key(subscription_id) {
            self.by_subscription
                .insert(subscription_id.clone(), SubscriptionCount::default());
        }
        self.by_subscription
            .get_mut(subscription_id)
            .expect("inserted above")
    }

    fn forget_if_idle(&mut self, subscription_id: &SubscriptionId) {
        if self
            .by_subscription
            .get(subscription_id)
            .is_some_and(|c| c.taken() == 0)
        {
            self.by_subscription.remove(subscription_id);
        }
    }
}

/// The right to run one delivery attempt. Dropping it frees the slot.
#[must_use = "dropping a permit frees its slot at once"]
pub struct Permit {
    inner: Arc<Inner>,
    subscription_id: SubscriptionId,
    /// When the attempt could start: congestion signals of attempts started before the last
    /// decrease do not halve the limit again.
    started: Instant,
}

impl Permit {
    /// Feeds the attempt's result into its subscription's limit (adaptive only).
    pub fn report(&self, signal: Signal) {
        if !self.inner.adaptive || signal == Signal::Neutral {
            return;
        }
        let grew = {
            let mut c = self.inner.lock();
            let cap = self.inner.per_subscription_cap;
            if !c.limits.contains_key(&self.subscription_id) {
                if c.limits.len() >= LIMITS_KEPT {
                    let Counts {
                        limits,
                        by_subscription,
                        ..
                    } = &mut *c;
                    limits.retain(|id, _| by_subscription.contains_key(id));
                }
                c.limits
                    .insert(self.subscription_id.clone(), Limit::new(cap));
            }
            let limit = c
                .limits
                .get_mut(&self.subscription_id)
                .expect("inserted above");
            limit.apply(signal, self.started, Instant::now(), cap)
        };
        if grew {
            self.inner.changed.notify_waiters();
            self.inner.freed.notify_one();
        }
    }
}

impl std::fmt::Debug for Permit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Permit({})", self.subscription_id)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let wake_waiters = {
            let mut c = self.inner.lock();
            c.held -= 1;
            c.sub(&self.subscription_id).held -= 1;
            c.forget_if_idle(&self.subscription_id);
            c.waiting > 0 || c.closed
        };
        if wake_waiters {
            self.inner.changed.notify_waiters();
        }
        self.inner.freed.notify_one();
    }
}

/// A slot promised to a claimed delivery: granted already, or granted as soon as its
/// subscription (or the process) has room.
#[must_use = "a reservation holds its place until it is dropped"]
pub enum Reservation {
    Granted(Permit),
    Waiting(Waiter),
}

/// A queued reservation. Dropping it gives up its place.
pub struct Waiter {
    inner: Arc<Inner>,
    subscription_id: SubscriptionId,
    /// Cleared once the place has turned into a permit.
    queued: bool,
}

impl Drop for Waiter {
    fn drop(&mut self) {
        if self.queued {
            let mut c = self.inner.lock();
            c.waiting -= 1;
            c.sub(&self.subscription_id).waiting -= 1;
            c.forget_if_idle(&self.subscription_id);
        }
    }
}

impl Reservation {
    /// The permit, once there is room; `None` when the slots were closed meanwhile (shutting
    /// down: the delivery is not sent and its lease expires).
    pub async fn ready(self) -> Option<Permit> {
        match self {
            Reservation::Granted(p) => Some(p),
            Reservation::Waiting(w) => w.wait().await,
        }
    }
}

impl Waiter {
    async fn wait(mut self) -> Option<Permit> {
        let inner = self.inner.clone();
        loop {
            let changed = inner.changed.notified();
            tokio::pin!(changed);
            // Registered before the check, so a permit dropped in between still wakes us.
            changed.as_mut().enable();
            let paused_until = {
                let mut c = inner.lock();
                if c.closed {
                    return None;
                }
                let now = Instant::now();
                let (limit, paused_until) = inner.limit(&c, &self.subscription_id, now);
                let sub = c.sub(&self.subscription_id);
                // This waiter is counted in `waiting` already: only the held counts must leave room.
                if paused_until.is_none() && sub.held < limit && c.held < inner.global_cap {
                    let sub = c.sub(&self.subscription_id);
                    sub.waiting -= 1;
                    sub.held += 1;
                    c.waiting -= 1;
                    c.held += 1;
                    self.queued = false;
                    return Some(Permit {
                        inner: inner.clone(),
                        subscription_id: self.subscription_id.clone(),
                        started: now,
                    });
                }
                paused_until
            };
            match paused_until {
                // Nothing frees a pause but time.
                Some(until) => tokio::select! {
                    _ = changed => {}
                    _ = tokio::time::sleep_until(until.into()) => {}
                },
                None => changed.await,
            }
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Counts> {
        self.counts
            .lock()
            .expect("slot counts are never left half-updated")
    }

    /// The subscription's limit (the cap, or its learned limit when adaptive) and, while a
    /// `Retry-After` pauses it, until when.
    fn limit(
        &self,
        c: &Counts,
        subscription_id: &SubscriptionId,
        now: Instant,
    ) -> (usize, Option<Instant>) {
        if !self.adaptive {
            return (self.per_subscription_cap, None);
        }
        match c.limits.get(subscription_id) {
            Some(l) => (
                l.value().min(self.per_subscription_cap),
                l.paused_until(now),
            ),
            None => (self.initial_limit(), None),
        }
    }

    fn initial_limit(&self) -> usize {
        match self.adaptive {
            true => INITIAL_LIMIT.min(self.per_subscription_cap),
            false => self.per_subscription_cap,
        }
    }

    /// Room for one more next to everything held or promised.
    fn has_room(&self, c: &mut Counts, subscription_id: &SubscriptionId) -> bool {
        let global_taken = c.held + c.waiting;
        let (limit, paused_until) = self.limit(c, subscription_id, Instant::now());
        paused_until.is_none()
            && global_taken < self.global_cap
            && c.sub(subscription_id).taken() < limit
    }

    fn grant(self: &Arc<Self>, c: &mut Counts, subscription_id: &SubscriptionId) -> Permit {
        c.held += 1;
        c.sub(subscription_id).held += 1;
        Permit {
            inner: self.clone(),
            subscription_id: subscription_id.clone(),
            started: Instant::now(),
        }
    }
}

impl Slots {
    /// Fixed caps: every subscription may use `per_subscription_cap`.
    pub fn new(global_cap: usize, per_subscription_cap: usize) -> Self {
        Self::with_adaptive(global_cap, per_subscription_cap, false)
    }

    /// With `adaptive`, each subscription's room is its learned limit (see [`Permit::report`]).
    pub fn with_adaptive(global_cap: usize, per_subscription_cap: usize, adaptive: bool) -> Self {
        Slots {
            inner: Arc::new(Inner {
                global_cap,
                per_subscription_cap,
                adaptive,
                counts: Mutex::default(),
                changed: Notify::new(),
                freed: Notify::new(),
            }),
        }
    }

    /// A permit now, or `None` when either cap is reached, a claimed delivery is waiting for
    /// that room, or the slots are closed. The publish hand-off's path: without a permit the
    /// delivery is committed for any worker to claim instead.
    pub fn try_acquire(&self, subscription_id: &SubscriptionId) -> Option<Permit> {
        let mut c = self.inner.lock();
        if c.closed || !self.inner.has_room(&mut c, subscription_id) {
            c.forget_if_idle(subscription_id);
            return None;
        }
        Some(self.inner.grant(&mut c, subscription_id))
    }

    /// A slot for a claimed delivery: granted now when there is room, else queued ahead of
    /// every later [`try_acquire`](Self::try_acquire). The claim's lease is already running,
    /// so the delivery must not be dropped for want of a slot.
    pub fn reserve(&self, subscription_id: &SubscriptionId) -> Reservation {
        let mut c = self.inner.lock();
        if !c.closed && self.inner.has_room(&mut c, subscription_id) {
            return Reservation::Granted(self.inner.grant(&mut c, subscription_id));
        }
        c.waiting += 1;
        c.sub(subscription_id).waiting += 1;
        Reservation::Waiting(Waiter {
            inner: self.inner.clone(),
            subscription_id: subscription_id.clone(),
            queued: true,
        })
    }

    /// Slots neither held nor promised.
    pub fn free(&self) -> usize {
        let c = self.inner.lock();
        self.inner.global_cap.saturating_sub(c.held + c.waiting)
    }

    /// Slots taken (held or promised) per subscription.
    pub fn in_flight(&self) -> HashMap<SubscriptionId, usize> {
        let c = self.inner.lock();
        c.by_subscription
            .iter()
            .map(|(id, n)| (id.clone(), n.taken()))
            .collect()
    }

    /// The per-subscription limits a claim must respect: those that differ from the default
    /// (learned ones; 0 while paused), and the default (the initial limit when adaptive, else
    /// the cap).
    pub fn limits(&self) -> (HashMap<SubscriptionId, usize>, usize) {
        let c = self.inner.lock();
        let now = Instant::now();
        let default = self.inner.initial_limit();
        let limits = c
            .limits
            .iter()
            .filter_map(|(id, l)| {
                let limit = match l.paused_until(now) {
                    Some(_) => 0,
                    None => l.value().min(self.inner.per_subscription_cap),
                };
                (limit != default).then(|| (id.clone(), limit))
            })
            .collect();
        (limits, default)
    }

    /// The learned limit of `subscription_id` now (the cap when not adaptive).
    pub fn limit_of(&self, subscription_id: &SubscriptionId) -> usize {
        let c = self.inner.lock();
        self.inner.limit(&c, subscription_id, Instant::now()).0
    }

    /// Resolves after a permit was dropped (at once if one was dropped since the last call).
    pub async fn freed(&self) {
        self.inner.freed.notified().await
    }

    /// Stops handing out permits: hand-offs fail and waiting reservations give up.
    /// Whether [`close`](Self::close) was called: no permit is granted any more.
    pub fn is_closed(&self) -> bool {
        self.inner.lock().closed
    }

    pub fn close(&self) {
        self.inner.lock().closed = true;
        self.inner.changed.notify_waiters();
    }

    /// Permits held right now.
    pub fn held(&self) -> usize {
        self.inner.lock().held
    }

    /// Resolves once no permit is held. Call after [`close`](Self::close).
    pub async fn drained(&self) {
        loop {
            let changed = self.inner.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.held() == 0 {
                return;
            }
            changed.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn id(s: &str) -> SubscriptionId {
        SubscriptionId::from_stored(s)
    }

    fn held_for(slots: &Slots, sub: &str) -> usize {
        slots
            .inner
            .lock()
            .by_subscription
            .get(sub)
            .map_or(0, |c| c.held)
    }

    #[test]
    fn try_acquire_stops_at_the_subscription_cap_and_drop_frees() {
        let slots = Slots::new(10, 2);
        let a1 = slots.try_acquire(&id("a")).unwrap();
        let _a2 = slots.try_acquire(&id("a")).unwrap();
        assert!(slots.try_acquire(&id("a")).is_none(), "third permit for a");
        let _b = slots.try_acquire(&id("b")).unwrap();
        assert_eq!(slots.free(), 7);
        drop(a1);
        assert_eq!(slots.free(), 8);
        assert!(slots.try_acquire(&id("a")).is_some());
    }

    #[test]
    fn try_acquire_stops_at_the_global_cap() {
        let slots = Slots::new(2, 5);
        let _a = slots.try_acquire(&id("a")).unwrap();
        let _b = slots.try_acquire(&id("b")).unwrap();
        assert!(slots.try_acquire(&id("c")).is_none());
        assert_eq!(slots.free(), 0);
    }

    #[test]
    fn idle_subscriptions_are_forgotten() {
        let slots = Slots::new(4, 1);
        drop(slots.try_acquire(&id("a")).unwrap());
        let b = slots.try_acquire(&id("b")).unwrap();
        assert!(slots.try_acquire(&id("b")).is_none());
        let waiting = slots.reserve(&id("b"));
        assert!(matches!(waiting, Reservation::Waiting(_)));
        assert_eq!(slots.in_flight(), HashMap::from([(id("b"), 2)]));
        drop(waiting);
        drop(slots.reserve(&id("c")));
        drop(b);
        assert!(slots.in_flight().is_empty());
        assert!(slots.inner.lock().by_subscription.is_empty());
    }

    /// The race the claim loop meets: it chose a delivery for `a` while `a` had room, then a
    /// publish hand-off took that room. The claimed delivery must wait, not exceed the cap.
    #[tokio::test]
    async fn a_claim_that_lost_its_room_to_a_hand_off_waits_for_it() {
        let slots = Slots::new(10, 1);
        let snapshot = slots.in_flight();
        assert_eq!(snapshot.get("a"), None, "the claim sees room for a");
        let handed_off = slots
            .try_acquire(&id("a"))
            .expect("the hand-off takes a's slot");

        let reservation = slots.reserve(&id("a"));
        assert!(matches!(reservation, Reservation::Waiting(_)));
        assert_eq!(held_for(&slots, "a"), 1);
        // The waiting claim counts as taken: neither a hand-off nor the next claim takes it.
        assert!(slots.try_acquire(&id("a")).is_none());
        assert_eq!(slots.in_flight().get("a"), Some(&2));
        assert_eq!(slots.free(), 8);

        let waiting = tokio::spawn(reservation.ready());
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "granted past the cap");
        drop(handed_off);
        let permit = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("woken when the slot frees")
            .unwrap()
            .expect("not closed");
        assert_eq!(held_for(&slots, "a"), 1);
        drop(permit);
        assert_eq!(slots.free(), 10);
    }

    #[tokio::test]
    async fn a_claim_past_the_global_cap_waits_too() {
        let slots = Slots::new(1, 5);
        let other = slots.try_acquire(&id("b")).unwrap();
        let waiting = tokio::spawn(slots.reserve(&id("a")).ready());
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        assert!(
            slots.try_acquire(&id("c")).is_none(),
            "a hand-off jumped the queue"
        );
        drop(other);
        let permit = waiting.await.unwrap().unwrap();
        assert_eq!(slots.held(), 1);
        drop(permit);
    }

    #[tokio::test]
    async fn closing_refuses_hand_offs_and_releases_waiters() {
        let slots = Slots::new(1, 1);
        let held = slots.try_acquire(&id("a")).unwrap();
        let waiting = tokio::spawn(slots.reserve(&id("a")).ready());
        tokio::task::yield_now().await;
        slots.close();
        assert!(waiting.await.unwrap().is_none());
        assert!(slots.try_acquire(&id("b")).is_none());
        let drained = tokio::spawn({
            let slots = slots.clone();
            async move { slots.drained().await }
        });
        tokio::task::yield_now().await;
        assert!(!drained.is_finished());
        drop(held);
        tokio::time::timeout(Duration::from_secs(5), drained)
            .await
            .unwrap()
            .unwrap();
    }

    /// Many claims and hand-offs at once, on several threads: the attempts running at any
    /// moment never exceed either cap. Fails if a permit is ever handed out past one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn caps_hold_under_concurrent_claims_and_hand_offs() {
        const GLOBAL: usize = 6;
        const PER_SUB: usize = 2;
        let slots = Slots::new(GLOBAL, PER_SUB);
        let running: Arc<Vec<AtomicUsize>> =
            Arc::new((0..4).map(|_| AtomicUsize::new(0)).collect());
        let total = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..400 {
            let (slots, running, total) = (slots.clone(), running.clone(), total.clone());
            tasks.push(tokio::spawn(async move {
                let sub = i % 4;
                let name = id(&format!("sub-{sub}"));
                let permit = if i % 3 == 0 {
                    match slots.try_acquire(&name) {
                        Some(p) => p,
                        None => return,
                    }
                } else {
                    slots.reserve(&name).ready().await.unwrap()
                };
                let now_sub = running[sub].fetch_add(1, Ordering::SeqCst) + 1;
                let now_all = total.fetch_add(1, Ordering::SeqCst) + 1;
                assert!(now_sub <= PER_SUB, "{now_sub} attempts for {name}");
                assert!(now_all <= GLOBAL, "{now_all} attempts in all");
                tokio::task::yield_now().await;
                running[sub].fetch_sub(1, Ordering::SeqCst);
                total.fetch_sub(1, Ordering::SeqCst);
                drop(permit);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(slots.free(), GLOBAL);
    }
}
