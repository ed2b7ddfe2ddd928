//! The history against a real SQLite file in a temporary directory.

use std::path::{Path, PathBuf};

use pchat_history::{
    Delivery, Direction, Entry, Error, History, HistoryKey, MAX_PAGE, MAX_TEXT_BYTES, Reaction,
    default_path, message_id, millis_from_ole,
};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection};

const MY_KEY: [u8; 32] = [0x42; 32];
const ME: &str = "0xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const PEER: &str = "0x1234567890abcdef1234567890abcdef12345678";
const OTHER: &str = "0xfedcba0987654321fedcba0987654321fedcba09";

fn key() -> HistoryKey {
    HistoryKey::from_private_key(&MY_KEY)
}

fn file(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("wallet").join("history.sqlite")
}

async fn open(path: &Path) -> History {
    History::open(path, &key()).await.expect("open history")
}

/// An entry with the id the reference client would give it.
fn entry(from_peer: bool, text: &str, timestamp_ms: i64) -> Entry {
    let sender = if from_peer { PEER } else { ME };
    let ole = 25_569.0 + timestamp_ms as f64 / 86_400_000.0;
    Entry {
        id: message_id(sender, ole),
        direction: if from_peer {
            Direction::Incoming
        } else {
            Direction::Outgoing
        },
        text: text.to_owned(),
        timestamp_ms,
        delivery: if from_peer {
            Delivery::Received
        } else {
            Delivery::Sent
        },
        protection: None,
    }
}

async fn raw(path: &Path) -> SqliteConnection {
    SqliteConnectOptions::new()
        .filename(path)
        .connect()
        .await
        .expect("raw connection")
}

/// The bytes of the database file and of its WAL and shared-memory files.
fn file_bytes(path: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        if let Ok(bytes) = std::fs::read(PathBuf::from(p)) {
            all.extend_from_slice(&bytes);
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn round_trip_through_a_reopened_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(&dir);
    let h = open(&path).await;
    let hello = entry(true, "hello there 👋", 1_764_150_000_123);
    let answer = entry(false, "hi!", 1_764_150_001_000);
    assert!(h.record(PEER, hello.clone()).await.unwrap());
    assert!(h.record(PEER, answer.clone()).await.unwrap());
    h.set_delivery(
        PEER,
        &answer.id,
        Delivery::NotSent {
            reason: "peer went offline".into(),
        },
    )
    .await
    .unwrap();
    let mine = Reaction {
        emoji_index: 3,
        mine: true,
    };
    let theirs = Reaction {
        emoji_index: 1,
        mine: false,
    };
    h.set_reaction(PEER, &hello.id, mine).await.unwrap();
    h.set_reaction(PEER, &hello.id, theirs).await.unwrap();
    h.set_reaction(PEER, &hello.id, theirs).await.unwrap();
    h.set_reaction(PEER, &answer.id, mine).await.unwrap();
    h.remove_reaction(PEER, &answer.id, mine).await.unwrap();
    h.close().await.unwrap();

    // The peer spelled in upper case is the same conversation.
    let h = open(&path).await;
    let got = h
        .messages(&PEER.to_uppercase().replace("0X", "0x"), 10, None)
        .await
        .unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].id, hello.id);
    assert_eq!(got[0].text, "hello there 👋");
    assert_eq!(got[0].direction, Direction::Incoming);
    assert_eq!(got[0].timestamp_ms, 1_764_150_000_123);
    assert_eq!(got[0].delivery, Delivery::Received);
    assert_eq!(got[0].reactions, vec![theirs, mine]);
    assert!(got[0].unread);
    assert_eq!(got[1].id, answer.id);
    assert_eq!(got[1].direction, Direction::Outgoing);
    assert_eq!(
        got[1].delivery,
        Delivery::NotSent {
            reason: "peer went offline".into()
        }
    );
    assert!(got[1].reactions.is_empty());
    assert!(!got[1].unread);

    let convs = h.conversations().await.unwrap();
    assert_eq!(convs.len(), 1);
    assert_eq!(convs[0].peer, PEER);
    assert_eq!(convs[0].last_message_ms, 1_764_150_001_000);
    assert_eq!(convs[0].preview, "hi!");
    assert_eq!(convs[0].unread, 1);
}

