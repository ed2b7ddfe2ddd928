//! Telling the gatekeeper about privacy changes, so that LiveKit metadata follows the setting.

use std::time::Duration;

use async_trait::async_trait;
use pchat_core::Privacy;

/// Why the gatekeeper could not be told.
#[derive(Debug, Clone, thiserror::Error)]
#[error("gatekeeper update failed: {0}")]
pub struct NotifyError(pub String);

/// The boundary to the gatekeeper.
#[async_trait]
pub trait GatekeeperNotifier: Send + Sync {
    async fn privacy_changed(&self, address: &str, privacy: Privacy) -> Result<(), NotifyError>;
}

/// No gatekeeper configured: nothing to tell.
pub struct NoGatekeeper;

#[async_trait]
impl GatekeeperNotifier for NoGatekeeper {
    async fn privacy_changed(&self, _: &str, _: Privacy) -> Result<(), NotifyError> {
        Ok(())
    }
}

/// `PATCH {base}/users/{address}/private-messages-privacy` with the bearer token.
pub struct HttpGatekeeper {
    base: String,
    token: String,
    client: reqwest::Client,
}

impl HttpGatekeeper {
    pub fn new(base: &str, token: &str, timeout: Duration) -> Result<Self, NotifyError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| NotifyError(e.to_string()))?;
        Ok(HttpGatekeeper {
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            client,
        })
    }
}

#[async_trait]
impl GatekeeperNotifier for HttpGatekeeper {
    async fn privacy_changed(&self, address: &str, privacy: Privacy) -> Result<(), NotifyError> {
        let resp = self
            .client
            .patch(format!(
                "{}/users/{address}/private-messages-privacy",
                self.base
            ))
            .bearer_auth(&self.token)
            .json(&serde_json::json!({ "private_messages_privacy": privacy.as_str() }))
            .send()
            .await
            .map_err(|e| NotifyError(e.to_string()))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let body = resp.text().await.unwrap_or_default();
        // Not in the room: no metadata to update, and the next token carries the new value.
        if status.as_u16() == 400 && is_not_connected(&body) {
            return Ok(());
        }
        Err(NotifyError(format!("gatekeeper answered {status}: {body}")))
    }
}

/// Whether an error answer of the gatekeeper (`{"ok":false,"message":…}`) says the user is not
/// in the room ([`pchat_core::PARTICIPANT_NOT_CONNECTED`]).
fn is_not_connected(body: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("message")?.as_str().map(str::to_owned))
        .is_some_and(|m| m == pchat_core::PARTICIPANT_NOT_CONNECTED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_not_connected_answer_is_recognised_by_its_message() {
        let answer =
            serde_json::json!({"ok": false, "message": pchat_core::PARTICIPANT_NOT_CONNECTED});
        assert!(is_not_connected(&answer.to_string()));
        for other in [
            r#"{"ok":false,"message":"Invalid private_messages_privacy"}"#,
            r#"{"ok":false,"message":"Participant is not connected to the room!"}"#,
            "Participant is not connected to the room",
            "",
        ] {
            assert!(!is_not_connected(other), "{other}");
        }
    }
}
