//! A dcl-rpc client over WebSocket (tokio-tungstenite), the counterpart of `dcl-rpc-server`:
//! the SDK (`pchat-client`) and the social service's tests use it.
//!
//! Connection life:
//! 1. [`RpcClient::connect`] opens the WebSocket, sends the auth frame (a text frame; for the
//!    Decentraland services the signed-fetch headers of `GET /` as a JSON object, see
//!    [`auth_frame`]) and waits for SERVER_READY. A server that refuses the auth frame closes the
//!    connection: that is [`RpcError::Closed`] with its close code (3003 for Unauthorized).
//! 2. [`RpcClient::create_port`] and [`Port::request_module`] give a [`Module`], whose procedures
//!    are called by name: [`Module::call`] (unary, prost messages) and [`Module::server_stream`].
//! 3. One reader task routes what arrives by message number to the waiting call or stream; one
//!    writer task sends. Server streams are acknowledged one item at a time, when the item is
//!    taken by [`ServerStream::next`], so the server's one-item-in-flight backpressure holds all
//!    the way to the consumer. Dropping a [`ServerStream`] cancels it on the server (a
//!    STREAM_MESSAGE with `closed = true`).
//! 4. [`RpcClient::close`] (or dropping every handle: client, ports, modules, streams) closes the
//!    WebSocket with 1000. When the connection ends for any reason, every waiting call and stream
//!    gets [`RpcError::Closed`] with the server's close code and reason when it sent one.
//!
//! # Bounds
//!
//! What the client holds, with the [`ClientConfig`] defaults:
//! - a call waits at most `call_timeout` (15 s) for its answer, then [`RpcError::Timeout`] (a
//!   late answer is dropped); connecting (WebSocket handshake, auth, SERVER_READY) at most
//!   `connect_timeout` (15 s);
//! - at most `max_pending` (256, the server's own per-connection cap) calls and streams waiting
//!   at once; one more is refused with [`RpcError::TooManyPending`] without being sent;
//! - each server stream buffers at most `stream_buffer` (16) items not yet taken. A server that
//!   respects the acknowledgements never has more than one in flight; one that sends more is in
//!   violation: the stream ends with [`RpcError::Protocol`] and is cancelled on the server;
//! - frames and messages larger than `max_frame_bytes` (1 MiB) end the connection;
//! - outgoing frames wait in a queue of `send_queue` (256); a call waits for room (within its
//!   timeout);
//! - a connection on which nothing arrives, not even a ping, for `idle_timeout` (90 s; our
//!   server pings every 30 s) is taken as dead: it ends with [`RpcError::Timeout`] for every
//!   waiter.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use dcl_rpc_wire::{
    CreatePort, DestroyPort, Frame, MessageType, NUMBER_MASK, Request, RequestModule,
    StreamMessage, WireError, identifier,
};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Limits of one connection (see the crate docs, "Bounds").
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// WebSocket handshake, auth frame and SERVER_READY, in all. Default 15 s.
    pub connect_timeout: Duration,
    /// The longest wait for one answer (also for a stream's "open" message). Default 15 s.
    pub call_timeout: Duration,
    /// Calls and streams waiting at once. Default 256.
    pub max_pending: usize,
    /// Items of one server stream received and not yet taken. Default 16.
    pub stream_buffer: usize,
    /// The largest WebSocket frame or message accepted. Default 1 MiB.
    pub max_frame_bytes: usize,
    /// Outgoing frames queued for the writer. Default 256.
    pub send_queue: usize,
    /// A connection on which nothing at all arrives (no frame, not even the server's pings)
    /// for this long is taken as dead and ends with [`RpcError::Timeout`]: without it, a
    /// server that vanished without closing (a lost network) would leave every waiter waiting.
    /// Default 90 s (three of our server's 30 s ping intervals); `None` waits forever.
    pub idle_timeout: Option<Duration>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connect_timeout: Duration::from_secs(15),
            call_timeout: Duration::from_secs(15),
            max_pending: 256,
            stream_buffer: 16,
            max_frame_bytes: 1 << 20,
            send_queue: 256,
            idle_timeout: Some(Duration::from_secs(90)),
        }
    }
}

