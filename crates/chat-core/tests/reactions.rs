//! Reaction and chat packets against the official codec: `tests/vectors/reactions.json` was
//! written by `interop/gen-reaction-vectors.mjs` with `@dcl/protocol`'s `rfc4.Packet` (see that
//! script for what each field means). Our encoder must give exactly the official bytes, our
//! decoder must read them back to the same fields, message ids must be built as the reference
//! client builds them, and the packets the receiver must refuse are refused with the stated
//! reason.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chat_core::filter::{Accepted, Filter, Incoming, SocialView};
use chat_core::packet::{self, Payload};
use chat_core::reaction::{self, Reaction};
use pchat_core::Privacy;
use serde_json::Value;

fn load() -> Value {
    // Cargo gives the crate's directory at run time; the compiled-in path is a fallback.
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    let path = manifest.join("tests/vectors/reactions.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("vectors are JSON")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("{key} in {v}"))
}

fn reaction_of(v: &Value) -> Reaction {
    let emoji = u16::try_from(v["emoji_index"].as_u64().expect("emoji_index")).expect("u16");
    let removal = v["removal"].as_bool().expect("removal");
    let id = str_of(v, "message_id");
    let address = str_of(v, "address");
    if removal {
        Reaction::remove(emoji, id, address)
    } else {
        Reaction::add(emoji, id, address)
    }
}

#[test]
fn the_vectors_cover_adds_removals_chats_and_refusals() {
    let v = load();
    assert_eq!(v["protocol_version"], 100);
    let reactions = v["reactions"].as_array().expect("reactions");
    assert!(reactions.iter().any(|r| r["removal"] == true));
    assert!(reactions.iter().any(|r| r["removal"] == false));
    assert!(!v["chats"].as_array().expect("chats").is_empty());
    assert!(!v["reject"].as_array().expect("reject").is_empty());
}

#[test]
fn our_reactions_are_the_official_bytes() {
    for v in load()["reactions"].as_array().expect("reactions") {
        let name = str_of(v, "name");
        let r = reaction_of(v);
        assert_eq!(
            i64::from(r.wire_emoji_index()),
            v["wire_emoji_index"].as_i64().expect("wire"),
            "{name}"
        );
        let ours = packet::encode_reaction(&r).expect("encode");
        assert_eq!(hex(&ours), str_of(v, "hex"), "{name}");
    }
}

#[test]
fn official_reactions_decode_to_the_same_fields() {
    for v in load()["reactions"].as_array().expect("reactions") {
        let name = str_of(v, "name");
        let bytes = unhex(str_of(v, "hex"));
        let got = packet::decode_reaction(&bytes).expect(name);
        let mut want = reaction_of(v);
        want.address = want.address.to_ascii_lowercase();
        assert_eq!(got, want, "{name}");
        assert_eq!(
            packet::decode_payload(&bytes),
            Ok(Payload::Reaction(want)),
            "{name}"
        );
        // Not a chat message.
        assert_eq!(
            packet::decode(&bytes),
            Err(packet::PacketError::NotChat),
            "{name}"
        );
    }
}

#[test]
fn message_ids_are_built_as_the_reference_client_builds_them() {
    for v in load()["reactions"].as_array().expect("reactions") {
        let name = str_of(v, "name");
        let sender = str_of(v, "message_sender");
        let ts = v["message_timestamp"].as_f64().expect("timestamp");
        assert_eq!(
            reaction::message_id(sender, ts),
            str_of(v, "message_id"),
            "{name}"
        );
        assert!(reaction::matches_message(
            str_of(v, "message_id"),
            sender,
            ts
        ));
    }
}

#[test]
fn official_chats_still_read_and_ours_are_the_same_bytes() {
    for v in load()["chats"].as_array().expect("chats") {
        let name = str_of(v, "name");
        let bytes = unhex(str_of(v, "hex"));
        let ts = v["timestamp"].as_f64().expect("timestamp");
        let text = str_of(v, "text");
        let m = packet::decode(&bytes).expect(name);
        assert_eq!((m.text.as_str(), m.timestamp), (text, ts), "{name}");
        assert!(matches!(
            packet::decode_payload(&bytes),
            Ok(Payload::Message(ref p)) if p.text == text
        ));
        // Our encoder, given the same instant, writes the same bytes.
        let at = chat_core::ole::from_ole(ts).expect("a date");
        assert_eq!(
            chat_core::ole::to_ole(at),
            ts,
            "{name}: the instant round-trips"
        );
        assert_eq!(
            hex(&packet::encode(text, at).expect("encode")),
            str_of(v, "hex")
        );
        assert!(chat_core::outgoing::text_len(text) <= chat_core::outgoing::DEFAULT_MAX_CHARS);
    }
}

#[test]
fn official_packets_that_must_be_refused_are_refused() {
    for v in load()["reject"].as_array().expect("reject") {
        let name = str_of(v, "name");
        let bytes = unhex(str_of(v, "hex"));
        let err = packet::decode_payload(&bytes).expect_err(name);
        assert!(
            err.to_string().ends_with(str_of(v, "error")),
            "{name}: {err}"
        );
    }
}

#[test]
fn official_reactions_pass_the_filter_once() {
    let v = load();
    let first = &v["reactions"][0];
    let bytes = unhex(str_of(first, "hex"));
    // The packet is Bob's reaction sent to Alice (the author of the message).
    let me = str_of(first, "message_sender").to_ascii_lowercase();
    let bob = str_of(first, "address");
    let view = SocialView {
        me: me.clone(),
        privacy: Privacy::All,
        ..Default::default()
    };
    let mut f = Filter::new();
    let now = Instant::now();
    let packet = Incoming {
        sender: bob,
        topic: &me,
        payload: &bytes,
    };
    assert!(matches!(
        f.check_packet(&view, packet, now),
        Ok(Accepted::Reaction(r)) if r.emoji_index == 42 && !r.removal
    ));
    assert_eq!(
        f.check_packet(&view, packet, now + Duration::from_secs(1)),
        Err(chat_core::Rejected::DuplicateReaction)
    );
}
