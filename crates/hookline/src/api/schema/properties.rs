//! The document and the parsers agree: every string a schema pattern describes is one the
//! server's parser accepts (so a fuzzer's valid requests are valid), and the document's bounds
//! are the server's constants.

use super::*;
use hookline_core::{partner, EventId, Partner, PhoneNumber, TargetUrl, Timestamp, TraceId};
use proptest::prelude::*;
use serde_json::Value;

/// proptest's regex strategies do not take anchors; the schema's patterns are anchored.
fn strings_of(pattern: &str) -> impl Strategy<Value = String> {
    let inner = pattern.trim_start_matches('^').trim_end_matches('$');
    proptest::string::string_regex(inner).expect("a pattern proptest can generate from")
}

fn pattern_of<S: PartialSchema>() -> String {
    let schema = serde_json::to_value(S::schema()).unwrap();
    schema["pattern"].as_str().unwrap().to_owned()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_target_url_of_the_pattern_is_accepted(url in strings_of(TARGET_URL_PATTERN)) {
        prop_assume!(url.len() <= MAX_TARGET_URL_LEN);
        prop_assert!(TargetUrl::parse(&url, false).is_ok(), "{url}");
    }

    #[test]
    fn every_phone_number_of_the_pattern_is_accepted(n in strings_of(&pattern_of::<E164Number>())) {
        prop_assert!(PhoneNumber::parse(&n).is_ok(), "{n}");
    }

    #[test]
    fn every_id_of_the_patterns_is_accepted(
        event_id in strings_of(&pattern_of::<EventIdText>()),
        trace_id in strings_of(&pattern_of::<TraceIdText>()),
    ) {
        prop_assert!(EventId::parse(&event_id).is_ok());
        prop_assert!(TraceId::parse(&trace_id).is_ok());
    }

    #[test]
    fn every_name_and_label_of_the_patterns_is_accepted(
        name in strings_of(&name_pattern()),
        label in strings_of(&pattern_of::<LabelText>()),
    ) {
        prop_assume!(name.chars().count() <= MAX_PARTNER_NAME);
        prop_assume!(label.chars().count() <= MAX_PARTNER_NAME);
        prop_assert!(Partner::issue(&name, Timestamp::EPOCH).is_ok(), "{name:?}");
        prop_assert!(partner::api_key_label(Some(&label)).is_ok(), "{label:?}");
    }
}

