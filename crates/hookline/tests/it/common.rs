//! Test harness: the real server on a random loopback port with a fresh store, and real
//! HTTPS receivers with a certificate made at test time.

#![allow(dead_code)]

use hookline::config::{RawConfig, Settings};
use hookline::store::{DeliveryCounts, DynStore};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub use super::pg::PgDatabase;
pub use super::receiver::{Gate, Reply, TestReceiver};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// How long a test waits for a delivery (or another effect of the server) before it fails.
pub const WAIT: Duration = Duration::from_secs(15);

/// Which store a test runs against. Every API and delivery test runs on both (see [`per_backend!`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Instantiates each named `async fn(Backend)` as a `sqlite` and a `postgres` test.
#[macro_export]
macro_rules! per_backend {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name($crate::common::Backend::Sqlite).await
            }
            #[tokio::test]
            async fn postgres() {
                super::$name($crate::common::Backend::Postgres).await
            }
        }
    )*};
}

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub settings: Settings,
    pub dir: tempfile::TempDir,
    pub backend: Backend,
    pg: Option<std::sync::Arc<PgDatabase>>,
    store: tokio::sync::OnceCell<DynStore>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// Options a test may change; everything else is the test default.
pub struct Options {
    pub raw: RawConfig,
    /// Trust the test CA and allow 127.0.0.0/8 for deliveries.
    pub loopback_allowed: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            raw: RawConfig {
                retry_schedule: Some("200ms,400ms".into()),
                retry_jitter: Some(0.0),
                delivery_timeout: Some("2s".into()),
                ..Default::default()
            },
            loopback_allowed: true,
        }
    }
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, Options::default()).await
    }

    pub async fn spawn_with(backend: Backend, opts: Options) -> TestApp {
        // HOOKLINE_TEST_LOG=debug shows the server's logs of a test run with --nocapture.
        if let Ok(filter) = std::env::var("HOOKLINE_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .try_init();
        }
        let dir = tempfile::tempdir().unwrap();
        let mut raw = opts.raw;
        let pg = match backend {
            Backend::Sqlite => {
                raw.database_url = Some(format!(
                    "sqlite://{}",
                    dir.path().join("hookline.db").display()
                ));
                None
            }
            Backend::Postgres => {
                let db = PgDatabase::create().await;
                raw.database_url = Some(db.url.clone());
                raw.database_pool_size = Some(4);
                Some(std::sync::Arc::new(db))
            }
        };
        raw.admin_token = Some(ADMIN_TOKEN.into());
        raw.extra_root_certs = Some(super::receiver::ca_pem_path());
        if opts.loopback_allowed && raw.ssrf_allow.is_none() {
            raw.ssrf_allow = Some("127.0.0.0/8".into());
        }
        let settings = Settings::from_raw(raw).unwrap();
        Self::start(settings, dir, backend, pg).await
    }

    async fn start(
        settings: Settings,
        dir: tempfile::TempDir,
        backend: Backend,
        pg: Option<std::sync::Arc<PgDatabase>>,
    ) -> TestApp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(hookline::serve(listener, settings.clone(), async {
            let _ = stopped.await;
        }));
        let app = TestApp {
            base,
            http: reqwest::Client::new(),
            settings,
            dir,
            backend,
            pg,
            store: tokio::sync::OnceCell::new(),
            stop: Some(stop),
            task: Some(task),
        };
        app.wait_ready().await;
        app
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(r) = self.http.get(self.url("/readyz")).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "server did not become ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Another server on the same PostgreSQL database (a second node), with the same settings.
    pub async fn another_node(&self) -> TestApp {
        assert_eq!(
            self.backend,
            Backend::Postgres,
            "one SQLite file serves one process"
        );
        let dir = tempfile::tempdir().unwrap();
        Self::start(self.settings.clone(), dir, self.backend, self.pg.clone()).await
    }

    /// Graceful stop, then a new server on the same store: what a restart is.
    pub async fn restart(mut self) -> TestApp {
        self.shutdown().await;
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        Self::start(self.settings.clone(), dir, self.backend, self.pg.take()).await
    }

    pub async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A second handle on the same store, to inspect what the server wrote.
    pub async fn store(&self) -> DynStore {
        self.store
            .get_or_init(|| async {
                hookline::app::open_store(&self.settings.store)
                    .await
                    .unwrap()
            })
            .await
            .clone()
    }

    /// The attempt log of one event, as the server recorded it.
    pub async fn attempts(
        &self,
        partner: &str,
        event_id: &str,
    ) -> Vec<hookline::store::AttemptRecord> {
        self.store()
            .await
            .attempts_for_event(
                &hookline_core::PartnerId::from_stored(partner),
                &hookline_core::EventId::from_stored(event_id),
            )
            .await
            .unwrap()
    }

    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, self.url(path))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        into_parts(req.send().await.unwrap()).await
    }

    /// The body of `GET path` as text, with `bearer` as the credential if given.
    pub async fn get_text(&self, path: &str, bearer: Option<&str>) -> String {
        let mut req = self.http.get(self.url(path));
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        req.send().await.unwrap().text().await.unwrap()
    }

    /// Creates a partner and an API key for it: (partner_id, api_key).
    pub async fn partner(&self, name: &str) -> (String, String) {
        let (s, p) = self
            .admin(
                reqwest::Method::POST,
                "/admin/v1/partners",
                Some(json!({"name": name})),
            )
            .await;
        assert_eq!(s, 201, "{p}");
        let id = p["id"].as_str().unwrap().to_owned();
        let (s, k) = self
            .admin(
                reqwest::Method::POST,
                &format!("/admin/v1/partners/{id}/api-keys"),
                Some(json!({"name": "test"})),
            )
            .await;
        assert_eq!(s, 201, "{k}");
        (id, k["api_key"].as_str().unwrap().to_owned())
    }

    pub async fn call(
        &self,
        key: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        into_parts(req.send().await.unwrap()).await
    }

    pub async fn create_subscription(&self, key: &str, body: Value) -> Value {
        let (s, v) = self
            .call(
                key,
                reqwest::Method::POST,
                "/v3/webhook-subscriptions",
                Some(body),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        v
    }

    pub async fn publish(&self, event: Value) -> Value {
        let (s, v) = self
            .admin(reqwest::Method::POST, "/admin/v1/events", Some(event))
            .await;
        assert!(s == 202 || s == 200, "publish answered {s}: {v}");
        v
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Subscribes `url` to `events`, optionally for some phone numbers only.
pub async fn subscribe(
    app: &TestApp,
    key: &str,
    url: &str,
    events: &[&str],
    phones: Option<&[&str]>,
) -> Value {
    let mut body = json!({"target_url": url, "subscribed_events": events});
    if let Some(p) = phones {
        body["phone_numbers"] = json!(p);
    }
    app.create_subscription(key, body).await
}

/// The partner API path of a subscription, as its create answer shows it.
pub fn subscription_path(sub: &Value) -> String {
    format!("/v3/webhook-subscriptions/{}", sub["id"].as_str().unwrap())
}

/// Sets the subscription's `is_active` through the partner API (`PUT`), which must take it.
pub async fn set_active(app: &TestApp, key: &str, sub: &Value, active: bool) {
    let body = serde_json::json!({ "is_active": active });
    let (s, v) = app
        .call(
            key,
            reqwest::Method::PUT,
            &subscription_path(sub),
            Some(body),
        )
        .await;
    assert_eq!(s, 200, "{v}");
}

/// An event for `partner` as the operator API takes it.
pub fn event(partner: &str, event_type: &str, phone: Option<&str>) -> Value {
    json!({"partner_id": partner, "event_type": event_type, "phone_number": phone,
           "data": {"chat_id": "550e8400-e29b-41d4-a716-446655440000", "text": "héllo"}})
}

/// The deliveries in each state, as the server recorded them.
pub async fn counts(app: &TestApp) -> DeliveryCounts {
    app.store().await.delivery_counts().await.unwrap()
}

/// Waits until no delivery is pending (all reached a final state).
pub async fn settled(app: &TestApp) -> DeliveryCounts {
    let store = app.store().await;
    eventually("deliveries to settle", WAIT, || {
        let store = store.clone();
        async move {
            let c = store.delivery_counts().await.unwrap();
            (c.pending == 0).then_some(c)
        }
    })
    .await
}

pub async fn into_parts(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("non-JSON body ({status}): {text}"))
    };
    (status, value)
}

/// Sends `request`: (status, JSON body, `Retry-After`), for the answers that may ask for a retry.
pub async fn send_for_retry(request: reqwest::RequestBuilder) -> (u16, Value, Option<String>) {
    let r = request.send().await.unwrap();
    let retry_after = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let (s, v) = into_parts(r).await;
    (s, v, retry_after)
}

/// Asserts the documented error envelope and returns the message.
pub fn assert_error(status: u16, body: &Value, want_status: u16, want_code: u64) -> String {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["success"], json!(false), "{body}");
    assert_eq!(body["error"]["status"], json!(want_status), "{body}");
    assert_eq!(body["error"]["code"], json!(want_code), "{body}");
    assert!(
        body["error"]["doc_url"]
            .as_str()
            .unwrap()
            .starts_with("https://"),
        "{body}"
    );
    assert_eq!(body["trace_id"].as_str().unwrap().len(), 32, "{body}");
    body["error"]["message"].as_str().unwrap().to_owned()
}

/// Polls `check` until it returns Some or the deadline passes: for state the server writes
/// asynchronously (the attempt log), where there is no event to await.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}
