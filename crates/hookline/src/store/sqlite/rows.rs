//! The shared row shapes ([`crate::store::rows`]) read through rusqlite: the SQLite store runs
//! whole transactions on its own thread rather than through sqlx's per-statement channel.

use rusqlite::Row;

use crate::store::rows::{AttemptRow, DueRow, PartnerRow, SubscriptionRow};
use crate::store::{AttemptRecord, Partner};

pub fn subscription(row: &Row<'_>, with_secret: bool) -> rusqlite::Result<SubscriptionRow> {
    Ok(SubscriptionRow {
        signing_secret: if with_secret {
            row.get("signing_secret")?
        } else {
            None
        },
        previous_signing_secret: if with_secret {
            row.get("previous_signing_secret")?
        } else {
            None
        },
        previous_secret_expires_at: if with_secret {
            row.get("previous_secret_expires_at")?
        } else {
            None
        },
        id: row.get("id")?,
        partner_id: row.get("partner_id")?,
        target_url: row.get("target_url")?,
        subscribed_events: row.get("subscribed_events")?,
        phone_numbers: row.get("phone_numbers")?,
        is_active: row.get("is_active")?,
        routing_id_header: row.get("routing_id_header")?,
        routing_key_header: row.get("routing_key_header")?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

pub fn partner(row: &Row<'_>) -> rusqlite::Result<Partner> {
    Ok(PartnerRow {
        id: row.get("id")?,
        name: row.get("name")?,
        created_at: row.get("created_at")?,
    }
    .into())
}

pub fn due(row: &Row<'_>) -> rusqlite::Result<DueRow> {
    Ok(DueRow {
        id: row.get("id")?,
        attempts: row.get("attempts")?,
        attempt_base: row.get("attempt_base")?,
        subscription_id: row.get("subscription_id")?,
        target_url: row.get("target_url")?,
        signing_secret: row.get("signing_secret")?,
        previous_signing_secret: row.get("previous_signing_secret")?,
        previous_secret_expires_at: row.get("previous_secret_expires_at")?,
        routing_id_header: row.get("routing_id_header")?,
        routing_key_header: row.get("routing_key_header")?,
        live: row.get("live")?,
        partner_id: row.get("partner_id")?,
        event_id: row.get("event_id")?,
        event_type: row.get("event_type")?,
        created_at: row.get("created_at")?,
        trace_id: row.get("trace_id")?,
        data: row.get("data")?,
        data_v2025: row.get("data_v2025")?,
        accepted_at: row.get("accepted_at")?,
    })
}

pub fn attempt(row: &Row<'_>) -> rusqlite::Result<AttemptRecord> {
    Ok(AttemptRow {
        delivery_id: row.get("delivery_id")?,
        attempt: row.get("attempt")?,
        started_at: row.get("started_at")?,
        duration_ms: row.get("duration_ms")?,
        status_code: row.get("status_code")?,
        error_kind: row.get("error_kind")?,
        error_message: row.get("error_message")?,
        response_body: row.get("response_body")?,
    }
    .into())
}
