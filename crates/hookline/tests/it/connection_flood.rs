//! 20,000 connections that each send half a request line and then wait, against the real
//! binary with a connection cap: the process keeps at most `HOOKLINE_MAX_CONNECTIONS` of them
//! (the oldest idle ones make room), and meanwhile answers everyone else — `/healthz` and a
//! publish — at once. (Once, such connections exhausted the file descriptors and `/healthz`
//! timed out for everybody.)
//!
//! This process may hold fewer descriptors than that (CI's hard limit is 20,000), so a
//! connection the server closed is released here as soon as its end is seen.

use super::common::*;
use super::process::*;
use serde_json::json;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::sync::Semaphore;

const CONNECTIONS: usize = 20_000;
const CAP: usize = 2_000;

fn raise_own_file_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let Rlimit { maximum, .. } = getrlimit(Resource::Nofile);
    let _ = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: maximum,
            maximum,
        },
    );
}

/// Open descriptors of process `pid` (Linux).
fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

#[derive(Default)]
struct Tally {
    opened: AtomicUsize,
    closed_by_server: AtomicUsize,
}

/// Connects from one of several loopback source addresses (so 20,000 connections do not use
/// up one address's ephemeral ports), sends half a request line and waits for the server to
/// close the connection, or for the test to end.
async fn idle_client(port: u16, n: usize, tally: Arc<Tally>, hold: Arc<Semaphore>) {
    let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (n % 8) as u8));
    let socket = TcpSocket::new_v4().unwrap();
    if socket.bind(SocketAddr::new(source, 0)).is_err() {
        return;
    }
    let Ok(mut stream) = socket
        .connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
    else {
        return;
    };
    tally.opened.fetch_add(1, Ordering::Relaxed);
    let _ = stream.write_all(b"GET /healthz HTT").await;
    let mut buf = [0u8; 64];
    tokio::select! {
        _ = stream.read(&mut buf) => { tally.closed_by_server.fetch_add(1, Ordering::Relaxed); }
        _ = hold.acquire() => {}
    }
}

/// Starts [`CONNECTIONS`] idle clients, at most 256 connecting at a time; returns once the
/// last has started connecting.
async fn open_idle_connections(
    port: u16,
    tally: &Arc<Tally>,
    hold: &Arc<Semaphore>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let connecting = Arc::new(Semaphore::new(256));
    let mut clients = Vec::with_capacity(CONNECTIONS);
    for n in 0..CONNECTIONS {
        let permit = connecting.clone().acquire_owned().await.unwrap();
        let (tally, hold) = (tally.clone(), hold.clone());
        clients.push(tokio::spawn(async move {
            // The permit bounds connects in progress, not connections held.
            let client = idle_client(port, n, tally, hold);
            tokio::pin!(client);
            tokio::select! {
                () = &mut client => {}
                () = tokio::time::sleep(Duration::from_millis(200)) => { drop(permit); client.await }
            }
        }));
    }
    clients
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_idle_connections_leave_others_served() {
    raise_own_file_limit();
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", dir.path().join("hookline.db").display());
    let cap = CAP.to_string();
    let env = node_env(&[
        ("HOOKLINE_DATABASE_URL", database_url.as_str()),
        // Stored only: the publish below is not delivered anywhere.
        ("HOOKLINE_ROLE", "api"),
        ("HOOKLINE_MAX_CONNECTIONS", cap.as_str()),
        // The cap, not a timeout, must be what keeps the server whole here.
        ("HOOKLINE_HEADER_READ_TIMEOUT", "10m"),
        ("HOOKLINE_LOG", "warn"),
    ]);
    let mut node = Node::start(&env, &dir.path().join("node.log")).await;
    let pid = node.child.id().unwrap();
    let http = http_client();
    let tenant = set_up_tenant(&http, &node.base, "flood", "https://flood.invalid/hook").await;

    let tally = Arc::new(Tally::default());
    let hold = Arc::new(Semaphore::new(0));
    let started = Instant::now();
    let clients = open_idle_connections(node.port, &tally, &hold).await;
    let opened = tally.opened.load(Ordering::Relaxed);
    let server_files = open_files(pid);

    // Everyone else is still served, at once.
    let asked = Instant::now();
    let r = http.get(node.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let healthz = asked.elapsed();
    let r = http
        .post(node.url("/admin/v1/events"))
        .bearer_auth(ADMIN_TOKEN)
        .json(
            &json!({"partner_id": tenant.partner_id, "event_type": "message.received", "data": {}}),
        )
        .send()
        .await
        .unwrap();
    let (s, v) = into_parts(r).await;
    assert_eq!(s, 202, "{v}");
    let served_in = asked.elapsed();
    println!(
        "connection flood: {opened} of {CONNECTIONS} connections opened in {:?}; server holds \
         {server_files} files with the cap at {CAP}; {} closed by the server; /healthz in \
         {healthz:?}, /healthz and a publish in {served_in:?}",
        started.elapsed(),
        tally.closed_by_server.load(Ordering::Relaxed)
    );
    assert!(
        opened >= CONNECTIONS * 9 / 10,
        "only {opened} connections opened"
    );
    assert!(
        server_files <= CAP + 200,
        "the server holds {server_files} descriptors with the cap at {CAP}"
    );
    assert!(
        served_in < Duration::from_secs(5),
        "others waited {served_in:?}"
    );
    hold.add_permits(CONNECTIONS);
    for c in clients {
        let _ = c.await;
    }
    node.kill().await;
}
