//! The log sink: stderr, where a failed write is dropped and counted, never raised.
//!
//! tracing-subscriber reports a writer error with `eprintln!`, and `eprintln!` panics when
//! stderr cannot be written (disk full behind a redirected stderr, `/dev/full`): the panic
//! lands in whatever task logged — the publisher, the outcome writer — and takes it down. A log
//! line is never worth a task, so this writer swallows the error. The count is on `/healthz`.
//! This module must never panic and never block on anything but the write itself.

use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use tracing_subscriber::fmt::MakeWriter;

use crate::config::{LogFormat, LogSettings};

/// Log writes (one per log line) that stderr refused since the process started.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// How many log lines could not be written (see the module doc).
pub fn dropped_writes() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// `HOOKLINE_LOG` (default `info`) if tracing can read it and each bare directive is a level:
/// `infoo` would read as "everything from a target named infoo" and silence every line.
pub fn checked_filter(raw: Option<&str>) -> anyhow::Result<String> {
    // tracing reads levels by name or as 0 (off) to 5 (trace).
    const LEVELS: [&str; 12] = [
        "trace", "debug", "info", "warn", "error", "off", "0", "1", "2", "3", "4", "5",
    ];
    // Set but blank (`HOOKLINE_LOG=` in a compose file) is the default, not "nothing at all".
    let filter = match raw.map(str::trim) {
        Some(f) if f.split(',').any(|d| !d.trim().is_empty()) => f,
        _ => "info",
    };
    tracing_subscriber::EnvFilter::try_new(filter)
        .map_err(|e| anyhow::anyhow!("HOOKLINE_LOG '{filter}' is not a log filter: {e}"))?;
    for directive in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let bare = !directive.contains(['=', '[', ':']);
        anyhow::ensure!(
            !bare || LEVELS.contains(&directive.to_ascii_lowercase().as_str()),
            "HOOKLINE_LOG: '{directive}' is not a level ({}); a target takes one too, e.g. hookline=debug",
            LEVELS[..6].join(", ")
        );
    }
    Ok(filter.to_owned())
}

/// Installs the global subscriber: `settings`' filter (checked by [`checked_filter`]) and
/// format, into [`LogSink`].
pub fn init(settings: &LogSettings) {
    let filter = tracing_subscriber::EnvFilter::try_new(&settings.filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(LogSink)
        // Colour codes only for a person at a terminal, not in a file or a log collector.
        .with_ansi(io::stderr().is_terminal())
        // Our writer reports no errors; this also keeps the subscriber's own `eprintln!` out.
        .log_internal_errors(false);
    match settings.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Writes `text` to stderr outside the logger (the first-start banner); a failure is counted
/// like a dropped log line. Returns whether it was written.
pub fn write_stderr(text: &str) -> bool {
    // `eprint!`, not a raw stderr write, so a test harness captures it like any output; its
    // panic on a failed write is caught here, right where it happens.
    let print = std::panic::AssertUnwindSafe(|| eprint!("{text}"));
    let written = std::panic::catch_unwind(print).is_ok();
    if !written {
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
    written
}

/// A [`MakeWriter`] for stderr whose writes always succeed from the caller's point of view.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogSink;

impl<'a> MakeWriter<'a> for LogSink {
    type Writer = SinkWriter;

    fn make_writer(&'a self) -> SinkWriter {
        SinkWriter
    }
}

/// One log line's writer; see [`LogSink`].
pub struct SinkWriter;

impl Write for SinkWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // The formatter hands over one whole line per `write_all`: count it once, and report
        // it written so `write_all` does not retry or fail.
        if io::stderr().lock().write_all(buf).is_err() {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let _ = io::stderr().flush();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sink_never_reports_an_error() {
        let mut w = LogSink.make_writer();
        assert!(w.write_all(b"").is_ok());
        assert!(w.flush().is_ok());
        assert!(write_stderr(""));
    }
}
