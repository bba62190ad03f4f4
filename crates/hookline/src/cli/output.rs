//! How the CLI shows things: aligned tables, colours only on a terminal, relative times, and
//! the API's own JSON with `--json`.

use std::io::IsTerminal;

/// Colours when stdout is a terminal and `NO_COLOR` is unset.
pub fn colours() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

pub fn paint(code: &str, text: &str) -> String {
    if colours() {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

pub fn bold(text: &str) -> String {
    paint("1", text)
}

pub fn green(text: &str) -> String {
    paint("32", text)
}

pub fn red(text: &str) -> String {
    paint("31", text)
}

pub fn yellow(text: &str) -> String {
    paint("33", text)
}

pub fn dim(text: &str) -> String {
    paint("2", text)
}

/// Prints `value` as pretty JSON: the API's answer, for scripts.
pub fn json<T: serde::Serialize>(value: &T) {
    // Through `Value`, whose objects are sorted maps: keys come out sorted at every level, as
    // README promises scripts, whatever order the client's types declare them in.
    let value = serde_json::to_value(value).expect("answers serialise");
    println!(
        "{}",
        serde_json::to_string_pretty(&value).expect("answers serialise")
    );
}

/// `value` as one line of JSON, keys sorted like [`json`]'s (NDJSON output).
pub fn json_line<T: serde::Serialize>(value: &T) -> String {
    let value = serde_json::to_value(value).expect("answers serialise");
    serde_json::to_string(&value).expect("answers serialise")
}

/// The API's JSON with `--json`, else `text` of it.
pub fn emit<T: serde::Serialize>(as_json: bool, value: &T, text: impl FnOnce(&T)) {
    if as_json {
        json(value)
    } else {
        text(value)
    }
}

/// A table with a header row, columns padded to their widest cell (colour codes excluded).
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let width = |s: &str| strip_ansi(s).chars().count();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(width(cell));
        }
    }
    let line = |cells: Vec<String>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            out.push_str(cell);
            if i + 1 < cells.len() {
                out.push_str(&" ".repeat(widths[i] - width(cell) + 2));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.iter().map(|h| bold(h)).collect());
    for row in rows {
        line(row.clone());
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_escape = false;
    for c in s.chars() {
        match (in_escape, c) {
            (false, '\x1b') => in_escape = true,
            (true, 'm') => in_escape = false,
            (true, _) => {}
            (false, c) => out.push(c),
        }
    }
    out
}

/// Key: value lines, keys aligned.
pub fn fields(pairs: &[(&str, String)]) {
    let w = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in pairs {
        println!("{}  {v}", bold(&format!("{k:<w$}")));
    }
}

/// "3 minutes ago" / "in 20 seconds" for an RFC 3339 time; the text itself if it does not parse.
pub fn relative(rfc3339: &str) -> String {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(rfc3339) else {
        return rfc3339.to_owned();
    };
    relative_to(t.with_timezone(&chrono::Utc), chrono::Utc::now())
}

fn relative_to(t: chrono::DateTime<chrono::Utc>, now: chrono::DateTime<chrono::Utc>) -> String {
    // From milliseconds, rounded: "in 60 seconds" read a moment later is still a minute.
    let secs = ((now - t).num_milliseconds() as f64 / 1000.0).round() as i64;
    // Rounded to the nearest unit: a 24-hour grace read a second later is "in 1 day", not "in
    // 23 hours".
    let round = |s: u64, unit: u64| (s + unit / 2) / unit;
    let (n, unit) = match secs.unsigned_abs() {
        s if s < 5 => return "just now".into(),
        s if s < 60 => (s, "second"),
        s if round(s, 60) < 60 => (round(s, 60), "minute"),
        s if round(s, 3600) < 24 => (round(s, 3600), "hour"),
        s => (round(s, 86_400), "day"),
    };
    let plural = if n == 1 { "" } else { "s" };
    if secs >= 0 {
        format!("{n} {unit}{plural} ago")
    } else {
        format!("in {n} {unit}{plural}")
    }
}

/// Text cut to `max` characters with an ellipsis.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let cut: String = s.chars().take(max.saturating_sub(1)).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times() {
        let now = chrono::Utc::now();
        let at = |s: i64| relative_to(now - chrono::Duration::seconds(s), now);
        assert_eq!(at(2), "just now");
        assert_eq!(at(30), "30 seconds ago");
        assert_eq!(at(60), "1 minute ago");
        assert_eq!(at(7200), "2 hours ago");
        assert_eq!(at(-89), "in 1 minute");
        let soon = |ms: i64| relative_to(now + chrono::Duration::milliseconds(ms), now);
        assert_eq!(soon(59_990), "in 1 minute", "60 s read 10 ms later");
        assert_eq!(at(-86_399), "in 1 day");
        assert_eq!(at(-(23 * 3600 + 59 * 60)), "in 1 day");
        assert_eq!(at(-(22 * 3600 + 40 * 60)), "in 23 hours");
        assert_eq!(at(3_580), "1 hour ago");
        assert_eq!(at(3_500), "58 minutes ago");
        assert_eq!(relative("not a time"), "not a time");
    }

    #[test]
    fn truncation_and_ansi() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
        assert_eq!(strip_ansi("\x1b[1mID\x1b[0m"), "ID");
    }
}
