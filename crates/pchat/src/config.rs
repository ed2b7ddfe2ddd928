//! The services' command lines: `pchat gatekeeper` and `pchat social` read their settings from
//! flags and environment variables (the reference services' names, docs FACTS §2), and `--help`
//! lists each with its default. The libraries take plain structs ([`gatekeeper::GatekeeperConfig`],
//! [`social::SocialConfig`], [`http_serve::HttpLimits`]) and know nothing of clap; the defaults
//! are theirs (`DEFAULT_…` constants), written once and referenced here, so `--help`, the
//! service and the library's `new()` for tests cannot disagree.

use gatekeeper::config as gk;
use http_serve as hs;
use social::config as sc;
use social::ratelimit as rl;

/// Flags and variables of `pchat gatekeeper`.
#[derive(Debug, Clone, clap::Args)]
pub struct GatekeeperArgs {
    /// Interface to listen on (use 0.0.0.0 to accept remote clients).
    #[arg(long, env = "HTTP_SERVER_HOST", default_value = gk::DEFAULT_HOST)]
    pub host: String,

    /// TCP port to listen on.
    #[arg(long, env = "HTTP_SERVER_PORT", default_value_t = gk::DEFAULT_PORT)]
    pub port: u16,

    /// Name of the shared LiveKit room for private messages.
    #[arg(long, env = "PRIVATE_MESSAGES_ROOM_ID", default_value = gk::DEFAULT_ROOM)]
    pub room: String,

    /// How many private-messages rooms the players are spread over (1 to 64; docs/sharded-rooms.md):
    /// room 0 is PRIVATE_MESSAGES_ROOM_ID, room k is `{PRIVATE_MESSAGES_ROOM_ID}-{k}`. 1: the one
    /// room of ADR-208.
    #[arg(long, env = "PRIVATE_MESSAGES_ROOM_SHARDS", default_value_t = gk::DEFAULT_ROOM_SHARDS,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(pchat_core::rooms::MAX_ROOM_SHARDS)))]
    pub room_shards: u32,

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
    #[arg(long, env = "DENYLIST_REFRESH_SECONDS", default_value_t = gk::DEFAULT_DENYLIST_REFRESH_SECS)]
    pub denylist_refresh_secs: u64,

    /// Timeout of one privacy lookup at the social service, in milliseconds.
    #[arg(long, env = "SOCIAL_SERVICE_TIMEOUT_MS", default_value_t = gk::DEFAULT_SOCIAL_TIMEOUT_MS)]
    pub social_timeout_ms: u64,

    /// Timeout of one LiveKit RoomService call, in milliseconds.
    #[arg(long, env = "LIVEKIT_TIMEOUT_MS", default_value_t = gk::DEFAULT_LIVEKIT_TIMEOUT_MS)]
    pub livekit_timeout_ms: u64,

    /// Signed-fetch time window (past and future), in seconds.
    #[arg(long, env = "SIGNED_FETCH_WINDOW_SECONDS", default_value_t = gk::DEFAULT_WINDOW_SECS)]
    pub window_secs: u64,

    /// Catalyst lambdas URL used to validate contract-wallet (EIP-1654) chains. Unset: refused.
    #[arg(long, env = "CATALYST_LAMBDAS_URL")]
    pub catalyst_lambdas_url: Option<String>,

    /// Lifetime of the LiveKit tokens, in seconds.
    #[arg(long, env = "TOKEN_TTL_SECONDS", default_value_t = gk::DEFAULT_TOKEN_TTL_SECS)]
    pub token_ttl_secs: u64,

    /// The nodes of a LiveKit cluster (ws/wss/http/https URLs, comma-separated) handed out to
    /// clients instead of PROD_LIVEKIT_HOST: each client gets the node its address prefers while
    /// that node passes its health check (`GET /`), else the next healthy one.
    #[arg(long, env = "LIVEKIT_NODE_URLS", value_delimiter = ',')]
    pub livekit_node_urls: Vec<String>,

    /// How often each LiveKit cluster node is health-checked, in milliseconds.
    #[arg(long, env = "LIVEKIT_NODE_CHECK_INTERVAL_MS", default_value_t = gk::DEFAULT_NODE_CHECK_INTERVAL_MS)]
    pub node_check_interval_ms: u64,

    /// HTTP server limits: header-read and idle timeouts, connection cap.
    #[command(flatten)]
    pub http: HttpLimitsArgs,
}

impl From<GatekeeperArgs> for gatekeeper::GatekeeperConfig {
    fn from(a: GatekeeperArgs) -> Self {
        gatekeeper::GatekeeperConfig {
            host: a.host,
            port: a.port,
            room: a.room,
            room_shards: a.room_shards,
            livekit_host: a.livekit_host,
            livekit_api_key: a.livekit_api_key,
            livekit_api_secret: a.livekit_api_secret,
            social_service_url: a.social_service_url,
            auth_token: a.auth_token,
            denylist_url: a.denylist_url,
            denylist_refresh_secs: a.denylist_refresh_secs,
            social_timeout_ms: a.social_timeout_ms,
            livekit_timeout_ms: a.livekit_timeout_ms,
            window_secs: a.window_secs,
            catalyst_lambdas_url: a.catalyst_lambdas_url,
            token_ttl_secs: a.token_ttl_secs,
            livekit_node_urls: a.livekit_node_urls,
            node_check_interval_ms: a.node_check_interval_ms,
            http: a.http.into(),
        }
    }
}

