//! Configuration: flags, `HOOKLINE_*` environment variables and an optional TOML file, in that
//! order of precedence, validated once into [`Settings`] at start-up.

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use hookline_core::time::parse_duration;
use hookline_core::{ApiKey, Keyring, RetrySchedule, SealingKey};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://./hookline-data/hookline.db";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Serve the APIs only; never claim deliveries.
    Api,
    /// Deliver only; serve health and metrics.
    Worker,
    #[default]
    All,
}

impl Role {
    pub fn serves_api(self) -> bool {
        matches!(self, Role::Api | Role::All)
    }
    pub fn delivers(self) -> bool {
        matches!(self, Role::Worker | Role::All)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// What publishing does with an event whose `data` does not match its type's schema
/// (`GET /admin/v1/event-types`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ValidatePayloads {
    /// No check.
    Off,
    /// Accept it, log it and count it.
    #[default]
    Warn,
    /// Refuse it: 400, code 1005, naming the field and the rule.
    Strict,
}

/// Every setting as a flag with its environment variable; all optional so the file can fill in.
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct RawConfig {
    /// Address and port to serve on.
    #[arg(long, env = "HOOKLINE_LISTEN")]
    pub listen: Option<String>,
    /// `sqlite://PATH` or `postgres://…`.
    #[arg(long, env = "HOOKLINE_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Connections in the PostgreSQL pool of this process.
    #[arg(long, env = "HOOKLINE_DATABASE_POOL_SIZE")]
    pub database_pool_size: Option<u32>,
    /// Most page cache the SQLite writer keeps, in MiB.
    #[arg(long, env = "HOOKLINE_SQLITE_CACHE_MIB")]
    pub sqlite_cache_mib: Option<u32>,
    /// Operator API token (generated and printed once on first start when unset).
    #[arg(long, env = "HOOKLINE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Base64 of 32 random bytes: seals signing secrets at rest (`openssl rand -base64 32`).
    #[arg(long, env = "HOOKLINE_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// The key HOOKLINE_SECRET_KEY replaces: still opens secrets, which are sealed again with
    /// the new key on start.
    #[arg(long, env = "HOOKLINE_SECRET_KEY_PREVIOUS", hide_env_values = true)]
    pub secret_key_previous: Option<String>,
    /// Allow `http://` target URLs (development only).
    #[arg(long, env = "HOOKLINE_ALLOW_HTTP_TARGETS")]
    pub allow_http_targets: Option<bool>,
    /// Comma-separated CIDRs deliveries may reach despite the SSRF guard.
    #[arg(long, env = "HOOKLINE_SSRF_ALLOW")]
    pub ssrf_allow: Option<String>,
    /// PEM file of extra CA certificates trusted for deliveries.
    #[arg(long, env = "HOOKLINE_EXTRA_ROOT_CERTS")]
    pub extra_root_certs: Option<PathBuf>,
    /// Comma-separated delays between attempts, e.g. `5s,10s,20s`.
    #[arg(long, env = "HOOKLINE_RETRY_SCHEDULE")]
    pub retry_schedule: Option<String>,
    /// Spread of each retry delay, 0.0 to 1.0 (0.2 = ±20 %).
    #[arg(long, env = "HOOKLINE_RETRY_JITTER")]
    pub retry_jitter: Option<f64>,
    /// How long a receiver may take to answer.
    #[arg(long, env = "HOOKLINE_DELIVERY_TIMEOUT")]
    pub delivery_timeout: Option<String>,
    /// How long to wait for a TCP/TLS connection to a receiver.
    #[arg(long, env = "HOOKLINE_CONNECT_TIMEOUT")]
    pub connect_timeout: Option<String>,
    /// How long an idle connection to a receiver is kept for the next delivery.
    #[arg(long, env = "HOOKLINE_RECEIVER_IDLE_TIMEOUT")]
    pub receiver_idle_timeout: Option<String>,
    /// Deliveries in flight at once, across all subscriptions.
    #[arg(long, env = "HOOKLINE_MAX_IN_FLIGHT")]
    pub max_in_flight: Option<usize>,
    /// Deliveries in flight at once to one subscription.
    #[arg(long, env = "HOOKLINE_MAX_IN_FLIGHT_PER_SUBSCRIPTION")]
    pub max_in_flight_per_subscription: Option<usize>,
    /// Largest partner-API request body, in bytes.
    #[arg(long, env = "HOOKLINE_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Largest serialized `data` of one published event, in bytes.
    #[arg(long, env = "HOOKLINE_MAX_EVENT_BYTES")]
    pub max_event_bytes: Option<usize>,
    /// How long a publish that finds no other queued waits for one to share its commit; 0: none.
    #[arg(long, env = "HOOKLINE_PUBLISH_GATHER")]
    pub publish_gather: Option<String>,
    /// Threads running the server's async tasks (HTTP, deliveries); the SQLite writer has its own.
    #[arg(long, env = "HOOKLINE_WORKER_THREADS")]
    pub worker_threads: Option<usize>,
    /// Check published `data` against its event type's schema: off, warn or strict.
    #[arg(long, env = "HOOKLINE_VALIDATE_PAYLOADS", value_enum)]
    pub validate_payloads: Option<ValidatePayloads>,
    /// How long a client may take to send a request's headers.
    #[arg(long, env = "HOOKLINE_HEADER_READ_TIMEOUT")]
    pub header_read_timeout: Option<String>,
    /// How long a keep-alive connection may wait for its next request.
    #[arg(long, env = "HOOKLINE_IDLE_TIMEOUT")]
    pub idle_timeout: Option<String>,
    /// How long a client may take to send a request's body.
    #[arg(long, env = "HOOKLINE_BODY_TIMEOUT")]
    pub body_timeout: Option<String>,
    /// Client connections open at once.
    #[arg(long, env = "HOOKLINE_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Live webhook subscriptions one partner may have.
    #[arg(long, env = "HOOKLINE_MAX_SUBSCRIPTIONS_PER_PARTNER")]
    pub max_subscriptions_per_partner: Option<usize>,
    /// Failed authentications one client address may make per minute before 429.
    #[arg(long, env = "HOOKLINE_AUTH_FAILURES_PER_MINUTE")]
    pub auth_failures_per_minute: Option<u32>,
    /// Failed authentications per minute from all addresses together (see README).
    #[arg(long, env = "HOOKLINE_AUTH_FAILURES_PER_MINUTE_GLOBAL")]
    pub auth_failures_per_minute_global: Option<u32>,
    /// How long an ephemeral `hookline listen` subscription outlives a stream that vanished
    /// without closing (a reconnect within it resumes the session).
    #[arg(long, env = "HOOKLINE_LISTEN_GRACE")]
    pub listen_grace: Option<String>,
    /// How often an idle `hookline listen` stream gets a keep-alive (also how soon a vanished
    /// client is noticed).
    #[arg(long, env = "HOOKLINE_LISTEN_KEEPALIVE")]
    pub listen_keepalive: Option<String>,
    /// Deactivate a subscription whose every attempt failed for this long (`0` = never).
    #[arg(long, env = "HOOKLINE_DISABLE_AFTER")]
    pub disable_after: Option<String>,
    /// Deliveries failed for good before a failing subscription can be deactivated.
    #[arg(long, env = "HOOKLINE_DISABLE_MIN_FAILURES")]
    pub disable_min_failures: Option<u64>,
    /// Adapt each subscription's in-flight limit to its receiver (AIMD); `false` = fixed cap.
    #[arg(long, env = "HOOKLINE_ADAPTIVE_CONCURRENCY")]
    pub adaptive_concurrency: Option<bool>,
    /// Failed deliveries a recovery re-queues per second on each delivering node.
    #[arg(long, env = "HOOKLINE_RECOVERY_RATE")]
    pub recovery_rate: Option<u32>,
    /// Which parts of hookline this process runs.
    #[arg(long, env = "HOOKLINE_ROLE", value_enum)]
    pub role: Option<Role>,
    /// Log filter (tracing `EnvFilter` syntax).
    #[arg(long, env = "HOOKLINE_LOG")]
    pub log: Option<String>,
    #[arg(long, env = "HOOKLINE_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// The URL clients reach this server at (portal links; `https://` makes portal cookies Secure).
    #[arg(long, env = "HOOKLINE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// How long a portal session opened with an API key or the admin token lasts.
    #[arg(long, env = "HOOKLINE_PORTAL_SESSION_TTL")]
    pub portal_session_ttl: Option<String>,
    /// A separate address:port serving only `/metrics` (then the main port does not).
    #[arg(long, env = "HOOKLINE_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// How often the queue gauges are sampled from the store.
    #[arg(long, env = "HOOKLINE_METRICS_SAMPLE_INTERVAL")]
    pub metrics_sample_interval: Option<String>,
    /// How long finished events are kept (`30d`, `12h`; `0` keeps everything).
    #[arg(long, env = "HOOKLINE_RETENTION")]
    pub retention: Option<String>,
    /// Time between retention purge passes.
    #[arg(long, env = "HOOKLINE_RETENTION_INTERVAL")]
    pub retention_interval: Option<String>,
}

impl RawConfig {
    /// Fills every unset value from `file`.
    pub fn or(self, file: RawConfig) -> RawConfig {
        RawConfig {
            listen: self.listen.or(file.listen),
            database_url: self.database_url.or(file.database_url),
            database_pool_size: self.database_pool_size.or(file.database_pool_size),
            sqlite_cache_mib: self.sqlite_cache_mib.or(file.sqlite_cache_mib),
            admin_token: self.admin_token.or(file.admin_token),
            secret_key: self.secret_key.or(file.secret_key),
            secret_key_previous: self.secret_key_previous.or(file.secret_key_previous),
            allow_http_targets: self.allow_http_targets.or(file.allow_http_targets),
            ssrf_allow: self.ssrf_allow.or(file.ssrf_allow),
            extra_root_certs: self.extra_root_certs.or(file.extra_root_certs),
            retry_schedule: self.retry_schedule.or(file.retry_schedule),
            retry_jitter: self.retry_jitter.or(file.retry_jitter),
            delivery_timeout: self.delivery_timeout.or(file.delivery_timeout),
            connect_timeout: self.connect_timeout.or(file.connect_timeout),
            receiver_idle_timeout: self.receiver_idle_timeout.or(file.receiver_idle_timeout),
            max_in_flight: self.max_in_flight.or(file.max_in_flight),
            max_in_flight_per_subscription: self
                .max_in_flight_per_subscription
                .or(file.max_in_flight_per_subscription),
            max_body_bytes: self.max_body_bytes.or(file.max_body_bytes),
            max_event_bytes: self.max_event_bytes.or(file.max_event_bytes),
            publish_gather: self.publish_gather.or(file.publish_gather),
            worker_threads: self.worker_threads.or(file.worker_threads),
            validate_payloads: self.validate_payloads.or(file.validate_payloads),
            header_read_timeout: self.header_read_timeout.or(file.header_read_timeout),
            idle_timeout: self.idle_timeout.or(file.idle_timeout),
            body_timeout: self.body_timeout.or(file.body_timeout),
            max_connections: self.max_connections.or(file.max_connections),
            max_subscriptions_per_partner: self
                .max_subscriptions_per_partner
                .or(file.max_subscriptions_per_partner),
            auth_failures_per_minute: self
                .auth_failures_per_minute
                .or(file.auth_failures_per_minute),
            auth_failures_per_minute_global: self
                .auth_failures_per_minute_global
                .or(file.auth_failures_per_minute_global),
            listen_grace: self.listen_grace.or(file.listen_grace),
            listen_keepalive: self.listen_keepalive.or(file.listen_keepalive),
            disable_after: self.disable_after.or(file.disable_after),
            disable_min_failures: self.disable_min_failures.or(file.disable_min_failures),
            adaptive_concurrency: self.adaptive_concurrency.or(file.adaptive_concurrency),
            recovery_rate: self.recovery_rate.or(file.recovery_rate),
            role: self.role.or(file.role),
            log: self.log.or(file.log),
            log_format: self.log_format.or(file.log_format),
            public_url: self.public_url.or(file.public_url),
            portal_session_ttl: self.portal_session_ttl.or(file.portal_session_ttl),
            metrics_listen: self.metrics_listen.or(file.metrics_listen),
            metrics_sample_interval: self
                .metrics_sample_interval
                .or(file.metrics_sample_interval),
            retention: self.retention.or(file.retention),
            retention_interval: self.retention_interval.or(file.retention_interval),
        }
    }

