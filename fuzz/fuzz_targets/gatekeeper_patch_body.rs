//! The gatekeeper's `PATCH /users/:address/private-messages-privacy`: the real axum router
//! (`gatekeeper::routes::router`, every middleware) driven in-process with
//! `tower::ServiceExt::oneshot`, a fake LiveKit RoomService, an arbitrary address segment and an
//! arbitrary body.
//!
//! Input: `[selector][address segment]\n[body…]`. The selector picks the fake LiveKit answer, the
//! bearer token (right, wrong, missing) and the content type.
//!
//! Checked: no panic; the status is one the route documents; every error answer is
//! `{"ok":false,"message":…}`; a 204 only for a valid address and privacy, and then LiveKit was
//! asked with the lower-case address and the privacy's metadata.
#![no_main]

use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use gatekeeper::livekit::{RoomService, RoomServiceError};
use gatekeeper::{AppState, Builder, GatekeeperConfig};
use libfuzzer_sys::fuzz_target;
use pchat_core::Privacy;
use tokio::runtime::Runtime;
use tower::ServiceExt;

const TOKEN: &str = "fuzz-shared-secret";

#[derive(Default)]
struct FakeRooms {
    answer: Mutex<Option<RoomServiceError>>,
    calls: Mutex<Vec<(String, String)>>,
}

#[async_trait]
impl RoomService for FakeRooms {
    async fn update_participant_metadata(
        &self,
        _room: &str,
        identity: &str,
        metadata: &str,
    ) -> Result<(), RoomServiceError> {
        self.calls
            .lock()
            .expect("lock")
            .push((identity.to_owned(), metadata.to_owned()));
        match self.answer.lock().expect("lock").clone() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

struct Harness {
    rt: Runtime,
    state: Arc<AppState>,
    rooms: Arc<FakeRooms>,
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let rooms = Arc::new(FakeRooms::default());
        let state = rt.block_on(async {
            Builder::new(GatekeeperConfig::new(
                "ws://127.0.0.1:7880",
                "key",
                "secret-secret-secret-secret-secret",
                TOKEN,
            ))
            .room_service(rooms.clone())
            .build()
            .expect("gatekeeper state")
        });
        Harness { rt, state, rooms }
    })
}

/// Percent-encodes every byte that is not unreserved, so any segment makes a valid URI.
fn encode_segment(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(b) {
            out.push(char::from(*b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fuzz_target!(
    init: private_chat_fuzz::seeds::write_if_asked("gatekeeper_patch_body"),
    |data: &[u8]| {
    let [selector, rest @ ..] = data else {
        return;
    };
    let (segment, body) = match rest.iter().position(|b| *b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let h = harness();
    *h.rooms.answer.lock().expect("lock") = match selector & 3 {
        0 => None,
        1 => Some(RoomServiceError::NotFound),
        2 => Some(RoomServiceError::Unavailable("down".into())),
        _ => Some(RoomServiceError::Other("weird".into())),
    };
    h.rooms.calls.lock().expect("lock").clear();
    let bearer = match (selector >> 2) & 3 {
        0 | 1 => Some(format!("Bearer {TOKEN}")),
        2 => Some("Bearer wrong".to_owned()),
        _ => None,
    };
    let mut request = Request::builder()
        .method("PATCH")
        .uri(format!(
            "/users/{}/private-messages-privacy",
            encode_segment(segment)
        ));
    if let Some(b) = &bearer {
        request = request.header(header::AUTHORIZATION, b);
    }
    if selector & 0x10 != 0 {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    let Ok(request) = request.body(Body::from(body.to_vec())) else {
        return;
    };
    let router = gatekeeper::routes::router(h.state.clone());
    let (status, bytes) = h.rt.block_on(async {
        let response = router.oneshot(request).await.expect("infallible");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("response body");
        (status, bytes)
    });
    let calls = std::mem::take(&mut *h.rooms.calls.lock().expect("lock"));
    match status {
        StatusCode::NO_CONTENT => {
            assert_eq!(selector & 3, 0, "204 although LiveKit failed");
            assert!(bearer.as_deref() == Some(&format!("Bearer {TOKEN}")[..]));
            let address = pchat_core::normalize_address(
                std::str::from_utf8(segment).expect("a valid address is UTF-8"),
            )
            .expect("204 for an invalid address");
            let value: serde_json::Value =
                serde_json::from_slice(body).expect("204 for a body that is not JSON");
            let privacy: Privacy = value["private_messages_privacy"]
                .as_str()
                .expect("204 without private_messages_privacy")
                .parse()
                .expect("204 for an invalid privacy");
            assert_eq!(calls, vec![(address, privacy.participant_metadata())]);
        }
        StatusCode::BAD_REQUEST
        | StatusCode::UNAUTHORIZED
        | StatusCode::PAYLOAD_TOO_LARGE
        | StatusCode::BAD_GATEWAY
        | StatusCode::SERVICE_UNAVAILABLE
        | StatusCode::NOT_FOUND => {
            let value: serde_json::Value = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{status} with a body that is not JSON: {e}"));
            assert_eq!(value["ok"], serde_json::Value::Bool(false), "{value}");
            assert!(value["message"].is_string(), "{value}");
            if status == StatusCode::UNAUTHORIZED {
                assert!(calls.is_empty(), "LiveKit asked without the bearer token");
            }
        }
        other => panic!("unexpected status {other}: {}", String::from_utf8_lossy(&bytes)),
    }
});
