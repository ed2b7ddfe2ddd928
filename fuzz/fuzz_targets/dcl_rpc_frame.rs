//! The dcl-rpc envelope codec: arbitrary bytes through `Frame::decode`; whatever decodes must
//! encode to bytes that decode to the same frame (unknown fields are dropped on the way, so the
//! comparison is between decoded frames, not bytes), keep its type and number, and encode again
//! to the same bytes.
#![no_main]

use dcl_rpc_wire::{Frame, MessageType, NUMBER_MASK, identifier, split_identifier};
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: private_chat_fuzz::seeds::write_if_asked("dcl_rpc_frame"),
    |data: &[u8]| {
    let Ok(frame) = Frame::decode(data) else {
        return;
    };
    let kind = frame.kind();
    let number = frame.number();
    assert!(number <= NUMBER_MASK);
    assert_eq!(MessageType::from_u32(kind as u32), Some(kind));
    let id = identifier(kind, number);
    assert_eq!(split_identifier(id), (kind as u32, number));

    let bytes = frame.encode();
    let again = Frame::decode(&bytes).expect("an encoded frame decodes");
    assert_eq!(again, frame, "decode(encode(f)) != f");
    assert_eq!(again.kind(), kind);
    assert_eq!(again.number(), number);
    assert_eq!(again.encode(), bytes, "encoding is not stable");
});
