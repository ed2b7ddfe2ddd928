//! The routing of incoming frames to their waiters (no I/O).

use super::*;

fn stream_slot(
    table: &mut Table,
    n: u32,
    buffer: usize,
) -> (mpsc::Receiver<StreamMessage>, StreamEnd) {
    let (tx, rx) = mpsc::channel(buffer);
    let end: StreamEnd = Arc::new(OnceLock::new());
    table.streams.insert(
        n,
        StreamSlot {
            tx,
            end: end.clone(),
        },
    );
    (rx, end)
}

fn item(n: u32, seq: u32, closed: bool) -> Frame {
    Frame::StreamMessage(StreamMessage {
        message_identifier: identifier(MessageType::StreamMessage, n),
        port_id: 1,
        sequence_id: seq,
        payload: vec![seq as u8],
        closed,
        ack: false,
    })
}

#[test]
fn answers_reach_the_call_with_their_number_only() {
    let mut t = Table::default();
    let (tx5, mut rx5) = oneshot::channel();
    let (tx6, mut rx6) = oneshot::channel();
    t.calls.insert(5, tx5);
    t.calls.insert(6, tx6);
    assert_eq!(t.route(Frame::response(6, b"six".to_vec())), Routed::Done);
    match rx6.try_recv() {
        Ok(Ok(Frame::Response(r))) => assert_eq!(r.payload, b"six"),
        other => panic!("{other:?}"),
    }
    assert!(rx5.try_recv().is_err(), "call 5 still waits");
    assert_eq!(t.waiting(), 1);
    // A late answer (its caller timed out) is dropped without harm.
    assert_eq!(t.route(Frame::response(77, Vec::new())), Routed::Done);
    assert_eq!(t.route(Frame::remote_error(5, 3, "nope")), Routed::Done);
    match rx5.try_recv() {
        Ok(Ok(Frame::RemoteError(e))) => assert_eq!(e.error_message, "nope"),
        other => panic!("{other:?}"),
    }
    assert_eq!(t.waiting(), 0);
}

#[test]
fn stream_items_go_to_their_stream_and_the_close_ends_it_normally() {
    let mut t = Table::default();
    let (mut rx, end) = stream_slot(&mut t, 9, 4);
    let (mut other, _) = stream_slot(&mut t, 10, 4);
    for seq in 0..3 {
        assert_eq!(t.route(item(9, seq, false)), Routed::Done);
    }
    for seq in 0..3 {
        assert_eq!(rx.try_recv().map(|m| m.sequence_id).ok(), Some(seq));
    }
    assert!(other.try_recv().is_err());
    assert_eq!(t.route(item(9, 3, true)), Routed::Done);
    assert!(
        matches!(end.get(), Some(None)),
        "ended by the server, no error"
    );
    assert!(!t.streams.contains_key(&9));
    // Items for a stream already gone (cancelled here) are dropped.
    assert_eq!(t.route(item(9, 4, false)), Routed::Done);
}

#[test]
fn a_stream_over_its_buffer_is_a_violation_and_is_cancelled() {
    let mut t = Table::default();
    let (_rx, end) = stream_slot(&mut t, 3, 2);
    assert_eq!(t.route(item(3, 1, false)), Routed::Done);
    assert_eq!(t.route(item(3, 2, false)), Routed::Done);
    match t.route(item(3, 3, false)) {
        Routed::Send(Frame::StreamMessage(m)) => {
            assert!(m.closed);
            assert_eq!(split_identifier_number(m.message_identifier), 3);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(end.get(), Some(Some(RpcError::Protocol(_)))));
    assert!(!t.streams.contains_key(&3));
}

fn split_identifier_number(id: u32) -> u32 {
    dcl_rpc_wire::split_identifier(id).1
}

#[test]
fn a_remote_error_ends_a_stream_with_its_text() {
    let mut t = Table::default();
    let (_rx, end) = stream_slot(&mut t, 4, 2);
    assert_eq!(
        t.route(Frame::remote_error(4, 0, "Too many open streams")),
        Routed::Done
    );
    match end.get() {
        Some(Some(RpcError::Remote { message, .. })) => {
            assert_eq!(message, "Too many open streams")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn mixed_up_answers_fail_the_waiter_not_the_connection() {
    let mut t = Table::default();
    let (tx, mut rx) = oneshot::channel();
    t.calls.insert(1, tx);
    assert_eq!(t.route(item(1, 0, false)), Routed::Done);
    assert!(matches!(rx.try_recv(), Ok(Err(RpcError::Protocol(_)))));
    let (_srx, end) = stream_slot(&mut t, 2, 2);
    assert_eq!(t.route(Frame::response(2, Vec::new())), Routed::Done);
    assert!(matches!(end.get(), Some(Some(RpcError::Protocol(_)))));
}

#[test]
fn client_messages_from_the_server_are_a_violation() {
    let mut t = Table::default();
    let f = Frame::DestroyPort(DestroyPort {
        message_identifier: identifier(MessageType::DestroyPort, 1),
        port_id: 1,
    });
    assert!(matches!(t.route(f), Routed::Violation(_)));
    assert_eq!(t.route(Frame::server_ready()), Routed::Done);
}

#[test]
fn closing_tells_every_waiter_why_and_refuses_new_ones() {
    let mut t = Table::default();
    let (tx, mut rx) = oneshot::channel();
    t.calls.insert(1, tx);
    let (_srx, end) = stream_slot(&mut t, 2, 2);
    t.close(RpcError::Closed {
        code: Some(1001),
        reason: "Server shutting down".into(),
    });
    assert!(matches!(
        rx.try_recv(),
        Ok(Err(RpcError::Closed {
            code: Some(1001),
            ..
        }))
    ));
    assert!(matches!(
        end.get(),
        Some(Some(RpcError::Closed {
            code: Some(1001),
            ..
        }))
    ));
    assert!(t.closed.is_some());
    assert_eq!(t.waiting(), 0);
}

#[test]
fn close_errors_name_code_and_reason() {
    let e = RpcError::Closed {
        code: Some(3003),
        reason: "Unauthorized".into(),
    };
    assert_eq!(
        e.to_string(),
        "the connection closed (code 3003: Unauthorized)"
    );
}
