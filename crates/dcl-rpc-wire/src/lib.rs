//! The dcl-rpc wire format: every WebSocket binary message is one protobuf message whose first
//! field is `fixed32 message_identifier = (type << 27) | number`. The number (low 27 bits)
//! pairs a reply with its request; the type says which message follows. All numeric fields are
//! `fixed32` and default values are omitted on the wire, so missing fields decode as zero.
//!
//! This crate only encodes and decodes ([`Frame::decode`], [`Frame::encode`]); the server
//! state machine lives with the service.

use prost::Message;

/// Message types (the high 5 bits of the identifier).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum MessageType {
    Request = 1,
    Response = 2,
    StreamMessage = 3,
    StreamAck = 4,
    CreatePort = 5,
    CreatePortResponse = 6,
    RequestModule = 7,
    RequestModuleResponse = 8,
    RemoteErrorResponse = 9,
    DestroyPort = 10,
    ServerReady = 11,
}

impl MessageType {
    pub fn from_u32(v: u32) -> Option<Self> {
        use MessageType::*;
        Some(match v {
            1 => Request,
            2 => Response,
            3 => StreamMessage,
            4 => StreamAck,
            5 => CreatePort,
            6 => CreatePortResponse,
            7 => RequestModule,
            8 => RequestModuleResponse,
            9 => RemoteErrorResponse,
            10 => DestroyPort,
            11 => ServerReady,
            _ => return None,
        })
    }

    /// Types only a client may send.
    pub const fn from_client(self) -> bool {
        matches!(
            self,
            MessageType::Request
                | MessageType::StreamMessage
                | MessageType::StreamAck
                | MessageType::CreatePort
                | MessageType::RequestModule
                | MessageType::DestroyPort
        )
    }
}

/// The low 27 bits.
pub const NUMBER_MASK: u32 = (1 << 27) - 1;

/// Builds a message identifier.
pub const fn identifier(kind: MessageType, number: u32) -> u32 {
    ((kind as u32) << 27) | (number & NUMBER_MASK)
}

/// Splits a message identifier into (type value, number).
pub const fn split_identifier(id: u32) -> (u32, u32) {
    (id >> 27, id & NUMBER_MASK)
}

#[derive(Clone, PartialEq, Message)]
struct Header {
    #[prost(fixed32, tag = "1")]
    message_identifier: u32,
}

