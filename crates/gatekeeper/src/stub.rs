//! A stand-in for the social service's privacy endpoint, for local runs and benchmarks:
//! `GET /v1/users/:address/privacy-settings` answers from an in-memory map (default `all`), and
//! `PUT` with `{"private_messages_privacy":…}` sets a value. Not for production.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use pchat_core::Privacy;
use serde_json::json;

/// The stub's state: privacy per lower-case address.
#[derive(Default, Clone)]
pub struct PrivacyStub {
    values: Arc<RwLock<HashMap<String, Privacy>>>,
}

impl PrivacyStub {
    pub fn set(&self, address: &str, privacy: Privacy) {
        if let Ok(mut map) = self.values.write() {
            map.insert(address.to_lowercase(), privacy);
        }
    }

    fn get(&self, address: &str) -> Privacy {
        self.values
            .read()
            .ok()
            .and_then(|m| m.get(address).copied())
            .unwrap_or_default()
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/v1/users/{address}/privacy-settings", get(read).put(write))
            .route("/ping", get(|| async { "pong" }))
            .with_state(self.clone())
    }

    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
    }
}

async fn read(State(stub): State<PrivacyStub>, Path(address): Path<String>) -> Response {
    match pchat_core::normalize_address(&address) {
        Ok(a) => axum::Json(json!({ "private_messages_privacy": stub.get(&a) })).into_response(),
        Err(_) => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "Invalid address"})),
        )
            .into_response(),
    }
}

async fn write(
    State(stub): State<PrivacyStub>,
    Path(address): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let Ok(a) = pchat_core::normalize_address(&address) else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "Invalid address"})),
        )
            .into_response();
    };
    let value = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            v.get("private_messages_privacy")?
                .as_str()?
                .parse::<Privacy>()
                .ok()
        });
    match value {
        Some(p) => {
            stub.set(&a, p);
            StatusCode::NO_CONTENT.into_response()
        }
        None => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "Invalid body"})),
        )
            .into_response(),
    }
}
