//! End-to-end encryption test vectors, `tests/vectors/e2ee.json`: our sealed packet format
//! ([`chat_core::e2ee`]) pinned byte for byte in the repository, so that any change to it (key
//! derivation, nonce, associated data, wire) fails here, and so that another implementation can
//! be checked against the file.
//!
//! The file's `messages` give fixed IKMs for the session keys (RFC 9180 `DeriveKeyPair`, through
//! [`SessionKey::derive`]) and for each context's ephemeral key
//! ([`E2ee::seal_with_ephemeral_ikm`], which uses it only when a seal sets up a new context:
//! a second message in the same context reuses the first's `enc`, which is why the cases run in
//! order with one [`E2ee`] per party). Each records what the public API gives: the plaintext
//! packet, the sealed packet, the envelope's fields, the associated data. The message key and
//! base nonce the context exports are not public API and not recorded. Checked for each: the
//! plaintext is what `packet` encodes from the recorded fields, sealing it again gives the
//! recorded bytes, and the recorded sealed bytes open to the plaintext. Each packet of
//! `refused` is opened by a fresh receiver (after the messages it names in `opened_before`) and
//! must fail with the recorded [`OpenError::name`].
//!
//! `rfc9180_a_2_3` is RFC 9180 Appendix A.2.3 (DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
//! ChaCha20Poly1305, auth mode), typed in from the RFC: the `hpke` crate, driven as
//! `chat_core::e2ee` drives it (auth mode, the ephemeral key derived from the 32 bytes drawn
//! from the RNG), must give the RFC's keys, `enc`, ciphertexts and exported values.
//!
//! By default the test only reads the file. After a deliberate format change, regenerate the
//! `messages` and `refused` parts from the inputs written in this file (the RFC part is kept)
//! and review the diff:
//!
//! ```text
//! PCHAT_WRITE_E2EE_VECTORS=1 cargo test -p chat-core --test e2ee_vectors
//! ```

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chat_core::e2ee::{self, E2ee, OpenError, SessionKey};
use chat_core::packet::{self, Encrypted, Packet, PacketMessage};
use chat_core::reaction::Reaction;
use hpke::{Deserializable as _, Kem as _, OpModeR, OpModeS, Serializable as _};
use pchat_core::chat_key::ChatKey;
use prost::Message as _;
use serde_json::{Value, json};

type Kem = hpke::kem::X25519HkdfSha256;
type Kdf = hpke::kdf::HkdfSha256;
type Aead = hpke::aead::ChaCha20Poly1305;

const WRITE_VAR: &str = "PCHAT_WRITE_E2EE_VECTORS";

fn path() -> PathBuf {
    // Cargo gives the crate's directory at run time; the compiled-in path is a fallback.
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("tests/vectors/e2ee.json")
}

fn load() -> Value {
    let path = path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("vectors are JSON")
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} (a string) in {v}"))
}

fn bytes_of(v: &Value, key: &str) -> Vec<u8> {
    hex::decode(str_of(v, key)).unwrap_or_else(|e| panic!("{key} is not hex: {e}"))
}

fn ikm_of(v: &Value, key: &str) -> [u8; 32] {
    bytes_of(v, key)
        .try_into()
        .unwrap_or_else(|_| panic!("{key} is not 32 bytes"))
}

fn key_of(v: &Value, key: &str) -> ChatKey {
    ChatKey::parse(str_of(v, key)).unwrap_or_else(|e| panic!("{key}: {e}"))
}

fn at_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

fn envelope(sealed: &[u8]) -> Encrypted {
    match Packet::decode(sealed).expect("a packet").message {
        Some(PacketMessage::Encrypted(e)) => e,
        other => panic!("not an encrypted packet: {other:?}"),
    }
}

fn packet_of(e: Encrypted) -> Vec<u8> {
    Packet {
        message: Some(PacketMessage::Encrypted(e)),
        protocol_version: chat_core::PROTOCOL_VERSION,
    }
    .encode_to_vec()
}

