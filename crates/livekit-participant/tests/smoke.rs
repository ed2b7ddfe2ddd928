mod common;
use common::*;
use livekit_participant::{Event, Reliability};
use livekit_testkit::LiveKitServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_rust_participants_exchange_a_message() {
    let lk = LiveKitServer::start().await.expect("livekit");
    let (a, _ea) = join(&lk, "alice").await;
    let (b, mut eb) = join(&lk, "bob").await;
    wait_present(&a, "bob").await;
    a.send(
        b"hello",
        &["bob".to_owned()],
        Some("bob"),
        Reliability::Reliable,
    )
    .await
    .expect("send");
    let e = wait_event(&mut eb, "data", |e| matches!(e, Event::Data(_))).await;
    println!("{e:?}");
    drop(b);
}
