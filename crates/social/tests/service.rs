//! The social service over its real WebSocket with a Rust dcl-rpc client: the auth frame (3003,
//! 3004), unsupported procedures, and the fail-closed ordering of privacy changes with the
//! gatekeeper (a failing gatekeeper double at the notifier boundary).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use common::Client;
use futures_util::SinkExt;
use pchat_core::Privacy;
use social::gatekeeper::{GatekeeperNotifier, NotifyError};
use social::{App, SocialConfig};
use social_proto::v2;
use tokio_tungstenite::tungstenite::Message;

/// A gatekeeper that fails while `down` is set.
#[derive(Default)]
struct FlakyGatekeeper {
    down: AtomicBool,
}

#[async_trait]
impl GatekeeperNotifier for FlakyGatekeeper {
    async fn privacy_changed(&self, _: &str, _: Privacy) -> Result<(), NotifyError> {
        if self.down.load(Ordering::SeqCst) {
            Err(NotifyError("down".into()))
        } else {
            Ok(())
        }
    }
}

async fn start(
    gk: Arc<dyn GatekeeperNotifier>,
    auth_timeout: u64,
) -> (String, Arc<App>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tmp");
    let mut config = SocialConfig::new(&format!(
        "sqlite://{}",
        dir.path().join("s.sqlite").display()
    ));
    config.ws_auth_timeout_secs = auth_timeout;
    let app = App::build_with(&config, gk).await.expect("app");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("ws://{}/", listener.local_addr().expect("addr"));
    tokio::spawn(social::serve(listener, app.clone(), std::future::pending()));
    (url, app, dir)
}

fn privacy(resp: &v2::UpsertSocialSettingsResponse) -> Option<i32> {
    match &resp.response {
        Some(v2::upsert_social_settings_response::Response::Ok(s)) => {
            Some(s.private_messages_privacy)
        }
        _ => None,
    }
}

#[tokio::test]
async fn privacy_changes_fail_closed_with_the_gatekeeper() {
    let gk = Arc::new(FlakyGatekeeper::default());
    let (url, app, _dir) = start(gk.clone(), 300).await;
    let owner = authchain::Wallet::random();
    let mut c = Client::connect(&url, &owner).await;
    let only_friends = v2::UpsertSocialSettingsPayload {
        private_messages_privacy: Some(v2::PrivateMessagePrivacySetting::OnlyFriends as i32),
        blocked_users_messages_visibility: Some(
            v2::BlockedUsersMessagesVisibilitySetting::DoNotShowMessages as i32,
        ),
        show_situation_reactions: None,
    };

    // Gatekeeper down: only_friends is NOT stored (the gatekeeper is told first), the other
    // field is, and the client gets an error.
    gk.down.store(true, Ordering::SeqCst);
    let r: v2::UpsertSocialSettingsResponse = c
        .call("UpsertSocialSettings", &only_friends)
        .await
        .expect("call");
    assert!(
        matches!(
            r.response,
            Some(v2::upsert_social_settings_response::Response::InternalServerError(_))
        ),
        "{r:?}"
    );
    let stored = app
        .social
        .data
        .settings(&c.address)
        .await
        .expect("settings");
    assert_eq!(
        stored.private_messages_privacy,
        Privacy::All,
        "not stored while the gatekeeper is down"
    );
    assert_eq!(
        stored.blocked_users_messages_visibility,
        social_core::BlockedMessagesVisibility::DoNotShowMessages
    );

    // Gatekeeper up: stored.
    gk.down.store(false, Ordering::SeqCst);
    let r: v2::UpsertSocialSettingsResponse = c
        .call("UpsertSocialSettings", &only_friends)
        .await
        .expect("call");
    assert_eq!(
        privacy(&r),
        Some(v2::PrivateMessagePrivacySetting::OnlyFriends as i32)
    );

    // Back to `all` while the gatekeeper is down: stored first (opening up is safe), error reported.
    gk.down.store(true, Ordering::SeqCst);
    let all = v2::UpsertSocialSettingsPayload {
        private_messages_privacy: Some(0),
        ..Default::default()
    };
    let r: v2::UpsertSocialSettingsResponse =
        c.call("UpsertSocialSettings", &all).await.expect("call");
    assert!(matches!(
        r.response,
        Some(v2::upsert_social_settings_response::Response::InternalServerError(_))
    ));
    assert_eq!(
        app.social
            .data
            .settings(&c.address)
            .await
            .expect("s")
            .private_messages_privacy,
        Privacy::All
    );

    // An unknown enum value is an invalid request.
    let bad = v2::UpsertSocialSettingsPayload {
        private_messages_privacy: Some(7),
        ..Default::default()
    };
    let r: v2::UpsertSocialSettingsResponse =
        c.call("UpsertSocialSettings", &bad).await.expect("call");
    assert!(matches!(
        r.response,
        Some(v2::upsert_social_settings_response::Response::InvalidRequest(_))
    ));
}

#[tokio::test]
async fn unsupported_procedures_answer_a_clear_error_and_the_connection_stays() {
    let (url, _app, _dir) = start(Arc::new(social::gatekeeper::NoGatekeeper), 300).await;
    let mut c = Client::connect(&url, &authchain::Wallet::random()).await;
    let err = c
        .call::<v2::StartPrivateVoiceChatPayload, v2::StartPrivateVoiceChatResponse>(
            "StartPrivateVoiceChat",
            &Default::default(),
        )
        .await
        .unwrap_err();
    assert!(err.contains("not supported"), "{err}");
    let ok: Result<v2::GetSocialSettingsResponse, _> = c.call("GetSocialSettings", &()).await;
    assert!(ok.is_ok());
}

#[tokio::test]
async fn bad_auth_frames_close_with_3003_and_silence_with_3004() {
    let (url, _app, _dir) = start(Arc::new(social::gatekeeper::NoGatekeeper), 1).await;
    // Not JSON.
    let (mut ws, _) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("connect");
    ws.send(Message::Text("hello".into())).await.expect("send");
    assert_eq!(Client::close_code(&mut ws).await, 3003);
    // A tampered signature.
    let owner = authchain::Wallet::random();
    let frame = common::auth_frame(&owner)
        .replace("\\\"signature\\\":\\\"0x", "\\\"signature\\\":\\\"0x00");
    let (mut ws, _) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("connect");
    ws.send(Message::Text(frame.into())).await.expect("send");
    assert_eq!(Client::close_code(&mut ws).await, 3003);
    // A scene signer.
    let id = authchain::Identity::new(&owner, chrono::Utc::now() + chrono::Duration::minutes(5));
    let headers = id.signed_fetch_headers(
        "get",
        "/",
        authchain::now_ms(),
        r#"{"signer":"decentraland-kernel-scene"}"#,
    );
    let map: serde_json::Map<String, serde_json::Value> =
        headers.into_iter().map(|(k, v)| (k, v.into())).collect();
    let (mut ws, _) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("connect");
    ws.send(Message::Text(
        serde_json::Value::Object(map).to_string().into(),
    ))
    .await
    .expect("send");
    assert_eq!(Client::close_code(&mut ws).await, 3003);
    // No auth frame within the (1 s) timeout.
    let (mut ws, _) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("connect");
    let started = std::time::Instant::now();
    assert_eq!(Client::close_code(&mut ws).await, 3004);
    assert!(started.elapsed() < Duration::from_secs(5));
}
