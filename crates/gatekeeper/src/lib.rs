//! The gatekeeper of private chat (ADR-208): it hands out LiveKit tokens for the shared
//! private-messages room and keeps each participant's privacy metadata current.
//!
//! - `GET /private-messages/token`: a signed-fetch request (ADR-44, explorer signer) gets
//!   `{"adapter":"livekit:<url>?access_token=<jwt>"}`; the token carries
//!   `{"private_messages_privacy":…}` as participant metadata, read from the social service.
//!   With K > 1 private-messages rooms (`PRIVATE_MESSAGES_ROOM_SHARDS`, docs/sharded-rooms.md)
//!   that token is for room 0 and the answer also says `room`, `room_index` and `room_count`;
//!   `GET /private-messages/token/{k}` asks for room k (the index is in the signed path).
//! - `PATCH /users/:address/private-messages-privacy`: the social service (bearer token) changes
//!   a connected participant's metadata through LiveKit's RoomService, in every room.
//! - `GET /ping`, `GET /status`, `GET /metrics`.
//!
//! Layout: [`config`] (the settings and their defaults; `pchat gatekeeper` reads them),
//! [`routes`] (HTTP), [`livekit`] (tokens and the [`livekit::RoomService`] boundary),
//! [`privacy`] (the [`privacy::PrivacySource`] boundary and fallbacks), [`denylist`],
//! [`metrics`], [`error`] (the error policy), [`stub`] (a stand-in privacy source for local runs
//! and benchmarks).
//!
//! [`serve`] takes an already-bound listener and a shutdown future, so tests bind port 0.

pub mod config;
pub mod denylist;
pub mod error;
pub mod livekit;
pub mod metrics;
pub mod nodes;
pub mod privacy;
pub mod routes;
pub mod stub;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use authchain::Verifier;

pub use config::GatekeeperConfig;
use denylist::{DenyList, DenyListSource};
use livekit::{ClusterRoomService, LiveKitRoomService, RoomService, TokenMinter};
use metrics::Metrics;
use privacy::{PrivacyResolver, PrivacySource, SocialServicePrivacy};

/// Everything a request handler needs.
pub struct AppState {
    pub verifier: Verifier,
    pub denylist: Arc<DenyList>,
    pub privacy: PrivacyResolver,
    pub room_service: Arc<dyn RoomService>,
    pub tokens: TokenMinter,
    /// The LiveKit cluster's nodes handed out to clients (`None`: `tokens`' one URL).
    pub nodes: Option<Arc<nodes::Nodes>>,
    pub auth_token: String,
    pub metrics: Arc<Metrics>,
    pub started: Instant,
    /// Bounds of the HTTP server ([`serve`]).
    pub http: http_serve::HttpLimits,
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for AppState {
    fn drop(&mut self) {
        for task in &self.background {
            task.abort();
        }
    }
}

/// Errors building the gatekeeper from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// Builds an [`AppState`]: real implementations by default, any boundary replaceable.
pub struct Builder {
    config: GatekeeperConfig,
    room_service: Option<Arc<dyn RoomService>>,
    privacy_source: Option<Arc<dyn PrivacySource>>,
}

impl Builder {
    pub fn new(config: GatekeeperConfig) -> Self {
        Builder {
            config,
            room_service: None,
            privacy_source: None,
        }
    }

    /// Replaces the LiveKit RoomService (tests).
    pub fn room_service(mut self, rs: Arc<dyn RoomService>) -> Self {
        self.room_service = Some(rs);
        self
    }

    /// Replaces the privacy source (tests).
    pub fn privacy_source(mut self, ps: Arc<dyn PrivacySource>) -> Self {
        self.privacy_source = Some(ps);
        self
    }