/// Flags and variables of `pchat social`.
#[derive(Debug, Clone, clap::Args)]
pub struct SocialArgs {
    /// Interface to listen on (use 0.0.0.0 to accept remote clients).
    #[arg(long, env = "HTTP_SERVER_HOST", default_value = sc::DEFAULT_HOST)]
    pub host: String,

    /// TCP port for HTTP and the dcl-rpc WebSocket (at `/`).
    #[arg(long, env = "HTTP_SERVER_PORT", default_value_t = sc::DEFAULT_PORT)]
    pub port: u16,

    /// `postgres://…` or `sqlite://path`. Default: a SQLite file in the working directory.
    #[arg(long, env = "DATABASE_URL", default_value = sc::DEFAULT_DATABASE_URL)]
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
    #[arg(long, env = "WS_AUTH_TIMEOUT_SECONDS", default_value_t = sc::DEFAULT_WS_AUTH_TIMEOUT_SECS)]
    pub ws_auth_timeout_secs: u64,

    /// Most simultaneous dcl-rpc connections; one more is closed with 1013 at once.
    #[arg(long, env = "WS_MAX_CONNECTIONS", default_value_t = sc::DEFAULT_WS_MAX_CONNECTIONS)]
    pub ws_max_connections: usize,

    /// Most open ports per connection (CREATE_PORT beyond: REMOTE_ERROR_RESPONSE).
    #[arg(long, env = "WS_MAX_PORTS_PER_CONNECTION", default_value_t = sc::DEFAULT_WS_MAX_PORTS_PER_CONNECTION)]
    pub ws_max_ports_per_connection: usize,

    /// Most open update streams per connection (one more: REMOTE_ERROR_RESPONSE).
    #[arg(long, env = "WS_MAX_STREAMS_PER_CONNECTION", default_value_t = sc::DEFAULT_WS_MAX_STREAMS_PER_CONNECTION)]
    pub ws_max_streams_per_connection: usize,

    /// Most unary calls in progress at once per connection (one more: REMOTE_ERROR_RESPONSE).
    #[arg(long, env = "WS_MAX_CALLS_PER_CONNECTION", default_value_t = sc::DEFAULT_WS_MAX_CALLS_PER_CONNECTION)]
    pub ws_max_calls_per_connection: usize,

    /// Seconds settings and friend lists stay in memory (0 turns the cache off). Changes drop
    /// them at once on every instance; this bounds staleness only if Redis loses a message.
    #[arg(long, env = "SOCIAL_CACHE_TTL_SECONDS", default_value_t = sc::DEFAULT_CACHE_TTL_SECS)]
    pub cache_ttl_secs: u64,

    /// With REDIS_URL: seconds after which an instance that stopped refreshing its liveness
    /// counts as dead, and its users as offline (refreshed every third of it).
    #[arg(long, env = "SOCIAL_PRESENCE_TTL_SECONDS", default_value_t = sc::DEFAULT_PRESENCE_TTL_SECS)]
    pub presence_ttl_secs: u64,

    /// Seconds of each friendship/block rate-limit window (fixed, opened by a counter's first
    /// action). The counters live in Redis with REDIS_URL (shared by every instance), in memory
    /// otherwise; if Redis fails, actions are allowed.
    #[arg(long, env = "FRIENDSHIP_RATE_LIMIT_WINDOW_SECONDS", default_value_t = rl::DEFAULT_WINDOW_SECS, value_parser = clap::value_parser!(u64).range(1..))]
    pub friendship_rate_limit_window_secs: u64,

    /// Friendship actions, blocks and unblocks one user may make per window (0: no limit).
    #[arg(long, env = "FRIENDSHIP_RATE_LIMIT_PER_ACTOR", default_value_t = rl::DEFAULT_PER_ACTOR)]
    pub friendship_rate_limit_per_actor: u64,

    /// Per window: friendship actions between two users (either way), and blocks/unblocks of one
    /// user by another (0: no limit).
    #[arg(long, env = "FRIENDSHIP_RATE_LIMIT_PER_PAIR", default_value_t = rl::DEFAULT_PER_PAIR)]
    pub friendship_rate_limit_per_pair: u64,

    /// HTTP server limits: header-read and idle timeouts, connection cap (WebSockets are not
    /// counted once upgraded).
    #[command(flatten)]
    pub http: HttpLimitsArgs,
}

