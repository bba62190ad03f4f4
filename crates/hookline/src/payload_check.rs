//! Validation on publish: each event's `data` against its type's JSON Schema from the catalogue
//! (`hookline_core::payload::catalogue`), as `HOOKLINE_VALIDATE_PAYLOADS` says: `off`, `warn`
//! (accept, log, count) or `strict` (refuse, naming the JSON path and the rule).
//!
//! Each event type's schema is compiled once, when the first event of that type is checked:
//! compiling all 75 at start kept about 10 MiB that a deployment using a few types never needs.
//! A check parses `data` once more (the request parse kept it as raw text, which is what is
//! delivered), takes the validator's fast yes/no path, and only for a `data` that fails asks
//! for the first failure's details. Never blocks on I/O.

use hookline_core::payload::{catalogue, json};
use hookline_core::EventType;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::OnceLock;

use crate::config::ValidatePayloads;
use crate::telemetry;

/// Why a `data` is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// A value receivers' JSON parsers refuse (in every mode): what and where.
    Unreadable(String),
    /// It breaks its type's schema.
    Schema(Violation),
}

/// Why a `data` does not match its type's schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON Pointer into `data` (`/parts/1/type`); empty for `data` itself.
    pub path: String,
    /// The schema keyword that failed (`required`, `type`, `enum`, `format`, …).
    pub rule: &'static str,
    /// The validator's own sentence, e.g. `"id" is a required property`.
    pub message: String,
}

impl Violation {
    /// `data/parts/1/type: "sticker" is not one of … (rule: enum)`.
    pub fn describe(&self, event_type: EventType) -> String {
        format!(
            "data{} does not match the {event_type} schema: {} (rule: {}; GET /admin/v1/event-types has the schema)",
            self.path, self.message, self.rule
        )
    }
}

pub struct PayloadCheck {
    mode: ValidatePayloads,
    /// One slot per event type, compiled on first use; `None` inside if the schema did not
    /// compile (the catalogue's tests compile every one, so this is logged, not expected).
    validators: HashMap<EventType, OnceLock<Option<jsonschema::Validator>>>,
    /// Events accepted in `warn` mode that failed their check, since start.
    warned: AtomicU64,
    /// Warn-mode log lines are limited to one a second (a publisher sending every event wrong
    /// must not turn the log into the bottleneck); this is the second of the last one.
    last_log_second: AtomicI64,
    warned_at_last_log: AtomicU64,
}

impl PayloadCheck {
    /// A slot for every event type's validator (none with `off`).
    pub fn new(mode: ValidatePayloads) -> anyhow::Result<Self> {
        let validators = match mode {
            ValidatePayloads::Off => HashMap::new(),
            _ => catalogue::entries()
                .iter()
                .map(|e| (e.event_type, OnceLock::new()))
                .collect(),
        };
        Ok(PayloadCheck {
            mode,
            validators,
            warned: AtomicU64::new(0),
            last_log_second: AtomicI64::new(i64::MIN),
            warned_at_last_log: AtomicU64::new(0),
        })
    }

    pub fn mode(&self) -> ValidatePayloads {
        self.mode
    }

    /// `event_type`'s validator, compiled on first use.
    fn validator(&self, event_type: EventType) -> Option<&jsonschema::Validator> {
        let slot = self.validators.get(&event_type)?;
        slot.get_or_init(|| {
            let schema = &catalogue::entry(event_type).schema;
            jsonschema::options()
                .should_validate_formats(true)
                .build(schema)
                .inspect_err(|e| {
                    tracing::error!(%event_type, error = %e, "payload schema does not compile; events of this type are not checked");
                })
                .ok()
        })
        .as_ref()
    }

    /// Why `data` (a JSON object's text) is refused whatever the mode (a value receivers'
    /// parsers refuse), or the first way it breaks `event_type`'s schema. The schema check's
    /// parse is the readability check; with no schema to check, [`json::readable`] makes it.
    pub fn examine(&self, event_type: EventType, data: &str) -> Result<(), Refused> {
        let Some(validator) = self.validator(event_type) else {
            return json::readable(data).map_err(Refused::Unreadable);
        };
        let value: Value = match serde_json::from_str(data) {
            Ok(v) => v,
            Err(_) => {
                // serde's sentence, in the input's terms.
                let why = json::readable(data).err().unwrap_or_default();
                return Err(Refused::Unreadable(why));
            }
        };
        if validator.is_valid(&value) {
            return Ok(());
        }
        let Some(err) = validator.validate(&value).err() else {
            return Ok(());
        };
        Err(Refused::Schema(Violation {
            path: err.instance_path().to_string(),
            rule: keyword(err.kind().keyword()),
            message: bounded(err.to_string()),
        }))
    }

    /// The first way `data` breaks `event_type`'s schema, if it does (the tests' view).
    #[cfg(test)]
    pub fn violation(&self, event_type: EventType, data: &str) -> Option<Violation> {
        match self.examine(event_type, data) {
            Err(Refused::Schema(v)) => Some(v),
            _ => None,
        }
    }

