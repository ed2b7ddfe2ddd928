//! The seed inputs of every fuzz target, written to `fuzz/corpus/<target>/seed-*`: valid inputs
//! made with the crates' own encoders and signer, so that the fuzzers start deep.
//!
//! Every target writes its seeds and exits when started with `PCHAT_FUZZ_WRITE_SEEDS=1`
//! (`PCHAT_FUZZ_WRITE_SEEDS=1 cargo +nightly fuzz run -O <target>`): the seeds come from the
//! same build as the target, with no second build of the dependencies.

use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use crate::{FUZZ_NOW_MS, fixed_wallet, join_frames};
use authchain::signed_fetch::chain_header_name;
use authchain::{AuthLink, Identity, LinkType, link::ephemeral_message};
use dcl_rpc_wire::{
    CreatePort, DestroyPort, Frame, MessageType, Request, RequestModule, StreamMessage, identifier,
};
use livekit_participant::Reliability;
use livekit_participant::packet::encode_user_packet;
use livekit_protocol as proto;
use prost::Message;
use social_proto::v2;

fn dir(target: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    std::fs::create_dir_all(&d).expect("corpus dir");
    d
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    std::fs::write(dir(target).join(format!("seed-{name}")), bytes).expect("write seed");
}

fn lines(headers: &[(String, String)]) -> Vec<u8> {
    headers
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("\n")
        .into_bytes()
}

fn expiration(ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(ms).expect("date")
}

