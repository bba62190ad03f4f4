//! The official linq-python SDK against a real hookline: what Linq's customers run.

use super::common::*;
use super::python;

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
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "sdk_roundtrip.py failed:\n{stdout}\n{stderr}"
    );
    println!("{stdout}");
}

crate::per_backend!(linq_python_sdk_roundtrip_and_typed_errors,);
