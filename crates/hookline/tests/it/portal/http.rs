//! The portal over plain HTTP: links, sessions, expiry, sign-out, CSRF, headers, isolation.

use super::Visitor;
use crate::common::*;
use crate::per_backend;
use hookline::config::RawConfig;
use reqwest::Method;
use serde_json::json;

per_backend!(
    a_portal_link_opens_a_session_once_with_a_strict_cookie,
    behind_an_https_proxy_the_cookie_is_secure,
    portal_link_requests_are_validated,
    forms_without_the_session_csrf_token_are_refused,
    sessions_expire_and_sign_out_ends_them,
    a_session_ends_with_the_key_or_admin_token_it_was_opened_with,
    a_partner_session_reaches_only_its_own_data,
    delivery_pages_reach_only_the_partners_own_deliveries,
);

async fn link(
    app: &TestApp,
    partner: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    app.admin(
        Method::POST,
        &format!("/admin/v1/partners/{partner}/portal-sessions"),
        body,
    )
    .await
}

async fn a_portal_link_opens_a_session_once_with_a_strict_cookie(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (partner, _) = app.partner("acme").await;
    let (s, v) = link(&app, &partner, Some(json!({"ttl_seconds": 600}))).await;
    assert_eq!(s, 201, "{v}");
    let url = v["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{}/portal/enter?token=hlpl_", app.base)),
        "{url}"
    );
    let expires = chrono::DateTime::parse_from_rfc3339(v["expires_at"].as_str().unwrap()).unwrap();
    let left = expires.timestamp() - chrono::Utc::now().timestamp();
    assert!((590..=600).contains(&left), "{left}");

    let mut browser = Visitor::new(&app);
    let landing = browser.get(url).await;
    assert_eq!(landing.status, 200);
    let csp = landing.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(!landing.body.contains("<script>"), "no inline script");
    let (token, csrf) = (landing.input("token"), landing.input("csrf"));
    let entered = browser
        .post("/portal/enter", &[("csrf", &csrf), ("token", &token)])
        .await;
    assert_eq!((entered.status, entered.location()), (303, "/portal"));
    let cookie = entered
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap())
        .find(|c| c.starts_with("hl_portal="))
        .unwrap()
        .to_owned();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/portal"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP: not Secure: {cookie}"
    );
    let list = browser.get("/portal/subscriptions").await;
    assert_eq!(list.status, 200);
    assert!(list.body.contains("No subscriptions yet"), "{}", list.body);

    // The link works once, even for the browser that used it.
    let mut other = Visitor::new(&app);
    let again = other.get(url).await;
    let csrf = again.input("csrf");
    let refused = other
        .post("/portal/enter", &[("csrf", &csrf), ("token", &token)])
        .await;
    assert_eq!(refused.status, 403);
    assert!(refused.body.contains("no longer works"), "{}", refused.body);
}

/// Behind an HTTPS proxy (`X-Forwarded-Proto: https`) the session cookie is Secure.
async fn behind_an_https_proxy_the_cookie_is_secure(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (partner, _) = app.partner("acme").await;
    let (_, v) = link(&app, &partner, None).await;
    let mut proxied = Visitor::new(&app);
    let landing = proxied.get(v["url"].as_str().unwrap()).await;
    let req = proxied
        .http
        .post(app.url("/portal/enter"))
        .header("x-forwarded-proto", "https")
        .header(
            "cookie",
            format!("hl_portal_pre={}", proxied.cookies["hl_portal_pre"]),
        )
        .form(&[
            ("csrf", landing.input("csrf")),
            ("token", landing.input("token")),
        ]);
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 303);
    let secure = r.headers().get_all("set-cookie").iter().any(|c| {
        let c = c.to_str().unwrap();
        c.starts_with("hl_portal=") && c.contains("; Secure")
    });
    assert!(secure);
}

