//! What every handler can reach: the store, the publisher, the API's settings. Built by the app
//! at start; defined here, in the API layer, because the handlers are what need it.

use hookline_core::ApiKeyHash;
use std::sync::Arc;

use crate::config::ServerSettings;
use crate::publish::Publisher;
use crate::secrets::Secrets;
use crate::store::DynStore;

/// Cloned by every extractor and middleware layer of every request: one shared pointer, not a
/// dozen (cloning and dropping the fields one by one was 2 % of the CPU of a publish).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub store: DynStore,
    pub settings: Arc<ServerSettings>,
    /// Issues signing secrets, sealed for storage when a key is configured.
    pub secrets: Secrets,
    pub admin_hash: Arc<ApiKeyHash>,
    pub publisher: Publisher,
    /// The `hookline listen` streams attached to this process.
    pub listen: crate::delivery::ListenHub,
    /// Attempts a delivery gets per (re)delivery: the retry schedule's delays plus one.
    pub max_attempts: u32,
    /// Partner ids known to exist. Partners are never deleted, so a hit needs no query:
    /// this takes a store read off every publish request.
    pub known_partners: Arc<std::sync::RwLock<std::collections::HashSet<String>>>,
    /// What `/readyz` answers.
    pub readiness: super::readiness::Readiness,
    /// Failed authentications per client address and overall (429 past the limits).
    pub auth_throttle: Arc<super::auth_throttle::AuthThrottle>,
    /// Published `data` against its type's schema (`HOOKLINE_VALIDATE_PAYLOADS`).
    pub payload_check: Arc<crate::payload_check::PayloadCheck>,
    /// Sends test events (`POST …/test`) on any node that serves the API.
    pub test_sender: Arc<crate::delivery::TestSender>,
    /// Serialises this process's updates of one subscription (see [`UpdateLocks`]).
    pub update_locks: UpdateLocks,
    /// Subscription lists built at once (`GET /v3/webhook-subscriptions` is unpaged).
    pub list_turns: tokio::sync::Semaphore,
}

/// Subscription lists a process builds at once; others wait their turn.
pub const LIST_TURNS: usize = 4;

/// Concurrent updates of one subscription in one process take turns instead of racing its
/// compare-and-set: with N racing, each round lets one through, so the last needed N rounds
/// and a PUT gave up (503) past 16. The compare-and-set still orders updates across nodes.
/// Striped by subscription id: a fixed set of locks, whatever the number of subscriptions
/// (two that share a stripe only take turns; the store's writer orders them anyway).
pub struct UpdateLocks([tokio::sync::Mutex<()>; 64]);

impl Default for UpdateLocks {
    fn default() -> Self {
        UpdateLocks(std::array::from_fn(|_| tokio::sync::Mutex::new(())))
    }
}

impl UpdateLocks {
    pub async fn lock(&self, id: &str) -> tokio::sync::MutexGuard<'_, ()> {
        use std::hash::{BuildHasher, BuildHasherDefault};
        let hash =
            BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(id);
        self.0[(hash % self.0.len() as u64) as usize].lock().await
    }
}
