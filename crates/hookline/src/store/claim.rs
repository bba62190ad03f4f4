//! How a claim picks due deliveries, the same on every backend: oldest first, no subscription
//! beyond its room, at most `limit`.
//!
//! Backends supply candidates in two steps. First the head of the global due index, `limit`
//! rows: cheap, and almost always enough. Only when that head is full yet the batch is not
//! (the oldest work belongs to subscriptions at their cap) do they walk the per-subscription
//! queues, taking each subscription's own oldest due rows up to its room. A subscription sitting
//! at its cap with a million rows behind it therefore never makes a claim read its backlog, and a
//! claim does not visit every active subscription either.
//!
//! The whole claim run (head → choose → queue walk → lease → load → split live/dead → cancel) is
//! `run`, written once over `ClaimSteps`, the backend's SQL for each step.

use super::rows::{self, DueRow};
use super::{Capacity, Claimed, StoreResult};
use hookline_core::SubscriptionId;
use std::collections::HashMap;
use std::future::Future;

/// A due delivery a claim may take.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub next_attempt_at: i64,
    pub id: i64,
    pub subscription_id: SubscriptionId,
}

impl From<(i64, i64, String)> for Candidate {
    /// `(next_attempt_at, id, subscription_id)`, the column order the backends select.
    fn from((next_attempt_at, id, subscription_id): (i64, i64, String)) -> Self {
        Candidate {
            next_attempt_at,
            id,
            subscription_id: SubscriptionId::from_stored(subscription_id),
        }
    }
}

/// What [`choose`] picked.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Choice {
    /// The ids to lease.
    pub ids: Vec<i64>,
    /// Some due candidate was left for lack of room: its subscription will have more work as
    /// soon as one of its deliveries finishes.
    pub held_back: bool,
}

/// Oldest first, within each subscription's room, at most `limit`.
pub fn choose(mut candidates: Vec<Candidate>, capacity: &Capacity<'_>, limit: usize) -> Choice {
    candidates.sort_unstable_by_key(|c| (c.next_attempt_at, c.id));
    let mut taken: HashMap<&SubscriptionId, usize> = HashMap::new();
    let mut choice = Choice::default();
    for c in &candidates {
        if choice.ids.len() == limit {
            break;
        }
        let n = taken.entry(&c.subscription_id).or_default();
        if *n < capacity.room(&c.subscription_id) {
            *n += 1;
            choice.ids.push(c.id);
        } else {
            choice.held_back = true;
        }
    }
    choice
}

/// After the global head (`head_len` rows read with a limit of `limit`) yielded `chosen`: true
/// when subscriptions with room may have due rows past that head.
pub fn needs_queue_walk(head_len: usize, chosen: usize, limit: usize) -> bool {
    head_len == limit && chosen < limit
}

/// A backend's SQL for each step of a claim, all in one transaction. Times are on the
/// backend's clock, in microseconds.
pub(crate) trait ClaimSteps {
    /// Up to `limit` due rows from the head of the global due index, oldest first, unlocked.
    fn head(&mut self, now: i64, limit: usize)
        -> impl Future<Output = StoreResult<Vec<Candidate>>>;
    /// Each subscription's own oldest due rows, up to its room and `limit`.
    fn queue_heads(
        &mut self,
        now: i64,
        capacity: &Capacity<'_>,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Vec<Candidate>>>;
    /// Leases the chosen rows; returns those actually leased (PostgreSQL skips rows another
    /// node leased since they were read).
    fn lease(
        &mut self,
        ids: &[i64],
        now: i64,
        lease_until: i64,
    ) -> impl Future<Output = StoreResult<Vec<i64>>>;
    /// The leased rows with everything sending needs, oldest first.
    fn load(&mut self, ids: &[i64]) -> impl Future<Output = StoreResult<Vec<DueRow>>>;
    /// Cancels deliveries whose subscription is inactive or deleted.
    fn cancel(&mut self, ids: &[i64], now: i64) -> impl Future<Output = StoreResult<()>>;
    fn commit(self) -> impl Future<Output = StoreResult<()>>;
}

/// What a claim run committed, as rows: turning them into [`DueDelivery`]s (parsing stored
/// values) is left to the caller, off SQLite's single writer thread.
///
/// [`DueDelivery`]: super::DueDelivery
pub(crate) struct ClaimedRows {
    live: Vec<DueRow>,
    more_due: bool,
    held_back: bool,
}

impl ClaimedRows {
    fn nothing(more_due: bool, held_back: bool) -> Self {
        ClaimedRows {
            live: Vec::new(),
            more_due,
            held_back,
        }
    }