#[tokio::test]
async fn the_wrong_key_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(&dir);
    let h = open(&path).await;
    h.record(PEER, entry(true, "secret", 1_000)).await.unwrap();
    h.close().await.unwrap();

    let other = HistoryKey::from_private_key(&[0x43; 32]);
    match History::open(&path, &other).await {
        Err(Error::WrongKey) => {}
        other => panic!("expected WrongKey, got {other:?}"),
    }
    // The failed attempt changed nothing: the right key still reads the history.
    let h = open(&path).await;
    let got = h.messages(PEER, 10, None).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].text, "secret");
}

#[tokio::test]
async fn the_file_holds_neither_text_nor_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(&dir);
    let h = open(&path).await;
    let text = "the treasure is buried under the old oak tree";
    let e = entry(true, text, 1_764_150_000_000);
    let id = e.id.clone();
    h.record(PEER, e).await.unwrap();
    h.record(PEER, entry(false, text, 1_764_150_000_500))
        .await
        .unwrap();
    h.set_delivery(
        PEER,
        &message_id(ME, 25_569.0 + 1_764_150_000_500.0 / 86_400_000.0),
        Delivery::NotSent {
            reason: "the reason is also private".into(),
        },
    )
    .await
    .unwrap();

    let needles: Vec<Vec<u8>> = vec![
        text.as_bytes().to_vec(),
        b"treasure".to_vec(),
        b"the reason is also private".to_vec(),
        PEER.as_bytes().to_vec(),
        PEER.as_bytes()[2..].to_vec(),
        PEER[2..].to_uppercase().into_bytes(),
        // The address as raw bytes, too.
        (0..20)
            .map(|i| u8::from_str_radix(&PEER[2 + 2 * i..4 + 2 * i], 16).unwrap())
            .collect(),
        id.as_bytes().to_vec(),
    ];
    // Before the checkpoint (the rows are in the WAL) and after it (in the database file).
    let before = file_bytes(&path);
    assert!(before.len() > 4096, "the files were read");
    h.checkpoint().await.unwrap();
    let after = file_bytes(&path);
    for needle in &needles {
        assert!(!contains(&before, needle), "{needle:?} in the WAL");
        assert!(!contains(&after, needle), "{needle:?} in the file");
    }
    // Sanity check of the grep: an unencrypted value of the schema is found.
    assert!(contains(&after, b"CREATE TABLE messages"));
}

/// Exchanges the sealed bodies (nonce and ciphertext) of two message rows.
async fn swap_bodies(conn: &mut SqliteConnection, a: i64, b: i64) {
    let get = |seq: i64| {
        sqlx::query_as::<_, (Vec<u8>, Vec<u8>)>("SELECT nonce, body FROM messages WHERE seq = ?")
            .bind(seq)
    };
    let (na, ba) = get(a).fetch_one(&mut *conn).await.expect("row a");
    let (nb, bb) = get(b).fetch_one(&mut *conn).await.expect("row b");
    for (seq, nonce, body) in [(a, nb, bb), (b, na, ba)] {
        sqlx::query("UPDATE messages SET nonce = ?, body = ? WHERE seq = ?")
            .bind(nonce)
            .bind(body)
            .bind(seq)
            .execute(&mut *conn)
            .await
            .expect("swap");
    }
}

