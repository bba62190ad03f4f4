//! The delivery log's vocabulary: the status the API shows for a delivery, and the opaque
//! cursor of a log page. The store keeps `pending | succeeded | failed | cancelled` and an
//! attempt count; [`DeliveryStatus`] is what a partner sees.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use std::fmt;

/// A delivery's status as the API shows it. `pending` has no attempt recorded yet; `retrying`
/// is pending with at least one recorded attempt (a retry is scheduled or under way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeliveryStatus {
    Pending,
    Retrying,
    Success,
    Failed,
    Cancelled,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 5] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Retrying,
        DeliveryStatus::Success,
        DeliveryStatus::Failed,
        DeliveryStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Retrying => "retrying",
            DeliveryStatus::Success => "success",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// The status of a stored delivery: its state and whether an attempt was recorded.
    pub fn of(state: &str, attempted: bool) -> Self {
        match state {
            "succeeded" => DeliveryStatus::Success,
            "failed" => DeliveryStatus::Failed,
            "cancelled" => DeliveryStatus::Cancelled,
            _ if attempted => DeliveryStatus::Retrying,
            _ => DeliveryStatus::Pending,
        }
    }

    /// The stored state this status is a part of.
    pub fn stored_state(self) -> &'static str {
        match self {
            DeliveryStatus::Pending | DeliveryStatus::Retrying => "pending",
            DeliveryStatus::Success => "succeeded",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Cancelled => "cancelled",
        }
    }

    /// A comma-separated list (`failed,retrying`), each name once; `Err` names the first
    /// unknown one. Empty items are ignored; an empty list means every status.
    pub fn parse_list(raw: &str) -> Result<Vec<DeliveryStatus>, String> {
        let mut out = Vec::new();
        for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let status = Self::parse(item).ok_or_else(|| item.to_owned())?;
            if !out.contains(&status) {
                out.push(status);
            }
        }
        out.sort_unstable();
        Ok(out)
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a log page ends: the `(created_at, id)` of its last delivery. Pages are newest first,
/// so the next one holds what sorts strictly below it. Opaque on the wire (base64url), so
/// callers pass it back unchanged instead of building their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LogCursor {
    pub created_at: i64,
    pub id: i64,
}

impl LogCursor {
    const VERSION: &'static str = "d1";
    /// The longest text [`decode`](Self::decode) reads (what `encode` makes is at most 59).
    pub const MAX_LEN: usize = 64;

    pub fn encode(self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}:{}:{}", Self::VERSION, self.created_at, self.id))
    }

    /// `None` for anything [`encode`](Self::encode) did not make.
    pub fn decode(raw: &str) -> Option<Self> {
        if raw.len() > Self::MAX_LEN {
            return None;
        }
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(raw).ok()?).ok()?;
        let mut parts = text.split(':');
        if parts.next()? != Self::VERSION {
            return None;
        }
        let created_at = parts.next()?.parse().ok()?;
        let id = parts.next()?.parse().ok()?;
        parts
            .next()
            .is_none()
            .then_some(LogCursor { created_at, id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lists_parse_dedup_and_name_the_unknown() {
        assert_eq!(
            DeliveryStatus::parse_list("failed, retrying,failed"),
            Ok(vec![DeliveryStatus::Retrying, DeliveryStatus::Failed])
        );
        assert_eq!(DeliveryStatus::parse_list(""), Ok(vec![]));
        assert_eq!(
            DeliveryStatus::parse_list("success,ok"),
            Err("ok".to_owned())
        );
    }

    #[test]
    fn stored_states_map_to_api_statuses() {
        assert_eq!(
            DeliveryStatus::of("pending", false),
            DeliveryStatus::Pending
        );
        assert_eq!(
            DeliveryStatus::of("pending", true),
            DeliveryStatus::Retrying
        );
        assert_eq!(
            DeliveryStatus::of("succeeded", true),
            DeliveryStatus::Success
        );
        for s in DeliveryStatus::ALL {
            assert_eq!(DeliveryStatus::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn cursors_round_trip_and_refuse_forgeries() {
        let c = LogCursor {
            created_at: 1_780_000_000_000_000,
            id: 42,
        };
        assert_eq!(LogCursor::decode(&c.encode()), Some(c));
        let widest = LogCursor {
            created_at: i64::MIN,
            id: i64::MIN,
        };
        assert_eq!(widest.encode().len(), 59);
        assert_eq!(LogCursor::decode(&widest.encode()), Some(widest));
        for bad in [
            "",
            "x",
            "ZDE6MQ",
            &URL_SAFE_NO_PAD.encode("d2:1:2"),
            &"A".repeat(100),
        ] {
            assert_eq!(LogCursor::decode(bad), None, "{bad}");
        }
    }
}
