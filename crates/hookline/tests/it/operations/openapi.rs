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

crate::per_backend!(operations_endpoints_are_in_the_openapi_document);
