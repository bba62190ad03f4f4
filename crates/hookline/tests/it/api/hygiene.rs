//! Connection hygiene over real TCP, with hand-written bytes where a client library would not
//! misbehave: slow and idle clients are cut off by the header-read and idle timeouts, the
//! connection cap makes room for new clients, a declared oversized body is refused before it is
//! sent, a trickled body ends in 408, and what the HTTP layer answers itself is in the envelope.
//! These run on SQLite only: nothing here reaches the store.

use crate::common::*;
use hookline::config::RawConfig;
use serde_json::Value;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest a test waits for an answer or a close it expects.
const PATIENCE: Duration = Duration::from_secs(5);

async fn spawn(configure: impl FnOnce(&mut RawConfig)) -> TestApp {
    let mut options = Options::default();
    configure(&mut options.raw);
    TestApp::spawn_with(Backend::Sqlite, options).await
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

struct RawResponse {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The body as the error envelope of `status` with `code`; its trace id is `x-request-id`.
    fn assert_envelope(&self, status: u16, code: u64) -> String {
        let body: Value = serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}\n{:?}", self.head, self.body));
        let message = assert_error(self.status, &body, status, code);
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{}",
            self.head
        );
        assert_eq!(self.header("x-request-id"), body["trace_id"].as_str());
        message
    }
}

/// One response (an interim `100 Continue` counts as one): its head and `content-length` bytes.
async fn read_response(stream: &mut TcpStream) -> RawResponse {
    let read = async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                let mut response = RawResponse {
                    status: head[9..12].parse().unwrap(),
                    head,
                    body: Vec::new(),
                };
                let length: usize = response
                    .header("content-length")
                    .map_or(0, |v| v.parse().unwrap());
                if buf.len() >= end + 4 + length {
                    response.body = buf[end + 4..end + 4 + length].to_vec();
                    return response;
                }
            }
            let n = stream.read(&mut chunk).await.expect("reading the response");
            assert!(
                n > 0,
                "closed before a whole response: {:?}",
                String::from_utf8_lossy(&buf)
            );
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(PATIENCE, read)
        .await
        .expect("no response in time")
}

/// Waits until the server closes `stream` (end of file or reset) without sending anything.
async fn closed_by_server(stream: &mut TcpStream) {
    let mut byte = [0u8; 1];
    match tokio::time::timeout(PATIENCE, stream.read(&mut byte)).await {
        Ok(Ok(0)) | Ok(Err(_)) => {}
        Ok(Ok(_)) => panic!("the server answered instead of closing: {:?}", byte),
        Err(_) => panic!("the connection is still open after {PATIENCE:?}"),
    }
}

async fn healthz(app: &TestApp) -> u16 {
    // A client of its own: a fresh connection, not one from the harness's pool.
    let response = reqwest::Client::new()
        .get(app.url("/healthz"))
        .timeout(PATIENCE)
        .send()
        .await
        .expect("/healthz must answer");
    response.status().as_u16()
}

/// A slowloris client trickles header lines; the header timeout runs from accept and is not
/// extended by each byte, while other clients are served meanwhile.
#[tokio::test]
async fn a_slowloris_client_is_cut_off_after_the_header_timeout_while_others_are_served() {
    let app = spawn(|raw| raw.header_read_timeout = Some("600ms".into())).await;
    let started = Instant::now();
    let (mut reader, mut writer) = connect(&app).await.into_split();
    let trickle = tokio::spawn(async move {
        writer.write_all(b"GET /healthz HTTP/1.1\r\n").await.ok();
        for i in 0..100 {
            if writer
                .write_all(format!("x-slow-{i}: a\r\n").as_bytes())
                .await
                .is_err()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    assert_eq!(healthz(&app).await, 200);
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(PATIENCE, reader.read(&mut byte)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the slow client must be closed without an answer: {read:?}"
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(500),
        "closed before the timeout: {elapsed:?}"
    );
    trickle.abort();
}

/// Between requests a keep-alive connection gets the idle timeout, longer than the header
/// timeout, and is closed once it passes.
#[tokio::test]
async fn a_keep_alive_connection_waits_the_idle_timeout_not_the_header_timeout() {
    let app = spawn(|raw| {
        raw.header_read_timeout = Some("300ms".into());
        raw.idle_timeout = Some("1500ms".into());
    })
    .await;
    let mut stream = connect(&app).await;
    let request = b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n";
    stream.write_all(request).await.unwrap();
    assert_eq!(read_response(&mut stream).await.status, 200);
    // Idle for twice the header timeout: the time passing is what is tested.
    tokio::time::sleep(Duration::from_millis(600)).await;
    stream.write_all(request).await.unwrap();
    assert_eq!(read_response(&mut stream).await.status, 200);
    let idle_since = Instant::now();
    closed_by_server(&mut stream).await;
    let idle = idle_since.elapsed();
    // Well past the 300 ms header timeout; the idle timer started a little before `idle_since`.
    assert!(idle >= Duration::from_millis(1000), "closed after {idle:?}");
}

/// Past the cap, the oldest connections with no request in progress are closed to make room:
/// `/healthz` on a new connection answers, and a request in progress on the oldest connection
/// is not cut.
#[tokio::test]
async fn past_the_connection_cap_idle_connections_make_room_and_requests_in_progress_stay() {
    const CAP: usize = 50;
    let app = spawn(|raw| {
        raw.max_connections = Some(CAP);
        raw.header_read_timeout = Some("60s".into());
        raw.body_timeout = Some("60s".into());
    })
    .await;
    // In a request: `100 Continue` says the handler is reading the body, which is sent last.
    let mut busy = connect(&app).await;
    let request = post("/admin/v1/events", ADMIN_TOKEN, 100, true);
    busy.write_all(request.as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut busy).await.status, 100);
    let mut idle = Vec::new();
    for _ in 0..CAP + 10 {
        idle.push(connect(&app).await);
    }
    assert_eq!(healthz(&app).await, 200);
    // 11 or more connections went (also the harness's pooled one): the oldest idle ones first.
    for stream in &mut idle[..10] {
        closed_by_server(stream).await;
    }
    let body = format!("{:<100}", "{\"partner_id\":\"p\"}");
    busy.write_all(body.as_bytes()).await.unwrap();
    let answer = read_response(&mut busy).await;
    // An event without a type: what matters is that the request was answered at all.
    answer.assert_envelope(400, 1001);
}

/// A body that trickles past the body timeout is answered 408, not waited for.
#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_is_answered_408() {
    let app = spawn(|raw| raw.body_timeout = Some("500ms".into())).await;
    let mut stream = connect(&app).await;
    let head = post("/admin/v1/events", ADMIN_TOKEN, 100, false);
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(b"{\"partner_id\":").await.unwrap();
    let answer = read_response(&mut stream).await;
    answer.assert_envelope(408, 1003);
}

/// The head of a JSON POST declaring `length` bytes of body.
fn post(path: &str, token: &str, length: usize, expect_continue: bool) -> String {
    let expect = if expect_continue {
        "expect: 100-continue\r\n"
    } else {
        ""
    };
    format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ncontent-length: {length}\r\n{expect}\r\n"
    )
}

