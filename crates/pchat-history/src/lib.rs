//! The chat client's local history. Nothing is stored on a server (ADR-208), so the client keeps
//! its conversations itself: one SQLite file per wallet ([`default_path`]), encrypted at rest with
//! a key derived from the wallet's private key. No network code.
//!
//! # Storage
//!
//! One SQLite file through `sqlx` (the driver the workspace already uses in `social-store`), its
//! schema in embedded migrations (`migrations/`), in WAL mode (readers do not wait for the
//! writer), `synchronous = NORMAL`, `foreign_keys = ON`, `secure_delete = ON` and a busy timeout
//! of [`BUSY_TIMEOUT`]. Every change takes the write lock when its transaction begins
//! (`BEGIN IMMEDIATE`), so concurrent writers — several tasks on one [`History`], or several
//! processes on one file — queue for the lock instead of failing or losing rows.
//!
//! The file is created with mode 0600 and the directories [`History::open`] creates with 0700
//! (an existing file is narrowed to 0600); SQLite gives its `-wal` and `-shm` files the mode of
//! the database file.
//!
//! # Encryption
//!
//! [`HistoryKey::from_private_key`] derives two 32-byte sub-keys from the wallet's secp256k1
//! private key with HKDF-SHA256 (RFC 5869), salt [`HKDF_SALT`] and the infos [`HKDF_INFO_SEAL`]
//! and [`HKDF_INFO_LOOKUP`]:
//!
//! - the **sealing key**: XChaCha20-Poly1305 with a fresh random 24-byte nonce for every sealed
//!   value (random nonces of that size do not collide in practice, so no counter has to be kept
//!   consistent across processes). What is sealed, and the associated data that binds it to its
//!   row, so that a ciphertext moved to another row (or a row whose visible columns are edited)
//!   fails to open and is reported as [`Error::Corrupt`] instead of being shown in the wrong
//!   place:
//!   - a message's id, text, delivery status (with its reason), reactions and how it travelled
//!     (encrypted end to end or not), as one value bound to (conversation, message id,
//!     direction, timestamp);
//!   - a conversation's peer address, bound to the conversation;
//!   - a known plaintext in the `meta` table, opened on every [`History::open`]: a file opened
//!     with another wallet's key is [`Error::WrongKey`], before anything is read or written.
//! - the **lookup key**: HMAC-SHA256 of the peer address (the conversation's key column) and of
//!   each message id (for de-duplication and updates by id). Lookups work without decrypting
//!   every row, and the hashes say nothing about the address or id without the key.
//!
//! What stays visible to someone holding the file without the key, and why:
//! - how many conversations and messages there are, and the sizes of the sealed values (roughly
//!   the text lengths): rows and ciphertexts cannot hide their count and length without padding
//!   the whole file;
//! - each message's timestamp (milliseconds since the Unix epoch) and direction (in/out), and
//!   each conversation's "read up to" counter: the paging order, the conversation list's order
//!   and the unread counts are computed by SQLite from them. Tampering with them is detected for
//!   timestamps and directions (they are associated data); the "read up to" counter is not
//!   authenticated, so editing it can only change unread counts;
//! - which messages belong to the same conversation (the same keyed hash), not with whom;
//! - the wallet's own address, in the directory name of [`default_path`] (one file per wallet,
//!   as the reference client keeps one folder per account).
//!
//! The reference client (unity-explorer) "encrypts" its history with AES-ECB, zero padding, and a
//! key that is the SHA-256 of the wallet's **public** address: anyone who knows the address (that
//! is, everyone the user ever chatted with) can read it, and ECB shows equal blocks as equal. Here
//! the key comes from the private key, which only the wallet holder has; the AEAD authenticates
//! every value and random nonces make equal texts look unrelated.
//!
//! # Deleting
//!
//! [`History::delete_conversation`] deletes the conversation and its messages with SQLite's
//! `secure_delete` on (freed content is overwritten with zeros in the database file), then
//! checkpoints the WAL and truncates it, so neither file still holds the deleted rows. (While
//! another process reads the file from an older snapshot the WAL cannot be truncated; the old
//! frames then go at the next checkpoint: [`History::close`], or SQLite's automatic one. Copies the
//! file system or the storage device keeps on its own, e.g. journaling or SSD wear levelling, are
//! out of reach of any program.)
//!
//! # Timestamps
//!
//! Stored as integers: milliseconds since the Unix epoch, UTC. Nothing is ever formatted or parsed
//! as a calendar date, so the machine's time zone and locale play no part (the reference client
//! parses locale-formatted dates back, which fails in pl-PL and de-DE: unity-explorer #5123).
//! [`millis_from_ole`] converts the OLE date of a `Chat.timestamp`, and [`message_id`] forms an id
//! with Rust's locale-independent float formatting.
//!
//! # Bounds
//!
//! - [`MAX_TEXT_BYTES`]: the longest text stored, the packet limit of `chat-core` (a longer text
//!   cannot have been sent or received).
//! - [`MAX_MESSAGE_ID_BYTES`]: the longest message id (the reference client drops reactions whose
//!   id is longer).
//! - [`MAX_REASON_BYTES`]: the longest "not sent" reason.
//! - [`MAX_REACTIONS_PER_MESSAGE`]: reactions kept on one message.
//! - [`MAX_PAGE`]: the most messages one [`History::messages`] call returns.
//! - [`PREVIEW_CHARS`]: the length of a conversation's last-text preview.
//!
//! The number of conversations and messages is not capped: it is the user's own disk and data,
//! and nothing a peer sends is stored unless the client records it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Row, SqliteConnection};
use zeroize::Zeroize;

