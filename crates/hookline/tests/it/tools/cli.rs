//! The `hookline` binary's client commands, run as a child process against a real server:
//! `--json` prints exactly the API's JSON, text output is for people, exit codes mean something.

use reqwest::Method;
use serde_json::{json, Value};

use super::{cli, command};
use crate::common::{Backend, TestApp, TestReceiver};
use crate::per_backend;

per_backend!(json_output_is_the_api_json, batch_publish_from_ndjson);

async fn json_output_is_the_api_json(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let rx = TestReceiver::start().await;
    let (pid, key) = partner_and_key(&app).await;
    let pid = pid.as_str();
    let k = Some(key.as_str());

    let url = rx.url("/cli");
    let created = cli(
        &app,
        k,
        &[
            "subscriptions",
            "create",
            "--target-url",
            &url,
            "--events",
            "message.received,message.sent",
            "--json",
        ],
    )
    .await;
    assert_eq!(created.code, 0, "{}", created.stderr);
    let created = created.json();
    assert!(created["signing_secret"]
        .as_str()
        .unwrap()
        .starts_with("whsec_"));
    let id = created["id"].as_str().unwrap().to_owned();
    let path = format!("/v3/webhook-subscriptions/{id}");
    let (_, api) = app.call(&key, Method::GET, &path, None).await;
    let mut without_secret = created.clone();
    without_secret
        .as_object_mut()
        .unwrap()
        .remove("signing_secret");
    assert_eq!(without_secret, api);
    // The API's fields, pretty-printed with keys sorted (a `Value`'s maps are sorted).
    let shown = cli(&app, k, &["subscriptions", "get", &id, "--json"]).await;
    assert_eq!(
        shown.stdout.trim_end(),
        serde_json::to_string_pretty(&api).unwrap()
    );
    let (_, api_list) = app
        .call(&key, Method::GET, "/v3/webhook-subscriptions", None)
        .await;
    assert_eq!(
        cli(&app, k, &["subscriptions", "list", "--json"])
            .await
            .json(),
        api_list
    );
    let (_, types) = app
        .call(&key, Method::GET, "/v3/webhook-events", None)
        .await;
    assert_eq!(
        cli(&app, k, &["events", "types", "--json"]).await.json(),
        types
    );
    let updated = cli(
        &app,
        k,
        &["subscriptions", "update", &id, "--deactivate", "--json"],
    )
    .await
    .json();
    let (_, api) = app.call(&key, Method::GET, &path, None).await;
    assert_eq!(updated, api);
    assert_eq!(api["is_active"], json!(false));
    cli(&app, k, &["subscriptions", "update", &id, "--activate"]).await;
    publish_and_delete(&app, &rx, pid, k, &id).await;
}

/// `partners create`, `partners list` and `keys create` with `--json`: (partner id, API key).
async fn partner_and_key(app: &TestApp) -> (String, String) {
    let partner = cli(app, None, &["partners", "create", "acme", "--json"]).await;
    assert_eq!(partner.code, 0, "{}", partner.stderr);
    let partner = partner.json();
    let pid = partner["id"].as_str().unwrap();
    let (_, listed) = app.admin(Method::GET, "/admin/v1/partners", None).await;
    assert!(listed["partners"].as_array().unwrap().contains(&partner));
    assert_eq!(
        cli(app, None, &["partners", "list", "--json"]).await.json(),
        listed
    );
    let key = cli(app, None, &["keys", "create", "--partner", pid, "--json"])
        .await
        .json();
    let key = key["api_key"].as_str().unwrap().to_owned();
    // `keys revoke --json` prints what the API answers: an empty 204, nothing.
    let spare = cli(app, None, &["keys", "create", "--partner", pid, "--json"]).await;
    let spare = spare.json();
    let (spare_id, spare_key) = (
        spare["id"].as_str().unwrap(),
        spare["api_key"].as_str().unwrap(),
    );
    let revoked = cli(
        app,
        None,
        &["keys", "revoke", spare_id, "--partner", pid, "--json"],
    )
    .await;
    assert_eq!(
        (revoked.code, revoked.stdout.as_str()),
        (0, ""),
        "{}",
        revoked.stderr
    );
    let (status, _) = app
        .call(spare_key, Method::GET, "/v3/webhook-subscriptions", None)
        .await;
    assert_eq!(status, 401, "a revoked key still works");
    (pid.to_owned(), key)
}