    pub fn load_file(path: &Path) -> anyhow::Result<RawConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl DatabaseUrl {
    pub fn parse(raw: &str) -> anyhow::Result<Self> {
        if let Some(path) = raw
            .strip_prefix("sqlite://")
            .or_else(|| raw.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                bail!("HOOKLINE_DATABASE_URL '{raw}' names no file (e.g. sqlite://./hookline-data/hookline.db)");
            }
            return Ok(DatabaseUrl::Sqlite(PathBuf::from(path)));
        }
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(raw.to_owned()));
        }
        bail!("HOOKLINE_DATABASE_URL must start with sqlite:// or postgres:// (got '{raw}')")
    }
}

/// Validated configuration, one section per component: each component is handed only its own
/// section, so what a component can be configured with is visible in its constructor.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server: ServerSettings,
    pub store: StoreSettings,
    pub delivery: DeliverySettings,
    pub secrets: SecretSettings,
    pub log: LogSettings,
    pub recovery: RecoverySettings,
    pub monitoring: MonitoringSettings,
    pub retention: RetentionSettings,
}

/// The HTTP side: where to listen, what this process serves, and what requests may carry.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    pub role: Role,
    pub allow_http_targets: bool,
    pub max_body_bytes: usize,
    pub max_event_bytes: usize,
    /// How long a lone publish waits for company in its commit (see `publish.rs`); zero: none.
    pub publish_gather: Duration,
    /// Threads of the async runtime `serve` runs on; `None`: one per CPU (tokio's default).
    pub worker_threads: Option<usize>,
    pub validate_payloads: ValidatePayloads,
    /// Live subscriptions one partner may have: bounds the list answer and the fan-out of
    /// every publish; the store refuses the one past it.
    pub max_subscriptions_per_partner: usize,
    /// How long graceful shutdown waits for open HTTP connections.
    pub shutdown_grace: Duration,
    /// Failed authentications per minute per client address, and from all together
    /// (see `api::auth_throttle`).
    pub auth_failures_per_minute: u32,
    pub auth_failures_per_minute_global: u32,
    pub connections: ConnectionSettings,
    pub portal: PortalSettings,
    pub listen_stream: ListenStreamSettings,
}

