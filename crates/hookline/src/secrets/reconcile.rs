//! Brings the stored signing secrets in line with `HOOKLINE_SECRET_KEY` at start-up. With a key,
//! secrets stored in plain text are sealed, secrets sealed with `HOOKLINE_SECRET_KEY_PREVIOUS`
//! are sealed again with the current key, and every sealed secret must open; without a key, a
//! store holding sealed secrets refuses to start rather than fail every delivery.

use anyhow::{bail, Context};
use hookline_core::sealing::is_sealed;

use super::Secrets;
use crate::store::DynStore;

impl Secrets {
    /// Run once at start-up, before any delivery: afterwards every stored secret opens with the
    /// current key (or, without a key, none is sealed).
    pub async fn reconcile(&self, store: &DynStore) -> anyhow::Result<()> {
        reconcile(self, store).await
    }
}

/// The two places a subscription keeps a secret: its signing secret, and during a rotation's
/// grace period the one it replaced.
#[derive(Clone, Copy)]
enum Slot {
    Current,
    Previous,
}

async fn reconcile(secrets: &Secrets, store: &DynStore) -> anyhow::Result<()> {
    let mut stored = Vec::new();
    for (slot, values) in [
        (Slot::Current, store.signing_secrets().await),
        (Slot::Previous, store.previous_signing_secrets().await),
    ] {
        stored.extend(
            values
                .context("reading signing secrets")?
                .into_iter()
                .map(|(id, value)| (slot, id, value)),
        );
    }
    let Some(keys) = secrets.keys.as_ref() else {
        if stored.iter().any(|(_, _, value)| is_sealed(value)) {
            bail!(
                "the store's signing secrets are sealed: set HOOKLINE_SECRET_KEY to the key they were sealed with"
            );
        }
        return Ok(());
    };
    let mut resealed = 0usize;
    for (slot, id, value) in stored {
        let plain = if is_sealed(&value) {
            let (plain, with_previous) = keys.open(&value, id.as_str()).with_context(|| {
                format!(
                    "subscription {id}: is HOOKLINE_SECRET_KEY (or HOOKLINE_SECRET_KEY_PREVIOUS) the key its secret was sealed with?"
                )
            })?;
            if !with_previous {
                continue;
            }
            plain
        } else {
            value.clone()
        };
        let sealed = keys.seal(&plain, id.as_str());
        // Compare-and-set: another node resealing the same row at once is not an error.
        let replaced = match slot {
            Slot::Current => store.replace_signing_secret(&id, &value, &sealed).await?,
            Slot::Previous => {
                store
                    .replace_previous_signing_secret(&id, &value, &sealed)
                    .await?
            }
        };
        if replaced {
            resealed += 1;
        }
    }
    if resealed > 0 {
        tracing::info!(
            count = resealed,
            "sealed signing secrets with the current HOOKLINE_SECRET_KEY"
        );
    }
    Ok(())
}