/// HKDF salt of every key derived here (fixed: the same private key must give the same keys on
/// every run and every machine).
pub const HKDF_SALT: &[u8] = b"decentraland-private-chat/history/v1";
/// HKDF info of the sealing (XChaCha20-Poly1305) key.
pub const HKDF_INFO_SEAL: &[u8] = b"pchat-history seal key";
/// HKDF info of the lookup (HMAC-SHA256) key.
pub const HKDF_INFO_LOOKUP: &[u8] = b"pchat-history lookup key";

/// Longest text stored, in bytes: the packet limit.
pub const MAX_TEXT_BYTES: usize = chat_core::packet::MAX_TEXT_BYTES;
/// Longest message id, in bytes (the reference client drops reaction ids over 96 characters).
pub const MAX_MESSAGE_ID_BYTES: usize = 96;
/// Longest "not sent" reason, in bytes.
pub const MAX_REASON_BYTES: usize = 1024;
/// Most reactions kept on one message (each side's emoji indices together).
pub const MAX_REACTIONS_PER_MESSAGE: usize = 64;
/// Most messages one [`History::messages`] call returns.
pub const MAX_PAGE: usize = 500;
/// Characters of the last text in [`Conversation::preview`].
pub const PREVIEW_CHARS: usize = 100;
/// How long a writer waits for another writer's lock before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest timestamp accepted: 9999-12-31T23:59:59.999Z, the largest OLE date.
const MAX_TIMESTAMP_MS: i64 = 253_402_300_799_999;
/// File format written in `meta`.
const FORMAT: i64 = 1;
const KEY_CHECK_PLAINTEXT: &[u8] = b"pchat-history key check v1";
const NONCE_LEN: usize = 24;
const HASH_LEN: usize = 32;