/// What one client connection may take: no client can hold a connection, a file descriptor or
/// a buffer without sending a request at a reasonable pace.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    /// From accept (or from the first byte of a later request) to the end of the headers.
    pub header_read_timeout: Duration,
    /// Between requests on a keep-alive connection.
    pub idle_timeout: Duration,
    /// From the end of the headers to the end of the body.
    pub body_timeout: Duration,
    /// Connections open at once; past it, the oldest connection with no request in progress is
    /// closed to make room (see `app::http`).
    pub max_connections: usize,
}

#[derive(Debug, Clone)]
pub struct StoreSettings {
    pub database_url: DatabaseUrl,
    /// Connections in the PostgreSQL pool of this process.
    pub pool_size: u32,
    /// The SQLite writer's page cache bound, in MiB.
    pub sqlite_cache_mib: u32,
}

/// The delivery engine: how it reaches receivers, how much it sends at once, when it retries.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    pub ssrf_allow: Vec<IpNet>,
    pub extra_root_certs: Option<PathBuf>,
    pub retry_schedule: RetrySchedule,
    /// How long a receiver may take to answer.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// How long an idle connection to a receiver stays in the pool (see `delivery::transport`).
    pub receiver_idle_timeout: Duration,
    pub max_in_flight: usize,
    pub max_in_flight_per_subscription: usize,
    /// How long a claimed delivery stays leased; past it, another worker may retry it.
    /// Longer than the delivery timeout so a live worker never loses its lease mid-send.
    pub lease: Duration,
    /// Fallback poll when nothing wakes the dispatcher.
    pub poll_interval: Duration,
    /// How long graceful shutdown waits for in-flight deliveries.
    pub shutdown_grace: Duration,
    /// Each subscription's in-flight limit adapts below `max_in_flight_per_subscription`.
    pub adaptive_concurrency: bool,
    /// When a failing endpoint's subscription is deactivated.
    pub disable_policy: DisablePolicy,
}

