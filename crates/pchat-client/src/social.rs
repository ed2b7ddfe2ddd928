//! The social state the inbox filters with, from the social service (dcl-rpc over WebSocket,
//! `SocialService` v2): my privacy setting, my friends, who I blocked and who blocked me.
//!
//! [`SocialClient::view`] reads it (GetSocialSettings, every page of GetFriends,
//! GetBlockingStatus); [`SocialClient::keep_current`] reads it again whenever a friendship or
//! block update arrives on the streams and hands it to the [`ChatClient`](crate::ChatClient).
//!
//! A read that fails (the service, or its database, is unreachable) never replaces the view:
//! the last good view stays, and [`SocialClient::view_status`] says it is
//! [`ViewStatus::Stale`] and why. `keep_current` then reads again after 1 s, 2 s, 4 s, … (at
//! most every [`RETRY_MAX`]) and at the next update, until a read succeeds
//! ([`ViewStatus::Current`] again).
//!
//! The dcl-rpc client here is our own, small and for this one service: one reader task routes
//! responses and stream items by message number; stream items are acknowledged one at a time
//! as they are taken, so the server's one-item-in-flight backpressure holds.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chat_core::SocialView;
use dcl_rpc_wire::{
    CreatePort, Frame, MessageType, Request, RequestModule, StreamMessage, identifier,
};
use futures_util::{SinkExt, StreamExt};
use pchat_core::Privacy;
use social_proto::v2;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

/// Longest wait for one answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// Friends read per GetFriends page.
const PAGE: i32 = 1000;
/// First pause before reading the view again after a failed read; it doubles each time.
pub const RETRY_FIRST: Duration = Duration::from_secs(1);
/// Longest pause between reads of a stale view.
pub const RETRY_MAX: Duration = Duration::from_secs(30);

/// Errors talking to the social service.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SocialError {
    #[error("cannot connect to the social service: {0}")]
    Connect(String),
    #[error("the social service closed the connection")]
    Closed,
    #[error("no answer from the social service within {0:?}")]
    Timeout(Duration),
    #[error("the social service answered with an error: {0}")]
    Remote(String),
    #[error("unexpected answer from the social service: {0}")]
    Protocol(String),
}

/// How current the social view that [`SocialClient::keep_current`] (or
/// [`SocialClient::refresh`]) maintains is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewStatus {
    /// No view was read yet.
    Unknown,
    /// The last read succeeded: the view is the service's.
    Current,
    /// The last `failures` reads failed, the latest with `error`: the view is the last good
    /// one, unchanged. `keep_current` keeps trying (see the module docs); if the connection
    /// closed, it has stopped (`error` is [`SocialError::Closed`]) and the caller should
    /// connect again.
    Stale { error: SocialError, failures: u32 },
}

type Pending = Mutex<HashMap<u32, oneshot::Sender<Result<Frame, SocialError>>>>;
type Streams = Mutex<HashMap<u32, mpsc::UnboundedSender<StreamMessage>>>;

struct Shared {
    pending: Pending,
    streams: Streams,
}

/// A connection to the social service for one user.
#[derive(Clone)]
pub struct SocialClient {
    out: mpsc::UnboundedSender<Frame>,
    shared: Arc<Shared>,
    next: Arc<AtomicU32>,
    port: u32,
    procedures: Arc<HashMap<String, u32>>,
    me: String,
    status: Arc<tokio::sync::watch::Sender<ViewStatus>>,
}

/// The auth frame: the signed-fetch headers of `GET /` as a JSON object.
fn auth_frame(identity: &authchain::Identity) -> String {
    let headers = identity.signed_fetch_headers("get", "/", authchain::now_ms(), "{}");
    let map: serde_json::Map<String, serde_json::Value> = headers
        .into_iter()
        .map(|(k, v)| (k, serde_json::Value::String(v)))
        .collect();
    serde_json::Value::Object(map).to_string()
}