/// Errors of the history.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the history file was written with another key (another wallet?)")]
    WrongKey,
    #[error("not a wallet address: {0:?}")]
    BadAddress(String),
    #[error("message text of {0} bytes is over the {MAX_TEXT_BYTES}-byte limit")]
    TextTooLong(usize),
    #[error("message id must be 1 to {MAX_MESSAGE_ID_BYTES} bytes, got {0}")]
    BadMessageId(usize),
    #[error("\"not sent\" reason of {0} bytes is over the {MAX_REASON_BYTES}-byte limit")]
    ReasonTooLong(usize),
    #[error(
        "timestamp {0} ms is outside 1970-01-01 to 9999-12-31 (milliseconds since the Unix epoch)"
    )]
    BadTimestamp(i64),
    #[error("a page holds at most {MAX_PAGE} messages, {0} asked")]
    PageTooLarge(usize),
    #[error("no message with this id in this conversation")]
    UnknownMessage,
    #[error("a message keeps at most {MAX_REACTIONS_PER_MESSAGE} reactions")]
    TooManyReactions,
    #[error("no data directory for this user (neither XDG_DATA_HOME nor HOME is set?)")]
    NoDataDir,
    #[error("corrupt history: {0}")]
    Corrupt(&'static str),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("history database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("history database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

pub type Result<T> = std::result::Result<T, Error>;

/// The keys of one wallet's history, derived from its private key. Zeroed when dropped; its
/// `Debug` shows nothing of it.
#[derive(Clone)]
pub struct HistoryKey {
    seal: [u8; 32],
    lookup: [u8; 32],
}

impl HistoryKey {
    /// Derives the keys from the wallet's 32-byte secp256k1 private key (HKDF-SHA256, see the
    /// crate documentation).
    pub fn from_private_key(private_key: &[u8; 32]) -> Self {
        let hk = Hkdf::<Sha256>::new(Some(HKDF_SALT), private_key);
        let mut key = HistoryKey {
            seal: [0; 32],
            lookup: [0; 32],
        };
        // HKDF-SHA256 can expand up to 255 * 32 bytes; 32 always fits.
        let expanded = hk
            .expand(HKDF_INFO_SEAL, &mut key.seal)
            .and_then(|()| hk.expand(HKDF_INFO_LOOKUP, &mut key.lookup));
        debug_assert!(expanded.is_ok());
        key
    }
}

impl Drop for HistoryKey {
    fn drop(&mut self) {
        self.seal.zeroize();
        self.lookup.zeroize();
    }
}

impl fmt::Debug for HistoryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HistoryKey(..)")
    }
}

/// Where the history of `address` lives: `<data dir>/pchat/<address>/history.sqlite`, the data
/// directory being the platform's (`$XDG_DATA_HOME` or `~/.local/share` on Linux,
/// `~/Library/Application Support` on macOS, `%APPDATA%` on Windows). The address is
/// lower-cased, so one wallet has one file however it is spelled.
pub fn default_path(address: &str) -> Result<PathBuf> {
    let address = normalize(address)?;
    let data = dirs::data_dir().ok_or(Error::NoDataDir)?;
    Ok(data.join("pchat").join(address).join("history.sqlite"))
}

/// A message id as the reference client forms it (see [`chat_core::reaction::message_id`]:
/// the lower-case sender and the OLE timestamp as .NET prints it, independent of the locale).
pub use chat_core::reaction::message_id;

/// Milliseconds since the Unix epoch of a time (times before the epoch give
/// [`Error::BadTimestamp`]).
pub fn millis_from_system_time(t: SystemTime) -> Result<i64> {
    let ms = t
        .duration_since(UNIX_EPOCH)
        .map_err(|_| Error::BadTimestamp(-1))?
        .as_millis();
    i64::try_from(ms)
        .ok()
        .filter(|ms| *ms <= MAX_TIMESTAMP_MS)
        .ok_or(Error::BadTimestamp(i64::MAX))
}

/// Milliseconds since the Unix epoch of an OLE Automation date (`Chat.timestamp`), rounded to the
/// nearest millisecond.
pub fn millis_from_ole(days: f64) -> Result<i64> {
    let t = chat_core::ole::from_ole(days).ok_or(Error::BadTimestamp(-1))?;
    let d = t
        .duration_since(UNIX_EPOCH)
        .map_err(|_| Error::BadTimestamp(-1))?;
    // Rounded, not truncated: an OLE double carries sub-millisecond noise either way.
    let ms = (d.as_secs_f64() * 1000.0).round();
    millis_checked(ms as i64)
}

fn millis_checked(ms: i64) -> Result<i64> {
    if (0..=MAX_TIMESTAMP_MS).contains(&ms) {
        Ok(ms)
    } else {
        Err(Error::BadTimestamp(ms))
    }
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the peer to me.
    Incoming,
    /// From me to the peer.
    Outgoing,
}

/// What happened to a message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "s", rename_all = "snake_case")]
pub enum Delivery {
    /// An incoming message.
    Received,
    /// An outgoing message not yet handed to the room (e.g. held until the room announced me).
    Pending,
    /// Sent on the data channel.
    Sent,
    /// Not sent, and why.
    NotSent { reason: String },
}

/// A message to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `"{sender address}:{OLE timestamp}"`, as the reference client forms it ([`message_id`]);
    /// recording the same id twice in a conversation keeps one message (the first).
    pub id: String,
    pub direction: Direction,
    pub text: String,
    /// Milliseconds since the Unix epoch, UTC ([`millis_from_ole`], [`millis_from_system_time`]).
    pub timestamp_ms: i64,
    pub delivery: Delivery,
    /// How it travelled: encrypted end to end or in plaintext (`None`: not known).
    pub protection: Option<chat_core::Protection>,
}

