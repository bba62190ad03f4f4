//! The hookline child process: start, wait for readiness, sample `/proc`, stop.

use anyhow::{bail, Context};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

pub struct Spec<'a> {
    pub bin: &'a Path,
    pub database_url: &'a str,
    pub admin_token: &'a str,
    /// `api`, `worker` or `all`.
    pub role: &'a str,
    pub log_path: PathBuf,
    /// More `HOOKLINE_*` settings (retention, for the soak).
    pub extra_env: Vec<(&'static str, String)>,
}

pub struct Server {
    child: Child,
    pub pid: u32,
    pub base_url: String,
    pub log_path: PathBuf,
}

/// Resident memory and CPU time of a process, from `/proc/<pid>/{status,stat}`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcStats {
    pub rss_kb: u64,
    pub hwm_kb: u64,
    pub cpu_s: f64,
}

/// A free loopback port (bound, read, released; a small race we accept).
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub async fn start(spec: &Spec<'_>) -> anyhow::Result<Server> {
    let port = free_port()?;
    let log = File::options()
        .create(true)
        .append(true)
        .open(&spec.log_path)
        .with_context(|| format!("opening {}", spec.log_path.display()))?;
    let mut cmd = Command::new(spec.bin);
    cmd.arg("serve");
    // Only what we set below: no stray HOOKLINE_* from the caller's environment.
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("HOOKLINE_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("HOOKLINE_LISTEN", format!("127.0.0.1:{port}"))
        .env("HOOKLINE_DATABASE_URL", spec.database_url)
        .env("HOOKLINE_ADMIN_TOKEN", spec.admin_token)
        .env("HOOKLINE_ALLOW_HTTP_TARGETS", "true")
        .env("HOOKLINE_SSRF_ALLOW", "127.0.0.0/8")
        .env("HOOKLINE_ROLE", spec.role)
        .env("HOOKLINE_LOG", "warn")
        .env("NO_COLOR", "1")
        .envs(spec.extra_env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", spec.bin.display()))?;
    let pid = child.id().context("child has no pid")?;
    let base_url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait()? {
            bail!(
                "hookline exited during start-up ({status}); log tail:\n{}",
                log_tail(&spec.log_path, 20)
            );
        }
        if let Ok(r) = client.get(format!("{base_url}/readyz")).send().await {
            if r.status().is_success() {
                break;
            }
        }
        if Instant::now() > deadline {
            bail!(
                "hookline not ready after 60 s; log tail:\n{}",
                log_tail(&spec.log_path, 20)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(Server {
        child,
        pid,
        base_url,
        log_path: spec.log_path.clone(),
    })
}

impl Server {
    /// `Some(status)` when the process has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub fn stats(&self) -> ProcStats {
        proc_stats(self.pid).unwrap_or_default()
    }

    /// SIGTERM, then SIGKILL after 10 s.
    pub async fn stop(mut self) {
        if self.exited().is_some() {
            return;
        }
        // SAFETY: plain kill(2) on our own child's pid, which has not been reaped yet.
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
        }
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

pub fn proc_stats(pid: u32) -> anyhow::Result<ProcStats> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after "(comm)": state is field 3, utime 14 and stime 15 (1-based).
    let after = &stat[stat.rfind(')').context("malformed stat")? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Ok(ProcStats {
        rss_kb: kb("VmRSS:"),
        hwm_kb: kb("VmHWM:"),
        cpu_s: ticks as f64 / hz,
    })
}

/// CPU seconds used so far by every PostgreSQL server process on this machine (`comm` is
/// `postgres`). Meaningful for a local database that nothing else is using; a backend that exits
/// between two samples takes its CPU time with it.
pub fn postgres_cpu_s() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "postgres")
        })
        .filter_map(|pid| proc_stats(pid).ok())
        .map(|s| s.cpu_s)
        .sum()
}

/// Bytes on disk of a SQLite store (file + `-wal` + `-shm`); `None` for PostgreSQL.
pub fn store_size(database_url: &str) -> Option<u64> {
    let path = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))?;
    let path = path.split('?').next().unwrap_or(path);
    Some(
        ["", "-wal", "-shm"]
            .iter()
            .filter_map(|suffix| std::fs::metadata(format!("{path}{suffix}")).ok())
            .map(|m| m.len())
            .sum(),
    )
}

pub fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Lines of the log at WARN and ERROR level.
pub fn log_counts(path: &Path) -> (u64, u64) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let warn = text.lines().filter(|l| l.contains("WARN")).count() as u64;
    let error = text.lines().filter(|l| l.contains("ERROR")).count() as u64;
    (warn, error)
}
