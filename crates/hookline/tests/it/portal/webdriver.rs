//! A minimal W3C WebDriver client over reqwest, driving Debian's `chromium` through its
//! `chromedriver` (package `chromium-driver`), headless, on loopback only. It covers what the
//! portal tests do: open pages, find elements, click, type, read, take screenshots.

#![allow(dead_code)]

use base64::Engine;
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NEEDS: &str = "the browser tests drive a headless Chromium: install Debian's `chromium` and \
    `chromium-driver` packages (.ci/run does), so /usr/bin/chromium and chromedriver exist";
/// The element key of the W3C protocol.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Starts chromedriver on a free loopback port and waits until it answers. The port is picked by
/// binding port 0 and releasing it, so another process (another test's chromedriver) can take it
/// first: a driver that exits or stays silent is replaced on a fresh port, up to three times,
/// and a failure names how each try ended.
async fn start_driver(http: &reqwest::Client) -> (Child, String) {
    let mut tries = Vec::new();
    for _ in 0..3 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("chromedriver: {e}; {NEEDS}"));
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if http.get(format!("{base}/status")).send().await.is_ok() {
                return (driver, base);
            }
            if let Ok(Some(status)) = driver.try_wait() {
                tries.push(format!("port {port}: exited with {status}"));
                break;
            }
            if Instant::now() > deadline {
                let _ = driver.kill();
                let _ = driver.wait();
                tries.push(format!("port {port}: no answer in 30 s"));
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    panic!("chromedriver did not start: {}", tries.join("; "));
}

/// One chromedriver process and one browser session; both end when this is dropped.
pub struct Browser {
    http: reqwest::Client,
    session: String,
    driver: Child,
}

#[derive(Clone)]
pub struct Element(String);

fn chromium() -> &'static str {
    ["/usr/bin/chromium", "/usr/lib/chromium/chromium"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or_else(|| panic!("no Chromium: {NEEDS}"))
}

