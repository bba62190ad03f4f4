//! Disk full under SQLite, for real: the real binary with its database on a small tmpfs. Publishes
//! are accepted until the filesystem is full, then refused with 503 code 4004 and `Retry-After`
//! (never a 202 for what was not stored, never a 500), `/readyz` turns 503; once the volume is
//! grown (`mount -o remount,size=…`), the same process is ready again by itself, takes new
//! publishes, and delivers every event it ever accepted.
//!
//! The same under PostgreSQL: the test database in a tablespace on a small tmpfs (WAL stays on
//! the cluster's own disk, as a full data volume usually finds it).
//!
//! Mounting needs root (CAP_SYS_ADMIN), as CI has; elsewhere the tests say so and pass
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
        Self::mount_with(path, &format!("size={size}"))
    }

    fn mount_with(path: &Path, options: &str) -> Option<Tmpfs> {
        if id(&["-u"]).as_deref() != Some("0") {
            return None;
        }
        std::fs::create_dir_all(path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
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

/// `id ARGS` (e.g. the uid of a user), if it succeeds.
fn id(args: &[&str]) -> Option<String> {
    let out = Command::new("id").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
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

/// Bytes in use on the filesystem at `path` (`df`).
fn used_bytes(path: &Path) -> u64 {
    let out = Command::new("df")
        .args(["--output=used", "-B1"])
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().nth(1).unwrap().trim().parse().unwrap()
}

/// Twenty events of 4 KiB of random hex each: PostgreSQL cannot compress them away.
fn incompressible_batch(partner_id: &str, ids: &[String]) -> Value {
    let events: Vec<Value> = ids
        .iter()
        .map(|id| {
            let noise: String = (0..128)
                .map(|_| uuid::Uuid::new_v4().simple().to_string())
                .collect();
            json!({"partner_id": partner_id, "event_type": "message.received",
                   "event_id": id, "data": {"id": id, "noise": noise}})
        })
        .collect();
    json!({ "events": events })
}

async fn admin_execute(sql: &str) {
    use sqlx::Executor;
    let admin = tokio::task::spawn_blocking(super::pg::pg_admin_url)
        .await
        .unwrap();
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
        .await
        .unwrap();
    conn.execute(sql).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_disk_full_refuses_with_503_and_recovers_without_restart() {
    if std::env::var_os("HOOKLINE_TEST_PG_URL").is_some() {
        println!("skipped: the tablespace must be on the PostgreSQL server's own machine");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The suite's cluster runs as the `postgres` user when the tests run as root.
    let Some(owner) = id(&["-u", "postgres"]) else {
        println!("skipped: no postgres user");
        return;
    };
    let group = id(&["-g", "postgres"]).unwrap();
    let Some(volume) = Tmpfs::mount_with(
        &dir.path().join("tablespace"),
        &format!("size=64m,uid={owner},gid={group},mode=0700"),
    ) else {
        println!("skipped: mounting a tmpfs needs root");
        return;
    };
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let (space, db) = (
        format!("hl_full_{suffix}"),
        format!("hl_test_full_{suffix}"),
    );
    admin_execute(&format!(
        "CREATE TABLESPACE {space} LOCATION '{}'",
        volume.path.display()
    ))
    .await;
    admin_execute(&format!("CREATE DATABASE {db} TABLESPACE {space}")).await;
    let admin = tokio::task::spawn_blocking(super::pg::pg_admin_url)
        .await
        .unwrap();
    let database_url = format!("{}/{db}", admin.rsplit_once('/').unwrap().0);

    let rx = TestReceiver::start().await;
    let http = http_client();
    let env = node_env(&[
        ("HOOKLINE_DATABASE_URL", database_url.as_str()),
        ("HOOKLINE_RETRY_SCHEDULE", "200ms,200ms,200ms,200ms,200ms"),
        ("HOOKLINE_RETRY_JITTER", "0"),
        ("HOOKLINE_DELIVERY_TIMEOUT", "1s"),
        ("HOOKLINE_CONNECT_TIMEOUT", "1s"),
        ("HOOKLINE_LOG", "info"),
    ]);
    let mut node = Node::start(&env, &dir.path().join("node.log")).await;
    let tenant = set_up_tenant(&http, &node.base, "pgfull", &rx.url("/sink")).await;
    // Migrated and set up: leave about 3 MiB free.
    let used = used_bytes(&volume.path);
    volume.resize(&format!("{}k", used / 1024 + 3 * 1024));

    let mut accepted: HashSet<String> = HashSet::new();
    let mut refused = None;
    for n in 0..1000 {
        let ids: Vec<String> = (0..20).map(|i| format!("pgfull-{n}-{i}")).collect();
        let request = http
            .post(node.url("/admin/v1/events/batch"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&incompressible_batch(&tenant.partner_id, &ids));
        let (s, v, retry_after) = send_for_retry(request).await;
        match s {
            202 => accepted.extend(ids),
            _ => {
                assert_error(s, &v, 503, 4004);
                refused = Some((ids, retry_after.expect("a 503 carries Retry-After")));
                break;
            }
        }
    }
    let (refused_ids, retry_after) = refused.expect("the tablespace never filled up");
    let body = wait_readyz(&http, &node.base, 503, Duration::from_secs(10)).await;
    assert_error(503, &body, 503, 4004);

    // The operator grows the volume: the same process is ready and takes publishes again by
    // itself.
    volume.resize("256m");
    wait_readyz(&http, &node.base, 200, Duration::from_secs(15)).await;
    let ids: Vec<String> = (0..20).map(|i| format!("pgafter-{i}")).collect();
    let recovered = std::time::Instant::now();
    eventually(
        "a publish accepted after the volume grew",
        Duration::from_secs(15),
        || {
            let request = http
                .post(node.url("/admin/v1/events/batch"))
                .bearer_auth(ADMIN_TOKEN)
                .json(&incompressible_batch(&tenant.partner_id, &ids));
            async move { (send_for_retry(request).await.0 == 202).then_some(()) }
        },
    )
    .await;
    accepted.extend(ids);
    let counts = await_every_event(&rx, &accepted, Duration::from_secs(90)).await;
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
        "PostgreSQL disk full: {} events accepted before and after, all delivered; refused with \
         Retry-After {retry_after}; /readyz 503 while full; accepting again {:?} after the \
         volume grew; {} duplicate deliveries",
        accepted.len(),
        recovered.elapsed(),
        duplicates(&counts, &accepted)
    );
    node.kill().await;
    admin_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).await;
    admin_execute(&format!("DROP TABLESPACE IF EXISTS {space}")).await;
}
