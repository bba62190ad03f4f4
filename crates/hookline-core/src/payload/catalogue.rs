//! The event-type catalogue: for every [`EventType`], its family, a JSON Schema (draft 2020-12)
//! of its 2026-02-03 `data` and an example.
//!
//! The data is `catalogue.json`, embedded at build time and read once. It is generated from
//! linq-python 0.65.0's event models and CONTRACT.md §4.4's examples by
//! `scripts/gen-event-catalogue.py` (which says how); edit the script, not the file. The file
//! keeps one shared `$defs`; each entry here carries a self-contained schema holding only the
//! definitions it reaches, so a client or a validator can use it alone.

use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::sync::LazyLock;

use crate::event_type::EventType;

const SOURCE: &str = include_str!("catalogue.json");
pub const SCHEMA_DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

/// One event type as the catalogue describes it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub event_type: EventType,
    /// `message`, `reaction`, `poll`, `chat`, `account`, …
    pub family: String,
    /// One of the 25 types of Linq's seed spec (CONTRACT.md §2.7).
    pub seed: bool,
    /// The linq-python model the schema comes from; `None` where no source defines `data`
    /// (`call.*`: any object).
    pub model: Option<String>,
    /// Self-contained JSON Schema of `data` (2026-02-03).
    pub schema: Value,
    /// An example `data`: CONTRACT.md §4.4's for seed types, the smallest valid object otherwise.
    pub example: Value,
    /// The webhook versions that receive this type (`message.edited`: 2026-02-03 only).
    pub versions: Vec<String>,
    /// Delivered in a different shape to 2025-01-01 subscriptions (see [`super::v2025`]).
    pub converted_for_2025_01_01: bool,
}

#[derive(Deserialize)]
struct File {
    #[serde(rename = "$defs")]
    defs: Map<String, Value>,
    event_types: Vec<RawEntry>,
}

#[derive(Deserialize)]
struct RawEntry {
    event_type: String,
    family: String,
    seed: bool,
    model: Option<String>,
    schema: Value,
    example: Value,
    versions: Vec<String>,
    converted_for_2025_01_01: bool,
}

static CATALOGUE: LazyLock<Vec<Entry>> = LazyLock::new(|| {
    let file: File = serde_json::from_str(SOURCE).expect("catalogue.json parses");
    let entries: Vec<Entry> = file
        .event_types
        .into_iter()
        .map(|raw| Entry {
            event_type: EventType::parse(&raw.event_type).expect("catalogue names known types"),
            schema: self_contained(raw.schema, &file.defs),
            family: raw.family,
            seed: raw.seed,
            model: raw.model,
            example: raw.example,
            versions: raw.versions,
            converted_for_2025_01_01: raw.converted_for_2025_01_01,
        })
        .collect();
    assert!(
        EventType::all().eq(entries.iter().map(|e| e.event_type)),
        "catalogue.json lists every event type, in EventType::all() order"
    );
    entries
});

/// Every event type, in `EventType::all()` order.
pub fn entries() -> &'static [Entry] {
    &CATALOGUE
}

pub fn entry(event_type: EventType) -> &'static Entry {
    entries()
        .iter()
        .find(|e| e.event_type == event_type)
        .expect("every event type is catalogued")
}

/// `schema` with `$schema` and the shared definitions it reaches, directly or through others.
fn self_contained(schema: Value, defs: &Map<String, Value>) -> Value {
    let mut reached = BTreeSet::new();
    let mut pending = Vec::new();
    refs(&schema, &mut pending);
    while let Some(name) = pending.pop() {
        if reached.insert(name.clone()) {
            refs(&defs[&name], &mut pending);
        }
    }
    let mut out = Map::new();
    out.insert("$schema".into(), SCHEMA_DIALECT.into());
    if let Value::Object(fields) = schema {
        out.extend(fields);
    }
    if !reached.is_empty() {
        let used = reached.into_iter().map(|n| {
            let d = defs[&n].clone();
            (n, d)
        });
        out.insert("$defs".into(), Value::Object(used.collect()));
    }
    Value::Object(out)
}

/// The names of `#/$defs/…` references anywhere in `v`.
fn refs(v: &Value, into: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                match (k.as_str(), child) {
                    ("$ref", Value::String(r)) => {
                        if let Some(name) = r.strip_prefix("#/$defs/") {
                            into.push(name.to_owned());
                        }
                    }
                    _ => refs(child, into),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| refs(i, into)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_is_catalogued_with_a_self_contained_schema() {
        assert_eq!(entries().len(), 75);
        assert_eq!(entries().iter().filter(|e| e.seed).count(), 25);
        for e in entries() {
            let text = e.schema.to_string();
            let mut wanted = Vec::new();
            refs(&e.schema, &mut wanted);
            for name in wanted {
                assert!(
                    e.schema["$defs"].get(&name).is_some(),
                    "{}: {name} missing",
                    e.event_type
                );
            }
            assert!(text.contains(SCHEMA_DIALECT));
        }
        let received = entry(EventType::parse("message.received").unwrap());
        assert_eq!(received.family, "message");
        assert!(received.converted_for_2025_01_01);
        assert_eq!(received.example["direction"], "inbound");
        let edited = entry(EventType::parse("message.edited").unwrap());
        assert_eq!(edited.versions, ["2026-02-03"]);
        let call = entry(EventType::parse("call.ringing").unwrap());
        assert_eq!(call.model, None);
        assert_eq!(call.example, serde_json::json!({}));
    }
}
