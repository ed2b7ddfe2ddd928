//! A bounded HTTP serving loop for an axum [`Router`] on an already-bound [`TcpListener`],
//! shared by the gatekeeper and the social service. It replaces `axum::serve`, which holds every
//! connection for as long as the client likes: a client that sends its headers slowly, or keeps
//! a connection open and silent, held a file descriptor forever, and enough of them stopped the
//! server from accepting anyone.
//!
//! What [`serve`] bounds (see [`HttpLimits`] for the settings and their defaults):
//!
//! - **Header read timeout.** A connection must deliver a complete request head within
//!   `HTTP_HEADER_READ_TIMEOUT_SECONDS` of being ready for one: when it is accepted, and again
//!   after each response. hyper's HTTP/1 `header_read_timeout` enforces it (its clock also starts
//!   when a kept-alive connection waits for its next request); a watcher per connection enforces
//!   the same deadline before the protocol is known and for HTTP/2. Slow-header ("slowloris")
//!   clients are closed at that deadline however steadily they trickle bytes.
//! - **Idle timeout.** A connection with no request in progress that receives nothing for
//!   `HTTP_IDLE_TIMEOUT_SECONDS` is closed. Since the header clock starts at the same moment, a
//!   connection waits for its next request at most the smaller of the two.
//! - **Connection cap.** At most `HTTP_MAX_CONNECTIONS` HTTP connections are held at once. The
//!   choice when a new client arrives at the cap: it is accepted, and the connection that has
//!   waited longest for a request (an idle keep-alive or a slow header sender; never one with a
//!   request in progress) is closed to make room. Waiting for timeouts alone would not do: an
//!   attacker who reopens sockets as fast as they are closed keeps the cap full and the listen
//!   backlog ahead of any real client, while shedding the longest-waiting connection always lets
//!   a new client in and only costs clients that are not using their connection. When every
//!   connection has a request in progress there is nothing to shed: the accept loop then waits
//!   for a slot (new clients wait in the kernel's listen backlog) and retries shedding every
//!   50 ms. The cap should stay below the process's file-descriptor limit (`ulimit -n`) minus
//!   what the service needs besides (database, Redis, outgoing HTTP, WebSockets).
//! - **Accept errors.** Errors of one connection (reset or aborted before accept) are skipped.
//!   Others, such as running out of file descriptors (EMFILE/ENFILE), are logged, the
//!   longest-waiting idle connection is shed to free a descriptor, and the loop sleeps before
//!   trying again: 10 ms, doubling to at most 1 s, back to 10 ms after a success.
//! - **WebSockets.** Upgrades work (hyper `with_upgrades`). Once upgraded, a connection leaves
//!   this loop: neither the idle timeout nor the cap applies to it (the WebSocket server bounds
//!   its own connections).
//! - **Graceful shutdown.** When `shutdown` completes the listener is closed, every connection
//!   is asked to finish (idle ones close at once, in-progress requests complete), and after
//!   [`DRAIN_TIMEOUT`] the rest are closed.
//!
//! [`ServeMetrics`] counts connections, timeouts, shed connections and accept errors for the
//! service's `/metrics`. [`testkit`] holds client-side probes (slow header sender, idle sockets,
//! ping) for the services' tests.

pub mod testkit;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tower::ServiceExt;

/// Default of `HTTP_HEADER_READ_TIMEOUT_SECONDS`.
pub const DEFAULT_HEADER_READ_TIMEOUT_SECS: u64 = 10;
/// Default of `HTTP_IDLE_TIMEOUT_SECONDS` (the keep-alive timeout of Node's HTTP server, which
/// the reference services run on).
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 5;
/// Default of `HTTP_MAX_CONNECTIONS`.
pub const DEFAULT_MAX_CONNECTIONS: u64 = 4096;
/// After shutdown, connections still open this long are closed.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
const SHED_RETRY: Duration = Duration::from_millis(50);
/// Upper bound of `HTTP_MAX_CONNECTIONS` (the semaphore's and `acquire_many`'s limits are far
/// above); the binary refuses a larger value, and [`serve`] clamps to it.
pub const MAX_CONNECTIONS_LIMIT: u64 = 1 << 24;
/// Upper bound of both timeouts, in seconds (a day); the binary refuses a larger value.
pub const MAX_TIMEOUT_SECS: u64 = 86_400;

