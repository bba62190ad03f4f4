//! The attempt log on SQLite.

use async_trait::async_trait;
use hookline_core::{EventId, PartnerId};
use rusqlite::params;

use super::{rows as sqlite_rows, SqliteStore};
use crate::store::rows::ATTEMPT_COLUMNS;
use crate::store::{AttemptLog, AttemptRecord, StoreResult};

#[async_trait]
impl AttemptLog for SqliteStore {
    async fn attempts_for_event(
        &self,
        partner_id: &PartnerId,
        event_id: &EventId,
    ) -> StoreResult<Vec<AttemptRecord>> {
        let (partner_id, event_id) = (partner_id.as_str().to_owned(), event_id.as_str().to_owned());
        self.read(move |c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {ATTEMPT_COLUMNS} \
                 FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id \
                      JOIN events e ON e.seq = d.event_seq \
                 WHERE e.partner_id = ?1 AND e.event_id = ?2 ORDER BY a.delivery_id, a.attempt"
            ))?
            .query_map(params![partner_id, event_id], sqlite_rows::attempt)?
            .collect::<rusqlite::Result<_>>()?)
        })
        .await
    }
}
