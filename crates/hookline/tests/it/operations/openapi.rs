//! The operations endpoints as `/openapi.json` describes them: paths, methods, every status
//! they answer, and the response fields.

use crate::common::*;
use serde_json::Value;

async fn operations_endpoints_are_in_the_openapi_document(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (s, doc) = into_parts(app.http.get(app.url("/openapi.json")).send().await.unwrap()).await;
    assert_eq!(s, 200);
    for (path, schema, fields) in [
        (
            "/v3/webhook-subscriptions/{subscriptionId}/rotate-secret",
            "RotatedSecret",
            &["signing_secret", "previous_secret_expires_at"][..],
        ),
        (
            "/v3/webhook-subscriptions/{subscriptionId}/test",
            "TestEventResult",
            &[
                "event_id",
                "http_status_code",
                "duration_ms",
                "error_type",
                "error_message",
            ][..],
        ),
    ] {
        let op = &doc["paths"][path]["post"];
        assert!(op.is_object(), "POST {path} missing: {}", doc["paths"]);
        let statuses: Vec<&String> = op["responses"].as_object().unwrap().keys().collect();
        for status in ["200", "400", "401", "404", "413", "503"] {
            assert!(
                statuses.iter().any(|s| *s == status),
                "{path}: {status} in {statuses:?}"
            );
        }
        assert_ne!(
            op["requestBody"]["required"],
            Value::Bool(true),
            "{path}: body optional"
        );
        let props = doc["components"]["schemas"][schema]["properties"]
            .as_object()
            .unwrap();
        for f in fields {
            assert!(props.contains_key(*f), "{schema}.{f}");
        }
    }
    let grace =
        &doc["components"]["schemas"]["RotateSecretRequest"]["properties"]["grace_period_seconds"];
    assert_eq!(
        (grace["minimum"].as_i64(), grace["maximum"].as_i64()),
        (Some(0), Some(604_800))
    );
}

/// The delivery log's operations as the server reads them (issue 10): the query's values, the
/// operator's required `partner_id`, the bulk retry's body, and the 400 that retry, recover and
/// test answer for an inactive subscription.
async fn the_delivery_log_is_described_as_the_server_reads_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, doc) = into_parts(app.http.get(app.url("/openapi.json")).send().await.unwrap()).await;
    let param = |path: &str, name: &str| -> Value {
        let params = doc["paths"][path]["get"]["parameters"].as_array().unwrap();
        params.iter().find(|p| p["name"] == name).cloned().unwrap()
    };
    let log = "/v3/webhook-subscriptions/{subscriptionId}/deliveries";
    for bound in ["since", "until"] {
        let schema = &param(log, bound)["schema"];
        assert_eq!(schema["anyOf"][0]["format"], "date-time", "{schema}");
        assert_eq!(schema["anyOf"][1]["maxLength"], 0, "{schema}");
    }
    assert!(param(log, "status")["schema"]["pattern"]
        .as_str()
        .unwrap()
        .contains("cancelled"));
    assert_eq!(param(log, "cursor")["schema"]["maxLength"], 64);
    for path in [
        "/admin/v1/events/{eventId}",
        "/admin/v1/recoveries/{recoveryId}",
    ] {
        let partner = param(path, "partner_id");
        assert_eq!(
            (&partner["required"], &partner["schema"]["minLength"]),
            (&Value::Bool(true), &Value::from(1))
        );
    }
    let bulk = &doc["components"]["schemas"]["BulkRetryRequest"];
    assert_eq!(
        bulk["required"],
        serde_json::json!(["partner_id", "status", "since"])
    );
    let status = &doc["components"]["schemas"]["BulkRetryStatus"];
    assert_eq!(status["enum"], serde_json::json!(["failed"]));
    let subscription = "/v3/webhook-subscriptions/{subscriptionId}";
    for op in ["/deliveries/{eventId}/retry", "/recover", "/test"] {
        let responses = &doc["paths"][format!("{subscription}{op}")]["post"]["responses"];
        assert!(responses["400"].is_object(), "{op}: {responses}");
    }
}

crate::per_backend!(
    operations_endpoints_are_in_the_openapi_document,
    the_delivery_log_is_described_as_the_server_reads_it,
);