#[tokio::test]
async fn moved_ciphertexts_and_edited_rows_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(&dir);
    let h = open(&path).await;
    h.record(PEER, entry(true, "first", 1_000)).await.unwrap();
    h.record(PEER, entry(false, "second", 2_000)).await.unwrap();
    h.record(OTHER, entry(true, "elsewhere", 3_000))
        .await
        .unwrap();
    assert_eq!(h.messages(PEER, 10, None).await.unwrap().len(), 2);

    let mut conn = raw(&path).await;
    // Swap the sealed bodies of the two messages of one conversation.
    swap_bodies(&mut conn, 1, 2).await;
    assert!(matches!(
        h.messages(PEER, 10, None).await,
        Err(Error::Corrupt(_))
    ));
    // Swap them back: readable again.
    swap_bodies(&mut conn, 1, 2).await;
    assert_eq!(h.messages(PEER, 10, None).await.unwrap().len(), 2);

    // A visible column edited: the timestamp, then the direction.
    sqlx::query("UPDATE messages SET ts_ms = 1500 WHERE seq = 1")
        .execute(&mut conn)
        .await
        .unwrap();
    assert!(matches!(
        h.messages(PEER, 10, None).await,
        Err(Error::Corrupt(_))
    ));
    sqlx::query("UPDATE messages SET ts_ms = 1000, incoming = 0 WHERE seq = 1")
        .execute(&mut conn)
        .await
        .unwrap();
    assert!(matches!(
        h.messages(PEER, 10, None).await,
        Err(Error::Corrupt(_))
    ));
    sqlx::query("UPDATE messages SET incoming = 1 WHERE seq = 1")
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(h.messages(PEER, 10, None).await.unwrap().len(), 2);

    // A message moved into another conversation (its body sealed for the first one).
    sqlx::query(
        "UPDATE messages SET conv = (SELECT conv FROM messages WHERE seq = 3) WHERE seq = 1",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    assert!(matches!(
        h.messages(OTHER, 10, None).await,
        Err(Error::Corrupt(_))
    ));
    sqlx::query(
        "UPDATE messages SET conv = (SELECT conv FROM messages WHERE seq = 2) WHERE seq = 1",
    )
    .execute(&mut conn)
    .await
    .unwrap();

    // The sealed peer addresses of two conversations swapped.
    assert_eq!(h.conversations().await.unwrap().len(), 2);
    let peers: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> =
        sqlx::query_as("SELECT conv, peer_nonce, peer_sealed FROM conversations")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    for (i, (conv, _, _)) in peers.iter().enumerate() {
        let (_, nonce, sealed) = &peers[1 - i];
        sqlx::query("UPDATE conversations SET peer_nonce = ?, peer_sealed = ? WHERE conv = ?")
            .bind(nonce)
            .bind(sealed)
            .bind(conv)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    assert!(matches!(h.conversations().await, Err(Error::Corrupt(_))));
}

#[tokio::test]
async fn unread_counts_incoming_messages_since_mark_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(&dir);
    let h = open(&path).await;
    for i in 0..3 {
        h.record(PEER, entry(true, &format!("in {i}"), 1_000 + i))
            .await
            .unwrap();
    }
    h.record(PEER, entry(false, "out", 2_000)).await.unwrap();
    h.record(OTHER, entry(true, "other", 500)).await.unwrap();

    let unread = |convs: Vec<pchat_history::Conversation>, peer: &str| {
        convs.into_iter().find(|c| c.peer == peer).map(|c| c.unread)
    };
    assert_eq!(unread(h.conversations().await.unwrap(), PEER), Some(3));
    assert_eq!(unread(h.conversations().await.unwrap(), OTHER), Some(1));

    h.mark_read(PEER).await.unwrap();
    assert_eq!(unread(h.conversations().await.unwrap(), PEER), Some(0));
    assert_eq!(unread(h.conversations().await.unwrap(), OTHER), Some(1));
    assert!(
        h.messages(PEER, 10, None)
            .await
            .unwrap()
            .iter()
            .all(|m| !m.unread)
    );

    // A message already read, recorded again, stays read; my own messages never count; a new
    // incoming one counts even with an older timestamp.
    h.record(PEER, entry(true, "in 0", 1_000)).await.unwrap();
    h.record(PEER, entry(false, "out again", 3_000))
        .await
        .unwrap();
    assert_eq!(unread(h.conversations().await.unwrap(), PEER), Some(0));
    h.record(PEER, entry(true, "late", 10)).await.unwrap();
    assert_eq!(unread(h.conversations().await.unwrap(), PEER), Some(1));
    let msgs = h.messages(PEER, 10, None).await.unwrap();
    assert!(msgs[0].unread && msgs[0].text == "late");
    assert_eq!(msgs.iter().filter(|m| m.unread).count(), 1);

    // Marking an unknown conversation read is harmless.
    h.mark_read("0x0000000000000000000000000000000000000001")
        .await
        .unwrap();
    // The counts survive a reopen.
    h.close().await.unwrap();
    let h = open(&path).await;
    assert_eq!(unread(h.conversations().await.unwrap(), PEER), Some(1));
}

