//! `hookline listen`: opens a listen stream (an ephemeral subscription whose deliveries come
//! down the stream), verifies both signatures of each delivery with `hookline-verify`, prints
//! one line per event, forwards it to `--forward-to` with its original headers, and
//! acknowledges it with the status the forward got. Reconnects (resuming the session) when the
//! stream drops; on Ctrl-C deletes the subscription and exits 0.

use clap::Args;
use hookline_client::{
    Client, Error, ListenAck, ListenDelivery, ListenEvent, ListenOptions, ListenSession,
};
use hookline_verify::{Secret, Verifier};
use serde_json::Value;
use std::time::{Duration, Instant};

use super::output::{self, bold, dim, green, red};
use super::{comma_list, Connection};

#[derive(Debug, Args)]
pub struct Cmd {
    #[command(flatten)]
    conn: Connection,
    /// Event types, comma-separated [default: all].
    #[arg(long)]
    events: Option<String>,
    /// Only events from these lines (E.164, comma-separated).
    #[arg(long)]
    phone_numbers: Option<String>,
    /// POST each event here with its original headers, e.g. http://localhost:3000/hook.
    #[arg(long, short = 'f')]
    forward_to: Option<String>,
}

/// What one run keeps across reconnects.
struct Listener {
    client: Client,
    forward: Option<(reqwest::Client, String)>,
    json: bool,
    session: Option<String>,
    verifier: Option<Verifier>,
}

pub async fn run(cmd: Cmd) -> anyhow::Result<()> {
    let ctx = cmd.conn.resolve()?;
    let forward = match cmd.forward_to {
        Some(url) => Some((
            reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            url,
        )),
        None => None,
    };
    let mut l = Listener {
        client: ctx.client,
        forward,
        json: ctx.json,
        session: None,
        verifier: None,
    };
    let options = ListenOptions {
        events: cmd.events.as_deref().map(comma_list).unwrap_or_default(),
        phone_numbers: cmd
            .phone_numbers
            .as_deref()
            .map(comma_list)
            .unwrap_or_default(),
        session: None,
    };
    let outcome = tokio::select! {
        r = l.run(options) => r,
        () = interrupted() => Ok(()),
    };
    // Closing cleanly: the subscription goes now, not after the server's grace.
    if let Some(id) = &l.session {
        match l.client.delete_subscription(id).await {
            Ok(()) | Err(Error::Api(_)) => {}
            Err(e) => eprintln!("could not delete the listen subscription {id}: {e}"),
        }
        eprintln!(
            "{}",
            dim("Stopped listening; the temporary subscription is deleted.")
        );
    }
    outcome
}

async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return std::future::pending().await;
        };
        tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

