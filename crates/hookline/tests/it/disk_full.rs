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
        assert!(self.try_resize(size), "remounting the tmpfs failed");
    }

    fn try_resize(&self, size: &str) -> bool {
        Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.path)
            .status()
            .unwrap()
            .success()
    }

    /// Shrinks the volume to what is used now plus `headroom_kib`. Retried: the server may
    /// write between the measure and the remount, and tmpfs refuses a size below its use (a CI
    /// run under load saw that once).
    fn shrink_to_headroom(&self, headroom_kib: u64) {
        for _ in 0..5 {
            let used = used_bytes(&self.path);
            if self.try_resize(&format!("{}k", used / 1024 + headroom_kib)) {
                return;
            }
        }
        panic!("shrinking the tmpfs to its use plus {headroom_kib} KiB failed five times");
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

/// A node on `database_url` that retries quickly: what the disk-full tests run.
fn disk_env(database_url: &str) -> Vec<(&'static str, String)> {
    node_env(&[
        ("HOOKLINE_DATABASE_URL", database_url),
        ("HOOKLINE_RETRY_SCHEDULE", "200ms,200ms,200ms,200ms,200ms"),
        ("HOOKLINE_RETRY_JITTER", "0"),
        ("HOOKLINE_DELIVERY_TIMEOUT", "1s"),
        ("HOOKLINE_CONNECT_TIMEOUT", "1s"),
        ("HOOKLINE_LOG", "info"),
    ])
}

/// Publishes one batch of `size` events named `{prefix}-{n}-{i}`; (ids, status, body, Retry-After).
async fn publish_batch(
    http: &reqwest::Client,
    node: &Node,
    body: fn(&str, &[String]) -> Value,
    partner_id: &str,
    name: (&str, usize),
    size: usize,
) -> (Vec<String>, u16, Value, Option<String>) {
    let (prefix, n) = name;
    let ids: Vec<String> = (0..size).map(|i| format!("{prefix}-{n}-{i}")).collect();
    let request = http
        .post(node.url("/admin/v1/events/batch"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body(partner_id, &ids));
    let (s, v, retry_after) = send_for_retry(request).await;
    (ids, s, v, retry_after)
}

/// What filling a volume through the API came to.
struct Filled {
    accepted: HashSet<String>,
    refused: Vec<String>,
    retry_after: String,
}

/// Publishes batches until the store refuses one: every answer is a 202 or a retryable
/// 503/4004 with `Retry-After`, never anything else.
async fn fill_until_refused(
    http: &reqwest::Client,
    node: &Node,
    body: fn(&str, &[String]) -> Value,
    partner_id: &str,
    size: usize,
) -> Filled {
    let mut accepted: HashSet<String> = HashSet::new();
    for n in 0..1000 {
        let (ids, s, v, retry_after) =
            publish_batch(http, node, body, partner_id, ("full", n), size).await;
        if s == 202 {
            accepted.extend(ids);
            continue;
        }
        assert_error(s, &v, 503, 4004);
        let retry_after = retry_after.expect("a 503 carries Retry-After");
        assert!(retry_after.parse::<u64>().unwrap() > 0, "{retry_after}");
        return Filled {
            accepted,
            refused: ids,
            retry_after,
        };
    }
    panic!("the volume never filled up");
}

/// Every accepted event arrives, none of the refused ones does, and the process is still up.
async fn assert_nothing_lost(rx: &TestReceiver, node: &mut Node, filled: &Filled) -> usize {
    let counts = await_every_event(rx, &filled.accepted, Duration::from_secs(90)).await;
    for id in &filled.refused {
        assert!(
            !counts.contains_key(id),
            "{id} was refused with 503 and delivered"
        );
    }
    assert!(
        node.child.try_wait().unwrap().is_none(),
        "the process exited"
    );
    duplicates(&counts, &filled.accepted)
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
    let mut node = Node::start(&disk_env(&database_url), &dir.path().join("node.log")).await;
    let tenant = set_up_tenant(&http, &node.base, "diskfull", &rx.url("/sink")).await;

    // Fill the volume through the API: every answer is a 202 or a retryable 503.
    let mut filled = fill_until_refused(&http, &node, batch, &tenant.partner_id, 10).await;
    let body = wait_readyz(&http, &node.base, 503, Duration::from_secs(10)).await;
    assert_error(503, &body, 503, 4004);

    // The operator grows the volume: the same process recovers by itself.
    volume.resize("64m");
    wait_readyz(&http, &node.base, 200, Duration::from_secs(15)).await;
    for n in 0..3 {
        let (ids, s, v, _) =
            publish_batch(&http, &node, batch, &tenant.partner_id, ("after", n), 10).await;
        assert_eq!(s, 202, "{v}");
        filled.accepted.extend(ids);
    }
    let duplicates = assert_nothing_lost(&rx, &mut node, &filled).await;
    println!(
        "disk full: {} events accepted before and after, all delivered; refused with Retry-After {}; {duplicates} duplicate deliveries",
        filled.accepted.len(),
        filled.retry_after,
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

/// A database of the suite's PostgreSQL whose tablespace is a tmpfs this test mounted.
struct SmallDatabase {
    volume: Tmpfs,
    space: String,
    name: String,
    url: String,
}

impl SmallDatabase {
    /// `None` (with the reason printed) where the test cannot mount or reach the server's disk.
    async fn create(dir: &Path) -> Option<SmallDatabase> {
        if std::env::var_os("HOOKLINE_TEST_PG_URL").is_some() {
            println!("skipped: the tablespace must be on the PostgreSQL server's own machine");
            return None;
        }
        // The suite's cluster runs as the `postgres` user when the tests run as root.
        let Some(owner) = id(&["-u", "postgres"]) else {
            println!("skipped: no postgres user");
            return None;
        };
        let group = id(&["-g", "postgres"]).unwrap();
        let options = format!("size=64m,uid={owner},gid={group},mode=0700");
        let Some(volume) = Tmpfs::mount_with(&dir.join("tablespace"), &options) else {
            println!("skipped: mounting a tmpfs needs root");
            return None;
        };
        let traversable = std::os::unix::fs::PermissionsExt::from_mode(0o755);
        std::fs::set_permissions(dir, traversable).unwrap();
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let (space, name) = (
            format!("hl_full_{suffix}"),
            format!("hl_test_full_{suffix}"),
        );
        let location = volume.path.display();
        admin_execute(&format!("CREATE TABLESPACE {space} LOCATION '{location}'")).await;
        admin_execute(&format!("CREATE DATABASE {name} TABLESPACE {space}")).await;
        let admin = tokio::task::spawn_blocking(super::pg::pg_admin_url)
            .await
            .unwrap();
        let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
        Some(SmallDatabase {
            volume,
            space,
            name,
            url,
        })
    }

    async fn drop_all(self) {
        admin_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .await;
        admin_execute(&format!("DROP TABLESPACE IF EXISTS {}", self.space)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_disk_full_refuses_with_503_and_recovers_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let Some(db) = SmallDatabase::create(dir.path()).await else {
        return;
    };
    let rx = TestReceiver::start().await;
    let http = http_client();
    let mut node = Node::start(&disk_env(&db.url), &dir.path().join("node.log")).await;
    let tenant = set_up_tenant(&http, &node.base, "pgfull", &rx.url("/sink")).await;
    // Migrated and set up: leave about 3 MiB free.
    db.volume.shrink_to_headroom(3 * 1024);

    let partner = tenant.partner_id.as_str();
    let mut filled = fill_until_refused(&http, &node, incompressible_batch, partner, 20).await;
    let body = wait_readyz(&http, &node.base, 503, Duration::from_secs(10)).await;
    assert_error(503, &body, 503, 4004);

    // The operator grows the volume: the same process is ready and takes publishes again by
    // itself.
    db.volume.resize("256m");
    let grown = std::time::Instant::now();
    wait_readyz(&http, &node.base, 200, Duration::from_secs(15)).await;
    let ready_in = grown.elapsed();
    let (ids, s, v, _) = publish_batch(
        &http,
        &node,
        incompressible_batch,
        partner,
        ("after", 0),
        20,
    )
    .await;
    assert_eq!(s, 202, "{v}");
    filled.accepted.extend(ids);
    let duplicates = assert_nothing_lost(&rx, &mut node, &filled).await;
    println!(
        "PostgreSQL disk full: {} events accepted before and after, all delivered; refused with \
         Retry-After {}; /readyz 503 while full, 200 again {ready_in:?} after the volume grew; \
         {duplicates} duplicate deliveries",
        filled.accepted.len(),
        filled.retry_after,
    );
    node.kill().await;
    db.drop_all().await;
}