    pub(crate) fn into_claimed(self) -> StoreResult<Claimed> {
        Ok(Claimed {
            deliveries: rows::due_deliveries(self.live)?,
            more_due: self.more_due,
            held_back: self.held_back,
        })
    }
}

/// The claim run, the same on every backend (see the module doc), committed at the end.
pub(crate) async fn run<S: ClaimSteps>(
    mut steps: S,
    now: i64,
    lease_until: i64,
    limit: usize,
    capacity: &Capacity<'_>,
) -> StoreResult<ClaimedRows> {
    let claimed = claim(&mut steps, now, lease_until, limit, capacity).await?;
    steps.commit().await?;
    Ok(claimed)
}

async fn claim<S: ClaimSteps>(
    steps: &mut S,
    now: i64,
    lease_until: i64,
    limit: usize,
    capacity: &Capacity<'_>,
) -> StoreResult<ClaimedRows> {
    let head = steps.head(now, limit).await?;
    let head_len = head.len();
    let first = choose(head, capacity, limit);
    let held_back = first.held_back;
    let mut chosen = first.ids;
    if needs_queue_walk(head_len, chosen.len(), limit) {
        let heads = steps.queue_heads(now, capacity, limit).await?;
        chosen = choose(heads, capacity, limit).ids;
    }
    if chosen.is_empty() {
        return Ok(ClaimedRows::nothing(false, held_back));
    }
    let leased = steps.lease(&chosen, now, lease_until).await?;
    let lost_to_other_nodes = leased.len() < chosen.len();
    if leased.is_empty() {
        return Ok(ClaimedRows::nothing(lost_to_other_nodes, held_back));
    }
    let rows = steps.load(&leased).await?;
    let more_due = rows.len() == limit || lost_to_other_nodes;
    let (live, dead): (Vec<DueRow>, Vec<DueRow>) = rows.into_iter().partition(|r| r.live);
    if !dead.is_empty() {
        let dead: Vec<i64> = dead.iter().map(|d| d.id).collect();
        steps.cancel(&dead, now).await?;
    }
    Ok(ClaimedRows {
        more_due: more_due || !dead.is_empty(),
        live,
        held_back,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(next_attempt_at: i64, id: i64, sub: &str) -> Candidate {
        Candidate {
            next_attempt_at,
            id,
            subscription_id: SubscriptionId::from_stored(sub),
        }
    }

    #[test]
    fn oldest_first_within_each_room_and_the_limit() {
        let in_flight = HashMap::from([(SubscriptionId::from_stored("a"), 3)]);
        let capacity = Capacity {
            per_subscription_cap: 4,
            in_flight: &in_flight,
            limits: &HashMap::new(),
        };
        let candidates = vec![
            c(5, 5, "b"),
            c(1, 1, "a"),
            c(2, 2, "a"),
            c(3, 3, "b"),
            c(4, 4, "b"),
        ];
        let all = choose(candidates.clone(), &capacity, 10);
        assert_eq!(all.ids, [1, 3, 4, 5]);
        assert!(all.held_back, "a's second row had no room");
        let two = choose(candidates, &capacity, 2);
        assert_eq!(two.ids, [1, 3]);
        assert!(two.held_back);
        let roomy = choose(vec![c(1, 1, "b")], &capacity, 2);
        assert_eq!(
            roomy,
            Choice {
                ids: vec![1],
                held_back: false
            }
        );
    }

    #[test]
    fn walks_queues_only_when_a_full_head_left_the_batch_short() {
        assert!(!needs_queue_walk(3, 3, 10), "the head held every due row");
        assert!(!needs_queue_walk(10, 10, 10), "the batch is full");
        assert!(needs_queue_walk(10, 2, 10));
    }

    /// A backend whose due rows are `(id, subscription, live)`, oldest first; `taken` rows are
    /// leased by another node between the read and the lease.
    struct Fake {
        due: Vec<(i64, &'static str, bool)>,
        taken: Vec<i64>,
        cancelled: Vec<i64>,
        walked: bool,
    }

    impl Fake {
        fn new(due: Vec<(i64, &'static str, bool)>) -> Self {
            Fake {
                due,
                taken: Vec::new(),
                cancelled: Vec::new(),
                walked: false,
            }
        }
    }

    impl ClaimSteps for Fake {
        async fn head(&mut self, _now: i64, limit: usize) -> StoreResult<Vec<Candidate>> {
            Ok(self
                .due
                .iter()
                .take(limit)
                .map(|d| c(d.0, d.0, d.1))
                .collect())
        }

        async fn queue_heads(
            &mut self,
            _now: i64,
            capacity: &Capacity<'_>,
            _limit: usize,
        ) -> StoreResult<Vec<Candidate>> {
            self.walked = true;
            let mut taken: HashMap<&str, usize> = HashMap::new();
            let mut heads = Vec::new();
            for d in &self.due {
                let n = taken.entry(d.1).or_default();
                if *n < capacity.room(&SubscriptionId::from_stored(d.1)) {
                    *n += 1;
                    heads.push(c(d.0, d.0, d.1));
                }
            }
            Ok(heads)
        }

        async fn lease(&mut self, ids: &[i64], _now: i64, _until: i64) -> StoreResult<Vec<i64>> {
            Ok(ids
                .iter()
                .copied()
                .filter(|id| !self.taken.contains(id))
                .collect())
        }

        async fn load(&mut self, ids: &[i64]) -> StoreResult<Vec<DueRow>> {
            Ok(self
                .due
                .iter()
                .filter(|d| ids.contains(&d.0))
                .map(|d| row(d.0, d.1, d.2))
                .collect())
        }

        async fn cancel(&mut self, ids: &[i64], _now: i64) -> StoreResult<()> {
            self.cancelled.extend(ids);
            Ok(())
        }

        async fn commit(self) -> StoreResult<()> {
            Ok(())
        }
    }

    fn row(id: i64, sub: &str, live: bool) -> DueRow {
        DueRow {
            id,
            attempts: 1,
            attempt_base: 0,
            subscription_id: sub.into(),
            target_url: "https://example.com/".into(),
            signing_secret: "whsec_x".into(),
            previous_signing_secret: None,
            previous_secret_expires_at: None,
            routing_id_header: None,
            routing_key_header: None,
            live,
            partner_id: "p".into(),
            event_id: format!("e{id}"),
            event_type: "message.sent".into(),
            created_at: "2026-01-01T00:00:00Z".into(),
            trace_id: "0".repeat(32),
            data: "{}".into(),
            data_v2025: None,
            accepted_at: 0,
        }
    }

    fn claim_with(fake: &mut Fake, in_flight: &[(&str, usize)], limit: usize) -> Claimed {
        let in_flight: HashMap<SubscriptionId, usize> = in_flight
            .iter()
            .map(|(s, n)| (SubscriptionId::from_stored(*s), *n))
            .collect();
        let capacity = Capacity {
            per_subscription_cap: 2,
            in_flight: &in_flight,
            limits: &HashMap::new(),
        };
        crate::store::steps::run_ready(claim(fake, 0, 1, limit, &capacity))
            .unwrap()
            .into_claimed()
            .unwrap()
    }

    fn ids(claimed: &Claimed) -> Vec<i64> {
        claimed
            .deliveries
            .iter()
            .map(|d| d.delivery_id.get())
            .collect()
    }

    #[test]
    fn a_full_head_walks_the_queues_and_dead_rows_are_cancelled() {
        // a is at its cap and owns the head; b's rows lie past it; b's second row is dead.
        let mut fake = Fake::new(vec![
            (1, "a", true),
            (2, "a", true),
            (3, "b", true),
            (4, "b", false),
        ]);
        let claimed = claim_with(&mut fake, &[("a", 2)], 2);
        assert!(fake.walked);
        assert_eq!(ids(&claimed), [3]);
        assert_eq!(fake.cancelled, [4]);
        assert!(claimed.held_back, "a had due rows and no room");
        assert!(
            claimed.more_due,
            "the batch was full, and a row was cancelled"
        );
    }

    #[test]
    fn rows_lost_to_another_node_mean_more_is_due() {
        let mut fake = Fake::new(vec![(1, "a", true), (2, "b", true)]);
        fake.taken = vec![1, 2];
        let claimed = claim_with(&mut fake, &[], 10);
        assert!(claimed.deliveries.is_empty());
        assert!(claimed.more_due);
        let mut fake = Fake::new(vec![(1, "a", true), (2, "b", true)]);
        fake.taken = vec![2];
        let claimed = claim_with(&mut fake, &[], 10);
        assert_eq!(ids(&claimed), [1]);
        assert!(claimed.more_due);
        assert!(!fake.walked, "the head held every due row");
    }
}
