//! Adaptive concurrency per subscription (AIMD): how many attempts a subscription may have in
//! flight, learned from how its receiver answers. The limit starts small, grows while attempts
//! succeed quickly, and halves when the receiver shows it is overloaded (a timeout, a refused
//! connection, 429, 503); `Retry-After` on 429/503 pauses the whole subscription. It never
//! exceeds `HOOKLINE_MAX_IN_FLIGHT_PER_SUBSCRIPTION`, which stays the hard cap that
//! [`Slots`](super::slots::Slots) enforces. Pure arithmetic: the slots hold one per subscription.

use hookline_core::ErrorKind;
use std::time::{Duration, Instant};

use super::decision::{Attempted, MAX_RETRY_AFTER};

/// Where a subscription's limit starts (capped by the per-subscription cap).
pub const INITIAL_LIMIT: usize = 8;

/// What one finished attempt says about its receiver's load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// A 2xx well within the timeout: there may be room for more.
    Quick,
    /// Says nothing about load (a slow success, a 4xx, a 500, a TLS error, …).
    Neutral,
    /// Overloaded: halve, and with `pause`, send nothing more to it until then.
    Congested { pause: Option<Duration> },
}

impl Signal {
    /// Classifies an attempt that took `took`. A success counts as quick under a quarter of the
    /// delivery timeout: slower, the receiver is close to timing out, and more concurrency
    /// would push it over.
    pub fn of(attempted: Attempted, took: Duration, timeout: Duration) -> Signal {
        match attempted {
            Attempted::Answered { status, .. } if (200..=299).contains(&status) => {
                if took < timeout / 4 {
                    Signal::Quick
                } else {
                    Signal::Neutral
                }
            }
            Attempted::Answered {
                status: 429 | 503,
                retry_after,
            } => Signal::Congested {
                pause: retry_after
                    .filter(|d| !d.is_zero())
                    .map(|d| d.min(MAX_RETRY_AFTER)),
            },
            Attempted::Failed(ErrorKind::Timeout | ErrorKind::Connect) => {
                Signal::Congested { pause: None }
            }
            _ => Signal::Neutral,
        }
    }
}

/// One subscription's learned limit.
#[derive(Debug, Clone)]
pub struct Limit {
    value: usize,
    /// Quick successes counted towards the next increase (congestion avoidance).
    credit: usize,
    /// Until the first congestion signal the limit grows by one per quick success (it doubles
    /// per round of attempts); after it, by one per round: the additive increase.
    slow_start: bool,
    /// Attempts started before the last decrease saw the old limit: their congestion signals
    /// are the same overload and do not halve again.
    decreased_at: Option<Instant>,
    paused_until: Option<Instant>,
}

impl Limit {
    pub fn new(cap: usize) -> Self {
        Limit {
            value: INITIAL_LIMIT.min(cap).max(1),
            credit: 0,
            slow_start: true,
            decreased_at: None,
            paused_until: None,
        }
    }

    pub fn value(&self) -> usize {
        self.value
    }

    /// Until when the subscription is paused, if it is at `now`.
    pub fn paused_until(&self, now: Instant) -> Option<Instant> {
        self.paused_until.filter(|until| *until > now)
    }

