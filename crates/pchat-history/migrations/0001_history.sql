-- The local chat history of one wallet. Nothing here is in plaintext except what the crate
-- documentation lists (keyed hashes, timestamps, directions, row counters); see src/lib.rs.

-- One row: a known plaintext sealed with the history key, so opening the file with another key
-- is detected before anything is read or written.
CREATE TABLE meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    format INTEGER NOT NULL,
    check_nonce BLOB NOT NULL,
    check_sealed BLOB NOT NULL
);

-- One row per peer. `conv` is HMAC-SHA256(lookup key, peer address); the address itself is
-- sealed in `peer_sealed`. `read_seq` is the highest message `seq` when the conversation was
-- last marked read: incoming messages above it are unread.
CREATE TABLE conversations (
    conv BLOB PRIMARY KEY NOT NULL,
    peer_nonce BLOB NOT NULL,
    peer_sealed BLOB NOT NULL,
    read_seq INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- One row per message. `mid` is HMAC-SHA256(lookup key, message id); id, text, delivery status
-- and reactions are sealed together in `body`, with (conv, mid, incoming, ts_ms) as associated
-- data. AUTOINCREMENT: a `seq` is never reused, so `read_seq` stays meaningful.
CREATE TABLE messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    conv BLOB NOT NULL REFERENCES conversations (conv) ON DELETE CASCADE,
    mid BLOB NOT NULL,
    incoming INTEGER NOT NULL CHECK (incoming IN (0, 1)),
    ts_ms INTEGER NOT NULL,
    nonce BLOB NOT NULL,
    body BLOB NOT NULL,
    UNIQUE (conv, mid)
);

CREATE INDEX messages_by_time ON messages (conv, ts_ms, seq);
CREATE INDEX messages_unread ON messages (conv, incoming, seq);