/// A reaction on a message: the reference client's emoji index, and whether I set it (else the
/// peer did).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Reaction {
    #[serde(rename = "e")]
    pub emoji_index: u32,
    #[serde(rename = "m")]
    pub mine: bool,
}

/// Where a page of messages ends: pass a message's [`Message::cursor`] as `before` to get the
/// messages older than it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    timestamp_ms: i64,
    seq: i64,
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: String,
    pub direction: Direction,
    pub text: String,
    pub timestamp_ms: i64,
    pub delivery: Delivery,
    /// Sorted by emoji index, then mine after the peer's.
    pub reactions: Vec<Reaction>,
    /// How it travelled, as recorded (`None`: not known, e.g. recorded before it was kept).
    pub protection: Option<chat_core::Protection>,
    /// Recorded after the last [`History::mark_read`] of its conversation (incoming only).
    pub unread: bool,
    cursor: Cursor,
}

impl Message {
    /// The position of this message, for paging with [`History::messages`].
    pub fn cursor(&self) -> Cursor {
        self.cursor
    }
}

/// One conversation, as the conversation list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    /// The peer's address, lower case.
    pub peer: String,
    /// The newest message's timestamp (milliseconds since the Unix epoch).
    pub last_message_ms: i64,
    /// The newest message's text, cut to [`PREVIEW_CHARS`] characters.
    pub preview: String,
    /// Incoming messages recorded since the last [`History::mark_read`].
    pub unread: u64,
}

/// What is sealed in a message row.
#[derive(Serialize, Deserialize)]
struct Body {
    #[serde(rename = "i")]
    id: String,
    #[serde(rename = "t")]
    text: String,
    #[serde(rename = "d")]
    delivery: Delivery,
    #[serde(rename = "r", default)]
    reactions: Vec<Reaction>,
    /// Absent in bodies written before it was kept.
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    protection: Option<StoredProtection>,
}

/// [`chat_core::Protection`] as the sealed body keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum StoredProtection {
    #[serde(rename = "e")]
    Encrypted,
    #[serde(rename = "p")]
    Plaintext,
    #[serde(rename = "k")]
    PlaintextFromKeyedPeer,
}

impl From<chat_core::Protection> for StoredProtection {
    fn from(p: chat_core::Protection) -> Self {
        match p {
            chat_core::Protection::Encrypted => StoredProtection::Encrypted,
            chat_core::Protection::Plaintext => StoredProtection::Plaintext,
            chat_core::Protection::PlaintextFromKeyedPeer => {
                StoredProtection::PlaintextFromKeyedPeer
            }
        }
    }
}

impl From<StoredProtection> for chat_core::Protection {
    fn from(p: StoredProtection) -> Self {
        match p {
            StoredProtection::Encrypted => chat_core::Protection::Encrypted,
            StoredProtection::Plaintext => chat_core::Protection::Plaintext,
            StoredProtection::PlaintextFromKeyedPeer => {
                chat_core::Protection::PlaintextFromKeyedPeer
            }
        }
    }
}

struct Keys {
    cipher: XChaCha20Poly1305,
    /// HMAC-SHA256 keyed with the lookup key, cloned for each hash.
    mac: Hmac<Sha256>,
}

/// One wallet's history file. Cheap to clone (one connection pool); every method can be called
/// from several tasks at once.
#[derive(Clone)]
pub struct History {
    pool: SqlitePool,
    keys: Arc<Keys>,
}

impl fmt::Debug for History {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("History").finish_non_exhaustive()
    }
}

impl History {
    /// Opens the history at `path`, creating the file (0600) and its missing directories (0700).
    /// [`Error::WrongKey`] if the file was written with another key.
    pub async fn open(path: impl AsRef<Path>, key: &HistoryKey) -> Result<History> {
        let path = path.as_ref();
        prepare_file(path)?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            .pragma("secure_delete", "ON");
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(BUSY_TIMEOUT)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        // HMAC takes keys of any length: this cannot fail for 32 bytes.
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(&key.lookup)
            .map_err(|_| Error::Corrupt("lookup key of an invalid length"))?;
        let history = History {
            pool,
            keys: Arc::new(Keys {
                cipher: XChaCha20Poly1305::new((&key.seal).into()),
                mac,
            }),
        };
        history.check_key().await?;
        Ok(history)
    }

