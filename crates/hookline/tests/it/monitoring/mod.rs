//! Monitoring over real HTTP: `/metrics` after real deliveries (the real binary, so its
//! counters are this test's alone), the dashboard and alert rules against what is exported,
//! the separate metrics listener, and retention in a running server.

mod metrics;
mod retention;

use std::collections::BTreeMap;

/// A scrape: each series (`name{label="value",…}`, labels sorted) and its value, and the
/// metric names that have a `# TYPE` line.
pub struct Scrape {
    pub series: BTreeMap<String, f64>,
    pub types: BTreeMap<String, String>,
    pub text: String,
}

impl Scrape {
    pub fn parse(text: &str) -> Scrape {
        let mut series = BTreeMap::new();
        let mut types = BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                types.insert(name.to_owned(), kind.to_owned());
                continue;
            }
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (key, value) = line.rsplit_once(' ').unwrap();
            series.insert(canonical(key), value.parse::<f64>().unwrap());
        }
        Scrape {
            series,
            types,
            text: text.to_owned(),
        }
    }

    /// The value of `name` with exactly `labels`; 0 when the series is not there.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let key = key(name, labels);
        self.series.get(&key).copied().unwrap_or(0.0)
    }
}

fn key(name: &str, labels: &[(&str, &str)]) -> String {
    let mut labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    labels.sort();
    match labels.is_empty() {
        true => name.to_owned(),
        false => format!("{name}{{{}}}", labels.join(",")),
    }
}

/// `name{b="2",a="1"}` as `name{a="1",b="2"}`. Label values here never hold commas or quotes.
fn canonical(series: &str) -> String {
    match series.split_once('{') {
        None => series.to_owned(),
        Some((name, rest)) => {
            let inner = rest.trim_end_matches('}');
            let labels: Vec<(&str, &str)> = inner
                .split(',')
                .filter(|l| !l.is_empty())
                .map(|l| {
                    let (k, v) = l.split_once('=').unwrap();
                    (k, v.trim_matches('"'))
                })
                .collect();
            key(name, &labels)
        }
    }
}

pub async fn scrape(http: &reqwest::Client, url: &str) -> Scrape {
    let r = http.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let content_type = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    Scrape::parse(&r.text().await.unwrap())
}
