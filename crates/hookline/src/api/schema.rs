//! The OpenAPI side of the input rules: schemas for the values the API parses (event type
//! names, E.164 numbers, target URLs, header names, names), and the error answers every
//! operation can give by the way it is built. The document must be exact enough to fuzz
//! (`scripts/schemathesis.sh`): a request valid by the schema is one the server accepts, and
//! every status the server can answer is listed with the error envelope.
//!
//! Where the server's rule is wider than a JSON Schema can say (any URL the WHATWG parser
//! accepts), the pattern describes a subset of what is accepted, and the description says so.

use std::borrow::Cow;

use hookline_core::target_url::MAX_TARGET_URL_LEN;
use hookline_core::{event_type, header_name, ids::MAX_ID_LEN, partner::MAX_PARTNER_NAME};
use hookline_core::{DeliveryStatus, LogCursor};
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::schema::{AnyOfBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{RefOr, ResponseBuilder, Schema};
use utoipa::{Modify, PartialSchema, ToSchema};

use crate::error::ErrorEnvelope;

/// Declares a string schema type `$name` (shown in the document as `$title`).
macro_rules! string_schema {
    ($(#[$doc:meta])* $name:ident, $title:literal, $build:expr) => {
        $(#[$doc])*
        pub struct $name;

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                let build: fn(ObjectBuilder) -> ObjectBuilder = $build;
                build(ObjectBuilder::new().schema_type(Type::String)).into()
            }
        }

        impl ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($title)
            }
        }
    };
}

string_schema!(
    /// One of the event type names `GET /v3/webhook-events` lists.
    EventTypeName,
    "EventType",
    |s| s.enum_values(Some(event_type::ALL.iter().copied()))
);

string_schema!(
    /// `+`, a non-zero digit, then 1 to 14 more digits.
    E164Number,
    "E164Number",
    |s| {
        s.pattern(Some(r"^\+[1-9][0-9]{1,14}$"))
            .examples(["+12025551234"])
    }
);

string_schema!(
    /// A subscription's target.
    TargetUrlText,
    "TargetUrl",
    |s| {
        s.format(Some(SchemaFormat::Custom("uri".into())))
            .min_length(Some(1))
            .max_length(Some(MAX_TARGET_URL_LEN))
            .pattern(Some(TARGET_URL_PATTERN))
            .description(Some(
                "An absolute `https://` URL without credentials or fragment, port 1-65535 if \
                 any, at most 2048 characters; `?version=2025-01-01` or `?version=2026-02-03` \
                 picks the payload format. The pattern is a subset of what is accepted (any \
                 URL of that kind a WHATWG URL parser reads).",
            ))
            .examples(["https://example.com/webhooks"])
    }
);

/// Host names of letters and digits, the last label starting with a letter (so it is never read
/// as an IPv4 address), an optional port, and a path of unreserved characters.
const TARGET_URL_PATTERN: &str =
    r"^https://([a-z0-9]+\.)*[a-z][a-z0-9]*(:[1-9][0-9]{0,3})?(/[A-Za-z0-9._~-]*)*$";

/// Blank (only ASCII spaces) means "not set"; else an HTTP token that is none of the reserved
/// names, matched case-insensitively.
pub struct HeaderNameText;

impl PartialSchema for HeaderNameText {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .max_length(Some(header_name::MAX_HEADER_NAME_LEN))
            .pattern(Some(header_name_pattern()))
            .description(Some(
                "An HTTP header name (token characters), not one HTTP reserves for framing or \
                 hop-by-hop use nor one hookline sets (`webhook-*`, `x-webhook-*`, `proxy-*`); \
                 blank or null means unset.",
            ))
            .examples(["X-Chat-Id"])
            .into()
    }
}

impl ToSchema for HeaderNameText {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("HeaderName")
    }
}

/// `host` → `[Hh][Oo][Ss][Tt]`: JSON Schema patterns (ECMA-262) have no case-insensitive flag.
fn any_case(word: &str) -> String {
    word.chars()
        .map(|c| {
            if c.is_ascii_alphabetic() {
                format!("[{}{}]", c.to_ascii_uppercase(), c.to_ascii_lowercase())
            } else {
                regex_escape(c)
            }
        })
        .collect()
}

fn regex_escape(c: char) -> String {
    if c.is_ascii_alphanumeric() {
        c.to_string()
    } else {
        format!("\\{c}")
    }
}

fn header_name_pattern() -> String {
    let names: Vec<String> = header_name::RESERVED.iter().map(|n| any_case(n)).collect();
    let prefixes: Vec<String> = header_name::RESERVED_PREFIXES
        .iter()
        .map(|p| any_case(p))
        .collect();
    format!(
        r"^ *(?:(?!(?:{})(?: *$))(?!{})[A-Za-z0-9!#$%&'*+.^_`|~-]+)? *$",
        names.join("|"),
        prefixes.join("|")
    )
}