    /// Seals the known plaintext in a new file, or checks it opens in an existing one.
    async fn check_key(&self) -> Result<()> {
        let (nonce, sealed) = self.seal(KEY_CHECK_PLAINTEXT, &key_check_ad())?;
        // Two processes may create the file at once: the first insert wins, both check it.
        sqlx::query(
            "INSERT INTO meta (id, format, check_nonce, check_sealed) VALUES (1, ?, ?, ?) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(FORMAT)
        .bind(&nonce[..])
        .bind(sealed)
        .execute(&self.pool)
        .await?;
        let row = sqlx::query("SELECT format, check_nonce, check_sealed FROM meta WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        let format: i64 = row.try_get("format")?;
        if format != FORMAT {
            return Err(Error::Corrupt("unknown file format"));
        }
        let nonce: Vec<u8> = row.try_get("check_nonce")?;
        let sealed: Vec<u8> = row.try_get("check_sealed")?;
        match self.open_sealed(&nonce, &sealed, &key_check_ad()) {
            Ok(plain) if plain == KEY_CHECK_PLAINTEXT => Ok(()),
            _ => Err(Error::WrongKey),
        }
    }

    /// Records a message in the conversation with `peer`. Returns `false` (and changes nothing)
    /// if a message with the same id is already there.
    pub async fn record(&self, peer: &str, entry: Entry) -> Result<bool> {
        let peer = normalize(peer)?;
        check_id(&entry.id)?;
        if entry.text.len() > MAX_TEXT_BYTES {
            return Err(Error::TextTooLong(entry.text.len()));
        }
        check_delivery(&entry.delivery)?;
        let ts = millis_checked(entry.timestamp_ms)?;
        let conv = self.conv_hash(&peer);
        let mid = self.mid_hash(&conv, &entry.id);
        let incoming = entry.direction == Direction::Incoming;
        let (peer_nonce, peer_sealed) = self.seal(peer.as_bytes(), &peer_ad(&conv))?;
        let body = Body {
            id: entry.id,
            text: entry.text,
            delivery: entry.delivery,
            reactions: Vec::new(),
            protection: entry.protection.map(StoredProtection::from),
        };
        let (nonce, sealed) = self.seal_body(&body, &conv, &mid, incoming, ts)?;

        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "INSERT INTO conversations (conv, peer_nonce, peer_sealed) VALUES (?, ?, ?) \
             ON CONFLICT (conv) DO NOTHING",
        )
        .bind(&conv[..])
        .bind(&peer_nonce[..])
        .bind(peer_sealed)
        .execute(&mut *tx)
        .await?;
        let inserted = sqlx::query(
            "INSERT INTO messages (conv, mid, incoming, ts_ms, nonce, body) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (conv, mid) DO NOTHING",
        )
        .bind(&conv[..])
        .bind(&mid[..])
        .bind(i64::from(incoming))
        .bind(ts)
        .bind(&nonce[..])
        .bind(sealed)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(inserted == 1)
    }

    /// Sets the delivery status of a recorded message.
    pub async fn set_delivery(&self, peer: &str, id: &str, delivery: Delivery) -> Result<()> {
        check_delivery(&delivery)?;
        self.update_body(peer, id, move |body| {
            body.delivery = delivery;
            Ok(())
        })
        .await
    }

    /// Adds a reaction to a recorded message (nothing changes if it is already there).
    pub async fn set_reaction(&self, peer: &str, id: &str, reaction: Reaction) -> Result<()> {
        self.update_body(peer, id, move |body| {
            if let Err(at) = body.reactions.binary_search(&reaction) {
                if body.reactions.len() >= MAX_REACTIONS_PER_MESSAGE {
                    return Err(Error::TooManyReactions);
                }
                body.reactions.insert(at, reaction);
            }
            Ok(())
        })
        .await
    }

    /// Removes a reaction from a recorded message (nothing changes if it is not there).
    pub async fn remove_reaction(&self, peer: &str, id: &str, reaction: Reaction) -> Result<()> {
        self.update_body(peer, id, move |body| {
            body.reactions.retain(|r| *r != reaction);
            Ok(())
        })
        .await
    }

    /// Opens a message's sealed body, changes it and seals it again with a fresh nonce, holding
    /// the write lock throughout so concurrent updates of one message do not undo each other.
    async fn update_body(
        &self,
        peer: &str,
        id: &str,
        change: impl FnOnce(&mut Body) -> Result<()>,
    ) -> Result<()> {
        let peer = normalize(peer)?;
        check_id(id)?;
        let conv = self.conv_hash(&peer);
        let mid = self.mid_hash(&conv, id);
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let row = sqlx::query(
            "SELECT seq, incoming, ts_ms, nonce, body FROM messages WHERE conv = ? AND mid = ?",
        )
        .bind(&conv[..])
        .bind(&mid[..])
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Error::UnknownMessage)?;
        let seq: i64 = row.try_get("seq")?;
        let incoming = incoming_of(&row)?;
        let ts: i64 = row.try_get("ts_ms")?;
        let mut body = self.open_body(&row, &conv, &mid, incoming, ts)?;
        change(&mut body)?;
        let (nonce, sealed) = self.seal_body(&body, &conv, &mid, incoming, ts)?;
        sqlx::query("UPDATE messages SET nonce = ?, body = ? WHERE seq = ?")
            .bind(&nonce[..])
            .bind(sealed)
            .bind(seq)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every conversation, the most recently active first.
    pub async fn conversations(&self) -> Result<Vec<Conversation>> {
        let rows = sqlx::query(
            "SELECT c.conv, c.peer_nonce, c.peer_sealed, m.mid, m.incoming, m.ts_ms, m.nonce, \
                    m.body, \
                    (SELECT count(*) FROM messages u \
                      WHERE u.conv = c.conv AND u.incoming = 1 AND u.seq > c.read_seq) AS unread \
             FROM conversations c \
             JOIN messages m ON m.seq = (SELECT l.seq FROM messages l WHERE l.conv = c.conv \
                                         ORDER BY l.ts_ms DESC, l.seq DESC LIMIT 1) \
             ORDER BY m.ts_ms DESC, m.seq DESC",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let conv = hash_of(&row, "conv")?;
            let peer = self.open_peer(&row, &conv)?;
            let mid = hash_of(&row, "mid")?;
            let incoming = incoming_of(&row)?;
            let ts: i64 = row.try_get("ts_ms")?;
            let body = self.open_body(&row, &conv, &mid, incoming, ts)?;
            let unread: i64 = row.try_get("unread")?;
            out.push(Conversation {
                peer,
                last_message_ms: ts,
                preview: body.text.chars().take(PREVIEW_CHARS).collect(),
                unread: u64::try_from(unread).map_err(|_| Error::Corrupt("negative count"))?,
            });
        }
        Ok(out)
    }

    /// Up to `limit` (at most [`MAX_PAGE`]) messages of the conversation with `peer`, older than
    /// `before` if given, oldest first: the newest page is `messages(peer, n, None)`, the page
    /// before it `messages(peer, n, Some(page[0].cursor()))`. Ordered by timestamp, then by the
    /// order they were recorded in. An unknown peer has no messages.
    pub async fn messages(
        &self,
        peer: &str,
        limit: usize,
        before: Option<Cursor>,
    ) -> Result<Vec<Message>> {
        let peer = normalize(peer)?;
        if limit > MAX_PAGE {
            return Err(Error::PageTooLarge(limit));
        }
        let conv = self.conv_hash(&peer);
        let before = before.unwrap_or(Cursor {
            timestamp_ms: i64::MAX,
            seq: i64::MAX,
        });
        let rows = sqlx::query(
            "SELECT m.seq, m.mid, m.incoming, m.ts_ms, m.nonce, m.body, c.read_seq \
             FROM messages m JOIN conversations c ON c.conv = m.conv \
             WHERE m.conv = ? AND (m.ts_ms, m.seq) < (?, ?) \
             ORDER BY m.ts_ms DESC, m.seq DESC LIMIT ?",
        )
        .bind(&conv[..])
        .bind(before.timestamp_ms)
        .bind(before.seq)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows.iter().rev() {
            let seq: i64 = row.try_get("seq")?;
            let mid = hash_of(row, "mid")?;
            let incoming = incoming_of(row)?;
            let ts: i64 = row.try_get("ts_ms")?;
            let read_seq: i64 = row.try_get("read_seq")?;
            let body = self.open_body(row, &conv, &mid, incoming, ts)?;
            if self.mid_hash(&conv, &body.id) != mid {
                return Err(Error::Corrupt("message id does not match its row"));
            }
            out.push(Message {
                id: body.id,
                direction: if incoming {
                    Direction::Incoming
                } else {
                    Direction::Outgoing
                },
                text: body.text,
                timestamp_ms: ts,
                delivery: body.delivery,
                reactions: body.reactions,
                protection: body.protection.map(chat_core::Protection::from),
                unread: incoming && seq > read_seq,
                cursor: Cursor {
                    timestamp_ms: ts,
                    seq,
                },
            });
        }
        Ok(out)
    }

    /// Marks every message of the conversation with `peer` recorded so far as read.
    pub async fn mark_read(&self, peer: &str) -> Result<()> {
        let peer = normalize(peer)?;
        let conv = self.conv_hash(&peer);
        sqlx::query(
            "UPDATE conversations SET read_seq = \
               (SELECT coalesce(max(seq), 0) FROM messages WHERE conv = ?1) \
             WHERE conv = ?1",
        )
        .bind(&conv[..])
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deletes the conversation with `peer` and all its messages from the file (see "Deleting" in
    /// the crate documentation). Returns whether there was one.
    pub async fn delete_conversation(&self, peer: &str) -> Result<bool> {
        let peer = normalize(peer)?;
        let conv = self.conv_hash(&peer);
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("DELETE FROM messages WHERE conv = ?")
            .bind(&conv[..])
            .execute(&mut *tx)
            .await?;
        let deleted = sqlx::query("DELETE FROM conversations WHERE conv = ?")
            .bind(&conv[..])
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        self.checkpoint().await?;
        Ok(deleted == 1)
    }

    /// Copies the WAL into the database file and truncates the WAL to zero bytes (SQLite's
    /// `wal_checkpoint(TRUNCATE)`). Done by [`History::delete_conversation`] and
    /// [`History::close`]; SQLite also checkpoints by itself as the WAL grows.
    pub async fn checkpoint(&self) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        // Busy when a reader holds an old snapshot (another process, or a query of another task
        // in flight): try again shortly, a bounded number of times.
        for attempt in 0..50 {
            if truncate_wal(&mut conn).await? {
                return Ok(());
            }
            tracing::debug!(attempt, "history checkpoint busy, retrying");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tracing::warn!("history checkpoint stayed busy; the WAL is truncated at a later one");
        Ok(())
    }

    /// Checkpoints and closes the file.
    pub async fn close(self) -> Result<()> {
        self.checkpoint().await?;
        self.pool.close().await;
        Ok(())
    }

    fn conv_hash(&self, peer: &str) -> [u8; HASH_LEN] {
        self.hmac(&[b"peer\0", peer.as_bytes()])
    }

    fn mid_hash(&self, conv: &[u8; HASH_LEN], id: &str) -> [u8; HASH_LEN] {
        self.hmac(&[b"message\0", conv, id.as_bytes()])
    }

    fn hmac(&self, parts: &[&[u8]]) -> [u8; HASH_LEN] {
        let mut mac = self.keys.mac.clone();
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    fn seal(&self, plain: &[u8], ad: &[u8]) -> Result<([u8; NONCE_LEN], Vec<u8>)> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .keys
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: ad,
                },
            )
            .map_err(|_| Error::Corrupt("value too large to seal"))?;
        Ok((nonce, sealed))
    }

    fn open_sealed(&self, nonce: &[u8], sealed: &[u8], ad: &[u8]) -> Result<Vec<u8>> {
        if nonce.len() != NONCE_LEN {
            return Err(Error::Corrupt("nonce of the wrong length"));
        }
        self.keys
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: ad,
                },
            )
            .map_err(|_| Error::Corrupt("a sealed value does not open (tampered or moved)"))
    }

    fn seal_body(
        &self,
        body: &Body,
        conv: &[u8; HASH_LEN],
        mid: &[u8; HASH_LEN],
        incoming: bool,
        ts: i64,
    ) -> Result<([u8; NONCE_LEN], Vec<u8>)> {
        let mut plain =
            serde_json::to_vec(body).map_err(|_| Error::Corrupt("message not serialisable"))?;
        let sealed = self.seal(&plain, &body_ad(conv, mid, incoming, ts));
        plain.zeroize();
        sealed
    }

    fn open_body(
        &self,
        row: &sqlx::sqlite::SqliteRow,
        conv: &[u8; HASH_LEN],
        mid: &[u8; HASH_LEN],
        incoming: bool,
        ts: i64,
    ) -> Result<Body> {
        let nonce: Vec<u8> = row.try_get("nonce")?;
        let sealed: Vec<u8> = row.try_get("body")?;
        let mut plain = self.open_sealed(&nonce, &sealed, &body_ad(conv, mid, incoming, ts))?;
        let body = serde_json::from_slice(&plain).map_err(|_| Error::Corrupt("message body"));
        plain.zeroize();
        body
    }

    fn open_peer(&self, row: &sqlx::sqlite::SqliteRow, conv: &[u8; HASH_LEN]) -> Result<String> {
        let nonce: Vec<u8> = row.try_get("peer_nonce")?;
        let sealed: Vec<u8> = row.try_get("peer_sealed")?;
        let plain = self.open_sealed(&nonce, &sealed, &peer_ad(conv))?;
        let peer = String::from_utf8(plain).map_err(|_| Error::Corrupt("peer address"))?;
        if self.conv_hash(&peer) != *conv {
            return Err(Error::Corrupt(
                "peer address does not match its conversation",
            ));
        }
        Ok(peer)
    }
}

