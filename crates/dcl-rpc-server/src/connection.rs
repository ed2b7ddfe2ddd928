//! One dcl-rpc connection: the auth phase, then the message loop.
//!
//! Bookkeeping is O(1) per frame: every call and stream runs as a task in the connection's
//! [`JoinSet`] and is found by its task id (`tasks`), a stream also by its message number
//! (`streams`); a finished task is removed when the loop joins it, a cancelled one at once. A
//! port remembers the tasks it started, so DESTROY_PORT touches only those. Dropping the
//! `JoinSet` when the connection ends aborts whatever still runs.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use dcl_rpc_wire::{Frame, ModuleProcedure};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio::sync::{mpsc, watch};
use tokio::task::{AbortHandle, Id, JoinSet};
use tokio::time::Instant;

use crate::close_code::*;
use crate::{CallContext, Inner, Payload, Procedure, RpcError};

/// How long the server keeps reading (and dropping) what a client still sends after the server's
/// close frame, waiting for the client's own close frame.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// Frames the connection loop may have queued for the socket.
const OUT_QUEUE: usize = 256;

/// Decrements the connection count when the connection ends.
struct CountGuard(Arc<Inner>);
impl Drop for CountGuard {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Sends a close frame, then reads and drops what the client still sends until its close frame,
/// the end of the stream, or [`CLOSE_LINGER`]. Without this, closing a socket that still holds
/// unread input makes the kernel answer with a TCP reset, and the client may see that reset
/// (1006) instead of our close frame. After a read error (e.g. a frame over the WebSocket
/// limit) the socket reads nothing more, so the rest of such a frame is never buffered.
async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let frame = Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }));
    // A client that reads nothing cannot hold the connection open by not taking the frame.
    if !matches!(
        tokio::time::timeout(CLOSE_LINGER, socket.send(frame)).await,
        Ok(Ok(()))
    ) {
        return;
    }
    let _ = tokio::time::timeout(CLOSE_LINGER, async {
        while let Some(Ok(msg)) = socket.recv().await {
            if matches!(msg, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// Whether a WebSocket read error means "frame over the size limit": tungstenite's capacity
/// error (a message or frame over the limits set in [`crate::RpcServer::upgrade`]) or a control
/// frame over 125 bytes. Told by the error's type, which axum keeps as the source; our
/// `tungstenite` dependency is the version axum runs on, and the tests that send oversized
/// frames (expecting 1009) would notice if the two ever drifted apart.
fn too_big(e: &axum::Error) -> bool {
    use std::error::Error as _;
    use tungstenite::error::{Error, ProtocolError};
    matches!(
        e.source().and_then(|s| s.downcast_ref::<Error>()),
        Some(Error::Capacity(_) | Error::Protocol(ProtocolError::ControlFrameTooBig))
    )
}

enum Step {
    Continue,
    Close(u16, &'static str),
}

struct Port {
    /// Procedure id → procedure, for every module loaded on this port.
    procedures: HashMap<u32, Procedure>,
    /// Modules loaded on this port and the ids they were given: a repeated REQUEST_MODULE
    /// answers the same ids, so a port holds each of the server's modules at most once.
    modules: HashMap<String, Vec<ModuleProcedure>>,
    next_procedure: u32,
    /// Calls and streams started on this port.
    tasks: HashSet<Id>,
}

enum TaskKind {
    Call,
    Stream {
        number: u32,
        /// The highest sequence the client acknowledged (a watch keeps only the latest, so
        /// acknowledgements never pile up).
        acks: watch::Sender<Option<u32>>,
    },
}

struct Task {
    port_id: u32,
    abort: AbortHandle,
    kind: TaskKind,
}

struct Conn {
    inner: Arc<Inner>,
    ctx: CallContext,
    ports: HashMap<u32, Port>,
    next_port: u32,
    /// Every running call and stream, by task id.
    tasks: HashMap<Id, Task>,
    /// Running streams by message number.
    streams: HashMap<u32, Id>,
    calls: usize,
    set: JoinSet<()>,
    out: mpsc::Sender<Vec<u8>>,
    /// Direct replies that found `out` full. While any wait here the loop reads no frame, so
    /// there is at most one (plus the replies to the frames buffered during the auth phase).
    backlog: VecDeque<Vec<u8>>,
}

pub(crate) async fn run(inner: Arc<Inner>, mut socket: WebSocket) {
    let count = inner.connections.fetch_add(1, Ordering::Relaxed) + 1;
    let _guard = CountGuard(inner.clone());
    if *inner.shutdown.borrow() {
        return close(&mut socket, GOING_AWAY, "Server shutting down").await;
    }
    if count > inner.config.max_connections {
        tracing::debug!(
            limit = inner.config.max_connections,
            "dcl-rpc connection refused: too many connections"
        );
        return close(&mut socket, TRY_AGAIN_LATER, "Too many connections").await;
    }
    let connection_id = inner.next_connection.fetch_add(1, Ordering::Relaxed);
    let max_frame = inner.config.max_frame_bytes;

    // ---- auth phase ----
    let deadline = Instant::now() + inner.config.auth_timeout;
    let auth_text = loop {
        tokio::select! {
            msg = socket.recv() => match msg {
                Some(Ok(Message::Text(t))) if t.len() > max_frame => {
                    return close(&mut socket, TOO_BIG, "Message too big").await;
                }
                Some(Ok(Message::Text(t))) => break t.to_string(),
                Some(Ok(Message::Binary(b))) if b.len() > max_frame => {
                    return close(&mut socket, TOO_BIG, "Message too big").await;
                }
                Some(Ok(Message::Binary(b))) => match String::from_utf8(b.to_vec()) {
                    Ok(t) => break t,
                    Err(_) => return close(&mut socket, UNAUTHORIZED, "Unauthorized").await,
                },
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Err(e)) if too_big(&e) => {
                    return close(&mut socket, TOO_BIG, "Message too big").await;
                }
                _ => return,
            },
            _ = tokio::time::sleep_until(deadline) => {
                return close(&mut socket, AUTH_TIMEOUT, "Authentication timeout").await;
            }
        }
    };
    let mut buffered: Vec<Vec<u8>> = Vec::new();
    let mut buffered_bytes = 0usize;
    let verify = inner.auth.authenticate(&auth_text);
    tokio::pin!(verify);
    let verdict = loop {
        tokio::select! {
            v = &mut verify => break v,
            msg = socket.recv() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    if b.len() > max_frame {
                        return close(&mut socket, TOO_BIG, "Message too big").await;
                    }
                    buffered_bytes += b.len();
                    if buffered.len() >= inner.config.max_buffered_frames
                        || buffered_bytes > max_frame
                    {
                        return close(&mut socket, TRY_AGAIN_LATER, "Too many frames before authentication").await;
                    }
                    buffered.push(b.to_vec());
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Text(_))) => return close(&mut socket, UNAUTHORIZED, "Unauthorized").await,
                Some(Err(e)) if too_big(&e) => {
                    return close(&mut socket, TOO_BIG, "Message too big").await;
                }
                _ => return,
            },
        }
    };
    let address = match verdict {
        Ok(a) => a,
        Err(reason) => {
            tracing::debug!(%reason, "dcl-rpc auth refused");
            return close(&mut socket, UNAUTHORIZED, "Unauthorized").await;
        }
    };
    let ctx = CallContext {
        address,
        connection_id,
    };
    if socket
        .send(Message::Binary(Frame::server_ready().encode().into()))
        .await
        .is_err()
    {
        return;
    }
    inner.hooks.connected(&ctx).await;

    let (out, mut out_rx) = mpsc::channel::<Vec<u8>>(OUT_QUEUE);
    let mut conn = Conn {
        inner: inner.clone(),
        ctx: ctx.clone(),
        ports: HashMap::new(),
        next_port: 1,
        tasks: HashMap::new(),
        streams: HashMap::new(),
        calls: 0,
        set: JoinSet::new(),
        out,
        backlog: VecDeque::new(),
    };
    let mut end: Option<(u16, &'static str)> = None;
    for frame in buffered {
        if let Step::Close(code, reason) = conn.on_frame(&frame) {
            end = Some((code, reason));
            break;
        }
    }

    // ---- message loop ----
    let mut shutdown = inner.shutdown.clone();
    let mut ping = tokio::time::interval(inner.config.ping_interval);
    ping.tick().await;
    let mut last_seen = Instant::now();
    // A sender of its own, so that a slot reserved for the backlog borrows nothing of `conn`.
    let backlog_out = conn.out.clone();
    while end.is_none() {
        let idle_deadline = last_seen + inner.config.idle_timeout;
        tokio::select! {
            msg = socket.recv(), if conn.backlog.is_empty() => {
                last_seen = Instant::now();
                match msg {
                    Some(Ok(Message::Binary(b))) => {
                        if b.len() > max_frame {
                            end = Some((TOO_BIG, "Message too big"));
                        } else if let Step::Close(code, reason) = conn.on_frame(&b) {
                            end = Some((code, reason));
                        }
                    }
                    Some(Ok(Message::Text(_))) => end = Some((TRANSPORT_ERROR, "RPC transport closed")),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_))) | None => break,
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "websocket error");
                        if too_big(&e) {
                            end = Some((TOO_BIG, "Message too big"));
                        } else {
                            break;
                        }
                    }
                }
            }
            Ok(permit) = backlog_out.reserve(), if !conn.backlog.is_empty() => {
                if let Some(bytes) = conn.backlog.pop_front() {
                    permit.send(bytes);
                }
            }
            Some(done) = conn.set.join_next_with_id(), if !conn.set.is_empty() => {
                let id = match done {
                    Ok((id, ())) => id,
                    Err(e) => e.id(),
                };
                conn.finished(id);
            }
            Some(bytes) = out_rx.recv() => {
                // A client that takes nothing for the idle timeout is gone.
                let sent = tokio::time::timeout(
                    inner.config.idle_timeout,
                    socket.send(Message::Binary(bytes.into())),
                );
                if !matches!(sent.await, Ok(Ok(()))) {
                    break;
                }
            }
            _ = ping.tick() => {
                let sent = tokio::time::timeout(
                    inner.config.idle_timeout,
                    socket.send(Message::Ping(Vec::new().into())),
                );
                if !matches!(sent.await, Ok(Ok(()))) {
                    break;
                }
            }
            _ = tokio::time::sleep_until(idle_deadline) => end = Some((GOING_AWAY, "Idle timeout")),
            _ = shutdown.changed() => end = Some((GOING_AWAY, "Server shutting down")),
        }
    }
    // Abort every call and stream, and free the connection's tables before lingering.
    drop(conn);
    drop(backlog_out);
    drop(out_rx);
    if let Some((code, reason)) = end {
        close(&mut socket, code, reason).await;
    }
    inner.hooks.disconnected(&ctx).await;
}

