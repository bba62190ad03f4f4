//! How a claim picks due deliveries, the same on every backend: oldest first, no subscription
//! beyond its room, at most `limit`.
//!
//! Backends supply candidates in two steps. First the head of the global due index, `limit`
//! rows: cheap, and almost always enough. Only when that head is full yet the batch is not
//! (the oldest work belongs to subscriptions at their cap) do they walk the per-subscription
//! queues, taking each subscription's own oldest due rows up to its room. A subscription sitting
//! at its cap with a million rows behind it therefore never makes a claim read its backlog, and a
//! claim does not visit every active subscription either.

use super::Capacity;
use hookline_core::SubscriptionId;
use std::collections::HashMap;

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
}
