//! First start: with an empty store, create the `default` partner and one API key (and the
//! admin token, unless the operator configured one), and print them once.

use hookline_core::partner::ADMIN_TOKEN_PREFIX;
use hookline_core::{ApiKey, ApiKeyHash, ApiKeyRecord, Partner, Timestamp};

use crate::config::SecretSettings;
use crate::store::DynStore;

/// Returns the hash that operator requests are checked against.
pub async fn ensure_admin(store: DynStore, secrets: &SecretSettings) -> anyhow::Result<ApiKeyHash> {
    let configured = secrets.admin_token.as_ref().map(ApiKey::hash);
    if !store.is_fresh().await? {
        if let Some(hash) = configured {
            return Ok(hash);
        }
        return store.admin_token_hash().await?.ok_or_else(|| {
            anyhow::anyhow!(
                "no admin token: the store has partners but no generated token; set HOOKLINE_ADMIN_TOKEN"
            )
        });
    }

    let generated = configured
        .is_none()
        .then(|| ApiKey::generate(ADMIN_TOKEN_PREFIX));
    let now = Timestamp::now();
    let partner = Partner::default_partner(now);
    let (key, record) = ApiKeyRecord::issue(&partner.id, Some("default".into()), now);
    if let Err(e) = store
        .bootstrap(
            generated.as_ref().map(ApiKey::hash).as_ref(),
            &partner,
            &record,
        )
        .await
    {
        // Several nodes starting on one empty database: one wins; the others use its result.
        if store.is_fresh().await? {
            return Err(e.into());
        }
        tracing::info!("another node bootstrapped the store first");
        return match configured {
            Some(hash) => Ok(hash),
            None => store.admin_token_hash().await?.ok_or_else(|| {
                anyhow::anyhow!("the store was bootstrapped without a generated admin token; set HOOKLINE_ADMIN_TOKEN")
            }),
        };
    }

    // The one place secrets are printed: straight to the terminal, never through the logger.
    // A stderr that cannot be written loses the banner, not the process: the operator can then
    // set HOOKLINE_ADMIN_TOKEN and issue a new key.
    let mut banner = String::new();
    banner.push_str("\n================ hookline first start: store these now ================\n");
    if let Some(token) = &generated {
        banner.push_str(&format!(
            "admin token (HOOKLINE_ADMIN_TOKEN): {}\n",
            token.expose()
        ));
    }
    banner.push_str(&format!(
        "partner 'default' id:                {}\n",
        partner.id
    ));
    banner.push_str(&format!(
        "partner API key:                     {}\n",
        key.expose()
    ));
    banner.push_str("They are stored only as hashes and will not be shown again.\n");
    banner.push_str("=========================================================================\n");
    crate::logging::write_stderr(&format!("{banner}\n"));

    Ok(configured.unwrap_or_else(|| generated.expect("generated when not configured").hash()))
}