/// The plaintext packet a message case describes, as `packet` encodes it.
fn plaintext_of(case: &Value) -> Vec<u8> {
    let now = at_ms(case["now_unix_ms"].as_u64().expect("now_unix_ms"));
    if let Some(chat) = case.get("chat") {
        let want = chat["receipt_requested"]
            .as_bool()
            .expect("receipt_requested");
        let (payload, asked) =
            packet::encode_message(str_of(chat, "text"), now, want).expect("encode_message");
        assert_eq!(asked, want, "{}", case["name"]);
        payload
    } else {
        let r = &case["reaction"];
        let emoji = u16::try_from(r["emoji_index"].as_u64().expect("emoji_index")).expect("u16");
        let id = str_of(r, "message_id");
        let address = str_of(r, "address");
        let reaction = if r["removal"].as_bool().expect("removal") {
            Reaction::remove(emoji, id, address)
        } else {
            Reaction::add(emoji, id, address)
        };
        packet::encode_reaction(&reaction).expect("encode_reaction")
    }
}

/// Opens a case's `sealed` as its recipient, with its `sender_public` (`null`: none published).
fn open_recorded(receiver: &mut E2ee, case: &Value) -> Result<Vec<u8>, OpenError> {
    let sender_key = case["sender_public"]
        .as_str()
        .map(|_| key_of(case, "sender_public"));
    receiver.open(
        str_of(case, "sender"),
        str_of(case, "recipient"),
        sender_key.as_ref(),
        &bytes_of(case, "sealed"),
    )
}

/// The party (its [`E2ee`], created on first use from its IKM) with this IKM.
fn party<'a>(parties: &'a mut HashMap<[u8; 32], E2ee>, ikm: &[u8; 32]) -> &'a mut E2ee {
    parties
        .entry(*ikm)
        .or_insert_with(|| E2ee::new(SessionKey::derive(ikm)))
}

/// Seals a message case with its sender's state, and returns the case with everything the
/// API gives recorded (the file's form).
fn seal_case(senders: &mut HashMap<[u8; 32], E2ee>, case: &Value) -> Value {
    let sender_ikm = ikm_of(case, "sender_ikm");
    let recipient_ikm = ikm_of(case, "recipient_ikm");
    let recipient_key = SessionKey::derive(&recipient_ikm).public();
    let sender = str_of(case, "sender");
    let recipient = str_of(case, "recipient");
    let now = at_ms(case["now_unix_ms"].as_u64().expect("now_unix_ms"));
    let plaintext = plaintext_of(case);
    let sealed = party(senders, &sender_ikm)
        .seal_with_ephemeral_ikm(
            sender,
            recipient,
            &recipient_key,
            &plaintext,
            now,
            &ikm_of(case, "ephemeral_ikm"),
        )
        .expect("seal");
    let e = envelope(&sealed);
    let mut out = case.clone();
    out["sender_public"] = json!(SessionKey::derive(&sender_ikm).public().to_hex());
    out["recipient_public"] = json!(recipient_key.to_hex());
    out["plaintext"] = json!(hex::encode(&plaintext));
    out["sealed"] = json!(hex::encode(&sealed));
    out["aad"] = json!(hex::encode(e2ee::associated_data(
        sender,
        recipient,
        e.timestamp
    )));
    out["envelope"] = json!({
        "enc": hex::encode(&e.enc),
        "seq": e.seq,
        "timestamp": e.timestamp,
    });
    out
}

const ALICE: &str = "0x8ba1f109551bd432803012645ac136ddd64dba72";
const BOB: &str = "0x23c86705dd3a3855d939322c53379d42a4e365ee";
const CAROL: &str = "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc";
const ALICE_IKM: [u8; 32] = [0xa1; 32];
const BOB_IKM: [u8; 32] = [0xb0; 32];
const CAROL_IKM: [u8; 32] = [0xc0; 32];
/// 2025-11-26 09:40:00.123 UTC.
const T0_MS: u64 = 1_764_150_000_123;