/// Secrets the operator configures; none of them is ever logged.
#[derive(Debug, Clone)]
pub struct SecretSettings {
    pub admin_token: Option<ApiKey>,
    /// Seals signing secrets in the store; `None` stores them as issued.
    pub keys: Option<Keyring>,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    /// A tracing `EnvFilter` directive.
    pub filter: String,
    pub format: LogFormat,
}

/// Not configurable (yet): one grace period for both HTTP connections and deliveries.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(15);

impl Default for Settings {
    fn default() -> Self {
        Settings::from_raw(RawConfig::default()).expect("defaults are valid")
    }
}

impl Settings {
    /// Validates every value; an error names the `HOOKLINE_*` variable at fault.
    pub fn from_raw(raw: RawConfig) -> anyhow::Result<Settings> {
        Ok(Settings {
            server: ServerSettings::from_raw(&raw)?,
            store: StoreSettings::from_raw(&raw)?,
            delivery: DeliverySettings::from_raw(&raw)?,
            secrets: SecretSettings::from_raw(&raw)?,
            recovery: RecoverySettings::from_raw(&raw)?,
            monitoring: MonitoringSettings::from_raw(&raw)?,
            retention: RetentionSettings::from_raw(&raw)?,
            log: LogSettings {
                filter: crate::logging::checked_filter(raw.log.as_deref())?,
                format: raw.log_format.unwrap_or_default(),
            },
        })
    }
}

