//! `SocialSession` and `SocialClient` against the real social service (in process, on
//! 127.0.0.1): every action and list, typed updates on both sides, the service restarted
//! mid-session, actions while disconnected.

use std::time::Duration;

use e2e_tests::TestSocial;
use pchat_client::social::{
    ConnectionState, Connectivity, FullView, SessionConfig, SessionEvent, SocialError,
    SocialSession, SocialUpdate,
};
use pchat_core::Privacy;
use tokio::sync::mpsc;

const LIMIT: Duration = Duration::from_secs(20);

/// The social service alone, on SQLite or PostgreSQL at `database_url`.
async fn service(database_url: &str) -> TestSocial {
    TestSocial::start(social::SocialConfig::new(database_url)).await
}

fn sqlite(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("s.sqlite").display())
}

struct Player {
    session: SocialSession,
    events: mpsc::Receiver<SessionEvent>,
    address: String,
}

fn config(url: &str) -> SessionConfig {
    let mut c = SessionConfig::new(url);
    // Short pauses keep the restart test quick; the doubling and jitter are the defaults'.
    c.backoff_first = Duration::from_millis(200);
    c.backoff_max = Duration::from_secs(2);
    c
}

fn identity(wallet: &authchain::Wallet) -> authchain::Identity {
    authchain::Identity::new(wallet, chrono::Utc::now() + chrono::Duration::hours(1))
}

async fn player_as(url: &str, wallet: &authchain::Wallet) -> Player {
    let (session, events) = SocialSession::start(identity(wallet), config(url));
    let mut p = Player {
        session,
        events,
        address: wallet.address().to_lower_hex(),
    };
    p.connected().await;
    p
}

async fn player(url: &str) -> Player {
    player_as(url, &authchain::Wallet::random()).await
}

impl Player {
    /// Waits for `ViewLoaded` then `Connected`; returns the loaded view.
    async fn connected(&mut self) -> FullView {
        let mut loaded = None;
        loop {
            match self.event().await {
                SessionEvent::ViewLoaded(v) => loaded = Some(*v),
                SessionEvent::State(ConnectionState::Connected) => {
                    let v = loaded.expect("the view is loaded before Connected");
                    assert!(self.session.view().is_some());
                    return v;
                }
                _ => {}
            }
        }
    }

    async fn event(&mut self) -> SessionEvent {
        tokio::time::timeout(LIMIT, self.events.recv())
            .await
            .expect("an event in time")
            .expect("the session runs")
    }

