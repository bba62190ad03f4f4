//! The tools around the server: the verifier crate against independent implementations, the
//! client crate and the CLI over real HTTP, and `hookline listen` end to end.
//!
//! Helpers: [`cli`] runs the real `hookline` binary against a test server; [`PlainReceiver`]
//! is a plain-HTTP local receiver (what `--forward-to` points at on a developer's machine).

mod cli;
mod cli_edges;
mod client;
mod listen;
mod listen_lifetime;
mod verify_cross;

use axum::body::Bytes;
use axum::http::HeaderMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

use crate::common::{TestApp, ADMIN_TOKEN};

/// What the CLI printed and how it ended.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// A `hookline` command with the environment of a test: the server's URL, no profile file of
/// the user's, no colours. Credentials are the caller's to add.
pub fn command(app: &TestApp) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookline"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOOKLINE_URL", &app.base)
        .env(
            "HOOKLINE_CLI_CONFIG",
            app.dir.path().join("no-such-config.toml"),
        )
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// Runs `hookline <args>` with the admin token and, if given, a partner API key.
pub async fn cli(app: &TestApp, key: Option<&str>, args: &[&str]) -> Run {
    let mut cmd = command(app);
    cmd.env("HOOKLINE_ADMIN_TOKEN", ADMIN_TOKEN).args(args);
    if let Some(k) = key {
        cmd.env("HOOKLINE_API_KEY", k);
    }
    let out = cmd.output().await.unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// One request a [`PlainReceiver`] got.
#[derive(Clone, Debug)]
pub struct Got {
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A plain-HTTP receiver on 127.0.0.1 that answers every POST with `status`.
pub struct PlainReceiver {
    pub url: String,
    got: Arc<Mutex<Vec<Got>>>,
    arrived: Arc<Notify>,
}

impl PlainReceiver {
    pub async fn start(status: u16) -> PlainReceiver {
        let got: Arc<Mutex<Vec<Got>>> = Arc::default();
        let arrived = Arc::new(Notify::new());
        let (g, a) = (got.clone(), arrived.clone());
        let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
            let (g, a) = (g.clone(), a.clone());
            async move {
                g.lock().unwrap().push(Got { headers, body });
                a.notify_waiters();
                axum::http::StatusCode::from_u16(status).unwrap()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        PlainReceiver { url, got, arrived }
    }

    /// Waits until `n` requests have arrived; returns them all.
    pub async fn wait_for(&self, n: usize) -> Vec<Got> {
        let deadline = tokio::time::Instant::now() + crate::common::WAIT;
        loop {
            let notified = self.arrived.notified();
            tokio::pin!(notified);
            // Registered before the check, so an arrival between the two is not missed.
            notified.as_mut().enable();
            {
                let got = self.got.lock().unwrap();
                if got.len() >= n {
                    return got.clone();
                }
            }
            assert!(
                tokio::time::timeout_at(deadline, notified).await.is_ok(),
                "timed out waiting for {n} forwarded requests"
            );
        }
    }
}
