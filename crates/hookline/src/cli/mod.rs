//! The client side of the `hookline` binary: commands for partners and operators, on
//! `hookline-client`. Never touches the store or the server's internals: everything goes over
//! HTTP, so the CLI works against any hookline server.
//!
//! Exit codes: 0 done; 1 the API refused the request (4xx other than 404); 2 usage or
//! configuration error; 3 server failure (5xx) or no answer; 4 not found (404).

mod admin;
mod deliveries;
mod events;
pub mod listen;
mod output;
pub mod profile;
mod subscriptions;

use clap::{Args, Subcommand};
use hookline_client::{Client, Error};
use std::process::ExitCode;

/// Where the server is and who the caller is; flags override `HOOKLINE_*` variables, which
/// override the profile.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// Server base URL [default: the profile's, else http://127.0.0.1:8080].
    #[arg(long, env = "HOOKLINE_URL", global = true)]
    pub url: Option<String>,
    /// Partner API key (partner commands).
    #[arg(long, env = "HOOKLINE_API_KEY", global = true, hide_env_values = true)]
    pub api_key: Option<String>,
    /// Operator token (partners, keys, events publish).
    #[arg(
        long,
        env = "HOOKLINE_ADMIN_TOKEN",
        global = true,
        hide_env_values = true
    )]
    pub admin_token: Option<String>,
    /// Profile in the config file (~/.config/hookline/config.toml, or HOOKLINE_CLI_CONFIG).
    #[arg(long, short = 'p', env = "HOOKLINE_PROFILE", global = true)]
    pub profile: Option<String>,
    /// Print the API's JSON answer instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The resolved connection: a client and the settings commands read.
pub struct Ctx {
    pub client: Client,
    pub json: bool,
    /// The profile's `partner_id`, for operator commands without `--partner`.
    pub partner_id: Option<String>,
    pub url: String,
    pub api_key: Option<String>,
}

impl Connection {
    pub fn resolve(&self) -> anyhow::Result<Ctx> {
        let p = profile::load(self.profile.as_deref())?;
        let url = self
            .url
            .clone()
            .or(p.url)
            .unwrap_or_else(|| profile::DEFAULT_URL.into());
        let api_key = self.api_key.clone().or(p.api_key);
        let mut builder = Client::builder(url.clone());
        if let Some(k) = &api_key {
            builder = builder.api_key(k.clone());
        }
        if let Some(t) = self.admin_token.clone().or(p.admin_token) {
            builder = builder.admin_token(t);
        }
        Ok(Ctx {
            client: builder.build()?,
            json: self.json,
            partner_id: p.partner_id,
            url,
            api_key,
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Webhook subscriptions (partner API key).
    Subscriptions(subscriptions::Cmd),
    /// Publish events (operator token) and list event types.
    Events(events::Cmd),
    /// The delivery log of a subscription: list, inspect, retry, recover (partner API key).
    Deliveries(deliveries::Cmd),
    /// Partners (operator token).
    Partners(admin::PartnersCmd),
    /// A partner's API keys (operator token).
    Keys(admin::KeysCmd),
    /// Receive your events here, verified, with no public URL: a temporary subscription whose
    /// deliveries stream to this terminal (and to --forward-to).
    Listen(listen::Cmd),
}

/// Runs a client command; prints what went wrong and maps it to the exit code.
pub async fn run(cmd: ClientCommand) -> ExitCode {
    let result = match cmd {
        ClientCommand::Subscriptions(c) => subscriptions::run(c).await,
        ClientCommand::Events(c) => events::run(c).await,
        ClientCommand::Deliveries(c) => deliveries::run(c).await,
        ClientCommand::Partners(c) => admin::run_partners(c).await,
        ClientCommand::Keys(c) => admin::run_keys(c).await,
        ClientCommand::Listen(c) => listen::run(c).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(&e),
    }
}

/// The error on stderr (the envelope's message and trace id), and its exit code.
fn report(e: &anyhow::Error) -> ExitCode {
    let Some(client_error) = e.downcast_ref::<Error>() else {
        eprintln!("{} {e:#}", output::red("error:"));
        return ExitCode::from(2);
    };
    eprintln!("{} {client_error}", output::red("error:"));
    match client_error {
        Error::Api(api) => {
            if let Some(url) = &api.doc_url {
                eprintln!("  {}", output::dim(url));
            }
            ExitCode::from(match api.status {
                404 => 4,
                s if s >= 500 => 3,
                _ => 1,
            })
        }
        Error::Transport(_) => ExitCode::from(3),
        Error::Decode { .. } => ExitCode::from(3),
        _ => ExitCode::from(2),
    }
}

/// Splits `a,b , c` into its non-empty items.
pub(crate) fn comma_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}