/// Errors of the client. Cheap to clone (one connection's end is reported to every waiter).
#[derive(Debug, Clone, thiserror::Error)]
pub enum RpcError {
    #[error("cannot connect to {url}")]
    Connect {
        url: String,
        #[source]
        source: Arc<tungstenite::Error>,
    },
    /// The connection ended. `code` is the server's close code when it sent a close frame
    /// (`None`: the connection was reset or ended without one).
    #[error("the connection closed ({})", describe_close(.code, .reason))]
    Closed { code: Option<u16>, reason: String },
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The server answered with REMOTE_ERROR_RESPONSE.
    #[error("the server answered with an error: {message}")]
    Remote { code: u32, message: String },
    #[error("the server has no procedure {0:?} in this module")]
    NoSuchProcedure(String),
    #[error("too many calls and streams waiting (limit {0})")]
    TooManyPending(usize),
    /// A frame that is not a dcl-rpc message.
    #[error("undecodable frame from the server")]
    Wire(#[source] WireError),
    /// A payload that is not the expected protobuf message.
    #[error("cannot decode the answer of {procedure}")]
    Decode {
        procedure: String,
        #[source]
        source: prost::DecodeError,
    },
    /// The server broke the protocol (an unexpected message type, a stream over its buffer, …).
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The WebSocket failed while open.
    #[error("WebSocket error")]
    Transport(#[source] Arc<tungstenite::Error>),
}

fn describe_close(code: &Option<u16>, reason: &str) -> String {
    match (*code, reason.is_empty()) {
        (Some(c), false) => format!("code {c}: {reason}"),
        (Some(c), true) => format!("code {c}"),
        (None, false) => reason.to_owned(),
        (None, true) => "no close frame".to_owned(),
    }
}

impl RpcError {
    fn closed(reason: &str) -> RpcError {
        RpcError::Closed {
            code: None,
            reason: reason.to_owned(),
        }
    }
}

/// The auth frame for the Decentraland services: the signed-fetch headers (ADR-44) of `GET /`
/// with metadata `{}`, as a JSON object.
pub fn auth_frame(identity: &authchain::Identity) -> String {
    let headers = identity.signed_fetch_headers("get", "/", authchain::now_ms(), "{}");
    let map: serde_json::Map<String, serde_json::Value> = headers
        .into_iter()
        .map(|(k, v)| (k, serde_json::Value::String(v)))
        .collect();
    serde_json::Value::Object(map).to_string()
}

// ---------------------------------------------------------------------------------------------
// Routing (no I/O): which waiter an incoming frame belongs to.

type CallSlot = oneshot::Sender<Result<Frame, RpcError>>;

/// How one stream ended: `None` = the server ended it normally.
type StreamEnd = Arc<OnceLock<Option<RpcError>>>;

struct StreamSlot {
    tx: mpsc::Sender<StreamMessage>,
    end: StreamEnd,
}

/// The connection's waiters, by message number.
#[derive(Default)]
struct Table {
    calls: HashMap<u32, CallSlot>,
    streams: HashMap<u32, StreamSlot>,
    /// Set once the connection ended; nothing new is registered after.
    closed: Option<RpcError>,
}

/// What routing a frame asks the connection to do.
#[derive(Debug, PartialEq)]
enum Routed {
    /// Delivered, or dropped as late (its waiter gave up).
    Done,
    /// Send this frame (a stream cancel after an overflow).
    Send(Frame),
    /// The server broke the protocol: end the connection.
    Violation(String),
}

impl Table {
    fn waiting(&self) -> usize {
        self.calls.len() + self.streams.len()
    }

    fn route(&mut self, frame: Frame) -> Routed {
        let number = frame.number();
        match frame {
            Frame::StreamMessage(m) => {
                let Some(slot) = self.streams.get(&number) else {
                    if let Some(tx) = self.calls.remove(&number) {
                        let _ = tx.send(Err(RpcError::Protocol(format!(
                            "a stream message answered the unary call {number}"
                        ))));
                    }
                    // Else: a stream this side already cancelled.
                    return Routed::Done;
                };
                if m.closed {
                    if let Some(slot) = self.streams.remove(&number) {
                        let _ = slot.end.set(None);
                    }
                    return Routed::Done;
                }
                let port_id = m.port_id;
                match slot.tx.try_send(m) {
                    Ok(()) => Routed::Done,
                    Err(mpsc::error::TrySendError::Closed(_)) => {
                        // The stream was dropped; its cancel is on the way.
                        self.streams.remove(&number);
                        Routed::Done
                    }
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        if let Some(slot) = self.streams.remove(&number) {
                            let _ = slot.end.set(Some(RpcError::Protocol(format!(
                                "stream {number} sent more items than were acknowledged"
                            ))));
                        }
                        Routed::Send(cancel_frame(number, port_id))
                    }
                }
            }
            Frame::RemoteError(e) => {
                let error = RpcError::Remote {
                    code: e.error_code,
                    message: e.error_message.clone(),
                };
                if let Some(slot) = self.streams.remove(&number) {
                    let _ = slot.end.set(Some(error));
                } else if let Some(tx) = self.calls.remove(&number) {
                    let _ = tx.send(Ok(Frame::RemoteError(e)));
                }
                Routed::Done
            }
            Frame::Response(_) | Frame::CreatePortResponse(_) | Frame::RequestModuleResponse(_) => {
                if let Some(tx) = self.calls.remove(&number) {
                    let _ = tx.send(Ok(frame));
                } else if let Some(slot) = self.streams.remove(&number) {
                    let _ = slot.end.set(Some(RpcError::Protocol(format!(
                        "a {:?} answered the stream {number}",
                        frame.kind()
                    ))));
                }
                Routed::Done
            }
            // A repeated SERVER_READY is harmless.
            Frame::ServerReady { .. } => Routed::Done,
            other => Routed::Violation(format!(
                "the server sent a client message ({:?})",
                other.kind()
            )),
        }
    }

    /// The connection ended: every waiter learns why; nothing new is accepted.
    fn close(&mut self, error: RpcError) {
        for (_, tx) in self.calls.drain() {
            let _ = tx.send(Err(error.clone()));
        }
        for (_, slot) in self.streams.drain() {
            let _ = slot.end.set(Some(error.clone()));
        }
        if self.closed.is_none() {
            self.closed = Some(error);
        }
    }
}

fn cancel_frame(number: u32, port_id: u32) -> Frame {
    Frame::StreamMessage(StreamMessage {
        message_identifier: identifier(MessageType::StreamMessage, number),
        port_id,
        sequence_id: 0,
        payload: Vec::new(),
        closed: true,
        ack: false,
    })
}

// ---------------------------------------------------------------------------------------------
// The connection.

enum Out {
    Frame(Frame),
    Close,
}

struct Inner {
    out: mpsc::Sender<Out>,
    table: Mutex<Table>,
    next: AtomicU32,
    config: ClientConfig,
}

/// One dcl-rpc connection. Cheap to clone; the connection closes when [`RpcClient::close`] is
/// called or every handle (clients, ports, modules, streams) is dropped.
#[derive(Clone)]
pub struct RpcClient {
    inner: Arc<Inner>,
}

impl RpcClient {
    /// Connects to `url` (`ws://` or `wss://`), sends `auth` as the first (text) frame and waits
    /// for SERVER_READY.
    pub async fn connect(
        url: &str,
        auth: &str,
        config: ClientConfig,
    ) -> Result<RpcClient, RpcError> {
        let limit = config.connect_timeout;
        tokio::time::timeout(limit, Self::connect_inner(url, auth, config))
            .await
            .map_err(|_| RpcError::Timeout(limit))?
    }

