//! The social service's settings, as a plain struct. Reading them from the environment (the
//! reference names) and flags is the binary's part (`pchat social`, whose `--help` lists each
//! variable); each default is written once, as a `DEFAULT_…` constant here (or of the crate whose
//! setting it is: the dcl-rpc server's limits, the rate limiter's) that both
//! [`SocialConfig::new`] and the binary's flags use.

use std::time::Duration;

/// Default of `HTTP_SERVER_HOST`: loopback (0.0.0.0 accepts remote clients).
pub const DEFAULT_HOST: &str = "127.0.0.1";
/// Default of `HTTP_SERVER_PORT`.
pub const DEFAULT_PORT: u16 = 3001;
/// Default of `DATABASE_URL`: a SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://social.sqlite";
/// Default of `WS_AUTH_TIMEOUT_SECONDS`.
pub const DEFAULT_WS_AUTH_TIMEOUT_SECS: u64 = dcl_rpc_server::DEFAULT_AUTH_TIMEOUT.as_secs();
/// Default of `WS_MAX_CONNECTIONS`.
pub const DEFAULT_WS_MAX_CONNECTIONS: usize = dcl_rpc_server::DEFAULT_MAX_CONNECTIONS;
/// Default of `WS_MAX_PORTS_PER_CONNECTION`.
pub const DEFAULT_WS_MAX_PORTS_PER_CONNECTION: usize =
    dcl_rpc_server::DEFAULT_MAX_PORTS_PER_CONNECTION;
/// Default of `WS_MAX_STREAMS_PER_CONNECTION`.
pub const DEFAULT_WS_MAX_STREAMS_PER_CONNECTION: usize =
    dcl_rpc_server::DEFAULT_MAX_STREAMS_PER_CONNECTION;
/// Default of `WS_MAX_CALLS_PER_CONNECTION`.
pub const DEFAULT_WS_MAX_CALLS_PER_CONNECTION: usize =
    dcl_rpc_server::DEFAULT_MAX_CALLS_PER_CONNECTION;
/// Default of `SOCIAL_CACHE_TTL_SECONDS`.
pub const DEFAULT_CACHE_TTL_SECS: u64 = 60;
/// Default of `SOCIAL_PRESENCE_TTL_SECONDS`.
pub const DEFAULT_PRESENCE_TTL_SECS: u64 = 30;

/// Social service settings (the variable each comes from in parentheses).
#[derive(Debug, Clone)]
pub struct SocialConfig {
    /// Interface to listen on (`HTTP_SERVER_HOST`).
    pub host: String,
    /// TCP port for HTTP and the dcl-rpc WebSocket at `/` (`HTTP_SERVER_PORT`).
    pub port: u16,
    /// `postgres://…` or `sqlite://path` (`DATABASE_URL`).
    pub database_url: String,
    /// Redis for fanning updates out between instances (`REDIS_URL`). `None`: this instance
    /// only.
    pub redis_url: Option<String>,
    /// The gatekeeper, told about privacy changes (`COMMS_GATEKEEPER_URL`). `None`: privacy
    /// changes are only stored.
    pub gatekeeper_url: Option<String>,
    /// Bearer token for the gatekeeper (`COMMS_GATEKEEPER_AUTH_TOKEN`).
    pub gatekeeper_token: String,
    /// Catalyst lambdas URL for profile names and pictures (`CATALYST_LAMBDAS_URL`). `None`, or
    /// when it fails: the address is the name.
    pub catalyst_lambdas_url: Option<String>,
    /// Seconds a new WebSocket has to send its auth frame (`WS_AUTH_TIMEOUT_SECONDS`).
    pub ws_auth_timeout_secs: u64,
    /// Most simultaneous dcl-rpc connections (`WS_MAX_CONNECTIONS`).
    pub ws_max_connections: usize,
    /// Most open ports per connection (`WS_MAX_PORTS_PER_CONNECTION`).
    pub ws_max_ports_per_connection: usize,
    /// Most open update streams per connection (`WS_MAX_STREAMS_PER_CONNECTION`).
    pub ws_max_streams_per_connection: usize,
    /// Most unary calls in progress per connection (`WS_MAX_CALLS_PER_CONNECTION`).
    pub ws_max_calls_per_connection: usize,
    /// Seconds settings and friend lists stay in memory, 0 turns the cache off
    /// (`SOCIAL_CACHE_TTL_SECONDS`).
    pub cache_ttl_secs: u64,
    /// With Redis: seconds after which a silent instance counts as dead
    /// (`SOCIAL_PRESENCE_TTL_SECONDS`).
    pub presence_ttl_secs: u64,
    /// Seconds of each friendship/block rate-limit window, at least 1
    /// (`FRIENDSHIP_RATE_LIMIT_WINDOW_SECONDS`).
    pub friendship_rate_limit_window_secs: u64,
    /// Friendship actions, blocks and unblocks per user and window, 0: no limit
    /// (`FRIENDSHIP_RATE_LIMIT_PER_ACTOR`).
    pub friendship_rate_limit_per_actor: u64,
    /// Actions between two users per window, 0: no limit (`FRIENDSHIP_RATE_LIMIT_PER_PAIR`).
    pub friendship_rate_limit_per_pair: u64,
    /// HTTP server limits: header-read and idle timeouts, connection cap (WebSockets are not
    /// counted once upgraded).
    pub http: http_serve::HttpLimits,
}

impl SocialConfig {
    /// The friendship/block rate limits.
    pub fn friendship_rate_limits(&self) -> crate::ratelimit::Limits {
        crate::ratelimit::Limits {
            window: Duration::from_secs(self.friendship_rate_limit_window_secs.max(1)),
            per_actor: self.friendship_rate_limit_per_actor,
            per_pair: self.friendship_rate_limit_per_pair,
        }
    }

    /// Defaults for tests and embedding: loopback, port 0, the given database.
    pub fn new(database_url: &str) -> Self {
        SocialConfig {
            host: DEFAULT_HOST.into(),
            port: 0,
            database_url: database_url.into(),
            redis_url: None,
            gatekeeper_url: None,
            gatekeeper_token: String::new(),
            catalyst_lambdas_url: None,
            ws_auth_timeout_secs: DEFAULT_WS_AUTH_TIMEOUT_SECS,
            ws_max_connections: DEFAULT_WS_MAX_CONNECTIONS,
            ws_max_ports_per_connection: DEFAULT_WS_MAX_PORTS_PER_CONNECTION,
            ws_max_streams_per_connection: DEFAULT_WS_MAX_STREAMS_PER_CONNECTION,
            ws_max_calls_per_connection: DEFAULT_WS_MAX_CALLS_PER_CONNECTION,
            cache_ttl_secs: DEFAULT_CACHE_TTL_SECS,
            presence_ttl_secs: DEFAULT_PRESENCE_TTL_SECS,
            friendship_rate_limit_window_secs: crate::ratelimit::DEFAULT_WINDOW_SECS,
            friendship_rate_limit_per_actor: crate::ratelimit::DEFAULT_PER_ACTOR,
            friendship_rate_limit_per_pair: crate::ratelimit::DEFAULT_PER_PAIR,
            http: http_serve::HttpLimits::default(),
        }
    }
}