/// The inputs of the vectors: what `PCHAT_WRITE_E2EE_VECTORS=1` writes the file from.
fn generate(rfc: Value) -> Value {
    let ikm = |b: [u8; 32]| hex::encode(b);
    let message = |name: &str, from: (&str, [u8; 32]), to: (&str, [u8; 32]), eph: u8, ms| {
        json!({
            "name": name,
            "sender": from.0, "sender_ikm": ikm(from.1),
            "recipient": to.0, "recipient_ikm": ikm(to.1),
            "ephemeral_ikm": ikm([eph; 32]),
            "now_unix_ms": ms,
        })
    };
    let alice = (ALICE, ALICE_IKM);
    let bob = (BOB, BOB_IKM);
    let mut first = message("chat, receipt requested, seq 0", alice, bob, 0xe0, T0_MS);
    first["chat"] = json!({"text": "meet me at the plaza at noon 🌵", "receipt_requested": true});
    let mut second = message(
        "chat in the same context, seq 1",
        alice,
        bob,
        0xe0,
        T0_MS + 4_000,
    );
    second["chat"] = json!({"text": "running 5 min late", "receipt_requested": false});
    let first_ts = chat_core::ole::to_ole(at_ms(T0_MS));
    let mut react = message(
        "reaction, bob to alice, seq 0",
        bob,
        alice,
        0xe1,
        T0_MS + 9_000,
    );
    react["reaction"] = json!({
        "emoji_index": 42,
        "removal": false,
        "message_id": chat_core::message_id(ALICE, first_ts),
        "address": BOB,
    });

    let mut senders = HashMap::new();
    let messages: Vec<Value> = [first, second, react]
        .iter()
        .map(|m| seal_case(&mut senders, m))
        .collect();

    let genuine = &messages[0];
    let sealed = bytes_of(genuine, "sealed");
    let alice_key = str_of(genuine, "sender_public");
    let carol_key = SessionKey::derive(&CAROL_IKM).public().to_hex();
    let bad = |name: &str, sealed: &[u8], sender_public: Value, recipient, error: &str| {
        json!({
            "name": name,
            "sender": ALICE,
            "sender_public": sender_public,
            "recipient": recipient,
            "recipient_ikm": ikm(BOB_IKM),
            "opened_before": [],
            "sealed": hex::encode(sealed),
            "error": error,
        })
    };
    let mut tampered = envelope(&sealed);
    tampered.ciphertext[0] ^= 0x01;
    let mut forged_case = message("forged", (ALICE, CAROL_IKM), bob, 0xe2, T0_MS);
    forged_case["chat"] = json!({"text": "it is me, alice", "receipt_requested": true});
    let forged = bytes_of(&seal_case(&mut HashMap::new(), &forged_case), "sealed");
    let mut replay = bad(
        "replay of the seq-0 chat after it was opened",
        &sealed,
        json!(alice_key),
        BOB,
        OpenError::Replayed.name(),
    );
    replay["opened_before"] = json!([str_of(genuine, "name")]);
    let undecryptable = OpenError::Undecryptable.name();
    let refused = vec![
        bad(
            "tampered ciphertext (first byte flipped)",
            &packet_of(tampered),
            json!(alice_key),
            BOB,
            undecryptable,
        ),
        bad(
            "wrong recipient in the AAD (bob opens it as if addressed to carol)",
            &sealed,
            json!(alice_key),
            CAROL,
            undecryptable,
        ),
        bad(
            "wrong sender key (carol's key published for alice)",
            &sealed,
            json!(carol_key),
            BOB,
            undecryptable,
        ),
        bad(
            "forged: sealed with carol's session key, claiming to be alice",
            &forged,
            json!(alice_key),
            BOB,
            undecryptable,
        ),
        bad(
            "no key published by the sender",
            &sealed,
            Value::Null,
            BOB,
            OpenError::NoSenderKey.name(),
        ),
        replay,
    ];
    json!({
        "description": "Sealed private messages (chat_core::e2ee), written by crates/chat-core/tests/e2ee_vectors.rs with PCHAT_WRITE_E2EE_VECTORS=1. Session keys: RFC 9180 DeriveKeyPair(ikm) of DHKEM(X25519, HKDF-SHA256); HPKE auth mode, HKDF-SHA256, ChaCha20-Poly1305, info = hpke_info; ephemeral_ikm is used only when the seal sets up a new context (seq 0), messages run in order with one state per party. All bytes are hex.",
        "hpke_info": hex::encode(e2ee::HPKE_INFO),
        "messages": messages,
        "refused": refused,
        "rfc9180_a_2_3": rfc,
    })
}

