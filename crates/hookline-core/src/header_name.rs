//! Names of the delivery-affinity headers a partner chooses (`routing_id_header`,
//! `routing_key_header`, CONTRACT.md §3.6): HTTP tokens the receiver will see, never one that
//! hookline sets itself or that HTTP reserves for framing and hop-by-hop use.

use std::fmt;

/// The header that carries the chat id when `routing_id_header` is not set.
pub const DEFAULT_ROUTING_ID_HEADER: &str = "Linq-Chat-Id";

#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RoutingHeader(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{field} '{}' is not a usable HTTP header name",
    crate::text::quote(name)
)]
pub struct InvalidHeaderName {
    pub field: String,
    pub name: String,
}

/// Names HTTP reserves for framing and hop-by-hop use, or that every delivery sets (lowercase).
pub const RESERVED: &[&str] = &[
    "host",
    "content-type",
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "user-agent",
    "authorization",
];

/// Prefixes of the headers hookline sets itself, and of proxy headers (lowercase).
pub const RESERVED_PREFIXES: &[&str] = &["webhook-", "x-webhook-", "proxy-"];

/// The longest header name accepted.
pub const MAX_HEADER_NAME_LEN: usize = 128;

impl RoutingHeader {
    /// Trims the value; blank means unset (`Ok(None)`). `field` names the request field in errors.
    pub fn parse(field: &str, raw: Option<&str>) -> Result<Option<Self>, InvalidHeaderName> {
        let Some(name) = raw.map(str::trim).filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        let lower = name.to_ascii_lowercase();
        let token = name.len() <= MAX_HEADER_NAME_LEN
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        let reserved = RESERVED_PREFIXES.iter().any(|p| lower.starts_with(p))
            || RESERVED.contains(&lower.as_str());
        if !token || reserved {
            return Err(InvalidHeaderName {
                field: field.to_owned(),
                name: name.to_owned(),
            });
        }
        Ok(Some(RoutingHeader(name.to_owned())))
    }

    /// A value that passed [`parse`](Self::parse) before it was stored.
    pub fn from_stored(s: impl Into<String>) -> Self {
        RoutingHeader(s.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoutingHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RoutingHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_not_reserved() {
        assert_eq!(RoutingHeader::parse("f", Some("  ")).unwrap(), None);
        assert_eq!(
            RoutingHeader::parse("f", Some(" X-Route "))
                .unwrap()
                .unwrap()
                .as_str(),
            "X-Route"
        );
        for bad in [
            "Host",
            "webhook-id",
            "X-Webhook-Signature",
            "a b",
            "Proxy-Auth",
            "TE",
        ] {
            assert!(RoutingHeader::parse("f", Some(bad)).is_err(), "{bad}");
        }
    }
}