/// A body declared over the route's limit is refused from the headers: 413 in the envelope
/// before a byte of it is sent, and never `100 Continue`.
#[tokio::test]
async fn a_declared_oversized_body_is_refused_before_it_is_sent() {
    let app = spawn(|_| {}).await;
    let cases = [
        ("/v3/webhook-subscriptions", 2_000_000),
        ("/api/partner/v3/webhook-subscriptions", 2_000_000),
        ("/admin/v1/events/batch", 17 * 1024 * 1024),
    ];
    for (path, length) in cases {
        for expect_continue in [false, true] {
            let mut stream = connect(&app).await;
            let request = post(path, "not-even-a-key", length, expect_continue);
            stream.write_all(request.as_bytes()).await.unwrap();
            let answer = read_response(&mut stream).await;
            assert_eq!(
                answer.status, 413,
                "{path} {expect_continue}: {}",
                answer.head
            );
            let message = answer.assert_envelope(413, 1003);
            assert!(message.contains(&length.to_string()), "{message}");
        }
    }
    // Within the limit, Expect still gets its 100 Continue.
    let mut stream = connect(&app).await;
    let request = post("/admin/v1/events", ADMIN_TOKEN, 1000, true);
    stream.write_all(request.as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut stream).await.status, 100);
}

/// What hyper answers before any route runs (a request line or a `Content-Length` it cannot
/// parse, a head over 64 KiB or over 100 headers) is in the envelope.
#[tokio::test]
async fn requests_the_http_layer_cannot_parse_are_answered_in_the_envelope() {
    let app = spawn(|_| {}).await;
    let mut too_long = b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: ".to_vec();
    // Exactly the limit and no end of head: the server reads every byte before answering, so
    // closing leaves nothing unread (which would reset the connection and lose the answer).
    too_long.resize(64 * 1024, b'a');
    let mut too_many = b"GET /healthz HTTP/1.1\r\nhost: x\r\n".to_vec();
    for i in 0..150 {
        too_many.extend_from_slice(format!("x-h{i}: v\r\n").as_bytes());
    }
    too_many.extend_from_slice(b"\r\n");
    // A whole head past the limit, which arrives (and would parse) in one read.
    let whole = |size: usize| {
        let mut head = b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: ".to_vec();
        head.resize(size - 4, b'a');
        head.extend_from_slice(b"\r\n\r\n");
        head
    };
    let cases: [(&str, Vec<u8>, u16); 7] = [
        ("garbage", b"THIS IS NOT HTTP\r\n\r\n".to_vec(), 400),
        (
            "bad method",
            b"G\x01T / HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(),
            400,
        ),
        (
            "bad content-length",
            b"POST /admin/v1/events HTTP/1.1\r\nhost: x\r\ncontent-length: 12abc\r\n\r\n".to_vec(),
            400,
        ),
        ("head over 64 KiB", too_long, 431),
        ("over 100 headers", too_many, 431),
        ("a whole head of 64 KiB + 1", whole(64 * 1024 + 1), 431),
        ("a whole head of 100 KiB", whole(100 * 1024), 431),
    ];
    for (what, request, status) in cases {
        let mut stream = connect(&app).await;
        stream.write_all(&request).await.unwrap();
        let answer = read_response(&mut stream).await;
        assert_eq!(answer.status, status, "{what}: {}", answer.head);
        answer.assert_envelope(status, 1003);
        assert_eq!(answer.header("connection"), Some("close"), "{what}");
    }
    // At the limit exactly, served.
    let mut stream = connect(&app).await;
    stream.write_all(&whole(64 * 1024)).await.unwrap();
    assert_eq!(read_response(&mut stream).await.status, 200);
    assert_eq!(healthz(&app).await, 200);
}
