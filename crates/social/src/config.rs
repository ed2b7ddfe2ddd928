//! Configuration from the environment (the reference names) or flags.

/// Social service settings. `pchat social --help` lists each with its variable and default.
#[derive(Debug, Clone, clap::Args)]
pub struct SocialConfig {
    /// Interface to listen on (use 0.0.0.0 to accept remote clients).
    #[arg(long, env = "HTTP_SERVER_HOST", default_value = "127.0.0.1")]
    pub host: String,

    /// TCP port for HTTP and the dcl-rpc WebSocket (at `/`).
    #[arg(long, env = "HTTP_SERVER_PORT", default_value_t = 3001)]
    pub port: u16,

    /// `postgres://…` or `sqlite://path`. Default: a SQLite file in the working directory.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://social.sqlite")]
    pub database_url: String,

    /// Redis for fanning updates out between instances. Unset: this instance only.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,

    /// The gatekeeper, told about privacy changes (`PATCH /users/:address/private-messages-privacy`).
    /// Unset: privacy changes are only stored.
    #[arg(long, env = "COMMS_GATEKEEPER_URL")]
    pub gatekeeper_url: Option<String>,

    /// Bearer token for the gatekeeper.
    #[arg(
        long,
        env = "COMMS_GATEKEEPER_AUTH_TOKEN",
        hide_env_values = true,
        default_value = ""
    )]
    pub gatekeeper_token: String,

    /// Catalyst lambdas URL (e.g. https://peer.decentraland.org/lambdas) for profile names and
    /// pictures (`POST {url}/profiles`). Unset, or when it fails: the address is the name.
    #[arg(long, env = "CATALYST_LAMBDAS_URL")]
    pub catalyst_lambdas_url: Option<String>,

    /// Seconds a new WebSocket has to send its auth frame (closes with 3004 after).
    #[arg(long, env = "WS_AUTH_TIMEOUT_SECONDS", default_value_t = 300)]
    pub ws_auth_timeout_secs: u64,

    /// Most simultaneous dcl-rpc connections; one more is closed with 1013 at once.
    #[arg(long, env = "WS_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub ws_max_connections: usize,

    /// Most open ports per connection (CREATE_PORT beyond: REMOTE_ERROR_RESPONSE).
    #[arg(long, env = "WS_MAX_PORTS_PER_CONNECTION", default_value_t = 16)]
    pub ws_max_ports_per_connection: usize,

    /// Most open update streams per connection (one more: REMOTE_ERROR_RESPONSE).
    #[arg(long, env = "WS_MAX_STREAMS_PER_CONNECTION", default_value_t = 64)]
    pub ws_max_streams_per_connection: usize,

    /// Most unary calls in progress at once per connection (one more: REMOTE_ERROR_RESPONSE).
    #[arg(long, env = "WS_MAX_CALLS_PER_CONNECTION", default_value_t = 256)]
    pub ws_max_calls_per_connection: usize,

    /// Seconds settings and friend lists stay in memory (0 turns the cache off). Changes drop
    /// them at once on every instance; this bounds staleness only if Redis loses a message.
    #[arg(long, env = "SOCIAL_CACHE_TTL_SECONDS", default_value_t = 60)]
    pub cache_ttl_secs: u64,

    /// With REDIS_URL: seconds after which an instance that stopped refreshing its liveness
    /// counts as dead, and its users as offline (refreshed every third of it).
    #[arg(long, env = "SOCIAL_PRESENCE_TTL_SECONDS", default_value_t = 30)]
    pub presence_ttl_secs: u64,

    /// Seconds of each friendship/block rate-limit window (fixed, opened by a counter's first
    /// action). The counters live in Redis with REDIS_URL (shared by every instance), in memory
    /// otherwise; if Redis fails, actions are allowed.
    #[arg(long, env = "FRIENDSHIP_RATE_LIMIT_WINDOW_SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub friendship_rate_limit_window_secs: u64,

    /// Friendship actions, blocks and unblocks one user may make per window (0: no limit).
    #[arg(long, env = "FRIENDSHIP_RATE_LIMIT_PER_ACTOR", default_value_t = 30)]
    pub friendship_rate_limit_per_actor: u64,

    /// Per window: friendship actions between two users (either way), and blocks/unblocks of one
    /// user by another (0: no limit).
    #[arg(long, env = "FRIENDSHIP_RATE_LIMIT_PER_PAIR", default_value_t = 10)]
    pub friendship_rate_limit_per_pair: u64,

    /// HTTP server limits: header-read and idle timeouts, connection cap (WebSockets are not
    /// counted once upgraded).
    #[command(flatten)]
    pub http: http_serve::HttpLimits,
}

impl SocialConfig {
    /// The friendship/block rate limits.
    pub fn friendship_rate_limits(&self) -> crate::ratelimit::Limits {
        crate::ratelimit::Limits {
            window: std::time::Duration::from_secs(self.friendship_rate_limit_window_secs.max(1)),
            per_actor: self.friendship_rate_limit_per_actor,
            per_pair: self.friendship_rate_limit_per_pair,
        }
    }

    /// Defaults for tests and embedding: loopback, port 0, the given database.
    pub fn new(database_url: &str) -> Self {
        SocialConfig {
            host: "127.0.0.1".into(),
            port: 0,
            database_url: database_url.into(),
            redis_url: None,
            gatekeeper_url: None,
            gatekeeper_token: String::new(),
            catalyst_lambdas_url: None,
            ws_auth_timeout_secs: 300,
            ws_max_connections: 10_000,
            ws_max_ports_per_connection: 16,
            ws_max_streams_per_connection: 64,
            ws_max_calls_per_connection: 256,
            cache_ttl_secs: 60,
            presence_ttl_secs: 30,
            friendship_rate_limit_window_secs: crate::ratelimit::DEFAULT_WINDOW_SECS,
            friendship_rate_limit_per_actor: crate::ratelimit::DEFAULT_PER_ACTOR,
            friendship_rate_limit_per_pair: crate::ratelimit::DEFAULT_PER_PAIR,
            http: http_serve::HttpLimits::default(),
        }
    }
}
