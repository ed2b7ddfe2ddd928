//! The social service of private chat: friendships, blocks and privacy settings, persisted in
//! PostgreSQL or SQLite, served to clients over dcl-rpc on a WebSocket (wire-compatible with
//! Decentraland's `SocialService` v2) and to the gatekeeper over HTTP.
//!
//! Layers: `social-core` (rules) → `social-store` (database) → [`data`] (the store behind its
//! cache: every write invalidates) → [`service`] (procedures, updates, the gatekeeper) → this module (HTTP routes, the WebSocket auth frame) → `pchat social`.

pub mod bus;
pub mod cache;
pub mod config;
pub mod data;
pub mod gatekeeper;
pub mod metrics;
pub mod presence;
pub mod profiles;
pub mod ratelimit;
pub mod service;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use dcl_rpc_server::{
    AuthRefused, Authenticator, CallContext, ConnectionHooks, RpcServer, ServerConfig,
};
use serde_json::json;

pub use config::SocialConfig;
use gatekeeper::{GatekeeperNotifier, HttpGatekeeper, NoGatekeeper};
use service::Social;

/// Checks the first WebSocket frame: the signed-fetch headers of `GET /` as a JSON object,
/// within ±300 s, scene signers refused.
pub struct AuthFrame {
    verifier: authchain::Verifier,
}

impl Default for AuthFrame {
    fn default() -> Self {
        AuthFrame {
            verifier: authchain::Verifier::new()
                .with_window(Duration::from_secs(300))
                .with_delegation_cache(10_000),
        }
    }
}

/// Why an auth frame is refused (logged; the client sees close code 3003).
#[derive(Debug, thiserror::Error)]
pub enum AuthFrameError {
    #[error("auth frame is not JSON: {0}")]
    NotJson(#[from] serde_json::Error),
    #[error("auth frame is not a JSON object")]
    NotObject,
    #[error(transparent)]
    Refused(#[from] authchain::AuthError),
}

impl AuthFrame {
    /// The caller's address, if the frame's signed-fetch headers verify.
    async fn check(&self, frame: &str) -> Result<String, AuthFrameError> {
        let value: serde_json::Value = serde_json::from_str(frame)?;
        let object = value.as_object().ok_or(AuthFrameError::NotObject)?;
        let headers: HashMap<String, String> = object
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.to_ascii_lowercase(), s.to_owned())))
            .collect();
        let parsed = authchain::SignedHeaders::parse(|n| headers.get(n).map(String::as_str))?;
        let verified = self
            .verifier
            .verify_request(
                &parsed,
                "get",
                "/",
                authchain::now_ms(),
                Some(&authchain::not_scene_signer_rule),
            )
            .await?;
        Ok(verified.address)
    }
}

#[async_trait]
impl Authenticator for AuthFrame {
    async fn authenticate(&self, frame: &str) -> Result<String, AuthRefused> {
        self.check(frame).await.map_err(AuthRefused::new)
    }
}

/// Tells the presence tracker ([`presence::Presence`]) when a dcl-rpc connection opens and closes.
struct PresenceHooks(Arc<Social>);

#[async_trait]
impl ConnectionHooks for PresenceHooks {
    async fn connected(&self, ctx: &CallContext) {
        self.0.connected(&ctx.address).await;
    }
    async fn disconnected(&self, ctx: &CallContext) {
        self.0.disconnected(&ctx.address).await;
    }
}

/// The running service's parts.
pub struct App {
    pub social: Arc<Social>,
    pub rpc: RpcServer,
    pub metrics: metrics::Metrics,
    /// Bounds of the HTTP server ([`serve`]).
    pub http: http_serve::HttpLimits,
    started: Instant,
}