impl SocialClient {
    /// Connects to the social service at `url` (`ws://…/`) as `identity`'s owner.
    pub async fn connect(
        url: &str,
        identity: &authchain::Identity,
    ) -> Result<SocialClient, SocialError> {
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .read_buffer_size(8 * 1024);
        let (ws, _) = tokio::time::timeout(
            CALL_TIMEOUT,
            tokio_tungstenite::connect_async_with_config(url, Some(config), false),
        )
        .await
        .map_err(|_| SocialError::Timeout(CALL_TIMEOUT))?
        .map_err(|e| SocialError::Connect(e.to_string()))?;
        let (mut sink, mut stream) = ws.split();
        sink.send(Message::Text(auth_frame(identity).into()))
            .await
            .map_err(|e| SocialError::Connect(e.to_string()))?;
        // SERVER_READY first.
        match tokio::time::timeout(CALL_TIMEOUT, read_frame(&mut stream)).await {
            Ok(Ok(Frame::ServerReady { .. })) => {}
            Ok(Ok(other)) => return Err(SocialError::Protocol(format!("{:?}", other.kind()))),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(SocialError::Timeout(CALL_TIMEOUT)),
        }
        let shared = Arc::new(Shared {
            pending: Mutex::new(HashMap::new()),
            streams: Mutex::new(HashMap::new()),
        });
        let (out, mut out_rx) = mpsc::unbounded_channel::<Frame>();
        tokio::spawn(async move {
            while let Some(frame) = out_rx.recv().await {
                if sink
                    .send(Message::Binary(frame.encode().into()))
                    .await
                    .is_err()
                {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        let reader_shared = shared.clone();
        tokio::spawn(async move {
            while let Ok(frame) = read_frame(&mut stream).await {
                route(&reader_shared, frame);
            }
            // Closed: everyone waiting learns it.
            if let Ok(mut p) = reader_shared.pending.lock() {
                for (_, tx) in p.drain() {
                    let _ = tx.send(Err(SocialError::Closed));
                }
            }
            if let Ok(mut s) = reader_shared.streams.lock() {
                s.clear();
            }
        });
        let mut client = SocialClient {
            out,
            shared,
            next: Arc::new(AtomicU32::new(1)),
            port: 0,
            procedures: Arc::new(HashMap::new()),
            me: identity.address().to_lower_hex(),
            status: Arc::new(tokio::sync::watch::Sender::new(ViewStatus::Unknown)),
        };
        let n = client.number();
        let port = match client
            .exchange(
                n,
                Frame::CreatePort(CreatePort {
                    message_identifier: identifier(MessageType::CreatePort, n),
                    port_name: "pchat-client".into(),
                }),
            )
            .await?
        {
            Frame::CreatePortResponse(r) => r.port_id,
            other => return Err(SocialError::Protocol(format!("{:?}", other.kind()))),
        };
        let n = client.number();
        let procedures = match client
            .exchange(
                n,
                Frame::RequestModule(RequestModule {
                    message_identifier: identifier(MessageType::RequestModule, n),
                    port_id: port,
                    module_name: "SocialService".into(),
                }),
            )
            .await?
        {
            Frame::RequestModuleResponse(r) => r
                .procedures
                .into_iter()
                .map(|p| (p.procedure_name, p.procedure_id))
                .collect(),
            other => return Err(SocialError::Protocol(format!("{:?}", other.kind()))),
        };
        client.port = port;
        client.procedures = Arc::new(procedures);
        Ok(client)
    }

    fn number(&self) -> u32 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends `frame` (numbered `n`) and waits for the answer numbered `n`.
    async fn exchange(&self, n: u32, frame: Frame) -> Result<Frame, SocialError> {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = self.shared.pending.lock() {
            p.insert(n, tx);
        }
        self.out.send(frame).map_err(|_| SocialError::Closed)?;
        let answer = tokio::time::timeout(CALL_TIMEOUT, rx).await;
        if let Ok(mut p) = self.shared.pending.lock() {
            p.remove(&n);
        }
        match answer {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(SocialError::Closed),
            Err(_) => Err(SocialError::Timeout(CALL_TIMEOUT)),
        }
    }

    fn procedure(&self, name: &str) -> Result<u32, SocialError> {
        self.procedures
            .get(name)
            .copied()
            .ok_or_else(|| SocialError::Protocol(format!("the service has no {name}")))
    }

    /// A unary call.
    pub async fn call<Req: prost::Message, Resp: prost::Message + Default>(
        &self,
        name: &str,
        req: &Req,
    ) -> Result<Resp, SocialError> {
        let procedure_id = self.procedure(name)?;
        let n = self.number();
        let frame = Frame::Request(Request {
            message_identifier: identifier(MessageType::Request, n),
            port_id: self.port,
            procedure_id,
            client_stream: 0,
            payload: req.encode_to_vec(),
        });
        match self.exchange(n, frame).await? {
            Frame::Response(r) => Resp::decode(r.payload.as_slice())
                .map_err(|e| SocialError::Protocol(format!("{name}: {e}"))),
            Frame::RemoteError(e) => Err(SocialError::Remote(e.error_message)),
            other => Err(SocialError::Protocol(format!("{:?}", other.kind()))),
        }
    }

    /// Opens a server stream; items are taken with [`UpdateStream::next`].
    pub async fn subscribe(&self, name: &str) -> Result<UpdateStream, SocialError> {
        let procedure_id = self.procedure(name)?;
        let n = self.number();
        let (tx, mut rx) = mpsc::unbounded_channel();
        if let Ok(mut s) = self.shared.streams.lock() {
            s.insert(n, tx);
        }
        self.out
            .send(Frame::Request(Request {
                message_identifier: identifier(MessageType::Request, n),
                port_id: self.port,
                procedure_id,
                client_stream: 0,
                payload: Vec::new(),
            }))
            .map_err(|_| SocialError::Closed)?;
        // The server opens the stream with an empty message, sequence 0.
        match tokio::time::timeout(CALL_TIMEOUT, rx.recv()).await {
            Ok(Some(m)) if !m.closed => {}
            Ok(_) => return Err(SocialError::Closed),
            Err(_) => return Err(SocialError::Timeout(CALL_TIMEOUT)),
        }
        let stream = UpdateStream {
            number: n,
            port: self.port,
            out: self.out.clone(),
            rx,
            last_seq: 0,
        };
        stream.ack(0);
        Ok(stream)
    }

    /// My social state now.
    pub async fn view(&self) -> Result<SocialView, SocialError> {
        use v2::get_social_settings_response::Response as S;
        let settings: v2::GetSocialSettingsResponse = self.call("GetSocialSettings", &()).await?;
        // No setting, or one this client does not know, is an error: not a default.
        let privacy = match settings.response {
            Some(S::Ok(ok)) => match ok
                .settings
                .map(|s| v2::PrivateMessagePrivacySetting::try_from(s.private_messages_privacy))
            {
                Some(Ok(v2::PrivateMessagePrivacySetting::OnlyFriends)) => Privacy::OnlyFriends,
                Some(Ok(v2::PrivateMessagePrivacySetting::All)) => Privacy::All,
                other => {
                    return Err(SocialError::Protocol(format!(
                        "GetSocialSettings: private_messages_privacy {other:?}"
                    )));
                }
            },
            other => return Err(SocialError::Remote(format!("GetSocialSettings: {other:?}"))),
        };
        let mut friends = HashSet::new();
        let mut offset = 0;
        loop {
            let page: v2::PaginatedFriendsProfilesResponse = self
                .call(
                    "GetFriends",
                    &v2::GetFriendsPayload {
                        pagination: Some(v2::Pagination {
                            limit: PAGE,
                            offset,
                        }),
                    },
                )
                .await?;
            let n = page.friends.len();
            friends.extend(page.friends.into_iter().map(|f| f.address.to_lowercase()));
            if n < PAGE as usize {
                break;
            }
            offset += PAGE;
        }
        let blocking: v2::GetBlockingStatusResponse = self.call("GetBlockingStatus", &()).await?;
        Ok(SocialView {
            me: self.me.clone(),
            privacy,
            friends,
            blocked: blocking
                .blocked_users
                .into_iter()
                .map(|a| a.to_lowercase())
                .collect(),
            blocked_by: blocking
                .blocked_by_users
                .into_iter()
                .map(|a| a.to_lowercase())
                .collect(),
        })
    }

    /// Reads the view again and gives it to `chat` (after the user's own changes, which the
    /// update streams do not report back). On failure `chat` keeps its view, the error is
    /// returned and [`SocialClient::view_status`] says the view is stale.
    pub async fn refresh(&self, chat: &crate::ChatClient) -> Result<(), SocialError> {
        self.refresh_view(&chat.view_handle()).await
    }

    /// [`SocialClient::refresh`] for a view held elsewhere (`me` is kept).
    pub async fn refresh_view(&self, view: &RwLock<SocialView>) -> Result<(), SocialError> {
        match self.view().await {
            Ok(v) => {
                crate::set_view(view, v);
                self.status.send_replace(ViewStatus::Current);
                Ok(())
            }
            Err(e) => {
                self.mark_stale(e.clone());
                Err(e)
            }
        }
    }

    /// Records a failed read: the view is the last good one.
    fn mark_stale(&self, error: SocialError) {
        tracing::warn!(%error, "cannot read the social view; keeping the last good one");
        self.status.send_modify(|s| {
            let failures = match s {
                ViewStatus::Stale { failures, .. } => failures.saturating_add(1),
                _ => 1,
            };
            *s = ViewStatus::Stale { error, failures };
        });
    }

    /// Whether the view is current, or stale and why.
    pub fn view_status(&self) -> ViewStatus {
        self.status.borrow().clone()
    }

    /// A receiver that sees every change of [`SocialClient::view_status`].
    pub fn watch_view_status(&self) -> tokio::sync::watch::Receiver<ViewStatus> {
        self.status.subscribe()
    }

    /// Keeps `chat`'s social view current: now, and again after every friendship or block
    /// update (until the connection closes). Returns once the first view is set. A failed
    /// read keeps the last good view and is retried (see the module docs).
    pub async fn keep_current(&self, chat: &crate::ChatClient) -> Result<(), SocialError> {
        self.keep_view_current(chat.view_handle()).await
    }

    /// [`SocialClient::keep_current`] for a view held elsewhere (`me` is kept).
    pub async fn keep_view_current(
        &self,
        view: Arc<RwLock<SocialView>>,
    ) -> Result<(), SocialError> {
        let mut friendships = self.subscribe("SubscribeToFriendshipUpdates").await?;
        let mut blocks = self.subscribe("SubscribeToBlockUpdates").await?;
        self.refresh_view(&view).await?;
        let client = self.clone();
        tokio::spawn(async move {
            let mut retry = RETRY_FIRST;
            loop {
                let stale = matches!(client.view_status(), ViewStatus::Stale { .. });
                let more = tokio::select! {
                    u = friendships.next() => u.is_some(),
                    u = blocks.next() => u.is_some(),
                    _ = tokio::time::sleep(retry), if stale => true,
                };
                if !more {
                    // The connection closed: nothing keeps the view current any more.
                    client.mark_stale(SocialError::Closed);
                    break;
                }
                match client.refresh_view(&view).await {
                    Ok(()) => retry = RETRY_FIRST,
                    Err(_) if stale => retry = (retry * 2).min(RETRY_MAX),
                    Err(_) => retry = RETRY_FIRST,
                }
            }
        });
        Ok(())
    }
}

/// Routes one incoming frame to its waiter.
fn route(shared: &Shared, frame: Frame) {
    let number = frame.number();
    match frame {
        Frame::StreamMessage(m) => {
            let mut streams = match shared.streams.lock() {
                Ok(s) => s,
                Err(_) => return,
            };
            if let Some(tx) = streams.get(&number) {
                let closed = m.closed;
                if tx.send(m).is_err() || closed {
                    streams.remove(&number);
                }
            }
        }
        Frame::RemoteError(e) => {
            // A remote error ends a stream or answers a call.
            if let Ok(mut s) = shared.streams.lock() {
                s.remove(&number);
            }
            if let Some(tx) = shared
                .pending
                .lock()
                .ok()
                .and_then(|mut p| p.remove(&number))
            {
                let _ = tx.send(Ok(Frame::RemoteError(e)));
            }
        }
        other => {
            if let Some(tx) = shared
                .pending
                .lock()
                .ok()
                .and_then(|mut p| p.remove(&number))
            {
                let _ = tx.send(Ok(other));
            }
        }
    }
}

async fn read_frame<S>(stream: &mut S) -> Result<Frame, SocialError>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match stream.next().await {
            Some(Ok(Message::Binary(b))) => {
                return Frame::decode(&b).map_err(|e| SocialError::Protocol(e.to_string()));
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            Some(Ok(Message::Text(_))) => {
                return Err(SocialError::Protocol("unexpected text frame".into()));
            }
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return Err(SocialError::Closed),
        }
    }
}

/// A server stream; each item taken is acknowledged so the server sends the next.
pub struct UpdateStream {
    number: u32,
    port: u32,
    out: mpsc::UnboundedSender<Frame>,
    rx: mpsc::UnboundedReceiver<StreamMessage>,
    last_seq: u32,
}

impl UpdateStream {
    fn ack(&self, seq: u32) {
        let _ = self.out.send(Frame::StreamAck(StreamMessage {
            message_identifier: identifier(MessageType::StreamAck, self.number),
            port_id: self.port,
            sequence_id: seq,
            payload: Vec::new(),
            closed: false,
            ack: true,
        }));
    }

    /// The next item's payload; `None` when the stream or the connection ends.
    pub async fn next(&mut self) -> Option<Vec<u8>> {
        let m = self.rx.recv().await?;
        if m.closed {
            return None;
        }
        self.last_seq = m.sequence_id;
        self.ack(m.sequence_id);
        Some(m.payload)
    }
}