    /// [`RpcClient::connect`] with the auth frame of `identity` (see [`auth_frame`]).
    pub async fn connect_as(
        url: &str,
        identity: &authchain::Identity,
        config: ClientConfig,
    ) -> Result<RpcClient, RpcError> {
        Self::connect(url, &auth_frame(identity), config).await
    }

    async fn connect_inner(
        url: &str,
        auth: &str,
        config: ClientConfig,
    ) -> Result<RpcClient, RpcError> {
        // A small read buffer: tungstenite zero-fills it before every read.
        let ws_config = WebSocketConfig::default()
            .read_buffer_size(8 * 1024)
            .max_frame_size(Some(config.max_frame_bytes))
            .max_message_size(Some(config.max_frame_bytes));
        let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(ws_config), false)
            .await
            .map_err(|e| RpcError::Connect {
                url: url.to_owned(),
                source: Arc::new(e),
            })?;
        ws.send(Message::Text(auth.to_owned().into()))
            .await
            .map_err(|e| RpcError::Connect {
                url: url.to_owned(),
                source: Arc::new(e),
            })?;
        match read_frame(&mut ws, None).await? {
            Frame::ServerReady { .. } => {}
            other => {
                return Err(RpcError::Protocol(format!(
                    "expected SERVER_READY, got {:?}",
                    other.kind()
                )));
            }
        }
        let (mut sink, mut stream) = ws.split();
        let (out, mut out_rx) = mpsc::channel::<Out>(config.send_queue.max(1));
        let inner = Arc::new(Inner {
            out,
            table: Mutex::new(Table::default()),
            next: AtomicU32::new(1),
            config,
        });
        // The writer ends when asked to close or when every handle is gone; either way it
        // closes the WebSocket (1000), and the reader then sees the server's close frame.
        tokio::spawn(async move {
            while let Some(out) = out_rx.recv().await {
                match out {
                    Out::Frame(frame) => {
                        if sink
                            .send(Message::Binary(frame.encode().into()))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    Out::Close => break,
                }
            }
            let _ = sink.close().await;
        });
        // The reader holds only a weak handle, so dropping every handle closes the connection.
        let weak = Arc::downgrade(&inner);
        let idle = inner.config.idle_timeout;
        tokio::spawn(async move {
            let end = loop {
                let frame = match read_frame(&mut stream, idle).await {
                    Ok(f) => f,
                    Err(e) => break e,
                };
                let Some(inner) = weak.upgrade() else {
                    break RpcError::closed("closed by this side");
                };
                let routed = match inner.table.lock() {
                    Ok(mut t) => t.route(frame),
                    Err(_) => Routed::Violation("internal lock poisoned".into()),
                };
                match routed {
                    Routed::Done => {}
                    Routed::Send(f) => {
                        let _ = inner.out.try_send(Out::Frame(f));
                    }
                    Routed::Violation(why) => {
                        tracing::warn!(%why, "dcl-rpc server broke the protocol; closing");
                        let _ = inner.out.try_send(Out::Close);
                        break RpcError::Protocol(why);
                    }
                }
            };
            tracing::debug!(error = %end, "dcl-rpc connection ended");
            if let Some(inner) = weak.upgrade() {
                if let Ok(mut t) = inner.table.lock() {
                    t.close(end);
                }
                // The writer stops too (and closes the socket, if it still can).
                let _ = inner.out.try_send(Out::Close);
            }
        });
        Ok(RpcClient { inner })
    }

