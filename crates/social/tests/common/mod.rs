//! Test clients of the social service: [`Client`] on the workspace's dcl-rpc client
//! (`dcl-rpc-client`; the official client is exercised from Node in `interop.rs`), and raw
//! WebSocket access ([`Ws`], [`auth_frame`]) for tests that send bad frames on purpose.
#![allow(dead_code)]

use std::time::Duration;

use futures_util::StreamExt;
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

/// A test user's connection: the workspace's dcl-rpc client (`dcl-rpc-client`), with the
/// social module loaded. Failures other than a remote error panic (this is a test helper).
pub struct Client {
    pub rpc: dcl_rpc_client::RpcClient,
    pub module: dcl_rpc_client::Module,
    pub address: String,
}

/// A server stream of `T` items (acknowledged one at a time as they are taken).
pub type Stream<T> = dcl_rpc_client::ServerStream<T>;

impl Client {
    pub async fn connect(url: &str, owner: &authchain::Wallet) -> Client {
        let id = authchain::Identity::new(owner, chrono_like_expiration());
        let rpc = dcl_rpc_client::RpcClient::connect_as(
            url,
            &id,
            dcl_rpc_client::ClientConfig::default(),
        )
        .await
        .expect("connect");
        let module = rpc
            .module("social_service", "SocialService")
            .await
            .expect("module");
        Client {
            rpc,
            module,
            address: owner.address().to_lower_hex(),
        }
    }

    /// Calls a unary procedure by name; returns the decoded response or the remote error text.
    pub async fn call<Req: prost::Message, Resp: prost::Message + Default>(
        &mut self,
        name: &str,
        req: &Req,
    ) -> Result<Resp, String> {
        match self.module.call(name, req).await {
            Ok(r) => Ok(r),
            Err(dcl_rpc_client::RpcError::Remote { message, .. }) => Err(message),
            Err(e) => panic!("{name}: {e:?}"),
        }
    }

    /// Opens a server stream by procedure name, once the server sent the "open" message.
    pub async fn subscribe<T: prost::Message + Default>(&mut self, name: &str) -> Stream<T> {
        match self.try_subscribe(name).await {
            Ok(s) => s,
            Err(e) => panic!("{name} refused: {e}"),
        }
    }

    /// Opens a server stream by procedure name, or the remote error's text if the server
    /// refused it.
    pub async fn try_subscribe<T: prost::Message + Default>(
        &mut self,
        name: &str,
    ) -> Result<Stream<T>, String> {
        match self.module.server_stream(name, &()).await {
            Ok(s) => Ok(s),
            Err(dcl_rpc_client::RpcError::Remote { message, .. }) => Err(message),
            Err(e) => panic!("{name}: {e:?}"),
        }
    }
}

/// The next item of `stream` (acknowledged, so the server may send the one after). Cancel-safe:
/// nothing is lost if dropped while waiting.
pub async fn item<T: prost::Message + Default>(stream: &mut Stream<T>) -> T {
    match stream.next().await {
        Ok(Some(item)) => item,
        Ok(None) => panic!("the stream ended"),
        Err(e) => panic!("the stream failed: {e:?}"),
    }
}

impl Client {
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
