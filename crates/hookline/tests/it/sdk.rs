//! Linq's official SDKs (linq-python, @linqapp/sdk) against a real hookline: what Linq's
//! customers run.

use super::common::*;
use super::{node, python};

async fn linq_python_sdk_roundtrip_and_typed_errors(backend: Backend) {
    let py = python::python();
    let app = TestApp::spawn(backend).await;
    let (_, key_a) = app.partner("sdk-a").await;
    let (_, key_b) = app.partner("sdk-b").await;
    let out = tokio::process::Command::new(py)
        .arg(python::script("sdk_roundtrip.py"))
        .env("HOOKLINE_BASE_URL", &app.base)
        .env("HOOKLINE_API_KEY", &key_a)
        .env("HOOKLINE_API_KEY_B", &key_b)
        .env_remove("LINQ_API_V3_BASE_URL")
        .output()
        .await
        .unwrap();
    passed(&out, "sdk_roundtrip.py");
}

async fn linq_node_sdk_roundtrip_and_typed_errors(backend: Backend) {
    let script = node::script("sdk_roundtrip.mjs");
    let app = TestApp::spawn(backend).await;
    let (_, key) = app.partner("sdk-node").await;
    let out = tokio::process::Command::new("node")
        .arg(&script)
        .env("HOOKLINE_BASE_URL", &app.base)
        .env("HOOKLINE_API_KEY", &key)
        .output()
        .await
        .unwrap();
    let _ = std::fs::remove_file(&script);
    passed(&out, "sdk_roundtrip.mjs");
}

/// The SDK script exited 0; its output is shown either way.
fn passed(out: &std::process::Output, script: &str) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{script} failed:\n{stdout}\n{stderr}");
    println!("{stdout}");
}

crate::per_backend!(
    linq_python_sdk_roundtrip_and_typed_errors,
    linq_node_sdk_roundtrip_and_typed_errors,
);