async fn portal_link_requests_are_validated(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (partner, key) = app.partner("acme").await;
    for ttl in [0, 59, 604_801] {
        let (s, v) = link(&app, &partner, Some(json!({"ttl_seconds": ttl}))).await;
        let message = assert_error(s, &v, 400, 1005);
        assert!(
            message.contains("ttl_seconds must be between 60 and 604800"),
            "{message}"
        );
    }
    let (s, v) = link(&app, &partner, Some(json!({"ttl_seconds": "soon"}))).await;
    assert_error(s, &v, 400, 1003);
    let unknown = "00000000-0000-4000-8000-000000000000";
    let (s, v) = link(&app, unknown, None).await;
    assert_error(s, &v, 404, 2001);
    let (s, v) = app
        .call(
            &key,
            Method::POST,
            &format!("/admin/v1/partners/{partner}/portal-sessions"),
            None,
        )
        .await;
    assert_error(s, &v, 401, 2004);
    // A partner API key never opens an operator session, nor an admin token a partner one.
    let mut browser = Visitor::new(&app);
    let wrong = browser.sign_in(&key, true).await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("admin token is not valid"));
    let wrong = browser.sign_in(ADMIN_TOKEN, false).await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("API key is not valid"));
    // Past the address's failure budget: 429, the wait in the page and in `Retry-After`.
    let throttled = loop {
        let answer = browser.sign_in("hl_live_guess", false).await;
        if answer.status != 401 {
            break answer;
        }
    };
    assert_eq!(throttled.status, 429);
    let wait = throttled.headers["retry-after"].to_str().unwrap();
    assert!(
        throttled.body.contains(&format!("retry after {wait} s")),
        "{}",
        throttled.body
    );
}

async fn forms_without_the_session_csrf_token_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, key) = app.partner("acme").await;
    let mut browser = Visitor::new(&app);
    assert_eq!(browser.sign_in(&key, false).await.status, 303);
    let csrf = browser.csrf("/portal/subscriptions/new").await;
    let form = |token: &'static str| {
        vec![
            ("csrf", token),
            ("target_url", "https://example.com/hook"),
            ("events", "message.sent"),
        ]
    };
    for token in ["", "forged"] {
        let r = browser.post("/portal/subscriptions", &form(token)).await;
        assert_eq!(r.status, 403, "{}", r.body);
        assert!(r.body.contains("This form has expired"));
    }
    // Another session's token does not do either.
    let mut other = Visitor::new(&app);
    other.sign_in(&key, false).await;
    let theirs = other.csrf("/portal/subscriptions/new").await;
    let mut with_theirs = form("");
    with_theirs[0].1 = &theirs;
    assert_eq!(
        browser
            .post("/portal/subscriptions", &with_theirs)
            .await
            .status,
        403
    );
    let (_, list) = app
        .call(&key, Method::GET, "/v3/webhook-subscriptions", None)
        .await;
    assert_eq!(list["subscriptions"], json!([]), "nothing was created");
    // The sign-in form is tied to its pre-session cookie too.
    let mut fresh = Visitor::new(&app);
    let r = fresh
        .post(
            "/portal/sign-in",
            &[("csrf", "x"), ("kind", "partner"), ("secret", &key)],
        )
        .await;
    assert_eq!(r.status, 403);
    // With the right token it works.
    let mut ok = form("");
    ok[0].1 = &csrf;
    // A form past the portal's limit is 413, not a malformed request.
    let pad = "a".repeat(300 * 1024);
    let mut huge = ok.clone();
    huge.push(("pad", &pad));
    let r = browser.post("/portal/subscriptions", &huge).await;
    assert_eq!(r.status, 413, "{}", r.body);
    let created = browser.post("/portal/subscriptions", &ok).await;
    assert_eq!(created.status, 200, "{}", created.body);
    assert!(created.body.contains("whsec_"));
}

async fn sessions_expire_and_sign_out_ends_them(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            raw: RawConfig {
                portal_session_ttl: Some("2s".into()),
                ..Options::default().raw
            },
            ..Options::default()
        },
    )
    .await;
    let (_, key) = app.partner("acme").await;
    let mut browser = Visitor::new(&app);
    let signed_in = browser.sign_in(&key, false).await;
    assert_eq!((signed_in.status, signed_in.location()), (303, "/portal"));
    assert!(signed_in
        .headers
        .get_all("set-cookie")
        .iter()
        .any(|c| c.to_str().unwrap().contains("Max-Age=2;")));
    assert_eq!(browser.get("/portal/subscriptions").await.status, 200);
    let session = browser.cookies["hl_portal"].clone();
    // The server stops honouring the session when it expires, whatever the browser keeps.
    eventually("the session to expire", WAIT, || {
        let mut b = Visitor::new(&app);
        b.cookies.insert("hl_portal".into(), session.clone());
        async move {
            let r = b.get("/portal/subscriptions").await;
            (r.status == 303 && r.location() == "/portal/sign-in?ended=1").then_some(())
        }
    })
    .await;

    let mut browser = Visitor::new(&app);
    browser.sign_in(&key, false).await;
    let csrf = browser.csrf("/portal/subscriptions").await;
    let session = browser.cookies["hl_portal"].clone();
    let out = browser.post("/portal/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(
        (out.status, out.location()),
        (303, "/portal/sign-in?signed_out=1")
    );
    assert!(
        !browser.cookies.contains_key("hl_portal"),
        "the cookie is cleared"
    );
    let mut replay = Visitor::new(&app);
    replay.cookies.insert("hl_portal".into(), session);
    assert_eq!(
        replay.get("/portal/subscriptions").await.status,
        303,
        "the session is gone"
    );
}

