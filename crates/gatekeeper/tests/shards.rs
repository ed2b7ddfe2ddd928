//! Sharded private-messages rooms (`PRIVATE_MESSAGES_ROOM_SHARDS`, docs/sharded-rooms.md)
//! against a real livekit-server: `GET /private-messages/token` answers as the reference does
//! (room 0) with K = 1 and K = 4; `GET /private-messages/token/{k}` gives a token for room k
//! (its `video.room` claim, and the official LiveKit SDK joins that room with it); a bad k is a
//! 400; the room index is covered by the signature; the privacy PATCH reaches the user in every
//! room it is in.

mod common;

use std::time::Duration;

use common::*;
use gatekeeper::Builder;
use livekit_api::services::room::RoomClient;
use serde_json::Value;
use testkit::LiveKitServer;
use testkit::node::NodeProcess;

const TOKEN_PATH: &str = "/private-messages/token";
const EXPLORER: &str = r#"{"signer":"dcl:explorer"}"#;
const LIMIT: Duration = Duration::from_secs(30);

async fn gatekeeper(lk: &LiveKitServer, shards: u32) -> TestGatekeeper {
    let mut c = config(&lk.ws_url(), &lk.api_key, &lk.api_secret);
    c.room_shards = shards;
    start(Builder::new(c)).await
}

/// A signed GET of `path` as `identity`: (status, body text).
async fn get_as(gk: &TestGatekeeper, identity: &authchain::Identity, path: &str) -> (u16, String) {
    let headers = identity.signed_fetch_headers("GET", path, authchain::now_ms(), EXPLORER);
    raw_get(&gk.url(path), &headers).await
}

async fn raw_get(url: &str, headers: &[(String, String)]) -> (u16, String) {
    let mut req = reqwest::Client::new().get(url);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("body"))
}

fn identity() -> authchain::Identity {
    authchain::Identity::new(
        &authchain::Wallet::random(),
        chrono::Utc::now() + chrono::Duration::hours(1),
    )
}

