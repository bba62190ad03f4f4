//! Pure domain types for hookline. Nothing here does I/O: every type validates on
//! construction so the server can trust a value once it holds one.
#![forbid(unsafe_code)]

pub mod api_key;
pub mod delivery_log;
pub mod envelope;
pub mod error_kind;
pub mod event_type;
pub mod header_name;
pub mod ids;
pub mod partner;
pub mod payload;
pub mod phone;
pub mod portal;
pub mod retry;
pub mod sealing;
pub mod secret;
pub mod ssrf;
pub mod subscription;
pub mod target_url;
pub mod text;
pub mod time;

pub use api_key::{ApiKey, ApiKeyHash};
pub use delivery_log::{DeliveryStatus, LogCursor};
pub use error_kind::ErrorKind;
pub use event_type::{EventType, UnknownEventType};
pub use header_name::{InvalidHeaderName, RoutingHeader, DEFAULT_ROUTING_ID_HEADER};
pub use ids::{
    ApiKeyId, DeliveryId, EventId, InvalidId, PartnerId, RecoveryId, SubscriptionId, TraceId,
};
pub use partner::{ApiKeyRecord, InvalidPartnerName, Partner};
pub use phone::{InvalidPhoneNumber, PhoneNumber};
pub use portal::{PortalPrincipal, PortalSession, PortalTokenKind};
pub use retry::RetrySchedule;
pub use sealing::{Keyring, SealingError, SealingKey};
pub use secret::SigningSecret;
pub use subscription::Subscription;
pub use target_url::{TargetUrl, TargetUrlError, WebhookVersion};
pub use time::{Clock, EventTime, SystemClock, Timestamp};
