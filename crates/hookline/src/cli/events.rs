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
                        Some(d) => match serde_json::from_str(d) {
                            Ok(v) => v,
                            Err(_)
                                if serde_json::from_str::<Box<serde_json::value::RawValue>>(d)
                                    .is_ok() =>
                            {
                                anyhow::bail!("{}", unreadable("--data", d))
                            }
                            Err(e) => anyhow::bail!("--data is not JSON: {e}"),
                        },
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
                        let repeated = r.repeated;
                        println!(
                            "{} {} ({} {}){}.",
                            if repeated {
                                "Already published"
                            } else {
                                "Published"
                            },
                            bold(&r.event_id),
                            r.deliveries,
                            if r.deliveries == 1 {
                                "delivery"
                            } else {
                                "deliveries"
                            },
                            if repeated {
                                "; this event id was published before, nothing new was sent"
                            } else {
                                ""
                            }
                        );
                    }
                }
            }
        }
    }
    Ok(())
}

/// Reads every line first, so a malformed line stops the run before anything is sent; each
/// event comes with its line number.
fn read_events(file: &PathBuf, partner: Option<&str>) -> anyhow::Result<Vec<(usize, NewEvent)>> {
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
        let at = || format!("{}:{}", file.display(), n + 1);
        let mut value = line_value(&line).map_err(|why| anyhow::anyhow!("{}: {why}", at()))?;
        if let (Some(obj), Some(p)) = (value.as_object_mut(), partner) {
            obj.entry("partner_id").or_insert_with(|| p.into());
        }
        let event: NewEvent = serde_json::from_value(value)
            .with_context(|| format!("{}:{}: not an event", file.display(), n + 1))?;
        precheck(&event).map_err(|why| anyhow::anyhow!("{}:{}: {why}", file.display(), n + 1))?;
        events.push((n + 1, event));
    }
    Ok(events)
}

/// A line's JSON, read field by field: serde's depth limit counts from the line, so `data` as
/// deep as the server takes it (127) would not parse inside it whole. A field receivers' parsers
/// refuse is named as the server names it.
fn line_value(line: &str) -> Result<Value, String> {
    use serde_json::value::RawValue;
    if let Err(e) = serde_json::from_str::<Box<RawValue>>(line) {
        return Err(format!("not JSON: {e}"));
    }
    let fields: serde_json::Map<String, Value> =
        match serde_json::from_str::<std::collections::BTreeMap<String, Box<RawValue>>>(line) {
            Err(_) => return Err("not an event: a JSON object is expected".into()),
            Ok(raw) => raw
                .into_iter()
                .map(|(name, raw)| match serde_json::from_str(raw.get()) {
                    Ok(v) => Ok((name, v)),
                    Err(_) => Err(unreadable(&name, raw.get())),
                })
                .collect::<Result<_, _>>()?,
        };
    Ok(Value::Object(fields))
}

/// What the server says of a value its JSON parsers refuse (`1e400`, a lone surrogate, nesting
/// past 127).
fn unreadable(name: &str, raw: &str) -> String {
    use hookline_core::payload::json;
    let why = json::readable(raw)
        .err()
        .unwrap_or_else(|| "serde cannot read it".into());
    json::refusal(name, &why)
}

/// The checks the server makes of an event's own fields, so that a file with a bad line is
/// refused before any of it is published. What only the server knows (whether the partner
/// exists, a strict schema check) is named by line when its batch is refused.
fn precheck(e: &NewEvent) -> Result<(), String> {
    use hookline_core::{EventId, EventTime, EventType, PhoneNumber, TraceId};
    EventType::parse(&e.event_type).map_err(|err| format!("event_type: {err}"))?;
    if let Some(phone) = &e.phone_number {
        PhoneNumber::parse(phone).map_err(|err| format!("phone_number: {err}"))?;
    }
    if !e.data.is_object() {
        return Err("data must be a JSON object".into());
    }
    if let Some(id) = &e.event_id {
        EventId::parse(id).map_err(|err| err.0)?;
    }
    if let Some(id) = &e.trace_id {
        TraceId::parse(id).map_err(|err| err.0)?;
    }
    match &e.created_at {
        Some(at) => EventTime::parse_created_at(at).map(drop),
        None => Ok(()),
    }
}

/// The file line of the event a refused batch's error names (`events[7]…`), if it names one.
fn refused_line(e: &hookline_client::Error, lines: &[usize]) -> Option<usize> {
    let message = &e.api()?.message;
    let index: usize = message
        .strip_prefix("events[")?
        .split(']')
        .next()?
        .parse()
        .ok()?;
    lines.get(index).copied()
}

async fn publish_file(
    client: &Client,
    json: bool,
    p: &Publish,
    partner: Option<String>,
    file: &PathBuf,
) -> anyhow::Result<()> {
    let (lines, events): (Vec<usize>, Vec<NewEvent>) =
        read_events(file, partner.as_deref())?.into_iter().unzip();
    let started = Instant::now();
    // Drawn on stderr, and only on a terminal: scripts and --json output stay clean.
    let bar = ProgressBar::new(events.len() as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} events {per_sec} eta {eta}")
            .expect("valid template"),
    );
    let mut tasks = tokio::task::JoinSet::new();
    let size = p.batch_size as usize;
    let mut batches = events.chunks(size).map(<[NewEvent]>::to_vec).enumerate();
    let (mut published, mut deliveries) = (0u64, 0u64);
    let mut failure = None;
    loop {
        while failure.is_none() && tasks.len() < p.concurrency as usize {
            let Some((n, batch)) = batches.next() else {
                break;
            };
            let client = client.clone();
            tasks.spawn(async move { (n, client.publish_batch(&batch).await) });
        }
        let Some(done) = tasks.join_next().await else {
            break;
        };
        match done.expect("publish task does not panic") {
            (_, Ok(answer)) => {
                record(&answer, json, &bar, &mut published, &mut deliveries);
            }
            // The batches in flight finish; no new one starts.
            (n, Err(e)) => failure = failure.or(Some((n, e))),
        }
    }
    bar.finish_and_clear();
    if let Some((n, e)) = failure {
        eprintln!(
            "{published} of {} events were published before the error.",
            events.len()
        );
        if let Some(line) = refused_line(&e, &lines[n * size..]) {
            eprintln!("The server refused {}:{line}:", file.display());
        }
        return Err(e.into());
    }
    if !json {
        let plural =
            |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        println!(
            "Published {} ({}) in {:.1} s.",
            plural(published, "event", "events"),
            plural(deliveries, "delivery", "deliveries"),
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
        bar.suspend(|| println!("{}", output::json_line(answer)));
    }
    *published += answer.results.len() as u64;
    *deliveries += answer.results.iter().map(|r| r.deliveries).sum::<u64>();
    bar.inc(answer.results.len() as u64);
}
