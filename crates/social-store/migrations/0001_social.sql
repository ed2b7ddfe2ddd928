-- Friendships: one row per pair, with the pair in canonical order (user_a < user_b) so that a
-- pair can only exist once. `version` makes every change a compare-and-set, which is how
-- concurrent actions on one pair end in one consistent state on both PostgreSQL and SQLite.
CREATE TABLE IF NOT EXISTS friendships (
    id TEXT PRIMARY KEY,
    user_a TEXT NOT NULL,
    user_b TEXT NOT NULL,
    address_requester TEXT NOT NULL,
    address_requested TEXT NOT NULL,
    is_active BIGINT NOT NULL,
    last_action TEXT NOT NULL,
    last_acting_user TEXT NOT NULL,
    last_message TEXT,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (user_a, user_b)
);
CREATE INDEX IF NOT EXISTS friendships_user_a ON friendships (user_a, is_active, last_action);
CREATE INDEX IF NOT EXISTS friendships_user_b ON friendships (user_b, is_active, last_action);

-- Every action ever taken on a pair.
CREATE TABLE IF NOT EXISTS friendship_actions (
    id TEXT PRIMARY KEY,
    friendship_id TEXT NOT NULL REFERENCES friendships (id),
    action TEXT NOT NULL,
    acting_user TEXT NOT NULL,
    message TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS friendship_actions_by_friendship ON friendship_actions (friendship_id, created_at);

CREATE TABLE IF NOT EXISTS blocks (
    blocker_address TEXT NOT NULL,
    blocked_address TEXT NOT NULL,
    blocked_at BIGINT NOT NULL,
    PRIMARY KEY (blocker_address, blocked_address)
);
CREATE INDEX IF NOT EXISTS blocks_blocked ON blocks (blocked_address);

CREATE TABLE IF NOT EXISTS social_settings (
    address TEXT PRIMARY KEY,
    private_messages_privacy TEXT NOT NULL,
    blocked_users_messages_visibility TEXT NOT NULL
);
