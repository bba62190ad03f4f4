//! Brings the stored signing secrets in line with `HOOKLINE_SECRET_KEY` at start-up. With a key,
//! secrets stored in plain text are sealed and sealed ones must open with it; without a key, a
//! store holding sealed secrets refuses to start rather than fail every delivery.

use anyhow::{bail, Context};
use hookline_core::sealing::{is_sealed, SealingKey};

use crate::store::DynStore;

pub async fn reconcile(store: &DynStore, key: Option<&SealingKey>) -> anyhow::Result<()> {
    let stored = store
        .signing_secrets()
        .await
        .context("reading signing secrets")?;
    let mut newly_sealed = 0usize;
    for (id, value) in stored {
        match (key, is_sealed(&value)) {
            (Some(key), true) => {
                key.open(&value, &id).with_context(|| {
                    format!(
                        "subscription {id}: is HOOKLINE_SECRET_KEY the key its secret was sealed with?"
                    )
                })?;
            }
            (Some(key), false) => {
                // Compare-and-set: another node sealing the same row at once is not an error.
                if store
                    .replace_signing_secret(&id, &value, &key.seal(&value, &id))
                    .await?
                {
                    newly_sealed += 1;
                }
            }
            (None, true) => bail!(
                "the store's signing secrets are sealed: set HOOKLINE_SECRET_KEY to the key they were sealed with"
            ),
            (None, false) => {}
        }
    }
    if newly_sealed > 0 {
        tracing::info!(
            count = newly_sealed,
            "sealed signing secrets that were stored in plain text"
        );
    }
    Ok(())
}
