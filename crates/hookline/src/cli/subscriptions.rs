//! `hookline subscriptions create|list|get|update|delete|test|rotate-secret`.

use clap::{Args, Subcommand};
use hookline_client::{
    CreateSubscription, RotatedSecret, Subscription, TestResult, UpdateSubscription,
};

use super::output::{self, bold, dim, green, red, yellow};
use super::{comma_list, Connection};

#[derive(Debug, Args)]
pub struct Cmd {
    #[command(flatten)]
    conn: Connection,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Create a subscription; prints its signing secret once.
    Create {
        /// HTTPS URL that receives the events (`--url` is the server's).
        #[arg(long)]
        target_url: String,
        /// Event types, comma-separated (see `hookline events types`).
        #[arg(long, required = true)]
        events: String,
        /// Only events from these lines (E.164, comma-separated).
        #[arg(long)]
        phone_numbers: Option<String>,
        #[arg(long)]
        routing_id_header: Option<String>,
        #[arg(long)]
        routing_key_header: Option<String>,
    },
    /// List subscriptions, oldest first.
    List,
    /// Show one subscription.
    Get { id: String },
    /// Change a subscription; only the options given change.
    Update {
        id: String,
        #[arg(long)]
        target_url: Option<String>,
        #[arg(long)]
        events: Option<String>,
        /// Comma-separated; an empty string clears the filter.
        #[arg(long)]
        phone_numbers: Option<String>,
        #[arg(long, conflicts_with = "deactivate")]
        activate: bool,
        #[arg(long)]
        deactivate: bool,
    },
    /// Delete a subscription (pending deliveries are cancelled).
    Delete { id: String },
    /// Send one synthetic event through the signed delivery path and show the outcome.
    Test {
        id: String,
        /// Default: the subscription's first event type.
        #[arg(long)]
        event_type: Option<String>,
    },
    /// Issue a new signing secret; the old one keeps signing during the grace period.
    RotateSecret {
        id: String,
        /// Seconds the old secret stays valid (server default 86400, at most 7 days; 0 ends it now).
        #[arg(long)]
        grace_period_seconds: Option<u64>,
    },
}

pub async fn run(cmd: Cmd) -> anyhow::Result<()> {
    let ctx = cmd.conn.resolve()?;
    let (c, json) = (&ctx.client, ctx.json);
    match cmd.action {
        Action::Create {
            target_url,
            events,
            phone_numbers,
            routing_id_header,
            routing_key_header,
        } => {
            let req = CreateSubscription {
                target_url,
                subscribed_events: comma_list(&events),
                phone_numbers: phone_numbers.as_deref().map(comma_list),
                routing_id_header,
                routing_key_header,
            };
            let created = c.create_subscription(&req).await?;
            output::emit(json, &created, |c| {
                show(&c.subscription);
                show_secret("Signing secret", &c.signing_secret);
            });
        }
        Action::List => output::emit(json, &c.list_subscriptions().await?, |list| {
            if list.subscriptions.is_empty() {
                println!("No subscriptions.");
            } else {
                let rows: Vec<Vec<String>> = list.subscriptions.iter().map(row).collect();
                output::table(&["ID", "URL", "EVENTS", "ACTIVE", "CREATED"], &rows);
            }
        }),
        Action::Get { id } => output::emit(json, &c.get_subscription(&id).await?, show),
        Action::Update {
            id,
            target_url,
            events,
            phone_numbers,
            activate,
            deactivate,
        } => {
            let update = UpdateSubscription {
                target_url,
                subscribed_events: events.as_deref().map(comma_list),
                is_active: (activate || deactivate).then_some(activate),
                phone_numbers: phone_numbers.as_deref().map(|p| Some(comma_list(p))),
                ..Default::default()
            };
            anyhow::ensure!(
                !update.is_empty(),
                "nothing to change: give --target-url, --events, --phone-numbers, --activate or --deactivate"
            );
            output::emit(json, &c.update_subscription(&id, &update).await?, show);
        }
        Action::Delete { id } => {
            c.delete_subscription(&id).await?;
            // The API answers 204 with no body; --json prints nothing, as the API does.
            if !json {
                println!("Deleted subscription {id}.");
            }
        }
        Action::Test { id, event_type } => {
            let r = c.send_test_event(&id, event_type.as_deref()).await?;
            output::emit(json, &r, show_test);
        }
        Action::RotateSecret {
            id,
            grace_period_seconds,
        } => {
            let r = c.rotate_secret(&id, grace_period_seconds).await?;
            output::emit(json, &r, show_rotated);
        }
    }
    Ok(())
}

fn show_test(r: &TestResult) {
    let status = match (r.http_status_code, &r.error_type) {
        (Some(s), _) if (200..300).contains(&s) => green(&format!("{s} OK")),
        (Some(s), _) => red(&s.to_string()),
        (None, Some(kind)) => red(kind),
        (None, None) => red("no answer"),
    };
    output::fields(&[
        ("Event", r.event_id.clone()),
        ("Status", status),
        (
            "Duration",
            r.duration_ms.map_or("-".into(), |d| format!("{d} ms")),
        ),
        ("Error", r.error_message.clone().unwrap_or_default()),
    ]);
}

fn show_rotated(r: &RotatedSecret) {
    show_secret("New signing secret", &r.signing_secret);
    if let Some(at) = &r.previous_secret_expires_at {
        println!(
            "The previous secret keeps working until {at} ({}).",
            output::relative(at)
        );
    }
}

fn row(s: &Subscription) -> Vec<String> {
    vec![
        s.id.clone(),
        output::truncate(&s.target_url, 50),
        if s.subscribed_events.len() <= 2 {
            s.subscribed_events.join(",")
        } else {
            format!("{} events", s.subscribed_events.len())
        },
        if s.is_active { green("yes") } else { dim("no") },
        output::relative(&s.created_at),
    ]
}

fn show(s: &Subscription) {
    let phones = match &s.phone_numbers {
        Some(p) if !p.is_empty() => p.join(", "),
        _ => dim("all lines"),
    };
    output::fields(&[
        ("ID", s.id.clone()),
        ("URL", s.target_url.clone()),
        ("Active", if s.is_active { green("yes") } else { dim("no") }),
        ("Events", s.subscribed_events.join(", ")),
        ("Phone numbers", phones),
        (
            "Created",
            format!("{} ({})", s.created_at, output::relative(&s.created_at)),
        ),
        (
            "Updated",
            format!("{} ({})", s.updated_at, output::relative(&s.updated_at)),
        ),
    ]);
}

pub(crate) fn show_secret(label: &str, secret: &str) {
    println!();
    println!("{}: {}", bold(label), secret);
    println!(
        "{}",
        yellow("Save this now: it is shown only once and cannot be retrieved later.")
    );
}