/// The page a copy of `session`'s cookie gets from `app`: 200, or 303 to sign in once it ended.
async fn with_session(app: &TestApp, session: &str, path: &str) -> (u16, String) {
    let mut b = Visitor::new(app);
    b.cookies.insert("hl_portal".into(), session.to_owned());
    let r = b.get(path).await;
    (r.status, r.location().to_owned())
}

/// Each `(session, page)` still gets its page (200).
async fn still_open(app: &TestApp, sessions: &[(&str, &str)]) {
    for (session, path) in sessions {
        assert_eq!(with_session(app, session, path).await.0, 200, "{path}");
    }
}

/// Session cookies opened with `key`, with `first_key`, from a portal link, and as the operator.
async fn four_sessions(app: &TestApp, partner: &str, key: &str, first_key: &str) -> [String; 4] {
    let mut by_key = Visitor::new(app);
    by_key.sign_in(key, false).await;
    let mut by_first_key = Visitor::new(app);
    by_first_key.sign_in(first_key, false).await;
    let (_, link) = link(app, partner, None).await;
    let mut by_link = Visitor::new(app);
    let entered = by_link.enter(link["url"].as_str().unwrap()).await;
    assert_eq!(entered.status, 303, "{}", entered.body);
    let mut operator = Visitor::new(app);
    operator.sign_in(ADMIN_TOKEN, true).await;
    [by_key, by_first_key, by_link, operator].map(|v| v.cookies["hl_portal"].clone())
}

