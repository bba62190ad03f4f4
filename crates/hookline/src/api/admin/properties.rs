//! The publish body's parser: any bytes give an answer in the envelope (never a panic, never a
//! 500), and an event's `data` is kept byte for byte as sent, whatever its spelling.

use super::*;
use crate::extract::parse_json;
use proptest::prelude::*;
use serde_json::{json, Value};

/// JSON values of a few levels, with strings and numbers of every kind.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            proptest::collection::btree_map(any::<String>(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn json_object() -> impl Strategy<Value = Value> {
    proptest::collection::btree_map(any::<String>(), json_value(), 0..6)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

/// Only client errors: a publish body is never an internal error, whatever it holds.
fn is_client_error(e: &ApiError) -> bool {
    matches!(
        e,
        ApiError::InvalidBody(_) | ApiError::MissingField(_) | ApiError::InvalidParameter(_)
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_are_a_request_or_a_client_error(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Err(e) = parse_json::<PublishRequest>(&bytes) {
            prop_assert!(is_client_error(&e), "{e:?}");
        }
        if let Err(e) = parse_json::<PublishBatchRequest>(&bytes) {
            prop_assert!(is_client_error(&e), "{e:?}");
        }
    }

    #[test]
    fn any_json_is_a_request_or_a_client_error(body in json_value()) {
        let bytes = serde_json::to_vec(&body).unwrap();
        match parse_json::<PublishRequest>(&bytes) {
            Ok(req) => {
                prop_assert_eq!(&body["partner_id"], &Value::from(req.partner_id));
                prop_assert_eq!(&body["event_type"], &Value::from(req.event_type));
            }
            Err(e) => prop_assert!(is_client_error(&e), "{e:?}"),
        }
    }

    /// `data` is delivered byte for byte: compact or pretty, its text is what was sent.
    #[test]
    fn data_is_kept_byte_for_byte(data in json_object(), pretty: bool, event_type in proptest::sample::select(hookline_core::event_type::ALL)) {
        let text = if pretty { serde_json::to_string_pretty(&data) } else { serde_json::to_string(&data) }.unwrap();
        let body = format!(
            "{{\"partner_id\":\"p\",\"event_type\":{},\n  \"data\": {text} }}",
            json!(event_type)
        );
        let req = parse_json::<PublishRequest>(body.as_bytes()).unwrap();
        prop_assert_eq!(req.data.get(), text.as_str());
        prop_assert_eq!(req.event_type.as_str(), event_type);
    }

    /// A missing field is named, wherever in a batch it is missing.
    #[test]
    fn a_missing_field_is_named(index in 0usize..5, field in proptest::sample::select(vec!["partner_id", "event_type", "data"])) {
        let mut events: Vec<Value> = (0..5)
            .map(|_| json!({"partner_id": "p", "event_type": "message.sent", "data": {}}))
            .collect();
        events[index].as_object_mut().unwrap().remove(field);
        let body = serde_json::to_vec(&json!({ "events": events })).unwrap();
        match parse_json::<PublishBatchRequest>(&body) {
            Err(ApiError::MissingField(name)) => prop_assert_eq!(name, format!("events[{index}].{field}")),
            Err(other) => prop_assert!(false, "{other:?}"),
            Ok(_) => prop_assert!(false, "accepted without {field}"),
        }
    }
}
