//! E.164 phone numbers: `+`, a non-zero country digit, then up to 14 more digits.

use std::fmt;

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhoneNumber(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("phone number '{}' must be in E.164 format (e.g. +12025551234)", crate::text::quote(.0))]
pub struct InvalidPhoneNumber(pub String);

impl PhoneNumber {
    pub fn parse(raw: &str) -> Result<Self, InvalidPhoneNumber> {
        let digits = raw.strip_prefix('+').unwrap_or("");
        let valid = (2..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if valid {
            Ok(PhoneNumber(raw.to_owned()))
        } else {
            Err(InvalidPhoneNumber(raw.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.0)
    }
}

/// Parses a filter list, keeping first-seen order and dropping repeats.
pub fn parse_list<S: AsRef<str>>(raw: &[S]) -> Result<Vec<PhoneNumber>, InvalidPhoneNumber> {
    let mut seen = std::collections::HashSet::with_capacity(raw.len());
    let mut out: Vec<PhoneNumber> = Vec::with_capacity(raw.len());
    for r in raw {
        let p = PhoneNumber::parse(r.as_ref())?;
        if seen.insert(p.clone()) {
            out.push(p);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_e164() {
        for ok in ["+12025551234", "+447911123456", "+49", "+123456789012345"] {
            assert!(PhoneNumber::parse(ok).is_ok(), "{ok} rejected");
        }
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            "",
            "+",
            "12025551234",
            "+0123",
            "+1 202 555 1234",
            "+1-202-555-1234",
            "+1234567890123456",
            "+1202555123a",
            "tel:+12025551234",
            "+１２３",
        ] {
            assert!(PhoneNumber::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
