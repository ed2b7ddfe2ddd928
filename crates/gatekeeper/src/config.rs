//! The gatekeeper's settings, as a plain struct. Reading them from the environment (the
//! reference service's variable names) and flags is the binary's part (`pchat gatekeeper`, whose
//! `--help` lists each variable); each default is written once, here, as a `DEFAULT_…` constant
//! that both [`GatekeeperConfig::new`] and the binary's flags use.

use std::time::Duration;

/// Default of `HTTP_SERVER_HOST`: loopback (0.0.0.0 accepts remote clients).
pub const DEFAULT_HOST: &str = "127.0.0.1";
/// Default of `HTTP_SERVER_PORT`.
pub const DEFAULT_PORT: u16 = 3000;
/// Default of `PRIVATE_MESSAGES_ROOM_ID`, the reference's room name.
pub const DEFAULT_ROOM: &str = "private-messages";
/// Default of `PRIVATE_MESSAGES_ROOM_SHARDS`: one room, as ADR-208 (at most
/// [`pchat_core::rooms::MAX_ROOM_SHARDS`]).
pub const DEFAULT_ROOM_SHARDS: u32 = 1;
/// Default of `DENYLIST_REFRESH_SECONDS`.
pub const DEFAULT_DENYLIST_REFRESH_SECS: u64 = 300;
/// Default of `SOCIAL_SERVICE_TIMEOUT_MS`.
pub const DEFAULT_SOCIAL_TIMEOUT_MS: u64 = 1000;
/// Default of `LIVEKIT_TIMEOUT_MS`.
pub const DEFAULT_LIVEKIT_TIMEOUT_MS: u64 = 5000;
/// Default of `SIGNED_FETCH_WINDOW_SECONDS`: the signed-fetch window of the reference.
pub const DEFAULT_WINDOW_SECS: u64 = authchain::DEFAULT_WINDOW.as_secs();
/// Default of `TOKEN_TTL_SECONDS`: the reference's 5-minute LiveKit tokens.
pub const DEFAULT_TOKEN_TTL_SECS: u64 = 300;
/// Default of `LIVEKIT_NODE_CHECK_INTERVAL_MS`: how often each cluster node is checked.
pub const DEFAULT_NODE_CHECK_INTERVAL_MS: u64 = 1000;

/// Gatekeeper settings (the variable each comes from in parentheses).
#[derive(Debug, Clone)]
pub struct GatekeeperConfig {
    /// Interface to listen on (`HTTP_SERVER_HOST`).
    pub host: String,
    /// TCP port to listen on (`HTTP_SERVER_PORT`).
    pub port: u16,
    /// Name of the shared LiveKit room for private messages (`PRIVATE_MESSAGES_ROOM_ID`).
    pub room: String,
    /// How many private-messages rooms the players are spread over, K
    /// (`PRIVATE_MESSAGES_ROOM_SHARDS`, 1..=64; see [`pchat_core::rooms`] and
    /// docs/sharded-rooms.md): room 0 is `room`, room k is `{room}-{k}`. 1: the one room of
    /// ADR-208, every answer as without this setting.
    pub room_shards: u32,
    /// LiveKit URL handed to clients, ws:// or wss:// (`PROD_LIVEKIT_HOST`); RoomService calls
    /// use its http(s) form.
    pub livekit_host: String,
    /// LiveKit API key (`PROD_LIVEKIT_API_KEY`).
    pub livekit_api_key: String,
    /// LiveKit API secret (`PROD_LIVEKIT_API_SECRET`).
    pub livekit_api_secret: String,
    /// Base URL of the social service, asked for `/v1/users/:address/privacy-settings`
    /// (`SOCIAL_SERVICE_URL`). `None`: every user gets privacy `all`.
    pub social_service_url: Option<String>,
    /// Bearer token the social service presents on the privacy PATCH
    /// (`COMMS_GATEKEEPER_AUTH_TOKEN`).
    pub auth_token: String,
    /// Deny list: an http(s) URL, a file:// URL or a file path (`DENYLIST_JSON_URL`).
    pub denylist_url: Option<String>,
    /// How often the deny list is fetched again, in seconds (`DENYLIST_REFRESH_SECONDS`).
    pub denylist_refresh_secs: u64,
    /// Timeout of one privacy lookup, in milliseconds (`SOCIAL_SERVICE_TIMEOUT_MS`).
    pub social_timeout_ms: u64,
    /// Timeout of one LiveKit RoomService call, in milliseconds (`LIVEKIT_TIMEOUT_MS`).
    pub livekit_timeout_ms: u64,
    /// Signed-fetch time window, both ways, in seconds (`SIGNED_FETCH_WINDOW_SECONDS`).
    pub window_secs: u64,
    /// Catalyst lambdas URL validating contract-wallet chains (`CATALYST_LAMBDAS_URL`). `None`:
    /// such chains are refused.
    pub catalyst_lambdas_url: Option<String>,
    /// Lifetime of the LiveKit tokens, in seconds (`TOKEN_TTL_SECONDS`).
    pub token_ttl_secs: u64,
    /// The nodes of a LiveKit cluster to hand out to clients instead of `livekit_host`, each
    /// client the healthy node its address prefers (`LIVEKIT_NODE_URLS`, comma-separated; see
    /// [`crate::nodes`]). Empty: one LiveKit URL, `livekit_host`.
    pub livekit_node_urls: Vec<String>,
    /// How often each of `livekit_node_urls` is health-checked, in milliseconds
    /// (`LIVEKIT_NODE_CHECK_INTERVAL_MS`).
    pub node_check_interval_ms: u64,
    /// HTTP server limits: header-read and idle timeouts, connection cap.
    pub http: http_serve::HttpLimits,
}

impl GatekeeperConfig {
    /// A configuration for tests and embedding: loopback, port 0, the defaults.
    pub fn new(livekit_host: &str, api_key: &str, api_secret: &str, auth_token: &str) -> Self {
        GatekeeperConfig {
            host: DEFAULT_HOST.into(),
            port: 0,
            room: DEFAULT_ROOM.into(),
            room_shards: DEFAULT_ROOM_SHARDS,
            livekit_host: livekit_host.into(),
            livekit_api_key: api_key.into(),
            livekit_api_secret: api_secret.into(),
            social_service_url: None,
            auth_token: auth_token.into(),
            denylist_url: None,
            denylist_refresh_secs: DEFAULT_DENYLIST_REFRESH_SECS,
            social_timeout_ms: DEFAULT_SOCIAL_TIMEOUT_MS,
            livekit_timeout_ms: DEFAULT_LIVEKIT_TIMEOUT_MS,
            window_secs: DEFAULT_WINDOW_SECS,
            catalyst_lambdas_url: None,
            token_ttl_secs: DEFAULT_TOKEN_TTL_SECS,
            livekit_node_urls: Vec::new(),
            node_check_interval_ms: DEFAULT_NODE_CHECK_INTERVAL_MS,
            http: http_serve::HttpLimits::default(),
        }
    }

    pub fn token_ttl(&self) -> Duration {
        Duration::from_secs(self.token_ttl_secs)
    }
}