/// The adapter's JWT and the claims' room, for a 200 answer.
fn room_of(lk: &LiveKitServer, body: &Value) -> (String, String) {
    let (_, jwt) = split_adapter(body["adapter"].as_str().expect("adapter"));
    let c = claims(lk, &jwt);
    let room = c["video"]["room"].as_str().expect("room claim").to_owned();
    (jwt, room)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_room_answers_as_the_reference_and_names_room_0_on_the_new_path() {
    let lk = LiveKitServer::start().await.expect("livekit-server");
    let gk = gatekeeper(&lk, 1).await;
    let id = identity();

    // The legacy path: exactly `{"adapter":"…"}`, nothing more, for room 0.
    let (status, text) = get_as(&gk, &id, TOKEN_PATH).await;
    assert_eq!(status, 200, "{text}");
    let body = json(&text);
    let adapter = body["adapter"].as_str().expect("adapter");
    assert_eq!(
        text,
        serde_json::json!({ "adapter": adapter }).to_string(),
        "byte for byte the reference's shape"
    );
    assert_eq!(room_of(&lk, &body).1, "private-messages");

    // The new path, room 0: the same token's room, and the room named.
    let (status, text) = get_as(&gk, &id, "/private-messages/token/0").await;
    assert_eq!(status, 200, "{text}");
    let body = json(&text);
    assert_eq!(room_of(&lk, &body).1, "private-messages");
    assert_eq!(body["room"], "private-messages");
    assert_eq!(body["room_index"], 0);
    assert_eq!(body["room_count"], 1);

    // There is no room 1.
    let (status, text) = get_as(&gk, &id, "/private-messages/token/1").await;
    assert_eq!(status, 400, "{text}");
    assert_eq!(
        json(&text),
        serde_json::json!({"ok": false, "message": "Invalid room: expected a number from 0 to 0"})
    );
    gk.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_rooms_tokens_per_room_bad_rooms_refused_and_the_room_is_signed() {
    let lk = LiveKitServer::start().await.expect("livekit-server");
    let gk = gatekeeper(&lk, 4).await;
    let id = identity();
    let me = id.address().to_lower_hex();

    // The legacy path: room 0, and K said in extra fields.
    let (status, text) = get_as(&gk, &id, TOKEN_PATH).await;
    assert_eq!(status, 200, "{text}");
    let body = json(&text);
    assert_eq!(room_of(&lk, &body).1, "private-messages");
    assert_eq!(body["room"], "private-messages");
    assert_eq!(body["room_index"], 0);
    assert_eq!(body["room_count"], 4);
    assert_eq!(body.as_object().map(|o| o.len()), Some(4), "{body}");

    // Room k: a token whose room claim is room k, with the same identity and metadata.
    for k in 0..4u32 {
        let (status, text) = get_as(&gk, &id, &format!("{TOKEN_PATH}/{k}")).await;
        assert_eq!(status, 200, "{text}");
        let body = json(&text);
        let (jwt, room) = room_of(&lk, &body);
        assert_eq!(room, pchat_core::rooms::room_name("private-messages", k));
        assert_eq!(body["room"], Value::from(room.clone()));
        assert_eq!(body["room_index"], k);
        assert_eq!(body["room_count"], 4);
        let c = claims(&lk, &jwt);
        assert_eq!(c["sub"], Value::from(me.clone()));
        assert_eq!(
            c["metadata"],
            Value::from(r#"{"private_messages_privacy":"all"}"#)
        );
    }

    // Bad rooms: 400 in the gatekeeper's error shape.
    for bad in ["4", "64", "-1", "x", "1.5", "0x1", "99999999999"] {
        let (status, text) = get_as(&gk, &id, &format!("{TOKEN_PATH}/{bad}")).await;
        assert_eq!(status, 400, "{bad}: {text}");
        assert_eq!(
            json(&text)["message"],
            "Invalid room: expected a number from 0 to 3",
            "{bad}"
        );
    }

    // Unsigned: refused as on the legacy path.
    let (legacy_status, legacy_text) = raw_get(&gk.url(TOKEN_PATH), &[]).await;
    let (status, text) = raw_get(&gk.url(&format!("{TOKEN_PATH}/2")), &[]).await;
    assert!(legacy_status == 400 || legacy_status == 401);
    assert_eq!((status, text), (legacy_status, legacy_text));

    // Headers signed for one path do not buy a token for another room.
    let signed_for_0 = id.signed_fetch_headers("GET", TOKEN_PATH, authchain::now_ms(), EXPLORER);
    let (status, text) = raw_get(&gk.url(&format!("{TOKEN_PATH}/2")), &signed_for_0).await;
    assert_eq!(status, 401, "{text}");
    let signed_for_1 = id.signed_fetch_headers(
        "GET",
        &format!("{TOKEN_PATH}/1"),
        authchain::now_ms(),
        EXPLORER,
    );
    let (status, text) = raw_get(&gk.url(&format!("{TOKEN_PATH}/3")), &signed_for_1).await;
    assert_eq!(status, 401, "{text}");
    let (status, text) = raw_get(&gk.url(&format!("{TOKEN_PATH}/1")), &signed_for_1).await;
    assert_eq!(status, 200, "{text}");
    gk.shutdown().await;
}

/// `identity`'s metadata in `room`, as LiveKit's RoomService lists it (None: not there).
async fn metadata_in(lk: &LiveKitServer, room: &str, identity: &str) -> Option<String> {
    let rooms = RoomClient::with_api_key(&lk.http_url(), &lk.api_key, &lk.api_secret);
    rooms
        .list_participants(room)
        .await
        .ok()?
        .into_iter()
        .find(|p| p.identity == identity)
        .map(|p| p.metadata)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_privacy_patch_reaches_every_room_the_user_is_in() {
    let lk = LiveKitServer::start().await.expect("livekit-server");
    let gk = gatekeeper(&lk, 4).await;
    let id = identity();
    let me = id.address().to_lower_hex();

    // The official LiveKit SDK joins rooms 0 and 2 as the same wallet, with our tokens.
    let mut peers = Vec::new();
    for k in [0u32, 2] {
        let (status, text) = get_as(&gk, &id, &format!("{TOKEN_PATH}/{k}")).await;
        assert_eq!(status, 200, "{text}");
        let (url, jwt) = split_adapter(json(&text)["adapter"].as_str().expect("adapter"));
        let mut peer = NodeProcess::spawn("lk-participant.mjs", &[&url, &jwt]).expect("node");
        peer.wait_for("\"connected\"", LIMIT)
            .await
            .expect("the official SDK joins room k");
        peers.push(peer);
    }
    let all = r#"{"private_messages_privacy":"all"}"#;
    let friends = r#"{"private_messages_privacy":"only_friends"}"#;
    assert_eq!(
        metadata_in(&lk, "private-messages", &me).await.as_deref(),
        Some(all)
    );
    assert_eq!(
        metadata_in(&lk, "private-messages-2", &me).await.as_deref(),
        Some(all)
    );

    // One PATCH: both rooms change; not being in rooms 1 and 3 is no error.
    let (s, b) = set_privacy(&gk, &me, "only_friends").await;
    assert_eq!(s, 204, "{b}");
    for room in ["private-messages", "private-messages-2"] {
        assert_eq!(
            metadata_in(&lk, room, &me).await.as_deref(),
            Some(friends),
            "{room}"
        );
    }
    assert_eq!(metadata_in(&lk, "private-messages-1", &me).await, None);

    // In no room at all: the reference's answer.
    let absent = authchain::Wallet::random().address().to_lower_hex();
    let (s, b) = set_privacy(&gk, &absent, "all").await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["message"], "Participant is not connected to the room");

    for mut peer in peers {
        peer.kill().await;
    }
    gk.shutdown().await;
}

#[tokio::test]
async fn a_room_count_out_of_bounds_is_a_configuration_error() {
    for bad in [0u32, 65] {
        let mut c = config(
            "ws://127.0.0.1:1",
            "APIk",
            "a-secret-long-enough-0123456789abc",
        );
        c.room_shards = bad;
        let err = Builder::new(c).build().err().expect("refused");
        assert!(
            err.to_string().contains("PRIVATE_MESSAGES_ROOM_SHARDS"),
            "{err}"
        );
    }
}

/// A RoomService answering per room: `found` rooms Ok, `down` rooms unreachable, the rest
/// not-found; records the rooms asked.
struct PerRoom {
    found: Vec<&'static str>,
    down: Vec<&'static str>,
    asked: std::sync::Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl gatekeeper::livekit::RoomService for PerRoom {
    async fn update_participant_metadata(
        &self,
        room: &str,
        _identity: &str,
        _metadata: &str,
    ) -> Result<(), gatekeeper::livekit::RoomServiceError> {
        use gatekeeper::livekit::RoomServiceError as E;
        self.asked.lock().expect("lock").push(room.to_owned());
        if self.down.contains(&room) {
            Err(E::Unavailable("down".into()))
        } else if self.found.contains(&room) {
            Ok(())
        } else {
            Err(E::NotFound)
        }
    }
}

#[tokio::test]
async fn the_patch_asks_every_room_once_and_a_failure_anywhere_is_reported() {
    let cases: [(Vec<&'static str>, Vec<&'static str>, u16); 4] = [
        (vec!["private-messages-3"], vec![], 204),
        (vec![], vec![], 400),
        (vec!["private-messages"], vec!["private-messages-1"], 503),
        (vec![], vec!["private-messages-2"], 503),
    ];
    for (found, down, want) in cases {
        let rooms = std::sync::Arc::new(PerRoom {
            found: found.clone(),
            down: down.clone(),
            asked: Default::default(),
        });
        let mut c = config(
            "ws://127.0.0.1:1",
            "APIk",
            "a-secret-long-enough-0123456789abc",
        );
        c.room_shards = 4;
        let gk = start(Builder::new(c).room_service(rooms.clone())).await;
        let (s, b) = set_privacy(&gk, "0x23c86705dd3a3855d939322c53379d42a4e365ee", "all").await;
        assert_eq!(s, want, "found {found:?}, down {down:?}: {b}");
        let mut asked = rooms.asked.lock().expect("lock").clone();
        asked.sort();
        assert_eq!(
            asked,
            [
                "private-messages",
                "private-messages-1",
                "private-messages-2",
                "private-messages-3"
            ]
        );
        gk.shutdown().await;
    }
}
