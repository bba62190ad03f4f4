//! Property tests of the parsers every request goes through: target URLs, phone numbers,
//! routing header names, ids, times, signing secrets and the signatures made with them. Each
//! parser must never panic on any input, accept what its rule says, and keep what it accepts
//! as given (the API returns and delivers the caller's spelling).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use hookline_core::header_name::{RESERVED, RESERVED_PREFIXES};
use hookline_core::target_url::MAX_TARGET_URL_LEN;
use hookline_core::{
    EventId, PhoneNumber, RoutingHeader, SigningSecret, TargetUrl, TargetUrlError, Timestamp,
    TraceId,
};
use proptest::prelude::*;
use sha2::Sha256;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Host names the URL parser reads as names (the last label starts with a letter).
fn host() -> impl Strategy<Value = String> {
    "([a-z0-9]{1,12}\\.){0,3}[a-z][a-z0-9]{0,12}"
}

fn https_url() -> impl Strategy<Value = String> {
    (
        host(),
        proptest::option::of(1u16..=65535),
        "(/[A-Za-z0-9._~-]{0,10}){0,4}",
        proptest::option::of("[a-z]{1,5}=[a-z0-9]{0,5}"),
    )
        .prop_map(|(host, port, path, query)| {
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            let query = query.map(|q| format!("?{q}")).unwrap_or_default();
            format!("https://{host}{port}{path}{query}")
        })
}

