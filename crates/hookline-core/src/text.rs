//! Caller input quoted in error messages, bounded: a message names what was wrong without
//! echoing an arbitrarily large request back (10,000 bad names must not make an 89 KB answer).

use std::borrow::Cow;

/// Offenders named in one message; the rest are counted.
pub const NAMED: usize = 5;
/// Characters of one quoted value; a longer one is cut and marked with `…`.
pub const QUOTED_CHARS: usize = 64;

/// `s`, cut to [`QUOTED_CHARS`] characters.
pub fn quote(s: &str) -> Cow<'_, str> {
    match s.char_indices().nth(QUOTED_CHARS) {
        None => Cow::Borrowed(s),
        Some((cut, _)) => Cow::Owned(format!("{}…", &s[..cut])),
    }
}

/// The first [`NAMED`] items, each [`quote`]d and joined by `, `, then `and N more` when
/// there are more: `a, b, c, d, e and 9995 more`.
pub fn name_some<S: AsRef<str>>(items: &[S]) -> String {
    let mut out = items
        .iter()
        .take(NAMED)
        .map(|s| quote(s.as_ref()))
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > NAMED {
        out.push_str(&format!(" and {} more", items.len() - NAMED));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_short_values_as_they_are_and_cuts_long_ones() {
        assert_eq!(quote("bogus.one"), "bogus.one");
        let exact = "é".repeat(QUOTED_CHARS);
        assert_eq!(quote(&exact), exact.as_str());
        let cut = quote(&"é".repeat(10_000)).into_owned();
        assert_eq!(cut.chars().count(), QUOTED_CHARS + 1);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn names_the_first_few_and_counts_the_rest() {
        assert_eq!(name_some(&["a.b", "c.d"]), "a.b, c.d");
        let many: Vec<String> = (0..10_000).map(|i| format!("x{i}")).collect();
        assert_eq!(name_some(&many), "x0, x1, x2, x3, x4 and 9995 more");
        let huge = vec!["y".repeat(100_000); 10_000];
        assert!(name_some(&huge).len() < 400);
        assert_eq!(name_some::<&str>(&[]), "");
    }
}