impl ServerSettings {
    fn from_raw(raw: &RawConfig) -> anyhow::Result<Self> {
        let listen_raw = raw.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen = listen_raw.parse().with_context(|| {
            format!("HOOKLINE_LISTEN '{listen_raw}' is not an address:port (e.g. 127.0.0.1:8080)")
        })?;
        let auth_failures_per_minute = raw.auth_failures_per_minute.unwrap_or(20);
        anyhow::ensure!(
            auth_failures_per_minute > 0,
            "HOOKLINE_AUTH_FAILURES_PER_MINUTE must be positive"
        );
        let auth_failures_per_minute_global = raw.auth_failures_per_minute_global.unwrap_or(1000);
        anyhow::ensure!(
            auth_failures_per_minute_global > 0,
            "HOOKLINE_AUTH_FAILURES_PER_MINUTE_GLOBAL must be positive"
        );
        Ok(ServerSettings {
            listen,
            role: raw.role.unwrap_or_default(),
            allow_http_targets: raw.allow_http_targets.unwrap_or(false),
            max_body_bytes: match raw.max_body_bytes {
                Some(0) => bail!("HOOKLINE_MAX_BODY_BYTES must be positive"),
                limit => limit.unwrap_or(1024 * 1024),
            },
            max_event_bytes: match raw.max_event_bytes {
                Some(0) => bail!("HOOKLINE_MAX_EVENT_BYTES must be positive"),
                limit => limit.unwrap_or(256 * 1024),
            },
            publish_gather: publish_gather(raw.publish_gather.as_deref())?,
            worker_threads: match raw.worker_threads {
                Some(0) => bail!("HOOKLINE_WORKER_THREADS must be positive"),
                threads => threads,
            },
            validate_payloads: raw.validate_payloads.unwrap_or_default(),
            max_subscriptions_per_partner: match raw.max_subscriptions_per_partner {
                Some(0) => bail!("HOOKLINE_MAX_SUBSCRIPTIONS_PER_PARTNER must be positive"),
                limit => limit.unwrap_or(1000),
            },
            shutdown_grace: SHUTDOWN_GRACE,
            auth_failures_per_minute,
            auth_failures_per_minute_global,
            connections: ConnectionSettings::from_raw(raw)?,
            portal: PortalSettings::from_raw(raw)?,
            listen_stream: ListenStreamSettings::from_raw(raw)?,
        })
    }
}

/// A duration setting that must be positive: `raw`, or `default` when unset; errors name the
/// variable `name`.
fn positive(raw: Option<&str>, default: &str, name: &str) -> anyhow::Result<Duration> {
    let raw = raw.unwrap_or(default);
    let d = parse_duration(raw).with_context(|| format!("{name} '{raw}' (e.g. {default})"))?;
    anyhow::ensure!(!d.is_zero(), "{name} must be positive (e.g. {default})");
    Ok(d)
}

