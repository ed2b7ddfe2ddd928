//! The social service on PostgreSQL while the database is unreachable: every read answers an
//! error (the procedure's error arm, or a dcl-rpc remote error where the response has none),
//! never an empty list or a default; the HTTP privacy endpoint answers 5xx. With the cache on
//! and off, and with cold cache entries (a cached value is a legitimate answer). Two outages:
//! the database's connections terminated while it refuses new ones (`ALLOW_CONNECTIONS
//! false`), and connections terminated alone (a read then either fails or answers the truth).
//! Afterwards the service answers correctly again.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::Client;
use social::cache::Invalidation;
use social::{App, SocialConfig};
use social_core::{Action, SettingsChange};
use social_proto::v2;
use testkit::FreshPostgres;

async fn start(config: &SocialConfig) -> (String, String, Arc<App>) {
    let app = App::build(config).await.expect("app");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(social::serve(listener, app.clone(), std::future::pending()));
    (format!("ws://{addr}/"), format!("http://{addr}"), app)
}

fn user(address: &str) -> Option<v2::User> {
    Some(v2::User {
        address: address.to_owned(),
    })
}

/// One user's data, all non-empty: a friend `f` (shared with `f2`, so `me` and `f2` have a
/// mutual friend), a received request from `p`, a sent request to `q`, `me` blocks `b`,
/// `b2` blocks `me`, `me` accepts only friends.
struct Seeded {
    me: authchain::Wallet,
    f: String,
    f2: String,
    p: String,
    q: String,
    b: String,
    b2: String,
}

fn random_address() -> String {
    authchain::Wallet::random().address().to_lower_hex()
}

async fn seed(app: &App) -> Seeded {
    let me = authchain::Wallet::random();
    let m = me.address().to_lower_hex();
    let s = Seeded {
        me,
        f: random_address(),
        f2: random_address(),
        p: random_address(),
        q: random_address(),
        b: random_address(),
        b2: random_address(),
    };
    let store = &app.social.data;
    for (x, y) in [(&m, &s.f), (&s.f2, &s.f)] {
        store
            .apply_action(x, y, Action::Request, None)
            .await
            .expect("request");
        store
            .apply_action(y, x, Action::Accept, None)
            .await
            .expect("accept");
    }
    store
        .apply_action(&s.p, &m, Action::Request, Some("hi"))
        .await
        .expect("request");
    store
        .apply_action(&m, &s.q, Action::Request, None)
        .await
        .expect("request");
    store.block(&m, &s.b).await.expect("block");
    store.block(&s.b2, &m).await.expect("block");
    store
        .upsert_settings(
            &m,
            SettingsChange {
                private_messages_privacy: Some(pchat_core::Privacy::OnlyFriends),
                ..Default::default()
            },
        )
        .await
        .expect("settings");
    s
}

/// What one read answered.
#[derive(Debug)]
enum Answer {
    /// The truth (the seeded, non-empty data).
    Right,
    /// An error: the procedure's error arm, a remote error, or a 5xx.
    Error(String),
    /// Anything else: an empty list, a default, a wrong value.
    Wrong(String),
}