    /// The next update matching `f` (other events skipped).
    async fn update(&mut self, what: &str, f: impl Fn(&SocialUpdate) -> bool) -> SocialUpdate {
        let deadline = tokio::time::Instant::now() + LIMIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.events.recv()).await {
                Ok(Some(SessionEvent::Update(u))) if f(&u) => return u,
                Ok(Some(_)) => {}
                Ok(None) => panic!("session ended waiting for {what}"),
                Err(_) => panic!("no {what} in time"),
            }
        }
    }

    fn view(&self) -> FullView {
        self.session.view().expect("a known view")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_action_and_list_with_typed_updates_on_both_sides() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = service(&sqlite(&dir)).await;
    let url = s.ws_url();
    let mut a = player(&url).await;
    let mut b = player(&url).await;
    let (av, bv) = (a.address.clone(), b.address.clone());
    assert_eq!(a.view().privacy, Privacy::All);

    // Request → the other side hears it, with the message; both lists say so.
    a.session
        .request_friendship(&bv, Some("hello bob"))
        .await
        .expect("request");
    match b
        .update("request", |u| {
            matches!(u, SocialUpdate::RequestReceived { .. })
        })
        .await
    {
        SocialUpdate::RequestReceived { from, message, .. } => {
            assert_eq!(
                (from.as_str(), message.as_deref()),
                (av.as_str(), Some("hello bob"))
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        b.view()
            .pending_in
            .get(&av)
            .and_then(|r| r.message.clone())
            .as_deref(),
        Some("hello bob")
    );
    assert!(a.view().pending_out.contains_key(&bv));
    let pending = b.session.pending_requests().await.expect("list");
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].address, av);
    assert_eq!(pending[0].message.as_deref(), Some("hello bob"));
    assert!(pending[0].created_at > 0);
    let sent = a.session.sent_requests().await.expect("list");
    assert_eq!(
        sent.iter().map(|r| r.address.as_str()).collect::<Vec<_>>(),
        [bv.as_str()]
    );

    // Accept → friends on both sides.
    b.session.accept(&av).await.expect("accept");
    a.update("accepted", |u| {
        *u == SocialUpdate::Accepted { by: bv.clone() }
    })
    .await;
    assert!(a.view().friends.contains(&bv) && a.view().pending_out.is_empty());
    assert!(b.view().friends.contains(&av) && b.view().pending_in.is_empty());
    assert!(a.session.friends().await.expect("list").contains(&bv));
    let social_view: chat_core::SocialView = (&a.view()).into();
    assert!(social_view.friends.contains(&bv));

    // A friend goes offline and comes back: connectivity updates.
    let cw = authchain::Wallet::random();
    let mut c = player_as(&url, &cw).await;
    let cv = c.address.clone();
    c.session
        .request_friendship(&av, None)
        .await
        .expect("request");
    a.update(
        "request from c",
        |u| matches!(u, SocialUpdate::RequestReceived { from, .. } if *from == cv),
    )
    .await;
    a.session.accept(&cv).await.expect("accept");
    c.update("accepted", |u| {
        *u == SocialUpdate::Accepted { by: av.clone() }
    })
    .await;
    c.session.close().await;
    a.update("c offline", |u| {
        *u == SocialUpdate::FriendConnectivity {
            address: cv.clone(),
            status: Connectivity::Offline,
        }
    })
    .await;
    let c = player_as(&url, &cw).await;
    a.update("c online", |u| {
        *u == SocialUpdate::FriendConnectivity {
            address: cv.clone(),
            status: Connectivity::Online,
        }
    })
    .await;
    assert!(a.view().online.contains(&cv));

    // Delete → the other side hears it.
    a.session.delete_friendship(&bv).await.expect("delete");
    b.update("deleted", |u| {
        *u == SocialUpdate::Deleted { by: av.clone() }
    })
    .await;
    assert!(!b.view().friends.contains(&av) && !a.view().friends.contains(&bv));

    // Cancel and reject.
    a.session
        .request_friendship(&bv, None)
        .await
        .expect("request");
    b.update("request", |u| {
        matches!(u, SocialUpdate::RequestReceived { .. })
    })
    .await;
    a.session.cancel(&bv).await.expect("cancel");
    b.update("cancelled", |u| {
        *u == SocialUpdate::Cancelled { by: av.clone() }
    })
    .await;
    assert!(b.view().pending_in.is_empty() && a.view().pending_out.is_empty());
    b.session
        .request_friendship(&av, None)
        .await
        .expect("request");
    a.update(
        "request",
        |u| matches!(u, SocialUpdate::RequestReceived { from, .. } if *from == bv),
    )
    .await;
    a.session.reject(&bv).await.expect("reject");
    b.update("rejected", |u| {
        *u == SocialUpdate::Rejected { by: av.clone() }
    })
    .await;
    assert!(b.view().pending_out.is_empty());

    // Block and unblock: the blocked side learns both.
    a.session.block(&bv).await.expect("block");
    b.update("blocked by", |u| {
        *u == SocialUpdate::BlockedBy {
            address: av.clone(),
        }
    })
    .await;
    assert!(b.view().blocked_by.contains(&av));
    assert!(a.view().blocked.contains(&bv));
    assert!(a.session.blocked().await.expect("list").contains(&bv));
    let status = b.session.blocking_status().await.expect("status");
    assert!(status.blocked_by.contains(&av) && status.blocked.is_empty());
    a.session.unblock(&bv).await.expect("unblock");
    b.update("unblocked by", |u| {
        *u == SocialUpdate::UnblockedBy {
            address: av.clone(),
        }
    })
    .await;
    assert!(!b.view().blocked_by.contains(&av) && !a.view().blocked.contains(&bv));

    // Privacy.
    assert_eq!(
        a.session
            .set_privacy(Privacy::OnlyFriends)
            .await
            .expect("set"),
        Privacy::OnlyFriends
    );
    assert_eq!(
        a.session.settings().await.expect("get"),
        Privacy::OnlyFriends
    );
    assert_eq!(a.view().privacy, Privacy::OnlyFriends);
    assert_eq!(a.view().social_view().privacy, Privacy::OnlyFriends);

    // Bad input: a clear error, nothing sent.
    let e = a.session.block("not-an-address").await.expect_err("bad");
    assert!(matches!(e, SocialError::BadAddress(_)), "{e:?}");
    // A refused action names the service's reason.
    let e = b.session.accept(&cv).await.expect_err("no request from c");
    assert!(matches!(e, SocialError::Refused { .. }), "{e:?}");
    drop(c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_reconnects_and_reloads_a_change_made_while_away() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut s = service(&sqlite(&dir)).await;
    let url = s.ws_url();
    let mut a = player(&url).await;
    let av = a.address.clone();
    assert!(a.session.status().is_connected());

    s.stop().await;
    // The lost connection is reported, the view becomes unknown.
    let mut attempts = 0;
    loop {
        match a.event().await {
            SessionEvent::State(ConnectionState::Reconnecting { attempt, error }) => {
                assert!(attempt >= 1);
                assert!(matches!(error, SocialError::Rpc(_)), "{error:?}");
                attempts += 1;
                break;
            }
            SessionEvent::State(other) => panic!("{other:?}"),
            _ => {}
        }
    }
    assert!(a.session.view().is_none(), "unknown while disconnected");
    assert!(!a.session.status().is_connected());

    // An action while disconnected is refused, never dropped silently.
    let e = a
        .session
        .request_friendship(&authchain::Wallet::random().address().to_lower_hex(), None)
        .await
        .expect_err("not connected");
    assert!(matches!(e, SocialError::NotConnected), "{e:?}");
    let e = a.session.friends().await.expect_err("not connected");
    assert!(matches!(e, SocialError::NotConnected), "{e:?}");

    // Someone asks A while the service is down for A (written straight to the database), and A
    // blocked someone from another device.
    let x = authchain::Wallet::random().address().to_lower_hex();
    let y = authchain::Wallet::random().address().to_lower_hex();
    let store = &s.app().social.data;
    store
        .apply_action(&x, &av, social_core::Action::Request, Some("while away"))
        .await
        .expect("request");
    store.block(&av, &y).await.expect("block");
    // Let at least one more attempt fail.
    tokio::time::sleep(Duration::from_millis(800)).await;

    s.restart().await;
    let view = a.connected().await;
    assert_eq!(
        view.pending_in.get(&x).and_then(|r| r.message.as_deref()),
        Some("while away")
    );
    assert!(view.blocked.contains(&y));
    assert!(a.session.status().is_connected());
    assert!(attempts >= 1);

    // Actions work again.
    a.session
        .set_privacy(Privacy::OnlyFriends)
        .await
        .expect("set");
    assert_eq!(a.view().privacy, Privacy::OnlyFriends);
    // …and say so.
    while !matches!(a.event().await, SessionEvent::ViewChanged) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_never_connects_keeps_trying_and_refuses_actions() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("ws://{}/", listener.local_addr().expect("addr"));
    drop(listener);
    let (session, mut events) =
        SocialSession::start(identity(&authchain::Wallet::random()), config(&url));
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match tokio::time::timeout(LIMIT, events.recv()).await {
            Ok(Some(SessionEvent::State(ConnectionState::Reconnecting { attempt, error }))) => {
                assert!(
                    matches!(
                        error,
                        SocialError::Rpc(pchat_client::social::RpcError::Connect { .. })
                    ),
                    "{error:?}"
                );
                seen.push(attempt);
            }
            Ok(Some(SessionEvent::State(ConnectionState::Connecting))) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(seen, [1, 2]);
    assert!(session.view().is_none());
    let e = session.block(session.address()).await.expect_err("offline");
    assert!(matches!(e, SocialError::NotConnected), "{e:?}");
}

/// On PostgreSQL: the session loads a view written before it connected, and follows a change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_on_postgresql() {
    let db = testkit::FreshPostgres::create("session").expect("fresh database");
    let s = service(&db.url).await;
    let url = s.ws_url();
    let aw = authchain::Wallet::random();
    let av = aw.address().to_lower_hex();
    let f = authchain::Wallet::random().address().to_lower_hex();
    let store = &s.app().social.data;
    store
        .apply_action(&f, &av, social_core::Action::Request, None)
        .await
        .expect("request");
    store
        .apply_action(&av, &f, social_core::Action::Accept, None)
        .await
        .expect("accept");
    let mut a = player_as(&url, &aw).await;
    assert!(a.view().friends.contains(&f));
    let b = player(&url).await;
    b.session.block(&av).await.expect("block");
    a.update("blocked by", |u| {
        *u == SocialUpdate::BlockedBy {
            address: b.address.clone(),
        }
    })
    .await;
    assert!(a.view().blocked_by.contains(&b.address));
}
