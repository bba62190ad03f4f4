//! Why a delivery attempt failed, as stored in the attempt log and shown to partners.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    Timeout,
    Connect,
    Dns,
    Tls,
    HttpStatus,
    Redirect,
    SsrfBlocked,
    InvalidTarget,
    /// The signing secret is sealed with a key this process does not hold (a key change under
    /// way across nodes): retried, by another node or after this one restarts with the key.
    SecretUnavailable,
    Other,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 10] = [
        ErrorKind::Timeout,
        ErrorKind::Connect,
        ErrorKind::Dns,
        ErrorKind::Tls,
        ErrorKind::HttpStatus,
        ErrorKind::Redirect,
        ErrorKind::SsrfBlocked,
        ErrorKind::InvalidTarget,
        ErrorKind::SecretUnavailable,
        ErrorKind::Other,
    ];

    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connect => "connect",
            ErrorKind::Dns => "dns",
            ErrorKind::Tls => "tls",
            ErrorKind::HttpStatus => "http_status",
            ErrorKind::Redirect => "redirect",
            ErrorKind::SsrfBlocked => "ssrf_blocked",
            ErrorKind::InvalidTarget => "invalid_target",
            ErrorKind::SecretUnavailable => "secret_unavailable",
            ErrorKind::Other => "other",
        }
    }

    /// A stored name; names this version does not know (written by a newer one) read as `Other`.
    pub fn from_stored(name: &str) -> Self {
        name.parse().unwrap_or(ErrorKind::Other)
    }
}

impl FromStr for ErrorKind {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        ErrorKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or(())
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_stored(k.as_str()), k);
        }
        assert_eq!(ErrorKind::from_stored("from_the_future"), ErrorKind::Other);
    }
}
