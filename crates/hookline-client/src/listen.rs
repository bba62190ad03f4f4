//! The client side of `GET /v3/listen`: a server-sent-events stream of the deliveries to an
//! ephemeral subscription, and their acknowledgements.

use reqwest::header::ACCEPT;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

use crate::client::{json_body, Auth, Client};
use crate::error::{ApiError, Error, Result};

/// What to listen for.
#[derive(Debug, Clone, Default)]
pub struct ListenOptions {
    /// Event types; empty means all.
    pub events: Vec<String>,
    /// Only events from these lines.
    pub phone_numbers: Vec<String>,
    /// Resume this session (its subscription id) instead of starting one.
    pub session: Option<String>,
}

/// The stream's first event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListenSession {
    pub subscription_id: String,
    /// Only when the session starts.
    #[serde(default)]
    pub signing_secret: Option<String>,
    pub subscribed_events: Vec<String>,
    #[serde(default)]
    pub phone_numbers: Vec<String>,
    pub grace_seconds: u64,
}

/// One delivery: the request a target URL would have received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListenDelivery {
    /// Acknowledge with this.
    pub delivery: String,
    /// Lowercase names.
    pub headers: BTreeMap<String, String>,
    /// The body exactly as signed.
    pub body: String,
}

/// An event of the stream.
#[derive(Debug, Clone, PartialEq)]
pub enum ListenEvent {
    Session(ListenSession),
    Delivery(ListenDelivery),
}

/// What the local receiver made of a delivery.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListenAck {
    pub delivery: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// An open stream.
pub struct ListenStream {
    response: reqwest::Response,
    buffer: Vec<u8>,
}

impl Client {
    /// Opens a listen stream (not retried: the caller reconnects with `session`).
    pub async fn listen(&self, options: &ListenOptions) -> Result<ListenStream> {
        let mut url = self.url(&["v3", "listen"]);
        {
            let mut q = url.query_pairs_mut();
            if !options.events.is_empty() {
                q.append_pair("events", &options.events.join(","));
            }
            if !options.phone_numbers.is_empty() {
                q.append_pair("phone_numbers", &options.phone_numbers.join(","));
            }
            if let Some(s) = &options.session {
                q.append_pair("session", s);
            }
        }
        let response = self
            .request(Auth::Partner, Method::GET, url)?
            .header(ACCEPT, "text/event-stream")
            // The stream lasts as long as the caller wants; keep-alives show it is alive.
            .timeout(Duration::from_secs(365 * 24 * 3600))
            .send()
            .await
            .map_err(Error::Transport)?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let body = response.bytes().await.map_err(Error::Transport)?;
            return Err(Error::Api(Box::new(ApiError::from_answer(
                status, &body, None,
            ))));
        }
        Ok(ListenStream {
            response,
            buffer: Vec::new(),
        })
    }

    /// `POST /v3/listen/{subscription_id}/acks`: reports what the receiver answered.
    pub async fn ack_listen(&self, subscription_id: &str, ack: &ListenAck) -> Result<()> {
        let url = self.url(&["v3", "listen", subscription_id, "acks"]);
        self.send_raw(Auth::Partner, Method::POST, url, json_body(ack)?)
            .await
            .map(drop)
    }
}

impl ListenStream {
    /// The next event; `None` when the server ended the stream.
    pub async fn next(&mut self) -> Result<Option<ListenEvent>> {
        loop {
            if let Some(block) = take_block(&mut self.buffer) {
                if let Some(event) = parse_block(&block)? {
                    return Ok(Some(event));
                }
                continue;
            }
            match self.response.chunk().await.map_err(Error::Transport)? {
                Some(bytes) => self.buffer.extend_from_slice(&bytes),
                None => return Ok(None),
            }
        }
    }
}

/// Removes and returns the first complete event block (up to a blank line), if any.
fn take_block(buffer: &mut Vec<u8>) -> Option<String> {
    let text = String::from_utf8_lossy(buffer);
    let normalised = text.replace("\r\n", "\n");
    let end = normalised.find("\n\n")?;
    let block = normalised[..end].to_owned();
    let rest = normalised.as_bytes()[end + 2..].to_vec();
    *buffer = rest;
    Some(block)
}

/// A block's `event:` and `data:` lines as an event; comments (keep-alives) and unknown event
/// names are skipped.
fn parse_block(block: &str) -> Result<Option<ListenEvent>> {
    let (mut name, mut data) = (String::new(), Vec::new());
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("event:") {
            name = v.trim().to_owned();
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push(v.strip_prefix(' ').unwrap_or(v));
        }
    }
    let data = data.join("\n");
    let decode = |source| Error::Decode {
        status: 200,
        source,
    };
    Ok(match name.as_str() {
        "session" => Some(ListenEvent::Session(
            serde_json::from_str(&data).map_err(decode)?,
        )),
        "delivery" => Some(ListenEvent::Delivery(
            serde_json::from_str(&data).map_err(decode)?,
        )),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_and_events() {
        let mut buf = b": keep-alive\n\nevent: delivery\nid: 7\ndata: {\"delivery\":\"7\",\"headers\":{},\"body\":\"{}\"}\n\nevent: sess".to_vec();
        let first = take_block(&mut buf).unwrap();
        assert_eq!(parse_block(&first).unwrap(), None);
        let second = take_block(&mut buf).unwrap();
        match parse_block(&second).unwrap() {
            Some(ListenEvent::Delivery(d)) => assert_eq!(d.delivery, "7"),
            other => panic!("{other:?}"),
        }
        assert_eq!(take_block(&mut buf), None);
        assert_eq!(buf, b"event: sess");
    }
}
