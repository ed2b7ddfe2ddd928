//! The same store tests on SQLite and on PostgreSQL (a fresh database per test on the server
//! that `scripts/setup` starts; its URL is `PCHAT_TEST_DATABASE_URL`).

use std::sync::Arc;

use social_core::{
    Action, BlockedMessagesVisibility, FriendshipError, SettingsChange, SituationReactions,
    SocialSettings,
};
use social_store::{Direction, Page, Privacy, Store, StoreError};
use sqlx::Connection;
use testkit::FreshPostgres;

const A: &str = "0xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "0xbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const C: &str = "0xcccccccccccccccccccccccccccccccccccccccc";

/// A database that is removed afterwards.
enum TestDb {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres(#[allow(dead_code)] FreshPostgres),
}

async fn sqlite() -> (Store, TestDb) {
    let dir = tempfile::tempdir().expect("tmp");
    let url = format!("sqlite://{}", dir.path().join("social.sqlite").display());
    (
        Store::connect(&url).await.expect("sqlite store"),
        TestDb::Sqlite(dir),
    )
}

async fn postgres() -> (Store, TestDb) {
    let db = FreshPostgres::create("t").expect("a fresh PostgreSQL database");
    let store = Store::connect(&db.url).await.expect("postgres store");
    (store, TestDb::Postgres(db))
}

macro_rules! on_both {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let (store, _db) = super::sqlite().await;
                let body = $body;
                body(store).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let (store, _db) = super::postgres().await;
                let body = $body;
                body(store).await;
            }
        }
    };
}