/// `events publish --json` and `subscriptions delete --json` print what the API answers (an
/// empty 204 prints nothing); a lookup afterwards fails with exit code 4 and the envelope.
async fn publish_and_delete(
    app: &TestApp,
    rx: &TestReceiver,
    pid: &str,
    k: Option<&str>,
    id: &str,
) {
    let published = cli(
        app,
        None,
        &[
            "events",
            "publish",
            "--partner",
            pid,
            "--type",
            "message.received",
            "--data",
            r#"{"chat_id":"c1"}"#,
            "--event-id",
            "evt-cli-1",
            "--json",
        ],
    )
    .await;
    assert_eq!(
        published.json(),
        json!({"event_id": "evt-cli-1", "deliveries": 1})
    );
    let got = rx.wait_for(None, 1, crate::common::WAIT).await;
    assert_eq!(got[0].header("webhook-id"), "evt-cli-1");
    delivery_commands(app, rx, k.unwrap(), id).await;

    let deleted = cli(app, k, &["subscriptions", "delete", id, "--json"]).await;
    assert_eq!((deleted.code, deleted.stdout.as_str()), (0, ""));
    let gone = cli(app, k, &["subscriptions", "get", id]).await;
    assert_eq!(gone.code, 4, "{}", gone.stderr);
    assert!(
        gone.stderr
            .contains(&format!("Webhook subscription '{id}' not found")),
        "{}",
        gone.stderr
    );
    assert!(gone.stderr.contains("trace id "), "{}", gone.stderr);
}

