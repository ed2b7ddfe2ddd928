//! A dcl-rpc server over WebSocket, written for the Decentraland social service protocol
//! (docs/wire.md §4). The crates.io `dcl-rpc` crate keeps stream producers running after a client
//! cancels, so this is our own implementation on axum's WebSocket.
//!
//! A server is put together with [`RpcServer::builder`] (authenticator, limits, then its
//! modules and connection hooks) and [`RpcServerBuilder::build`]; the built [`RpcServer`] is
//! shared by cloning and serves each connection with [`RpcServer::upgrade`].
//!
//! Connection life:
//! 1. The first frame (text or binary) is the auth frame, checked by an [`Authenticator`].
//!    Frames that arrive meanwhile are buffered. A bad frame closes with 3003, none within the
//!    auth timeout with 3004, an auth frame over the size limit with 1009, more frames before
//!    the verdict than the buffer holds with 1013.
//! 2. The server sends SERVER_READY, then serves CREATE_PORT, REQUEST_MODULE, REQUEST,
//!    STREAM_ACK/STREAM_MESSAGE (acks and cancels) and DESTROY_PORT.
//! 3. Undecodable frames, unknown message types and server-only types from the client close
//!    with 1011; unknown ports, modules and procedures get a REMOTE_ERROR_RESPONSE and the
//!    connection stays up. Frames over the size limit close with 1009. When the server is at its
//!    connection limit a new connection is closed with 1013; shutdown closes with 1001.
//!
//! Every close sends a close frame and then keeps reading (and dropping) what the client still
//! sends for up to a second, until the client's own close frame: closing a socket with unread
//! input would make the kernel send a TCP reset, which a client may see (as 1006) instead of the
//! close frame. (A frame over the WebSocket layer's limit is not read further: the close frame
//! is sent, then the connection is dropped.)
//!
//! Server streams are acknowledged one item at a time: the "open" message (sequence 0) and
//! each item k are followed by item k+1 only after the client acknowledged k. A client
//! STREAM_MESSAGE with `closed = true` (or DESTROY_PORT, or the connection ending) drops the
//! producer at once.
//!
//! # Bounds
//!
//! What one client can make the server hold, with the [`ServerConfig`] defaults:
//! - connections: `max_connections` (10,000) on the whole server; one more is closed with
//!   1013 ("Too many connections") before its auth frame is read, the others are not affected;
//! - before authentication: the auth frame (`max_frame_bytes`, 1 MiB) and at most
//!   `max_buffered_frames` (64) frames of at most `max_frame_bytes` in all;
//! - ports: `max_ports_per_connection` (16); one more CREATE_PORT gets a REMOTE_ERROR_RESPONSE
//!   "Too many ports on this connection (limit 16)";
//! - modules: each of the server's modules at most once per port; a repeated REQUEST_MODULE
//!   answers the procedure ids it gave the first time;
//! - server streams: `max_streams_per_connection` (64) open at once; one more stream REQUEST
//!   gets a REMOTE_ERROR_RESPONSE "Too many open streams on this connection (limit 64)" (the
//!   official explorer opens 3–4); reusing the message number of an open stream gets "Stream
//!   N is already open";
//! - unary calls: `max_calls_per_connection` (256) in progress at once; one more gets a
//!   REMOTE_ERROR_RESPONSE "Too many calls in progress on this connection (limit 256)";
//! - outgoing frames: a queue of 256 per connection (the socket's backpressure stops reading
//!   while it is full); a stream acknowledgement only raises the stream's latest acknowledged
//!   sequence, so acknowledgements never pile up.
//!
//! Each cap is checked in O(1): calls and streams are tasks of the connection's `JoinSet`,
//! found by task id or stream number; when the connection ends, all of them are aborted and the
//! connection's tables freed.

mod connection;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::ws::WebSocketUpgrade;
use axum::response::Response;
use futures_util::stream::BoxStream;
use tokio::sync::watch;

/// A procedure's result payload (an encoded protobuf message).
pub type Payload = Vec<u8>;

/// A future returned by a procedure.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// An error a procedure returns; sent as REMOTE_ERROR_RESPONSE.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RpcError {
    pub code: u32,
    pub message: String,
}