/// `PRAGMA wal_checkpoint(TRUNCATE)`; false when it could not complete (busy).
async fn truncate_wal(conn: &mut SqliteConnection) -> Result<bool> {
    let row = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .fetch_one(&mut *conn)
        .await?;
    let busy: i64 = row.try_get(0)?;
    Ok(busy == 0)
}

/// Creates the missing parent directories (0700) and the file (0600), and narrows an existing
/// file to 0600, before SQLite opens it (SQLite would create it with the umask's mode).
fn prepare_file(path: &Path) -> Result<()> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(parent).map_err(io)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file.metadata().map_err(io)?.permissions().mode();
        if mode & 0o077 != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(io)?;
        }
    }
    drop(file);
    Ok(())
}

fn normalize(address: &str) -> Result<String> {
    pchat_core::normalize_address(address).map_err(|_| Error::BadAddress(address.to_owned()))
}

fn check_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > MAX_MESSAGE_ID_BYTES {
        return Err(Error::BadMessageId(id.len()));
    }
    Ok(())
}

fn check_delivery(delivery: &Delivery) -> Result<()> {
    match delivery {
        Delivery::NotSent { reason } if reason.len() > MAX_REASON_BYTES => {
            Err(Error::ReasonTooLong(reason.len()))
        }
        _ => Ok(()),
    }
}