/// Limits of the HTTP server, part of each service's configuration. A plain struct: the binary
/// reads it from flags and the environment (`HTTP_HEADER_READ_TIMEOUT_SECONDS`,
/// `HTTP_IDLE_TIMEOUT_SECONDS`, `HTTP_MAX_CONNECTIONS`; 1 up to the bounds above), with the
/// `DEFAULT_…` constants of this crate as defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLimits {
    /// Seconds a connection has to deliver a complete request head, counted from when it is
    /// ready for one (accepted, or its previous response sent); then it is closed.
    pub header_read_timeout_secs: u64,
    /// Seconds a connection with no request in progress may stay silent before it is closed.
    pub idle_timeout_secs: u64,
    /// Most HTTP connections held at once (upgraded WebSockets not counted).
    pub max_connections: u64,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_read_timeout_secs: DEFAULT_HEADER_READ_TIMEOUT_SECS,
            idle_timeout_secs: DEFAULT_IDLE_TIMEOUT_SECS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

impl HttpLimits {
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_secs(self.header_read_timeout_secs.max(1))
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs.max(1))
    }

    fn cap(&self) -> u32 {
        // Both bounds fit a u32 (MAX_CONNECTIONS_LIMIT is 2^24).
        u32::try_from(self.max_connections.clamp(1, MAX_CONNECTIONS_LIMIT)).unwrap_or(1 << 24)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// Counters of the serving loop; [`ServeMetrics::register`] adds them to a service's registry.
#[derive(Clone, Debug, Default)]
pub struct ServeMetrics {
    /// Open HTTP connections (not counting upgraded WebSockets).
    pub connections: Gauge,
    /// Connections accepted.
    pub accepted: Counter,
    /// Connections closed by the server, by reason: `header_timeout`, `idle_timeout`, `shed`
    /// (closed to make room at the cap), `shutdown`.
    closed: Family<ReasonLabels, Counter>,
    /// `accept` failures other than a single aborted connection (e.g. out of descriptors).
    pub accept_errors: Counter,
}

impl ServeMetrics {
    /// Registers `http_connections`, `http_connections_accepted_total`,
    /// `http_connections_closed_total{reason}` and `http_accept_errors_total`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "http_connections",
            "Open HTTP connections (upgraded WebSockets not counted)",
            self.connections.clone(),
        );
        registry.register(
            "http_connections_accepted",
            "HTTP connections accepted",
            self.accepted.clone(),
        );
        registry.register(
            "http_connections_closed",
            "HTTP connections closed by the server, by reason (header_timeout, idle_timeout, shed, shutdown)",
            self.closed.clone(),
        );
        registry.register(
            "http_accept_errors",
            "Failed accepts other than one aborted connection (e.g. out of file descriptors)",
            self.accept_errors.clone(),
        );
    }

    /// How many connections were closed for `reason` (for tests).
    pub fn closed(&self, reason: &'static str) -> u64 {
        self.closed.get_or_create(&ReasonLabels { reason }).get()
    }

    fn close(&self, reason: Closed) {
        self.closed
            .get_or_create(&ReasonLabels {
                reason: reason.label(),
            })
            .inc();
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Closed {
    HeaderTimeout,
    IdleTimeout,
    Shed,
    Shutdown,
}

impl Closed {
    fn label(self) -> &'static str {
        match self {
            Closed::HeaderTimeout => "header_timeout",
            Closed::IdleTimeout => "idle_timeout",
            Closed::Shed => "shed",
            Closed::Shutdown => "shutdown",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Running,
    Draining,
    Closing,
}

/// What the loop knows of one connection. Times are milliseconds since `Shared::epoch`.
struct Tracked {
    in_flight: AtomicUsize,
    /// When the connection last became ready for a request head (accepted, or a response done).
    ready_since: AtomicU64,
    /// When the last byte arrived.
    last_read: AtomicU64,
    shed: Notify,
}

struct Shared {
    epoch: Instant,
    header_ms: u64,
    idle_ms: u64,
    conns: Mutex<HashMap<u64, Arc<Tracked>>>,
    next_id: AtomicU64,
    metrics: ServeMetrics,
}

fn millis_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl Shared {
    fn now(&self) -> u64 {
        millis_since(self.epoch)
    }

    /// When a connection without a request in progress is due to be closed, and why.
    fn deadline(&self, t: &Tracked) -> (u64, Closed) {
        let ready = t.ready_since.load(Ordering::SeqCst);
        let heard = t.last_read.load(Ordering::SeqCst).max(ready);
        let header = ready.saturating_add(self.header_ms);
        let idle = heard.saturating_add(self.idle_ms);
        if header <= idle {
            (header, Closed::HeaderTimeout)
        } else {
            (idle, Closed::IdleTimeout)
        }
    }

    /// Asks the connection that has waited longest for a request to close. False when every
    /// connection has a request in progress.
    fn shed_longest_waiting(&self) -> bool {
        let conns = self.conns.lock().unwrap_or_else(PoisonError::into_inner);
        let victim = conns
            .values()
            .filter(|t| t.in_flight.load(Ordering::SeqCst) == 0)
            .min_by_key(|t| t.ready_since.load(Ordering::SeqCst));
        match victim {
            Some(t) => {
                t.shed.notify_one();
                true
            }
            None => false,
        }
    }

    fn instant(&self, ms: u64) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.epoch + Duration::from_millis(ms))
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown` completes, then drains (see
/// the crate docs). Returns when every connection has closed or [`DRAIN_TIMEOUT`] passed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &HttpLimits,
    metrics: ServeMetrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let shared = Arc::new(Shared {
        epoch: Instant::now(),
        header_ms: millis(limits.header_read_timeout()),
        idle_ms: millis(limits.idle_timeout()),
        conns: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(0),
        metrics,
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(limits.header_read_timeout());
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let cap = limits.cap();
    let slots = Arc::new(Semaphore::new(cap as usize));
    let (phase, phase_rx) = watch::channel(Phase::Running);
    tokio::pin!(shutdown);
    let mut backoff = ACCEPT_BACKOFF_MIN;

    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => {
                backoff = ACCEPT_BACKOFF_MIN;
                stream
            }
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                shared.metrics.accept_errors.inc();
                let shed = shared.shed_longest_waiting();
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, shed, "accept failed; backing off");
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = slot(&shared, &slots) => permit,
        };
        shared.metrics.accepted.inc();
        tokio::spawn(connection(
            shared.clone(),
            builder.clone(),
            router.clone(),
            stream,
            phase_rx.clone(),
            permit,
        ));
    }

    drop(listener);
    let _ = phase.send(Phase::Draining);
    if tokio::time::timeout(DRAIN_TIMEOUT, slots.acquire_many(cap))
        .await
        .is_err()
    {
        tracing::warn!(
            open = shared.metrics.connections.get(),
            "connections still open after the drain timeout; closing them"
        );
        let _ = phase.send(Phase::Closing);
        let _ = tokio::time::timeout(Duration::from_secs(1), slots.acquire_many(cap)).await;
    }
    Ok(())
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Errors that concern one connection only (it went away before we accepted it).
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// A free slot under the cap; at the cap, sheds the longest-waiting connection until one frees.
async fn slot(shared: &Shared, slots: &Arc<Semaphore>) -> OwnedSemaphorePermit {
    loop {
        if let Ok(permit) = slots.clone().try_acquire_owned() {
            return permit;
        }
        shared.shed_longest_waiting();
        tokio::select! {
            permit = slots.clone().acquire_owned() => {
                if let Ok(permit) = permit {
                    return permit;
                }
            }
            () = tokio::time::sleep(SHED_RETRY) => {}
        }
    }
}

async fn connection(
    shared: Arc<Shared>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    router: Router,
    stream: TcpStream,
    mut phase: watch::Receiver<Phase>,
    permit: OwnedSemaphorePermit,
) {
    let now = shared.now();
    let tracked = Arc::new(Tracked {
        in_flight: AtomicUsize::new(0),
        ready_since: AtomicU64::new(now),
        last_read: AtomicU64::new(now),
        shed: Notify::new(),
    });
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    shared
        .conns
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(id, tracked.clone());
    shared.metrics.connections.inc();

    let io = TokioIo::new(TrackedIo {
        inner: stream,
        tracked: tracked.clone(),
        epoch: shared.epoch,
    });
    let service = {
        let tracked = tracked.clone();
        let epoch = shared.epoch;
        hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let guard = InFlight::start(tracked.clone(), epoch);
            let router = router.clone();
            async move {
                let Ok(response) = router.oneshot(req.map(Body::new)).await;
                Ok::<_, Infallible>(response.map(|inner| Guarded {
                    inner,
                    _guard: guard,
                }))
            }
        })
    };
    // Boxed so that dropping it below closes the socket there and then.
    let mut conn = Box::pin(builder.serve_connection_with_upgrades(io, service));
    let mut draining = false;

    let closed = loop {
        let wake = if tracked.in_flight.load(Ordering::SeqCst) == 0 {
            let (at, why) = shared.deadline(&tracked);
            if at <= shared.now() {
                break Some(why);
            }
            at
        } else {
            // Re-checked when the request may be over; its end resets the clocks.
            shared
                .now()
                .saturating_add(shared.header_ms.min(shared.idle_ms))
        };
        tokio::select! {
            done = conn.as_mut() => {
                break match done {
                    Err(e) if is_header_timeout(e.as_ref()) => Some(Closed::HeaderTimeout),
                    Err(e) => {
                        tracing::debug!(error = %e, "HTTP connection ended with an error");
                        None
                    }
                    Ok(()) => None,
                };
            }
            () = tokio::time::sleep_until(shared.instant(wake)) => {}
            () = tracked.shed.notified() => {
                if tracked.in_flight.load(Ordering::SeqCst) == 0 {
                    break Some(Closed::Shed);
                }
            }
            changed = phase.changed() => {
                let now = match changed {
                    Ok(()) => *phase.borrow_and_update(),
                    Err(_) => Phase::Closing,
                };
                match now {
                    Phase::Running => {}
                    Phase::Draining if !draining => {
                        draining = true;
                        conn.as_mut().graceful_shutdown();
                    }
                    Phase::Draining => {}
                    Phase::Closing => break Some(Closed::Shutdown),
                }
            }
        }
    };
    drop(conn);
    if let Some(why) = closed {
        tracing::debug!(reason = why.label(), "HTTP connection closed by the server");
        shared.metrics.close(why);
    }
    shared
        .conns
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&id);
    shared.metrics.connections.dec();
    drop(permit);
}

fn is_header_timeout(e: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    e.downcast_ref::<hyper::Error>()
        .is_some_and(hyper::Error::is_timeout)
}

/// Marks a request in progress on its connection until its response body is dropped.
struct InFlight {
    tracked: Arc<Tracked>,
    epoch: Instant,
}

impl InFlight {
    fn start(tracked: Arc<Tracked>, epoch: Instant) -> Self {
        tracked.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight { tracked, epoch }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // The clock first: a watcher that sees no request in progress must see the new time.
        self.tracked
            .ready_since
            .store(millis_since(self.epoch), Ordering::SeqCst);
        self.tracked.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A response body that holds its request's [`InFlight`] until hyper has sent it all.
struct Guarded {
    inner: Body,
    _guard: InFlight,
}

impl http_body::Body for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The client's socket, noting when bytes arrive (for the idle timeout).
struct TrackedIo {
    inner: TcpStream,
    tracked: Arc<Tracked>,
    epoch: Instant,
}

impl AsyncRead for TrackedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.tracked
                .last_read
                .store(millis_since(self.epoch), Ordering::SeqCst);
        }
        polled
    }
}

impl AsyncWrite for TrackedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
