//! hookline-verify against implementations we did not write: what it signs, the Python
//! `standardwebhooks` package and linq-python's `webhooks.unwrap` accept (and the legacy check of
//! `verify_delivery.py`); what they sign, it accepts.

use hookline_verify::{Error, Secret, Verifier};
use serde_json::{json, Value};
use std::collections::HashMap;

use crate::python;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw7Jxx2Oll+OE=";

fn bodies() -> Vec<String> {
    vec![
        r#"{"event_type":"message.received","data":{"text":"héllo ✓"}}"#.into(),
        "{}".into(),
        format!(r#"{{"data":"{}"}}"#, "x".repeat(10_000)),
    ]
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Runs `script` on `input`; (success, stdout, stderr).
fn run_python(script: &str, input: &str) -> (bool, String, String) {
    use std::io::Write;
    let mut child = std::process::Command::new(python::python())
        .arg(python::script(script))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn signed_lines(tamper: bool) -> String {
    let secret = Secret::parse(SECRET).unwrap();
    let mut lines = String::new();
    for (i, body) in bodies().into_iter().enumerate() {
        let id = format!("evt-cross-{i}");
        let headers: HashMap<&str, String> = secret
            .signed_headers(&id, now(), body.as_bytes())
            .into_iter()
            .collect();
        let body = if tamper { format!("{body} ") } else { body };
        lines.push_str(&json!({"secret": SECRET, "headers": headers, "body": body}).to_string());
        lines.push('\n');
    }
    lines
}

#[test]
fn python_verifiers_accept_what_hookline_verify_signs() {
    let (ok, stdout, stderr) = run_python("verify_delivery.py", &signed_lines(false));
    assert!(ok, "{stdout}\n{stderr}");
    for i in 0..bodies().len() {
        assert!(stdout.contains(&format!("ok evt-cross-{i}")), "{stdout}");
    }
    // The same check refuses a body that is not what was signed: it can fail.
    let (ok, stdout, _) = run_python("verify_delivery.py", &signed_lines(true));
    assert!(!ok, "a tampered body passed: {stdout}");
}

#[test]
fn hookline_verify_accepts_what_python_signs() {
    let ts = now();
    let input: String = bodies()
        .iter()
        .enumerate()
        .map(|(i, b)| {
            json!({"secret": SECRET, "id": format!("evt-py-{i}"), "timestamp": ts, "body": b})
                .to_string()
                + "\n"
        })
        .collect();
    let (ok, stdout, stderr) = run_python("sign_delivery.py", &input);
    assert!(ok, "{stderr}");
    let verifier = Verifier::new(Secret::parse(SECRET).unwrap());
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), bodies().len(), "{stdout}");
    for (i, (line, body)) in lines.iter().zip(bodies()).enumerate() {
        let headers: HashMap<String, String> = serde_json::from_str::<HashMap<String, Value>>(line)
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, v.as_str().unwrap().to_owned()))
            .collect();
        let v = verifier.verify(&headers, body.as_bytes()).unwrap();
        assert_eq!(v.id, Some(format!("evt-py-{i}")));
        verifier.verify_legacy(&headers, body.as_bytes()).unwrap();
        let other = Verifier::new(Secret::parse("whsec_QUJDRA==").unwrap());
        assert_eq!(
            other.verify(&headers, body.as_bytes()),
            Err(Error::NoMatchingSignature)
        );
    }
}