#[derive(Clone, PartialEq, Message)]
pub struct Request {
    #[prost(fixed32, tag = "1")]
    pub message_identifier: u32,
    #[prost(fixed32, tag = "2")]
    pub port_id: u32,
    #[prost(fixed32, tag = "4")]
    pub procedure_id: u32,
    #[prost(fixed32, tag = "5")]
    pub client_stream: u32,
    #[prost(bytes = "vec", tag = "6")]
    pub payload: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Response {
    #[prost(fixed32, tag = "1")]
    pub message_identifier: u32,
    #[prost(bytes = "vec", tag = "6")]
    pub payload: Vec<u8>,
}

/// STREAM_MESSAGE, and STREAM_ACK (the same shape with `ack = true`).
#[derive(Clone, PartialEq, Message)]
pub struct StreamMessage {
    #[prost(fixed32, tag = "1")]
    pub message_identifier: u32,
    #[prost(fixed32, tag = "2")]
    pub port_id: u32,
    #[prost(fixed32, tag = "4")]
    pub sequence_id: u32,
    #[prost(bytes = "vec", tag = "6")]
    pub payload: Vec<u8>,
    #[prost(bool, tag = "7")]
    pub closed: bool,
    #[prost(bool, tag = "8")]
    pub ack: bool,
}

#[derive(Clone, PartialEq, Message)]
pub struct CreatePort {
    #[prost(fixed32, tag = "1")]
    pub message_identifier: u32,
    #[prost(string, tag = "4")]
    pub port_name: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct CreatePortResponse {
    #[prost(fixed32, tag = "1")]
    pub message_identifier: u32,
    #[prost(fixed32, tag = "2")]
    pub port_id: u32,
}

#[derive(Clone, PartialEq, Message)]
pub struct RequestModule {
    #[prost(fixed32, tag = "1")]
    pub message_identifier: u32,
    #[prost(fixed32, tag = "2")]
    pub port_id: u32,
    #[prost(string, tag = "4")]
    pub module_name: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct ModuleProcedure {
    #[prost(fixed32, tag = "1")]
    pub procedure_id: u32,
    #[prost(string, tag = "2")]
    pub procedure_name: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct RequestModuleResponse {
    #[prost(fixed32, tag = "1")]
    pub message_identifier: u32,
    #[prost(fixed32, tag = "2")]
    pub port_id: u32,
    #[prost(message, repeated, tag = "5")]
    pub procedures: Vec<ModuleProcedure>,
}

#[derive(Clone, PartialEq, Message)]
pub struct RemoteError {
    #[prost(fixed32, tag = "1")]
    pub message_identifier: u32,
    #[prost(fixed32, tag = "2")]
    pub error_code: u32,
    #[prost(string, tag = "3")]
    pub error_message: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct DestroyPort {
    #[prost(fixed32, tag = "1")]
    pub message_identifier: u32,
    #[prost(fixed32, tag = "2")]
    pub port_id: u32,
}

/// One decoded message.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Request(Request),
    Response(Response),
    StreamMessage(StreamMessage),
    StreamAck(StreamMessage),
    CreatePort(CreatePort),
    CreatePortResponse(CreatePortResponse),
    RequestModule(RequestModule),
    RequestModuleResponse(RequestModuleResponse),
    RemoteError(RemoteError),
    DestroyPort(DestroyPort),
    /// SERVER_READY: the header only.
    ServerReady {
        number: u32,
    },
}

/// Why a message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("undecodable dcl-rpc message: {0}")]
    Decode(String),
    #[error("unknown dcl-rpc message type {0}")]
    UnknownType(u32),
}

impl Frame {
    /// Decodes one WebSocket binary message.
    pub fn decode(bytes: &[u8]) -> Result<Frame, WireError> {
        let d = |e: prost::DecodeError| WireError::Decode(e.to_string());
        let header = Header::decode(bytes).map_err(d)?;
        let (kind, number) = split_identifier(header.message_identifier);
        let kind = MessageType::from_u32(kind).ok_or(WireError::UnknownType(kind))?;
        Ok(match kind {
            MessageType::Request => Frame::Request(Request::decode(bytes).map_err(d)?),
            MessageType::Response => Frame::Response(Response::decode(bytes).map_err(d)?),
            MessageType::StreamMessage => {
                Frame::StreamMessage(StreamMessage::decode(bytes).map_err(d)?)
            }
            MessageType::StreamAck => Frame::StreamAck(StreamMessage::decode(bytes).map_err(d)?),
            MessageType::CreatePort => Frame::CreatePort(CreatePort::decode(bytes).map_err(d)?),
            MessageType::CreatePortResponse => {
                Frame::CreatePortResponse(CreatePortResponse::decode(bytes).map_err(d)?)
            }
            MessageType::RequestModule => {
                Frame::RequestModule(RequestModule::decode(bytes).map_err(d)?)
            }
            MessageType::RequestModuleResponse => {
                Frame::RequestModuleResponse(RequestModuleResponse::decode(bytes).map_err(d)?)
            }
            MessageType::RemoteErrorResponse => {
                Frame::RemoteError(RemoteError::decode(bytes).map_err(d)?)
            }
            MessageType::DestroyPort => Frame::DestroyPort(DestroyPort::decode(bytes).map_err(d)?),
            MessageType::ServerReady => Frame::ServerReady { number },
        })
    }

    /// The message type.
    pub fn kind(&self) -> MessageType {
        match self {
            Frame::Request(_) => MessageType::Request,
            Frame::Response(_) => MessageType::Response,
            Frame::StreamMessage(_) => MessageType::StreamMessage,
            Frame::StreamAck(_) => MessageType::StreamAck,
            Frame::CreatePort(_) => MessageType::CreatePort,
            Frame::CreatePortResponse(_) => MessageType::CreatePortResponse,
            Frame::RequestModule(_) => MessageType::RequestModule,
            Frame::RequestModuleResponse(_) => MessageType::RequestModuleResponse,
            Frame::RemoteError(_) => MessageType::RemoteErrorResponse,
            Frame::DestroyPort(_) => MessageType::DestroyPort,
            Frame::ServerReady { .. } => MessageType::ServerReady,
        }
    }

    /// The number (low 27 bits of the identifier).
    pub fn number(&self) -> u32 {
        let id = match self {
            Frame::Request(m) => m.message_identifier,
            Frame::Response(m) => m.message_identifier,
            Frame::StreamMessage(m) | Frame::StreamAck(m) => m.message_identifier,
            Frame::CreatePort(m) => m.message_identifier,
            Frame::CreatePortResponse(m) => m.message_identifier,
            Frame::RequestModule(m) => m.message_identifier,
            Frame::RequestModuleResponse(m) => m.message_identifier,
            Frame::RemoteError(m) => m.message_identifier,
            Frame::DestroyPort(m) => m.message_identifier,
            Frame::ServerReady { number } => return *number,
        };
        split_identifier(id).1
    }