/// Errors building the service.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Store(#[from] social_store::StoreError),
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl App {
    /// Connects the database and wires everything from the configuration.
    pub async fn build(config: &SocialConfig) -> Result<Arc<App>, BuildError> {
        let gatekeeper: Arc<dyn GatekeeperNotifier> = match &config.gatekeeper_url {
            Some(url) if !url.trim().is_empty() => Arc::new(
                HttpGatekeeper::new(url, &config.gatekeeper_token, Duration::from_secs(5))
                    .map_err(|e| BuildError::Config(e.to_string()))?,
            ),
            _ => Arc::new(NoGatekeeper),
        };
        Self::build_with(config, gatekeeper).await
    }

    /// Like [`App::build`] with a chosen gatekeeper notifier.
    pub async fn build_with(
        config: &SocialConfig,
        gatekeeper: Arc<dyn GatekeeperNotifier>,
    ) -> Result<Arc<App>, BuildError> {
        let store = social_store::Store::connect(&config.database_url).await?;
        let bus = match config.redis_url.as_deref().filter(|u| !u.trim().is_empty()) {
            Some(url) => bus::Bus::with_redis(url)
                .await
                .map_err(|e| BuildError::Config(format!("REDIS_URL: {e}")))?,
            None => bus::Bus::default(),
        };
        let cache = Arc::new(cache::ReadCache::new(
            Duration::from_secs(config.cache_ttl_secs),
            cache::SETTINGS_CAPACITY,
            cache::FRIENDS_CAPACITY,
        ));
        let profiles: Arc<dyn profiles::ProfileSource> = match config
            .catalyst_lambdas_url
            .as_deref()
            .filter(|u| !u.trim().is_empty())
        {
            Some(url) => Arc::new(
                profiles::LambdasProfiles::new(url)
                    .map_err(|e| BuildError::Config(e.to_string()))?,
            ),
            None => Arc::new(profiles::DerivedProfiles),
        };
        let presence = match config.redis_url.as_deref().filter(|u| !u.trim().is_empty()) {
            Some(url) => {
                presence::Presence::with_redis(url, Duration::from_secs(config.presence_ttl_secs))
                    .await
                    .map_err(|e| BuildError::Config(format!("REDIS_URL: {e}")))?
            }
            None => presence::Presence::default(),
        };
        let limiter = match config.redis_url.as_deref().filter(|u| !u.trim().is_empty()) {
            Some(url) => {
                ratelimit::FriendshipLimiter::with_redis(url, config.friendship_rate_limits())
                    .map_err(|e| BuildError::Config(format!("REDIS_URL: {e}")))?
            }
            None => ratelimit::FriendshipLimiter::in_memory(config.friendship_rate_limits()),
        };
        let social = Arc::new(
            Social::new(store, bus, gatekeeper, cache, profiles, presence).with_limiter(limiter),
        );
        social.spawn_cache_listener();
        social.spawn_presence_upkeep();
        let rpc = RpcServer::builder(
            Arc::new(AuthFrame::default()),
            ServerConfig {
                auth_timeout: Duration::from_secs(config.ws_auth_timeout_secs),
                max_connections: config.ws_max_connections,
                max_ports_per_connection: config.ws_max_ports_per_connection,
                max_streams_per_connection: config.ws_max_streams_per_connection,
                max_calls_per_connection: config.ws_max_calls_per_connection,
                ..ServerConfig::default()
            },
        )
        .with_module(social.module())
        .with_hooks(Arc::new(PresenceHooks(social.clone())))
        .build();
        let started = Instant::now();
        Ok(Arc::new(App {
            metrics: metrics::Metrics::new(social.clone(), rpc.clone(), started),
            social,
            rpc,
            http: config.http.clone(),
            started,
        }))
    }

    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/", get(ws_upgrade))
            .route(
                "/v1/users/{address}/privacy-settings",
                get(privacy_settings),
            )
            .route("/ping", get(|| async { "pong" }))
            .route("/status", get(status))
            .route("/metrics", get(metrics))
            .with_state(self.clone())
    }
}

async fn ws_upgrade(State(app): State<Arc<App>>, ws: WebSocketUpgrade) -> Response {
    app.rpc.upgrade(ws)
}

async fn privacy_settings(State(app): State<Arc<App>>, Path(address): Path<String>) -> Response {
    let Ok(address) = pchat_core::normalize_address(&address) else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "Invalid address"})),
        )
            .into_response();
    };
    // A failed read is a 500 (never the default `all`): the gatekeeper then falls back to the
    // last value it had for this user.
    match app.social.settings_for(&address).await {
        Ok(s) => {
            axum::Json(json!({"private_messages_privacy": s.private_messages_privacy.as_str()}))
                .into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "privacy settings lookup failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(json!({"error": "Internal server error"})),
            )
                .into_response()
        }
    }
}

async fn status(State(app): State<Arc<App>>) -> Response {
    axum::Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": app.started.elapsed().as_secs(),
        "connections": app.rpc.connections(),
        "streams": app.rpc.active_streams(),
    }))
    .into_response()
}

/// `GET /metrics`: the OpenMetrics text of [`metrics::Metrics`].
async fn metrics(State(app): State<Arc<App>>) -> Response {
    match app.metrics.encode() {
        Ok(text) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "metrics encoding failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(json!({"error": "Internal server error"})),
            )
                .into_response()
        }
    }
}

/// Serves HTTP and the WebSocket on `listener` within `app.http` (header-read and idle timeouts,
/// connection cap: see the `http-serve` crate; an upgraded WebSocket leaves those bounds) until
/// `shutdown`; open WebSockets are then closed with 1001.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let rpc = app.rpc.clone();
    let router = app.router();
    let shutdown = async move {
        shutdown.await;
        rpc.shutdown();
    };
    http_serve::serve(
        listener,
        router,
        &app.http,
        app.metrics.serve.clone(),
        shutdown,
    )
    .await
}