impl RpcError {
    pub fn new(message: impl Into<String>) -> Self {
        RpcError {
            code: 0,
            message: message.into(),
        }
    }
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallContext {
    /// The authenticated address (lower case).
    pub address: String,
    /// A process-unique connection number.
    pub connection_id: u64,
}

type UnaryFn = dyn Fn(CallContext, Payload) -> BoxFuture<Result<Payload, RpcError>> + Send + Sync;
type StreamFn = dyn Fn(
        CallContext,
        Payload,
    ) -> BoxFuture<Result<BoxStream<'static, Result<Payload, RpcError>>, RpcError>>
    + Send
    + Sync;

/// A procedure of a module.
#[derive(Clone)]
pub enum Procedure {
    Unary(Arc<UnaryFn>),
    ServerStream(Arc<StreamFn>),
}

impl Procedure {
    pub fn unary<F, Fut>(f: F) -> Self
    where
        F: Fn(CallContext, Payload) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Payload, RpcError>> + Send + 'static,
    {
        Procedure::Unary(Arc::new(move |c, p| Box::pin(f(c, p))))
    }

    pub fn server_stream<F, Fut>(f: F) -> Self
    where
        F: Fn(CallContext, Payload) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<BoxStream<'static, Result<Payload, RpcError>>, RpcError>>
            + Send
            + 'static,
    {
        Procedure::ServerStream(Arc::new(move |c, p| Box::pin(f(c, p))))
    }
}

/// A module: named procedures, numbered 1… in the order given.
#[derive(Clone)]
pub struct Module {
    pub name: String,
    pub procedures: Vec<(String, Procedure)>,
}

/// Checks the auth frame; returns the caller's address.
#[async_trait]
pub trait Authenticator: Send + Sync {
    /// The caller's address, or why the frame is refused (the connection is then closed with
    /// 3003 "Unauthorized"; the reason is only logged, never sent).
    async fn authenticate(&self, frame: &str) -> Result<String, AuthRefused>;
}

/// Why an [`Authenticator`] refused an auth frame: the authenticator's own error (a service
/// passes its typed error; a test stand-in may pass a `&str`), kept whole so that the log line
/// shows it and its sources.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct AuthRefused(Box<dyn std::error::Error + Send + Sync>);

impl AuthRefused {
    pub fn new(reason: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        AuthRefused(reason.into())
    }
}

/// Connection hooks: presence for connectivity updates.
#[async_trait]
pub trait ConnectionHooks: Send + Sync {
    async fn connected(&self, _ctx: &CallContext) {}
    async fn disconnected(&self, _ctx: &CallContext) {}
}

struct NoHooks;
impl ConnectionHooks for NoHooks {}

/// Default of [`ServerConfig::auth_timeout`].
pub const DEFAULT_AUTH_TIMEOUT: Duration = Duration::from_secs(300);
/// Default of [`ServerConfig::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default of [`ServerConfig::max_ports_per_connection`].
pub const DEFAULT_MAX_PORTS_PER_CONNECTION: usize = 16;
/// Default of [`ServerConfig::max_streams_per_connection`].
pub const DEFAULT_MAX_STREAMS_PER_CONNECTION: usize = 64;
/// Default of [`ServerConfig::max_calls_per_connection`].
pub const DEFAULT_MAX_CALLS_PER_CONNECTION: usize = 256;

/// Limits and timeouts. Every resource a client can make the server hold is bounded by one of
/// these (see the crate docs for what each costs and how the server answers at the limit).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Time allowed for the auth frame (default 300 s; closes with 3004).
    pub auth_timeout: Duration,
    /// A connection with no frame from the client for this long, or whose client takes no
    /// frame from the server for this long, is closed (default 300 s).
    pub idle_timeout: Duration,
    /// Interval of server pings (default 30 s).
    pub ping_interval: Duration,
    /// Largest frame accepted, the auth frame included (default 1 MiB; larger closes with 1009).
    pub max_frame_bytes: usize,
    /// Frames buffered while the auth frame is checked (default 64, and at most
    /// `max_frame_bytes` in all; more closes with 1013).
    pub max_buffered_frames: usize,
    /// Most simultaneous connections on this server (default 10,000; more are closed with 1013
    /// at once, before the auth frame is read).
    pub max_connections: usize,
    /// Most open ports per connection (default 16; CREATE_PORT beyond it gets a
    /// REMOTE_ERROR_RESPONSE; DESTROY_PORT frees one).
    pub max_ports_per_connection: usize,
    /// Most server streams open at once per connection (default 64; a stream REQUEST beyond
    /// it gets a REMOTE_ERROR_RESPONSE; a stream that ends or is cancelled frees its place).
    pub max_streams_per_connection: usize,
    /// Most unary calls in progress at once per connection (default 256; a REQUEST beyond it
    /// gets a REMOTE_ERROR_RESPONSE).
    pub max_calls_per_connection: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            auth_timeout: DEFAULT_AUTH_TIMEOUT,
            idle_timeout: Duration::from_secs(300),
            ping_interval: Duration::from_secs(30),
            max_frame_bytes: 1024 * 1024,
            max_buffered_frames: 64,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_ports_per_connection: DEFAULT_MAX_PORTS_PER_CONNECTION,
            max_streams_per_connection: DEFAULT_MAX_STREAMS_PER_CONNECTION,
            max_calls_per_connection: DEFAULT_MAX_CALLS_PER_CONNECTION,
        }
    }
}

