//! Where a subscription's deliveries go, and which payload version they get.

use std::fmt;
use url::Url;

use crate::text::quote;

/// Linq's documented URL length cap for targets.
pub const MAX_TARGET_URL_LEN: usize = 2048;

#[derive(Clone, PartialEq, Eq)]
pub struct TargetUrl {
    raw: String,
    parsed: Url,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetUrlError {
    #[error("target_url must not be empty")]
    Empty,
    #[error("target_url is longer than {MAX_TARGET_URL_LEN} characters")]
    TooLong,
    #[error("target_url '{}' is not a valid absolute URL", quote(.0))]
    Malformed(String),
    #[error("target_url must use HTTPS (got scheme '{}')", quote(.0))]
    NotHttps(String),
    #[error("target_url must not contain credentials (user:password@)")]
    HasCredentials,
    #[error("target_url must not contain a fragment (#...)")]
    HasFragment,
    #[error("target_url must name a host")]
    NoHost,
    #[error(
        "target_url host '{}' is not a host name (dot-separated labels of letters, digits, '-' and '_') or an IP address",
        quote(.0)
    )]
    InvalidHost(String),
    #[error("target_url must not use port 0 (name the receiver's port, or none for the scheme's default)")]
    PortZero,
    #[error("target_url must not contain whitespace or control characters")]
    InvalidCharacters,
    #[error("target_url has an unsupported version '{}' (supported: 2025-01-01, 2026-02-03)", quote(.0))]
    UnknownVersion(String),
}

/// The payload format a subscription receives (`?version=` in its target URL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookVersion {
    V2025_01_01,
    V2026_02_03,
}

impl WebhookVersion {
    pub fn as_str(&self) -> &'static str {
        match self {
            WebhookVersion::V2025_01_01 => "2025-01-01",
            WebhookVersion::V2026_02_03 => "2026-02-03",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "2025-01-01" => Some(WebhookVersion::V2025_01_01),
            "2026-02-03" => Some(WebhookVersion::V2026_02_03),
            _ => None,
        }
    }
}

/// Dot-separated non-empty labels of ASCII letters, digits, `-` and `_` (some real hosts carry an
/// underscore), with an optional root dot. IDN hosts arrive here as punycode.
fn is_host_name(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    host.split('.').all(|label| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

impl TargetUrl {
    /// `allow_http` is the development switch: plain `http://` is refused unless set.
    pub fn parse(raw: &str, allow_http: bool) -> Result<Self, TargetUrlError> {
        let url = Self::parse_stored(raw, allow_http)?;
        // The WHATWG parser reads `https:host/p`, `https:///host/p` and `https:\\host/p` as
        // `https://host/p`; as written they are not absolute URLs with a host (RFC 3986), and
        // the stored text would not say where deliveries go.
        let after_scheme = &url.raw[url.parsed.scheme().len()..];
        if !after_scheme.starts_with("://") || after_scheme[3..].starts_with(['/', '\\']) {
            return Err(TargetUrlError::Malformed(url.raw));
        }
        // Nothing listens on port 0: no delivery could ever reach it.
        if url.parsed.port() == Some(0) {
            return Err(TargetUrlError::PortZero);
        }
        // The WHATWG parser takes hosts such as `r.dev*` or `a..b` that no resolver answers for;
        // refused here, where the partner sees why, not at every delivery.
        if let Some(url::Host::Domain(host)) = url.parsed.host() {
            if !is_host_name(host) {
                return Err(TargetUrlError::InvalidHost(host.to_owned()));
            }
        }
        Ok(url)
    }

    /// A target read back from the store. Rules added after a row was written (port 0) are not
    /// applied, so an old row still loads and can be listed, changed or deleted.
    pub fn from_stored(raw: &str) -> Result<Self, TargetUrlError> {
        Self::parse_stored(raw, true)
    }

    fn parse_stored(raw: &str, allow_http: bool) -> Result<Self, TargetUrlError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(TargetUrlError::Empty);
        }
        if trimmed.len() > MAX_TARGET_URL_LEN {
            return Err(TargetUrlError::TooLong);
        }
        // The URL parser would silently drop or escape these, so the stored string (returned,
        // compared for uniqueness) would differ from where deliveries go.
        if trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(TargetUrlError::InvalidCharacters);
        }
        let parsed =
            Url::parse(trimmed).map_err(|_| TargetUrlError::Malformed(trimmed.to_owned()))?;
        match parsed.scheme() {
            "https" => {}
            "http" if allow_http => {}
            other => return Err(TargetUrlError::NotHttps(other.to_owned())),
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(TargetUrlError::HasCredentials);
        }
        if parsed.fragment().is_some() {
            return Err(TargetUrlError::HasFragment);
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(TargetUrlError::NoHost);
        }
        let url = TargetUrl {
            raw: trimmed.to_owned(),
            parsed,
        };
        url.explicit_version()?;
        Ok(url)
    }

    /// The URL exactly as the partner gave it: returned by the API and posted to.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    pub fn url(&self) -> &Url {
        &self.parsed
    }

    /// What "the same target" means for a partner's one-subscription-per-URL rule: the URL as
    /// deliveries are sent to it (the `url` crate's WHATWG serialization), so scheme and host
    /// are lowercased, IDN hosts are punycode, the scheme's default port is dropped, dot
    /// segments are resolved and an empty path is `/`. Two targets with the same key receive the
    /// very same requests; path and query stay case-sensitive, as receivers may treat them.
    pub fn uniqueness_key(&self) -> &str {
        self.parsed.as_str()
    }

    fn explicit_version(&self) -> Result<Option<WebhookVersion>, TargetUrlError> {
        match self.parsed.query_pairs().find(|(k, _)| k == "version") {
            None => Ok(None),
            Some((_, v)) => WebhookVersion::parse(&v)
                .map(Some)
                .ok_or_else(|| TargetUrlError::UnknownVersion(v.into_owned())),
        }
    }

    /// `?version=` wins; without it every subscription created by hookline gets the newest format.
    pub fn webhook_version(&self) -> WebhookVersion {
        self.explicit_version()
            .ok()
            .flatten()
            .unwrap_or(WebhookVersion::V2026_02_03)
    }
}