/// Whether `text` is valid by `S`'s schema, read as JSON Schema (ECMA-262 patterns, formats
/// asserted, as Schemathesis reads them).
fn valid_by<S: PartialSchema>(text: &str) -> bool {
    let schema = serde_json::to_value(S::schema()).unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("a schema the validator reads")
        .is_valid(&Value::String(text.to_owned()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    /// Both ways: the fuzzer's invalid values must be refused as surely as its valid ones
    /// accepted. The alphabet mixes names, near-names, commas and whitespace the parser trims
    /// (and U+FEFF, which ECMA-262's `\s` has and Rust's trim does not).
    #[test]
    fn the_status_pattern_is_exactly_what_the_log_reads(
        raw in "([ \t\u{85}\u{a0}\u{3000}\u{feff},]{0,2}(pending|retrying|success|failed|cancelled|fail|Failed|x)?){0,3}[ ,\u{2028}]{0,2}"
    ) {
        let parsed = hookline_core::DeliveryStatus::parse_list(&raw).is_ok();
        prop_assert_eq!(valid_by::<StatusListText>(&raw), parsed, "{:?}", raw);
    }

    #[test]
    fn every_status_list_of_the_pattern_is_read(raw in strings_of(&status_list_pattern())) {
        prop_assert!(hookline_core::DeliveryStatus::parse_list(&raw).is_ok(), "{:?}", raw);
    }

    /// Names and labels are judged as sent (control characters and length before trimming).
    #[test]
    fn the_name_and_label_patterns_are_exactly_what_the_server_reads(
        raw in "[ a\t\n\u{85}\u{a0}\u{feff}\u{3000}\u{ad}\u{200b}\u{202e}\u{2066}\u{61c}\u{2028}\u{3164}\u{fe0f}\u{2800}]{0,4}",
        padding in 0..3usize,
    ) {
        let raw = format!("{}{raw}", "é".repeat(padding * 99));
        let issued = Partner::issue(&raw, Timestamp::EPOCH).is_ok();
        prop_assert_eq!(valid_by::<NameText>(&raw), issued, "{:?}", raw);
        let labelled = partner::api_key_label(Some(&raw)).is_ok();
        prop_assert_eq!(valid_by::<LabelText>(&raw), labelled, "{:?}", raw);
    }

    #[test]
    fn the_per_page_pattern_is_exactly_what_the_log_reads(raw in "[+0-9 a-]{0,4}") {
        let parsed = crate::api::delivery_views::parse_per_page(Some(&raw)).is_ok();
        prop_assert_eq!(valid_by::<PerPageText>(&raw), parsed, "{:?}", raw);
    }

    #[test]
    fn every_cursor_the_log_makes_is_valid_by_the_document(created_at: i64, id: i64) {
        let cursor = LogCursor { created_at, id }.encode();
        prop_assert!(valid_by::<CursorText>(&cursor), "{}", cursor);
    }
}

/// A cursor the document refuses (too long, a character base64url lacks) is one the server
/// refuses too.
#[test]
fn a_cursor_the_document_refuses_is_one_the_log_refuses() {
    for raw in [
        "A".repeat(LogCursor::MAX_LEN + 1),
        "ZDE6MToy=".into(),
        "ZDE+MToy".into(),
    ] {
        assert!(!valid_by::<CursorText>(&raw), "{raw}");
        assert_eq!(LogCursor::decode(&raw), None, "{raw}");
    }
}

/// An empty value is the same as none, and the document says so; time bounds are RFC 3339's
/// `date-time`, as the server reads them (`Timestamp::parse_date_time`).
#[test]
fn the_log_filters_admit_empty_values_and_date_times_only() {
    assert!(valid_by::<StatusListText>("") && valid_by::<PerPageText>(""));
    assert!(valid_by::<CursorText>("") && valid_by::<EventTypeFilter>(""));
    assert!(valid_by::<DateTimeFilter>(""));
    for (time, valid) in [
        ("2026-02-05t19:31:13.5z", true),
        ("2016-12-31T15:59:60-08:00", true),
        ("2026-02-05 19:31:13Z", false),
        ("2026-02-05T19:31:60Z", false),
        ("2026-02-05T19:31:13", false),
    ] {
        assert_eq!(valid_by::<DateTimeFilter>(time), valid, "{time}");
        assert_eq!(Timestamp::parse_date_time(time).is_some(), valid, "{time}");
    }
}

#[test]
fn any_case_matches_every_spelling_and_only_those() {
    assert_eq!(any_case("te"), "[Tt][Ee]");
    assert_eq!(
        any_case("x-webhook-"),
        "[Xx]\\-[Ww][Ee][Bb][Hh][Oo][Oo][Kk]\\-"
    );
    let pattern = header_name_pattern();
    for name in header_name::RESERVED {
        assert!(pattern.contains(&any_case(name)), "{name}");
    }
}

fn document() -> Value {
    openapi_json().clone()
}

#[test]
fn links_name_their_operation_in_openapi_spelling() {
    let doc = document();
    let links = &doc["paths"]["/v3/webhook-subscriptions"]["post"]["responses"]["201"]["links"];
    assert_eq!(
        links["RetrieveSubscription"]["operationId"], "retrieve",
        "{links}"
    );
    let operation_ids: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter_map(|op| op["operationId"].as_str())
        .collect();
    for (_, link) in links.as_object().unwrap() {
        assert!(operation_ids.contains(&link["operationId"].as_str().unwrap()));
    }
}

#[test]
fn the_documents_bounds_are_the_servers() {
    let doc = document();
    let schemas = &doc["components"]["schemas"];
    let names: Vec<&str> = schemas["EventType"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(names, event_type::ALL);
    let phones = &schemas["CreateSubscriptionRequest"]["properties"]["phone_numbers"];
    assert_eq!(
        phones["maxItems"],
        crate::api::partner::MAX_PHONE_NUMBERS,
        "{phones}"
    );
    let batch = &schemas["PublishBatchRequest"]["properties"]["events"];
    assert_eq!(batch["maxItems"], crate::api::admin::MAX_BATCH, "{batch}");
}

/// Every authenticated operation lists 401, 429 and 503; every one with a body 400, 408 and
/// 413; every one with a path parameter 404; every error answer is the envelope.
#[test]
fn every_operation_lists_the_errors_its_layers_can_answer() {
    let doc = document();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            let mut want: Vec<&str> = Vec::new();
            if op.get("security").is_some() {
                want.extend(["401", "429", "503"]);
            }
            if op.get("requestBody").is_some() {
                want.extend(["400", "408", "413"]);
            }
            if path.contains('{') {
                want.push("404");
            }
            for status in want {
                assert!(
                    responses.contains_key(status),
                    "{method} {path} lacks {status}"
                );
            }
            for (status, response) in responses {
                if status.starts_with(['4', '5']) {
                    let schema = &response["content"]["application/json"]["schema"]["$ref"];
                    assert_eq!(
                        schema, "#/components/schemas/ErrorEnvelope",
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
}