impl Conn {
    fn on_frame(&mut self, bytes: &[u8]) -> Step {
        let frame = match Frame::decode(bytes) {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!(error = %e, "undecodable dcl-rpc frame");
                return Step::Close(TRANSPORT_ERROR, "RPC transport closed");
            }
        };
        if !frame.kind().from_client() {
            return Step::Close(TRANSPORT_ERROR, "RPC transport closed");
        }
        let number = frame.number();
        match frame {
            Frame::CreatePort(_) => self.on_create_port(number),
            Frame::RequestModule(m) => self.on_request_module(number, m.port_id, &m.module_name),
            Frame::Request(r) => self.on_request(number, r.port_id, r.procedure_id, r.payload),
            Frame::StreamAck(s) | Frame::StreamMessage(s) => {
                if s.closed {
                    if let Some(id) = self.streams.get(&number).copied() {
                        self.stop(id);
                    }
                } else if s.ack
                    && let Some(id) = self.streams.get(&number)
                    && let Some(Task {
                        kind: TaskKind::Stream { acks, .. },
                        ..
                    }) = self.tasks.get(id)
                {
                    let seq = s.sequence_id;
                    acks.send_if_modified(|acked| {
                        if acked.is_none_or(|a| seq > a) {
                            *acked = Some(seq);
                            true
                        } else {
                            false
                        }
                    });
                }
            }
            Frame::DestroyPort(d) => {
                if let Some(port) = self.ports.remove(&d.port_id) {
                    for id in port.tasks {
                        self.stop(id);
                    }
                }
            }
            _ => return Step::Close(TRANSPORT_ERROR, "RPC transport closed"),
        }
        Step::Continue
    }

    fn on_create_port(&mut self, number: u32) {
        let limit = self.inner.config.max_ports_per_connection;
        if self.ports.len() >= limit {
            self.send(Frame::remote_error(
                number,
                0,
                format!("Too many ports on this connection (limit {limit})"),
            ));
            return;
        }
        let port_id = self.next_port;
        let Some(next) = self.next_port.checked_add(1) else {
            self.send(Frame::remote_error(number, 0, "No port ids left"));
            return;
        };
        self.next_port = next;
        self.ports.insert(
            port_id,
            Port {
                procedures: HashMap::new(),
                modules: HashMap::new(),
                next_procedure: 1,
                tasks: HashSet::new(),
            },
        );
        self.send(Frame::create_port_response(number, port_id));
    }

    fn on_request_module(&mut self, number: u32, port_id: u32, name: &str) {
        let Some(port) = self.ports.get_mut(&port_id) else {
            self.send(Frame::remote_error(
                number,
                0,
                format!("Unknown port {port_id}"),
            ));
            return;
        };
        if let Some(listed) = port.modules.get(name) {
            let frame = Frame::request_module_response(number, port_id, listed.clone());
            self.send(frame);
            return;
        }
        let Some(module) = self.inner.modules.get(name) else {
            self.send(Frame::remote_error(
                number,
                0,
                format!("Unknown module {name}"),
            ));
            return;
        };
        let mut listed = Vec::with_capacity(module.procedures.len());
        for (procedure_name, procedure) in &module.procedures {
            let id = port.next_procedure;
            port.next_procedure += 1;
            port.procedures.insert(id, procedure.clone());
            listed.push(ModuleProcedure {
                procedure_id: id,
                procedure_name: procedure_name.clone(),
            });
        }
        port.modules.insert(module.name.clone(), listed.clone());
        self.send(Frame::request_module_response(number, port_id, listed));
    }

    fn on_request(&mut self, number: u32, port_id: u32, procedure_id: u32, payload: Payload) {
        let Some(port) = self.ports.get(&port_id) else {
            self.send(Frame::remote_error(
                number,
                0,
                format!("Unknown port {port_id}"),
            ));
            return;
        };
        let Some(procedure) = port.procedures.get(&procedure_id).cloned() else {
            self.send(Frame::remote_error(
                number,
                0,
                format!("Unknown procedure {procedure_id}"),
            ));
            return;
        };
        let max_calls = self.inner.config.max_calls_per_connection;
        let max_streams = self.inner.config.max_streams_per_connection;
        let out = self.out.clone();
        let ctx = self.ctx.clone();
        let (abort, kind) = match procedure {
            Procedure::Unary(f) => {
                if self.calls >= max_calls {
                    self.send(Frame::remote_error(
                        number,
                        0,
                        format!(
                            "Too many calls in progress on this connection (limit {max_calls})"
                        ),
                    ));
                    return;
                }
                let abort = self.set.spawn(async move {
                    let frame = match f(ctx, payload).await {
                        Ok(p) => Frame::response(number, p),
                        Err(e) => Frame::remote_error(number, e.code, e.message),
                    };
                    let _ = out.send(frame.encode()).await;
                });
                self.calls += 1;
                (abort, TaskKind::Call)
            }
            Procedure::ServerStream(f) => {
                if self.streams.contains_key(&number) {
                    self.send(Frame::remote_error(
                        number,
                        0,
                        format!("Stream {number} is already open"),
                    ));
                    return;
                }
                if self.streams.len() >= max_streams {
                    self.send(Frame::remote_error(
                        number,
                        0,
                        format!("Too many open streams on this connection (limit {max_streams})"),
                    ));
                    return;
                }
                let (acks, acks_rx) = watch::channel(None);
                let live = StreamGuard::new(self.inner.streams.clone());
                let abort = self.set.spawn(async move {
                    let _live = live;
                    match f(ctx, payload).await {
                        Ok(stream) => serve_stream(number, port_id, stream, out, acks_rx).await,
                        Err(e) => {
                            let _ = out
                                .send(Frame::remote_error(number, e.code, e.message).encode())
                                .await;
                        }
                    }
                });
                self.streams.insert(number, abort.id());
                (abort, TaskKind::Stream { number, acks })
            }
        };
        let id = abort.id();
        if let Some(port) = self.ports.get_mut(&port_id) {
            port.tasks.insert(id);
        }
        self.tasks.insert(
            id,
            Task {
                port_id,
                abort,
                kind,
            },
        );
    }

    /// Forgets a task (finished, or about to be aborted).
    fn forget(&mut self, id: Id) -> Option<Task> {
        let task = self.tasks.remove(&id)?;
        match &task.kind {
            TaskKind::Call => self.calls -= 1,
            TaskKind::Stream { number, .. } => {
                self.streams.remove(number);
            }
        }
        if let Some(port) = self.ports.get_mut(&task.port_id) {
            port.tasks.remove(&id);
        }
        Some(task)
    }

    /// A task ended by itself (or was aborted, then it is already forgotten).
    fn finished(&mut self, id: Id) {
        self.forget(id);
    }

    /// Aborts a call or stream (its producer is dropped at once).
    fn stop(&mut self, id: Id) {
        if let Some(task) = self.forget(id) {
            task.abort.abort();
        }
    }

    /// Queues a direct reply. A reply is never dropped: when `out` is full it waits in the
    /// backlog, and the loop stops reading frames until it is sent (so a client that does not
    /// read its answers stops being read, and the idle timeout ends it).
    fn send(&mut self, frame: Frame) {
        let bytes = frame.encode();
        if !self.backlog.is_empty() {
            self.backlog.push_back(bytes);
        } else if let Err(mpsc::error::TrySendError::Full(bytes)) = self.out.try_send(bytes) {
            self.backlog.push_back(bytes);
        }
    }
}

