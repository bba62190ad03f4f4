//! Signing secrets, from issue to delivery: a new secret is issued and sealed for storage here,
//! opened here when a delivery is signed, and brought in line with the configured key at start-up
//! ([`Secrets::reconcile`], the previous secrets of rotations included). A rotation issues the new
//! secret with [`Secrets::issue`]; the one it replaces stays stored as it was (sealed to the same
//! subscription) until its grace period ends, and is opened with [`Secrets::open`] to sign too.
//!
//! Nothing outside this module seals or opens a secret, and nothing here lets one reach a log:
//! [`SigningSecret`]'s `Debug` is redacted and the stored form is opaque.

mod reconcile;

use hookline_core::sealing::{is_sealed, Keyring, SealingError};
use hookline_core::secret::InvalidSecret;
use hookline_core::{SigningSecret, SubscriptionId};

/// Issues, seals and opens signing secrets with the configured key (`HOOKLINE_SECRET_KEY`,
/// and `HOOKLINE_SECRET_KEY_PREVIOUS` during a key change). Without a key, secrets are stored
/// as issued.
#[derive(Clone, Default)]
pub struct Secrets {
    keys: Option<Keyring>,
}

/// A secret just issued: shown to the partner once, stored only as `stored`.
pub struct Issued {
    pub secret: SigningSecret,
    /// The value for the store: sealed to its subscription when a key is configured.
    pub stored: String,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// A sealed secret and no key (a key change under way across nodes): the delivery can go
    /// out from a node that holds the key, or after a restart with it.
    #[error("the signing secret is sealed and HOOKLINE_SECRET_KEY is not set")]
    NoKey,
    #[error(transparent)]
    Sealing(#[from] SealingError),
    /// The stored value opened (or was plain) but is not a signing secret.
    #[error(transparent)]
    Invalid(#[from] InvalidSecret),
}

impl Secrets {
    pub fn new(keys: Option<Keyring>) -> Self {
        Secrets { keys }
    }

    /// A fresh secret for `subscription_id`, and the form to store it in.
    pub fn issue(&self, subscription_id: &SubscriptionId) -> Issued {
        let secret = SigningSecret::generate();
        let stored = self.seal(&secret, subscription_id);
        Issued { secret, stored }
    }

    /// The stored form of `secret`: sealed and bound to `subscription_id` when a key is
    /// configured (a sealed value copied onto another row does not open), else as issued.
    pub fn seal(&self, secret: &SigningSecret, subscription_id: &SubscriptionId) -> String {
        match &self.keys {
            Some(keys) => keys.seal(secret.expose(), subscription_id.as_str()),
            None => secret.expose().to_owned(),
        }
    }

    /// The secret as issued, from its stored form.
    pub fn open(
        &self,
        stored: &str,
        subscription_id: &SubscriptionId,
    ) -> Result<SigningSecret, OpenError> {
        if !is_sealed(stored) {
            return Ok(SigningSecret::parse(stored)?);
        }
        let keys = self.keys.as_ref().ok_or(OpenError::NoKey)?;
        let (plain, _with_previous) = keys.open(stored, subscription_id.as_str())?;
        Ok(SigningSecret::parse(&plain)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookline_core::SealingKey;

    fn id(s: &str) -> SubscriptionId {
        SubscriptionId::from_stored(s)
    }

    fn keyring(byte: u8) -> Keyring {
        use base64::Engine;
        let key = base64::engine::general_purpose::STANDARD.encode([byte; 32]);
        Keyring {
            current: SealingKey::parse(&key).unwrap(),
            previous: None,
        }
    }

    #[test]
    fn issued_secrets_are_sealed_to_their_subscription_and_open_again() {
        let secrets = Secrets::new(Some(keyring(1)));
        let issued = secrets.issue(&id("sub-1"));
        assert!(is_sealed(&issued.stored));
        assert!(!issued.stored.contains(issued.secret.expose()));
        let opened = secrets.open(&issued.stored, &id("sub-1")).unwrap();
        assert_eq!(opened.expose(), issued.secret.expose());
        assert!(matches!(
            secrets.open(&issued.stored, &id("sub-2")),
            Err(OpenError::Sealing(SealingError::WrongKey))
        ));
    }

    #[test]
    fn without_a_key_secrets_are_stored_as_issued_and_sealed_ones_do_not_open() {
        let plain = Secrets::default();
        let issued = plain.issue(&id("sub-1"));
        assert_eq!(issued.stored, issued.secret.expose());
        assert_eq!(
            plain.open(&issued.stored, &id("sub-1")).unwrap().expose(),
            issued.secret.expose()
        );
        let sealed = Secrets::new(Some(keyring(1))).issue(&id("sub-1")).stored;
        assert!(matches!(
            plain.open(&sealed, &id("sub-1")),
            Err(OpenError::NoKey)
        ));
        assert!(matches!(
            plain.open("not-a-secret", &id("sub-1")),
            Err(OpenError::Invalid(_))
        ));
    }
}