string_schema!(
    /// A name: not blank, no control characters.
    NameText,
    "Name",
    |s| {
        s.min_length(Some(1))
            .max_length(Some(MAX_PARTNER_NAME))
            .pattern(Some(name_pattern()))
            .description(Some(
                "1 to 200 characters, not only whitespace or zero-width characters, no control \
                 or bidirectional-control characters (surrounding whitespace is trimmed).",
            ))
    }
);

/// Rust's `char::is_whitespace` (what `str::trim` strips), as the inside of a pattern class:
/// ECMA-262's `\s` differs (it has U+FEFF, lacks U+0085).
const WHITESPACE_CHARS: &str = r"\t-\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";

/// Control characters and bidirectional controls (`partner::is_refused_char`), as the inside of
/// a pattern class.
const REFUSED_CHARS: &str = r"\x00-\x1F\x7F-\x9F\u061C\u200E\u200F\u2028-\u202E\u2066-\u2069";

/// Characters that show nothing (`partner::is_invisible`): a name of these and whitespace only
/// is blank.
const ZERO_WIDTH_CHARS: &str = r"\xAD\u034F\u115F\u1160\u17B4\u17B5\u180E\u200B-\u200D\u2060-\u2064\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0";

/// At least one character that is neither whitespace, zero-width nor refused; none refused.
fn name_pattern() -> String {
    format!(
        r"^[^{REFUSED_CHARS}]*[^{WHITESPACE_CHARS}{ZERO_WIDTH_CHARS}{REFUSED_CHARS}][^{REFUSED_CHARS}]*$"
    )
}

fn label_pattern() -> String {
    format!(r"^[^{REFUSED_CHARS}]*$")
}

string_schema!(
    /// An optional label: blank means none.
    LabelText,
    "Label",
    |s| {
        s.max_length(Some(MAX_PARTNER_NAME))
            .pattern(Some(label_pattern()))
            .description(Some(
                "At most 200 characters, no control or bidirectional-control characters; blank \
                 means none.",
            ))
    }
);

string_schema!(
    /// A caller-chosen event id (the idempotency key).
    EventIdText,
    "EventId",
    |s| s.pattern(Some(r"^[A-Za-z0-9_.:-]{1,128}$"))
);

string_schema!(
    /// A W3C trace id.
    TraceIdText,
    "TraceId",
    |s| s.pattern(Some(r"^[0-9A-Fa-f]{32}$"))
);

string_schema!(
    /// A partner id as the operator API returns it.
    PartnerIdText,
    "PartnerId",
    |s| {
        s.min_length(Some(1))
            .max_length(Some(MAX_ID_LEN))
            .pattern(Some(r"^[^\x00-\x1F\x7F-\x9F]+$"))
    }
);

string_schema!(
    /// An RFC 3339 time.
    DateTimeText,
    "DateTime",
    |s| s.format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
);

string_schema!(
    /// The one status a bulk retry takes.
    BulkRetryStatus,
    "BulkRetryStatus",
    |s| s.enum_values(Some(["failed"]))
);

// The delivery log's query parameters, each as the server reads it. An empty value is the same
// as none (the portal passes its forms' empty fields on, and `?status=&since=` templates are
// common), so every one admits "".

/// `DeliveryStatus::parse_list`: comma-separated names, each trimmed, empty items ignored.
fn status_list_pattern() -> String {
    let names: Vec<&str> = DeliveryStatus::ALL.iter().map(|s| s.as_str()).collect();
    let space = format!("[{WHITESPACE_CHARS}]");
    let item = format!("{space}*(?:(?:{}){space}*)?", names.join("|"));
    format!("^{item}(?:,{item})*$")
}

string_schema!(
    /// The log's `status` filter.
    StatusListText,
    "DeliveryStatusList",
    |s| {
        s.pattern(Some(status_list_pattern()))
            .description(Some(
                "Comma-separated: `pending`, `retrying`, `success`, `failed`, `cancelled`. \
                 Whitespace around a name and empty items are ignored; empty: every status.",
            ))
            .examples(["failed,retrying"])
    }
);

string_schema!(
    /// The log's `event_type` filter.
    EventTypeFilter,
    "EventTypeFilter",
    |s| {
        s.enum_values(Some(std::iter::once("").chain(event_type::ALL.iter().copied())))
            .description(Some("One event type; empty: any."))
    }
);

string_schema!(
    /// The Linq CLI's `status` filter (`GET /api/v1/webhook-logs`).
    CliStatusFilter,
    "WebhookLogStatusFilter",
    |s| {
        s.enum_values(Some(["", "all", "success", "failed", "retrying"]))
            .description(Some("`all` or empty: every status."))
    }
);

/// An integer from 1 to 100 as `usize::from_str` reads it (a `+` and leading zeros allowed).
const PER_PAGE_PATTERN: &str = r"^(?:\+?0*(?:[1-9][0-9]?|100))?$";

