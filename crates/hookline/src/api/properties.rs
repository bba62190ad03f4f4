//! Property tests of the header parsers outside the API's body: a receiver's `Retry-After`
//! and a caller's `traceparent` / `x-request-id`. Whatever a peer sends, they answer without
//! panicking and within their documented bounds.

use crate::api::request_id::RequestIdentity;
use crate::delivery::decision::parse_retry_after;
use axum::http::{HeaderMap, HeaderValue};
use proptest::prelude::*;
use std::time::Duration;

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn retry_after_is_seconds_or_a_date_or_nothing(raw in any::<String>(), secs in any::<u64>(), ahead in 0i64..1_000_000) {
        let now = chrono::Utc::now();
        let _ = parse_retry_after(&raw, now);
        prop_assert_eq!(parse_retry_after(&format!(" {secs} "), now), Some(Duration::from_secs(secs)));
        let at = now + chrono::Duration::seconds(ahead);
        let http_date = |t: chrono::DateTime<chrono::Utc>| httpdate::fmt_http_date(t.into());
        let parsed = parse_retry_after(&http_date(at), now).unwrap();
        // HTTP dates have whole seconds: the wait is the distance, give or take one.
        prop_assert!(parsed.as_secs().abs_diff(ahead as u64) <= 1, "{parsed:?} vs {ahead}");
        let past = now - chrono::Duration::seconds(ahead + 2);
        prop_assert_eq!(parse_retry_after(&http_date(past), now), Some(Duration::ZERO));
    }

    #[test]
    fn request_identity_is_always_a_trace_id(traceparent in proptest::option::of(any::<String>()), request_id in proptest::option::of(any::<String>())) {
        let mut headers = HeaderMap::new();
        for (name, value) in [("traceparent", &traceparent), ("x-request-id", &request_id)] {
            if let Some(v) = value.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
                headers.insert(name, v);
            }
        }
        let identity = RequestIdentity::from_headers(&headers);
        let trace = identity.trace_id.as_str();
        prop_assert!(trace.len() == 32 && trace.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
        if let Some(id) = &identity.request_id {
            prop_assert!((1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic()));
        }
    }
}