/// Every read of `s.me`'s data once, through the real WebSocket and the HTTP endpoint.
async fn read_all(c: &mut Client, http: &str, s: &Seeded) -> Vec<(&'static str, Answer)> {
    use Answer::*;
    let me = c.address.clone();
    let mut out = Vec::new();
    let page = Some(v2::Pagination {
        limit: 10,
        offset: 0,
    });

    let r: Result<v2::PaginatedFriendsProfilesResponse, _> = c
        .call("GetFriends", &v2::GetFriendsPayload { pagination: page })
        .await;
    out.push((
        "GetFriends",
        match r {
            Ok(r) if r.friends.len() == 1 && r.friends[0].address == s.f => Right,
            Ok(r) => Wrong(format!("{r:?}")),
            Err(e) => Error(e),
        },
    ));

    let r: Result<v2::PaginatedFriendsProfilesResponse, _> = c
        .call(
            "GetMutualFriends",
            &v2::GetMutualFriendsPayload {
                user: user(&s.f2),
                pagination: page,
            },
        )
        .await;
    out.push((
        "GetMutualFriends",
        match r {
            Ok(r) if r.friends.len() == 1 && r.friends[0].address == s.f => Right,
            Ok(r) => Wrong(format!("{r:?}")),
            Err(e) => Error(e),
        },
    ));

    for (name, expected) in [
        ("GetPendingFriendshipRequests", &s.p),
        ("GetSentFriendshipRequests", &s.q),
    ] {
        use v2::paginated_friendship_requests_response::Response;
        let r: Result<v2::PaginatedFriendshipRequestsResponse, _> = c
            .call(name, &v2::GetFriendshipRequestsPayload { pagination: page })
            .await;
        out.push((
            name,
            match r {
                Ok(v2::PaginatedFriendshipRequestsResponse {
                    response: Some(Response::Requests(list)),
                    ..
                }) if list.requests.len() == 1
                    && list.requests[0].friend.as_ref().map(|f| &f.address) == Some(expected) =>
                {
                    Right
                }
                Ok(v2::PaginatedFriendshipRequestsResponse {
                    response: Some(Response::InternalServerError(e)),
                    ..
                }) => Error(format!("{e:?}")),
                Ok(r) => Wrong(format!("{r:?}")),
                Err(e) => Error(e),
            },
        ));
    }

    {
        use v2::get_friendship_status_response::Response;
        let r: Result<v2::GetFriendshipStatusResponse, _> = c
            .call(
                "GetFriendshipStatus",
                &v2::GetFriendshipStatusPayload { user: user(&s.f) },
            )
            .await;
        out.push((
            "GetFriendshipStatus",
            match r {
                Ok(v2::GetFriendshipStatusResponse {
                    response: Some(Response::Accepted(ok)),
                }) if ok.status == v2::FriendshipStatus::Accepted as i32 => Right,
                Ok(v2::GetFriendshipStatusResponse {
                    response: Some(Response::InternalServerError(e)),
                }) => Error(format!("{e:?}")),
                Ok(r) => Wrong(format!("{r:?}")),
                Err(e) => Error(e),
            },
        ));
    }

    let r: Result<v2::GetBlockedUsersResponse, _> = c
        .call(
            "GetBlockedUsers",
            &v2::GetBlockedUsersPayload { pagination: page },
        )
        .await;
    out.push((
        "GetBlockedUsers",
        match r {
            Ok(r) if r.profiles.len() == 1 && r.profiles[0].address == s.b => Right,
            Ok(r) => Wrong(format!("{r:?}")),
            Err(e) => Error(e),
        },
    ));

    let r: Result<v2::GetBlockingStatusResponse, _> = c.call("GetBlockingStatus", &()).await;
    out.push((
        "GetBlockingStatus",
        match r {
            Ok(r) if r.blocked_users == [s.b.clone()] && r.blocked_by_users == [s.b2.clone()] => {
                Right
            }
            Ok(r) => Wrong(format!("{r:?}")),
            Err(e) => Error(e),
        },
    ));

    {
        use v2::get_social_settings_response::Response;
        let r: Result<v2::GetSocialSettingsResponse, _> = c.call("GetSocialSettings", &()).await;
        out.push((
            "GetSocialSettings",
            match r {
                Ok(v2::GetSocialSettingsResponse {
                    response: Some(Response::Ok(ok)),
                }) if ok.settings.as_ref().map(|s| s.private_messages_privacy)
                    == Some(v2::PrivateMessagePrivacySetting::OnlyFriends as i32) =>
                {
                    Right
                }
                Ok(v2::GetSocialSettingsResponse {
                    response: Some(Response::InternalServerError(e)),
                }) => Error(format!("{e:?}")),
                Ok(r) => Wrong(format!("{r:?}")),
                Err(e) => Error(e),
            },
        ));
    }

    {
        use v2::get_private_messages_settings_response::Response;
        // `me` asks about itself (only friends) and its friend (is_friend).
        let r: Result<v2::GetPrivateMessagesSettingsResponse, _> = c
            .call(
                "GetPrivateMessagesSettings",
                &v2::GetPrivateMessagesSettingsPayload {
                    user: vec![
                        v2::User {
                            address: me.clone(),
                        },
                        v2::User {
                            address: s.f.clone(),
                        },
                    ],
                },
            )
            .await;
        out.push((
            "GetPrivateMessagesSettings",
            match r {
                Ok(v2::GetPrivateMessagesSettingsResponse {
                    response: Some(Response::Ok(ok)),
                }) if ok.settings.len() == 2
                    && ok.settings[0].private_messages_privacy
                        == v2::PrivateMessagePrivacySetting::OnlyFriends as i32
                    && ok.settings[1].is_friend =>
                {
                    Right
                }
                Ok(v2::GetPrivateMessagesSettingsResponse {
                    response: Some(Response::InternalServerError(e)),
                }) => Error(format!("{e:?}")),
                Ok(r) => Wrong(format!("{r:?}")),
                Err(e) => Error(e),
            },
        ));
    }

    // The connectivity stream starts with the friends online now: it needs the friend list.
    // (`f` is not connected, so a good snapshot is empty; what matters is that a failed read
    // refuses the stream instead of opening it as if the user had no friends online.)
    out.push((
        "SubscribeToFriendConnectivityUpdates",
        match c
            .try_subscribe::<v2::FriendConnectivityUpdate>("SubscribeToFriendConnectivityUpdates")
            .await
        {
            Ok(_) => Right,
            Err(e) => Error(e),
        },
    ));

    let r = reqwest::Client::new()
        .get(format!("{http}/v1/users/{me}/privacy-settings"))
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .expect("HTTP answers");
    let status = r.status();
    let body = r.text().await.unwrap_or_default();
    out.push((
        "GET /v1/users/:address/privacy-settings",
        if status.is_server_error() {
            Error(format!("{status} {body}"))
        } else if status.is_success() && body.contains("only_friends") {
            Right
        } else {
            Wrong(format!("{status} {body}"))
        },
    ));
    out
}

