//! `hookline events types|publish`, and `publish --file events.ndjson` in batches with a
//! progress bar.

use anyhow::Context;
use clap::{Args, Subcommand};
use hookline_client::{Client, NewEvent, PublishedBatch, MAX_BATCH};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use std::io::BufRead;
use std::path::PathBuf;
use std::time::Instant;

use super::output::{self, bold};
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
    /// List the event types a subscription may name.
    Types,
    /// Publish one event, or every event of an NDJSON file (operator token).
    Publish(Publish),
}

#[derive(Debug, Args)]
struct Publish {
    /// The partner the events belong to [default: the profile's partner_id].
    #[arg(long)]
    partner: Option<String>,
    /// Event type (one event).
    #[arg(
        long = "type",
        required_unless_present = "file",
        conflicts_with = "file"
    )]
    event_type: Option<String>,
    /// The line the event comes from (E.164).
    #[arg(long)]
    phone_number: Option<String>,
    /// The event's `data`, a JSON object [default: {}].
    #[arg(long)]
    data: Option<String>,
    /// Idempotency key [default: generated, kept across retries].
    #[arg(long)]
    event_id: Option<String>,
    /// One event object per line (`-` for stdin), published in batches. A line without
    /// `partner_id` gets --partner's.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Events per batch request (at most 1000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=MAX_BATCH as i64))]
    batch_size: u16,
    /// Batch requests in flight at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,
}

pub async fn run(cmd: Cmd) -> anyhow::Result<()> {
    let ctx = cmd.conn.resolve()?;
    match cmd.action {
        Action::Types => {
            let types = ctx.client.event_types().await?;
            if ctx.json {
                output::json(&types);
            } else {
                for t in &types.events {
                    println!("{t}");
                }
            }
        }
        Action::Publish(p) => {
            let partner = p.partner.clone().or(ctx.partner_id.clone());
            match &p.file {
                Some(file) => publish_file(&ctx.client, ctx.json, &p, partner, file).await?,
                None => {
                    let partner =
                        partner.context("--partner is required (or a profile partner_id)")?;
                    let data: Value = match &p.data {
                        Some(d) => serde_json::from_str(d).context("--data is not JSON")?,
                        None => Value::Object(Default::default()),
                    };
                    let event = NewEvent {
                        partner_id: partner,
                        event_type: p.event_type.clone().expect("required without --file"),
                        phone_number: p.phone_number.clone(),
                        data,
                        event_id: p.event_id.clone(),
                        created_at: None,
                        trace_id: None,
                    };
                    let r = ctx.client.publish(&event).await?;
                    if ctx.json {
                        output::json(&r);
                    } else {
                        println!(
                            "Published {} ({} {}).",
                            bold(&r.event_id),
                            r.deliveries,
                            if r.deliveries == 1 {
                                "delivery"
                            } else {
                                "deliveries"
                            }
                        );
                    }
                }
            }
        }
    }
    Ok(())
}

/// Reads every line first, so a malformed line stops the run before anything is sent.
fn read_events(file: &PathBuf, partner: Option<&str>) -> anyhow::Result<Vec<NewEvent>> {
    let reader: Box<dyn BufRead> = if file.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?,
        ))
    };
    let mut events = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", file.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let mut value: Value = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: not JSON", file.display(), n + 1))?;
        if let (Some(obj), Some(p)) = (value.as_object_mut(), partner) {
            obj.entry("partner_id").or_insert_with(|| p.into());
        }
        let event: NewEvent = serde_json::from_value(value)
            .with_context(|| format!("{}:{}: not an event", file.display(), n + 1))?;
        events.push(event);
    }
    Ok(events)
}

async fn publish_file(
    client: &Client,
    json: bool,
    p: &Publish,
    partner: Option<String>,
    file: &PathBuf,
) -> anyhow::Result<()> {
    let events = read_events(file, partner.as_deref())?;
    let started = Instant::now();
    // Drawn on stderr, and only on a terminal: scripts and --json output stay clean.
    let bar = ProgressBar::new(events.len() as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} events {per_sec} eta {eta}")
            .expect("valid template"),
    );
    let mut tasks = tokio::task::JoinSet::new();
    let mut batches = events
        .chunks(p.batch_size as usize)
        .map(<[NewEvent]>::to_vec);
    let (mut published, mut deliveries) = (0u64, 0u64);
    let mut failure = None;
    loop {
        while failure.is_none() && tasks.len() < p.concurrency as usize {
            let Some(batch) = batches.next() else { break };
            let client = client.clone();
            tasks.spawn(async move { client.publish_batch(&batch).await });
        }
        let Some(done) = tasks.join_next().await else {
            break;
        };
        match done.expect("publish task does not panic") {
            Ok(answer) => {
                record(&answer, json, &bar, &mut published, &mut deliveries);
            }
            // The batches in flight finish; no new one starts.
            Err(e) => failure = failure.or(Some(e)),
        }
    }
    bar.finish_and_clear();
    if let Some(e) = failure {
        eprintln!(
            "{published} of {} events were published before the error.",
            events.len()
        );
        return Err(e.into());
    }
    if !json {
        println!(
            "Published {published} events ({deliveries} deliveries) in {:.1} s.",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

fn record(
    answer: &PublishedBatch,
    json: bool,
    bar: &ProgressBar,
    published: &mut u64,
    deliveries: &mut u64,
) {
    if json {
        // One line per batch: the API's answer, as NDJSON.
        bar.suspend(|| println!("{}", serde_json::to_string(answer).expect("serialises")));
    }
    *published += answer.results.len() as u64;
    *deliveries += answer.results.iter().map(|r| r.deliveries).sum::<u64>();
    bar.inc(answer.results.len() as u64);
}
