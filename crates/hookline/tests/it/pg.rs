//! PostgreSQL for the tests. Every PostgreSQL test gets a database of its own on one shared
//! server: the one `HOOKLINE_TEST_PG_URL` names, or else a cluster this test process starts on
//! first use and shares with all its tests. Tests that stop their server start a [`PgCluster`] of
//! their own, so the others never see it go.
//!
//! A cluster started here never outlives the test process, however it ends: statics are not
//! dropped at exit, so a watchdog child (see [`spawn_watchdog`]) stops it instead. This module
//! never stops or changes a server it did not start.

#![allow(dead_code)]

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;

const NEEDS: &str = "the PostgreSQL tests start a PostgreSQL of their own: install the server \
    package (Debian: `postgresql`, for initdb and pg_ctl under /usr/lib/postgresql/*/bin; \
    elsewhere on PATH); as root they also need `runuser` and a `postgres` OS user. Or set \
    HOOKLINE_TEST_PG_URL to a server with trust auth";

/// The server for PostgreSQL tests, as an admin URL; each test creates a database of its own
/// there ([`PgDatabase`]). Starts this process's cluster on first use unless
/// `HOOKLINE_TEST_PG_URL` is set.
pub fn pg_admin_url() -> String {
    if let Ok(url) = std::env::var("HOOKLINE_TEST_PG_URL") {
        return url;
    }
    // A failed start is kept, so each test fails at once with its reason instead of retrying.
    static SHARED: OnceLock<Result<PgCluster, String>> = OnceLock::new();
    match SHARED.get_or_init(PgCluster::start_shared) {
        Ok(cluster) => cluster.url(),
        Err(e) => panic!("{e}"),
    }
}

/// A fresh PostgreSQL database; dropped (forcibly) when the guard goes.
pub struct PgDatabase {
    pub name: String,
    pub url: String,
}

impl PgDatabase {
    pub async fn create() -> PgDatabase {
        use sqlx::Executor;
        let name = format!("hl_test_{}", uuid::Uuid::new_v4().simple());
        // The first call may start the shared cluster (initdb, a second or two): off the runtime.
        let admin = tokio::task::spawn_blocking(pg_admin_url).await.unwrap();
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("connecting to the test PostgreSQL at {admin}: {e}"));
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap();
        let base = admin.rsplit_once('/').unwrap().0;
        PgDatabase {
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop may run inside a runtime; a thread of its own can block on one.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                use sqlx::Executor;
                if let Ok(mut c) =
                    <sqlx::PgConnection as sqlx::Connection>::connect(&pg_admin_url()).await
                {
                    let _ = c
                        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                        .await;
                }
            });
        })
        .join();
    }
}

/// A small pool on `url`, for a test to read what the nodes wrote.
pub async fn pg_pool(url: &str) -> sqlx::PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(url)
        .await
        .unwrap()
}

/// A PostgreSQL cluster of this process's own: initdb in a temporary directory, trust auth, a
/// free loopback port, its socket in that directory. Stopped and removed when dropped, or by
/// its watchdog when this process ends without dropping it.
pub struct PgCluster {
    server: Server,
    /// The watchdog's stdin: it acts when this closes (on drop, or when the process ends).
    watchdog_stdin: Option<ChildStdin>,
    watchdog: Child,
}

/// What running `pg_ctl` needs; cloned into blocking tasks.
#[derive(Clone)]
struct Server {
    bin: PathBuf,
    dir: PathBuf,
    data: PathBuf,
    port: u16,
    /// Root cannot run PostgreSQL: the binaries then run as the `postgres` OS user.
    as_postgres: bool,
    /// `-c name=value` settings for this cluster.
    settings: Vec<String>,
}

impl PgCluster {
    /// A new, initialised, not yet started cluster; fails the test with what is missing.
    pub fn init() -> PgCluster {
        Self::try_init(Vec::new()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_init(settings: Vec<String>) -> Result<PgCluster, String> {
        let bin = server_bin()?;
        let as_postgres = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        let dir = tempfile::Builder::new()
            .prefix("hl-pg-")
            .tempdir()
            .map_err(|e| format!("creating a temporary directory: {e}"))?
            // From here on the watchdog removes it, however this process ends.
            .keep();
        let server = Server {
            data: dir.join("data"),
            bin,
            dir,
            port: super::process::free_port(),
            as_postgres,
            settings,
        };
        let (watchdog, stdin) = spawn_watchdog(&server)?;
        let cluster = PgCluster {
            server,
            watchdog_stdin: Some(stdin),
            watchdog,
        };
        cluster.server.initdb()?;
        Ok(cluster)
    }

    /// The cluster all PostgreSQL tests of this process share, started. `fsync=off`: these
    /// tests stop no server, and a crash of the machine loses only a test run, while every
    /// test creates a database (a copy of template1, fsynced file by file otherwise).
    fn start_shared() -> Result<PgCluster, String> {
        let mut cluster = Self::try_init(vec!["fsync=off".into(), "max_connections=200".into()])?;
        // The free port may be taken before the server binds it: try another.
        let mut tries = 0;
        loop {
            match cluster.server.start() {
                Ok(()) => return Ok(cluster),
                Err(e) if tries >= 2 => return Err(e),
                Err(_) => {
                    tries += 1;
                    cluster.server.port = super::process::free_port();
                }
            }
        }
    }

    pub fn port(&self) -> u16 {
        self.server.port
    }

    pub fn url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres",
            self.server.port
        )
    }

