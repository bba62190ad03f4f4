//! The real `hookline` binary as a child OS process: spawn it with a set of environment
//! variables on a free loopback port, wait for `/readyz`, kill it.

#![allow(dead_code)]

use super::common::{eventually, ADMIN_TOKEN};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// A port that was free a moment ago (bound to 127.0.0.1:0, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The variables every test node shares: the test admin token, loopback allowed for deliveries,
/// the test CA trusted, and debug logs.
pub fn base_env() -> Vec<(&'static str, String)> {
    vec![
        ("HOOKLINE_ADMIN_TOKEN", ADMIN_TOKEN.to_owned()),
        ("HOOKLINE_SSRF_ALLOW", "127.0.0.0/8".to_owned()),
        (
            "HOOKLINE_EXTRA_ROOT_CERTS",
            super::receiver::ca_pem_path().display().to_string(),
        ),
        ("HOOKLINE_LOG", "debug".to_owned()),
    ]
}

/// One running `hookline serve` process. Killed (SIGKILL) when dropped.
pub struct Node {
    pub child: tokio::process::Child,
    pub port: u16,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Where its stderr (the logs) goes.
    pub log: PathBuf,
}

impl Node {
    /// Spawns `hookline serve` on `port` with exactly `env` (plus `HOOKLINE_LISTEN`); stderr goes
    /// to `log`. Does not wait for readiness: see [`Node::wait_ready`] and [`Node::start`].
    pub fn spawn(port: u16, env: &[(&str, String)], log: &Path) -> Node {
        let file = std::fs::File::create(log).unwrap();
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookline"));
        cmd.arg("serve")
            .env("HOOKLINE_LISTEN", format!("127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Node {
            child: cmd.spawn().expect("spawning the hookline binary"),
            port,
            base: format!("http://127.0.0.1:{port}"),
            log: log.to_owned(),
        }
    }

    /// Spawns on a free port and waits until `/readyz` answers 200.
    pub async fn start(env: &[(&str, String)], log: &Path) -> Node {
        let mut node = Node::spawn(free_port(), env, log);
        node.wait_ready().await;
        node
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Waits (20 s at most) until `/readyz` answers 200; fails at once, with the log, if the
    /// process exits first.
    pub async fn wait_ready(&mut self) {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "hookline on port {} exited with {status} before it was ready; log:\n{}",
                    self.port,
                    self.log_text()
                );
            }
            if let Ok(r) = http.get(self.url("/readyz")).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "hookline on port {} did not become ready; log:\n{}",
                self.port,
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// SIGKILL, and reap the process.
    pub async fn kill(&mut self) {
        self.child.kill().await.unwrap();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Waits until `GET {base}/readyz` answers `status` (e.g. 503 while the store is down); returns
/// that answer's body.
pub async fn wait_readyz(
    http: &reqwest::Client,
    base: &str,
    status: u16,
    timeout: Duration,
) -> serde_json::Value {
    eventually(
        &format!("{base}/readyz to answer {status}"),
        timeout,
        || async move {
            let r = http.get(format!("{base}/readyz")).send().await.ok()?;
            if r.status() != status {
                return None;
            }
            Some(r.json().await.unwrap_or_default())
        },
    )
    .await
}
