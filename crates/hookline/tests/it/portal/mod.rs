//! The web portal: its sessions, CSRF and isolation over plain HTTP (`http`), and the real
//! portal in a real headless Chromium (`browser`, through `webdriver`).

mod browser;
mod http;
mod notices;
mod webdriver;

use crate::common::TestApp;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use std::collections::HashMap;

/// A cookie-keeping client that does not follow redirects: what a browser does, step by step.
pub struct Visitor {
    http: reqwest::Client,
    base: String,
    pub cookies: HashMap<String, String>,
}

pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }
    /// The `value` of the first `<input name=…>` on the page.
    pub fn input(&self, name: &str) -> String {
        let at = self
            .body
            .find(&format!("name=\"{name}\""))
            .unwrap_or_else(|| panic!("no input {name} in {}", self.body));
        let tag_start = self.body[..at].rfind('<').unwrap();
        let tag = &self.body[tag_start..at + self.body[at..].find('>').unwrap()];
        let v = tag
            .split("value=\"")
            .nth(1)
            .expect("a value")
            .split('"')
            .next()
            .unwrap();
        v.replace("&amp;", "&")
    }
}

impl Visitor {
    pub fn new(app: &TestApp) -> Visitor {
        Visitor::at(&app.base)
    }

    /// A browser without cookies on the server at `base` (`http://127.0.0.1:port`).
    pub fn at(base: &str) -> Visitor {
        Visitor {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: base.to_owned(),
            cookies: HashMap::new(),
        }
    }

    fn keep_cookies(&mut self, headers: &HeaderMap) {
        for c in headers.get_all(SET_COOKIE) {
            let text = c.to_str().unwrap();
            let (pair, _) = text.split_once(';').unwrap_or((text, ""));
            let (k, v) = pair.split_once('=').unwrap();
            if v.is_empty() || text.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Answer {
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let req = if cookie.is_empty() {
            req
        } else {
            req.header("cookie", cookie)
        };
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        self.keep_cookies(&headers);
        Answer {
            status,
            headers,
            body: r.text().await.unwrap(),
        }
    }

    pub async fn get(&mut self, path: &str) -> Answer {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        let req = self.http.get(url);
        self.send(req).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Answer {
        let req = self.http.post(format!("{}{path}", self.base)).form(form);
        self.send(req).await
    }

    /// Signs in with an API key (or, with `operator`, the admin token) through the form.
    pub async fn sign_in(&mut self, secret: &str, operator: bool) -> Answer {
        let page = self.get("/portal/sign-in").await;
        assert_eq!(page.status, 200);
        let csrf = page.input("csrf");
        let kind = if operator { "operator" } else { "partner" };
        self.post(
            "/portal/sign-in",
            &[("csrf", &csrf), ("kind", kind), ("secret", secret)],
        )
        .await
    }

    /// Opens a portal link as its page does: the token posted back with the page's CSRF field.
    pub async fn enter(&mut self, url: &str) -> Answer {
        let landing = self.get(url).await;
        assert_eq!(landing.status, 200, "{}", landing.body);
        let (token, csrf) = (landing.input("token"), landing.input("csrf"));
        self.post("/portal/enter", &[("csrf", &csrf), ("token", &token)])
            .await
    }

    /// The CSRF token of the signed-in session, as a page's forms carry it.
    pub async fn csrf(&mut self, page: &str) -> String {
        let p = self.get(page).await;
        assert_eq!(p.status, 200, "{}", p.body);
        p.input("csrf")
    }
}