impl fmt::Display for TargetUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl fmt::Debug for TargetUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TargetUrl({})", self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_https_and_keeps_query() {
        let u = TargetUrl::parse("https://example.com/hook?line=1", false).unwrap();
        assert_eq!(u.as_str(), "https://example.com/hook?line=1");
        assert_eq!(u.webhook_version(), WebhookVersion::V2026_02_03);
    }

    #[test]
    fn accepts_host_names_and_ip_addresses() {
        for raw in [
            "https://Example.COM./h",
            "https://my_host.example.com",
            "https://xn--bcher-kva.de",
            "https://bücher.de",
            "https://127.0.0.1:8443",
            "https://[::1]/h",
        ] {
            assert!(TargetUrl::parse(raw, false).is_ok(), "{raw}");
        }
    }

    #[test]
    fn version_query_selects_format() {
        let u = TargetUrl::parse("https://e.com/h?version=2025-01-01", false).unwrap();
        assert_eq!(u.webhook_version(), WebhookVersion::V2025_01_01);
        assert_eq!(
            TargetUrl::parse("https://e.com/h?version=1999-01-01", false),
            Err(TargetUrlError::UnknownVersion("1999-01-01".into()))
        );
    }

    #[test]
    fn refuses_bad_urls() {
        let cases = [
            ("", TargetUrlError::Empty),
            (
                "http://example.com",
                TargetUrlError::NotHttps("http".into()),
            ),
            ("ftp://example.com", TargetUrlError::NotHttps("ftp".into())),
            ("https://u:p@example.com", TargetUrlError::HasCredentials),
            ("https://u@example.com", TargetUrlError::HasCredentials),
            ("https://example.com/#frag", TargetUrlError::HasFragment),
            ("not-a-url", TargetUrlError::Malformed("not-a-url".into())),
            ("https://e.com/ho\nok", TargetUrlError::InvalidCharacters),
            (
                "https://r.dev*",
                TargetUrlError::InvalidHost("r.dev*".into()),
            ),
            ("https://a..b/h", TargetUrlError::InvalidHost("a..b".into())),
            (
                "https://a!b.com",
                TargetUrlError::InvalidHost("a!b.com".into()),
            ),
            ("https://e.com/h\u{0}", TargetUrlError::InvalidCharacters),
            ("https://e.com/a b", TargetUrlError::InvalidCharacters),
            (
                "https:e.com/h",
                TargetUrlError::Malformed("https:e.com/h".into()),
            ),
            (
                "https:///e.com/h",
                TargetUrlError::Malformed("https:///e.com/h".into()),
            ),
            (
                "https:/e.com/h",
                TargetUrlError::Malformed("https:/e.com/h".into()),
            ),
            (
                r"https:\\e.com/h",
                TargetUrlError::Malformed(r"https:\\e.com/h".into()),
            ),
            (
                r"https:/\e.com/h",
                TargetUrlError::Malformed(r"https:/\e.com/h".into()),
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(TargetUrl::parse(raw, false), Err(want), "{raw}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_TARGET_URL_LEN));
        assert_eq!(TargetUrl::parse(&long, false), Err(TargetUrlError::TooLong));
    }

    #[test]
    fn spellings_of_one_target_share_a_key_and_keep_their_text() {
        let key = |raw: &str| {
            let u = TargetUrl::parse(raw, false).unwrap();
            assert_eq!(u.as_str(), raw, "returned as given");
            u.uniqueness_key().to_owned()
        };
        let plain = key("https://example.com/x");
        for same in [
            "HTTPS://EXAMPLE.COM/x",
            "https://example.com:443/x",
            "https://Example.Com:443/./x",
        ] {
            assert_eq!(key(same), plain, "{same}");
        }
        for other in [
            "https://example.com/X",
            "https://example.com:8443/x",
            "https://example.com/x?a=1",
        ] {
            assert_ne!(key(other), plain, "{other}");
        }
        assert_eq!(
            key("https://bücher.example/h"),
            "https://xn--bcher-kva.example/h"
        );
        assert_eq!(key("https://example.com"), key("https://example.com/"));
        let http = |raw: &str| {
            TargetUrl::parse(raw, true)
                .unwrap()
                .uniqueness_key()
                .to_owned()
        };
        assert_eq!(http("HTTP://127.0.0.1:80/h"), http("http://127.0.0.1/h"));
    }

    #[test]
    fn port_zero_is_refused_on_input_but_loads_from_the_store() {
        for raw in ["https://example.com:0/x", "http://127.0.0.1:0/x"] {
            assert_eq!(TargetUrl::parse(raw, true), Err(TargetUrlError::PortZero));
            assert_eq!(TargetUrl::from_stored(raw).unwrap().as_str(), raw);
        }
        assert!(TargetUrl::parse("https://example.com:00/x", false).is_err());
    }

    #[test]
    fn quoted_input_is_bounded() {
        let long = format!("https://example.com/h?version={}", "9".repeat(1900));
        let msg = TargetUrl::parse(&long, false).unwrap_err().to_string();
        assert!(msg.len() < 200, "{msg}");
    }

    #[test]
    fn http_only_behind_the_switch() {
        assert!(TargetUrl::parse("http://127.0.0.1:9/x", true).is_ok());
        assert!(TargetUrl::parse("http://127.0.0.1:9/x", false).is_err());
    }
}