/// The file, rewritten first (once, whichever test comes first) if [`WRITE_VAR`] is `1`.
fn vectors() -> &'static Value {
    static VECTORS: OnceLock<Value> = OnceLock::new();
    VECTORS.get_or_init(|| {
        if std::env::var(WRITE_VAR).is_ok_and(|v| v == "1") {
            let rfc = load()["rfc9180_a_2_3"].clone();
            assert!(rfc.is_object(), "the RFC part must be in the file already");
            let text = serde_json::to_string_pretty(&generate(rfc)).expect("json") + "\n";
            std::fs::write(path(), text).expect("write the vectors");
        }
        load()
    })
}

#[test]
fn sealing_gives_the_recorded_bytes_and_they_open_to_the_plaintext() {
    let v = vectors();
    assert_eq!(bytes_of(v, "hpke_info"), e2ee::HPKE_INFO);
    let messages = v["messages"].as_array().expect("messages");
    assert!(messages.len() >= 3);
    let mut senders = HashMap::new();
    let mut receivers = HashMap::new();
    for case in messages {
        let name = str_of(case, "name");
        // (a) Sealing again, deterministically, gives every recorded byte.
        let resealed = seal_case(&mut senders, case);
        for field in [
            "sender_public",
            "recipient_public",
            "plaintext",
            "sealed",
            "aad",
            "envelope",
        ] {
            assert_eq!(resealed[field], case[field], "{name}: {field}");
        }
        // The bound holds for chats and for our reactions (whose reacting address travels as
        // the sender's identity).
        let overhead = bytes_of(case, "sealed").len() - bytes_of(case, "plaintext").len();
        assert!(overhead <= e2ee::MAX_OVERHEAD, "{name}: {overhead} bytes");
        // (b) The recorded sealed bytes open, for the recipient, to the recorded plaintext.
        let opened = open_recorded(party(&mut receivers, &ikm_of(case, "recipient_ikm")), case)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(hex::encode(opened), str_of(case, "plaintext"), "{name}");
    }
    // The second message reuses the first's context (same enc, next number).
    assert_eq!(
        messages[0]["envelope"]["enc"],
        messages[1]["envelope"]["enc"]
    );
    assert_eq!(messages[0]["envelope"]["seq"], 0);
    assert_eq!(messages[1]["envelope"]["seq"], 1);
    assert!(messages[0]["chat"]["receipt_requested"].as_bool() == Some(true));
    assert!(messages.iter().any(|m| m.get("reaction").is_some()));
}

#[test]
fn the_recorded_bad_packets_are_refused_with_their_reason() {
    let v = vectors();
    let messages = v["messages"].as_array().expect("messages");
    let refused = v["refused"].as_array().expect("refused");
    let mut errors: Vec<&str> = Vec::new();
    for case in refused {
        let name = str_of(case, "name");
        let mut receiver = E2ee::new(SessionKey::derive(&ikm_of(case, "recipient_ikm")));
        for before in case["opened_before"].as_array().expect("opened_before") {
            let m = messages
                .iter()
                .find(|m| m["name"] == *before)
                .unwrap_or_else(|| panic!("{name}: no message {before}"));
            open_recorded(&mut receiver, m)
                .unwrap_or_else(|e| panic!("{name}: {before} does not open: {e}"));
        }
        match open_recorded(&mut receiver, case) {
            Err(e) => assert_eq!(e.name(), str_of(case, "error"), "{name}: {e}"),
            Ok(_) => panic!("{name}: opened"),
        }
        errors.push(str_of(case, "error"));
    }
    for error in [OpenError::Undecryptable, OpenError::Replayed] {
        assert!(errors.contains(&error.name()), "no {} case", error.name());
    }
}

