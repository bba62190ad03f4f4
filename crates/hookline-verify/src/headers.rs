//! Where header values come from: anything that can look a header up by name, case-insensitively.

use std::collections::{BTreeMap, HashMap};

/// `webhook-id`: the message id, stable across retries (deduplicate on it).
pub const WEBHOOK_ID: &str = "webhook-id";
/// `webhook-timestamp`: Unix seconds when the request was signed.
pub const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
/// `webhook-signature`: one or more space-separated `v1,<base64>` signatures.
pub const WEBHOOK_SIGNATURE: &str = "webhook-signature";
/// `X-Webhook-Timestamp`: Linq's legacy timestamp (the same value as `webhook-timestamp`).
pub const X_WEBHOOK_TIMESTAMP: &str = "x-webhook-timestamp";
/// `X-Webhook-Signature`: Linq's legacy lowercase hex signature.
pub const X_WEBHOOK_SIGNATURE: &str = "x-webhook-signature";

/// Looks up a header value by its lowercase name, ignoring case.
///
/// Implemented for `http::HeaderMap` (feature `http`), for slices and vectors of name/value
/// pairs, and for `HashMap`/`BTreeMap` from names to values, so frameworks without `http` types
/// work too.
pub trait Headers {
    /// The value of header `name` (given in lowercase), if present and valid UTF-8.
    fn header(&self, name: &str) -> Option<&str>;
}

impl<T: Headers + ?Sized> Headers for &T {
    fn header(&self, name: &str) -> Option<&str> {
        (**self).header(name)
    }
}

fn find<'a, K: AsRef<str> + 'a, V: AsRef<str> + 'a>(
    mut pairs: impl Iterator<Item = (&'a K, &'a V)>,
    name: &str,
) -> Option<&'a str> {
    pairs
        .find(|(k, _)| k.as_ref().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_ref())
}

impl<K: AsRef<str>, V: AsRef<str>> Headers for [(K, V)] {
    fn header(&self, name: &str) -> Option<&str> {
        find(self.iter().map(|(k, v)| (k, v)), name)
    }
}

impl<K: AsRef<str>, V: AsRef<str>, const N: usize> Headers for [(K, V); N] {
    fn header(&self, name: &str) -> Option<&str> {
        self.as_slice().header(name)
    }
}

impl<K: AsRef<str>, V: AsRef<str>> Headers for Vec<(K, V)> {
    fn header(&self, name: &str) -> Option<&str> {
        self.as_slice().header(name)
    }
}

impl<K: AsRef<str>, V: AsRef<str>, S> Headers for HashMap<K, V, S> {
    fn header(&self, name: &str) -> Option<&str> {
        find(self.iter(), name)
    }
}

impl<K: AsRef<str>, V: AsRef<str>> Headers for BTreeMap<K, V> {
    fn header(&self, name: &str) -> Option<&str> {
        find(self.iter(), name)
    }
}

#[cfg(feature = "http")]
impl Headers for http::HeaderMap {
    fn header(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| v.to_str().ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_ignore_case() {
        let pairs = [("Webhook-ID", "a"), ("X-Webhook-Signature", "b")];
        assert_eq!(pairs.header(WEBHOOK_ID), Some("a"));
        assert_eq!(pairs.header(X_WEBHOOK_SIGNATURE), Some("b"));
        assert_eq!(pairs.header(WEBHOOK_TIMESTAMP), None);
        let map: HashMap<String, String> = [("WEBHOOK-ID".to_owned(), "c".to_owned())].into();
        assert_eq!(map.header(WEBHOOK_ID), Some("c"));
    }

    #[cfg(feature = "http")]
    #[test]
    fn header_map() {
        let mut h = http::HeaderMap::new();
        h.insert("Webhook-Id", http::HeaderValue::from_static("d"));
        assert_eq!(h.header(WEBHOOK_ID), Some("d"));
    }
}