/// Every write of `c` during the outage answers an error too (never a success or a default).
async fn writes_fail(c: &mut Client, other: &str) {
    use v2::upsert_friendship_payload::{Action as A, RequestPayload};
    let r: v2::UpsertFriendshipResponse = c
        .call(
            "UpsertFriendship",
            &v2::UpsertFriendshipPayload {
                action: Some(A::Request(RequestPayload {
                    user: user(other),
                    message: None,
                })),
            },
        )
        .await
        .expect("an answer");
    assert!(
        matches!(
            r.response,
            Some(v2::upsert_friendship_response::Response::InternalServerError(_))
        ),
        "{r:?}"
    );
    let r: v2::UpsertSocialSettingsResponse = c
        .call(
            "UpsertSocialSettings",
            &v2::UpsertSocialSettingsPayload {
                show_situation_reactions: Some(v2::SituationReactionsVisibility::Hide as i32),
                ..Default::default()
            },
        )
        .await
        .expect("an answer");
    assert!(
        matches!(
            r.response,
            Some(v2::upsert_social_settings_response::Response::InternalServerError(_))
        ),
        "{r:?}"
    );
    let r: v2::BlockUserResponse = c
        .call("BlockUser", &v2::BlockUserPayload { user: user(other) })
        .await
        .expect("an answer");
    assert!(
        matches!(
            r.response,
            Some(v2::block_user_response::Response::InternalServerError(_))
        ),
        "{r:?}"
    );
}