impl Listener {
    /// Streams until an unrecoverable error; a dropped stream is reopened (with backoff),
    /// resuming the session while the server still holds it.
    async fn run(&mut self, mut options: ListenOptions) -> anyhow::Result<()> {
        let mut backoff = Duration::from_millis(500);
        loop {
            options.session = self.session.clone();
            let mut stream = match self.client.listen(&options).await {
                Ok(s) => s,
                // The session expired while we were away: start a new one.
                Err(Error::Api(e)) if e.status == 404 && self.session.is_some() => {
                    eprintln!("{}", dim("The session expired; starting a new one."));
                    self.session = None;
                    continue;
                }
                Err(e @ Error::Transport(_)) if self.session.is_some() => {
                    eprintln!("{}", dim(&format!("reconnecting: {e}")));
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            loop {
                match stream.next().await {
                    Ok(Some(ListenEvent::Session(s))) => {
                        backoff = Duration::from_millis(500);
                        self.started(s)?;
                    }
                    Ok(Some(ListenEvent::Delivery(d))) => self.handle(d).await,
                    Ok(None) => break,
                    Err(e) => {
                        eprintln!("{}", dim(&format!("stream interrupted: {e}")));
                        break;
                    }
                }
            }
            tokio::time::sleep(backoff).await;
        }
    }

    fn started(&mut self, s: ListenSession) -> anyhow::Result<()> {
        if let Some(secret) = &s.signing_secret {
            self.verifier = Some(Verifier::new(Secret::parse(secret)?));
        }
        let resumed = self.session.is_some();
        self.session = Some(s.subscription_id.clone());
        // Also with `--json`: that is stdout's format; this is for the person (the secret!).
        if resumed {
            eprintln!("{}", dim("Reconnected."));
            return Ok(());
        }
        let events = if s.subscribed_events.len() > 5 {
            format!("{} event types", s.subscribed_events.len())
        } else {
            s.subscribed_events.join(", ")
        };
        eprintln!(
            "{} Listening for {events} (temporary subscription {}).",
            green("Ready."),
            s.subscription_id
        );
        if let Some(secret) = &s.signing_secret {
            eprintln!("Signing secret for this session: {secret}");
        }
        if let Some((_, url)) = &self.forward {
            eprintln!("Forwarding to {url}. Ctrl-C stops.");
        }
        Ok(())
    }

    async fn handle(&self, d: ListenDelivery) {
        let verdict = self.verify(&d);
        let forwarded = match &self.forward {
            Some((http, url)) => Some(forward(http, url, &d).await),
            None => None,
        };
        let ack = ListenAck {
            delivery: d.delivery.clone(),
            status: match &forwarded {
                Some(Ok((status, _))) => Some(*status),
                Some(Err(_)) => None,
                // Without a receiver of its own, the listener answers as a verifying receiver.
                None => Some(if verdict.is_ok() { 200 } else { 401 }),
            },
            body: None,
            error: forwarded.as_ref().and_then(|f| f.as_ref().err().cloned()),
        };
        self.print(&d, &verdict, forwarded.as_ref());
        if let Some(id) = &self.session {
            if let Err(e) = self.client.ack_listen(id, &ack).await {
                eprintln!("{}", dim(&format!("acknowledging a delivery failed: {e}")));
            }
        }
    }

    /// Both schemes must pass.
    fn verify(&self, d: &ListenDelivery) -> Result<(), String> {
        let Some(v) = &self.verifier else {
            return Err("no secret for this session".into());
        };
        let body = d.body.as_bytes();
        v.verify(&d.headers, body)
            .map_err(|e| format!("webhook-signature: {e}"))?;
        v.verify_legacy(&d.headers, body)
            .map_err(|e| format!("x-webhook-signature: {e}"))?;
        Ok(())
    }

    fn print(
        &self,
        d: &ListenDelivery,
        verdict: &Result<(), String>,
        forwarded: Option<&Result<(u16, Duration), String>>,
    ) {
        let event: Value = serde_json::from_str(&d.body).unwrap_or(Value::Null);
        if self.json {
            println!("{}", d.body);
            return;
        }
        let time = chrono::Local::now().format("%H:%M:%S").to_string();
        let kind = event["event_type"].as_str().unwrap_or("?");
        let id = event["event_id"].as_str().unwrap_or("?");
        let verified = match verdict {
            Ok(()) => green("verified"),
            Err(e) => red(&format!("NOT VERIFIED ({e})")),
        };
        let forward = match forwarded {
            None => String::new(),
            Some(Ok((status, took))) => {
                let s = format!("-> {status} ({} ms)", took.as_millis());
                match status {
                    200..=299 => green(&s),
                    // Acknowledged as the receiver answered, the 410 deactivates this session's
                    // subscription as it would a real endpoint's: say so, or the listener would
                    // wait for events that no longer come.
                    410 => red(&format!(
                        "{s}: 410 Gone deactivated this session's subscription; no more events \
                         will come (restart `hookline listen` for a new session)"
                    )),
                    _ => red(&s),
                }
            }
            Some(Err(e)) => red(&format!("-> failed: {e}")),
        };
        println!(
            "{}  {}  {}  {}  {verified}  {forward}",
            dim(&time),
            bold(kind),
            id,
            output::truncate(&summary(&event["data"]), 60)
        );
    }
}

/// POSTs the body with the delivery's headers; (status, latency) or why it failed.
async fn forward(
    http: &reqwest::Client,
    url: &str,
    d: &ListenDelivery,
) -> Result<(u16, Duration), String> {
    let mut req = http.post(url).body(d.body.clone());
    for (k, v) in &d.headers {
        if !matches!(k.as_str(), "content-length" | "host" | "connection") {
            req = req.header(k, v);
        }
    }
    let started = Instant::now();
    let answer = req.send().await.map_err(|e| e.to_string())?;
    let status = answer.status().as_u16();
    let _ = answer.bytes().await;
    Ok((status, started.elapsed()))
}

/// `key=value` for the event data's scalar fields (and ids of nested objects): enough to
/// recognise an event on one line.
fn summary(data: &Value) -> String {
    let Some(obj) = data.as_object() else {
        return String::new();
    };
    let mut parts = Vec::new();
    for (k, v) in obj {
        let shown = match v {
            Value::String(s) => format!("{k}={}", output::truncate(s, 24)),
            Value::Number(n) => format!("{k}={n}"),
            Value::Bool(b) => format!("{k}={b}"),
            Value::Object(o) => match o.get("id").and_then(Value::as_str) {
                Some(id) => format!("{k}.id={}", output::truncate(id, 24)),
                None => continue,
            },
            _ => continue,
        };
        parts.push(shown);
    }
    parts.join(" ")
}