    /// Applies `signal` from an attempt started at `started`; true when the limit grew (waiters
    /// may proceed).
    pub fn apply(&mut self, signal: Signal, started: Instant, now: Instant, cap: usize) -> bool {
        match signal {
            Signal::Neutral => false,
            Signal::Quick => {
                if self.value >= cap {
                    self.value = cap;
                    return false;
                }
                if !self.slow_start {
                    self.credit += 1;
                    if self.credit < self.value {
                        return false;
                    }
                }
                self.credit = 0;
                self.value += 1;
                true
            }
            Signal::Congested { pause } => {
                if let Some(pause) = pause {
                    let until = now + pause;
                    self.paused_until = Some(self.paused_until.map_or(until, |p| p.max(until)));
                }
                if self.decreased_at.is_none_or(|at| started >= at) {
                    self.value = (self.value / 2).max(1);
                    self.credit = 0;
                    self.slow_start = false;
                    self.decreased_at = Some(now);
                }
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::slots::Slots;
    use super::*;
    use hookline_core::SubscriptionId;

    const CAP: usize = 128;
    const CONGESTED: Signal = Signal::Congested { pause: None };

    #[test]
    fn grows_by_one_per_quick_success_until_the_first_congestion() {
        let t = Instant::now();
        let mut l = Limit::new(CAP);
        assert_eq!(l.value(), INITIAL_LIMIT);
        for _ in 0..10 {
            assert!(l.apply(Signal::Quick, t, t, CAP));
        }
        assert_eq!(l.value(), 18);
        assert!(!l.apply(Signal::Neutral, t, t, CAP));
        assert_eq!(l.value(), 18);
    }

    #[test]
    fn halves_once_per_overload_then_grows_by_one_per_round() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(10);
        let mut l = Limit::new(CAP);
        for _ in 0..12 {
            l.apply(Signal::Quick, t0, t0, CAP);
        }
        assert_eq!(l.value(), 20);
        l.apply(CONGESTED, t0, t1, CAP);
        assert_eq!(l.value(), 10);
        // More failures of attempts that started before the decrease: the same overload.
        l.apply(CONGESTED, t0, t1, CAP);
        assert_eq!(l.value(), 10);
        // A round of 10 quick successes adds one.
        for _ in 0..9 {
            assert!(!l.apply(Signal::Quick, t1, t1, CAP));
        }
        assert!(l.apply(Signal::Quick, t1, t1, CAP));
        assert_eq!(l.value(), 11);
        // An attempt started after the decrease that fails halves again.
        l.apply(CONGESTED, t1, t1 + Duration::from_millis(5), CAP);
        assert_eq!(l.value(), 5);
    }

    #[test]
    fn never_above_the_cap_nor_below_one() {
        let t = Instant::now();
        let mut l = Limit::new(3);
        assert_eq!(l.value(), 3, "starts at the cap when the cap is small");
        assert!(!l.apply(Signal::Quick, t, t, 3));
        assert_eq!(l.value(), 3);
        for i in 0..5 {
            let at = t + Duration::from_millis(i);
            l.apply(CONGESTED, at, at, 3);
        }
        assert_eq!(l.value(), 1);
    }

    #[test]
    fn retry_after_pauses_until_the_latest_ask() {
        let t = Instant::now();
        let mut l = Limit::new(CAP);
        let pause = |s| Signal::Congested {
            pause: Some(Duration::from_secs(s)),
        };
        l.apply(pause(5), t, t, CAP);
        l.apply(pause(2), t, t, CAP);
        assert_eq!(l.paused_until(t), Some(t + Duration::from_secs(5)));
        assert_eq!(l.paused_until(t + Duration::from_secs(5)), None);
    }

    #[test]
    fn classifies_answers() {
        let timeout = Duration::from_secs(10);
        let fast = Duration::from_millis(30);
        let ok = Attempted::Answered {
            status: 204,
            retry_after: None,
        };
        assert_eq!(Signal::of(ok, fast, timeout), Signal::Quick);
        assert_eq!(
            Signal::of(ok, Duration::from_secs(3), timeout),
            Signal::Neutral
        );
        let busy = |status, secs: Option<u64>| Attempted::Answered {
            status,
            retry_after: secs.map(Duration::from_secs),
        };
        assert_eq!(Signal::of(busy(503, None), fast, timeout), CONGESTED);
        assert_eq!(
            Signal::of(busy(429, Some(3600)), fast, timeout),
            Signal::Congested {
                pause: Some(MAX_RETRY_AFTER)
            }
        );
        assert_eq!(Signal::of(busy(500, None), fast, timeout), Signal::Neutral);
        assert_eq!(Signal::of(busy(404, None), fast, timeout), Signal::Neutral);
        for kind in [ErrorKind::Timeout, ErrorKind::Connect] {
            assert_eq!(
                Signal::of(Attempted::Failed(kind), fast, timeout),
                CONGESTED
            );
        }
        assert_eq!(
            Signal::of(Attempted::Failed(ErrorKind::Tls), fast, timeout),
            Signal::Neutral
        );
    }

    /// The slots hold each subscription to its learned limit and its pause, and grant a waiting
    /// claim once the pause is over; with adaptive concurrency off the cap never moves.
    #[tokio::test]
    async fn slots_follow_the_learned_limit_and_the_pause() {
        let slots = Slots::with_adaptive(100, 16, true);
        let a = SubscriptionId::from_stored("a");
        let permits: Vec<_> = (0..8).map(|_| slots.try_acquire(&a).unwrap()).collect();
        assert!(
            slots.try_acquire(&a).is_none(),
            "starts at the initial limit"
        );
        permits[0].report(CONGESTED);
        assert_eq!(slots.limit_of(&a), 4);
        drop(permits);
        let held: Vec<_> = (0..4).map(|_| slots.try_acquire(&a).unwrap()).collect();
        assert!(slots.try_acquire(&a).is_none());
        held[0].report(Signal::Congested {
            pause: Some(Duration::from_millis(200)),
        });
        drop(held);
        assert!(slots.try_acquire(&a).is_none(), "paused");
        assert_eq!(slots.limits().0.get(&a), Some(&0), "a claim sees no room");
        let granted = tokio::time::timeout(Duration::from_secs(5), slots.reserve(&a).ready())
            .await
            .expect("granted when the pause ends");
        assert!(granted.is_some());

        let fixed = Slots::new(100, 16);
        let permits: Vec<_> = (0..16).map(|_| fixed.try_acquire(&a).unwrap()).collect();
        permits[0].report(CONGESTED);
        assert_eq!(fixed.limit_of(&a), 16);
        assert!(fixed.limits().0.is_empty());
    }
}