/// Counts a live stream producer; dropped with the stream task (also when it is aborted).
struct StreamGuard(Arc<std::sync::atomic::AtomicUsize>);

impl StreamGuard {
    fn new(counter: Arc<std::sync::atomic::AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        StreamGuard(counter)
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Sends the open message, then one item per acknowledgement; ends with `closed = true`.
async fn serve_stream(
    number: u32,
    port_id: u32,
    mut stream: BoxStream<'static, Result<Payload, RpcError>>,
    out: mpsc::Sender<Vec<u8>>,
    mut acks: watch::Receiver<Option<u32>>,
) {
    let mut seq = 0u32;
    if out
        .send(Frame::stream_message(number, port_id, seq, Vec::new(), false).encode())
        .await
        .is_err()
    {
        return;
    }
    loop {
        // One item in flight: wait for the acknowledgement of `seq`.
        if acks
            .wait_for(|acked| acked.is_some_and(|a| a >= seq))
            .await
            .is_err()
        {
            return;
        }
        match stream.next().await {
            Some(Ok(payload)) => {
                seq += 1;
                if out
                    .send(Frame::stream_message(number, port_id, seq, payload, false).encode())
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Some(Err(e)) => {
                let _ = out
                    .send(Frame::remote_error(number, e.code, e.message).encode())
                    .await;
                return;
            }
            None => {
                let _ = out
                    .send(Frame::stream_message(number, port_id, seq, Vec::new(), true).encode())
                    .await;
                return;
            }
        }
    }
}
