//! Subscription writes whose decisions are the same on every backend: a partner at its
//! subscription cap gets no more, a duplicate target URL (compared by
//! [`TargetUrl::uniqueness_key`](hookline_core::TargetUrl::uniqueness_key), stored as
//! `target_url_key` under the unique index) names the subscription that holds it, and a
//! compare-and-set update that wrote nothing is `Stale` (the row changed) or `Gone` (deleted).
//! A backend supplies the SQL steps.

use hookline_core::{PartnerId, SubscriptionId, Timestamp};
use std::future::Future;

use super::{NewSubscription, StoreError, StoreResult, Subscription, UpdateResult};

/// What a conditional write did.
pub(crate) enum Written {
    /// One row written.
    Applied,
    /// No row matched.
    Missed,
    /// The partner already has a live subscription at this target URL.
    DuplicateUrl,
}

/// A backend's SQL for subscription writes, in one transaction.
pub(crate) trait SubscriptionWriteSteps {
    /// The partner's live subscriptions, counted so that a concurrent insert for the same
    /// partner cannot count the same number: it waits until this transaction ends.
    fn live_subscriptions(
        &mut self,
        partner_id: &PartnerId,
    ) -> impl Future<Output = StoreResult<u64>>;
    /// Inserts with the target's uniqueness key.
    fn insert(&mut self, new: &NewSubscription) -> impl Future<Output = StoreResult<Written>>;
    /// Writes `sub` where the live row still has `read_updated_at`; the uniqueness key is
    /// rewritten only when `target_url` changes.
    fn update(
        &mut self,
        sub: &Subscription,
        read_updated_at: Timestamp,
    ) -> impl Future<Output = StoreResult<Written>>;
    /// Whether the partner's subscription exists and is not deleted.
    fn is_live(
        &mut self,
        partner_id: &PartnerId,
        id: &SubscriptionId,
    ) -> impl Future<Output = StoreResult<bool>>;
    fn forget_routing_tokens(
        &mut self,
        id: &SubscriptionId,
    ) -> impl Future<Output = StoreResult<()>>;
    /// The live subscription holding the uniqueness key `key` (read after a unique violation;
    /// PostgreSQL reads it outside the aborted transaction).
    fn url_owner(
        &mut self,
        partner_id: &PartnerId,
        key: &str,
    ) -> impl Future<Output = StoreResult<SubscriptionId>>;
    fn commit(self) -> impl Future<Output = StoreResult<()>>;
}

pub(crate) async fn insert<S: SubscriptionWriteSteps>(
    mut steps: S,
    new: &NewSubscription,
    max_per_partner: usize,
) -> StoreResult<()> {
    let live = steps
        .live_subscriptions(&new.subscription.partner_id)
        .await?;
    if live >= max_per_partner as u64 {
        // Dropping `steps` rolls the transaction back.
        return Err(StoreError::SubscriptionLimit {
            limit: max_per_partner,
        });
    }
    match steps.insert(new).await? {
        Written::DuplicateUrl => Err(duplicate(&mut steps, &new.subscription).await),
        Written::Applied | Written::Missed => steps.commit().await,
    }
}

pub(crate) async fn update<S: SubscriptionWriteSteps>(
    mut steps: S,
    sub: &Subscription,
    read_updated_at: Timestamp,
    forget_routing_tokens: bool,
) -> StoreResult<UpdateResult> {
    match steps.update(sub, read_updated_at).await? {
        Written::DuplicateUrl => Err(duplicate(&mut steps, sub).await),
        Written::Missed => Ok(if steps.is_live(&sub.partner_id, &sub.id).await? {
            UpdateResult::Stale
        } else {
            UpdateResult::Gone
        }),
        Written::Applied => {
            if forget_routing_tokens {
                steps.forget_routing_tokens(&sub.id).await?;
            }
            steps.commit().await?;
            Ok(UpdateResult::Updated)
        }
    }
}

