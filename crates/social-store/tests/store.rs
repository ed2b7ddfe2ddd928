//! The same store tests on SQLite and on PostgreSQL (a fresh database per test on the server
//! that `scripts/setup` starts; its URL is `PCHAT_TEST_DATABASE_URL`).

use std::sync::Arc;

use social_core::{
    Action, BlockedMessagesVisibility, FriendshipError, SettingsChange, SituationReactions,
    SocialSettings,
};
use social_store::{Privacy, Store, StoreError};
use sqlx::Connection;

const A: &str = "0xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "0xbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const C: &str = "0xcccccccccccccccccccccccccccccccccccccccc";

/// A database that is removed afterwards.
enum TestDb {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin: String, name: String },
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDb::Postgres { admin, name } = self {
            let (admin, name) = (admin.clone(), name.clone());
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("rt");
                rt.block_on(async move {
                    if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                        let _ =
                            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                                .execute(&mut c)
                                .await;
                    }
                });
            })
            .join();
        }
    }
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
    let admin = std::env::var("PCHAT_TEST_DATABASE_URL")
        .expect("PCHAT_TEST_DATABASE_URL is not set: run scripts/setup (it starts PostgreSQL) and source .tools/env");
    let name = format!("pchat_t_{:016x}", rand::random::<u64>());
    let mut c = sqlx::PgConnection::connect(&admin)
        .await
        .expect("connect to PostgreSQL");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut c)
        .await
        .expect("create database");
    let base = admin
        .rsplit_once('/')
        .map(|(b, _)| b)
        .expect("url with a database");
    let store = Store::connect(&format!("{base}/{name}"))
        .await
        .expect("postgres store");
    (store, TestDb::Postgres { admin, name })
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
    let (received, total) = s.pending_requests(B, true, 10, 0).await.unwrap();
    assert_eq!(
        (
            total,
            received[0].address.as_str(),
            received[0].message.as_deref()
        ),
        (1, A, Some("hi!"))
    );
    let (sent, _) = s.pending_requests(A, false, 10, 0).await.unwrap();
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
    assert_eq!(s.friends(A, 10, 0).await.unwrap(), (vec![B.to_owned()], 1));
    assert_eq!(s.friends(B, 10, 0).await.unwrap(), (vec![A.to_owned()], 1));
    assert_eq!(s.pending_requests(B, true, 10, 0).await.unwrap().1, 0);
    s.apply_action(A, B, Action::Delete, None).await.unwrap();
    assert_eq!(s.friends(A, 10, 0).await.unwrap().1, 0);
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
        (vec![C.to_owned()], 1)
    );
    assert_eq!(s.friends(C, 1, 0).await.unwrap(), (vec![A.to_owned()], 2));
    assert_eq!(s.friends(C, 1, 1).await.unwrap(), (vec![B.to_owned()], 2));
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
            s.friends(A, 10, 0).await.unwrap().1,
            0,
            "a block ends the friendship"
        );
        assert_eq!(s.block_state(A, B).await.unwrap(), (true, false));
        assert_eq!(s.block_state(B, A).await.unwrap(), (false, true));
        assert_eq!(s.blocks(A, true).await.unwrap()[0].0, B);
        assert_eq!(s.blocks(B, false).await.unwrap()[0].0, A);
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
                s.friends(&x, 10, 0).await.unwrap().1,
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
        assert_eq!(s.friends(A, 10, 0).await.unwrap(), (vec![B.to_owned()], 1));
        assert_eq!(s.friends(A, 10, 5).await.unwrap(), (vec![], 1));
        assert_eq!(s.friends(C, 10, 0).await.unwrap(), (vec![], 0));
    }
);

on_both!(blocked_users_page_in_the_database, |s: Store| async move {
    let blocked: Vec<String> = (1..=5).map(|i| format!("0x{i:040x}")).collect();
    for b in &blocked {
        s.block(A, b).await.unwrap();
        // Distinct blocked_at values (milliseconds), newest first in the page.
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    let (page, total) = s.blocked_page(A, 2, 0).await.unwrap();
    assert_eq!(total, 5);
    assert_eq!(
        page.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>(),
        [blocked[4].as_str(), blocked[3].as_str()]
    );
    assert!(page[0].1 >= page[1].1);
    let (page, total) = s.blocked_page(A, 2, 4).await.unwrap();
    assert_eq!((page.len(), total), (1, 5));
    assert_eq!(page[0].0, blocked[0]);
    assert_eq!(s.blocked_page(A, 2, 10).await.unwrap(), (vec![], 5));
    assert_eq!(s.blocked_page(B, 2, 0).await.unwrap(), (vec![], 0));
});
