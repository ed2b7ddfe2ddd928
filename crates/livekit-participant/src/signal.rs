//! Signalling over the `/rtc/v1` WebSocket: binary protobuf `SignalRequest`s out,
//! `SignalResponse`s in.

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use livekit_protocol as proto;
use prost::Message as _;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::error::ConnectError;
use crate::token::Credentials;

/// The client protocol version we speak (as the official SDKs do).
pub const PROTOCOL_VERSION: i32 = 17;

/// Largest signalling frame we accept from the server.
pub const MAX_SIGNAL_FRAME: usize = 4 * 1024 * 1024;

pub type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The `JoinRequest` of a data-only participant: protocol 17, no auto-subscribe, no metadata.
pub fn join_request() -> proto::JoinRequest {
    proto::JoinRequest {
        client_info: Some(proto::ClientInfo {
            sdk: proto::client_info::Sdk::Rust as i32,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            protocol: PROTOCOL_VERSION,
            os: std::env::consts::OS.to_owned(),
            ..Default::default()
        }),
        connection_settings: Some(proto::ConnectionSettings {
            auto_subscribe: false,
            adaptive_stream: false,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `<url>/rtc/v1?join_request=<base64url with padding of WrappedJoinRequest>`.
pub fn join_url(base: &str, join: &proto::JoinRequest) -> Result<url::Url, ConnectError> {
    let wrapped = proto::WrappedJoinRequest {
        compression: proto::wrapped_join_request::Compression::None as i32,
        join_request: join.encode_to_vec(),
    };
    let encoded = base64::engine::general_purpose::URL_SAFE.encode(wrapped.encode_to_vec());
    let mut url = url::Url::parse(base)
        .map_err(|e| ConnectError::Signal(format!("bad URL {base:?}: {e}")))?;
    match url.scheme() {
        "ws" | "wss" => {}
        "http" => url
            .set_scheme("ws")
            .map_err(|_| ConnectError::Signal("bad scheme".into()))?,
        "https" => url
            .set_scheme("wss")
            .map_err(|_| ConnectError::Signal("bad scheme".into()))?,
        other => {
            return Err(ConnectError::Signal(format!(
                "unsupported URL scheme {other}"
            )));
        }
    }
    let path = format!("{}/rtc/v1", url.path().trim_end_matches('/'));
    url.set_path(&path);
    url.query_pairs_mut()
        .clear()
        .append_pair("join_request", &encoded);
    Ok(url)
}

/// Opens the signalling WebSocket with the token as a bearer header.
pub async fn connect(
    creds: &Credentials,
    join: &proto::JoinRequest,
) -> Result<WsStream, ConnectError> {
    let url = join_url(&creds.url, join)?;
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| ConnectError::Signal(e.to_string()))?;
    let bearer = format!("Bearer {}", creds.token)
        .parse()
        .map_err(|_| ConnectError::Signal("token is not a valid header value".into()))?;
    request.headers_mut().insert("authorization", bearer);
    // tungstenite allocates its read buffer up front (128 KiB by default) and zero-fills it
    // before each read; signalling messages are small, so 8 KiB is plenty (larger ones are read
    // in several steps).
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(MAX_SIGNAL_FRAME))
        .max_frame_size(Some(MAX_SIGNAL_FRAME))
        .read_buffer_size(8 * 1024);
    match tokio_tungstenite::connect_async_with_config(request, Some(config), true).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let status = resp.status();
            let body = resp
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            Err(ConnectError::Refused(format!(
                "HTTP {status}: {}",
                body.trim()
            )))
        }
        Err(e) => Err(ConnectError::Signal(e.to_string())),
    }
}

/// Sends one request.
pub async fn send(
    ws: &mut WsStream,
    msg: proto::signal_request::Message,
) -> Result<(), ConnectError> {
    let req = proto::SignalRequest { message: Some(msg) };
    ws.send(Message::Binary(req.encode_to_vec().into()))
        .await
        .map_err(|e| ConnectError::Signal(e.to_string()))
}

/// What one incoming frame was.
pub enum Incoming {
    Response(Box<proto::signal_response::Message>),
    /// A frame that did not decode (counted and dropped).
    Undecodable,
    /// A control or empty frame.
    Nothing,
    Closed,
}

/// Decodes one binary frame; garbage becomes [`Incoming::Undecodable`], never a panic.
pub fn decode_frame(bytes: &[u8]) -> Incoming {
    match proto::SignalResponse::decode(bytes) {
        Ok(proto::SignalResponse { message: Some(m) }) => Incoming::Response(Box::new(m)),
        Ok(_) => Incoming::Nothing,
        Err(_) => Incoming::Undecodable,
    }
}

/// Reads the next frame, adding the size of each received WebSocket message (its payload bytes,
/// without WebSocket, TLS or TCP framing) to `received_bytes`.
pub async fn recv(
    ws: &mut WsStream,
    received_bytes: &std::sync::atomic::AtomicU64,
) -> Result<Incoming, ConnectError> {
    let message = match ws.next().await {
        None => return Ok(Incoming::Closed),
        Some(Err(e)) => return Err(ConnectError::Signal(e.to_string())),
        Some(Ok(message)) => message,
    };
    received_bytes.fetch_add(message.len() as u64, std::sync::atomic::Ordering::Relaxed);
    Ok(match message {
        Message::Binary(bytes) => decode_frame(bytes.as_ref()),
        Message::Close(_) => Incoming::Closed,
        Message::Text(_) => Incoming::Undecodable,
        _ => Incoming::Nothing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_frames_are_undecodable_not_fatal() {
        for garbage in [&[0xff_u8, 0xff, 0xff][..], &[0x0a, 0x50, 0x01], &[0x12; 64]] {
            assert!(matches!(
                decode_frame(garbage),
                Incoming::Undecodable | Incoming::Nothing
            ));
        }
        let pong = proto::SignalResponse {
            message: Some(proto::signal_response::Message::Pong(5)),
        };
        assert!(matches!(
            decode_frame(&pong.encode_to_vec()),
            Incoming::Response(_)
        ));
        assert!(matches!(decode_frame(&[]), Incoming::Nothing));
    }

    #[test]
    fn join_url_is_v1_with_a_padded_base64url_wrapped_request() {
        let url = join_url("ws://127.0.0.1:7880", &join_request()).expect("url");
        assert_eq!(url.path(), "/rtc/v1");
        let (k, v) = url.query_pairs().next().expect("query");
        assert_eq!(k, "join_request");
        let bytes = base64::engine::general_purpose::URL_SAFE
            .decode(v.as_bytes())
            .expect("padded base64url");
        let wrapped = proto::WrappedJoinRequest::decode(bytes.as_slice()).expect("wrapped");
        let join = proto::JoinRequest::decode(wrapped.join_request.as_slice()).expect("join");
        assert_eq!(join.client_info.map(|c| c.protocol), Some(PROTOCOL_VERSION));
        assert_eq!(
            join_url("https://lk.example/base/", &join_request())
                .expect("url")
                .as_str()
                .split('?')
                .next(),
            Some("wss://lk.example/base/rtc/v1")
        );
        assert!(join_url("ftp://x", &join_request()).is_err());
    }
}
