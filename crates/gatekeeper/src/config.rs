//! Configuration, read from the environment (the reference service's variable names) or flags.

use std::time::Duration;

/// Gatekeeper settings. `pchat gatekeeper --help` lists each with its variable and default.
#[derive(Debug, Clone, clap::Args)]
pub struct GatekeeperConfig {
    /// Interface to listen on (use 0.0.0.0 to accept remote clients).
    #[arg(long, env = "HTTP_SERVER_HOST", default_value = "127.0.0.1")]
    pub host: String,

    /// TCP port to listen on.
    #[arg(long, env = "HTTP_SERVER_PORT", default_value_t = 3000)]
    pub port: u16,

    /// Name of the shared LiveKit room for private messages.
    #[arg(
        long,
        env = "PRIVATE_MESSAGES_ROOM_ID",
        default_value = "private-messages"
    )]
    pub room: String,

    /// LiveKit URL handed to clients (ws:// or wss://); RoomService calls use its http(s) form.
    #[arg(long, env = "PROD_LIVEKIT_HOST")]
    pub livekit_host: String,

    /// LiveKit API key.
    #[arg(long, env = "PROD_LIVEKIT_API_KEY")]
    pub livekit_api_key: String,

    /// LiveKit API secret.
    #[arg(long, env = "PROD_LIVEKIT_API_SECRET", hide_env_values = true)]
    pub livekit_api_secret: String,

    /// Base URL of the social service, asked for `/v1/users/:address/privacy-settings`.
    /// Unset: every user gets privacy `all`.
    #[arg(long, env = "SOCIAL_SERVICE_URL")]
    pub social_service_url: Option<String>,

    /// Bearer token the social service presents on PATCH /users/:address/private-messages-privacy.
    #[arg(long, env = "COMMS_GATEKEEPER_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: String,

    /// Deny list `{"users":[{"wallet":"0x…"}]}`: an http(s) URL, a file:// URL or a file path.
    #[arg(long, env = "DENYLIST_JSON_URL")]
    pub denylist_url: Option<String>,

    /// How often the deny list is fetched again, in seconds.
    #[arg(long, env = "DENYLIST_REFRESH_SECONDS", default_value_t = 300)]
    pub denylist_refresh_secs: u64,

    /// Timeout of one privacy lookup at the social service, in milliseconds.
    #[arg(long, env = "SOCIAL_SERVICE_TIMEOUT_MS", default_value_t = 1000)]
    pub social_timeout_ms: u64,

    /// Timeout of one LiveKit RoomService call, in milliseconds.
    #[arg(long, env = "LIVEKIT_TIMEOUT_MS", default_value_t = 5000)]
    pub livekit_timeout_ms: u64,

    /// Signed-fetch time window (past and future), in seconds.
    #[arg(long, env = "SIGNED_FETCH_WINDOW_SECONDS", default_value_t = 60)]
    pub window_secs: u64,

    /// Catalyst lambdas URL used to validate contract-wallet (EIP-1654) chains. Unset: refused.
    #[arg(long, env = "CATALYST_LAMBDAS_URL")]
    pub catalyst_lambdas_url: Option<String>,

    /// Lifetime of the LiveKit tokens, in seconds.
    #[arg(long, env = "TOKEN_TTL_SECONDS", default_value_t = 300)]
    pub token_ttl_secs: u64,

    /// HTTP server limits: header-read and idle timeouts, connection cap.
    #[command(flatten)]
    pub http: http_serve::HttpLimits,
}

impl GatekeeperConfig {
    /// A configuration for tests and embedding: loopback, port 0, the reference defaults.
    pub fn new(livekit_host: &str, api_key: &str, api_secret: &str, auth_token: &str) -> Self {
        GatekeeperConfig {
            host: "127.0.0.1".into(),
            port: 0,
            room: "private-messages".into(),
            livekit_host: livekit_host.into(),
            livekit_api_key: api_key.into(),
            livekit_api_secret: api_secret.into(),
            social_service_url: None,
            auth_token: auth_token.into(),
            denylist_url: None,
            denylist_refresh_secs: 300,
            social_timeout_ms: 1000,
            livekit_timeout_ms: 5000,
            window_secs: 60,
            catalyst_lambdas_url: None,
            token_ttl_secs: 300,
            http: http_serve::HttpLimits::default(),
        }
    }

    pub fn token_ttl(&self) -> Duration {
        Duration::from_secs(self.token_ttl_secs)
    }
}
