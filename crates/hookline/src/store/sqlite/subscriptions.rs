//! Subscriptions, their signing secrets and routing tokens on SQLite. Every write here goes
//! through [`SqliteStore::write_subscriptions`], which keeps the fan-out cache right.

use async_trait::async_trait;
use hookline_core::{PartnerId, SubscriptionId, Timestamp};
use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::{is_unique_violation, rows as sqlite_rows, SqliteStore};
use crate::store::rows::{self, *};
use crate::store::steps::run_ready;
use crate::store::subscription_writes::{self, SubscriptionWriteSteps, Written};
use crate::store::{NewSubscription, StoreResult, Subscription, SubscriptionStore, UpdateResult};

pub(super) fn load_subscriptions(
    conn: &Connection,
    sql: &str,
    args: &[&dyn rusqlite::ToSql],
    with_secret: bool,
) -> StoreResult<Vec<SubscriptionRow>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt
        .query_map(args, |r| sqlite_rows::subscription(r, with_secret))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// [`subscription_writes`]'s steps in one SQLite transaction.
struct Writes<'c>(Transaction<'c>);

fn written(res: rusqlite::Result<usize>) -> StoreResult<Written> {
    match res {
        Err(e) if is_unique_violation(&e) => Ok(Written::DuplicateUrl),
        Err(e) => Err(e.into()),
        Ok(1) => Ok(Written::Applied),
        Ok(_) => Ok(Written::Missed),
    }
}

impl SubscriptionWriteSteps for Writes<'_> {
    /// One writer thread runs every write, so nothing can insert between this count and the
    /// insert that follows it.
    async fn live_subscriptions(&mut self, partner_id: &PartnerId) -> StoreResult<u64> {
        let n: i64 = self.0.query_row(
            "SELECT count(*) FROM subscriptions WHERE partner_id = ?1 AND deleted_at IS NULL",
            [partner_id.as_str()],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    async fn insert(&mut self, new: &NewSubscription) -> StoreResult<Written> {
        let s = &new.subscription;
        written(self.0.execute(
            "INSERT INTO subscriptions (id, partner_id, target_url, subscribed_events, phone_numbers, \
             is_active, signing_secret, routing_id_header, routing_key_header, created_at, updated_at, \
             target_url_key) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                s.id.as_str(),
                s.partner_id.as_str(),
                s.target_url.as_str(),
                events_column(s),
                phones_column(&s.phone_numbers),
                s.is_active,
                new.signing_secret,
                header_column(&s.routing_id_header),
                header_column(&s.routing_key_header),
                s.created_at.as_micros(),
                s.updated_at.as_micros(),
                s.target_url.uniqueness_key()
            ],
        ))
    }

    async fn update(
        &mut self,
        s: &Subscription,
        read_updated_at: Timestamp,
    ) -> StoreResult<Written> {
        written(self.0.execute(
            "UPDATE subscriptions SET target_url = ?1, subscribed_events = ?2, phone_numbers = ?3, \
             is_active = ?4, routing_id_header = ?5, routing_key_header = ?6, updated_at = ?7, \
             target_url_key = CASE WHEN target_url = ?1 THEN target_url_key ELSE ?11 END, \
             failing_since = CASE WHEN ?4 AND NOT is_active THEN NULL ELSE failing_since END, \
             exhausted_failures = CASE WHEN ?4 AND NOT is_active THEN 0 ELSE exhausted_failures END \
             WHERE partner_id = ?8 AND id = ?9 AND deleted_at IS NULL AND updated_at = ?10",
            params![
                s.target_url.as_str(),
                events_column(s),
                phones_column(&s.phone_numbers),
                s.is_active,
                header_column(&s.routing_id_header),
                header_column(&s.routing_key_header),
                s.updated_at.as_micros(),
                s.partner_id.as_str(),
                s.id.as_str(),
                read_updated_at.as_micros(),
                s.target_url.uniqueness_key()
            ],
        ))
    }

    async fn is_live(&mut self, partner_id: &PartnerId, id: &SubscriptionId) -> StoreResult<bool> {
        Ok(self.0.query_row(
            "SELECT EXISTS (SELECT 1 FROM subscriptions \
             WHERE partner_id = ?1 AND id = ?2 AND deleted_at IS NULL)",
            params![partner_id.as_str(), id.as_str()],
            |r| r.get(0),
        )?)
    }

    async fn forget_routing_tokens(&mut self, id: &SubscriptionId) -> StoreResult<()> {
        self.0.execute(
            "DELETE FROM routing_tokens WHERE subscription_id = ?1",
            [id.as_str()],
        )?;
        Ok(())
    }

    async fn url_owner(
        &mut self,
        partner_id: &PartnerId,
        key: &str,
    ) -> StoreResult<SubscriptionId> {
        let id: String = self.0.query_row(
            "SELECT id FROM subscriptions WHERE partner_id = ?1 AND target_url_key = ?2 AND deleted_at IS NULL",
            params![partner_id.as_str(), key],
            |r| r.get(0),
        )?;
        Ok(SubscriptionId::from_stored(id))
    }

    async fn commit(self) -> StoreResult<()> {
        Ok(self.0.commit()?)
    }
}

