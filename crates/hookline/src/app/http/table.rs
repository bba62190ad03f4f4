//! The open connections, oldest first, and the cap on how many there may be. Past the cap a new
//! connection is admitted by closing the oldest one that has no request in progress: an idle
//! keep-alive client reconnects when it next needs to (clients expect idle connections to be
//! closed), and a client that opened connections without sending requests on them loses those
//! first. Only when every open connection is in a request is the new one refused (closed at
//! once), and a request in progress is never cut to make room.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::activity::Activity;

/// At most one warning per this long while the cap is being hit, with counts since the last.
const WARN_EVERY: Duration = Duration::from_secs(10);

pub(super) struct Table {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    max: usize,
    next_id: u64,
    /// By id, which grows with each accept: the first entries are the oldest connections.
    open: BTreeMap<u64, Arc<Activity>>,
    evicted: u64,
    refused: u64,
    last_warning: Option<Instant>,
}

/// A connection's place in the table; dropping it (when the connection ends) frees the place.
pub(super) struct Slot {
    id: u64,
    table: Arc<Mutex<Inner>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        lock(&self.table).open.remove(&self.id);
    }
}

fn lock(inner: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    // The table holds no invariant a panic elsewhere could break halfway.
    inner
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Table {
    pub(super) fn new(max: usize) -> Table {
        Table {
            inner: Arc::new(Mutex::new(Inner {
                max,
                next_id: 0,
                open: BTreeMap::new(),
                evicted: 0,
                refused: 0,
                last_warning: None,
            })),
        }
    }

    /// A place for a new connection, made by evicting the oldest connection with no request in
    /// progress when the table is full; `None` when every open connection is in a request.
    pub(super) fn admit(&self, activity: &Arc<Activity>) -> Option<Slot> {
        let mut inner = lock(&self.inner);
        if inner.open.len() >= inner.max {
            let victim = inner
                .open
                .iter()
                .find(|(_, activity)| !activity.in_request())
                .map(|(&id, _)| id);
            match victim.and_then(|id| inner.open.remove(&id)) {
                Some(activity) => {
                    activity.evict.cancel();
                    inner.evicted += 1;
                }
                None => inner.refused += 1,
            }
            inner.warn_at_cap();
            if inner.open.len() >= inner.max {
                return None;
            }
        }
        let id = inner.next_id;
        inner.next_id += 1;
        inner.open.insert(id, activity.clone());
        Some(Slot {
            id,
            table: self.inner.clone(),
        })
    }
}

impl Inner {
    fn warn_at_cap(&mut self) {
        let now = Instant::now();
        if self
            .last_warning
            .is_some_and(|last| now.duration_since(last) < WARN_EVERY)
        {
            return;
        }
        tracing::warn!(
            max_connections = self.max,
            evicted = self.evicted,
            refused = self.refused,
            "connection cap reached: closing the oldest connections with no request in progress \
             (evicted) or, when every connection is in a request, new ones (refused)"
        );
        (self.evicted, self.refused, self.last_warning) = (0, 0, Some(now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn past_the_cap_the_oldest_idle_connection_makes_room() {
        let limits = crate::config::Settings::default().server.connections;
        let connection = || Activity::new(&limits);
        let table = Table::new(2);
        let (first, second, third) = (connection(), connection(), connection());
        let first_slot = table.admit(&first).unwrap();
        let _second_slot = table.admit(&second).unwrap();
        let _busy = first.begin_request();
        let _third_slot = table
            .admit(&third)
            .expect("the idle second connection makes room");
        assert!(second.evict.is_cancelled());
        assert!(!first.evict.is_cancelled());
        let _also_busy = third.begin_request();
        assert!(
            table.admit(&connection()).is_none(),
            "every connection is in a request"
        );
        drop(first_slot);
        assert!(
            table.admit(&connection()).is_some(),
            "a closed connection frees its place"
        );
    }
}