#[tokio::test]
async fn a_deleted_conversation_is_gone_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(&dir);
    let h = open(&path).await;
    for i in 0..20 {
        h.record(
            PEER,
            entry(i % 2 == 0, &format!("to delete {i}"), 1_000 + i),
        )
        .await
        .unwrap();
    }
    h.record(OTHER, entry(true, "kept", 5_000)).await.unwrap();
    h.checkpoint().await.unwrap();

    // The sealed values of the conversation, as stored.
    let mut conn = raw(&path).await;
    let conv: Vec<u8> = sqlx::query_scalar("SELECT conv FROM messages WHERE seq = 1")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let mut sealed: Vec<Vec<u8>> = sqlx::query_scalar("SELECT body FROM messages WHERE conv = ?")
        .bind(&conv)
        .fetch_all(&mut conn)
        .await
        .unwrap();
    sealed.push(
        sqlx::query_scalar("SELECT peer_sealed FROM conversations WHERE conv = ?")
            .bind(&conv)
            .fetch_one(&mut conn)
            .await
            .unwrap(),
    );
    conn.close().await.unwrap();
    assert_eq!(sealed.len(), 21);
    let bytes = file_bytes(&path);
    assert!(sealed.iter().all(|s| contains(&bytes, s)));

    assert!(h.delete_conversation(PEER).await.unwrap());
    assert!(!h.delete_conversation(PEER).await.unwrap());
    assert!(h.messages(PEER, 10, None).await.unwrap().is_empty());
    let convs = h.conversations().await.unwrap();
    assert_eq!(convs.len(), 1);
    assert_eq!(convs[0].peer, OTHER);

    let bytes = file_bytes(&path);
    for s in &sealed {
        assert!(!contains(&bytes, s), "a deleted value is still in the file");
    }
    assert!(
        !contains(&bytes, &conv),
        "the conversation's hash is still in the file"
    );

    // A new conversation with the same peer starts empty and unread from zero.
    h.record(PEER, entry(true, "again", 9_000)).await.unwrap();
    let convs = h.conversations().await.unwrap();
    assert_eq!(convs[0].peer, PEER);
    assert_eq!(convs[0].unread, 1);
    assert_eq!(h.messages(PEER, 10, None).await.unwrap().len(), 1);
}

