//! Disk full under SQLite, for real: the real binary with its database on a small tmpfs. Publishes
//! are accepted until the filesystem is full, then refused with 503 code 4004 and `Retry-After`
//! (never a 202 for what was not stored, never a 500), `/readyz` turns 503; once the volume is
//! grown (`mount -o remount,size=…`), the same process is ready again by itself, takes new
//! publishes, and delivers every event it ever accepted.
//!
//! Mounting needs root (CAP_SYS_ADMIN), as CI has; elsewhere the test says so and passes
//! without running.

use super::common::*;
use super::process::*;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A tmpfs mounted for one test; unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// `None` when this process may not mount (not root).
    fn mount(path: &Path, size: &str) -> Option<Tmpfs> {
        let uid = Command::new("id").arg("-u").output().unwrap();
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            return None;
        }
        std::fs::create_dir_all(path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success(), "mount -t tmpfs failed although root");
        Some(Tmpfs {
            path: path.to_owned(),
        })
    }

    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.path)
            .status()
            .unwrap();
        assert!(status.success(), "remounting the tmpfs failed");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Ten events of about 2 KiB each: a publish group smaller than the readiness probe's write.
fn batch(partner_id: &str, ids: &[String]) -> Value {
    let padding = "x".repeat(2048);
    let events: Vec<Value> = ids
        .iter()
        .map(|id| {
            json!({"partner_id": partner_id, "event_type": "message.received",
                   "event_id": id, "data": {"id": id, "padding": padding}})
        })
        .collect();
    json!({ "events": events })
}

/// Publishes one batch; (status, body, Retry-After).
async fn publish(
    http: &reqwest::Client,
    node: &Node,
    partner_id: &str,
    ids: &[String],
) -> (u16, Value, Option<String>) {
    let request = http
        .post(node.url("/admin/v1/events/batch"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&batch(partner_id, ids));
    send_for_retry(request).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_disk_full_refuses_with_503_and_recovers_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let Some(volume) = Tmpfs::mount(&dir.path().join("volume"), "2m") else {
        println!("skipped: mounting a tmpfs needs root");
        return;
    };
    let rx = TestReceiver::start().await;
    let http = http_client();
    let database_url = format!("sqlite://{}", volume.path.join("hookline.db").display());
    let env = node_env(&[
        ("HOOKLINE_DATABASE_URL", database_url.as_str()),
        ("HOOKLINE_RETRY_SCHEDULE", "200ms,200ms,200ms,200ms,200ms"),
        ("HOOKLINE_RETRY_JITTER", "0"),
        ("HOOKLINE_DELIVERY_TIMEOUT", "1s"),
        ("HOOKLINE_CONNECT_TIMEOUT", "1s"),
        ("HOOKLINE_LOG", "info"),
    ]);
    let mut node = Node::start(&env, &dir.path().join("node.log")).await;
    let tenant = set_up_tenant(&http, &node.base, "diskfull", &rx.url("/sink")).await;

    // Fill the volume through the API: every answer is a 202 or a retryable 503.
    let mut accepted: HashSet<String> = HashSet::new();
    let mut refused = None;
    for n in 0..1000 {
        let ids: Vec<String> = (0..10).map(|i| format!("full-{n}-{i}")).collect();
        let (s, v, retry_after) = publish(&http, &node, &tenant.partner_id, &ids).await;
        match s {
            202 => accepted.extend(ids),
            _ => {
                assert_error(s, &v, 503, 4004);
                refused = Some((ids, retry_after.expect("a 503 carries Retry-After")));
                break;
            }
        }
    }
    let (refused_ids, retry_after) = refused.expect("2 MiB never filled up");
    assert!(retry_after.parse::<u64>().unwrap() > 0, "{retry_after}");
    let body = wait_readyz(&http, &node.base, 503, Duration::from_secs(10)).await;
    assert_error(503, &body, 503, 4004);

    // The operator grows the volume: the same process recovers by itself.
    volume.resize("64m");
    wait_readyz(&http, &node.base, 200, Duration::from_secs(15)).await;
    for n in 0..3 {
        let ids: Vec<String> = (0..10).map(|i| format!("after-{n}-{i}")).collect();
        let (s, v, _) = publish(&http, &node, &tenant.partner_id, &ids).await;
        assert_eq!(s, 202, "{v}");
        accepted.extend(ids);
    }
    let counts = await_every_event(&rx, &accepted, Duration::from_secs(60)).await;
    for id in &refused_ids {
        assert!(
            !counts.contains_key(id),
            "{id} was refused with 503 and delivered"
        );
    }
    assert!(
        node.child.try_wait().unwrap().is_none(),
        "the process exited"
    );
    println!(
        "disk full: {} events accepted before and after, all delivered; refused with Retry-After {retry_after}; {} duplicate deliveries",
        accepted.len(),
        duplicates(&counts, &accepted)
    );
    node.kill().await;
}