    /// Builds the state and starts its background tasks (deny-list refresh). Needs a Tokio
    /// runtime.
    pub fn build(self) -> Result<Arc<AppState>, BuildError> {
        let c = self.config;
        for (name, value) in [
            ("PROD_LIVEKIT_HOST", &c.livekit_host),
            ("PROD_LIVEKIT_API_KEY", &c.livekit_api_key),
            ("PROD_LIVEKIT_API_SECRET", &c.livekit_api_secret),
            ("COMMS_GATEKEEPER_AUTH_TOKEN", &c.auth_token),
        ] {
            if value.trim().is_empty() {
                return Err(BuildError::Config(format!("{name} must not be empty")));
            }
        }
        url::Url::parse(&c.livekit_host).map_err(|e| {
            BuildError::Config(format!("PROD_LIVEKIT_HOST {:?}: {e}", c.livekit_host))
        })?;
        let rooms = pchat_core::rooms::RoomShards::new(&c.room, u64::from(c.room_shards))
            .map_err(|e| BuildError::Config(format!("PRIVATE_MESSAGES_ROOM_SHARDS: {e}")))?;

        let metrics = Arc::new(Metrics::new());
        let mut verifier = Verifier::new()
            .with_window(Duration::from_secs(c.window_secs))
            .with_delegation_cache(100_000);
        if let Some(url) = &c.catalyst_lambdas_url {
            let v = authchain::catalyst::CatalystValidator::new(url, Duration::from_secs(10))
                .map_err(|e| BuildError::Config(format!("CATALYST_LAMBDAS_URL: {e}")))?;
            verifier = verifier.with_contract_wallet_validator(Arc::new(v));
        }

        let privacy_source: Option<Arc<dyn PrivacySource>> =
            match (self.privacy_source, &c.social_service_url) {
                (Some(ps), _) => Some(ps),
                (None, Some(url)) if !url.trim().is_empty() => Some(Arc::new(
                    SocialServicePrivacy::new(url, Duration::from_millis(c.social_timeout_ms))
                        .map_err(|e| BuildError::Config(format!("SOCIAL_SERVICE_URL: {e}")))?,
                )),
                _ => {
                    tracing::warn!("SOCIAL_SERVICE_URL is not set: every user gets privacy 'all'");
                    None
                }
            };

        let mut checks = None;
        let nodes = if c.livekit_node_urls.is_empty() {
            None
        } else {
            let nodes = Arc::new(
                nodes::Nodes::new(&c.livekit_node_urls)
                    .map_err(|e| BuildError::Config(e.to_string()))?,
            );
            checks = Some(nodes::spawn_checks(
                &nodes,
                Duration::from_millis(c.node_check_interval_ms),
            ));
            Some(nodes)
        };

        let livekit_timeout = Duration::from_millis(c.livekit_timeout_ms);
        let room_service: Arc<dyn RoomService> = match (self.room_service, &nodes) {
            (Some(rs), _) => rs,
            (None, Some(nodes)) => Arc::new(ClusterRoomService::new(
                nodes.clone(),
                &c.livekit_api_key,
                &c.livekit_api_secret,
                livekit_timeout,
            )),
            (None, None) => Arc::new(LiveKitRoomService::new(
                &c.livekit_host,
                &c.livekit_api_key,
                &c.livekit_api_secret,
                livekit_timeout,
            )),
        };

        let denylist = Arc::new(DenyList::default());
        let mut background: Vec<_> = checks.into_iter().collect();
        if let Some(location) = c.denylist_url.as_deref().filter(|s| !s.trim().is_empty()) {
            let source =
                DenyListSource::new(location).map_err(|e| BuildError::Config(e.to_string()))?;
            let m = metrics.clone();
            background.push(denylist::spawn_refresh(
                &denylist,
                source,
                Duration::from_secs(c.denylist_refresh_secs),
                move |r| match r {
                    Ok(n) => {
                        m.denylist_size.set(n as i64);
                    }
                    Err(_) => {
                        m.denylist_refresh_failures.inc();
                    }
                },
            ));
        }

        Ok(Arc::new(AppState {
            verifier,
            denylist,
            privacy: PrivacyResolver::new(privacy_source, 100_000),
            room_service,
            tokens: TokenMinter::sharded(
                &c.livekit_host,
                &c.livekit_api_key,
                &c.livekit_api_secret,
                rooms,
                c.token_ttl(),
            ),
            nodes,
            auth_token: c.auth_token.clone(),
            metrics,
            started: Instant::now(),
            http: c.http.clone(),
            background,
        }))
    }
}

/// Serves the gatekeeper on `listener` within `state.http` (header-read and idle timeouts,
/// connection cap: see the `http-serve` crate) until `shutdown` completes, then drains
/// in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = state.http.clone();
    let metrics = state.metrics.serve.clone();
    http_serve::serve(listener, routes::router(state), &limits, metrics, shutdown).await
}
