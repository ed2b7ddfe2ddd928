//! Prometheus metrics, served as text at `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

/// Every metric of the gatekeeper.
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<RouteLabels, Histogram>,
    pub auth_failures: Family<ReasonLabels, Counter>,
    pub privacy_fallbacks: Family<ReasonLabels, Counter>,
    pub tokens_issued: Counter,
    /// Tokens that carry an end-to-end encryption session key (attribute `chat_key`).
    pub tokens_with_chat_key: Counter,
    /// Token requests refused because the signed metadata's `chat_key` is not a key.
    pub bad_chat_keys: Counter,
    pub denied: Counter,
    pub denylist_size: Gauge,
    pub denylist_refresh_failures: Counter,
    pub metadata_updates: Family<ReasonLabels, Counter>,
    /// Token requests refused because no LiveKit cluster node was healthy.
    pub no_livekit_node: Counter,
    /// The HTTP server's connections (`gatekeeper_http_connections…`).
    pub serve: http_serve::ServeMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("gatekeeper");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ])
        });
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            latency.clone(),
        );
        let auth_failures = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "auth_failures",
            "Signed-fetch failures by reason",
            auth_failures.clone(),
        );
        let privacy_fallbacks = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "privacy_fallbacks",
            "Tokens minted without a fresh answer from the social service (last_known or default)",
            privacy_fallbacks.clone(),
        );
        let tokens_issued = Counter::default();
        registry.register(
            "tokens_issued",
            "LiveKit tokens minted",
            tokens_issued.clone(),
        );
        let tokens_with_chat_key = Counter::default();
        registry.register(
            "tokens_with_chat_key",
            "LiveKit tokens minted with an end-to-end encryption session key (attribute chat_key)",
            tokens_with_chat_key.clone(),
        );
        let bad_chat_keys = Counter::default();
        registry.register(
            "bad_chat_keys",
            "Token requests refused because the signed metadata's chat_key is not 64 lower-case hex digits",
            bad_chat_keys.clone(),
        );
        let denied = Counter::default();
        registry.register(
            "denylisted_requests",
            "Token requests refused by the deny list",
            denied.clone(),
        );
        let denylist_size = Gauge::default();
        registry.register(
            "denylist_size",
            "Wallets on the deny list",
            denylist_size.clone(),
        );
        let denylist_refresh_failures = Counter::default();
        registry.register(
            "denylist_refresh_failures",
            "Failed deny-list refreshes",
            denylist_refresh_failures.clone(),
        );
        let metadata_updates = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "metadata_updates",
            "Privacy metadata updates sent to LiveKit, by outcome",
            metadata_updates.clone(),
        );
        let no_livekit_node = Counter::default();
        registry.register(
            "no_livekit_node",
            "Token requests refused because no LiveKit cluster node passed its health check",
            no_livekit_node.clone(),
        );
        let serve = http_serve::ServeMetrics::default();
        serve.register(&mut registry);
        Metrics {
            registry,
            requests,
            latency,
            auth_failures,
            privacy_fallbacks,
            tokens_issued,
            tokens_with_chat_key,
            bad_chat_keys,
            denied,
            denylist_size,
            denylist_refresh_failures,
            metadata_updates,
            no_livekit_node,
            serve,
        }
    }

    pub fn reason(family: &Family<ReasonLabels, Counter>, reason: &str) {
        family
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
