//! A log sink that fails: the real binary with stderr on `/dev/full` (every write fails with
//! ENOSPC) at debug level. Failed log writes are dropped and counted, never a panic: the node
//! starts, accepts and delivers, and keeps serving.

use super::common::*;
use super::process::*;
use std::collections::HashSet;
use std::process::Stdio;
use std::time::Duration;

/// Like [`Node::spawn`], with stderr on `/dev/full`.
fn spawn_with_full_stderr(dir: &std::path::Path) -> Node {
    let port = free_port();
    let database_url = format!("sqlite://{}", dir.join("hookline.db").display());
    let env = node_env(&[("HOOKLINE_DATABASE_URL", database_url.as_str())]);
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookline"));
    cmd.arg("serve")
        .env("HOOKLINE_LISTEN", format!("127.0.0.1:{port}"))
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(full)
        .kill_on_drop(true);
    Node {
        child: cmd.spawn().expect("spawning the hookline binary"),
        port,
        base: format!("http://127.0.0.1:{port}"),
        log: dir.join("no-log"),
    }
}

async fn log_writes_dropped(http: &reqwest::Client, node: &Node) -> u64 {
    let (s, v) = into_parts(http.get(node.url("/healthz")).send().await.unwrap()).await;
    assert_eq!(s, 200, "{v}");
    v["log_writes_dropped"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_log_sink_is_counted_and_kills_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let rx = TestReceiver::start().await;
    let http = http_client();
    // The first start prints its banner to stderr: that write fails too.
    let mut node = spawn_with_full_stderr(dir.path());
    node.wait_ready().await;
    let tenant = set_up_tenant(&http, &node.base, "logsink", &rx.url("/sink")).await;

    let mut want = HashSet::new();
    for round in 0..3 {
        let ids: Vec<String> = (0..20).map(|i| format!("log-{round}-{i}")).collect();
        let (s, v) = post_batch(&http, &node.base, &tenant.partner_id, &ids)
            .await
            .unwrap();
        assert_eq!(s, 202, "{v}");
        want.extend(ids);
    }
    await_every_event(&rx, &want, Duration::from_secs(30)).await;
    let dropped = log_writes_dropped(&http, &node).await;
    assert!(dropped > 0, "no failed log write was counted");

    // Still serving after every task has logged (and failed to) many times.
    let late = vec!["log-late".to_owned()];
    let (s, v) = post_batch(&http, &node.base, &tenant.partner_id, &late)
        .await
        .unwrap();
    assert_eq!(s, 202, "{v}");
    await_every_event(&rx, &late.into_iter().collect(), Duration::from_secs(30)).await;
    assert!(log_writes_dropped(&http, &node).await > dropped);
    assert!(
        node.child.try_wait().unwrap().is_none(),
        "the process exited"
    );
    let r = http.get(node.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    node.kill().await;
}
