//! Partners (tenants) and their API keys, and how both are issued.

use crate::{ApiKey, ApiKeyHash, ApiKeyId, PartnerId, Timestamp};

/// Prefix of partner API keys: tells them apart from operator tokens at a glance.
pub const API_KEY_PREFIX: &str = "hl_live_";
/// Prefix of generated operator tokens.
pub const ADMIN_TOKEN_PREFIX: &str = "hl_admin_";
/// Longest partner name accepted.
pub const MAX_PARTNER_NAME: usize = 200;

#[derive(Debug, Clone)]
pub struct Partner {
    pub id: PartnerId,
    pub name: String,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidPartnerName(pub String);

/// A name or label as sent, trimmed: `None` if it has more than 200 characters or any control
/// character (tabs and line breaks too). Both are judged before trimming, as the OpenAPI
/// document's `maxLength` and pattern judge the text sent.
fn trimmed_name(raw: &str) -> Option<&str> {
    let refused = raw.chars().count() > MAX_PARTNER_NAME || raw.chars().any(is_refused_char);
    (!refused).then(|| raw.trim())
}

/// Control characters, the Unicode line and paragraph separators (line breaks too), and the
/// bidirectional controls that make a name read differently from what it is (U+202E turns
/// `gpj.exe` around; listings and logs show names).
pub fn is_refused_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Characters that show nothing (zero-width, fillers, variation selectors, the soft hyphen):
/// a name of these and whitespace is blank. Basic Multilingual Plane only, as the OpenAPI
/// pattern (`api/schema.rs`) can say it.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}' | '\u{180E}'
        | '\u{200B}'..='\u{200D}' | '\u{2060}'..='\u{2064}' | '\u{2800}' | '\u{3164}'
        | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}')
}

/// Whether `name` shows nothing: whitespace and invisible characters only.
fn is_blank(name: &str) -> bool {
    name.chars().all(|c| c.is_whitespace() || is_invisible(c))
}

impl Partner {
    /// A new partner with a fresh id; the name is at most 200 characters with no control or
    /// bidirectional-control character, and not blank (zero-width characters count as blank);
    /// it is stored trimmed.
    pub fn issue(name: &str, now: Timestamp) -> Result<Self, InvalidPartnerName> {
        let Some(name) = trimmed_name(name).filter(|n| !is_blank(n)) else {
            return Err(InvalidPartnerName(format!(
                "name must be 1 to {MAX_PARTNER_NAME} characters, not blank, without control or bidirectional-control characters"
            )));
        };
        Ok(Partner {
            id: PartnerId::generate(),
            name: name.to_owned(),
            created_at: now,
        })
    }

    /// The partner created on first start.
    pub fn default_partner(now: Timestamp) -> Self {
        Partner::issue("default", now).expect("a valid name")
    }
}

/// An API key's optional label: at most 200 characters, no control characters (it is shown in
/// listings and logs); stored trimmed, and blank means none.
pub fn api_key_label(raw: Option<&str>) -> Result<Option<String>, InvalidPartnerName> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let name = trimmed_name(raw).ok_or_else(|| {
        InvalidPartnerName(format!(
            "name must be at most {MAX_PARTNER_NAME} characters, without control or bidirectional-control characters"
        ))
    })?;
    Ok((!is_blank(name)).then(|| name.to_owned()))
}

/// A stored API key: its hash only, never the key.
#[derive(Debug, Clone)]
pub struct ApiKeyRecord {
    pub id: ApiKeyId,
    pub partner_id: PartnerId,
    pub name: Option<String>,
    pub hash: ApiKeyHash,
    pub created_at: Timestamp,
}

impl ApiKeyRecord {
    /// A fresh key for `partner`: the key (to show once) and the record to store.
    pub fn issue(partner: &PartnerId, name: Option<String>, now: Timestamp) -> (ApiKey, Self) {
        let key = ApiKey::generate(API_KEY_PREFIX);
        let record = ApiKeyRecord {
            id: ApiKeyId::generate(),
            partner_id: partner.clone(),
            name,
            hash: key.hash(),
            created_at: now,
        };
        (key, record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_keys_hash_to_their_record() {
        let p = Partner::issue(" Acme ", Timestamp::EPOCH).unwrap();
        assert_eq!(p.name, "Acme");
        assert!(Partner::issue("  ", Timestamp::EPOCH).is_err());
        // Judged as sent: a tab or line break is a control character even at the edges, and
        // spaces count towards the 200.
        assert!(Partner::issue("Acme\n", Timestamp::EPOCH).is_err());
        assert!(Partner::issue(&format!(" {}", "a".repeat(200)), Timestamp::EPOCH).is_err());
        assert_eq!(api_key_label(Some(" ci ")), Ok(Some("ci".to_owned())));
        assert_eq!(api_key_label(Some("   ")), Ok(None));
        assert!(api_key_label(Some("ci\t")).is_err());
        // What shows nothing is blank; what makes a name read backwards is refused.
        assert!(Partner::issue("\u{200B}\u{FEFF} \u{2060}", Timestamp::EPOCH).is_err());
        assert!(Partner::issue("Acme\u{202E}gpj.exe", Timestamp::EPOCH).is_err());
        assert!(Partner::issue("\u{2067}Acme", Timestamp::EPOCH).is_err());
        assert!(Partner::issue("a\u{2028}b", Timestamp::EPOCH).is_err());
        assert!(Partner::issue("\u{3164}\u{00AD}\u{FE0F}\u{2800}", Timestamp::EPOCH).is_err());
        assert_eq!(
            Partner::issue("Zo\u{200D}e", Timestamp::EPOCH)
                .unwrap()
                .name,
            "Zo\u{200D}e"
        );
        assert_eq!(api_key_label(Some("\u{200B}")), Ok(None));
        assert!(api_key_label(Some("ci\u{200F}")).is_err());
        let (key, record) = ApiKeyRecord::issue(&p.id, None, Timestamp::EPOCH);
        assert!(key.expose().starts_with(API_KEY_PREFIX));
        assert_eq!(key.hash(), record.hash);
    }
}