    /// Encodes the message (its identifier must already be set; see the constructors below).
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Frame::Request(m) => m.encode_to_vec(),
            Frame::Response(m) => m.encode_to_vec(),
            Frame::StreamMessage(m) | Frame::StreamAck(m) => m.encode_to_vec(),
            Frame::CreatePort(m) => m.encode_to_vec(),
            Frame::CreatePortResponse(m) => m.encode_to_vec(),
            Frame::RequestModule(m) => m.encode_to_vec(),
            Frame::RequestModuleResponse(m) => m.encode_to_vec(),
            Frame::RemoteError(m) => m.encode_to_vec(),
            Frame::DestroyPort(m) => m.encode_to_vec(),
            Frame::ServerReady { number } => Header {
                message_identifier: identifier(MessageType::ServerReady, *number),
            }
            .encode_to_vec(),
        }
    }

    // ---- constructors for the server's messages ----

    pub fn server_ready() -> Frame {
        Frame::ServerReady { number: 0 }
    }

    pub fn response(number: u32, payload: Vec<u8>) -> Frame {
        Frame::Response(Response {
            message_identifier: identifier(MessageType::Response, number),
            payload,
        })
    }

    pub fn create_port_response(number: u32, port_id: u32) -> Frame {
        Frame::CreatePortResponse(CreatePortResponse {
            message_identifier: identifier(MessageType::CreatePortResponse, number),
            port_id,
        })
    }

    pub fn request_module_response(
        number: u32,
        port_id: u32,
        procedures: Vec<ModuleProcedure>,
    ) -> Frame {
        Frame::RequestModuleResponse(RequestModuleResponse {
            message_identifier: identifier(MessageType::RequestModuleResponse, number),
            port_id,
            procedures,
        })
    }

    pub fn remote_error(number: u32, error_code: u32, error_message: impl Into<String>) -> Frame {
        Frame::RemoteError(RemoteError {
            message_identifier: identifier(MessageType::RemoteErrorResponse, number),
            error_code,
            error_message: error_message.into(),
        })
    }

    /// A server stream message: `number` is the Request's number.
    pub fn stream_message(
        number: u32,
        port_id: u32,
        sequence_id: u32,
        payload: Vec<u8>,
        closed: bool,
    ) -> Frame {
        Frame::StreamMessage(StreamMessage {
            message_identifier: identifier(MessageType::StreamMessage, number),
            port_id,
            sequence_id,
            payload,
            closed,
            ack: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).expect("hex")
    }

    #[test]
    fn the_official_clients_first_frames_decode() {
        // CREATE_PORT #1 "social_service"
        let mut create = hex("0d 01 00 00 28 22 0e");
        create.extend_from_slice(b"social_service");
        assert_eq!(
            Frame::decode(&create),
            Ok(Frame::CreatePort(CreatePort {
                message_identifier: identifier(MessageType::CreatePort, 1),
                port_name: "social_service".into()
            }))
        );
        // REQUEST_MODULE #2 on port 1 "SocialService"
        let mut module = hex("0d 02 00 00 38 15 01 00 00 00 22 0d");
        module.extend_from_slice(b"SocialService");
        match Frame::decode(&module).expect("decodes") {
            Frame::RequestModule(m) => {
                assert_eq!((m.port_id, m.module_name.as_str()), (1, "SocialService"));
                assert_eq!(split_identifier(m.message_identifier), (7, 2));
            }
            other => panic!("{other:?}"),
        }
        // REQUEST #3, port 1, procedure 14, empty payload
        match Frame::decode(&hex("0d 03 00 00 08 15 01 00 00 00 25 0e 00 00 00")).expect("decodes")
        {
            f @ Frame::Request(_) => {
                assert_eq!(f.number(), 3);
                let Frame::Request(r) = f else { unreachable!() };
                assert_eq!((r.port_id, r.procedure_id, r.payload.len()), (1, 14, 0));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn server_frames_round_trip() {
        for f in [
            Frame::server_ready(),
            Frame::response(7, vec![1, 2, 3]),
            Frame::create_port_response(1, 1),
            Frame::request_module_response(
                2,
                1,
                vec![ModuleProcedure {
                    procedure_id: 1,
                    procedure_name: "GetFriends".into(),
                }],
            ),
            Frame::remote_error(9, 0, "boom"),
            Frame::stream_message(4, 1, 2, vec![9], true),
        ] {
            assert_eq!(Frame::decode(&f.encode()), Ok(f.clone()));
        }
        assert_eq!(Frame::server_ready().encode(), hex("0d 00 00 00 58"));
    }

    #[test]
    fn garbage_and_unknown_types_are_errors() {
        assert!(Frame::decode(&[0xff, 0xff]).is_err());
        assert_eq!(Frame::decode(&[]), Err(WireError::UnknownType(0)));
        assert_eq!(
            Frame::decode(&hex("0d 00 00 00 60")),
            Err(WireError::UnknownType(12))
        );
        assert_eq!(
            Frame::decode(&hex("0d 00 00 00 f8")),
            Err(WireError::UnknownType(31))
        );
        assert!(MessageType::Request.from_client() && !MessageType::Response.from_client());
    }
}