    /// The limits of this connection.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Why the connection ended, once it has (`None` while it is open).
    pub fn closed(&self) -> Option<RpcError> {
        self.inner.table.lock().ok().and_then(|t| t.closed.clone())
    }

    /// Closes the connection (close code 1000). Waiting calls and streams then end with
    /// [`RpcError::Closed`].
    pub async fn close(&self) {
        let _ = self.inner.out.send(Out::Close).await;
    }

    /// Opens a port (CREATE_PORT).
    pub async fn create_port(&self, name: &str) -> Result<Port, RpcError> {
        let n = self.inner.number();
        let frame = Frame::CreatePort(CreatePort {
            message_identifier: identifier(MessageType::CreatePort, n),
            port_name: name.to_owned(),
        });
        match self.inner.exchange(n, frame).await? {
            Frame::CreatePortResponse(r) => Ok(Port {
                client: self.clone(),
                id: r.port_id,
            }),
            other => Err(unexpected(&other)),
        }
    }

    /// [`RpcClient::create_port`] then [`Port::request_module`].
    pub async fn module(&self, port_name: &str, module: &str) -> Result<Module, RpcError> {
        self.create_port(port_name)
            .await?
            .request_module(module)
            .await
    }
}

fn unexpected(frame: &Frame) -> RpcError {
    match frame {
        Frame::RemoteError(e) => RpcError::Remote {
            code: e.error_code,
            message: e.error_message.clone(),
        },
        other => RpcError::Protocol(format!("unexpected answer {:?}", other.kind())),
    }
}

impl Inner {
    /// A fresh message number (27 bits, never 0).
    fn number(&self) -> u32 {
        loop {
            let n = self.next.fetch_add(1, Ordering::Relaxed) & NUMBER_MASK;
            if n != 0 {
                return n;
            }
        }
    }

