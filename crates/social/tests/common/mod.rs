//! A minimal Rust dcl-rpc client for tests (the official client is exercised from Node in
//! `interop.rs`): auth frame, port, module, unary calls by procedure name.
#![allow(dead_code)]

use std::collections::HashMap;
use std::time::Duration;

use dcl_rpc_wire::{CreatePort, Frame, MessageType, Request, RequestModule, identifier};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The auth frame of `owner`: signed-fetch headers of `GET /` as JSON.
pub fn auth_frame(owner: &authchain::Wallet) -> String {
    let id = authchain::Identity::new(owner, chrono_like_expiration());
    let headers = id.signed_fetch_headers("get", "/", authchain::now_ms(), "{}");
    let map: serde_json::Map<String, serde_json::Value> = headers
        .into_iter()
        .map(|(k, v)| (k, serde_json::Value::String(v)))
        .collect();
    serde_json::Value::Object(map).to_string()
}

fn chrono_like_expiration() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now() + chrono::Duration::minutes(10)
}

pub struct Client {
    pub ws: Ws,
    pub address: String,
    procedures: HashMap<String, u32>,
    next: u32,
}

impl Client {
    pub async fn connect(url: &str, owner: &authchain::Wallet) -> Client {
        // A small read buffer: tungstenite zero-fills it before every read.
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .read_buffer_size(8 * 1024);
        let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), false)
            .await
            .expect("connect");
        ws.send(Message::Text(auth_frame(owner).into()))
            .await
            .expect("auth");
        let mut c = Client {
            ws,
            address: owner.address().to_lower_hex(),
            procedures: HashMap::new(),
            next: 100,
        };
        assert!(matches!(c.frame().await, Frame::ServerReady { .. }));
        let n = c.number();
        c.send(Frame::CreatePort(CreatePort {
            message_identifier: identifier(MessageType::CreatePort, n),
            port_name: "social_service".into(),
        }))
        .await;
        assert!(matches!(c.frame().await, Frame::CreatePortResponse(_)));
        let n = c.number();
        c.send(Frame::RequestModule(RequestModule {
            message_identifier: identifier(MessageType::RequestModule, n),
            port_id: 1,
            module_name: "SocialService".into(),
        }))
        .await;
        match c.frame().await {
            Frame::RequestModuleResponse(r) => {
                c.procedures = r
                    .procedures
                    .into_iter()
                    .map(|p| (p.procedure_name, p.procedure_id))
                    .collect();
            }
            other => panic!("{other:?}"),
        }
        c
    }

    fn number(&mut self) -> u32 {
        self.next += 1;
        self.next
    }

    pub async fn send(&mut self, f: Frame) {
        self.ws
            .send(Message::Binary(f.encode().into()))
            .await
            .expect("send");
    }

    pub async fn frame(&mut self) -> Frame {
        loop {
            match tokio::time::timeout(Duration::from_secs(10), self.ws.next())
                .await
                .expect("frame in time")
            {
                Some(Ok(Message::Binary(b))) => return Frame::decode(&b).expect("decodes"),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    /// Calls a unary procedure by name; returns the decoded response or the remote error text.
    pub async fn call<Req: prost::Message, Resp: prost::Message + Default>(
        &mut self,
        name: &str,
        req: &Req,
    ) -> Result<Resp, String> {
        let id = *self
            .procedures
            .get(name)
            .unwrap_or_else(|| panic!("no procedure {name}"));
        let n = self.number();
        self.send(Frame::Request(Request {
            message_identifier: identifier(MessageType::Request, n),
            port_id: 1,
            procedure_id: id,
            client_stream: 0,
            payload: req.encode_to_vec(),
        }))
        .await;
        match self.frame().await {
            Frame::Response(r) => Ok(Resp::decode(r.payload.as_slice()).expect("response decodes")),
            Frame::RemoteError(e) => Err(e.error_message),
            other => panic!("{other:?}"),
        }
    }

    /// Opens a server stream by procedure name; returns its request number once the server
    /// sent the "open" message.
    pub async fn subscribe(&mut self, name: &str) -> u32 {
        let id = *self
            .procedures
            .get(name)
            .unwrap_or_else(|| panic!("no procedure {name}"));
        let n = self.number();
        self.send(Frame::Request(Request {
            message_identifier: identifier(MessageType::Request, n),
            port_id: 1,
            procedure_id: id,
            client_stream: 0,
            payload: Vec::new(),
        }))
        .await;
        match self.frame().await {
            Frame::StreamMessage(m) if m.sequence_id == 0 && !m.closed => n,
            other => panic!("{other:?}"),
        }
    }

    /// Opens a server stream by procedure name: its request number once the server sent the
    /// "open" message, or the remote error's text if the server refused it.
    pub async fn try_subscribe(&mut self, name: &str) -> Result<u32, String> {
        let id = *self
            .procedures
            .get(name)
            .unwrap_or_else(|| panic!("no procedure {name}"));
        let n = self.number();
        self.send(Frame::Request(Request {
            message_identifier: identifier(MessageType::Request, n),
            port_id: 1,
            procedure_id: id,
            client_stream: 0,
            payload: Vec::new(),
        }))
        .await;
        match self.frame().await {
            Frame::StreamMessage(m) if m.sequence_id == 0 && !m.closed => Ok(n),
            Frame::RemoteError(e) => Err(e.error_message),
            other => panic!("{other:?}"),
        }
    }

    /// Acknowledges `seq` on stream `number` and returns the next item's payload.
    pub async fn next_item(&mut self, number: u32, seq: u32) -> Vec<u8> {
        self.ack(number, seq).await;
        self.item().await
    }

    /// Acknowledges `seq` on stream `number` (the server then sends the next item).
    pub async fn ack(&mut self, number: u32, seq: u32) {
        self.send(Frame::StreamAck(dcl_rpc_wire::StreamMessage {
            message_identifier: identifier(MessageType::StreamAck, number),
            port_id: 1,
            sequence_id: seq,
            payload: Vec::new(),
            closed: false,
            ack: true,
        }))
        .await;
    }

    /// The payload of the next stream item (cancel-safe: nothing is lost if dropped while
    /// waiting).
    pub async fn item(&mut self) -> Vec<u8> {
        match self.frame().await {
            Frame::StreamMessage(m) if !m.closed => m.payload,
            other => panic!("{other:?}"),
        }
    }

    /// Waits for a close frame and returns its code.
    pub async fn close_code(ws: &mut Ws) -> u16 {
        loop {
            match tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await
                .expect("close in time")
            {
                Some(Ok(Message::Close(Some(f)))) => return u16::from(f.code),
                Some(Ok(Message::Close(None))) | None => return 1005,
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("{e}"),
            }
        }
    }
}
