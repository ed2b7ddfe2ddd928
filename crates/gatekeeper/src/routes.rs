//! The HTTP API: routes, handlers and the request-limit and metrics middleware.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};
use pchat_core::Privacy;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::error::ApiError;
use crate::livekit::RoomServiceError;
use crate::metrics::{Metrics, RequestLabels, RouteLabels};
use crate::privacy::PrivacyOrigin;

/// At most this many request headers.
pub const MAX_HEADERS: usize = 64;
/// At most this many bytes in one header value.
pub const MAX_HEADER_BYTES: usize = 8 * 1024;
/// At most this many bytes in all header names and values together.
pub const MAX_TOTAL_HEADER_BYTES: usize = 32 * 1024;
/// At most this many bytes in a request body.
pub const MAX_BODY_BYTES: usize = 4 * 1024;

/// The router with every route and middleware.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/private-messages/token", get(get_token))
        .route("/private-messages/token/{room}", get(get_room_token))
        .route(
            "/users/{address}/private-messages-privacy",
            patch(patch_privacy),
        )
        .route("/ping", get(|| async { "pong" }))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(limit_headers))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            record_metrics,
        ))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "Not found")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
}

/// Refuses requests with too many or too large headers (431) before any handler runs.
async fn limit_headers(req: Request, next: Next) -> Response {
    let headers = req.headers();
    if headers.len() > MAX_HEADERS {
        return ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!("Too many headers: at most {MAX_HEADERS} are accepted"),
        )
        .into_response();
    }
    let mut total = 0usize;
    for (name, value) in headers {
        if value.len() > MAX_HEADER_BYTES {
            return ApiError::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                format!("Header {name} is too large: at most {MAX_HEADER_BYTES} bytes"),
            )
            .into_response();
        }
        total += name.as_str().len() + value.len();
    }
    if total > MAX_TOTAL_HEADER_BYTES {
        return ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!("Headers are too large: at most {MAX_TOTAL_HEADER_BYTES} bytes in all"),
        )
        .into_response();
    }
    next.run(req).await
}

/// The `method` label: the standard methods by name, any other (extension) method as `other`,
/// so that clients cannot add label values (and memory) at will. Paths are labelled by route
/// pattern, and every path no route matches as `unmatched`.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