    /// Registers a waiter for number `n`, unless the connection ended or too many wait.
    fn register(&self, n: u32, slot: Result<CallSlot, StreamSlot>) -> Result<(), RpcError> {
        let mut t = self
            .table
            .lock()
            .map_err(|_| RpcError::Protocol("internal lock poisoned".into()))?;
        if let Some(e) = &t.closed {
            return Err(e.clone());
        }
        if t.waiting() >= self.config.max_pending {
            return Err(RpcError::TooManyPending(self.config.max_pending));
        }
        match slot {
            Ok(call) => {
                t.calls.insert(n, call);
            }
            Err(stream) => {
                t.streams.insert(n, stream);
            }
        }
        Ok(())
    }

    fn forget(&self, n: u32) {
        if let Ok(mut t) = self.table.lock() {
            t.calls.remove(&n);
            t.streams.remove(&n);
        }
    }

    async fn send(&self, frame: Frame) -> Result<(), RpcError> {
        if self.out.send(Out::Frame(frame)).await.is_err() {
            return Err(self
                .table
                .lock()
                .ok()
                .and_then(|t| t.closed.clone())
                .unwrap_or_else(|| RpcError::closed("the writer stopped")));
        }
        Ok(())
    }

    /// Sends `frame` (numbered `n`) and waits for the answer numbered `n`.
    async fn exchange(&self, n: u32, frame: Frame) -> Result<Frame, RpcError> {
        let (tx, rx) = oneshot::channel();
        self.register(n, Ok(tx))?;
        let limit = self.config.call_timeout;
        let answer = tokio::time::timeout(limit, async {
            self.send(frame).await?;
            rx.await
                .unwrap_or_else(|_| Err(RpcError::closed("the reader stopped")))
        })
        .await;
        self.forget(n);
        answer.unwrap_or(Err(RpcError::Timeout(limit)))
    }
}

/// A port of the connection.
#[derive(Clone)]
pub struct Port {
    client: RpcClient,
    id: u32,
}

impl Port {
    /// The port's id (the server's).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Loads a module (REQUEST_MODULE): its procedures by name.
    pub async fn request_module(&self, name: &str) -> Result<Module, RpcError> {
        let inner = &self.client.inner;
        let n = inner.number();
        let frame = Frame::RequestModule(RequestModule {
            message_identifier: identifier(MessageType::RequestModule, n),
            port_id: self.id,
            module_name: name.to_owned(),
        });
        match inner.exchange(n, frame).await? {
            Frame::RequestModuleResponse(r) => Ok(Module {
                port: self.clone(),
                procedures: Arc::new(
                    r.procedures
                        .into_iter()
                        .map(|p| (p.procedure_name, p.procedure_id))
                        .collect(),
                ),
            }),
            other => Err(unexpected(&other)),
        }
    }

