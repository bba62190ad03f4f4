//! The CLI at its edges: a repeated publish, a reader that goes away, event files with values
//! at the limits of what the server takes.

use super::{cli, command};
use crate::common::{Backend, TestApp};

/// Publishing an event id again is said to be a repeat, not a second publish.
#[tokio::test]
async fn a_repeated_event_id_is_said_to_be_a_repeat() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (pid, _) = app.partner("acme").await;
    let args = [
        "events",
        "publish",
        "--partner",
        &pid,
        "--type",
        "message.received",
        "--event-id",
        "cli-once",
    ];
    let first = cli(&app, None, &args).await;
    assert!(first.stdout.starts_with("Published "), "{}", first.stdout);
    let again = cli(&app, None, &args).await;
    let said = &again.stdout;
    assert!(said.starts_with("Already published "), "{said}");
}

/// A reader that goes away (`hookline events types | head -1`) ends the CLI as it ends `cat`:
/// killed quietly by SIGPIPE, not a panic (exit 101) in `println!`.
#[tokio::test]
async fn a_reader_that_goes_away_ends_the_cli_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (_, key) = app.partner("acme").await;
    let mut cmd = command(&app);
    cmd.env("HOOKLINE_API_KEY", &key)
        .args(["events", "types"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    drop(child.stdout.take()); // closed before the CLI writes a line
    let out = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    const SIGPIPE: i32 = 13;
    assert_eq!(
        out.status.signal(),
        Some(SIGPIPE),
        "{:?} {stderr}",
        out.status
    );
}

/// An event file is read as the server reads events: `data` as deep as the server takes is
/// published, a value receivers' parsers refuse is named by line before anything is sent.
#[tokio::test]
async fn event_files_are_read_to_the_servers_limits() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (pid, _) = app.partner("acme").await;
    let file = app.dir.path().join("edges.ndjson");
    let deep = format!("{{\"x\":{}1{}}}", "[".repeat(126), "]".repeat(126));
    let line = |data: &str| format!(r#"{{"event_type":"message.received","data":{data}}}"#);
    std::fs::write(&file, format!("{}\n", line(&deep))).unwrap();
    let path = file.to_str().unwrap();
    let args = ["events", "publish", "--partner", &pid, "--file", path];
    let run = cli(&app, None, &args).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("Published 1 event"), "{}", run.stdout);

    std::fs::write(
        &file,
        format!("{}\n{}\n", line("{}"), line(r#"{"n":1e400}"#)),
    )
    .unwrap();
    let run = cli(&app, None, &args).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    let said = "edges.ndjson:2: data has a value JSON parsers refuse: a number beyond";
    assert!(run.stderr.contains(said), "{}", run.stderr);
}

/// A `HOOKLINE_*` variable no command reads (a typo) is named in a warning, not silently
/// ignored while the server runs on a default; the ones it reads are not.
#[tokio::test]
async fn an_unknown_hookline_variable_is_named() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let db = app.dir.path().join("migrated.db");
    let mut cmd = command(&app);
    cmd.env("HOOKLINE_DATA_DIR", "/nowhere")
        .env(
            "HOOKLINE_DATABASE_URL",
            format!("sqlite://{}", db.display()),
        )
        .env("HOOKLINE_LOG", "warn")
        .arg("migrate");
    let out = cmd.output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let warned: Vec<&str> = stderr.lines().filter(|l| l.contains(" WARN ")).collect();
    assert_eq!(warned.len(), 1, "{stderr}");
    assert!(warned[0].contains("HOOKLINE_DATA_DIR is set but is not a hookline setting"));
}

/// Output that cannot be written (a full device) is one line of error and exit 3, not a panic.
#[tokio::test]
async fn output_that_cannot_be_written_is_an_error_not_a_panic() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (_, key) = app.partner("acme").await;
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let mut cmd = command(&app);
    cmd.env("HOOKLINE_API_KEY", &key)
        .args(["events", "types"])
        .stdout(full)
        .stderr(std::process::Stdio::piped());
    let out = cmd.spawn().unwrap().wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.starts_with("Error: could not write the output"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