/// The delivery-operation commands print the API's JSON: `deliveries list|get` exactly as the
/// API answers the same question, and `retry`, `recover`, `subscriptions test|rotate-secret` the
/// API's answer to the call they make (the same fields, the values that call produced).
async fn delivery_commands(app: &TestApp, rx: &TestReceiver, key: &str, id: &str) {
    let k = Some(key);
    let one = format!("/v3/webhook-subscriptions/{id}/deliveries/evt-cli-1");
    // The outcome is recorded just after the receiver answered: wait until the log says so.
    let deadline = std::time::Instant::now() + crate::common::WAIT;
    let detail = loop {
        let (_, v) = app.call(key, Method::GET, &one, None).await;
        if v["status"] == "success" || std::time::Instant::now() > deadline {
            break v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(detail["status"], "success", "{detail}");
    let got = cli(app, k, &["deliveries", "get", id, "evt-cli-1", "--json"]).await;
    assert_eq!(got.json(), detail, "{}", got.stderr);
    let list_path = format!("/v3/webhook-subscriptions/{id}/deliveries");
    let (_, api_list) = app.call(key, Method::GET, &list_path, None).await;
    let listed = cli(app, k, &["deliveries", "list", id, "--json"]).await;
    assert_eq!(listed.json(), api_list, "{}", listed.stderr);

    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    let retried = cli(app, k, &["deliveries", "retry", id, "evt-cli-1", "--json"]).await;
    assert_eq!(retried.code, 0, "{}", retried.stderr);
    let retried = retried.json();
    assert_eq!(retried["event_id"], "evt-cli-1");
    assert_eq!(
        keys(&retried),
        keys(&detail),
        "the API answers a retry with the delivery and its attempts"
    );
    let again = rx.wait_for(None, 2, crate::common::WAIT).await;
    assert_eq!(again[1].header("webhook-id"), "evt-cli-1");

    let since = "2020-01-01T00:00:00Z";
    let recovered = cli(
        app,
        k,
        &["deliveries", "recover", id, "--since", since, "--json"],
    )
    .await;
    let recovered = recovered.json();
    assert_eq!(keys(&recovered), ["deliveries", "recovery_id"]);
    assert_eq!(recovered["deliveries"], 0);

    let tested = cli(app, k, &["subscriptions", "test", id, "--json"])
        .await
        .json();
    assert_eq!(
        keys(&tested),
        [
            "duration_ms",
            "error_message",
            "error_type",
            "event_id",
            "http_status_code"
        ]
    );
    assert_eq!(tested["http_status_code"], 200, "{tested}");
    let rotated = cli(app, k, &["subscriptions", "rotate-secret", id, "--json"]).await;
    let rotated = rotated.json();
    assert_eq!(
        keys(&rotated),
        ["previous_secret_expires_at", "signing_secret"]
    );
    assert!(rotated["signing_secret"]
        .as_str()
        .unwrap()
        .starts_with("whsec_"));
}

#[tokio::test]
async fn text_output_and_exit_codes() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (pid, key) = app.partner("people").await;
    let k = Some(key.as_str());
    let created = cli(
        &app,
        k,
        &[
            "subscriptions",
            "create",
            "--target-url",
            "https://example.com/h",
            "--events",
            "message.received",
        ],
    )
    .await;
    assert_eq!(created.code, 0, "{}", created.stderr);
    assert!(
        created.stdout.contains("Save this now"),
        "{}",
        created.stdout
    );
    assert!(created.stdout.contains("whsec_"), "{}", created.stdout);
    assert!(
        !created.stdout.contains("\x1b["),
        "colour without a terminal"
    );
    let list = cli(&app, k, &["subscriptions", "list"]).await;
    let header = list.stdout.lines().next().unwrap();
    assert!(
        header.starts_with("ID") && header.contains("URL") && header.contains("CREATED"),
        "{}",
        list.stdout
    );
    assert!(
        list.stdout.contains("https://example.com/h") && list.stdout.contains("just now"),
        "{}",
        list.stdout
    );
    let partners = cli(&app, None, &["partners", "list"]).await;
    assert!(partners.stdout.contains(&pid), "{}", partners.stdout);

    exit_codes(&app, k).await;
}

/// 4xx refused: 1; 404: 4; unreachable: 3; usage or configuration: 2.
async fn exit_codes(app: &TestApp, k: Option<&str>) {
    let refused = cli(
        app,
        k,
        &[
            "subscriptions",
            "create",
            "--target-url",
            "http://example.com/h",
            "--events",
            "message.received",
        ],
    )
    .await;
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(refused.stderr.contains("HTTPS"), "{}", refused.stderr);
    let bad_key = cli(app, Some("hl_live_wrong"), &["subscriptions", "list"]).await;
    assert_eq!(bad_key.code, 1);
    assert!(bad_key.stderr.contains("401/2004"), "{}", bad_key.stderr);
    let unreachable = cli(
        app,
        k,
        &["subscriptions", "list", "--url", "http://127.0.0.1:9"],
    )
    .await;
    assert_eq!(unreachable.code, 3, "{}", unreachable.stderr);
    let no_key = cli(app, None, &["subscriptions", "list"]).await;
    assert_eq!(no_key.code, 2);
    assert!(
        no_key.stderr.contains("HOOKLINE_API_KEY"),
        "{}",
        no_key.stderr
    );
    assert_eq!(cli(app, k, &["subscriptions", "update", "x"]).await.code, 2);
}

#[tokio::test]
async fn profiles_and_completions() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (_, key) = app.partner("profiles").await;
    cli(
        &app,
        Some(&key),
        &[
            "subscriptions",
            "create",
            "--target-url",
            "https://example.com/p",
            "--events",
            "message.received",
        ],
    )
    .await;
    // A profile supplies the URL and key; flags and variables would override it.
    let config = app.dir.path().join("cli.toml");
    std::fs::write(
        &config,
        format!(
            "default_profile = \"local\"\n[profiles.local]\nurl = \"{}\"\napi_key = \"{key}\"\n",
            app.base
        ),
    )
    .unwrap();
    let mut cmd = command(&app);
    cmd.env_remove("HOOKLINE_URL")
        .env("HOOKLINE_CLI_CONFIG", &config)
        .args(["subscriptions", "list", "--json"]);
    let out = cmd.output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["subscriptions"].as_array().unwrap().len(), 1);
    let mut cmd = command(&app);
    cmd.env("HOOKLINE_CLI_CONFIG", &config)
        .args(["subscriptions", "list", "-p", "prod"]);
    let out = cmd.output().await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no profile 'prod'"));

    for shell in ["bash", "zsh", "fish"] {
        let done = cli(&app, None, &["completions", shell]).await;
        assert_eq!(done.code, 0);
        assert!(done.stdout.contains("subscriptions"), "{shell}");
    }
}

