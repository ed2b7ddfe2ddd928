//! One dcl-rpc connection: the auth phase, then the message loop.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use dcl_rpc_wire::{Frame, ModuleProcedure};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::close_code::*;
use crate::{CallContext, Inner, Payload, Procedure, RpcError};

/// Decrements the connection count when the connection ends.
struct CountGuard(Arc<Inner>);
impl Drop for CountGuard {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
}

enum Step {
    Continue,
    Close(u16, &'static str),
}

struct Port {
    procedures: HashMap<u32, Procedure>,
    next_procedure: u32,
    tasks: Vec<AbortHandle>,
}

struct Stream {
    port_id: u32,
    acks: mpsc::UnboundedSender<u32>,
    task: AbortHandle,
}

struct Conn {
    inner: Arc<Inner>,
    ctx: CallContext,
    ports: HashMap<u32, Port>,
    next_port: u32,
    streams: HashMap<u32, Stream>,
    out: mpsc::Sender<Vec<u8>>,
}

pub(crate) async fn run(inner: Arc<Inner>, mut socket: WebSocket) {
    let count = inner.connections.fetch_add(1, Ordering::Relaxed) + 1;
    let _guard = CountGuard(inner.clone());
    if *inner.shutdown.borrow() {
        return close(&mut socket, GOING_AWAY, "Server shutting down").await;
    }
    if count > inner.config.max_connections {
        return close(&mut socket, TRY_AGAIN_LATER, "Too many connections").await;
    }
    let connection_id = inner.next_connection.fetch_add(1, Ordering::Relaxed);

    // ---- auth phase ----
    let deadline = Instant::now() + inner.config.auth_timeout;
    let auth_text = loop {
        tokio::select! {
            msg = socket.recv() => match msg {
                Some(Ok(Message::Text(t))) => break t.to_string(),
                Some(Ok(Message::Binary(b))) => match String::from_utf8(b.to_vec()) {
                    Ok(t) => break t,
                    Err(_) => return close(&mut socket, UNAUTHORIZED, "Unauthorized").await,
                },
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                _ => return,
            },
            _ = tokio::time::sleep_until(deadline) => {
                return close(&mut socket, AUTH_TIMEOUT, "Authentication timeout").await;
            }
        }
    };
    let mut buffered: Vec<Vec<u8>> = Vec::new();
    let verify = inner.auth.authenticate(&auth_text);
    tokio::pin!(verify);
    let verdict = loop {
        tokio::select! {
            v = &mut verify => break v,
            msg = socket.recv() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    if buffered.len() >= inner.config.max_buffered_frames || b.len() > inner.config.max_frame_bytes {
                        return close(&mut socket, TRY_AGAIN_LATER, "Too many frames before authentication").await;
                    }
                    buffered.push(b.to_vec());
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Text(_))) => return close(&mut socket, UNAUTHORIZED, "Unauthorized").await,
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

    let (out, mut out_rx) = mpsc::channel::<Vec<u8>>(256);
    let mut conn = Conn {
        inner: inner.clone(),
        ctx: ctx.clone(),
        ports: HashMap::new(),
        next_port: 1,
        streams: HashMap::new(),
        out,
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
    while end.is_none() {
        let idle_deadline = last_seen + inner.config.idle_timeout;
        tokio::select! {
            msg = socket.recv() => {
                last_seen = Instant::now();
                match msg {
                    Some(Ok(Message::Binary(b))) => {
                        if b.len() > inner.config.max_frame_bytes {
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
                        let text = e.to_string();
                        if text.contains("too long") || text.contains("too big") || text.contains("Space limit") {
                            end = Some((TOO_BIG, "Message too big"));
                        } else {
                            break;
                        }
                    }
                }
            }
            Some(bytes) = out_rx.recv() => {
                if socket.send(Message::Binary(bytes.into())).await.is_err() {
                    break;
                }
            }
            _ = ping.tick() => {
                if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                    break;
                }
            }
            _ = tokio::time::sleep_until(idle_deadline) => end = Some((GOING_AWAY, "Idle timeout")),
            _ = shutdown.changed() => end = Some((GOING_AWAY, "Server shutting down")),
        }
    }
    conn.stop_all();
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
            Frame::CreatePort(_) => {
                let port_id = self.next_port;
                self.next_port += 1;
                self.ports.insert(
                    port_id,
                    Port {
                        procedures: HashMap::new(),
                        next_procedure: 1,
                        tasks: Vec::new(),
                    },
                );
                self.send(Frame::create_port_response(number, port_id));
            }
            Frame::RequestModule(m) => {
                let Some(module) = self.inner.modules.get(&m.module_name).cloned() else {
                    self.send(Frame::remote_error(
                        number,
                        0,
                        format!("Unknown module {}", m.module_name),
                    ));
                    return Step::Continue;
                };
                let Some(port) = self.ports.get_mut(&m.port_id) else {
                    self.send(Frame::remote_error(
                        number,
                        0,
                        format!("Unknown port {}", m.port_id),
                    ));
                    return Step::Continue;
                };
                let mut listed = Vec::with_capacity(module.procedures.len());
                for (name, procedure) in module.procedures {
                    let id = port.next_procedure;
                    port.next_procedure += 1;
                    port.procedures.insert(id, procedure);
                    listed.push(ModuleProcedure {
                        procedure_id: id,
                        procedure_name: name,
                    });
                }
                self.send(Frame::request_module_response(number, m.port_id, listed));
            }
            Frame::Request(r) => self.on_request(number, r.port_id, r.procedure_id, r.payload),
            Frame::StreamAck(s) | Frame::StreamMessage(s) => {
                if s.closed {
                    if let Some(stream) = self.streams.remove(&number) {
                        stream.task.abort();
                    }
                } else if s.ack
                    && let Some(stream) = self.streams.get(&number)
                {
                    let _ = stream.acks.send(s.sequence_id);
                }
            }
            Frame::DestroyPort(d) => {
                if let Some(port) = self.ports.remove(&d.port_id) {
                    for t in port.tasks {
                        t.abort();
                    }
                }
                let doomed: Vec<u32> = self
                    .streams
                    .iter()
                    .filter(|(_, s)| s.port_id == d.port_id)
                    .map(|(n, _)| *n)
                    .collect();
                for n in doomed {
                    if let Some(s) = self.streams.remove(&n) {
                        s.task.abort();
                    }
                }
            }
            _ => return Step::Close(TRANSPORT_ERROR, "RPC transport closed"),
        }
        Step::Continue
    }