async fn duplicate<S: SubscriptionWriteSteps>(steps: &mut S, sub: &Subscription) -> StoreError {
    match steps
        .url_owner(&sub.partner_id, sub.target_url.uniqueness_key())
        .await
    {
        Ok(existing_id) => StoreError::DuplicateTargetUrl { existing_id },
        Err(e) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookline_core::TargetUrl;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// What the fake backend's write finds, and a log of the steps taken.
    struct Fake {
        write: fn() -> Written,
        live: bool,
        live_count: u64,
        log: Rc<RefCell<Vec<&'static str>>>,
    }

    impl SubscriptionWriteSteps for Fake {
        async fn live_subscriptions(&mut self, _p: &PartnerId) -> StoreResult<u64> {
            Ok(self.live_count)
        }
        async fn insert(&mut self, _new: &NewSubscription) -> StoreResult<Written> {
            Ok((self.write)())
        }
        async fn update(&mut self, _s: &Subscription, _at: Timestamp) -> StoreResult<Written> {
            Ok((self.write)())
        }
        async fn is_live(&mut self, _p: &PartnerId, _id: &SubscriptionId) -> StoreResult<bool> {
            Ok(self.live)
        }
        async fn forget_routing_tokens(&mut self, _id: &SubscriptionId) -> StoreResult<()> {
            self.log.borrow_mut().push("forget");
            Ok(())
        }
        async fn url_owner(&mut self, _p: &PartnerId, key: &str) -> StoreResult<SubscriptionId> {
            assert_eq!(key, "https://example.com/a", "looked up by uniqueness key");
            Ok(SubscriptionId::from_stored("owner"))
        }
        async fn commit(self) -> StoreResult<()> {
            self.log.borrow_mut().push("commit");
            Ok(())
        }
    }

    fn sub() -> Subscription {
        Subscription {
            id: SubscriptionId::generate(),
            partner_id: PartnerId::from_stored("p"),
            target_url: TargetUrl::parse("HTTPS://EXAMPLE.COM:443/a", false).unwrap(),
            subscribed_events: Vec::new(),
            phone_numbers: Vec::new(),
            is_active: true,
            routing_id_header: None,
            routing_key_header: None,
            created_at: Timestamp::EPOCH,
            updated_at: Timestamp::EPOCH,
        }
    }

    fn update_with(
        write: fn() -> Written,
        live: bool,
    ) -> (StoreResult<UpdateResult>, Vec<&'static str>) {
        let log = Rc::new(RefCell::new(Vec::new()));
        let fake = Fake {
            write,
            live,
            live_count: 0,
            log: log.clone(),
        };
        let s = sub();
        let result = crate::store::steps::run_ready(update(fake, &s, Timestamp::EPOCH, true));
        let log = log.borrow().clone();
        (result, log)
    }

    #[test]
    fn a_missed_update_is_stale_while_the_row_lives_else_gone() {
        let (r, log) = update_with(|| Written::Applied, true);
        assert_eq!(r.unwrap(), UpdateResult::Updated);
        assert_eq!(log, ["forget", "commit"]);
        let (r, log) = update_with(|| Written::Missed, true);
        assert_eq!(r.unwrap(), UpdateResult::Stale);
        assert!(log.is_empty(), "nothing forgotten or committed");
        let (r, _) = update_with(|| Written::Missed, false);
        assert_eq!(r.unwrap(), UpdateResult::Gone);
        let (r, log) = update_with(|| Written::DuplicateUrl, true);
        assert!(matches!(
            r,
            Err(StoreError::DuplicateTargetUrl { existing_id }) if existing_id.as_str() == "owner"
        ));
        assert!(log.is_empty());
    }

    fn insert_at(live_count: u64, cap: usize) -> (StoreResult<()>, Vec<&'static str>) {
        let log = Rc::new(RefCell::new(Vec::new()));
        let fake = Fake {
            write: || Written::Applied,
            live: true,
            live_count,
            log: log.clone(),
        };
        let new = NewSubscription {
            subscription: sub(),
            signing_secret: String::new(),
        };
        let result = crate::store::steps::run_ready(insert(fake, &new, cap));
        let log = log.borrow().clone();
        (result, log)
    }

    #[test]
    fn an_insert_at_the_cap_is_refused_and_one_below_it_commits() {
        let (r, log) = insert_at(2, 3);
        assert!(r.is_ok());
        assert_eq!(log, ["commit"]);
        let (r, log) = insert_at(3, 3);
        assert!(matches!(r, Err(StoreError::SubscriptionLimit { limit: 3 })));
        assert!(log.is_empty(), "nothing committed");
    }
}