    /// Starts the server and waits until it accepts connections.
    pub async fn start(&self) {
        let server = self.server.clone();
        tokio::task::spawn_blocking(move || server.start())
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Stops the server at once: every backend is killed, no checkpoint (recovery on next start).
    pub async fn stop_immediate(&self) {
        let server = self.server.clone();
        tokio::task::spawn_blocking(move || server.pg_ctl(&["-m", "immediate", "-w", "stop"]))
            .await
            .unwrap()
            .unwrap();
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // Closing its stdin is the watchdog's signal; waiting for it means the server is gone.
        drop(self.watchdog_stdin.take());
        let _ = self.watchdog.wait();
    }
}

/// A child that waits for EOF on its stdin, which it gets when the [`PgCluster`] is dropped or
/// when this process ends in any way (the kernel closes the pipe even on SIGKILL), then stops
/// the server and removes its directory. It ignores the terminal's signals, so a ctrl-c that
/// ends the test run does not end it first. Std opens the pipe close-on-exec, so no other child
/// (hookline nodes, PostgreSQL itself) holds it open.
fn spawn_watchdog(server: &Server) -> Result<(Child, ChildStdin), String> {
    let as_postgres = if server.as_postgres {
        "runuser -u postgres -- "
    } else {
        ""
    };
    let script = format!(
        "trap '' HUP INT TERM QUIT; read -r _ || true; \
         {as_postgres}\"$1\" -D \"$2\" -m immediate -w stop >/dev/null 2>&1; rm -rf \"$3\""
    );
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("hookline-test-pg-watchdog")
        .arg(server.bin.join("pg_ctl"))
        .arg(&server.data)
        .arg(&server.dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("spawning the PostgreSQL watchdog (sh): {e}"))?;
    let stdin = child.stdin.take().expect("piped stdin");
    Ok((child, stdin))
}

impl Server {
    fn initdb(&self) -> Result<(), String> {
        if self.as_postgres {
            let status = Command::new("chown")
                .arg("postgres:postgres")
                .arg(&self.dir)
                .status()
                .map_err(|e| format!("chown: {e}; {NEEDS}"))?;
            if !status.success() {
                return Err(format!(
                    "chown postgres {} failed; {NEEDS}",
                    self.dir.display()
                ));
            }
        }
        let data = self.data.to_str().unwrap();
        self.run(
            "initdb",
            &[
                "-D",
                data,
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        )
        .map_err(|e| format!("initdb failed: {e}\n{NEEDS}"))
    }

    /// `pg_ctl start -w`: returns once the server accepts connections.
    fn start(&self) -> Result<(), String> {
        let mut opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.display()
        );
        for setting in &self.settings {
            opts.push_str(" -c ");
            opts.push_str(setting);
        }
        let log = self.dir.join("postgres.log");
        self.pg_ctl(&["-o", &opts, "-l", log.to_str().unwrap(), "-w", "start"])
            .map_err(|e| {
                format!(
                    "starting PostgreSQL: {e}\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            })
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<(), String> {
        let mut all = vec!["-D", self.data.to_str().unwrap()];
        all.extend_from_slice(args);
        self.run("pg_ctl", &all)
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<(), String> {
        let path = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(&path);
            cmd
        } else {
            Command::new(&path)
        };
        let out = cmd
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running {}: {e}", path.display()))?;
        if out.status.success() {
            return Ok(());
        }
        Err(format!(
            "{} {args:?} failed ({}): {}{}",
            path.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The newest server under /usr/lib/postgresql/<major>/bin (Debian's layout), else the first
/// directory on PATH that has both initdb and pg_ctl.
fn server_bin() -> Result<PathBuf, String> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    let debian = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let major: u32 = entry.file_name().to_str()?.parse().ok()?;
            Some((major, entry.path().join("bin")))
        })
        .filter(|(_, bin)| has_both(bin))
        .max()
        .map(|(_, bin)| bin);
    debian
        .or_else(|| {
            let path = std::env::var_os("PATH")?;
            std::env::split_paths(&path).find(|dir| has_both(dir))
        })
        .ok_or_else(|| format!("no PostgreSQL server binaries (initdb, pg_ctl) found: {NEEDS}"))
}