    fn on_request(&mut self, number: u32, port_id: u32, procedure_id: u32, payload: Payload) {
        let Some(port) = self.ports.get_mut(&port_id) else {
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
        let out = self.out.clone();
        let ctx = self.ctx.clone();
        match procedure {
            Procedure::Unary(f) => {
                let task = tokio::spawn(async move {
                    let frame = match f(ctx, payload).await {
                        Ok(p) => Frame::response(number, p),
                        Err(e) => Frame::remote_error(number, e.code, e.message),
                    };
                    let _ = out.send(frame.encode()).await;
                });
                port.tasks.retain(|t| !t.is_finished());
                port.tasks.push(task.abort_handle());
            }
            Procedure::ServerStream(f) => {
                let (acks_tx, acks_rx) = mpsc::unbounded_channel();
                let live = StreamGuard::new(self.inner.streams.clone());
                let task = tokio::spawn(async move {
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
                self.streams.retain(|_, s| !s.task.is_finished());
                self.streams.insert(
                    number,
                    Stream {
                        port_id,
                        acks: acks_tx,
                        task: task.abort_handle(),
                    },
                );
            }
        }
    }

    fn send(&self, frame: Frame) {
        // The loop drains `out` concurrently; a full queue means a stuck client, which the
        // idle timeout and the bounded queue deal with.
        let _ = self.out.try_send(frame.encode());
    }

    fn stop_all(&mut self) {
        for (_, s) in self.streams.drain() {
            s.task.abort();
        }
        for (_, p) in self.ports.drain() {
            for t in p.tasks {
                t.abort();
            }
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
    mut acks: mpsc::UnboundedReceiver<u32>,
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
        loop {
            match acks.recv().await {
                Some(acked) if acked >= seq => break,
                Some(_) => continue,
                None => return,
            }
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