/// What `hpke` draws from its RNG, served from the given bytes; drawing more than given, or
/// anything but bytes, fails the test (`hpke` must take exactly the 32-byte IKM of the
/// ephemeral key, as `chat_core::e2ee` relies on).
struct Ikm(Vec<u8>);

impl hpke::rand_core::TryRng for Ikm {
    type Error = core::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        panic!("hpke drew a u32, not the IKM bytes")
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        panic!("hpke drew a u64, not the IKM bytes")
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        assert!(dst.len() <= self.0.len(), "hpke drew more than the IKM");
        dst.copy_from_slice(&self.0[..dst.len()]);
        self.0.drain(..dst.len());
        Ok(())
    }
}

impl hpke::rand_core::TryCryptoRng for Ikm {}

#[test]
fn the_hpke_crate_gives_rfc_9180_appendix_a_2_3() {
    let v = &vectors()["rfc9180_a_2_3"];
    assert_eq!(
        (&v["mode"], &v["kem_id"], &v["kdf_id"], &v["aead_id"]),
        (&json!(2), &json!(32), &json!(1), &json!(3)),
        "auth mode, X25519-SHA256, HKDF-SHA256, ChaCha20Poly1305"
    );
    let info = bytes_of(v, "info");
    let (sk_r, pk_r) = Kem::derive_keypair(&bytes_of(v, "ikmR"));
    let (sk_s, pk_s) = Kem::derive_keypair(&bytes_of(v, "ikmS"));
    assert_eq!(pk_r.to_bytes().as_slice(), bytes_of(v, "pkRm"));
    assert_eq!(pk_s.to_bytes().as_slice(), bytes_of(v, "pkSm"));
    // Our session keys are the same DeriveKeyPair.
    assert_eq!(
        SessionKey::derive(&bytes_of(v, "ikmR"))
            .public()
            .as_bytes()
            .to_vec(),
        bytes_of(v, "pkRm")
    );

    let mut rng = Ikm(bytes_of(v, "ikmE"));
    let (enc, mut sender) = hpke::setup_sender_with_rng::<Aead, Kdf, Kem>(
        &OpModeS::Auth((sk_s, pk_s.clone())),
        &pk_r,
        &info,
        &mut rng,
    )
    .expect("setup_sender");
    assert!(rng.0.is_empty(), "hpke drew less than the IKM");
    assert_eq!(enc.to_bytes().as_slice(), bytes_of(v, "enc"));
    assert_eq!(bytes_of(v, "enc"), bytes_of(v, "pkEm"));

    let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&bytes_of(v, "enc")).expect("enc");
    let mut receiver =
        hpke::setup_receiver::<Aead, Kdf, Kem>(&OpModeR::Auth(pk_s), &sk_r, &enc, &info)
            .expect("setup_receiver");

    let exports = v["exports"].as_array().expect("exports");
    assert_eq!(exports.len(), 3);
    for e in exports {
        let context = bytes_of(e, "context");
        let mut out = vec![0u8; usize::try_from(e["length"].as_u64().expect("length")).expect("L")];
        sender.export(&context, &mut out).expect("export");
        assert_eq!(hex::encode(&out), str_of(e, "value"), "sender, {e}");
        receiver.export(&context, &mut out).expect("export");
        assert_eq!(hex::encode(&out), str_of(e, "value"), "receiver, {e}");
    }
    // The RFC's first encryptions (consecutive numbers from 0), both ways.
    for (seq, e) in v["encryptions"]
        .as_array()
        .expect("encryptions")
        .iter()
        .enumerate()
    {
        assert_eq!(e["seq"], json!(seq));
        let ct = sender
            .seal(&bytes_of(e, "pt"), &bytes_of(e, "aad"))
            .expect("seal");
        assert_eq!(hex::encode(&ct), str_of(e, "ct"), "{e}");
        let pt = receiver
            .open(&bytes_of(e, "ct"), &bytes_of(e, "aad"))
            .expect("open");
        assert_eq!(hex::encode(pt), str_of(e, "pt"), "{e}");
    }
}
