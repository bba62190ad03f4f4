//! Subscription writes whose decisions are the same on every backend: a duplicate target URL
//! names the subscription that holds it, and a compare-and-set update that wrote nothing is
//! `Stale` (the row changed) or `Gone` (deleted). A backend supplies the SQL steps.

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
    fn insert(&mut self, new: &NewSubscription) -> impl Future<Output = StoreResult<Written>>;
    /// Writes `sub` where the live row still has `read_updated_at`.
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
    /// The live subscription holding `url` (read after a unique violation; PostgreSQL reads it
    /// outside the aborted transaction).
    fn url_owner(
        &mut self,
        partner_id: &PartnerId,
        url: &str,
    ) -> impl Future<Output = StoreResult<SubscriptionId>>;
    fn commit(self) -> impl Future<Output = StoreResult<()>>;
}

pub(crate) async fn insert<S: SubscriptionWriteSteps>(
    mut steps: S,
    new: &NewSubscription,
) -> StoreResult<()> {
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
        .url_owner(&sub.partner_id, sub.target_url.as_str())
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
        log: Rc<RefCell<Vec<&'static str>>>,
    }

    impl SubscriptionWriteSteps for Fake {
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
        async fn url_owner(&mut self, _p: &PartnerId, _url: &str) -> StoreResult<SubscriptionId> {
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
            target_url: TargetUrl::parse("https://example.com/a", false).unwrap(),
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
}