async fn record_metrics(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = method_label(req.method()).to_owned();
    let started = Instant::now();
    let resp = next.run(req).await;
    let m: &Metrics = &state.metrics;
    m.latency
        .get_or_create(&RouteLabels {
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    m.requests
        .get_or_create(&RequestLabels {
            route,
            method,
            status: resp.status().as_u16(),
        })
        .inc();
    resp
}

#[derive(Serialize)]
struct AdapterBody {
    adapter: String,
    /// Which of the sharded rooms the token is for: only on `/private-messages/token/{k}` and,
    /// with more than one room, on `/private-messages/token` (extra fields, which the reference
    /// client, reading `adapter` alone, ignores). One room and the legacy path: the reference
    /// answer byte for byte.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    room: Option<RoomInfo>,
}

#[derive(Serialize)]
struct RoomInfo {
    /// The LiveKit room's name.
    room: String,
    /// Its index, `0..room_count`.
    room_index: u32,
    /// K, how many rooms the players are spread over.
    room_count: u32,
}

/// `GET /private-messages/token` (docs/wire.md §2): a token for room 0, the reference's room.
async fn get_token(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    token(state, method, uri, headers, None).await
}

/// `GET /private-messages/token/{k}`: a token for room k of the sharded rooms
/// (docs/sharded-rooms.md). The index is part of the signed path, so a signature made for one
/// room cannot be replayed for another.
async fn get_room_token(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path(room): Path<String>,
) -> Result<Response, ApiError> {
    token(state, method, uri, headers, Some(room)).await
}

async fn token(
    state: Arc<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    room: Option<String>,
) -> Result<Response, ApiError> {
    let verified = state
        .authenticate(&headers, method.as_str(), uri.path())
        .await?;
    let address = verified.address;
    // The session key of end-to-end encryption, if the client sent one: part of the signed
    // metadata, so it is the wallet's (docs/e2ee.md). Checked, copied into the token, never kept.
    let chat_key =
        pchat_core::chat_key::ChatKey::from_metadata(&verified.metadata).map_err(|e| {
            state.metrics.bad_chat_keys.inc();
            ApiError::bad_request(e.to_string())
        })?;
    let rooms = state.tokens.rooms();
    let index = match &room {
        None => 0,
        Some(text) => rooms
            .parse(text)
            .map_err(|e| ApiError::bad_request(e.to_string()))?,
    };

    if state.denylist.contains(&address) {
        state.metrics.denied.inc();
        return Err(ApiError::unauthorized("Access denied, deny-listed wallet"));
    }

    let adapter_url = match &state.nodes {
        None => None,
        Some(nodes) => Some(nodes.pick(&address).ok_or_else(|| {
            state.metrics.no_livekit_node.inc();
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "No LiveKit node is available",
            )
        })?),
    };

    let (privacy, origin) = state.privacy.resolve(&address).await;
    match origin {
        PrivacyOrigin::LastKnown => Metrics::reason(&state.metrics.privacy_fallbacks, "last_known"),
        PrivacyOrigin::Default => Metrics::reason(&state.metrics.privacy_fallbacks, "default"),
        PrivacyOrigin::Source | PrivacyOrigin::Unconfigured => {}
    }

    let jwt = state
        .tokens
        .mint_in(&address, privacy, index, chat_key.as_ref())
        .map_err(|e| {
            tracing::error!(error = %e, "token minting failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Could not create the LiveKit token",
            )
        })?;
    state.metrics.tokens_issued.inc();
    if chat_key.is_some() {
        state.metrics.tokens_with_chat_key.inc();
    }
    tracing::debug!(%address, %privacy, room = index, e2ee = chat_key.is_some(), "token issued");
    let adapter = match adapter_url {
        Some(url) => crate::livekit::TokenMinter::adapter_at(url, &jwt),
        None => state.tokens.adapter(&jwt),
    };
    let room = (room.is_some() || rooms.count() > 1).then(|| RoomInfo {
        room: rooms.name(index),
        room_index: index,
        room_count: rooms.count(),
    });
    Ok(axum::Json(AdapterBody { adapter, room }).into_response())
}

#[derive(Deserialize)]
struct PrivacyPatch {
    private_messages_privacy: String,
}

/// `PATCH /users/:address/private-messages-privacy` (docs/wire.md §2).
async fn patch_privacy(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    if !state.bearer_matches(&headers) {
        return Err(ApiError::unauthorized(
            "Unauthorized: missing or invalid bearer token",
        ));
    }
    let Ok(Path(address)) = path else {
        return Err(ApiError::bad_request("Invalid address"));
    };
    let address = pchat_core::normalize_address(&address)
        .map_err(|_| ApiError::bad_request("Invalid address"))?;

    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("Request body too large: at most {MAX_BODY_BYTES} bytes"),
            )
        })?;
    let patch: PrivacyPatch = serde_json::from_slice(&bytes)
        .map_err(|_| ApiError::bad_request("Invalid request body"))?;
    let privacy: Privacy = patch
        .private_messages_privacy
        .parse()
        .map_err(|_| ApiError::bad_request("Invalid private_messages_privacy"))?;

    let result = update_everywhere(&state, &address, &privacy.participant_metadata()).await;
    // Whatever LiveKit says, the next token for this user must carry the new value.
    state.privacy.remember(&address, privacy);
    match result {
        Ok(()) => {
            Metrics::reason(&state.metrics.metadata_updates, "ok");
            tracing::info!(%address, %privacy, "participant privacy updated");
            Ok(StatusCode::NO_CONTENT)
        }
        Err(RoomServiceError::NotFound) => {
            Metrics::reason(&state.metrics.metadata_updates, "not_connected");
            Err(ApiError::bad_request(pchat_core::PARTICIPANT_NOT_CONNECTED))
        }
        Err(RoomServiceError::Unavailable(e)) => {
            Metrics::reason(&state.metrics.metadata_updates, "unavailable");
            tracing::error!(error = %e, "LiveKit unreachable");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "LiveKit is unreachable; the privacy update was not applied",
            ))
        }
        Err(RoomServiceError::Other(e)) => {
            Metrics::reason(&state.metrics.metadata_updates, "error");
            tracing::error!(error = %e, "LiveKit UpdateParticipant failed");
            Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                format!("LiveKit refused the update: {e}"),
            ))
        }
    }
}