on_both!(settings_default_and_upsert, |s: Store| async move {
    assert_eq!(s.settings(A).await.unwrap(), SocialSettings::default());
    let v = s
        .upsert_settings(
            A,
            SettingsChange {
                private_messages_privacy: Some(Privacy::OnlyFriends),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(v.private_messages_privacy, Privacy::OnlyFriends);
    assert_eq!(v.show_situation_reactions, SituationReactions::Show);
    let v = s
        .upsert_settings(
            A,
            SettingsChange {
                blocked_users_messages_visibility: Some(
                    BlockedMessagesVisibility::DoNotShowMessages,
                ),
                show_situation_reactions: Some(SituationReactions::Hide),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        v,
        SocialSettings {
            private_messages_privacy: Privacy::OnlyFriends,
            blocked_users_messages_visibility: BlockedMessagesVisibility::DoNotShowMessages,
            show_situation_reactions: SituationReactions::Hide,
        },
        "other fields are kept"
    );
    assert_eq!(s.settings(A).await.unwrap(), v);
    let many = s.settings_many(&[A.into(), B.into()]).await.unwrap();
    assert_eq!(many.len(), 1);
    assert_eq!(many[A].private_messages_privacy, Privacy::OnlyFriends);
});

on_both!(
    concurrent_changes_to_different_settings_all_stick,
    |s: Store| async move {
        let s = Arc::new(s);
        for round in 0..10 {
            let user = format!("0x{:040x}", 1000 + round);
            let (a, b, c) = tokio::join!(
                s.upsert_settings(
                    &user,
                    SettingsChange {
                        private_messages_privacy: Some(Privacy::OnlyFriends),
                        ..Default::default()
                    }
                ),
                s.upsert_settings(
                    &user,
                    SettingsChange {
                        blocked_users_messages_visibility: Some(
                            BlockedMessagesVisibility::DoNotShowMessages
                        ),
                        ..Default::default()
                    }
                ),
                s.upsert_settings(
                    &user,
                    SettingsChange {
                        show_situation_reactions: Some(SituationReactions::Hide),
                        ..Default::default()
                    }
                ),
            );
            a.unwrap();
            b.unwrap();
            c.unwrap();
            assert_eq!(
                s.settings(&user).await.unwrap(),
                SocialSettings {
                    private_messages_privacy: Privacy::OnlyFriends,
                    blocked_users_messages_visibility: BlockedMessagesVisibility::DoNotShowMessages,
                    show_situation_reactions: SituationReactions::Hide,
                },
                "round {round}"
            );
        }
    }
);

on_both!(request_accept_delete_and_history, |s: Store| async move {
    let applied = s
        .apply_action(A, B, Action::Request, Some("hi!"))
        .await
        .unwrap();
    assert_eq!(applied.message.as_deref(), Some("hi!"));
    let Page {
        items: received,
        total,
    } = s
        .pending_requests(B, Direction::Incoming, 10, 0)
        .await
        .unwrap();
    assert_eq!(
        (
            total,
            received[0].address.as_str(),
            received[0].message.as_deref()
        ),
        (1, A, Some("hi!"))
    );
    let Page { items: sent, .. } = s
        .pending_requests(A, Direction::Outgoing, 10, 0)
        .await
        .unwrap();
    assert_eq!(sent[0].address, B);
    // Only the other side accepts; only the requester cancels.
    assert!(matches!(
        s.apply_action(A, B, Action::Accept, None).await,
        Err(StoreError::Rejected(FriendshipError::OwnRequest(_)))
    ));
    assert!(matches!(
        s.apply_action(B, A, Action::Cancel, None).await,
        Err(StoreError::Rejected(FriendshipError::NotRequester))
    ));
    s.apply_action(B, A, Action::Accept, None).await.unwrap();
    assert_eq!(
        s.friends(A, 10, 0).await.unwrap(),
        Page::new(vec![B.to_owned()], 1)
    );
    assert_eq!(
        s.friends(B, 10, 0).await.unwrap(),
        Page::new(vec![A.to_owned()], 1)
    );
    assert_eq!(
        s.pending_requests(B, Direction::Incoming, 10, 0)
            .await
            .unwrap()
            .total,
        0
    );
    s.apply_action(A, B, Action::Delete, None).await.unwrap();
    assert_eq!(s.friends(A, 10, 0).await.unwrap().total, 0);
    let history: Vec<Action> = s
        .history(A, B)
        .await
        .unwrap()
        .into_iter()
        .map(|(a, _)| a)
        .collect();
    assert_eq!(
        history,
        vec![Action::Request, Action::Accept, Action::Delete]
    );
    assert!(matches!(
        s.apply_action(A, A, Action::Request, None).await,
        Err(StoreError::Rejected(FriendshipError::SelfRequest))
    ));
});

on_both!(mutual_friends_and_pagination, |s: Store| async move {
    for x in [A, B] {
        s.apply_action(x, C, Action::Request, None).await.unwrap();
        s.apply_action(C, x, Action::Accept, None).await.unwrap();
    }
    assert_eq!(
        s.mutual_friends(A, B, 10, 0).await.unwrap(),
        Page::new(vec![C.to_owned()], 1)
    );
    assert_eq!(
        s.friends(C, 1, 0).await.unwrap(),
        Page::new(vec![A.to_owned()], 2)
    );
    assert_eq!(
        s.friends(C, 1, 1).await.unwrap(),
        Page::new(vec![B.to_owned()], 2)
    );
    let among = s
        .friends_among(
            C,
            &[
                A.into(),
                B.into(),
                "0xdddddddddddddddddddddddddddddddddddddddd".into(),
            ],
        )
        .await
        .unwrap();
    assert_eq!(among.len(), 2);
});

on_both!(
    blocks_end_friendships_and_stop_requests,
    |s: Store| async move {
        s.apply_action(A, B, Action::Request, None).await.unwrap();
        s.apply_action(B, A, Action::Accept, None).await.unwrap();
        assert!(s.block(A, B).await.unwrap().is_some());
        assert_eq!(
            s.friends(A, 10, 0).await.unwrap().total,
            0,
            "a block ends the friendship"
        );
        assert_eq!(s.block_state(A, B).await.unwrap(), (true, false));
        assert_eq!(s.block_state(B, A).await.unwrap(), (false, true));
        assert_eq!(s.blocks(A, Direction::Outgoing).await.unwrap()[0].0, B);
        assert_eq!(s.blocks(B, Direction::Incoming).await.unwrap()[0].0, A);
        // A request to someone who blocked you.
        assert!(matches!(
            s.apply_action(B, A, Action::Request, None).await,
            Err(StoreError::Rejected(FriendshipError::Blocked))
        ));
        assert!(s.unblock(A, B).await.unwrap());
        s.apply_action(B, A, Action::Request, None)
            .await
            .expect("after unblocking, requests work again");
        // Blocking someone you never met.
        assert!(s.block(A, C).await.unwrap().is_none());
        assert!(matches!(
            s.apply_action(A, C, Action::Request, None).await,
            Err(StoreError::Rejected(FriendshipError::Blocked))
        ));
    }
);

on_both!(
    concurrent_conflicting_actions_end_consistent,
    |s: Store| async move {
        let s = Arc::new(s);
        for round in 0..10 {
            let x = format!("0x{:040x}", 2 * round + 1);
            let y = format!("0x{:040x}", 2 * round + 2);
            // Both request each other at once: exactly one request wins.
            let (r1, r2) = tokio::join!(
                s.apply_action(&x, &y, Action::Request, None),
                s.apply_action(&y, &x, Action::Request, None)
            );
            assert!(r1.is_ok() ^ r2.is_ok(), "round {round}: {r1:?} / {r2:?}");
            let requester = if r1.is_ok() { x.clone() } else { y.clone() };
            let other = if requester == x { y.clone() } else { x.clone() };
            // Accept races cancel: exactly one wins, and the state matches the winner.
            let (acc, can) = tokio::join!(
                s.apply_action(&other, &requester, Action::Accept, None),
                s.apply_action(&requester, &other, Action::Cancel, None)
            );
            assert!(
                acc.is_ok() ^ can.is_ok(),
                "round {round}: {acc:?} / {can:?}"
            );
            let last = s.last_action(&x, &y).await.unwrap().expect("a row");
            assert_eq!(
                last.action,
                if acc.is_ok() {
                    Action::Accept
                } else {
                    Action::Cancel
                }
            );
            assert_eq!(
                s.friends(&x, 10, 0).await.unwrap().total,
                i64::from(acc.is_ok())
            );
            assert_eq!(
                s.history(&x, &y).await.unwrap().len(),
                2,
                "exactly two actions recorded"
            );
        }
    }
);

on_both!(
    friends_total_is_known_past_the_last_page,
    |s: Store| async move {
        s.apply_action(A, B, Action::Request, None).await.unwrap();
        s.apply_action(B, A, Action::Accept, None).await.unwrap();
        assert_eq!(
            s.friends(A, 10, 0).await.unwrap(),
            Page::new(vec![B.to_owned()], 1)
        );
        assert_eq!(s.friends(A, 10, 5).await.unwrap(), Page::new(vec![], 1));
        assert_eq!(s.friends(C, 10, 0).await.unwrap(), Page::new(vec![], 0));
    }
);

on_both!(blocked_users_page_in_the_database, |s: Store| async move {
    let blocked: Vec<String> = (1..=5).map(|i| format!("0x{i:040x}")).collect();
    for b in &blocked {
        s.block(A, b).await.unwrap();
        // Distinct blocked_at values (milliseconds), newest first in the page.
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    let Page { items: page, total } = s.blocked_page(A, 2, 0).await.unwrap();
    assert_eq!(total, 5);
    assert_eq!(
        page.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>(),
        [blocked[4].as_str(), blocked[3].as_str()]
    );
    assert!(page[0].1 >= page[1].1);
    let Page { items: page, total } = s.blocked_page(A, 2, 4).await.unwrap();
    assert_eq!((page.len(), total), (1, 5));
    assert_eq!(page[0].0, blocked[0]);
    assert_eq!(
        s.blocked_page(A, 2, 10).await.unwrap(),
        Page::new(vec![], 5)
    );
    assert_eq!(s.blocked_page(B, 2, 0).await.unwrap(), Page::new(vec![], 0));
});

/// One of the moves a user makes in the race below.
#[derive(Debug, Clone, Copy)]
enum Move {
    Act(Action),
    Unblock,
}

const MOVES: [Move; 7] = [
    Move::Act(Action::Request),
    Move::Act(Action::Accept),
    Move::Act(Action::Cancel),
    Move::Act(Action::Block),
    Move::Unblock,
    Move::Act(Action::Reject),
    Move::Act(Action::Delete),
];

/// `me`'s move toward `other`: `Ok(true)` when it changed something, `Ok(false)` when the
/// rules refused it (a normal outcome of a race); any other error is returned.
async fn play(s: &Store, me: &str, other: &str, m: Move) -> Result<bool, StoreError> {
    let out = match m {
        Move::Act(Action::Block) => s.block(me, other).await.map(|_| true),
        Move::Act(a) => s.apply_action(me, other, a, None).await.map(|_| true),
        Move::Unblock => s.unblock(me, other).await,
    };
    match out {
        Err(StoreError::Rejected(_)) => Ok(false),
        other => other,
    }
}

/// Two users race request/accept/cancel/block (and unblock, reject, delete) 500 times each,
/// each with several moves in flight at once (as a client that does not wait for one answer
/// before the next), with a reader alongside: no move fails with anything but a rule refusal
/// (no "database is locked", no give-up after too many conflicts), and afterwards both sides
/// see the same friendship.
async fn race_two_users(s: Store) {
    const MOVES_EACH: usize = 500;
    const IN_FLIGHT: usize = 4;
    let s = Arc::new(s);
    let mut tasks = tokio::task::JoinSet::new();
    for (me, other, stride) in [(A, B, 1usize), (B, A, 3usize)] {
        for lane in 0..IN_FLIGHT {
            let s = s.clone();
            tasks.spawn(async move {
                let mut errors = Vec::new();
                let mut changed = 0usize;
                for i in (lane..MOVES_EACH).step_by(IN_FLIGHT) {
                    let m = MOVES[(i * stride + i / MOVES.len()) % MOVES.len()];
                    match play(&s, me, other, m).await {
                        Ok(c) => changed += usize::from(c),
                        Err(e) => errors.push(format!("move {i}: {me} {m:?}: {e}")),
                    }
                }
                (errors, changed)
            });
        }
    }
    let reader = {
        let s = s.clone();
        tokio::spawn(async move {
            let mut errors = Vec::new();
            for _ in 0..MOVES_EACH / 2 {
                let r = async {
                    s.friends(A, 10, 0).await?;
                    s.pending_requests(B, Direction::Incoming, 10, 0).await?;
                    s.block_state(A, B).await
                }
                .await;
                if let Err(e) = r {
                    errors.push(format!("reader: {e}"));
                }
            }
            errors
        })
    };
    let mut errors = Vec::new();
    let mut changed = 0usize;
    while let Some(done) = tasks.join_next().await {
        let (e, c) = done.expect("a racer panicked");
        errors.extend(e);
        changed += c;
    }
    errors.extend(reader.await.expect("the reader panicked"));
    assert!(
        errors.is_empty(),
        "{} errors, first: {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    assert!(changed > 100, "the race did change things ({changed})");
    // Consistent views from both sides.
    let last = s.last_action(A, B).await.expect("store");
    assert_eq!(last, s.last_action(B, A).await.expect("store"));
    let history = s.history(A, B).await.expect("store");
    // The history is ordered by time in milliseconds; two actions of one round (both users
    // blocking) may share one, so the last action is one of the last two rows.
    assert_eq!(history.is_empty(), last.is_none());
    if let Some(l) = &last {
        assert!(
            history
                .iter()
                .rev()
                .take(2)
                .any(|(a, u)| *a == l.action && *u == l.acting_user),
            "the history ends with the pair's last action {l:?}: {:?}",
            &history[history.len().saturating_sub(3)..]
        );
    }
    let friends = last.as_ref().is_some_and(|l| l.action == Action::Accept);
    assert_eq!(
        s.friends(A, 10, 0).await.expect("store").total,
        i64::from(friends)
    );
    assert_eq!(
        s.friends(B, 10, 0).await.expect("store").total,
        i64::from(friends)
    );
    let (ab, ba) = (
        s.block_state(A, B).await.expect("store"),
        s.block_state(B, A).await.expect("store"),
    );
    assert_eq!((ab.0, ab.1), (ba.1, ba.0));
    let pending = last.as_ref().filter(|l| l.action == Action::Request);
    for (me, other) in [(A, B), (B, A)] {
        let Page {
            items: received, ..
        } = s
            .pending_requests(me, Direction::Incoming, 10, 0)
            .await
            .expect("store");
        let Page { items: sent, .. } = s
            .pending_requests(me, Direction::Outgoing, 10, 0)
            .await
            .expect("store");
        let i_sent = pending.is_some_and(|l| l.acting_user == me);
        let they_sent = pending.is_some_and(|l| l.acting_user == other);
        assert_eq!(sent.len(), usize::from(i_sent), "{me} sent");
        assert_eq!(received.len(), usize::from(they_sent), "{me} received");
    }
}

on_both!(
    two_users_race_500_times_without_errors,
    |s: Store| async move { race_two_users(s).await }
);

/// Retryable errors are told by the database's code, from real errors: SQLite's busy database
/// (code 5) while another connection holds the write lock, PostgreSQL's SQLSTATE 40001 and
/// 40P01; a constraint violation or another SQLSTATE is not retryable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retryable_errors_are_told_by_their_code() {
    use social_store::{Backend, is_retryable};
    use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
    use std::str::FromStr;

    let (store, db) = sqlite().await;
    let TestDb::Sqlite(dir) = &db else {
        unreachable!()
    };
    let file = dir.path().join("social.sqlite");
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", file.display()))
        .expect("url")
        .busy_timeout(std::time::Duration::ZERO);
    let mut holder = SqliteConnection::connect_with(&options)
        .await
        .expect("holder");
    let mut writer = SqliteConnection::connect_with(&options)
        .await
        .expect("writer");
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut holder)
        .await
        .expect("write lock");
    let busy = sqlx::query(
        "INSERT INTO blocks (blocker_address, blocked_address, blocked_at) VALUES ('a', 'b', 1)",
    )
    .execute(&mut writer)
    .await
    .expect_err("the database is busy");
    let code = busy
        .as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned());
    assert!(
        code.as_deref()
            .and_then(|c| c.parse::<i32>().ok())
            .is_some_and(|c| c & 0xff == 5),
        "{busy} ({code:?})"
    );
    assert!(is_retryable(Backend::Sqlite, &busy), "{busy}");
    sqlx::query("ROLLBACK")
        .execute(&mut holder)
        .await
        .expect("rollback");
    // A unique constraint (code 2067) is final.
    sqlx::query(
        "INSERT INTO blocks (blocker_address, blocked_address, blocked_at) VALUES ('a', 'b', 1)",
    )
    .execute(&mut writer)
    .await
    .expect("insert");
    let dup = sqlx::query(
        "INSERT INTO blocks (blocker_address, blocked_address, blocked_at) VALUES ('a', 'b', 1)",
    )
    .execute(&mut writer)
    .await
    .expect_err("duplicate");
    assert!(!is_retryable(Backend::Sqlite, &dup), "{dup}");
    drop(store);

    let (pg, _db) = postgres().await;
    for (code, retryable) in [
        ("40001", true),
        ("40P01", true),
        ("23505", false),
        ("P0001", false),
    ] {
        let e = sqlx::query(&format!(
            "DO $$ BEGIN RAISE EXCEPTION 'test' USING ERRCODE = '{code}'; END $$"
        ))
        .execute(pg.pool())
        .await
        .expect_err("raised");
        assert_eq!(
            e.as_database_error().and_then(|d| d.code()).as_deref(),
            Some(code)
        );
        assert_eq!(is_retryable(Backend::Postgres, &e), retryable, "{code}");
    }
}