fn key_check_ad() -> Vec<u8> {
    b"pchat-history/v1 key check".to_vec()
}

fn peer_ad(conv: &[u8; HASH_LEN]) -> Vec<u8> {
    let mut ad = b"pchat-history/v1 peer\0".to_vec();
    ad.extend_from_slice(conv);
    ad
}

/// The associated data of a message body: its row's identity (conversation, message id) and the
/// columns left visible (direction, timestamp), so neither the body nor those columns can be
/// moved or edited unnoticed.
fn body_ad(conv: &[u8; HASH_LEN], mid: &[u8; HASH_LEN], incoming: bool, ts: i64) -> Vec<u8> {
    let mut ad = b"pchat-history/v1 message\0".to_vec();
    ad.extend_from_slice(conv);
    ad.extend_from_slice(mid);
    ad.push(u8::from(incoming));
    ad.extend_from_slice(&ts.to_be_bytes());
    ad
}

fn hash_of(row: &sqlx::sqlite::SqliteRow, column: &str) -> Result<[u8; HASH_LEN]> {
    let v: Vec<u8> = row.try_get(column)?;
    <[u8; HASH_LEN]>::try_from(v.as_slice()).map_err(|_| Error::Corrupt("hash of the wrong length"))
}

fn incoming_of(row: &sqlx::sqlite::SqliteRow) -> Result<bool> {
    match row.try_get::<i64, _>("incoming")? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(Error::Corrupt("direction")),
    }
}