#[tokio::test]
async fn pages_walk_back_newest_last() {
    let dir = tempfile::tempdir().unwrap();
    let h = open(&file(&dir)).await;
    // 25 messages, recorded out of order, several sharing a millisecond.
    let mut expected = Vec::new();
    for i in (0..25i64).rev() {
        let e = Entry {
            id: format!("{PEER}:{i}"),
            ..entry(true, &format!("m{i}"), 1_000 + i / 3)
        };
        h.record(PEER, e).await.unwrap();
    }
    for i in 0..25i64 {
        expected.push((1_000 + i / 3, format!("m{i}")));
    }
    // Within a millisecond, the order recorded (here: descending i).
    expected.sort_by_key(|(ts, text)| (*ts, std::cmp::Reverse(text[1..].parse::<i64>().unwrap())));

    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = h.messages(PEER, 10, before).await.unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 10);
        assert!(
            page.windows(2)
                .all(|w| w[0].timestamp_ms <= w[1].timestamp_ms)
        );
        before = Some(page[0].cursor());
        let mut texts: Vec<_> = page.into_iter().map(|m| (m.timestamp_ms, m.text)).collect();
        texts.extend(seen);
        seen = texts;
    }
    assert_eq!(seen, expected);
    assert_eq!(h.messages(PEER, 0, None).await.unwrap().len(), 0);
    assert_eq!(h.messages(PEER, MAX_PAGE, None).await.unwrap().len(), 25);
    assert!(matches!(
        h.messages(PEER, MAX_PAGE + 1, None).await,
        Err(Error::PageTooLarge(_))
    ));
    // An unknown conversation is empty.
    assert!(h.messages(OTHER, 10, None).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_recorded_id_is_kept_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(&dir);
    let h = open(&path).await;
    let e = entry(true, "once", 1_000);
    assert!(h.record(PEER, e.clone()).await.unwrap());
    assert!(!h.record(PEER, e.clone()).await.unwrap());
    let changed = Entry {
        text: "twice?".into(),
        ..e.clone()
    };
    assert!(!h.record(PEER, changed).await.unwrap());
    let got = h.messages(PEER, 10, None).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].text, "once");
    assert_eq!(h.conversations().await.unwrap()[0].unread, 1);
    // The same id in another conversation is another message.
    assert!(h.record(OTHER, e).await.unwrap());
    let mut conn = raw(&path).await;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(rows, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_lose_no_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(&dir);
    let first = open(&path).await;
    // A second handle on the same file: another pool, as another process would have.
    let second = open(&path).await;
    let mut tasks = Vec::new();
    for w in 0..8i64 {
        let h = if w % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        tasks.push(tokio::spawn(async move {
            for i in 0..40i64 {
                let peer = if i % 2 == 0 { PEER } else { OTHER };
                let e = Entry {
                    id: format!("{peer}:{w}.{i}"),
                    ..entry(true, &format!("w{w} i{i}"), 1_000 + i)
                };
                assert!(h.record(peer, e.clone()).await.unwrap());
                // Updates race with the inserts of other writers.
                h.set_reaction(
                    peer,
                    &e.id,
                    Reaction {
                        emoji_index: w as u32,
                        mine: false,
                    },
                )
                .await
                .unwrap();
                if i % 10 == 0 {
                    h.mark_read(peer).await.unwrap();
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for h in [&first, &second] {
        for peer in [PEER, OTHER] {
            let got = h.messages(peer, MAX_PAGE, None).await.unwrap();
            assert_eq!(got.len(), 160, "{peer}");
            assert!(got.iter().all(|m| m.reactions.len() == 1));
        }
    }
}

/// Timestamps are integers: nothing depends on the time zone or the locale. A child process with
/// an exotic time zone and a comma-decimal locale writes and reads; this process, in UTC and the
/// C locale, reads what it wrote and the other way round.
#[tokio::test]
async fn timestamps_ignore_time_zone_and_locale() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(&dir);
    // 2025-01-01T12:00:00Z, OLE 45,658.5.
    let noon = 1_735_732_800_000;
    let h = open(&path).await;
    h.record(PEER, entry(true, "from the parent", noon))
        .await
        .unwrap();
    h.close().await.unwrap();

    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "timestamp_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("PCHAT_HISTORY_CHILD_FILE", &path)
        .env("TZ", "Pacific/Kiritimati")
        .env("LC_ALL", "de_DE.UTF-8")
        .env("LANG", "pl_PL.UTF-8")
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "the child failed: {}\n{}\n{}",
        status.status,
        String::from_utf8_lossy(&status.stdout),
        String::from_utf8_lossy(&status.stderr)
    );
    // The child really ran the test (it is a no-op when filtered out or without the variable).
    assert!(String::from_utf8_lossy(&status.stdout).contains("1 passed"));

    let h = open(&path).await;
    let got = h.messages(PEER, 10, None).await.unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].text, "from the child");
    assert_eq!(got[1].timestamp_ms, noon + 1);
    let ole = 45_658.5 + 1.0 / 86_400_000.0;
    assert_eq!(got[1].id, message_id(PEER, ole));
    assert!(
        got[1].id.starts_with(&format!("{PEER}:45658.5000")),
        "{}",
        got[1].id
    );
}

/// Run by `timestamps_ignore_time_zone_and_locale` in a child process; does nothing otherwise.
#[tokio::test]
async fn timestamp_child() {
    let Some(path) = std::env::var_os("PCHAT_HISTORY_CHILD_FILE") else {
        return;
    };
    assert_eq!(std::env::var("TZ").unwrap(), "Pacific/Kiritimati");
    let h = open(Path::new(&path)).await;
    let got = h.messages(PEER, 10, None).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].timestamp_ms, 1_735_732_800_000);
    assert_eq!(millis_from_ole(45_658.5).unwrap(), 1_735_732_800_000);
    // One millisecond later, as an OLE date and its id formed in this locale.
    let ole = 45_658.5 + 1.0 / 86_400_000.0;
    let ts = millis_from_ole(ole).unwrap();
    let e = Entry {
        id: message_id(PEER, ole),
        text: "from the child".into(),
        ..entry(true, "", ts)
    };
    h.record(PEER, e).await.unwrap();
    h.close().await.unwrap();
}