    /// Closes the port on the server (DESTROY_PORT): its calls and streams stop there.
    pub async fn destroy(&self) -> Result<(), RpcError> {
        let n = self.client.inner.number();
        self.client
            .inner
            .send(Frame::DestroyPort(DestroyPort {
                message_identifier: identifier(MessageType::DestroyPort, n),
                port_id: self.id,
            }))
            .await
    }
}

/// A module loaded on a port: call its procedures by name.
#[derive(Clone)]
pub struct Module {
    port: Port,
    procedures: Arc<HashMap<String, u32>>,
}

impl Module {
    /// The procedure names the server announced.
    pub fn procedures(&self) -> impl Iterator<Item = &str> {
        self.procedures.keys().map(String::as_str)
    }

    /// The connection this module is on.
    pub fn client(&self) -> &RpcClient {
        &self.port.client
    }

    fn procedure(&self, name: &str) -> Result<u32, RpcError> {
        self.procedures
            .get(name)
            .copied()
            .ok_or_else(|| RpcError::NoSuchProcedure(name.to_owned()))
    }

    fn request(&self, n: u32, procedure_id: u32, payload: Vec<u8>) -> Frame {
        Frame::Request(Request {
            message_identifier: identifier(MessageType::Request, n),
            port_id: self.port.id,
            procedure_id,
            client_stream: 0,
            payload,
        })
    }

    /// Calls the unary procedure `name`.
    pub async fn call<Req: prost::Message, Resp: prost::Message + Default>(
        &self,
        name: &str,
        req: &Req,
    ) -> Result<Resp, RpcError> {
        let procedure_id = self.procedure(name)?;
        let inner = &self.port.client.inner;
        let n = inner.number();
        let frame = self.request(n, procedure_id, req.encode_to_vec());
        match inner.exchange(n, frame).await? {
            Frame::Response(r) => {
                Resp::decode(r.payload.as_slice()).map_err(|source| RpcError::Decode {
                    procedure: name.to_owned(),
                    source,
                })
            }
            other => Err(unexpected(&other)),
        }
    }

    /// Opens the server stream `name`; returns once the server opened it (its "open" message,
    /// sequence 0), or with the server's refusal.
    pub async fn server_stream<Req: prost::Message, Item: prost::Message + Default>(
        &self,
        name: &str,
        req: &Req,
    ) -> Result<ServerStream<Item>, RpcError> {
        let procedure_id = self.procedure(name)?;
        let inner = self.port.client.inner.clone();
        let n = inner.number();
        let (tx, rx) = mpsc::channel(inner.config.stream_buffer.max(1));
        let end: StreamEnd = Arc::new(OnceLock::new());
        inner.register(
            n,
            Err(StreamSlot {
                tx,
                end: end.clone(),
            }),
        )?;
        let mut stream = ServerStream {
            client: self.port.client.clone(),
            procedure: name.to_owned(),
            number: n,
            port: self.port.id,
            rx,
            end,
            done: false,
            unacked: None,
            _item: PhantomData,
        };
        let limit = inner.config.call_timeout;
        let opened = tokio::time::timeout(limit, async {
            inner
                .send(self.request(n, procedure_id, req.encode_to_vec()))
                .await?;
            stream.take().await
        })
        .await;
        match opened {
            Ok(Ok(Some(_open))) => {
                stream.ack(0).await?;
                Ok(stream)
            }
            Ok(Ok(None)) => Err(RpcError::Protocol(format!(
                "the server ended the stream {name} before opening it"
            ))),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(RpcError::Timeout(limit)),
        }
    }
}

/// A server stream. Items are taken with [`ServerStream::next`], each acknowledged as it is
/// taken; dropping the stream cancels it on the server.
pub struct ServerStream<Item> {
    client: RpcClient,
    procedure: String,
    number: u32,
    port: u32,
    rx: mpsc::Receiver<StreamMessage>,
    end: StreamEnd,
    done: bool,
    /// An item taken whose acknowledgement is not sent yet.
    unacked: Option<u32>,
    _item: PhantomData<fn() -> Item>,
}

impl<Item: prost::Message + Default> ServerStream<Item> {
    /// The next raw message, unacknowledged; `Ok(None)` when the server ended the stream.
    async fn take(&mut self) -> Result<Option<StreamMessage>, RpcError> {
        match self.rx.recv().await {
            Some(m) => Ok(Some(m)),
            None => {
                self.done = true;
                match self.end.get() {
                    Some(None) => Ok(None),
                    Some(Some(e)) => Err(e.clone()),
                    None => Err(self
                        .client
                        .closed()
                        .unwrap_or_else(|| RpcError::closed("the stream's reader stopped"))),
                }
            }
        }
    }