async fn a_session_ends_with_the_key_or_admin_token_it_was_opened_with(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (partner, key) = app.partner("acme").await;
    let (_, other) = app
        .admin(
            Method::POST,
            &format!("/admin/v1/partners/{partner}/api-keys"),
            None,
        )
        .await;
    let [by_key, by_first_key, by_link, operator] =
        four_sessions(&app, &partner, other["api_key"].as_str().unwrap(), &key).await;
    still_open(&app, &[(&by_key, "/portal/subscriptions")]).await;

    let (s, _) = app
        .admin(
            Method::DELETE,
            &format!(
                "/admin/v1/partners/{partner}/api-keys/{}",
                other["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let ended = (303, "/portal/sign-in?ended=1".to_owned());
    assert_eq!(
        with_session(&app, &by_key, "/portal/subscriptions").await,
        ended,
        "the revoked key's session ends with it"
    );
    still_open(
        &app,
        &[
            (&by_first_key, "/portal/subscriptions"),
            (&by_link, "/portal/subscriptions"),
            (&operator, "/portal/admin/partners"),
        ],
    )
    .await;

    // A new admin token (a restart with another HOOKLINE_ADMIN_TOKEN) ends operator sessions
    // opened with the old one; partner sessions do not depend on it.
    let mut app = app;
    app.settings.secrets.admin_token = Some(hookline_core::ApiKey::from_presented("a-new-token"));
    let app = app.restart().await;
    assert_eq!(
        with_session(&app, &operator, "/portal/admin/partners").await,
        ended,
        "the old admin token's session ends"
    );
    still_open(
        &app,
        &[
            (&by_first_key, "/portal/subscriptions"),
            (&by_link, "/portal/subscriptions"),
        ],
    )
    .await;
}

async fn a_partner_session_reaches_only_its_own_data(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, key_a) = app.partner("a").await;
    let (partner_b, key_b) = app.partner("b").await;
    let theirs = app
        .create_subscription(
            &key_b,
            json!({"target_url": "https://example.com/b", "subscribed_events": ["message.sent"]}),
        )
        .await;
    let id = theirs["id"].as_str().unwrap();
    let mut a = Visitor::new(&app);
    a.sign_in(&key_a, false).await;
    let csrf = a.csrf("/portal/subscriptions").await;
    let list = a.get("/portal/subscriptions").await;
    assert!(!list.body.contains("example.com/b"));
    for path in ["", "/delete", "/deliveries", "/deliveries/e1"] {
        let r = a.get(&format!("/portal/subscriptions/{id}{path}")).await;
        assert_eq!(r.status, 404, "GET {path}: {}", r.body);
    }
    let edit = [
        ("csrf", csrf.as_str()),
        ("target_url", "https://evil.example/x"),
        ("events", "message.sent"),
        ("is_active", "true"),
    ];
    for path in [
        "",
        "/delete",
        "/test",
        "/rotate-secret",
        "/deliveries/e1/retry",
    ] {
        let r = a
            .post(&format!("/portal/subscriptions/{id}{path}"), &edit)
            .await;
        assert_eq!(r.status, 404, "POST {path}: {}", r.body);
    }
    let (s, after) = app
        .call(
            &key_b,
            Method::GET,
            &format!("/v3/webhook-subscriptions/{id}"),
            None,
        )
        .await;
    assert_eq!(
        (s, &after["target_url"]),
        (200, &json!("https://example.com/b"))
    );
    // The operator pages do not exist for a partner session.
    for path in [
        "/portal/admin/partners",
        &format!("/portal/admin/partners/{partner_b}"),
        "/portal/admin/health",
    ] {
        assert_eq!(a.get(path).await.status, 404, "{path}");
    }
    let r = a
        .post(
            &format!("/portal/admin/partners/{partner_b}/keys"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, 404);
}

/// The delivery log, a delivery, retry, recover and a recovery's status with real ids of
/// another partner: each is a 404, whether asked under its subscription or under one's own.
async fn delivery_pages_reach_only_the_partners_own_deliveries(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let receiver = TestReceiver::start().await;
    let (_, key_a) = app.partner("a").await;
    let (partner_b, key_b) = app.partner("b").await;
    let events = &["message.received"];
    let mine = subscribe(&app, &key_a, &receiver.url("/a"), events, None).await;
    let theirs = subscribe(&app, &key_b, &receiver.url("/b"), events, None).await;
    let (mine, theirs) = (mine["id"].as_str().unwrap(), theirs["id"].as_str().unwrap());
    let published = app
        .publish(event(&partner_b, "message.received", None))
        .await;
    let ev = published["event_id"].as_str().unwrap();
    receiver.wait_for(Some("/b"), 1, WAIT).await;
    settled(&app).await;
    let (s, rec) = app
        .call(
            &key_b,
            Method::POST,
            &format!("/v3/webhook-subscriptions/{theirs}/recover"),
            Some(json!({"since": "2020-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(s, 202, "{rec}");
    let rec = rec["recovery_id"].as_str().unwrap();

    let mut b = Visitor::new(&app);
    b.sign_in(&key_b, false).await;
    let own = b
        .get(&format!("/portal/subscriptions/{theirs}/deliveries"))
        .await;
    assert!(own.body.contains(ev), "the owner sees it: {}", own.body);
    let one = b
        .get(&format!("/portal/subscriptions/{theirs}/deliveries/{ev}"))
        .await;
    assert!(
        one.status == 200 && one.body.contains("Attempt 1"),
        "{}",
        one.body
    );
    let status = b
        .get(&format!("/portal/subscriptions/{theirs}/recoveries/{rec}"))
        .await;
    assert!(
        status.status == 200 && status.body.contains("Re-queued"),
        "{}",
        status.body
    );

    let mut a = Visitor::new(&app);
    a.sign_in(&key_a, false).await;
    let csrf = a.csrf("/portal/subscriptions").await;
    let log = a
        .get(&format!("/portal/subscriptions/{mine}/deliveries"))
        .await;
    assert_eq!(log.status, 200);
    assert!(!log.body.contains(ev), "{}", log.body);
    for sub in [mine, theirs] {
        for path in [format!("/deliveries/{ev}"), format!("/recoveries/{rec}")] {
            let r = a.get(&format!("/portal/subscriptions/{sub}{path}")).await;
            assert_eq!(r.status, 404, "GET {sub}{path}: {}", r.body);
        }
        let retry = format!("/portal/subscriptions/{sub}/deliveries/{ev}/retry");
        let r = a.post(&retry, &[("csrf", &csrf)]).await;
        assert_eq!(r.status, 404, "POST {retry}: {}", r.body);
    }
    let recover = format!("/portal/subscriptions/{theirs}/recover");
    let r = a
        .post(&recover, &[("csrf", &csrf), ("since", "2020-01-01T00:00")])
        .await;
    assert_eq!(r.status, 404, "POST {recover}: {}", r.body);
}
