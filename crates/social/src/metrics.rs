//! Prometheus metrics at `/metrics`, encoded by prometheus-client (OpenMetrics text).
//!
//! The service's own figures live where they are kept (the dcl-rpc server, the read cache, the
//! update bus) and are read on each scrape by a collector; the HTTP server's connection figures
//! are counters of `http-serve`.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use dcl_rpc_server::RpcServer;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::service::Social;

/// Every metric of the social service, under the `social_` prefix.
pub struct Metrics {
    registry: Registry,
    /// The HTTP server's connections (`social_http_connections…`).
    pub serve: http_serve::ServeMetrics,
}

impl Metrics {
    pub fn new(social: Arc<Social>, rpc: RpcServer, started: Instant) -> Self {
        let mut registry = Registry::with_prefix("social");
        registry.register_collector(Box::new(Live {
            social,
            rpc,
            started,
        }));
        let serve = http_serve::ServeMetrics::default();
        serve.register(&mut registry);
        Metrics { registry, serve }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> Result<String, fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Reads the live figures on each scrape.
struct Live {
    social: Arc<Social>,
    rpc: RpcServer,
    started: Instant,
}

impl fmt::Debug for Live {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Live").finish_non_exhaustive()
    }
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
    gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)
}

fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let counter = ConstCounter::new(value);
    counter.encode(encoder.encode_descriptor(name, help, None, counter.metric_type())?)
}

impl Collector for Live {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let e = &mut encoder;
        gauge(
            e,
            "ws_connections",
            "Open dcl-rpc WebSocket connections.",
            self.rpc.connections() as u64,
        )?;
        gauge(
            e,
            "rpc_streams",
            "Server streams with a live producer.",
            self.rpc.active_streams() as u64,
        )?;
        gauge(
            e,
            "uptime_seconds",
            "Seconds since the service started.",
            self.started.elapsed().as_secs(),
        )?;
        let cache = self.social.data.cache().stats();
        counter(
            e,
            "cache_hits",
            "Settings and friend-list reads answered from memory.",
            cache.hits,
        )?;
        counter(
            e,
            "cache_misses",
            "Settings and friend-list reads that went to the database.",
            cache.misses,
        )?;
        counter(
            e,
            "updates_dropped",
            "Updates dropped because a client's stream was too far behind.",
            self.social.bus.dropped(),
        )?;
        counter(
            e,
            "bus_envelopes_refused",
            "Envelopes from Redis dropped unread (a bus format version this instance does not know).",
            self.social.bus.refused(),
        )?;
        counter(
            e,
            "friendship_rate_limited",
            "Friendship actions, blocks and unblocks refused by the rate limits.",
            self.social.limiter.limited(),
        )?;
        counter(
            e,
            "friendship_rate_limiter_unavailable",
            "Rate-limit checks let through because Redis failed.",
            self.social.limiter.unavailable(),
        )
    }
}
