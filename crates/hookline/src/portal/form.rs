//! An `application/x-www-form-urlencoded` body, with repeated fields kept (checkbox lists).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};

use super::errors::PortalError;

pub struct Form {
    fields: Vec<(String, String)>,
}

impl Form {
    pub fn parse(body: &[u8]) -> Form {
        Form {
            fields: url::form_urlencoded::parse(body).into_owned().collect(),
        }
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The trimmed value of `name`; `None` when absent or blank.
    pub fn text(&self, name: &str) -> Option<String> {
        self.get(name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }

    /// Every value of `name`, in order.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.fields
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub fn checked(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

impl<S: Send + Sync> FromRequest<S> for Form {
    type Rejection = PortalError;

    async fn from_request(req: Request, state: &S) -> Result<Self, PortalError> {
        let is_form = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if !is_form {
            return Err(PortalError::BadRequest(
                "expected a form (application/x-www-form-urlencoded)".into(),
            ));
        }
        let body = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                PortalError::Api(crate::error::ApiError::PayloadTooLarge(
                    "The form is larger than the allowed limit".into(),
                ))
            } else {
                PortalError::BadRequest(format!("could not read the form: {e}"))
            }
        })?;
        Ok(Form::parse(&body))
    }
}

/// Path parameters; one that cannot name anything is the portal's 404 page.
pub struct Ids<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for Ids<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = PortalError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, PortalError> {
        crate::extract::ApiPath::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Ids(p.0))
            .map_err(|_| PortalError::NotFound)
    }
}