/// Close codes used by the server.
pub mod close_code {
    pub const GOING_AWAY: u16 = 1001;
    pub const TOO_BIG: u16 = 1009;
    pub const TRANSPORT_ERROR: u16 = 1011;
    pub const TRY_AGAIN_LATER: u16 = 1013;
    pub const UNAUTHORIZED: u16 = 3003;
    pub const AUTH_TIMEOUT: u16 = 3004;
}

/// The server: modules, the authenticator and the limits. Cheap to clone (every clone is the
/// same server). Made by an [`RpcServerBuilder`]: its modules and hooks are fixed from then on.
///
/// ```compile_fail
/// # use dcl_rpc_server::*;
/// # fn f(server: RpcServer, module: Module) {
/// // A built server takes no more modules: they go to the builder, before `build()`.
/// let server = server.with_module(module);
/// # }
/// ```
#[derive(Clone)]
pub struct RpcServer {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) modules: HashMap<String, Module>,
    pub(crate) auth: Arc<dyn Authenticator>,
    pub(crate) hooks: Arc<dyn ConnectionHooks>,
    pub(crate) config: ServerConfig,
    pub(crate) connections: AtomicUsize,
    pub(crate) streams: Arc<AtomicUsize>,
    pub(crate) next_connection: AtomicU64,
    pub(crate) shutdown: watch::Receiver<bool>,
    shutdown_tx: watch::Sender<bool>,
}

/// Collects what an [`RpcServer`] serves, then [`build`](RpcServerBuilder::build)s it. The
/// modules and hooks live here rather than on the server because a server is shared (cloned
/// into every handler): adding a module to a shared server could only be ignored or race with
/// connections that already loaded the module list, so it cannot be written.
pub struct RpcServerBuilder {
    modules: HashMap<String, Module>,
    auth: Arc<dyn Authenticator>,
    hooks: Arc<dyn ConnectionHooks>,
    config: ServerConfig,
}

impl RpcServerBuilder {
    /// Adds a module (one of the same name is replaced).
    pub fn with_module(mut self, module: Module) -> Self {
        self.modules.insert(module.name.clone(), module);
        self
    }

    /// Sets the connection hooks (default: none).
    pub fn with_hooks(mut self, hooks: Arc<dyn ConnectionHooks>) -> Self {
        self.hooks = hooks;
        self
    }

    /// The server, ready to [`upgrade`](RpcServer::upgrade) connections.
    pub fn build(self) -> RpcServer {
        let (shutdown_tx, shutdown) = watch::channel(false);
        RpcServer {
            inner: Arc::new(Inner {
                modules: self.modules,
                auth: self.auth,
                hooks: self.hooks,
                config: self.config,
                connections: AtomicUsize::new(0),
                streams: Arc::new(AtomicUsize::new(0)),
                next_connection: AtomicU64::new(1),
                shutdown,
                shutdown_tx,
            }),
        }
    }
}

impl RpcServer {
    /// A builder for a server with this authenticator and these limits.
    pub fn builder(auth: Arc<dyn Authenticator>, config: ServerConfig) -> RpcServerBuilder {
        RpcServerBuilder {
            modules: HashMap::new(),
            auth,
            hooks: Arc::new(NoHooks),
            config,
        }
    }

    /// Open connections now.
    pub fn connections(&self) -> usize {
        self.inner.connections.load(Ordering::Relaxed)
    }

    /// Server streams whose producer is alive now (a cancelled stream's producer is dropped at
    /// once, so this goes down when a client cancels).
    pub fn active_streams(&self) -> usize {
        self.inner.streams.load(Ordering::Relaxed)
    }

    /// Closes every connection with 1001 and refuses new ones.
    pub fn shutdown(&self) {
        let _ = self.inner.shutdown_tx.send(true);
    }

    /// Upgrades an HTTP request to a dcl-rpc connection (use as an axum handler body).
    pub fn upgrade(&self, ws: WebSocketUpgrade) -> Response {
        let inner = self.inner.clone();
        // Let a little more than the limit through the WebSocket layer so that we can answer
        // an oversized frame with a proper 1009 close ourselves.
        let limit = inner.config.max_frame_bytes + 64 * 1024;
        // tungstenite zero-fills its read buffer up to this size before every read; 128 KiB
        // (the default) made that memset the biggest cost of a small call. RPC frames are
        // small, and larger ones are simply read in several steps.
        ws.max_message_size(limit)
            .max_frame_size(limit)
            .read_buffer_size(8 * 1024)
            .on_upgrade(move |socket| connection::run(inner, socket))
    }
}