fn signed_fetch() {
    let t = "signed_fetch_headers";
    let owner = fixed_wallet(0);
    let id = Identity::with_ephemeral(
        &owner,
        fixed_wallet(1),
        expiration(FUZZ_NOW_MS + 86_400_000),
    );
    // Real headers, both paths, with and without metadata.
    for (n, (path, meta)) in [
        ("/", "{}"),
        ("/private-messages/token", r#"{"signer":"dcl:explorer"}"#),
        ("/private-messages/token", ""),
    ]
    .into_iter()
    .enumerate()
    {
        let mut h = id.signed_fetch_headers("get", path, FUZZ_NOW_MS, meta);
        h.push((":path".into(), path.into()));
        write(t, &format!("headers-{n}"), &lines(&h));
    }
    // Expired ephemeral key.
    let old = Identity::with_ephemeral(&owner, fixed_wallet(1), expiration(FUZZ_NOW_MS - 1000));
    write(
        t,
        "expired",
        &lines(&old.signed_fetch_headers("get", "/", FUZZ_NOW_MS, "{}")),
    );
    // A direct (two-link) chain and a contract-wallet link.
    let direct = authchain::identity::sign_direct(&owner, &format!("get:/:{FUZZ_NOW_MS}:{{}}"));
    let mut h: Vec<(String, String)> = direct
        .iter()
        .enumerate()
        .map(|(i, l)| (chain_header_name(i), l.to_json()))
        .collect();
    h.push(("x-identity-timestamp".into(), FUZZ_NOW_MS.to_string()));
    h.push(("x-identity-metadata".into(), "{}".into()));
    write(t, "direct", &lines(&h));
    let eip1654 = AuthLink::new(
        LinkType::Eip1654Ephemeral,
        ephemeral_message(&fixed_wallet(1).address(), expiration(FUZZ_NOW_MS + 1000)),
        "0x00",
    );
    h[1] = (chain_header_name(1), eip1654.to_json());
    write(t, "contract-wallet", &lines(&h));
    // Generated links (the target signs them): SIGNER(w0) → ephemeral(w1) → entity.
    let text = ephemeral_message(&fixed_wallet(1).address(), expiration(FUZZ_NOW_MS + 60_000));
    let generated = format!(
        "+e={}\n+s=get:/:{FUZZ_NOW_MS}:{{}}\nx-identity-timestamp={FUZZ_NOW_MS}\nx-identity-metadata={{}}",
        text.replace('\n', "\\n")
    );
    // The delegation text has newlines, which end a line of the input: `\\n` stands for one.
    write(t, "generated", generated.as_bytes());
    let eph = AuthLink::new(
        LinkType::EcdsaEphemeral,
        text.clone(),
        fixed_wallet(0).personal_sign(&text),
    );
    let mut h = vec![
        (
            chain_header_name(0),
            AuthLink::new(
                LinkType::Signer,
                fixed_wallet(0).address().to_checksum(),
                "",
            )
            .to_json(),
        ),
        (chain_header_name(1), eph.to_json()),
    ];
    h.push(("+s".into(), format!("get:/:{FUZZ_NOW_MS}:{{}}")));
    h.push(("x-identity-timestamp".into(), FUZZ_NOW_MS.to_string()));
    write(t, "mixed", &lines(&h));
}

fn frames() -> Vec<(&'static str, Frame)> {
    let n = |k, i| identifier(k, i);
    vec![
        (
            "create-port",
            Frame::CreatePort(CreatePort {
                message_identifier: n(MessageType::CreatePort, 1),
                port_name: "social_service".into(),
            }),
        ),
        (
            "request-module",
            Frame::RequestModule(RequestModule {
                message_identifier: n(MessageType::RequestModule, 2),
                port_id: 1,
                module_name: "Test".into(),
            }),
        ),
        (
            "request",
            Frame::Request(Request {
                message_identifier: n(MessageType::Request, 3),
                port_id: 1,
                procedure_id: 1,
                payload: b"hi".to_vec(),
                ..Default::default()
            }),
        ),
        (
            "stream-ack",
            Frame::StreamAck(StreamMessage {
                message_identifier: n(MessageType::StreamAck, 4),
                port_id: 1,
                sequence_id: 0,
                payload: vec![],
                closed: false,
                ack: true,
            }),
        ),
        (
            "stream-close",
            Frame::StreamMessage(StreamMessage {
                message_identifier: n(MessageType::StreamMessage, 4),
                port_id: 1,
                sequence_id: 1,
                payload: vec![],
                closed: true,
                ack: false,
            }),
        ),
        (
            "destroy-port",
            Frame::DestroyPort(DestroyPort {
                message_identifier: n(MessageType::DestroyPort, 5),
                port_id: 1,
            }),
        ),
        ("server-ready", Frame::server_ready()),
        ("response", Frame::response(3, b"payload".to_vec())),
        ("remote-error", Frame::remote_error(3, 7, "refused")),
        ("create-port-response", Frame::create_port_response(1, 1)),
        (
            "request-module-response",
            Frame::request_module_response(
                2,
                1,
                vec![dcl_rpc_wire::ModuleProcedure {
                    procedure_id: 1,
                    procedure_name: "echo".into(),
                }],
            ),
        ),
        (
            "stream-message",
            Frame::stream_message(4, 1, 2, b"item".to_vec(), false),
        ),
    ]
}

fn dcl_rpc() {
    for (name, f) in frames() {
        write("dcl_rpc_frame", name, &f.encode());
    }
    // FACTS §4: the official client's first frames.
    let facts: [&[u8]; 3] = [
        b"\x0d\x01\x00\x00\x28\x22\x0esocial_service",
        b"\x0d\x02\x00\x00\x38\x15\x01\x00\x00\x00\x22\x0dSocialService",
        b"\x0d\x03\x00\x00\x08\x15\x01\x00\x00\x00\x25\x0e\x00\x00\x00",
    ];
    for (i, f) in facts.iter().enumerate() {
        write("dcl_rpc_frame", &format!("facts-{i}"), f);
    }

    // Sessions: auth, port, module, then calls of each procedure (1 echo, 2 fail, 3 slow,
    // 4 items, 5 endless, 6 item_then_error, 7 refuse_stream), acks and cancels.
    let id = |k, i| identifier(k, i);
    let auth = b"0x1111111111111111111111111111111111111111".to_vec();
    let port = Frame::CreatePort(CreatePort {
        message_identifier: id(MessageType::CreatePort, 1),
        port_name: "p".into(),
    })
    .encode();
    let module = Frame::RequestModule(RequestModule {
        message_identifier: id(MessageType::RequestModule, 2),
        port_id: 1,
        module_name: "Test".into(),
    })
    .encode();
    let call = |num: u32, proc_id: u32, payload: &[u8]| {
        Frame::Request(Request {
            message_identifier: id(MessageType::Request, num),
            port_id: 1,
            procedure_id: proc_id,
            payload: payload.to_vec(),
            ..Default::default()
        })
        .encode()
    };
    let ack = |num: u32, seq: u32| {
        Frame::StreamAck(StreamMessage {
            message_identifier: id(MessageType::StreamAck, num),
            port_id: 1,
            sequence_id: seq,
            payload: vec![],
            closed: false,
            ack: true,
        })
        .encode()
    };
    let cancel = |num: u32| {
        Frame::StreamMessage(StreamMessage {
            message_identifier: id(MessageType::StreamMessage, num),
            port_id: 1,
            sequence_id: 0,
            payload: vec![],
            closed: true,
            ack: false,
        })
        .encode()
    };
    let destroy = Frame::DestroyPort(DestroyPort {
        message_identifier: id(MessageType::DestroyPort, 9),
        port_id: 1,
    })
    .encode();
    let t = "dcl_rpc_server_session";
    let base: Vec<(u8, Vec<u8>)> = vec![(1, auth.clone()), (2, port.clone()), (2, module.clone())];
    let mut sessions: Vec<(&str, Vec<(u8, Vec<u8>)>)> = Vec::new();
    let mut s = base.clone();
    s.extend([
        (2, call(3, 1, b"hello")),
        (2, call(4, 2, b"")),
        (2, call(5, 3, b"x")),
    ]);
    sessions.push(("unary", s));
    let mut s = base.clone();
    s.extend([
        (2, call(6, 4, &[3])),
        (2, ack(6, 0)),
        (2, ack(6, 1)),
        (2, ack(6, 2)),
        (2, ack(6, 3)),
    ]);
    sessions.push(("stream", s));
    let mut s = base.clone();
    s.extend([
        (2, call(7, 5, b"")),
        (2, ack(7, 0)),
        (2, ack(7, 1)),
        (2, cancel(7)),
    ]);
    sessions.push(("stream-cancel", s));
    let mut s = base.clone();
    s.extend([
        (2, call(8, 6, b"")),
        (2, ack(8, 0)),
        (2, ack(8, 1)),
        (2, call(9, 7, b"")),
        (2, call(10, 5, b"")),
        (0, destroy.clone()),
    ]);
    sessions.push(("stream-errors-destroy", s));
    // Buffered before the auth answer (slow authenticator), then a text frame after auth.
    let s = vec![
        (
            1,
            b"slow0x2222222222222222222222222222222222222222".to_vec(),
        ),
        (0, port.clone()),
        (0, module.clone()),
        (0, call(3, 1, b"early")),
        (2, vec![]),
        (1, b"text".to_vec()),
    ];
    sessions.push(("buffered-then-text", s));
    // Refused auth, unknown module/port/procedure, a server-only frame.
    sessions.push(("refused", vec![(1, b"nobody".to_vec()), (0, port.clone())]));
    let mut s = base.clone();
    s.extend([
        (
            2,
            Frame::RequestModule(RequestModule {
                message_identifier: id(MessageType::RequestModule, 3),
                port_id: 1,
                module_name: "Nope".into(),
            })
            .encode(),
        ),
        (
            2,
            Frame::RequestModule(RequestModule {
                message_identifier: id(MessageType::RequestModule, 4),
                port_id: 9,
                module_name: "Test".into(),
            })
            .encode(),
        ),
        (
            2,
            Frame::Request(Request {
                message_identifier: id(MessageType::Request, 5),
                port_id: 9,
                procedure_id: 1,
                ..Default::default()
            })
            .encode(),
        ),
        (2, call(6, 99, b"")),
        (2, Frame::response(7, vec![]).encode()),
    ]);
    sessions.push(("unknowns-then-server-frame", s));
    for (name, s) in sessions {
        let refs: Vec<(u8, &[u8])> = s.iter().map(|(f, b)| (*f, b.as_slice())).collect();
        write(t, name, &join_frames(&refs));
    }
}

fn social() {
    let t = "social_request_payloads";
    let user = |a: &str| Some(v2::User { address: a.into() });
    let other = "0x2222222222222222222222222222222222222222";
    let page = Some(v2::Pagination {
        limit: 10,
        offset: 0,
    });
    let mut seeds: Vec<(&str, u8, Vec<u8>)> = vec![
        (
            "get-friends",
            0,
            v2::GetFriendsPayload { pagination: page }.encode_to_vec(),
        ),
        (
            "get-friends-far",
            0,
            v2::GetFriendsPayload {
                pagination: Some(v2::Pagination {
                    limit: 1,
                    offset: i32::MAX,
                }),
            }
            .encode_to_vec(),
        ),
        (
            "mutual",
            1,
            v2::GetMutualFriendsPayload {
                user: user(other),
                pagination: page,
            }
            .encode_to_vec(),
        ),
        (
            "pending",
            2,
            v2::GetFriendshipRequestsPayload { pagination: page }.encode_to_vec(),
        ),
        (
            "sent",
            3,
            v2::GetFriendshipRequestsPayload { pagination: None }.encode_to_vec(),
        ),
        (
            "status",
            6,
            v2::GetFriendshipStatusPayload { user: user(other) }.encode_to_vec(),
        ),
        ("subscribe-friendships", 5, vec![]),
        ("subscribe-connectivity", 7, vec![]),
        (
            "block",
            8,
            v2::BlockUserPayload { user: user(other) }.encode_to_vec(),
        ),
        (
            "unblock",
            9,
            v2::UnblockUserPayload {
                user: user("0X2222222222222222222222222222222222222222"),
            }
            .encode_to_vec(),
        ),
        (
            "blocked",
            10,
            v2::GetBlockedUsersPayload { pagination: page }.encode_to_vec(),
        ),
        ("blocking-status", 11, vec![]),
        ("subscribe-blocks", 12, vec![]),
        ("get-settings", 13, vec![]),
        (
            "upsert-settings",
            14,
            v2::UpsertSocialSettingsPayload {
                private_messages_privacy: Some(1),
                blocked_users_messages_visibility: Some(0),
                show_situation_reactions: Some(1),
            }
            .encode_to_vec(),
        ),
        (
            "pm-settings",
            15,
            v2::GetPrivateMessagesSettingsPayload {
                user: vec![
                    v2::User {
                        address: other.into(),
                    },
                    v2::User {
                        address: "0x1111111111111111111111111111111111111111".into(),
                    },
                ],
            }
            .encode_to_vec(),
        ),
    ];
    use v2::upsert_friendship_payload::{
        AcceptPayload, Action, CancelPayload, DeletePayload, RejectPayload, RequestPayload,
    };
    for (name, action) in [
        (
            "request",
            Action::Request(RequestPayload {
                user: user(other),
                message: Some("hi".into()),
            }),
        ),
        (
            "accept",
            Action::Accept(AcceptPayload { user: user(other) }),
        ),
        (
            "reject",
            Action::Reject(RejectPayload { user: user(other) }),
        ),
        (
            "delete",
            Action::Delete(DeletePayload { user: user(other) }),
        ),
        (
            "cancel",
            Action::Cancel(CancelPayload { user: user(other) }),
        ),
    ] {
        seeds.push((
            name,
            4,
            v2::UpsertFriendshipPayload {
                action: Some(action),
            }
            .encode_to_vec(),
        ));
    }
    for (name, which, payload) in seeds {
        for caller in [0u8, 1] {
            let mut bytes = vec![which, caller];
            bytes.extend_from_slice(&payload);
            write(t, &format!("{name}-{caller}"), &bytes);
        }
    }
}

fn rfc4() {
    let at = UNIX_EPOCH + Duration::from_secs(1_780_000_400);
    for (i, text) in ["hello", "héllo 👋", "x"].iter().enumerate() {
        let p = chat_core::packet::encode(text, at).expect("encode");
        for sel in [0u8, 0x01, 0x02, 0x41] {
            let mut bytes = vec![sel];
            bytes.extend_from_slice(&p);
            write("rfc4_packet", &format!("{i}-{sel:02x}"), &bytes);
        }
    }
}

fn e2ee() {
    use crate::e2ee_keys::{ALICE, ALICE_IKM, BOB, BOB_IKM};
    use chat_core::e2ee::{E2ee, SessionKey};
    let at = UNIX_EPOCH + Duration::from_secs(1_780_000_400);
    let bob = SessionKey::derive(BOB_IKM).public();
    let mut alice = E2ee::new(SessionKey::derive(ALICE_IKM));
    let chat = chat_core::packet::encode_message("hello", at, true)
        .expect("encode")
        .0;
    let reaction = chat_core::packet::encode_reaction(&chat_core::Reaction {
        emoji_index: 7,
        removal: false,
        message_id: format!("{BOB}:45000.5"),
        address: ALICE.to_owned(),
    })
    .expect("reaction");
    for (i, plain) in [chat, reaction].iter().enumerate() {
        let sealed = alice.seal(ALICE, BOB, &bob, plain, at).expect("seal");
        for sel in [0u8, 1, 2, 0x10] {
            let mut bytes = vec![sel];
            bytes.extend_from_slice(&sealed);
            write("e2ee_open", &format!("sealed-{i}-{sel:02x}"), &bytes);
        }
        let mut bytes = vec![0u8];
        bytes.extend_from_slice(plain);
        write("e2ee_open", &format!("plain-{i}"), &bytes);
    }
}

fn info(
    identity: &str,
    sid: &str,
    version: u32,
    state: i32,
    metadata: &str,
) -> proto::ParticipantInfo {
    proto::ParticipantInfo {
        identity: identity.into(),
        sid: sid.into(),
        version,
        state,
        metadata: metadata.into(),
        ..Default::default()
    }
}

fn livekit() {
    let resp = |m: proto::signal_response::Message| {
        proto::SignalResponse { message: Some(m) }.encode_to_vec()
    };
    use proto::signal_response::Message as R;
    let a = "0x2222222222222222222222222222222222222222";
    let join = resp(R::Join(proto::JoinResponse {
        other_participants: vec![info(a, "PA_1", 1, 2, "{}")],
        ..Default::default()
    }));
    let update = resp(R::Update(proto::ParticipantUpdate {
        participants: vec![
            info(
                a,
                "PA_1",
                2,
                3,
                r#"{"private_messages_privacy":"only_friends"}"#,
            ),
            info(
                "0x3333333333333333333333333333333333333333",
                "PA_2",
                1,
                1,
                "",
            ),
        ],
    }));
    let leave_p = resp(R::Update(proto::ParticipantUpdate {
        participants: vec![info(a, "PA_1", 3, 3, "")],
    }));
    let gone = resp(R::Update(proto::ParticipantUpdate {
        participants: vec![info(a, "PA_1", 4, 4, "")],
    }));
    let trickle = resp(R::Trickle(proto::TrickleRequest { candidate_init: r#"{"candidate":"candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0}"#.into(), ..Default::default() }));
    let sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\na=setup:active\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sctp-port:5000\r\n";
    let answer = resp(R::Answer(proto::SessionDescription {
        r#type: "answer".into(),
        sdp: sdp.into(),
        ..Default::default()
    }));
    let offer = resp(R::Offer(proto::SessionDescription {
        r#type: "offer".into(),
        sdp: sdp.replace("active", "actpass"),
        ..Default::default()
    }));
    let leave = resp(R::Leave(proto::LeaveRequest {
        reason: proto::DisconnectReason::DuplicateIdentity as i32,
        ..Default::default()
    }));
    let t = "livekit_signal";
    let seq = |frames: &[&Vec<u8>]| {
        join_frames(
            &frames
                .iter()
                .map(|f| (0u8, f.as_slice()))
                .collect::<Vec<_>>(),
        )
    };
    write(
        t,
        "join-update-leave",
        &seq(&[&join, &update, &leave_p, &gone]),
    );
    write(t, "trickle", &seq(&[&trickle]));
    write(t, "answer", &seq(&[&answer]));
    write(t, "offer", &seq(&[&offer]));
    write(t, "leave", &seq(&[&leave]));
    write(t, "rejoin", &seq(&[&join, &update, &join]));

    let t = "livekit_data_packet";
    let nonce = [7u8; 16];
    write(
        t,
        "reliable",
        &encode_user_packet(
            b"payload",
            &[a.to_owned()],
            Some(a),
            Reliability::Reliable,
            1,
            nonce,
        ),
    );
    write(
        t,
        "lossy-no-topic",
        &encode_user_packet(b"x", &[], None, Reliability::Lossy, 2, nonce),
    );
    let mut with_sender = proto::DataPacket::decode(
        encode_user_packet(b"hi", &[], Some("t"), Reliability::Reliable, 3, nonce).as_slice(),
    )
    .expect("decode");
    with_sender.participant_identity = a.into();
    write(t, "with-sender", &with_sender.encode_to_vec());
    let chat = proto::DataPacket {
        value: Some(proto::data_packet::Value::ChatMessage(proto::ChatMessage {
            message: "hi".into(),
            ..Default::default()
        })),
        ..Default::default()
    };
    write(t, "other-kind", &chat.encode_to_vec());
}

fn gatekeeper() {
    let t = "gatekeeper_patch_body";
    let a = b"0x2222222222222222222222222222222222222222";
    for (name, sel, body) in [
        ("all", 0x10u8, &br#"{"private_messages_privacy":"all"}"#[..]),
        (
            "only-friends",
            0x00,
            br#"{"private_messages_privacy":"ONLY_FRIENDS"}"#,
        ),
        ("not-found", 0x11, br#"{"private_messages_privacy":"all"}"#),
        (
            "unavailable",
            0x12,
            br#"{"private_messages_privacy":"all"}"#,
        ),
        ("other", 0x13, br#"{"private_messages_privacy":"all"}"#),
        (
            "bad-privacy",
            0x10,
            br#"{"private_messages_privacy":"friends"}"#,
        ),
        ("bad-body", 0x10, b"not json"),
        (
            "wrong-bearer",
            0x18,
            br#"{"private_messages_privacy":"all"}"#,
        ),
        ("no-bearer", 0x1c, br#"{"private_messages_privacy":"all"}"#),
    ] {
        let mut bytes = vec![sel];
        bytes.extend_from_slice(a);
        bytes.push(b'\n');
        bytes.extend_from_slice(body);
        write(t, name, &bytes);
    }
    let mut bytes = vec![0x10];
    bytes.extend_from_slice(b"0xnot-an-address\n{\"private_messages_privacy\":\"all\"}");
    write(t, "bad-address", &bytes);
}

/// With `PCHAT_FUZZ_WRITE_SEEDS` set: writes the seeds of `target` and exits.
pub fn write_if_asked(target: &str) {
    if std::env::var_os("PCHAT_FUZZ_WRITE_SEEDS").is_none() {
        return;
    }
    match target {
        "signed_fetch_headers" => signed_fetch(),
        "dcl_rpc_frame" | "dcl_rpc_server_session" => dcl_rpc(),
        "social_request_payloads" => social(),
        "rfc4_packet" => rfc4(),
        "e2ee_open" => e2ee(),
        "livekit_signal" | "livekit_data_packet" => livekit(),
        "gatekeeper_patch_body" => gatekeeper(),
        other => panic!("no seeds for {other}"),
    }
    eprintln!("seeds of {target} written under {}", dir(target).display());
    std::process::exit(0);
}
