//! One delivery attempt, start to outcome: look up the chat's routing token, sign, send, let
//! [`decide`] choose what follows, and build the outcome for the recorder. Holds no transaction
//! and no pooled connection while the receiver is awaited.

use hookline_core::{RetrySchedule, Timestamp};
use http::header::{HeaderValue, RETRY_AFTER};
use std::time::Instant;

use super::adaptive::Signal;
use super::affinity::{self, Affinity};
use super::decision::{decide, parse_retry_after, Attempted, Decision};
use super::listen_hub::{listen_target, ListenHub};
use super::signer::Signer;
use super::transport::{Answer, Failure, Transport};
use crate::config::DeliverySettings;
use crate::secrets::Secrets;
use crate::store::{
    AttemptRecord, Deactivation, DeactivationReason, DueDelivery, DynStore, LearnedRoutingToken,
    NextState, Outcome,
};
use crate::telemetry;

/// Marks a test event's request (`POST …/test`); receivers can tell it from real traffic.
pub const TEST_HEADER: &str = "x-webhook-test";

/// What one attempt came to: the outcome to record, and what it says about the receiver's load.
pub struct Ran {
    pub outcome: Outcome,
    pub signal: Signal,
}

/// The span of one attempt: every log line of it (from waiting for a slot to recording the
/// outcome) names the event, subscription, delivery, attempt and trace.
pub fn span(d: &DueDelivery) -> tracing::Span {
    tracing::info_span!(
        "delivery_attempt",
        event_id = %d.event_id,
        subscription_id = %d.subscription_id,
        delivery_id = d.delivery_id.get(),
        attempt = d.attempt,
        trace_id = %d.trace_id,
    )
}

pub struct AttemptRunner {
    store: DynStore,
    signer: Signer,
    transport: Transport,
    listen: ListenHub,
    timeout: std::time::Duration,
    schedule: RetrySchedule,
}

/// What came back, before the decision.
struct Sent {
    attempted: Attempted,
    /// Why no answer came (or the request was not sent); `None` when the receiver answered.
    message: Option<String>,
    answer: Option<Answer>,
}

impl AttemptRunner {
    pub fn new(
        store: DynStore,
        settings: &DeliverySettings,
        secrets: Secrets,
        listen: ListenHub,
    ) -> anyhow::Result<Self> {
        Ok(AttemptRunner {
            store,
            signer: Signer::new(secrets),
            transport: Transport::new(settings)?,
            listen,
            timeout: settings.timeout,
            schedule: settings.retry_schedule.clone(),
        })
    }

    /// Runs the attempt `d` stands for; call it inside [`span`].
    pub async fn run(&self, d: &DueDelivery) -> Ran {
        self.run_as(d, false).await
    }

    /// A test event's only attempt: marked with [`TEST_HEADER`], never retried (a failure is
    /// final), otherwise exactly a delivery's attempt.
    pub async fn run_test(&self, d: &DueDelivery) -> Ran {
        self.run_as(d, true).await
    }

    async fn run_as(&self, d: &DueDelivery, test: bool) -> Ran {
        let affinity = affinity::look_up(&self.store, d).await;
        let started_at = Timestamp::now();
        let clock = Instant::now();
        let sent = self.send(d, affinity.as_ref(), test).await;
        let duration = clock.elapsed();
        let signal = Signal::of(sent.attempted, duration, self.timeout);
        // A redelivered delivery starts its schedule again (see `store::recovery`).
        let in_schedule = d.attempt.saturating_sub(d.attempt_base);
        let mut decision = decide(
            sent.attempted,
            in_schedule,
            &self.schedule,
            Timestamp::now(),
        );
        if test && matches!(decision.next, NextState::RetryAt(_)) {
            decision.next = NextState::Failed;
        }
        let learned_routing_token = learned_token(d, affinity, &decision, sent.answer.as_ref());
        let error_kind = sent.attempted.error_kind();
        let status_code = sent.answer.as_ref().map(|a| a.status);
        // Built only for a failed attempt: a delivered one keeps no message.
        let error_message = error_kind.map(|_| match (sent.message, status_code) {
            (Some(message), _) => message,
            (None, status) => format!("receiver answered {}", status.unwrap_or_default()),
        });
        let outcome = Outcome {
            subscription_id: d.subscription_id.clone(),
            attempt: AttemptRecord {
                delivery_id: d.delivery_id,
                attempt: d.attempt,
                started_at,
                duration_ms: duration.as_millis() as i64,
                status_code,
                error_kind,
                error_message,
                response_body: sent.answer.and_then(|a| a.body),
            },
            next: decision.next,
            deactivate_subscription: decision.deactivate.then(|| Deactivation {
                partner_id: d.partner_id.clone(),
                subscription_id: d.subscription_id.clone(),
                target_url: d.target_url.clone(),
                reason: DeactivationReason::Gone,
            }),
            learned_routing_token,
        };
        log(&outcome);
        let since_ingest = (d.attempt == 1).then(|| Timestamp::now().since(d.accepted_at));
        telemetry::attempt(
            result(outcome.next),
            kind_label(error_kind),
            duration,
            since_ingest,
        );
        Ran { outcome, signal }
    }

