//! The attempt log on PostgreSQL.

use async_trait::async_trait;
use hookline_core::{EventId, PartnerId};

use super::PostgresStore;
use crate::store::rows::{AttemptRow, ATTEMPT_COLUMNS};
use crate::store::{AttemptLog, AttemptRecord, StoreResult};

#[async_trait]
impl AttemptLog for PostgresStore {
    async fn attempts_for_event(
        &self,
        partner_id: &PartnerId,
        event_id: &EventId,
    ) -> StoreResult<Vec<AttemptRecord>> {
        let rows: Vec<AttemptRow> = sqlx::query_as(&format!(
            "SELECT {ATTEMPT_COLUMNS} \
             FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id \
                  JOIN events e ON e.seq = d.event_seq \
             WHERE e.partner_id = $1 AND e.event_id = $2 ORDER BY a.delivery_id, a.attempt"
        ))
        .bind(partner_id.as_str())
        .bind(event_id.as_str())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(AttemptRecord::from).collect())
    }
}
