//! Where a subscription's deliveries go, and which payload version they get.

use std::fmt;
use url::Url;

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
    #[error("target_url '{0}' is not a valid absolute URL")]
    Malformed(String),
    #[error("target_url must use HTTPS (got scheme '{0}')")]
    NotHttps(String),
    #[error("target_url must not contain credentials (user:password@)")]
    HasCredentials,
    #[error("target_url must not contain a fragment (#...)")]
    HasFragment,
    #[error("target_url must name a host")]
    NoHost,
    #[error("target_url must not contain whitespace or control characters")]
    InvalidCharacters,
    #[error("target_url has an unsupported version '{0}' (supported: 2025-01-01, 2026-02-03)")]
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

impl TargetUrl {
    /// `allow_http` is the development switch: plain `http://` is refused unless set.
    pub fn parse(raw: &str, allow_http: bool) -> Result<Self, TargetUrlError> {
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
            ("https://e.com/h\u{0}", TargetUrlError::InvalidCharacters),
            ("https://e.com/a b", TargetUrlError::InvalidCharacters),
        ];
        for (raw, want) in cases {
            assert_eq!(TargetUrl::parse(raw, false), Err(want), "{raw}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_TARGET_URL_LEN));
        assert_eq!(TargetUrl::parse(&long, false), Err(TargetUrlError::TooLong));
    }

    #[test]
    fn http_only_behind_the_switch() {
        assert!(TargetUrl::parse("http://127.0.0.1:9/x", true).is_ok());
        assert!(TargetUrl::parse("http://127.0.0.1:9/x", false).is_err());
    }
}
