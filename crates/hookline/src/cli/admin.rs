//! `hookline partners create|list` and `hookline keys create|revoke` (operator token).

use clap::{Args, Subcommand};

use super::output::{self, bold};
use super::subscriptions::show_secret;
use super::Connection;

#[derive(Debug, Args)]
pub struct PartnersCmd {
    #[command(flatten)]
    conn: Connection,
    #[command(subcommand)]
    action: PartnersAction,
}

#[derive(Debug, Subcommand)]
enum PartnersAction {
    /// Create a partner.
    Create { name: String },
    /// List partners.
    List,
}

#[derive(Debug, Args)]
pub struct KeysCmd {
    #[command(flatten)]
    conn: Connection,
    #[command(subcommand)]
    action: KeysAction,
}

#[derive(Debug, Subcommand)]
enum KeysAction {
    /// Issue an API key for a partner; prints it once.
    Create {
        /// The partner [default: the profile's partner_id].
        #[arg(long)]
        partner: Option<String>,
        /// A label for the key.
        #[arg(long)]
        name: Option<String>,
    },
    /// Revoke an API key: it stops working at once.
    Revoke {
        key_id: String,
        /// The partner the key belongs to [default: the profile's partner_id].
        #[arg(long)]
        partner: Option<String>,
    },
}

pub async fn run_partners(cmd: PartnersCmd) -> anyhow::Result<()> {
    let ctx = cmd.conn.resolve()?;
    match cmd.action {
        PartnersAction::Create { name } => {
            let p = ctx.client.create_partner(&name).await?;
            if ctx.json {
                output::json(&p);
            } else {
                println!("Created partner {} ({}).", bold(&p.name), p.id);
            }
        }
        PartnersAction::List => {
            let list = ctx.client.list_partners().await?;
            if ctx.json {
                output::json(&list);
            } else {
                let rows: Vec<Vec<String>> = list
                    .partners
                    .iter()
                    .map(|p| {
                        vec![
                            p.id.clone(),
                            p.name.clone(),
                            output::relative(&p.created_at),
                        ]
                    })
                    .collect();
                output::table(&["ID", "NAME", "CREATED"], &rows);
            }
        }
    }
    Ok(())
}

pub async fn run_keys(cmd: KeysCmd) -> anyhow::Result<()> {
    let ctx = cmd.conn.resolve()?;
    let partner_of = |given: Option<String>| {
        given
            .or(ctx.partner_id.clone())
            .ok_or_else(|| anyhow::anyhow!("--partner is required (or a profile partner_id)"))
    };
    match cmd.action {
        KeysAction::Create { partner, name } => {
            let partner = partner_of(partner)?;
            let k = ctx.client.create_api_key(&partner, name.as_deref()).await?;
            if ctx.json {
                output::json(&k);
            } else {
                println!("Created API key {} for partner {partner}.", bold(&k.id));
                show_secret("API key", &k.api_key);
            }
        }
        KeysAction::Revoke { key_id, partner } => {
            let partner = partner_of(partner)?;
            ctx.client.revoke_api_key(&partner, &key_id).await?;
            if !ctx.json {
                println!("Revoked API key {key_id}.");
            }
        }
    }
    Ok(())
}
