//! Our private-message packets against the official codec (`@dcl/protocol`'s
//! `rfc4.Packet`, run in Node): byte for byte the same encoding, and each side reads the other's.

use std::time::{Duration, UNIX_EPOCH};

use chat_core::packet::{self, PacketError};
use testkit::node;

const LIMIT: Duration = Duration::from_secs(30);

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

#[tokio::test]
async fn our_packets_are_the_official_packets() {
    for (text, millis) in [
        ("hola 👋", 1_735_732_800_000u64),
        (
            "a longer message, with \"quotes\" and a\nnewline",
            1_764_150_000_123,
        ),
    ] {
        let at = UNIX_EPOCH + Duration::from_millis(millis);
        let ours = packet::encode(text, at).expect("encode");
        let ts = chat_core::ole::to_ole(at);
        let official = node::run(
            "rfc4.mjs",
            &["encode-chat", text, &format!("{ts:?}"), "100"],
            LIMIT,
        )
        .await
        .expect("node");
        assert_eq!(hex(&ours), official.trim(), "{text:?}");

        let decoded = node::run("rfc4.mjs", &["decode", &hex(&ours)], LIMIT)
            .await
            .expect("node");
        let v: serde_json::Value = serde_json::from_str(decoded.trim()).expect("json");
        assert_eq!(v["case"], "chat");
        assert_eq!(v["message"], text);
        assert_eq!(v["timestamp"].as_f64(), Some(ts));
        assert_eq!(v["protocolVersion"], 100);
    }
}

#[tokio::test]
async fn official_packets_are_read_and_judged() {
    let chat = node::run(
        "rfc4.mjs",
        &["encode-chat", "from node", "45658.5", "100"],
        LIMIT,
    )
    .await
    .expect("node");
    let m = packet::decode(&unhex(chat.trim())).expect("a chat");
    assert_eq!(m.text, "from node");
    assert_eq!(m.timestamp, 45_658.5);

    let old = node::run("rfc4.mjs", &["encode-chat", "old", "45658.5", "11"], LIMIT)
        .await
        .expect("node");
    assert_eq!(
        packet::decode(&unhex(old.trim())),
        Err(PacketError::WrongVersion(11))
    );

    let position = node::run("rfc4.mjs", &["encode-position"], LIMIT)
        .await
        .expect("node");
    assert_eq!(
        packet::decode(&unhex(position.trim())),
        Err(PacketError::NotChat)
    );
}