async fn batch_publish_from_ndjson(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let rx = TestReceiver::start().await;
    let (pid, key) = app.partner("batch").await;
    crate::common::subscribe(&app, &key, &rx.url("/batch"), &["message.received"], None).await;
    let file = app.dir.path().join("events.ndjson");
    let mut lines = String::new();
    for i in 0..250 {
        // Half name their partner, half take --partner's; one blank line is skipped.
        let mut e = json!({"event_type": "message.received", "event_id": format!("nd-{i}"), "data": {"i": i}});
        if i % 2 == 0 {
            e["partner_id"] = json!(pid);
        }
        lines.push_str(&format!("{e}\n"));
    }
    lines.push('\n');
    std::fs::write(&file, &lines).unwrap();
    let run = cli(
        &app,
        None,
        &[
            "events",
            "publish",
            "--file",
            file.to_str().unwrap(),
            "--partner",
            &pid,
            "--batch-size",
            "100",
            "--json",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let answers: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(answers.len(), 3);
    let results: usize = answers
        .iter()
        .map(|a| a["results"].as_array().unwrap().len())
        .sum();
    assert_eq!(results, 250);
    let got = rx.wait_for(None, 250, crate::common::WAIT).await;
    assert_eq!(got.len(), 250);
}

/// A bad value in a `HOOKLINE_*` variable is named at start, whether clap parses it (a flag's
/// type) or the settings do.
#[tokio::test]
async fn a_bad_setting_from_the_environment_is_named() {
    for (var, value, code) in [
        ("HOOKLINE_ROLE", "boss", 2),
        ("HOOKLINE_WORKER_THREADS", "many", 2),
        ("HOOKLINE_WORKER_THREADS", "0", 1),
    ] {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookline"))
            .arg("serve")
            .env_clear()
            .env(var, value)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{var}={value}: {stderr}");
        assert!(stderr.contains(var), "{var}={value}: {stderr}");
    }
}

#[tokio::test]
async fn malformed_ndjson_sends_nothing() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (pid, _) = app.partner("malformed").await;
    let file = app.dir.path().join("events.ndjson");
    // A malformed line stops the run before anything is sent, naming the line.
    std::fs::write(
        &file,
        "{\"event_type\":\"message.received\",\"data\":{}}\nnot json\n",
    )
    .unwrap();
    let run = cli(
        &app,
        None,
        &[
            "events",
            "publish",
            "--file",
            file.to_str().unwrap(),
            "--partner",
            &pid,
        ],
    )
    .await;
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("events.ndjson:2"), "{}", run.stderr);
    let good = "{\"event_type\":\"message.received\",\"data\":{}}\n";
    let publish = |file: &std::path::Path| {
        let file = file.to_str().unwrap().to_owned();
        let pid = pid.clone();
        let app = &app;
        async move {
            let args = ["events", "publish", "--file", &file, "--partner", &pid];
            cli(app, None, &args).await
        }
    };
    // A line the server would refuse for its own fields stops the run before anything is sent.
    for bad in [
        "{\"event_type\":\"bad.type\",\"data\":{}}",
        "{\"event_type\":\"message.received\",\"data\":[]}",
        "{\"event_type\":\"message.received\",\"data\":{},\"phone_number\":\"555\"}",
        "{\"event_type\":\"message.received\",\"data\":{},\"event_id\":\"a b\"}",
    ] {
        std::fs::write(&file, format!("{}{bad}\n{good}", good.repeat(150))).unwrap();
        let run = publish(&file).await;
        assert_eq!(run.code, 2, "{bad}: {}", run.stderr);
        assert!(run.stderr.contains("events.ndjson:151"), "{}", run.stderr);
    }
    assert_eq!(
        crate::common::counts(&app).await,
        Default::default(),
        "nothing was published"
    );
    // What only the server knows (the partner) is named by line when its batch is refused.
    let stranger = "{\"partner_id\":\"nobody\",\"event_type\":\"message.received\",\"data\":{}}";
    std::fs::write(&file, format!("{}{stranger}\n", good.repeat(119))).unwrap();
    let run = publish(&file).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("events.ndjson:120"), "{}", run.stderr);
    let text = cli(
        &app,
        None,
        &[
            "events",
            "publish",
            "--partner",
            &pid,
            "--type",
            "message.received",
        ],
    )
    .await;
    assert!(text.stdout.starts_with("Published "), "{}", text.stdout);
}