#[async_trait]
impl SubscriptionStore for SqliteStore {
    async fn insert_subscription(
        &self,
        new: &NewSubscription,
        max_per_partner: usize,
    ) -> StoreResult<()> {
        let new = NewSubscription {
            subscription: new.subscription.clone(),
            signing_secret: new.signing_secret.clone(),
        };
        self.write_subscriptions(move |c| {
            let steps = Writes(c.transaction()?);
            run_ready(subscription_writes::insert(steps, &new, max_per_partner))
        })
        .await
    }

    async fn list_subscriptions(&self, partner_id: &PartnerId) -> StoreResult<Vec<Subscription>> {
        let partner_id = partner_id.as_str().to_owned();
        self.read(move |c| {
            let rows = load_subscriptions(
                c,
                &format!(
                    "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions \
                     WHERE partner_id = ?1 AND deleted_at IS NULL ORDER BY created_at, id"
                ),
                &[&partner_id],
                false,
            )?;
            Ok(rows::subscriptions(rows)?)
        })
        .await
    }

    async fn get_subscription(
        &self,
        partner_id: &PartnerId,
        id: &SubscriptionId,
    ) -> StoreResult<Option<Subscription>> {
        let (partner_id, id) = (partner_id.as_str().to_owned(), id.as_str().to_owned());
        self.read(move |c| {
            let rows = load_subscriptions(
                c,
                &format!(
                    "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions \
                     WHERE partner_id = ?1 AND id = ?2 AND deleted_at IS NULL"
                ),
                &[&partner_id, &id],
                false,
            )?;
            Ok(rows
                .into_iter()
                .next()
                .map(SubscriptionRow::into_domain)
                .transpose()?)
        })
        .await
    }

    async fn update_subscription(
        &self,
        s: &Subscription,
        read_updated_at: Timestamp,
        forget_routing_tokens: bool,
    ) -> StoreResult<UpdateResult> {
        let s = s.clone();
        self.write_subscriptions(move |c| {
            let steps = Writes(c.transaction()?);
            run_ready(subscription_writes::update(
                steps,
                &s,
                read_updated_at,
                forget_routing_tokens,
            ))
        })
        .await
    }

    async fn delete_subscription(
        &self,
        partner_id: &PartnerId,
        id: &SubscriptionId,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let (partner_id, id) = (partner_id.as_str().to_owned(), id.as_str().to_owned());
        let now = now.as_micros();
        self.write_subscriptions(move |c| {
            let tx = c.transaction()?;
            let n = tx.execute(
                "UPDATE subscriptions SET deleted_at = ?1, is_active = 0, updated_at = ?1 \
                 WHERE partner_id = ?2 AND id = ?3 AND deleted_at IS NULL",
                params![now, partner_id, id],
            )?;
            if n == 1 {
                tx.execute(
                    "DELETE FROM routing_tokens WHERE subscription_id = ?1",
                    [&id],
                )?;
            }
            tx.commit()?;
            Ok(n == 1)
        })
        .await
    }

