//! Throttling of failed authentication (partner API keys and the admin token), per client
//! address and overall, so a key cannot be guessed at line rate.
//!
//! Only failures count, and a client is only ever slowed by its own failures:
//! - an address past its own budget (`HOOKLINE_AUTH_FAILURES_PER_MINUTE`) is refused with 429
//!   before its key is looked at, whatever it presents, until the budget refills;
//! - while the global budget (`HOOKLINE_AUTH_FAILURES_PER_MINUTE_GLOBAL`) is spent — a guess
//!   spread over many addresses — an address with a failure still counted against it is refused
//!   the same way; an address without one is checked as always.
//!
//! So a client that presents a valid key and has not failed is never throttled, however many
//! failures others cause. Refused requests are not checked and so do not count. Each budget is
//! a GCRA bucket: `per_minute` failures in a burst, one more every `60 s / per_minute`.
//! IPv6 clients are counted per /64 (one host usually holds a whole /64). The address is the TCP
//! peer's: behind a proxy, every client shares the proxy's budget.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::ServerSettings;

/// Addresses remembered at most; past it, recovered entries are dropped, and if none has
/// recovered a new address is counted against the global budget only.
const MAX_TRACKED: usize = 100_000;

/// A refusal: retry after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled(pub Duration);

impl Throttled {
    /// Whole seconds for `Retry-After`, at least 1.
    pub fn retry_after_secs(self) -> u64 {
        let rounded_up = self.0.as_secs() + u64::from(self.0.subsec_nanos() > 0);
        rounded_up.max(1)
    }
}

pub struct AuthThrottle {
    per_address: Gcra,
    global: Gcra,
    state: Mutex<State>,
}

struct State {
    /// Theoretical arrival time of the next failure, per address (GCRA).
    addresses: HashMap<IpAddr, Instant>,
    global: Option<Instant>,
}

impl AuthThrottle {
    pub fn new(settings: &ServerSettings) -> Self {
        AuthThrottle {
            per_address: Gcra::per_minute(settings.auth_failures_per_minute),
            global: Gcra::per_minute(settings.auth_failures_per_minute_global),
            state: Mutex::new(State {
                addresses: HashMap::new(),
                global: None,
            }),
        }
    }

    /// Before a credential is checked: `Err` when `client` must be refused unchecked (see the
    /// module doc). An unknown peer address (`None`) is never refused: there is nothing to hold
    /// it to; its failures still spend the global budget.
    pub fn admit(&self, client: Option<IpAddr>, now: Instant) -> Result<(), Throttled> {
        let state = self.state.lock().expect("not poisoned");
        let Some(tat) = client
            .and_then(|ip| state.addresses.get(&bucket(ip)))
            .copied()
        else {
            return Ok(());
        };
        if let Some(wait) = self.per_address.wait(tat, now) {
            return Err(Throttled(wait));
        }
        let failed_recently = tat > now;
        match state.global.and_then(|g| self.global.wait(g, now)) {
            Some(wait) if failed_recently => Err(Throttled(wait)),
            _ => Ok(()),
        }
    }

    /// A credential `client` presented was wrong: counts against its budget and the global one.
    pub fn failed(&self, client: Option<IpAddr>, now: Instant) {
        let mut state = self.state.lock().expect("not poisoned");
        state.global = Some(self.global.add(state.global, now));
        let Some(ip) = client.map(bucket) else {
            return;
        };
        if !state.addresses.contains_key(&ip) && state.addresses.len() >= MAX_TRACKED {
            state.addresses.retain(|_, tat| *tat > now);
            if state.addresses.len() >= MAX_TRACKED {
                return;
            }
        }
        let tat = state.addresses.get(&ip).copied();
        state.addresses.insert(ip, self.per_address.add(tat, now));
    }
}

/// The unit an address is counted in: itself for IPv4, its /64 for IPv6.
fn bucket(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// The generic cell rate algorithm as a budget: `burst` events at once, one more each
/// `interval`. State is one instant per bucket, the theoretical arrival time (TAT).
struct Gcra {
    interval: Duration,
    /// `burst × interval`: how far the TAT may run ahead of now.
    window: Duration,
}

impl Gcra {
    fn per_minute(n: u32) -> Gcra {
        let n = n.max(1);
        let interval = Duration::from_secs(60) / n;
        Gcra {
            interval,
            window: interval * n,
        }
    }

    /// How long until one more event conforms, or `None` if it does now.
    fn wait(&self, tat: Instant, now: Instant) -> Option<Duration> {
        let next = tat.max(now) + self.interval;
        let allowed_from = next.checked_sub(self.window)?;
        (allowed_from > now).then(|| allowed_from - now)
    }

    /// The TAT after one more event. Never more than one window ahead, so a flood that goes on
    /// past the limit does not lengthen the wait beyond one window.
    fn add(&self, tat: Option<Instant>, now: Instant) -> Instant {
        let next = tat.unwrap_or(now).max(now) + self.interval;
        next.min(now + self.window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(per_address: u32, global: u32) -> AuthThrottle {
        let mut s = crate::config::Settings::default().server;
        s.auth_failures_per_minute = per_address;
        s.auth_failures_per_minute_global = global;
        AuthThrottle::new(&s)
    }

    const A: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1)));
    const B: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2)));

    #[test]
    fn an_address_is_refused_past_its_budget_and_admitted_after_one_interval() {
        let t = throttle(20, 1000);
        let now = Instant::now();
        for _ in 0..20 {
            assert_eq!(t.admit(A, now), Ok(()));
            t.failed(A, now);
        }
        let Err(refused) = t.admit(A, now) else {
            panic!("the 21st attempt was admitted");
        };
        assert_eq!(refused.retry_after_secs(), 3);
        assert_eq!(t.admit(B, now), Ok(()), "another address is not affected");
        assert_eq!(t.admit(A, now + Duration::from_secs(3)), Ok(()));
    }

    #[test]
    fn a_spent_global_budget_refuses_only_addresses_that_failed_recently() {
        let t = throttle(20, 5);
        let now = Instant::now();
        for _ in 0..5 {
            t.failed(A, now);
        }
        assert!(
            t.admit(A, now).is_err(),
            "A failed and the global budget is spent"
        );
        assert_eq!(t.admit(B, now), Ok(()), "B never failed");
        assert_eq!(t.admit(None, now), Ok(()));
        let later = now + Duration::from_secs(12);
        assert_eq!(t.admit(A, later), Ok(()), "the global budget refilled");
    }

    #[test]
    fn ipv6_addresses_are_counted_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        assert_eq!(bucket(a), bucket(b));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(bucket(mapped), A.unwrap());
    }
}