async fn reads_during_outages(cache_ttl_secs: u64) {
    let db = FreshPostgres::create("o").expect("a fresh PostgreSQL database");
    let mut config = SocialConfig::new(&db.url);
    config.cache_ttl_secs = cache_ttl_secs;
    let (ws, http, app) = start(&config).await;
    let cold_and_refused = seed(&app).await;
    let cold_and_terminated = seed(&app).await;
    let mut c1 = Client::connect(&ws, &cold_and_refused.me).await;
    let mut c2 = Client::connect(&ws, &cold_and_terminated.me).await;

    // Before: every read answers the truth (this also proves the checks can pass).
    for (name, answer) in read_all(&mut c1, &http, &cold_and_refused).await {
        assert!(
            matches!(answer, Answer::Right),
            "before: {name}: {answer:?}"
        );
    }
    // Nothing read so far stays in the cache: every read below is cold.
    app.social.data.cache().invalidate("", Invalidation::All);

    // 1. The database refuses connections and the open ones are ended.
    db.allow_connections(false).expect("psql");
    db.terminate().expect("psql");
    for round in 0..2 {
        for (name, answer) in read_all(&mut c1, &http, &cold_and_refused).await {
            assert!(
                matches!(answer, Answer::Error(_)),
                "database refused, round {round}: {name}: {answer:?}"
            );
        }
    }
    writes_fail(&mut c1, &random_address()).await;

    // Back: the same reads answer the truth again (each pooled connection that died may fail
    // one more read before it is replaced).
    db.allow_connections(true).expect("psql");
    let mut healed = false;
    for _ in 0..40 {
        let answers = read_all(&mut c1, &http, &cold_and_refused).await;
        for (name, answer) in &answers {
            assert!(
                !matches!(answer, Answer::Wrong(_)),
                "recovering: {name}: {answer:?}"
            );
        }
        if answers.iter().all(|(_, a)| matches!(a, Answer::Right)) {
            healed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        healed,
        "the service answers correctly once the database is back"
    );

    // 2. Connections terminated while the database still accepts new ones: each read either
    // fails (it used a connection that died) or answers the truth; never an empty list.
    app.social.data.cache().invalidate("", Invalidation::All);
    let mut errors = Vec::new();
    for round in 0..3 {
        db.terminate().expect("psql");
        for (name, answer) in read_all(&mut c2, &http, &cold_and_terminated).await {
            match answer {
                Answer::Right => {}
                Answer::Error(e) => errors.push(format!("{name}: {e}")),
                Answer::Wrong(w) => panic!("connections terminated, round {round}: {name}: {w}"),
            }
        }
        app.social.data.cache().invalidate("", Invalidation::All);
    }
    // The pooled connections that were cut did fail some reads (else this part proved nothing).
    assert!(!errors.is_empty(), "no read met a terminated connection");
    eprintln!(
        "{} reads failed after pg_terminate_backend, e.g. {}",
        errors.len(),
        errors[0]
    );
}

/// GetMutualFriends' response has no error case: a bad address is a remote error, not an
/// empty page ("no mutual friends").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_friends_of_a_bad_address_is_an_error_not_an_empty_page() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = SocialConfig::new(&format!(
        "sqlite://{}",
        dir.path().join("s.sqlite").display()
    ));
    let (ws, _http, _app) = start(&config).await;
    let mut c = Client::connect(&ws, &authchain::Wallet::random()).await;
    for bad in [None, user("0x1234"), user("not an address")] {
        let r: Result<v2::PaginatedFriendsProfilesResponse, _> = c
            .call(
                "GetMutualFriends",
                &v2::GetMutualFriendsPayload {
                    user: bad.clone(),
                    pagination: None,
                },
            )
            .await;
        let err = r.expect_err("an error");
        assert!(
            err.contains("address") || err.contains("user"),
            "{bad:?}: {err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_during_a_database_outage_are_errors_with_the_cache_on() {
    reads_during_outages(60).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_during_a_database_outage_are_errors_with_the_cache_off() {
    reads_during_outages(0).await;
}