/// Updates `address`'s metadata in every room (one RoomService call per room, at once; one
/// call with one room). A player is in its home room and in any it joined to write to someone,
/// which the gatekeeper does not track (it would not survive a restart nor be shared between
/// instances), so every room is asked; not being in a room is not an error. The answer: the
/// worst failure if any call failed (the caller may retry: the update is idempotent), else `Ok`
/// if the participant was found in at least one room, else [`RoomServiceError::NotFound`].
async fn update_everywhere(
    state: &AppState,
    address: &str,
    metadata: &str,
) -> Result<(), RoomServiceError> {
    let rooms = state.tokens.rooms();
    let calls = rooms.names().map(|room| async move {
        state
            .room_service
            .update_participant_metadata(&room, address, metadata)
            .await
    });
    let results = futures_util::future::join_all(calls).await;
    let mut found = false;
    let mut failure: Option<RoomServiceError> = None;
    for result in results {
        match result {
            Ok(()) => found = true,
            Err(RoomServiceError::NotFound) => {}
            Err(e @ RoomServiceError::Unavailable(_)) => failure = Some(e),
            Err(e @ RoomServiceError::Other(_)) => {
                if !matches!(failure, Some(RoomServiceError::Unavailable(_))) {
                    failure = Some(e);
                }
            }
        }
    }
    match (failure, found) {
        (Some(e), _) => Err(e),
        (None, true) => Ok(()),
        (None, false) => Err(RoomServiceError::NotFound),
    }
}

#[derive(Serialize)]
struct StatusBody {
    version: &'static str,
    uptime_seconds: u64,
    current_time: String,
}

async fn status(State(state): State<Arc<AppState>>) -> axum::Json<StatusBody> {
    axum::Json(StatusBody {
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: state.started.elapsed().as_secs(),
        current_time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    })
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    state.metrics.denylist_size.set(state.denylist.len() as i64);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

impl AppState {
    /// Verifies the signed-fetch headers with the explorer-signer rule, counting failures.
    pub(crate) async fn authenticate(
        &self,
        headers: &HeaderMap,
        method: &str,
        path: &str,
    ) -> Result<authchain::VerifiedRequest, ApiError> {
        let get = |name: &str| {
            headers
                .get(name)
                .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
        };
        let result = match authchain::SignedHeaders::parse(get) {
            Ok(parsed) => {
                self.verifier
                    .verify_request(
                        &parsed,
                        method,
                        path,
                        authchain::now_ms(),
                        Some(&authchain::explorer_signer_rule),
                    )
                    .await
            }
            Err(e) => Err(e),
        };
        result.map_err(|e| {
            Metrics::reason(&self.metrics.auth_failures, e.reason());
            tracing::debug!(error = %e, "signed fetch refused");
            ApiError::from(e)
        })
    }

    fn bearer_matches(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return false;
        };
        let value = value.as_bytes();
        let token = value
            .strip_prefix(b"Bearer ")
            .or_else(|| value.strip_prefix(b"bearer "))
            .unwrap_or(b"");
        !self.auth_token.is_empty() && bool::from(token.ct_eq(self.auth_token.as_bytes()))
    }
}
