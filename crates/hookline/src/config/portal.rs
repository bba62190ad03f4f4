//! The web portal's settings (`/portal`).

use anyhow::Context;
use hookline_core::time::parse_duration;
use std::time::Duration;

use super::RawConfig;

#[derive(Debug, Clone)]
pub struct PortalSettings {
    /// Where clients reach this server (`HOOKLINE_PUBLIC_URL`, no trailing slash): portal links
    /// are built on it. `None`: on the `Host` of the request that asks for the link.
    pub public_url: Option<String>,
    /// Lifetime of a session opened with an API key or the admin token.
    pub session_ttl: Duration,
    /// How old a queue sample the health view may show: the gauges' sample interval, so it
    /// shows what `/metrics` does.
    pub health_sample_max_age: Duration,
}

impl PortalSettings {
    pub(super) fn from_raw(raw: &RawConfig) -> anyhow::Result<Self> {
        let public_url = match raw.public_url.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(u) => {
                let Some(parsed) = url::Url::parse(u).ok().filter(|p| {
                    matches!(p.scheme(), "http" | "https")
                        && p.has_host()
                        && p.query().is_none()
                        && p.fragment().is_none()
                }) else {
                    anyhow::bail!("HOOKLINE_PUBLIC_URL '{u}' must be an http:// or https:// URL without query or fragment (e.g. https://hooks.example.com)");
                };
                // As parsed: scheme and host in lowercase, so `HTTPS://…` still makes cookies
                // `Secure` (see `https`).
                Some(parsed.as_str().trim_end_matches('/').to_owned())
            }
        };
        let session_ttl = parse_duration(raw.portal_session_ttl.as_deref().unwrap_or("12h"))
            .context("HOOKLINE_PORTAL_SESSION_TTL")?;
        anyhow::ensure!(
            !session_ttl.is_zero(),
            "HOOKLINE_PORTAL_SESSION_TTL must be positive"
        );
        Ok(PortalSettings {
            public_url,
            session_ttl,
            health_sample_max_age: super::monitoring::sample_interval(raw)?,
        })
    }

    /// Portal cookies get `Secure` when the public URL is HTTPS (or the request came through an
    /// HTTPS proxy, see the portal's session module).
    pub fn https(&self) -> bool {
        self.public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
    }
}