    /// Applies the mode: a schema violation is `Err` only in `strict`, and in `warn` the event
    /// passes, logged and counted; unreadable `data` is `Err` in every mode.
    pub fn check(&self, event_type: EventType, data: &str) -> Result<(), Refused> {
        let v = match self.examine(event_type, data) {
            Ok(()) => return Ok(()),
            Err(Refused::Schema(v)) => v,
            Err(unreadable) => return Err(unreadable),
        };
        if self.mode == ValidatePayloads::Strict {
            telemetry::payload_violation(event_type.as_str(), "strict");
            return Err(Refused::Schema(v));
        }
        telemetry::payload_violation(event_type.as_str(), "warn");
        let total = self.warned.fetch_add(1, Ordering::Relaxed) + 1;
        let now = chrono::Utc::now().timestamp();
        let last = self.last_log_second.load(Ordering::Relaxed);
        if now > last
            && self
                .last_log_second
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let before = self.warned_at_last_log.swap(total, Ordering::Relaxed);
            tracing::warn!(
                event_type = %event_type,
                violations_total = total,
                since_last_line = total - before,
                "published anyway (HOOKLINE_VALIDATE_PAYLOADS=warn): {}",
                v.describe(event_type)
            );
        }
        Ok(())
    }

    /// Events accepted in `warn` mode although their `data` broke the schema.
    pub fn warned_total(&self) -> u64 {
        self.warned.load(Ordering::Relaxed)
    }
}

/// The validator's sentence quotes the offending value, which may be a whole object: keep the
/// error envelope's message small.
fn bounded(mut message: String) -> String {
    const MAX: usize = 240;
    if let Some((cut, _)) = message.char_indices().nth(MAX) {
        message.truncate(cut);
        message.push('…');
    }
    message
}

/// The keyword with a `'static` lifetime; a custom keyword (none is registered) reads `custom`.
fn keyword(k: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "required",
        "type",
        "enum",
        "const",
        "format",
        "minItems",
        "maxItems",
        "minimum",
        "maximum",
        "pattern",
        "minLength",
        "maxLength",
        "additionalProperties",
        "anyOf",
        "oneOf",
        "allOf",
        "not",
        "items",
        "uniqueItems",
        "false schema",
        "$ref",
    ];
    KNOWN
        .iter()
        .find(|known| **known == k)
        .copied()
        .unwrap_or("custom")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str) -> EventType {
        EventType::parse(name).unwrap()
    }

    #[test]
    fn every_catalogue_example_is_valid() {
        let check = PayloadCheck::new(ValidatePayloads::Strict).unwrap();
        for e in catalogue::entries() {
            let data = e.example.to_string();
            assert_eq!(
                check.violation(e.event_type, &data),
                None,
                "{}",
                e.event_type
            );
        }
    }

    #[test]
    fn names_the_path_and_rule() {
        let check = PayloadCheck::new(ValidatePayloads::Strict).unwrap();
        let example = |name: &str| catalogue::entry(t(name)).example.clone();
        let mut missing = example("message.received");
        missing["chat"].as_object_mut().unwrap().remove("id");
        let v = check
            .violation(t("message.received"), &missing.to_string())
            .unwrap();
        assert_eq!((v.path.as_str(), v.rule), ("/chat", "required"), "{v:?}");
        let mut wrong = example("reaction.added");
        wrong["is_from_me"] = "yes".into();
        let v = check
            .violation(t("reaction.added"), &wrong.to_string())
            .unwrap();
        assert_eq!((v.path.as_str(), v.rule), ("/is_from_me", "type"), "{v:?}");
        let mut part = example("message.received");
        part["parts"][1]["type"] = "sticker".into();
        let v = check
            .violation(t("message.received"), &part.to_string())
            .unwrap();
        assert_eq!(
            (v.path.as_str(), v.rule),
            ("/parts/1/type", "enum"),
            "{v:?}"
        );
        let mut media = example("message.received");
        media["parts"][1].as_object_mut().unwrap().remove("url");
        let v = check
            .violation(t("message.received"), &media.to_string())
            .unwrap();
        assert_eq!((v.path.as_str(), v.rule), ("/parts/1", "required"), "{v:?}");
        let mut time = example("message.failed");
        time["failed_at"] = "yesterday".into();
        let v = check
            .violation(t("message.failed"), &time.to_string())
            .unwrap();
        assert_eq!((v.path.as_str(), v.rule), ("/failed_at", "format"), "{v:?}");
        assert!(v
            .describe(t("message.failed"))
            .starts_with("data/failed_at does not match"));
    }

    #[test]
    fn warn_accepts_and_counts_off_checks_nothing() {
        let warn = PayloadCheck::new(ValidatePayloads::Warn).unwrap();
        assert_eq!(warn.check(t("message.sent"), "{}"), Ok(()));
        assert_eq!(warn.check(t("message.sent"), "{}"), Ok(()));
        assert_eq!(warn.warned_total(), 2);
        let off = PayloadCheck::new(ValidatePayloads::Off).unwrap();
        assert_eq!(off.violation(t("message.sent"), "{}"), None);
        let strict = PayloadCheck::new(ValidatePayloads::Strict).unwrap();
        assert!(strict.check(t("message.sent"), "{}").is_err());
        assert_eq!(strict.check(t("call.ringing"), "{}"), Ok(()));
    }
}