/// Flips the case of the characters `flips` selects.
fn with_case(s: &str, flips: &[bool]) -> String {
    s.chars()
        .zip(flips.iter().cycle())
        .map(|(c, &flip)| if flip { c.to_ascii_uppercase() } else { c })
        .collect()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn target_url_never_panics_and_what_it_accepts_keeps_the_rules(raw in any::<String>(), http: bool) {
        if let Ok(url) = TargetUrl::parse(&raw, http) {
            let parsed = url.url();
            prop_assert!(parsed.scheme() == "https" || (http && parsed.scheme() == "http"));
            prop_assert!(parsed.username().is_empty() && parsed.password().is_none());
            prop_assert!(parsed.fragment().is_none());
            prop_assert!(parsed.host_str().is_some_and(|h| !h.is_empty()));
            prop_assert_ne!(parsed.port(), Some(0));
            prop_assert_eq!(url.as_str(), raw.trim());
            prop_assert!(url.as_str().len() <= MAX_TARGET_URL_LEN);
            // The uniqueness key is itself a target with the same key (normal form is stable).
            let again = TargetUrl::parse(url.uniqueness_key(), http).unwrap();
            prop_assert_eq!(again.uniqueness_key(), url.uniqueness_key());
        }
    }

    #[test]
    fn target_url_accepts_https_urls_and_keys_them_by_their_normal_form(
        url in https_url(), flips in proptest::collection::vec(any::<bool>(), 1..8),
    ) {
        let parsed = TargetUrl::parse(&url, false).unwrap();
        prop_assert_eq!(parsed.as_str(), url.as_str());
        // Scheme and host case, and the default port, do not make another target.
        let (scheme_host, rest) = url.split_at(url[8..].find(['/', ':', '?']).map_or(url.len(), |i| i + 8));
        let respelled = format!("{}{rest}", with_case(scheme_host, &flips));
        let other = TargetUrl::parse(&respelled, false).unwrap();
        prop_assert_eq!(other.uniqueness_key(), parsed.uniqueness_key());
        prop_assert_eq!(other.as_str(), respelled.as_str());
        if !rest.starts_with(':') {
            let with_port = format!("{scheme_host}:443{rest}");
            let other = TargetUrl::parse(&with_port, false).unwrap();
            prop_assert_eq!(other.uniqueness_key(), parsed.uniqueness_key());
        }
        // Plain HTTP only with the development switch.
        let http = format!("http{}", &url[5..]);
        prop_assert!(matches!(TargetUrl::parse(&http, false), Err(TargetUrlError::NotHttps(_))));
        prop_assert!(TargetUrl::parse(&http, true).is_ok());
    }

    #[test]
    fn target_url_refuses_port_zero_credentials_and_fragments(url in https_url(), user in "[a-z]{1,8}") {
        let after_scheme = &url["https://".len()..];
        let host_end = after_scheme.find(['/', ':', '?']).unwrap_or(after_scheme.len());
        let (host, rest) = after_scheme.split_at(host_end);
        let rest = rest.strip_prefix(':').map_or(rest, |r| &r[r.find(['/', '?']).unwrap_or(r.len())..]);
        prop_assert_eq!(TargetUrl::parse(&format!("https://{host}:0{rest}"), false).err(), Some(TargetUrlError::PortZero));
        prop_assert_eq!(TargetUrl::parse(&format!("https://{user}@{host}{rest}"), false).err(), Some(TargetUrlError::HasCredentials));
        prop_assert_eq!(TargetUrl::parse(&format!("{url}#{user}"), false).err(), Some(TargetUrlError::HasFragment));
    }

    #[test]
    fn phone_numbers_are_exactly_e164(raw in any::<String>()) {
        let digits = raw.strip_prefix('+').unwrap_or("");
        let e164 = (2..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        match PhoneNumber::parse(&raw) {
            Ok(p) => { prop_assert!(e164); prop_assert_eq!(p.as_str(), raw.as_str()); }
            Err(e) => {
                prop_assert!(!e164);
                // The message quotes the input in bounded form, whatever its length.
                prop_assert!(e.to_string().len() < 200 + 4 * 64);
            }
        }
    }

    #[test]
    fn phone_numbers_of_e164_shape_are_accepted(n in "\\+[1-9][0-9]{1,14}") {
        let phone = PhoneNumber::parse(&n).unwrap();
        prop_assert_eq!(phone.as_str(), n.as_str());
    }

    #[test]
    fn routing_headers_are_tokens_other_than_the_reserved(raw in any::<Option<String>>()) {
        match RoutingHeader::parse("routing_id_header", raw.as_deref()) {
            Ok(None) => prop_assert!(raw.is_none_or(|r| r.trim().is_empty())),
            Ok(Some(h)) => {
                let name = h.as_str();
                prop_assert_eq!(name, raw.as_deref().unwrap().trim());
                prop_assert!(name.len() <= 128);
                prop_assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)));
                let lower = name.to_ascii_lowercase();
                prop_assert!(!RESERVED.contains(&lower.as_str()));
                prop_assert!(!RESERVED_PREFIXES.iter().any(|p| lower.starts_with(p)));
            }
            Err(e) => prop_assert!(e.to_string().contains("routing_id_header")),
        }
    }

    #[test]
    fn routing_header_tokens_are_accepted_and_reserved_names_refused_in_any_case(
        token in "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}",
        reserved in proptest::sample::select(RESERVED),
        prefix in proptest::sample::select(RESERVED_PREFIXES),
        flips in proptest::collection::vec(any::<bool>(), 1..8),
    ) {
        let lower = token.to_ascii_lowercase();
        let is_reserved = RESERVED.contains(&lower.as_str())
            || RESERVED_PREFIXES.iter().any(|p| lower.starts_with(p));
        let padded = format!("  {token}\t");
        prop_assert_eq!(
            RoutingHeader::parse("f", Some(&padded)).is_ok(),
            !is_reserved
        );
        prop_assert!(RoutingHeader::parse("f", Some(&with_case(reserved, &flips))).is_err());
        let prefixed = format!("{}{}", with_case(prefix, &flips), &token[..token.len().min(100)]);
        prop_assert!(RoutingHeader::parse("f", Some(&prefixed)).is_err());
    }

    #[test]
    fn event_and_trace_ids_keep_their_rules(raw in any::<String>()) {
        if let Ok(id) = EventId::parse(&raw) {
            prop_assert_eq!(id.as_str(), raw.as_str());
            prop_assert!((1..=128).contains(&raw.len()));
        }
        if let Ok(t) = TraceId::parse(&raw) {
            prop_assert_eq!(t.as_str(), raw.to_ascii_lowercase());
            prop_assert!(raw.len() == 32 && raw.bytes().all(|b| b.is_ascii_hexdigit()));
        }
    }

    #[test]
    fn ids_of_the_documented_shape_are_accepted(event_id in "[A-Za-z0-9_.:-]{1,128}", trace in "[0-9A-Fa-f]{32}") {
        prop_assert!(EventId::parse(&event_id).is_ok());
        prop_assert!(TraceId::parse(&trace).is_ok());
    }

    #[test]
    fn times_render_and_parse_back(micros in -62_135_596_800_000_000i64..253_402_300_799_000_000, raw in any::<String>()) {
        let t = Timestamp::from_micros(micros);
        prop_assert_eq!(Timestamp::parse_rfc3339(&t.rfc3339()), Some(t));
        let _ = Timestamp::parse_rfc3339(&raw);
    }

    #[test]
    fn signing_secrets_parse_back_and_reject_anything_else(key in proptest::collection::vec(any::<u8>(), 1..64), raw in any::<String>()) {
        let full = format!("whsec_{}", STANDARD.encode(&key));
        let secret = SigningSecret::parse(&full).unwrap();
        prop_assert_eq!(secret.expose(), full.as_str());
        if let Ok(s) = SigningSecret::parse(&raw) {
            prop_assert_eq!(s.expose(), raw.as_str());
            prop_assert!(raw.starts_with("whsec_"));
        }
    }

    /// The `webhook-signature` value is `v1,` + base64 of HMAC-SHA256(key, `id.ts.body`), and the
    /// legacy one is hex of HMAC-SHA256(whole secret, `ts.body`): what a receiver verifies.
    #[test]
    fn signatures_are_what_a_receiver_computes(
        key in proptest::collection::vec(any::<u8>(), 1..64),
        id in "[A-Za-z0-9_.:-]{1,40}",
        ts in 0i64..4_000_000_000,
        body in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let full = format!("whsec_{}", STANDARD.encode(&key));
        let secret = SigningSecret::parse(&full).unwrap();
        let header = secret.sign_standard(&id, ts, &body);
        let (version, signature) = header.split_once(',').unwrap();
        prop_assert_eq!(version, "v1");
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
        mac.update(format!("{id}.{ts}.").as_bytes());
        mac.update(&body);
        prop_assert!(mac.verify_slice(&STANDARD.decode(signature).unwrap()).is_ok());

        let legacy = secret.sign_legacy(ts, &body);
        let mut mac = Hmac::<Sha256>::new_from_slice(full.as_bytes()).unwrap();
        mac.update(format!("{ts}.").as_bytes());
        mac.update(&body);
        prop_assert!(mac.verify_slice(&hex::decode(&legacy).unwrap()).is_ok());
        prop_assert_eq!(legacy.to_ascii_lowercase(), legacy);
    }

    #[test]
    fn traceparent_headers_name_their_trace_or_nothing(raw in any::<String>(), trace in "[0-9a-f]{32}", span in "[0-9a-f]{16}") {
        if let Some(t) = TraceId::from_traceparent(&raw) {
            prop_assert!(t.as_str().len() == 32 && t.as_str().bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
            prop_assert_ne!(t.as_str(), "0".repeat(32));
        }
        let header = format!("00-{trace}-{span}-01");
        let named = TraceId::from_traceparent(&header).map(|t| t.as_str().to_owned());
        prop_assert_eq!(named, (trace != "0".repeat(32)).then_some(trace));
    }
}
