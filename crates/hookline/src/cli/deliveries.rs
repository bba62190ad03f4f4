//! `hookline deliveries list|get|retry|recover`: a subscription's delivery log (partner key).

use clap::{Args, Subcommand};
use hookline_client::{Delivery, DeliveryList, DeliveryQuery, Recover};
use serde_json::Value;

use super::output::{self, dim, green, red, yellow};
use super::Connection;

#[derive(Debug, Args)]
pub struct Cmd {
    #[command(flatten)]
    conn: Connection,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// A page of a subscription's deliveries, newest first.
    List {
        subscription_id: String,
        /// pending, retrying, success, failed, cancelled (comma-separated).
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        event_type: Option<String>,
        /// RFC 3339.
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
        /// 1 to 100 [server default 20].
        #[arg(long)]
        per_page: Option<u32>,
        /// From a previous page's next_cursor.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// One delivery with every attempt.
    Get {
        subscription_id: String,
        event_id: String,
    },
    /// Attempt a delivery again now (same event id).
    Retry {
        subscription_id: String,
        event_id: String,
    },
    /// Re-queue every failed delivery of a window.
    Recover {
        subscription_id: String,
        /// RFC 3339.
        #[arg(long)]
        since: String,
        #[arg(long)]
        until: Option<String>,
    },
}

pub async fn run(cmd: Cmd) -> anyhow::Result<()> {
    let ctx = cmd.conn.resolve()?;
    let c = &ctx.client;
    match cmd.action {
        Action::List {
            subscription_id,
            status,
            event_type,
            since,
            until,
            per_page,
            cursor,
        } => {
            let query = DeliveryQuery {
                status,
                event_type,
                since,
                until,
                per_page,
                cursor,
                ..Default::default()
            };
            let page = c.list_deliveries(&subscription_id, &query).await?;
            output::emit(ctx.json, &page, show_page);
        }
        Action::Get {
            subscription_id,
            event_id,
        } => {
            output::emit(
                ctx.json,
                &c.get_delivery(&subscription_id, &event_id).await?,
                show,
            );
        }
        Action::Retry {
            subscription_id,
            event_id,
        } => {
            let answer = c.retry_delivery(&subscription_id, &event_id).await?;
            output::emit(ctx.json, &answer, |_| {
                println!("Retry of {event_id} queued.")
            });
        }
        Action::Recover {
            subscription_id,
            since,
            until,
        } => {
            let r = c
                .recover(&subscription_id, &Recover { since, until })
                .await?;
            output::emit(ctx.json, &r, |r| {
                println!(
                    "Recovery {} queued {} failed deliveries.",
                    r.recovery_id, r.deliveries
                )
            });
        }
    }
    Ok(())
}

fn show_page(page: &DeliveryList) {
    let rows: Vec<Vec<String>> = page.deliveries.iter().map(row).collect();
    output::table(
        &["TIME", "EVENT", "TYPE", "STATUS", "ATTEMPT", "HTTP", "MS"],
        &rows,
    );
    if let Some(next) = page
        .pagination
        .next_cursor
        .as_ref()
        .filter(|_| page.pagination.has_more)
    {
        println!("{}", dim(&format!("more: --cursor {next}")));
    }
}

fn status(d: &Delivery) -> String {
    match d.status.as_deref().unwrap_or("?") {
        "success" => green("success"),
        "failed" => red("failed"),
        s @ ("retrying" | "pending") => yellow(s),
        other => dim(other),
    }
}

fn row(d: &Delivery) -> Vec<String> {
    let when = d
        .timestamp
        .as_deref()
        .or(d.created_at.as_deref())
        .unwrap_or("");
    vec![
        output::relative(when),
        d.event_id.clone(),
        d.webhook_event_type.clone().unwrap_or_default(),
        status(d),
        match (d.attempt, d.max_attempts) {
            (Some(a), Some(m)) => format!("{a}/{m}"),
            (Some(a), None) => a.to_string(),
            _ => "-".into(),
        },
        d.http_status_code.map_or("-".into(), |s| s.to_string()),
        d.duration_ms.map_or("-".into(), |s| s.to_string()),
    ]
}

fn show(d: &Delivery) {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    output::fields(&[
        ("Event", d.event_id.clone()),
        ("Type", opt(&d.webhook_event_type)),
        ("Status", status(d)),
        ("Target", opt(&d.target_url)),
        ("Created", opt(&d.created_at)),
        ("Next attempt", opt(&d.next_attempt_at)),
        ("Trace", opt(&d.trace_id)),
    ]);
    let Some(attempts) = &d.attempts else { return };
    println!();
    let field = |a: &Value, k: &str| match &a[k] {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let rows: Vec<Vec<String>> = attempts
        .iter()
        .map(|a| {
            vec![
                field(a, "attempt"),
                field(a, "started_at"),
                field(a, "http_status_code"),
                field(a, "duration_ms"),
                output::truncate(
                    &[field(a, "error_type"), field(a, "error_message")].join(" "),
                    60,
                ),
            ]
        })
        .collect();
    output::table(&["#", "STARTED", "HTTP", "MS", "ERROR"], &rows);
}