/// `HOOKLINE_PUBLISH_GATHER`: 1 ms unless set; `0` turns it off. At most 100 ms: every lone
/// publish is answered that much later.
fn publish_gather(raw: Option<&str>) -> anyhow::Result<Duration> {
    let gather = match raw.map(str::trim) {
        None => Duration::from_millis(1),
        Some("0") => Duration::ZERO,
        Some(text) => parse_duration(text)
            .with_context(|| format!("HOOKLINE_PUBLISH_GATHER '{text}' (e.g. 1ms, or 0)"))?,
    };
    anyhow::ensure!(
        gather <= Duration::from_millis(100),
        "HOOKLINE_PUBLISH_GATHER must be at most 100ms (every lone publish waits that long)"
    );
    Ok(gather)
}

impl ConnectionSettings {
    fn from_raw(raw: &RawConfig) -> anyhow::Result<Self> {
        let max_connections = raw.max_connections.unwrap_or(10_000);
        anyhow::ensure!(
            max_connections > 0,
            "HOOKLINE_MAX_CONNECTIONS must be positive"
        );
        Ok(ConnectionSettings {
            header_read_timeout: positive(
                raw.header_read_timeout.as_deref(),
                "10s",
                "HOOKLINE_HEADER_READ_TIMEOUT",
            )?,
            idle_timeout: positive(raw.idle_timeout.as_deref(), "60s", "HOOKLINE_IDLE_TIMEOUT")?,
            body_timeout: positive(raw.body_timeout.as_deref(), "30s", "HOOKLINE_BODY_TIMEOUT")?,
            max_connections,
        })
    }
}

/// See README, Configuration (`HOOKLINE_SQLITE_CACHE_MIB`) and Performance. 4, not 16 or 64:
/// the writer's hot pages are the right edges of its tables and indexes and the head of the due
/// queue, which fit. With 16 the peaks were higher (E=10 78 against 61 MiB, batch 74 against
/// 58) and only large batch publishes were faster (about 8 %); the 1,000,000 backlog drained at
/// 11,840/s against 14,756/s with 4, and E=1 took about 6 % more CPU per delivery.
pub const DEFAULT_SQLITE_CACHE_MIB: u32 = 4;

impl StoreSettings {
    fn from_raw(raw: &RawConfig) -> anyhow::Result<Self> {
        Ok(StoreSettings {
            database_url: DatabaseUrl::parse(
                raw.database_url.as_deref().unwrap_or(DEFAULT_DATABASE_URL),
            )?,
            pool_size: raw.database_pool_size.unwrap_or(16).max(2),
            sqlite_cache_mib: raw
                .sqlite_cache_mib
                .unwrap_or(DEFAULT_SQLITE_CACHE_MIB)
                .max(1),
        })
    }
}

impl SecretSettings {
    fn from_raw(raw: &RawConfig) -> anyhow::Result<Self> {
        let admin_token = match &raw.admin_token {
            Some(t) if t.trim().len() < 16 => {
                bail!("HOOKLINE_ADMIN_TOKEN must be at least 16 characters")
            }
            Some(t) => Some(ApiKey::from_presented(t.trim())),
            None => None,
        };
        let parse_key = |raw: Option<&str>, name: &'static str| {
            raw.map(SealingKey::parse).transpose().context(name)
        };
        let current = parse_key(raw.secret_key.as_deref(), "HOOKLINE_SECRET_KEY")?;
        let previous = parse_key(
            raw.secret_key_previous.as_deref(),
            "HOOKLINE_SECRET_KEY_PREVIOUS",
        )?;
        let keys = match (current, previous) {
            (Some(current), previous) => Some(Keyring { current, previous }),
            (None, None) => None,
            (None, Some(_)) => {
                bail!("HOOKLINE_SECRET_KEY_PREVIOUS needs HOOKLINE_SECRET_KEY (the new key)")
            }
        };
        Ok(SecretSettings { admin_token, keys })
    }
}

mod portal;
pub use portal::PortalSettings;
mod operations;
pub use operations::{DisablePolicy, ListenStreamSettings, RecoverySettings};
mod monitoring;
pub use monitoring::{MonitoringSettings, RetentionSettings};
mod delivery;

#[cfg(test)]
mod tests;