    async fn send(&self, d: &DueDelivery, affinity: Option<&Affinity>, test: bool) -> Sent {
        let mut signed = match self.signer.sign(d, Timestamp::now()) {
            Ok(signed) => signed,
            Err(unsignable) => {
                return Sent {
                    attempted: Attempted::Failed(unsignable.kind),
                    message: Some(unsignable.message),
                    answer: None,
                }
            }
        };
        if let Some(a) = affinity {
            affinity::add_headers(&mut signed.headers, d, a);
        }
        if test {
            signed
                .headers
                .insert(TEST_HEADER, HeaderValue::from_static("true"));
        }
        match self.post(signed, &d.subscription_id).await {
            Ok(answer) => {
                let retry_after = answer
                    .headers
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
                Sent {
                    attempted: Attempted::Answered {
                        status: answer.status,
                        retry_after,
                    },
                    message: None,
                    answer: Some(answer),
                }
            }
            Err(failure) => Sent {
                attempted: Attempted::Failed(failure.kind),
                message: Some(failure.message),
                answer: None,
            },
        }
    }
}

impl AttemptRunner {
    /// Over HTTP, or down a `hookline listen` stream when the target is one: only the stream of
    /// the subscription itself (a stored URL naming another session's stream, which the API
    /// refuses, must not reach that session).
    async fn post(
        &self,
        signed: super::signer::Signed,
        subscription_id: &hookline_core::SubscriptionId,
    ) -> Result<Answer, Failure> {
        match listen_target(&signed.to.target) {
            Some(id) if id == subscription_id.as_str() => {
                (self.listen)
                    .deliver(id, &signed.headers, signed.body, self.timeout)
                    .await
            }
            Some(_) => Err(Failure {
                kind: hookline_core::ErrorKind::InvalidTarget,
                message: "a listen target is only its own session's stream".into(),
            }),
            None => {
                self.transport
                    .post(&signed.to.target, signed.headers, signed.body)
                    .await
            }
        }
    }
}

/// A routing token a delivered answer returned that differs from the one sent.
fn learned_token(
    d: &DueDelivery,
    affinity: Option<Affinity>,
    decision: &Decision,
    answer: Option<&Answer>,
) -> Option<LearnedRoutingToken> {
    if decision.next != NextState::Succeeded {
        return None;
    }
    let (affinity, header) = (affinity?, d.routing_key_header.as_ref()?);
    let token = affinity::returned_token(d, &answer?.headers)?;
    (affinity.token.as_ref() != Some(&token)).then(|| LearnedRoutingToken {
        subscription_id: d.subscription_id.clone(),
        header: header.clone(),
        chat_id: affinity.chat_id,
        token,
    })
}

/// The metric labels of an attempt's result and error kind.
fn result(next: NextState) -> &'static str {
    match next {
        NextState::Succeeded => "delivered",
        NextState::RetryAt(_) => "retry",
        NextState::Failed => "failed",
    }
}

fn kind_label(kind: Option<hookline_core::ErrorKind>) -> &'static str {
    kind.map_or("none", |k| k.as_str())
}

/// The attempt's ids are on the enclosing span.
fn log(o: &Outcome) {
    let a = &o.attempt;
    match o.next {
        NextState::Succeeded => tracing::debug!(
            status = a.status_code,
            duration_ms = a.duration_ms,
            "delivered"
        ),
        _ => tracing::info!(
            status = a.status_code, error_kind = a.error_kind.map(|k| k.as_str()),
            error = a.error_message.as_deref(), next = ?o.next, "delivery attempt failed"
        ),
    }
}
