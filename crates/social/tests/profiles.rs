//! Profile names from a Catalyst's lambdas (`CATALYST_LAMBDAS_URL`): friend lists, requests,
//! updates and blocked users carry the names and pictures the lambdas give, fetched in batches
//! and cached; a failing Catalyst leaves the address as the name.
//!
//! The Catalyst is an external service that tests must not reach, so a small HTTP server on
//! 127.0.0.1 answers `POST /lambdas/profiles` in the lambdas' JSON shape; the social service
//! under test is the real one, over its real WebSocket.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use common::{Client, item};
use social::{App, SocialConfig};
use social_proto::v2;

#[derive(Default)]
struct Lambdas {
    names: Mutex<HashMap<String, String>>,
    requests: AtomicUsize,
    ids_asked: AtomicUsize,
    down: AtomicBool,
}

async fn profiles(State(l): State<Arc<Lambdas>>, Json(body): Json<serde_json::Value>) -> Response {
    l.requests.fetch_add(1, Ordering::SeqCst);
    if l.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let ids: Vec<String> = body["ids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    l.ids_asked.fetch_add(ids.len(), Ordering::SeqCst);
    let names = l.names.lock().expect("names").clone();
    let out: Vec<serde_json::Value> = ids
        .iter()
        .filter_map(|id| {
            names.get(&id.to_lowercase()).map(|name| {
                serde_json::json!({
                    "timestamp": 1,
                    "avatars": [{
                        "userId": id,
                        "ethAddress": id,
                        "name": name,
                        "hasClaimedName": true,
                        "avatar": {"snapshots": {"face256": format!("https://pictures.test/{name}.png"), "body": "x"}}
                    }]
                })
            })
        })
        .collect();
    Json(out).into_response()
}

fn upsert(
    action: fn(v2::User) -> v2::upsert_friendship_payload::Action,
    to: &str,
) -> v2::UpsertFriendshipPayload {
    v2::UpsertFriendshipPayload {
        action: Some(action(v2::User {
            address: to.to_owned(),
        })),
    }
}

fn request(u: v2::User) -> v2::upsert_friendship_payload::Action {
    v2::upsert_friendship_payload::Action::Request(v2::upsert_friendship_payload::RequestPayload {
        user: Some(u),
        message: None,
    })
}

fn accept(u: v2::User) -> v2::upsert_friendship_payload::Action {
    v2::upsert_friendship_payload::Action::Accept(v2::upsert_friendship_payload::AcceptPayload {
        user: Some(u),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_and_pictures_come_from_the_lambdas() {
    let lambdas = Arc::new(Lambdas::default());
    let router = axum::Router::new()
        .route("/lambdas/profiles", axum::routing::post(profiles))
        .with_state(lambdas.clone());
    let lambdas_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let lambdas_url = format!(
        "http://{}/lambdas",
        lambdas_listener.local_addr().expect("addr")
    );
    tokio::spawn(async move { axum::serve(lambdas_listener, router).await });

    let dir = tempfile::tempdir().expect("tmp");
    let mut config = SocialConfig::new(&format!(
        "sqlite://{}",
        dir.path().join("s.sqlite").display()
    ));
    config.catalyst_lambdas_url = Some(lambdas_url);
    let app = App::build(&config).await.expect("app");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("ws://{}/", listener.local_addr().expect("addr"));
    tokio::spawn(social::serve(listener, app, std::future::pending()));

    let (xw, yw) = (authchain::Wallet::random(), authchain::Wallet::random());
    let z = authchain::Wallet::random().address().to_lower_hex();
    {
        let mut names = lambdas.names.lock().expect("names");
        names.insert(xw.address().to_lower_hex(), "xavier".into());
        names.insert(yw.address().to_lower_hex(), "yolanda".into());
        // z has no profile on the Catalyst.
    }
    let mut x = Client::connect(&url, &xw).await;
    let mut y = Client::connect(&url, &yw).await;
    let mut updates = y
        .subscribe::<v2::FriendshipUpdate>("SubscribeToFriendshipUpdates")
        .await;

    // X asks Y: the update Y receives names X.
    let _: v2::UpsertFriendshipResponse = x
        .call("UpsertFriendship", &upsert(request, &y.address))
        .await
        .expect("call");
    let update = tokio::time::timeout(Duration::from_secs(10), item(&mut updates))
        .await
        .expect("update in time");
    match update.update {
        Some(v2::friendship_update::Update::Request(r)) => {
            let friend = r.friend.expect("friend");
            assert_eq!(friend.name, "xavier");
            assert!(friend.has_claimed_name);
            assert_eq!(
                friend.profile_picture_url,
                "https://pictures.test/xavier.png"
            );
        }
        other => panic!("{other:?}"),
    }

    // Y's pending requests name X.
    let pending: v2::PaginatedFriendshipRequestsResponse = y
        .call(
            "GetPendingFriendshipRequests",
            &v2::GetFriendshipRequestsPayload::default(),
        )
        .await
        .expect("call");
    match pending.response {
        Some(v2::paginated_friendship_requests_response::Response::Requests(r)) => {
            assert_eq!(
                r.requests[0].friend.as_ref().map(|f| f.name.as_str()),
                Some("xavier")
            )
        }
        other => panic!("{other:?}"),
    }

    // Y accepts; X's friends list names Y, and a second read is answered from the cache.
    let accepted: v2::UpsertFriendshipResponse = y
        .call("UpsertFriendship", &upsert(accept, &x.address))
        .await
        .expect("call");
    match accepted.response {
        Some(v2::upsert_friendship_response::Response::Accepted(a)) => {
            assert_eq!(a.friend.map(|f| f.name), Some("xavier".into()))
        }
        other => panic!("{other:?}"),
    }
    let friends: v2::PaginatedFriendsProfilesResponse = x
        .call("GetFriends", &v2::GetFriendsPayload::default())
        .await
        .expect("call");
    assert_eq!(friends.friends.len(), 1);
    assert_eq!(friends.friends[0].address, y.address);
    assert_eq!(friends.friends[0].name, "yolanda");
    let asked = lambdas.requests.load(Ordering::SeqCst);
    let _: v2::PaginatedFriendsProfilesResponse = x
        .call("GetFriends", &v2::GetFriendsPayload::default())
        .await
        .expect("call");
    assert_eq!(
        lambdas.requests.load(Ordering::SeqCst),
        asked,
        "cached profiles are not asked for again"
    );

    // Blocked users: a user without a Catalyst profile is shown by address.
    let _: v2::BlockUserResponse = x
        .call(
            "BlockUser",
            &v2::BlockUserPayload {
                user: Some(v2::User { address: z.clone() }),
            },
        )
        .await
        .expect("call");
    let blocked: v2::GetBlockedUsersResponse = x
        .call("GetBlockedUsers", &v2::GetBlockedUsersPayload::default())
        .await
        .expect("call");
    assert_eq!(blocked.profiles.len(), 1);
    assert_eq!(blocked.profiles[0].name, z);
    assert!(!blocked.profiles[0].has_claimed_name);

    // The Catalyst goes down: new addresses fall back to the address, calls still succeed.
    lambdas.down.store(true, Ordering::SeqCst);
    let w = authchain::Wallet::random().address().to_lower_hex();
    let blocked: v2::BlockUserResponse = x
        .call(
            "BlockUser",
            &v2::BlockUserPayload {
                user: Some(v2::User { address: w.clone() }),
            },
        )
        .await
        .expect("call");
    match blocked.response {
        Some(v2::block_user_response::Response::Ok(ok)) => {
            assert_eq!(ok.profile.map(|p| p.name), Some(w))
        }
        other => panic!("{other:?}"),
    }
}