impl Browser {
    /// A headless browser with a `width`×`height` window. The flags keep it off every network
    /// but loopback: no updates, no sync, no safe-browsing or metrics calls.
    pub async fn start(width: u32, height: u32) -> Browser {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let (driver, base) = start_driver(&http).await;
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--no-first-run".into(),
            "--no-default-browser-check".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-default-apps".into(),
            "--disable-domain-reliability".into(),
            "--disable-client-side-phishing-detection".into(),
            "--metrics-recording-only".into(),
            "--no-proxy-server".into(),
            "--hide-scrollbars".into(),
            "--force-device-scale-factor=1".into(),
            format!("--window-size={width},{height}"),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "unhandledPromptBehavior": "accept",
            "goog:chromeOptions": {"binary": chromium(), "args": args}
        }}});
        let r: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {r}"))
            .to_owned();
        Browser {
            http,
            session: format!("{base}/session/{session}"),
            driver,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.try_call(method, path, body)
            .await
            .unwrap_or_else(|error| panic!("WebDriver {path}: {error}"))
    }

    /// The command's value, or its error as `"error": message`.
    async fn try_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let mut req = self.http.request(method, format!("{}{path}", self.session));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r: Value = req.send().await.unwrap().json().await.unwrap();
        match r["value"].get("error") {
            Some(error) => Err(format!("{error}: {}", r["value"]["message"])),
            None => Ok(r["value"].clone()),
        }
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> Value {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn goto(&self, url: &str) {
        self.post("/url", json!({"url": url})).await;
    }

    pub async fn url(&self) -> String {
        self.get("/url").await.as_str().unwrap().to_owned()
    }

    pub async fn source(&self) -> String {
        self.get("/source").await.as_str().unwrap().to_owned()
    }

    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        let v = self
            .post("/elements", json!({"using": "css selector", "value": css}))
            .await;
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| Element(e[ELEMENT].as_str().unwrap().to_owned()))
            .collect()
    }

    /// The first element matching `css`, waiting for it to appear (pages load after a click).
    pub async fn find(&self, css: &str) -> Element {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(e) = self.find_all(css).await.into_iter().next() {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "no element {css} on {}",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The first element matching the XPath `xpath`, waiting for it (buttons by their label:
    /// `//button[normalize-space()='Save']`).
    pub async fn find_xpath(&self, xpath: &str) -> Element {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let v = self
                .post("/elements", json!({"using": "xpath", "value": xpath}))
                .await;
            if let Some(e) = v.as_array().unwrap().first() {
                return Element(e[ELEMENT].as_str().unwrap().to_owned());
            }
            assert!(
                Instant::now() < deadline,
                "no element {xpath} on {}",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Clicks the button (or link) whose visible label is `label`.
    pub async fn press(&self, label: &str) {
        let e = self
            .find_xpath(&format!(
                "//*[self::button or self::a][normalize-space()=\"{label}\"]"
            ))
            .await;
        self.click(&e).await;
    }

    /// Waits until the page's text contains `text`. The page may be replaced while it is read
    /// (a form's answer arriving): a body gone stale is read again from the new page.
    pub async fn wait_for_text(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let body = self.find("body").await;
            let read = self
                .try_call(
                    reqwest::Method::GET,
                    &format!("/element/{}/text", body.0),
                    None,
                )
                .await;
            let shown = match read {
                Ok(v) => v.as_str().unwrap_or_default().to_owned(),
                // The page was replaced between finding `body` and reading it (a form's
                // redirect landing): read the new one on the next turn.
                Err(e)
                    if e.contains("stale element reference")
                        || e.contains("does not belong to the document") =>
                {
                    String::new()
                }
                Err(e) => panic!("WebDriver reading the page's text: {e}"),
            };
            if shown.contains(text) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "'{text}' never appeared on {}: {shown}",
                self.url().await,
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn click(&self, e: &Element) {
        self.post(&format!("/element/{}/click", e.0), json!({}))
            .await;
    }

    pub async fn type_into(&self, e: &Element, text: &str) {
        self.post(&format!("/element/{}/clear", e.0), json!({}))
            .await;
        self.post(&format!("/element/{}/value", e.0), json!({"text": text}))
            .await;
    }

    /// Sends keys to whatever has the focus (e.g. "\u{E004}" is Tab, "\u{E007}" Enter).
    pub async fn keys(&self, text: &str) {
        let active = self.get("/element/active").await;
        let id = active[ELEMENT].as_str().unwrap().to_owned();
        self.post(&format!("/element/{id}/value"), json!({"text": text}))
            .await;
    }

    /// The focused element's `attribute`.
    pub async fn focused_attribute(&self, attribute: &str) -> Option<String> {
        let active = self.get("/element/active").await;
        let id = active[ELEMENT].as_str().unwrap().to_owned();
        self.get(&format!("/element/{id}/attribute/{attribute}"))
            .await
            .as_str()
            .map(str::to_owned)
    }

    pub async fn text(&self, e: &Element) -> String {
        self.get(&format!("/element/{}/text", e.0))
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub async fn value(&self, e: &Element) -> String {
        self.get(&format!("/element/{}/property/value", e.0))
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub async fn resize(&self, width: u32, height: u32) {
        self.post("/window/rect", json!({"width": width, "height": height}))
            .await;
    }

    /// A PNG of the viewport, written to `docs/<name>.png` when `HOOKLINE_SCREENSHOTS` is set
    /// (README's pictures come from here); always decoded, so a broken capture fails the test.
    pub async fn screenshot(&self, name: &str) {
        let b64 = self.get("/screenshot").await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        if std::env::var_os("HOOKLINE_SCREENSHOTS").is_some() {
            let dir = crate::common::workspace_root().join("docs");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends the session (and so its Chromium) even when a test panics, where no runtime is
        // left to await on: one plain HTTP/1.1 request on a blocking socket.
        use std::io::{Read, Write};
        let rest = self.session.trim_start_matches("http://");
        let (host, path) = rest.split_once('/').unwrap();
        if let Ok(mut s) = std::net::TcpStream::connect(host) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = write!(
                s,
                "DELETE /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
            );
            let _ = s.read_to_end(&mut Vec::new());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
