//! The SDK's social view from our real social service: the receiver's privacy setting,
//! friendships and blocks, read over dcl-rpc and kept current from the update streams, decide
//! what the inbox shows. Real LiveKit, gatekeeper and social service on loopback.

use std::time::Duration;

use chat_core::{Filter, Rejected, SocialView};
use pchat_client::social::SocialClient;
use pchat_client::{ChatClient, GatekeeperTokens, Inbox, Received, RecipientState};
use social_proto::v2;
use testkit::LiveKitServer;
use testkit::gatekeeper::TestGatekeeper;

const LIMIT: Duration = Duration::from_secs(20);

struct User {
    chat: ChatClient,
    inbox: Inbox,
    social: SocialClient,
}

async fn user(gk: &str, social_ws: &str) -> User {
    let wallet = authchain::Wallet::random();
    let identity =
        authchain::Identity::new(&wallet, chrono::Utc::now() + chrono::Duration::hours(1));
    let social = SocialClient::connect(social_ws, &identity)
        .await
        .expect("social service");
    let (chat, inbox) = ChatClient::connect(
        GatekeeperTokens::new(gk, identity),
        &wallet.address().to_lower_hex(),
        SocialView::default(),
        Filter::new(),
    )
    .await
    .expect("joins");
    social.keep_current(&chat).await.expect("social view");
    User {
        chat,
        inbox,
        social,
    }
}