string_schema!(
    /// A page size.
    PerPageText,
    "PerPage",
    |s| {
        s.pattern(Some(PER_PAGE_PATTERN))
            .description(Some("An integer from 1 to 100; empty: 20."))
            .examples(["20"])
    }
);

string_schema!(
    /// A log page's cursor.
    CursorText,
    "LogCursor",
    |s| {
        s.max_length(Some(LogCursor::MAX_LEN))
            .pattern(Some(r"^[A-Za-z0-9_-]*$"))
            .description(Some(
                "The previous page's `next_cursor`, unchanged: it is opaque, and one this API did \
                 not make is refused (400). Empty: the first page.",
            ))
    }
);

/// A time bound of the log: a `date-time`, or empty for none.
pub struct DateTimeFilter;

impl PartialSchema for DateTimeFilter {
    fn schema() -> RefOr<Schema> {
        let empty = ObjectBuilder::new()
            .schema_type(Type::String)
            .max_length(Some(0));
        AnyOfBuilder::new()
            .item(DateTimeText::schema())
            .item(empty)
            .description(Some("An RFC 3339 date-time; empty: no bound."))
            .into()
    }
}

impl ToSchema for DateTimeFilter {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("DateTimeFilter")
    }
}

/// The document as served: utoipa 5 writes a link's fields in snake case (`operation_id`), which
/// OpenAPI tools ignore; they are renamed to OpenAPI's camel case here. Built once.
pub fn openapi_json() -> &'static serde_json::Value {
    static DOCUMENT: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut doc = serde_json::to_value(super::openapi_document()).expect("serializable");
        if let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) {
            let responses = paths
                .values_mut()
                .filter_map(|item| item.as_object_mut())
                .flat_map(|item| item.values_mut())
                .filter_map(|op| op.get_mut("responses").and_then(|r| r.as_object_mut()))
                .flat_map(|responses| responses.values_mut());
            for response in responses {
                let links = response.get_mut("links").and_then(|l| l.as_object_mut());
                for link in links.into_iter().flat_map(|l| l.values_mut()) {
                    camel_case_keys(link);
                }
            }
        }
        doc
    })
}

fn camel_case_keys(link: &mut serde_json::Value) {
    let Some(fields) = link.as_object_mut() else {
        return;
    };
    for (snake, camel) in [
        ("operation_id", "operationId"),
        ("operation_ref", "operationRef"),
        ("request_body", "requestBody"),
    ] {
        if let Some(value) = fields.remove(snake) {
            fields.insert(camel.to_owned(), value);
        }
    }
}

/// Adds the error answers each operation gives by the way it is built, so no handler can forget
/// one: an authenticated operation can answer 401 (no or a wrong credential), 429 (too many
/// failed authentications from the address) and 503 (the store cannot be reached or written,
/// or the node is stopping); one that reads a body 400 (not JSON, a wrong type, a value the rules
/// refuse), 408 (the body did not arrive in time) and 413 (over the limit); one with path
/// parameters 404 (nothing there, or another partner's).
pub struct ErrorResponses;

impl Modify for ErrorResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for operation in operations(item) {
                add_error_responses(operation);
            }
        }
        let components = openapi.components.get_or_insert_with(Default::default);
        let (name, schema) = (ErrorEnvelope::name(), ErrorEnvelope::schema());
        components
            .schemas
            .entry(name.into_owned())
            .or_insert(schema);
    }
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
    ]
    .into_iter()
    .flatten()
}

fn add_error_responses(operation: &mut Operation) {
    let mut add: Vec<(&str, &str)> = Vec::new();
    if operation.security.as_ref().is_some_and(|s| !s.is_empty()) {
        add.extend([
            ("401", "Missing, malformed, unknown or revoked credential"),
            (
                "429",
                "Too many failed authentications from this address; see `Retry-After`",
            ),
            (
                "503",
                "The store cannot take the request now, or the node is stopping; retry after \
                 `Retry-After` seconds",
            ),
        ]);
    }
    if operation.request_body.is_some() {
        add.extend([
            (
                "400",
                "Malformed JSON, a wrong type, a missing field or a value the rules refuse",
            ),
            ("408", "The body did not arrive within the body timeout"),
            ("413", "The body (or an event's `data`) is over the limit"),
        ]);
    }
    let has_path_params = operation.parameters.as_ref().is_some_and(|ps| {
        ps.iter()
            .any(|p| p.parameter_in == utoipa::openapi::path::ParameterIn::Path)
    });
    if has_path_params {
        add.push(("404", "No such resource (or another partner's)"));
    }
    for (status, description) in add {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| error_response(description));
    }
}

fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            utoipa::openapi::ContentBuilder::new()
                .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                    ErrorEnvelope::name(),
                ))))
                .build(),
        )
        .into()
}

#[cfg(test)]
mod properties;