    async fn signing_secrets(&self) -> StoreResult<Vec<(SubscriptionId, String)>> {
        self.read(|c| {
            Ok(
                c.prepare_cached("SELECT id, signing_secret FROM subscriptions ORDER BY id")?
                    .query_map([], |r| {
                        Ok((
                            SubscriptionId::from_stored(r.get::<_, String>(0)?),
                            r.get(1)?,
                        ))
                    })?
                    .collect::<rusqlite::Result<_>>()?,
            )
        })
        .await
    }

    async fn replace_signing_secret(
        &self,
        id: &SubscriptionId,
        old: &str,
        new: &str,
    ) -> StoreResult<bool> {
        let (id, old, new) = (id.as_str().to_owned(), old.to_owned(), new.to_owned());
        self.write_subscriptions(move |c| {
                Ok(c.execute(
                    "UPDATE subscriptions SET signing_secret = ?1 WHERE id = ?2 AND signing_secret = ?3",
                    params![new, id, old],
                )? == 1)
            })
            .await
    }

    async fn rotate_signing_secret(
        &self,
        partner_id: &PartnerId,
        id: &SubscriptionId,
        new: &str,
        previous_expires_at: Option<Timestamp>,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let (partner_id, id, new) = (
            partner_id.as_str().to_owned(),
            id.as_str().to_owned(),
            new.to_owned(),
        );
        let expires = previous_expires_at.map(Timestamp::as_micros);
        // Publish reads the secrets through the fan-out cache: written through
        // `write_subscriptions`, which clears it.
        self.write_subscriptions(move |c| {
            Ok(c.execute(
                "UPDATE subscriptions SET \
                 previous_signing_secret = CASE WHEN ?1 IS NULL THEN NULL ELSE signing_secret END, \
                 previous_secret_expires_at = ?1, signing_secret = ?2, \
                 updated_at = MAX(?3, updated_at + 1) \
                 WHERE partner_id = ?4 AND id = ?5 AND deleted_at IS NULL",
                params![expires, new, now.as_micros(), partner_id, id],
            )? == 1)
        })
        .await
    }

    async fn previous_signing_secrets(&self) -> StoreResult<Vec<(SubscriptionId, String)>> {
        self.read(|c| {
            Ok(c.prepare_cached(
                "SELECT id, previous_signing_secret FROM subscriptions \
                     WHERE previous_signing_secret IS NOT NULL ORDER BY id",
            )?
            .query_map([], |r| {
                Ok((
                    SubscriptionId::from_stored(r.get::<_, String>(0)?),
                    r.get(1)?,
                ))
            })?
            .collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn replace_previous_signing_secret(
        &self,
        id: &SubscriptionId,
        old: &str,
        new: &str,
    ) -> StoreResult<bool> {
        let (id, old, new) = (id.as_str().to_owned(), old.to_owned(), new.to_owned());
        self.write_subscriptions(move |c| {
            Ok(c.execute(
                "UPDATE subscriptions SET previous_signing_secret = ?1 \
                 WHERE id = ?2 AND previous_signing_secret = ?3",
                params![new, id, old],
            )? == 1)
        })
        .await
    }

    async fn routing_token(
        &self,
        subscription_id: &SubscriptionId,
        chat_id: &str,
    ) -> StoreResult<Option<String>> {
        let (subscription_id, chat_id) = (subscription_id.as_str().to_owned(), chat_id.to_owned());
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT token FROM routing_tokens WHERE subscription_id = ?1 AND chat_id = ?2",
            )?
            .query_row(params![subscription_id, chat_id], |r| r.get(0))
            .optional()?)
        })
        .await
    }
}