impl From<SocialArgs> for social::SocialConfig {
    fn from(a: SocialArgs) -> Self {
        social::SocialConfig {
            host: a.host,
            port: a.port,
            database_url: a.database_url,
            redis_url: a.redis_url,
            gatekeeper_url: a.gatekeeper_url,
            gatekeeper_token: a.gatekeeper_token,
            catalyst_lambdas_url: a.catalyst_lambdas_url,
            ws_auth_timeout_secs: a.ws_auth_timeout_secs,
            ws_max_connections: a.ws_max_connections,
            ws_max_ports_per_connection: a.ws_max_ports_per_connection,
            ws_max_streams_per_connection: a.ws_max_streams_per_connection,
            ws_max_calls_per_connection: a.ws_max_calls_per_connection,
            cache_ttl_secs: a.cache_ttl_secs,
            presence_ttl_secs: a.presence_ttl_secs,
            friendship_rate_limit_window_secs: a.friendship_rate_limit_window_secs,
            friendship_rate_limit_per_actor: a.friendship_rate_limit_per_actor,
            friendship_rate_limit_per_pair: a.friendship_rate_limit_per_pair,
            http: a.http.into(),
        }
    }
}

/// The HTTP server's limits, flattened into both services' flags (README "HTTP server limits").
#[derive(Debug, Clone, clap::Args)]
pub struct HttpLimitsArgs {
    /// Seconds a connection has to deliver a complete request head, counted from when it is
    /// ready for one (accepted, or its previous response sent); then it is closed.
    #[arg(long = "http-header-read-timeout-seconds", env = "HTTP_HEADER_READ_TIMEOUT_SECONDS", default_value_t = hs::DEFAULT_HEADER_READ_TIMEOUT_SECS, value_parser = seconds())]
    pub header_read_timeout_secs: u64,

    /// Seconds a connection with no request in progress may stay silent (a kept-alive
    /// connection between requests) before it is closed.
    #[arg(long = "http-idle-timeout-seconds", env = "HTTP_IDLE_TIMEOUT_SECONDS", default_value_t = hs::DEFAULT_IDLE_TIMEOUT_SECS, value_parser = seconds())]
    pub idle_timeout_secs: u64,

    /// Most HTTP connections held at once (upgraded WebSockets not counted). At the cap a new
    /// client gets in by closing the connection that has waited longest for a request. Keep it
    /// below the file-descriptor limit (`ulimit -n`).
    #[arg(long = "http-max-connections", env = "HTTP_MAX_CONNECTIONS", default_value_t = hs::DEFAULT_MAX_CONNECTIONS, value_parser = connections())]
    pub max_connections: u64,
}

/// The HTTP timeouts' range: 1 s to a day.
fn seconds() -> clap::builder::RangedU64ValueParser<u64> {
    clap::value_parser!(u64).range(1..=hs::MAX_TIMEOUT_SECS)
}

/// The connection cap's range: 1 to what the serving loop can count.
fn connections() -> clap::builder::RangedU64ValueParser<u64> {
    clap::value_parser!(u64).range(1..=hs::MAX_CONNECTIONS_LIMIT)
}

impl From<HttpLimitsArgs> for http_serve::HttpLimits {
    fn from(a: HttpLimitsArgs) -> Self {
        http_serve::HttpLimits {
            header_read_timeout_secs: a.header_read_timeout_secs,
            idle_timeout_secs: a.idle_timeout_secs,
            max_connections: a.max_connections,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Gatekeeper {
        #[command(flatten)]
        args: GatekeeperArgs,
    }

    #[derive(Parser)]
    struct Social {
        #[command(flatten)]
        args: SocialArgs,
    }

    #[test]
    fn the_flags_defaults_are_the_libraries_defaults() {
        let args = Gatekeeper::try_parse_from([
            "gatekeeper",
            "--livekit-host=ws://127.0.0.1:7880",
            "--livekit-api-key=k",
            "--livekit-api-secret=s",
            "--auth-token=t",
            "--port=0",
        ])
        .expect("parses")
        .args;
        assert_eq!(
            format!("{:?}", gatekeeper::GatekeeperConfig::from(args)),
            format!(
                "{:?}",
                gatekeeper::GatekeeperConfig::new("ws://127.0.0.1:7880", "k", "s", "t")
            )
        );

        let args = Social::try_parse_from(["social", "--database-url=sqlite://x", "--port=0"])
            .expect("parses")
            .args;
        assert_eq!(
            format!("{:?}", social::SocialConfig::from(args)),
            format!("{:?}", social::SocialConfig::new("sqlite://x"))
        );
    }
    #[test]
    fn the_room_count_is_bounded() {
        let parse = |k: &str| {
            Gatekeeper::try_parse_from([
                "gatekeeper",
                "--livekit-host=ws://127.0.0.1:7880",
                "--livekit-api-key=k",
                "--livekit-api-secret=s",
                "--auth-token=t",
                &format!("--room-shards={k}"),
            ])
            .map(|g| g.args.room_shards)
        };
        assert_eq!(parse("1").ok(), Some(1));
        assert_eq!(parse("64").ok(), Some(64));
        for bad in ["0", "65", "-1", "x"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
