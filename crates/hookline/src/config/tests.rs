//! Settings: defaults, precedence, and an error naming the variable for every bad value.

use super::*;

#[test]
fn defaults_match_design() {
    let s = Settings::default();
    assert_eq!(s.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(
        s.store.database_url,
        DatabaseUrl::Sqlite("./hookline-data/hookline.db".into())
    );
    assert_eq!(s.delivery.retry_schedule.max_attempts(), 11);
    assert_eq!(s.delivery.timeout, Duration::from_secs(10));
    assert_eq!(s.delivery.receiver_idle_timeout, Duration::from_secs(15));
    assert!(!s.server.allow_http_targets);
    assert!(s.delivery.ssrf_allow.is_empty());
    let c = &s.server.connections;
    assert_eq!(c.header_read_timeout, Duration::from_secs(10));
    assert_eq!(c.idle_timeout, Duration::from_secs(60));
    assert_eq!(c.body_timeout, Duration::from_secs(30));
    assert_eq!(c.max_connections, 10_000);
    assert_eq!(s.retention.keep, Some(Duration::from_secs(30 * 86_400)));
    assert_eq!(s.retention.interval, Duration::from_secs(60));
    assert_eq!(s.monitoring.metrics_listen, None);
    assert_eq!(s.monitoring.sample_interval, Duration::from_secs(5));
    assert_eq!(s.server.publish_gather, Duration::from_millis(1));
    assert_eq!(s.store.sqlite_cache_mib, 4);
    assert_eq!(s.server.worker_threads, None);
}

#[test]
fn publish_gather_zero_off_and_bounded() {
    let gather = |v: &str| {
        Settings::from_raw(RawConfig {
            publish_gather: Some(v.into()),
            ..Default::default()
        })
        .map(|s| s.server.publish_gather)
    };
    assert_eq!(gather("0").unwrap(), Duration::ZERO);
    assert_eq!(gather("0ms").unwrap(), Duration::ZERO);
    assert_eq!(gather("5ms").unwrap(), Duration::from_millis(5));
    for bad in ["soon", "1s", "-1ms"] {
        let e = format!("{:#}", gather(bad).unwrap_err());
        assert!(e.contains("HOOKLINE_PUBLISH_GATHER"), "{bad}: {e}");
    }
}

#[test]
fn retention_zero_keeps_everything() {
    let s = Settings::from_raw(RawConfig {
        retention: Some("0".into()),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(s.retention.keep, None);
}

#[test]
fn flags_beat_file() {
    let flags = RawConfig {
        listen: Some("127.0.0.1:9999".into()),
        ..Default::default()
    };
    let file: RawConfig =
        toml::from_str("listen = \"127.0.0.1:1\"\nretry_schedule = \"1s,2s\"").unwrap();
    let s = Settings::from_raw(flags.or(file)).unwrap();
    assert_eq!(s.server.listen.port(), 9999);
    assert_eq!(s.delivery.retry_schedule.max_attempts(), 3);
}

#[test]
fn rejects_bad_values_with_the_variable_name() {
    // One bad value per case, so each error must name its own variable.
    let cases: &[fn(&mut RawConfig)] = &[
        |r| r.listen = Some("nope".into()),
        |r| r.database_url = Some("mysql://x".into()),
        |r| r.ssrf_allow = Some("127.0.0.0/33".into()),
        |r| r.retry_schedule = Some("5x".into()),
        |r| r.admin_token = Some("short".into()),
        |r| r.secret_key = Some("c2hvcnQ=".into()),
        |r| r.retry_jitter = Some(1.5),
        |r| r.delivery_timeout = Some("0s".into()),
        |r| r.connect_timeout = Some("soon".into()),
        |r| r.connect_timeout = Some("0s".into()),
        |r| r.receiver_idle_timeout = Some("0s".into()),
        |r| r.max_in_flight = Some(0),
        |r| r.max_in_flight_per_subscription = Some(0),
        |r| r.header_read_timeout = Some("0s".into()),
        |r| r.idle_timeout = Some("a minute".into()),
        |r| r.body_timeout = Some("30".into()),
        |r| r.max_connections = Some(0),
        |r| r.max_subscriptions_per_partner = Some(0),
        |r| r.worker_threads = Some(0),
        |r| r.extra_root_certs = Some("/nonexistent/ca.pem".into()),
        |r| r.secret_key_previous = Some("q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=".into()),
        |r| r.auth_failures_per_minute = Some(0),
        |r| r.auth_failures_per_minute_global = Some(0),
        |r| r.public_url = Some("hooks.example.com".into()),
        |r| r.public_url = Some("https://hooks.example.com/?x=1".into()),
        |r| r.portal_session_ttl = Some("0s".into()),
        |r| r.metrics_listen = Some("9090".into()),
        |r| r.metrics_sample_interval = Some("0s".into()),
        |r| r.retention = Some("30 days".into()),
        |r| r.retention_interval = Some("0m".into()),
        |r| r.max_body_bytes = Some(0),
        |r| r.max_event_bytes = Some(0),
        |r| r.log = Some("infoo".into()),
        |r| r.log = Some("foo=[[[".into()),
        |r| r.log = Some("info,hookline".into()),
    ];
    for set in cases {
        let mut raw = RawConfig::default();
        set(&mut raw);
        let err = format!("{:#}", Settings::from_raw(raw).unwrap_err());
        assert!(err.contains("HOOKLINE_"), "{err}");
    }
    assert!(toml::from_str::<RawConfig>("bogus = 1").is_err());
}

#[test]
fn zero_durations_and_log_filters_are_read_as_meant() {
    // A bare `0` is a duration (zero needs no unit); where it must be positive, that is said.
    for zero in ["0", "0s"] {
        let raw = RawConfig {
            delivery_timeout: Some(zero.into()),
            ..RawConfig::default()
        };
        let err = format!("{:#}", Settings::from_raw(raw).unwrap_err());
        assert!(
            err.starts_with("HOOKLINE_DELIVERY_TIMEOUT must be positive"),
            "{err}"
        );
        let raw = RawConfig {
            portal_session_ttl: Some(zero.into()),
            ..RawConfig::default()
        };
        let err = format!("{:#}", Settings::from_raw(raw).unwrap_err());
        assert!(
            err.starts_with("HOOKLINE_PORTAL_SESSION_TTL must be positive"),
            "{err}"
        );
    }
    // Blank is the default, not silence.
    for log in ["", " ", ","] {
        let raw = RawConfig {
            log: Some(log.into()),
            ..RawConfig::default()
        };
        assert_eq!(
            Settings::from_raw(raw).unwrap().log.filter,
            "info",
            "{log:?}"
        );
    }
    // Filters that do say something are taken as written.
    for log in [
        "debug",
        "WARN,hookline=debug",
        "hyper::proto=trace,info",
        "off",
    ] {
        let raw = RawConfig {
            log: Some(log.into()),
            ..RawConfig::default()
        };
        assert_eq!(Settings::from_raw(raw).unwrap().log.filter, log);
    }
}

#[test]
fn portal_links_use_the_public_url_and_its_scheme() {
    let raw = RawConfig {
        public_url: Some("https://hooks.example.com/".into()),
        ..RawConfig::default()
    };
    let s = Settings::from_raw(raw).unwrap();
    assert_eq!(
        s.server.portal.public_url.as_deref(),
        Some("https://hooks.example.com")
    );
    assert!(s.server.portal.https());
    // Read as a URL: scheme and host in any case still make cookies `Secure`.
    let raw = RawConfig {
        public_url: Some("HTTPS://Hooks.Example.com/base/".into()),
        ..RawConfig::default()
    };
    let s = Settings::from_raw(raw).unwrap();
    assert_eq!(
        s.server.portal.public_url.as_deref(),
        Some("https://hooks.example.com/base")
    );
    assert!(s.server.portal.https());
    let plain = Settings::default();
    assert!(!plain.server.portal.https());
    assert_eq!(plain.server.portal.session_ttl.as_secs(), 12 * 3600);
}
