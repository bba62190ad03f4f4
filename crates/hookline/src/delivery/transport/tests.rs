//! Each failure kind, produced by a real peer on 127.0.0.1 misbehaving in one way.

use super::*;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

fn settings(extra_root_certs: Option<PathBuf>) -> DeliverySettings {
    DeliverySettings {
        ssrf_allow: vec!["127.0.0.0/8".parse().unwrap()],
        timeout: Duration::from_millis(300),
        connect_timeout: Duration::from_secs(2),
        extra_root_certs,
        ..crate::config::Settings::default().delivery
    }
}

fn target(url: &str) -> TargetUrl {
    TargetUrl::parse(url, true).unwrap()
}

async fn post(transport: &Transport, url: &str) -> Result<Answer, Failure> {
    transport
        .post(&target(url), HeaderMap::new(), b"{}".to_vec())
        .await
}

async fn kind_of(url: &str) -> ErrorKind {
    kind_with(&Transport::new(&settings(None)).unwrap(), url).await
}

async fn kind_with(transport: &Transport, url: &str) -> ErrorKind {
    match post(transport, url).await {
        Ok(answer) => panic!("{url} answered {}", answer.status),
        Err(f) => {
            assert!(!f.message.is_empty());
            f.kind
        }
    }
}

/// A listener that runs `serve` on every connection; returns its port.
async fn peer<F, Fut>(serve: F) -> u16
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(serve(tcp));
        }
    });
    port
}

/// A TLS peer presenting `chain` (signed by `key`).
async fn tls_peer(chain: CertificateDer<'static>, key: &KeyPair) -> u16 {
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![chain],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    peer(move |tcp| {
        let acceptor = acceptor.clone();
        async move {
            if let Ok(mut tls) = acceptor.accept(tcp).await {
                let _ = tls
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                    .await;
            }
        }
    })
    .await
}

#[tokio::test]
async fn an_answer_is_read_with_its_headers_and_capped_body() {
    let port = peer(|mut tcp| async move {
        let mut buf = [0u8; 4096];
        let _ = tcp.read(&mut buf).await;
        let body = "x".repeat(RESPONSE_BODY_CAP + 100);
        let head = format!(
            "HTTP/1.1 503 Service Unavailable\r\nretry-after: 7\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        let _ = tcp.write_all(head.as_bytes()).await;
        let _ = tcp.write_all(body.as_bytes()).await;
    })
    .await;
    let transport = Transport::new(&settings(None)).unwrap();
    let answer = post(&transport, &format!("http://127.0.0.1:{port}/"))
        .await
        .unwrap();
    assert_eq!(answer.status, 503);
    assert_eq!(answer.headers["retry-after"], "7");
    assert_eq!(answer.body.unwrap().len(), RESPONSE_BODY_CAP);
}

#[tokio::test]
async fn a_closed_port_is_a_connect_failure() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    assert_eq!(
        kind_of(&format!("http://127.0.0.1:{port}/")).await,
        ErrorKind::Connect
    );
}

#[tokio::test]
async fn a_receiver_that_never_answers_is_a_timeout() {
    let port = peer(|tcp| async move {
        let _hold = tcp;
        std::future::pending::<()>().await;
    })
    .await;
    assert_eq!(
        kind_of(&format!("http://127.0.0.1:{port}/")).await,
        ErrorKind::Timeout
    );
}

#[tokio::test]
async fn refused_addresses_are_ssrf_blocked_by_literal_and_by_name() {
    let transport = Transport::new(&crate::config::Settings::default().delivery).unwrap();
    assert_eq!(
        kind_with(&transport, "http://127.0.0.1:9/").await,
        ErrorKind::SsrfBlocked
    );
    assert_eq!(
        kind_with(&transport, "http://localhost:9/").await,
        ErrorKind::SsrfBlocked
    );
}

#[tokio::test]
async fn plain_http_on_an_https_url_is_a_tls_failure() {
    let port = peer(|mut tcp| async move {
        let mut buf = [0u8; 1024];
        let _ = tcp.read(&mut buf).await;
        let _ = tcp.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
    })
    .await;
    assert_eq!(
        kind_of(&format!("https://127.0.0.1:{port}/")).await,
        ErrorKind::Tls
    );
}

#[tokio::test]
async fn a_peer_closing_during_the_handshake_is_a_tls_failure() {
    // Reads the ClientHello, then closes cleanly: the client sees end-of-stream mid-handshake.
    let port = peer(|mut tcp| async move {
        let mut buf = [0u8; 4096];
        let _ = tcp.read(&mut buf).await;
        let _ = tcp.shutdown().await;
    })
    .await;
    assert_eq!(
        kind_of(&format!("https://127.0.0.1:{port}/")).await,
        ErrorKind::Tls
    );
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_tls_failure() {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let port = tls_peer(cert.der().clone(), &key).await;
    assert_eq!(
        kind_of(&format!("https://127.0.0.1:{port}/")).await,
        ErrorKind::Tls
    );
}

/// A trusted CA's own certificate presented as the server's: webpki's `CaUsedAsEndEntity`,
/// which rustls reports as an opaque "other" certificate error; still typed, still TLS.
#[tokio::test]
async fn a_ca_certificate_used_as_the_server_certificate_is_a_tls_failure() {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = params.self_signed(&key).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("ca.pem");
    std::fs::write(&pem, ca.pem()).unwrap();
    let port = tls_peer(ca.der().clone(), &key).await;
    let transport = Transport::new(&settings(Some(pem))).unwrap();
    let url = format!("https://127.0.0.1:{port}/");
    assert_eq!(kind_with(&transport, &url).await, ErrorKind::Tls);
    let message = post(&transport, &url).await.err().unwrap().message;
    assert!(
        message.contains("CA:FALSE") && message.contains("HOOKLINE_EXTRA_ROOT_CERTS"),
        "the attempt's error says how to make a certificate that works: {message}"
    );
}