#[tokio::test]
async fn bad_input_gets_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let h = open(&file(&dir)).await;
    let ok = entry(true, "fine", 1_000);
    assert!(matches!(
        h.record("0x123", ok.clone()).await,
        Err(Error::BadAddress(_))
    ));
    assert!(matches!(
        h.messages("alice", 10, None).await,
        Err(Error::BadAddress(_))
    ));
    let long = Entry {
        text: "x".repeat(MAX_TEXT_BYTES + 1),
        ..ok.clone()
    };
    assert!(matches!(
        h.record(PEER, long).await,
        Err(Error::TextTooLong(_))
    ));
    let at_limit = Entry {
        text: "x".repeat(MAX_TEXT_BYTES),
        ..ok.clone()
    };
    assert!(h.record(PEER, at_limit).await.unwrap());
    for id in [String::new(), "i".repeat(97)] {
        let bad = Entry { id, ..ok.clone() };
        assert!(matches!(
            h.record(PEER, bad).await,
            Err(Error::BadMessageId(_))
        ));
    }
    for ts in [-1, i64::MAX] {
        let bad = Entry {
            timestamp_ms: ts,
            ..ok.clone()
        };
        assert!(matches!(
            h.record(PEER, bad).await,
            Err(Error::BadTimestamp(_))
        ));
    }
    assert!(matches!(
        h.set_delivery(PEER, "nope", Delivery::Sent).await,
        Err(Error::UnknownMessage)
    ));
    assert!(matches!(
        h.set_reaction(
            PEER,
            "nope",
            Reaction {
                emoji_index: 0,
                mine: true
            }
        )
        .await,
        Err(Error::UnknownMessage)
    ));
    h.record(PEER, ok.clone()).await.unwrap();
    assert!(matches!(
        h.set_delivery(
            PEER,
            &ok.id,
            Delivery::NotSent {
                reason: "r".repeat(2000)
            }
        )
        .await,
        Err(Error::ReasonTooLong(_))
    ));
    for i in 0..64 {
        h.set_reaction(
            PEER,
            &ok.id,
            Reaction {
                emoji_index: i,
                mine: true,
            },
        )
        .await
        .unwrap();
    }
    assert!(matches!(
        h.set_reaction(
            PEER,
            &ok.id,
            Reaction {
                emoji_index: 99,
                mine: true
            }
        )
        .await,
        Err(Error::TooManyReactions)
    ));
    assert!(millis_from_ole(f64::NAN).is_err());

    // Not a history file at all.
    let junk = dir.path().join("junk.sqlite");
    std::fs::write(&junk, b"this is not a database, just some bytes of text").unwrap();
    let err = History::open(&junk, &key()).await.unwrap_err();
    assert!(
        matches!(err, Error::Database(_) | Error::Migrate(_)),
        "{err:?}"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn the_file_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a").join("b").join("history.sqlite");
    let h = open(&path).await;
    h.record(PEER, entry(true, "x", 1)).await.unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&path.with_file_name("history.sqlite-wal")), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    assert_eq!(mode(path.parent().unwrap().parent().unwrap()), 0o700);
    h.close().await.unwrap();

    // An existing file readable by others is narrowed.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let h = open(&path).await;
    assert_eq!(mode(&path), 0o600);
    h.close().await.unwrap();
}

#[test]
fn the_default_path_is_one_file_per_wallet() {
    let p = default_path(&PEER.to_uppercase().replace("0X", "0x")).unwrap();
    assert!(p.ends_with(format!("pchat/{PEER}/history.sqlite")), "{p:?}");
    assert!(matches!(default_path("../etc"), Err(Error::BadAddress(_))));
}

#[test]
fn the_key_does_not_show_in_debug() {
    let a = format!("{:?}", HistoryKey::from_private_key(&MY_KEY));
    assert_eq!(a, "HistoryKey(..)");
}

#[tokio::test]
async fn how_a_message_travelled_is_kept_and_survives_later_changes() {
    use chat_core::Protection;
    let dir = tempfile::tempdir().unwrap();
    let path = file(&dir);
    let h = open(&path).await;
    let cases = [
        (entry(true, "sealed", 1_000), Some(Protection::Encrypted)),
        (entry(false, "clear", 2_000), Some(Protection::Plaintext)),
        (
            entry(true, "clear from a keyed peer", 3_000),
            Some(Protection::PlaintextFromKeyedPeer),
        ),
        (entry(true, "unknown", 4_000), None),
    ];
    for (e, protection) in &cases {
        let e = Entry {
            protection: *protection,
            ..e.clone()
        };
        assert!(h.record(PEER, e).await.unwrap());
    }
    // A reaction and a delivery change re-seal the body: the protection stays.
    h.set_reaction(
        PEER,
        &cases[0].0.id,
        Reaction {
            emoji_index: 2,
            mine: true,
        },
    )
    .await
    .unwrap();
    h.set_delivery(PEER, &cases[1].0.id, Delivery::Sent)
        .await
        .unwrap();
    drop(h);
    let h = open(&path).await;
    let got = h.messages(PEER, 10, None).await.unwrap();
    let kept: Vec<_> = got
        .iter()
        .map(|m| (m.text.as_str(), m.protection))
        .collect();
    let want: Vec<_> = cases.iter().map(|(e, p)| (e.text.as_str(), *p)).collect();
    assert_eq!(kept, want);
}