    async fn ack(&self, sequence_id: u32) -> Result<(), RpcError> {
        self.client
            .inner
            .send(ack_frame(self.number, self.port, sequence_id))
            .await
    }

    /// The next item (acknowledged, so the server sends the one after); `Ok(None)` when the
    /// server ended the stream; an error when the connection ended or the server refused or
    /// broke the stream. Cancel-safe (e.g. in `tokio::select!`): an item is never lost when
    /// the future is dropped while waiting.
    pub async fn next(&mut self) -> Result<Option<Item>, RpcError> {
        // An acknowledgement that found the send queue full goes out first.
        if let Some(seq) = self.unacked {
            self.ack(seq).await?;
            self.unacked = None;
        }
        let Some(m) = self.take().await? else {
            return Ok(None);
        };
        // No await from here on: the item is returned once taken.
        if self
            .client
            .inner
            .out
            .try_send(Out::Frame(ack_frame(self.number, self.port, m.sequence_id)))
            .is_err()
        {
            self.unacked = Some(m.sequence_id);
        }
        Item::decode(m.payload.as_slice())
            .map(Some)
            .map_err(|source| RpcError::Decode {
                procedure: self.procedure.clone(),
                source,
            })
    }
}

fn ack_frame(number: u32, port_id: u32, sequence_id: u32) -> Frame {
    Frame::StreamAck(StreamMessage {
        message_identifier: identifier(MessageType::StreamAck, number),
        port_id,
        sequence_id,
        payload: Vec::new(),
        closed: false,
        ack: true,
    })
}

impl<Item> Drop for ServerStream<Item> {
    fn drop(&mut self) {
        let inner = &self.client.inner;
        let open = inner
            .table
            .lock()
            .map(|mut t| t.streams.remove(&self.number).is_some())
            .unwrap_or(false);
        if open && !self.done {
            // Best effort: if the queue is full the server stops the stream when the
            // connection ends.
            let _ = inner
                .out
                .try_send(Out::Frame(cancel_frame(self.number, self.port)));
        }
    }
}

/// Reads the next dcl-rpc frame (pings and pongs skipped); with `idle`, at most that long
/// for each WebSocket message (a ping counts).
async fn read_frame<S>(stream: &mut S, idle: Option<Duration>) -> Result<Frame, RpcError>
where
    S: futures_util::Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    loop {
        let next = match idle {
            Some(limit) => tokio::time::timeout(limit, stream.next())
                .await
                .map_err(|_| RpcError::Timeout(limit))?,
            None => stream.next().await,
        };
        match next {
            Some(Ok(Message::Binary(b))) => {
                return Frame::decode(&b).map_err(RpcError::Wire);
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            Some(Ok(Message::Text(_))) => {
                return Err(RpcError::Protocol("unexpected text frame".into()));
            }
            Some(Ok(Message::Close(Some(f)))) => {
                return Err(RpcError::Closed {
                    code: Some(u16::from(f.code)),
                    reason: f.reason.to_string(),
                });
            }
            Some(Ok(Message::Close(None))) => {
                return Err(RpcError::Closed {
                    code: None,
                    reason: "close frame without a code".into(),
                });
            }
            Some(Err(
                tungstenite::Error::ConnectionClosed
                | tungstenite::Error::AlreadyClosed
                | tungstenite::Error::Protocol(
                    tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
                ),
            ))
            | None => {
                return Err(RpcError::closed(
                    "the connection ended without a close frame",
                ));
            }
            Some(Err(e)) => return Err(RpcError::Transport(Arc::new(e))),
        }
    }
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn check<T: Send + Sync>() {}
    check::<RpcClient>();
    check::<Module>();
    check::<ServerStream<()>>();
}

#[cfg(test)]
mod tests;