fn upsert(action: v2::upsert_friendship_payload::Action) -> v2::UpsertFriendshipPayload {
    v2::UpsertFriendshipPayload {
        action: Some(action),
    }
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn next(inbox: &mut Inbox) -> Received {
    inbox.next_timeout(LIMIT).await.expect("something arrives")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbox_follows_settings_friendships_and_blocks_from_the_social_service() {
    let lk = LiveKitServer::start().await.expect("livekit-server");
    let dir = tempfile::tempdir().expect("tmp");
    let social_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let social_ws = format!("ws://{}/", social_listener.local_addr().expect("addr"));
    let social_http = format!("http://{}", social_listener.local_addr().expect("addr"));
    let app = social::App::build(&social::SocialConfig::new(&format!(
        "sqlite://{}",
        dir.path().join("s.sqlite").display()
    )))
    .await
    .expect("social");
    tokio::spawn(social::serve(social_listener, app, std::future::pending()));
    let mut config = testkit::gatekeeper::config_for(&lk);
    config.social_service_url = Some(social_http);
    let server = TestGatekeeper::start(gatekeeper::Builder::new(config))
        .await
        .expect("gatekeeper");
    let gk = server.base_url();

    let a = user(&gk, &social_ws).await;
    let mut b = user(&gk, &social_ws).await;
    let (av, bv) = (a.chat.address().to_owned(), b.chat.address().to_owned());
    let b_view = b.chat.view_handle();
    let deadline = tokio::time::Instant::now() + LIMIT;
    while a.chat.recipient_state(&bv).await != RecipientState::Connected {
        assert!(tokio::time::Instant::now() < deadline, "B never reachable");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // B accepts only friends (through the social service); A is not one.
    let r: v2::UpsertSocialSettingsResponse = b
        .social
        .call(
            "UpsertSocialSettings",
            &v2::UpsertSocialSettingsPayload {
                private_messages_privacy: Some(
                    v2::PrivateMessagePrivacySetting::OnlyFriends as i32,
                ),
                ..Default::default()
            },
        )
        .await
        .expect("call");
    assert!(matches!(
        r.response,
        Some(v2::upsert_social_settings_response::Response::Ok(_))
    ));
    b.social.refresh(&b.chat).await.expect("refresh");
    a.chat.send(&bv, "hi?").await.expect("send");
    assert!(matches!(
        next(&mut b.inbox).await,
        Received::Dropped {
            reason: Rejected::NotAFriend,
            ..
        }
    ));

    // B asks A, A accepts: B hears of it on its stream and its view follows.
    let _: v2::UpsertFriendshipResponse = b
        .social
        .call(
            "UpsertFriendship",
            &upsert(v2::upsert_friendship_payload::Action::Request(
                v2::upsert_friendship_payload::RequestPayload {
                    user: Some(v2::User {
                        address: av.clone(),
                    }),
                    message: None,
                },
            )),
        )
        .await
        .expect("call");
    let _: v2::UpsertFriendshipResponse = a
        .social
        .call(
            "UpsertFriendship",
            &upsert(v2::upsert_friendship_payload::Action::Accept(
                v2::upsert_friendship_payload::AcceptPayload {
                    user: Some(v2::User {
                        address: bv.clone(),
                    }),
                },
            )),
        )
        .await
        .expect("call");
    wait_until("B's view has A as a friend", || {
        b_view
            .read()
            .map(|v| v.friends.contains(&av))
            .unwrap_or(false)
    })
    .await;
    a.chat.send(&bv, "friends now").await.expect("send");
    match next(&mut b.inbox).await {
        Received::Message { from, message } => {
            assert_eq!(
                (from.as_str(), message.text.as_str()),
                (av.as_str(), "friends now")
            )
        }
        other => panic!("{other:?}"),
    }

    // A blocks B: B's view learns it from the block stream; A's packets are dropped.
    let _: v2::BlockUserResponse = a
        .social
        .call(
            "BlockUser",
            &v2::BlockUserPayload {
                user: Some(v2::User {
                    address: bv.clone(),
                }),
            },
        )
        .await
        .expect("call");
    wait_until("B's view knows A blocked B", || {
        b_view
            .read()
            .map(|v| v.blocked_by.contains(&av))
            .unwrap_or(false)
    })
    .await;
    a.chat.send(&bv, "spam").await.expect("send");
    assert!(matches!(
        next(&mut b.inbox).await,
        Received::Dropped {
            reason: Rejected::BlocksMe,
            ..
        }
    ));

    // Bad input to the client: an unknown procedure is a clear error.
    assert!(
        b.social
            .call::<(), ()>("NoSuchProcedure", &())
            .await
            .is_err()
    );
    a.chat.leave().await;
    b.chat.leave().await;
}

/// The social service's database becomes unreachable: a refresh fails, the view stays the last
/// good one and the client says it is stale (and why); once the database is back the view is
/// read again by itself and is current. Real social service on real PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_view_stays_and_says_stale_while_the_database_is_unreachable() {
    use pchat_client::social::{SocialError, ViewStatus};
    use std::sync::{Arc, RwLock};

    let db = testkit::FreshPostgres::create("sdk").expect("fresh database");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let ws = format!("ws://{}/", listener.local_addr().expect("addr"));
    let app = social::App::build(&social::SocialConfig::new(&db.url))
        .await
        .expect("social");
    tokio::spawn(social::serve(listener, app.clone(), std::future::pending()));

    let wallet = authchain::Wallet::random();
    let me = wallet.address().to_lower_hex();
    let friend = authchain::Wallet::random().address().to_lower_hex();
    let blocked = authchain::Wallet::random().address().to_lower_hex();
    let store = &app.social.data;
    store
        .apply_action(&me, &friend, social_core::Action::Request, None)
        .await
        .expect("request");
    store
        .apply_action(&friend, &me, social_core::Action::Accept, None)
        .await
        .expect("accept");
    store.block(&me, &blocked).await.expect("block");

    let identity =
        authchain::Identity::new(&wallet, chrono::Utc::now() + chrono::Duration::hours(1));
    let client = SocialClient::connect(&ws, &identity)
        .await
        .expect("social service");
    assert_eq!(client.view_status(), ViewStatus::Unknown);
    let view = Arc::new(RwLock::new(SocialView {
        me: me.clone(),
        ..SocialView::default()
    }));
    client
        .keep_view_current(view.clone())
        .await
        .expect("first view");
    assert_eq!(client.view_status(), ViewStatus::Current);
    let good = view.read().expect("view").clone();
    assert!(good.friends.contains(&friend) && good.blocked.contains(&blocked));

    // The database goes away. An explicit refresh fails and changes nothing.
    db.reachable(false).expect("psql");
    let err = client
        .refresh_view(&view)
        .await
        .expect_err("no refresh without a database");
    assert!(
        matches!(
            err,
            SocialError::Refused { .. }
                | SocialError::Rpc(pchat_client::social::RpcError::Remote { .. })
        ),
        "{err:?}"
    );
    assert!(
        matches!(client.view_status(), ViewStatus::Stale { .. }),
        "{:?}",
        client.view_status()
    );
    assert_same(&view, &good, "the last good view is kept");

    // An update arrives (say from an instance that wrote just before the outage): the read it
    // triggers fails too, and again the view is kept.
    let mut status = client.watch_view_status();
    let before = match client.view_status() {
        ViewStatus::Stale { failures, .. } => failures,
        other => panic!("{other:?}"),
    };
    app.social
        .bus
        .publish(
            &me,
            social::bus::Update::Block(v2::BlockUpdate {
                address: friend.clone(),
                is_blocked: true,
            }),
        )
        .await;
    tokio::time::timeout(
        LIMIT,
        status.wait_for(|s| matches!(s, ViewStatus::Stale { failures, .. } if *failures > before)),
    )
    .await
    .expect("the failed read is reported in time")
    .expect("status");
    assert_same(&view, &good, "the last good view is kept");

    // The database is back: the client reads the view again by itself, without any update.
    db.reachable(true).expect("psql");
    tokio::time::timeout(
        Duration::from_secs(40),
        status.wait_for(|s| *s == ViewStatus::Current),
    )
    .await
    .expect("current again in time")
    .expect("status");
    assert_same(&view, &good, "the view after the outage");
}

fn assert_same(view: &std::sync::RwLock<SocialView>, good: &SocialView, what: &str) {
    let v = view.read().expect("view");
    assert_eq!(
        (&v.me, v.privacy, &v.friends, &v.blocked, &v.blocked_by),
        (
            &good.me,
            good.privacy,
            &good.friends,
            &good.blocked,
            &good.blocked_by
        ),
        "{what}"
    );
}
