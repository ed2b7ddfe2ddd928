//! The bounded event queue between the connection task and the application.
//!
//! Policy: the queue holds at most `max_events` events and `max_bytes` bytes (see
//! [`event_size`]). When an event does not fit, **the new event is dropped** (the ones already
//! waiting are kept, so messages that arrived before a flood are not pushed out by it), the drop is
//! counted, and a [`Event::Lagged`] marker is left at the tail of the queue, in the place of the
//! gap; further drops before the consumer makes room add to that same marker. The consumer thus
//! sees `Lagged { dropped: n }` exactly where events went missing. The producer (the network task)
//! never waits: waiting would stall pings and the server would drop the participant.
//!
//! Why hand-written: tokio's bounded `mpsc` either makes the producer wait (`send`) or loses the
//! position of the gap (`try_send`), and `broadcast` drops the oldest events and bounds only
//! their number, not their bytes (one event can be ~64 KiB). This is a `VecDeque` behind a mutex
//! plus a `Notify`, about 80 lines.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;

use crate::Event;

/// Bytes an event is charged: its fixed size plus the heap bytes it owns.
pub(crate) fn event_size(event: &Event) -> usize {
    let heap = match event {
        Event::Data(p) => {
            p.sender.len() + p.topic.as_ref().map_or(0, String::len) + p.payload.len()
        }
        Event::ParticipantJoined(p) | Event::ParticipantLeft(p) | Event::AttributesChanged(p) => {
            p.heap_bytes()
        }
        Event::MetadataChanged {
            participant: p,
            previous,
        } => p.heap_bytes() + previous.len(),
        Event::ConnectionStateChanged(_) | Event::Lagged { .. } => 0,
    };
    std::mem::size_of::<Event>() + heap
}

struct State {
    items: VecDeque<Event>,
    /// Bytes charged for the events in `items` (markers included).
    bytes: usize,
    /// How many of `items` are `Lagged` markers.
    markers: usize,
    closed: bool,
}

pub(crate) struct EventQueue {
    state: Mutex<State>,
    ready: Notify,
    max_events: usize,
    max_bytes: usize,
    dropped: AtomicU64,
}

impl EventQueue {
    pub(crate) fn new(max_events: usize, max_bytes: usize) -> Self {
        EventQueue {
            state: Mutex::new(State {
                items: VecDeque::new(),
                bytes: 0,
                markers: 0,
                closed: false,
            }),
            ready: Notify::new(),
            max_events: max_events.max(1),
            max_bytes: max_bytes.max(1),
            dropped: AtomicU64::new(0),
        }
    }

    /// Events dropped so far because the queue was full.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Queues `event`, or drops it (counted, marked) when it does not fit. Never waits.
    pub(crate) fn push(&self, event: Event) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        if s.closed {
            return;
        }
        let size = event_size(&event);
        // Markers are not counted against the limits (there is at most one per run of drops,
        // and one follows at least one real event, so they at most double the count).
        let real = s.items.len() - s.markers;
        let fits = real < self.max_events && s.bytes + size <= self.max_bytes;
        // After a gap, nothing is queued behind the marker until the consumer has made room
        // for it, so the marker stays at the end of the gap.
        if fits {
            s.bytes += size;
            s.items.push_back(event);
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            match s.items.back_mut() {
                Some(Event::Lagged { dropped }) => *dropped += 1,
                _ => {
                    s.bytes += std::mem::size_of::<Event>();
                    s.markers += 1;
                    s.items.push_back(Event::Lagged { dropped: 1 });
                }
            }
        }
        drop(s);
        self.ready.notify_one();
    }

    /// Marks the queue closed: the consumer gets what is queued, then `None`.
    pub(crate) fn close(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.closed = true;
        }
        self.ready.notify_one();
    }

    fn try_pop(&self) -> Result<Event, bool> {
        let Ok(mut s) = self.state.lock() else {
            return Err(true);
        };
        match s.items.pop_front() {
            Some(e) => {
                s.bytes = s.bytes.saturating_sub(event_size(&e));
                if matches!(e, Event::Lagged { .. }) {
                    s.markers = s.markers.saturating_sub(1);
                }
                Ok(e)
            }
            None => Err(s.closed),
        }
    }

    /// The next event; `None` once closed and empty.
    pub(crate) async fn pop(&self) -> Option<Event> {
        loop {
            match self.try_pop() {
                Ok(e) => return Some(e),
                Err(true) => return None,
                // `notify_one` keeps a permit when nobody waits, so no wake-up is lost.
                Err(false) => self.ready.notified().await,
            }
        }
    }

    #[cfg(test)]
    fn queued(&self) -> (usize, usize) {
        self.state
            .lock()
            .map(|s| (s.items.len(), s.bytes))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{IncomingPacket, Reliability};

    fn data(n: u8, len: usize) -> Event {
        Event::Data(IncomingPacket {
            sender: "s".into(),
            topic: None,
            payload: vec![n; len],
            reliability: Reliability::Reliable,
        })
    }

    fn payload_of(e: &Event) -> u8 {
        match e {
            Event::Data(p) => p.payload[0],
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_full_queue_drops_the_newest_and_marks_the_gap() {
        let q = EventQueue::new(2, usize::MAX);
        for n in 1..=5 {
            q.push(data(n, 1));
        }
        assert_eq!(q.dropped(), 3);
        assert_eq!(q.queued().0, 3, "two events and one marker");
        assert_eq!(q.pop().await.as_ref().map(payload_of), Some(1));
        // Room for one again: it goes behind the marker.
        q.push(data(6, 1));
        q.push(data(7, 1));
        assert_eq!(q.dropped(), 4);
        assert_eq!(q.pop().await.as_ref().map(payload_of), Some(2));
        assert_eq!(q.pop().await, Some(Event::Lagged { dropped: 3 }));
        assert_eq!(q.pop().await.as_ref().map(payload_of), Some(6));
        assert_eq!(q.pop().await, Some(Event::Lagged { dropped: 1 }));
        q.close();
        assert_eq!(q.pop().await, None);
    }

    #[tokio::test]
    async fn bytes_are_bounded_too() {
        let big = event_size(&data(0, 10_000));
        let q = EventQueue::new(1_000, 3 * big);
        for n in 0..100 {
            q.push(data(n, 10_000));
        }
        let (_, bytes) = q.queued();
        assert!(bytes <= 3 * big + std::mem::size_of::<Event>(), "{bytes}");
        assert_eq!(q.dropped(), 97);
        // Small events still fit where big ones did not (behind the marker of the gap).
        let q = EventQueue::new(1_000, big + 1_000);
        q.push(data(1, 10_000));
        q.push(data(2, 10_000));
        q.push(data(3, 1));
        assert_eq!(q.pop().await.as_ref().map(payload_of), Some(1));
        assert_eq!(q.pop().await, Some(Event::Lagged { dropped: 1 }));
        assert_eq!(q.pop().await.as_ref().map(payload_of), Some(3));
    }

    #[tokio::test]
    async fn a_waiting_consumer_is_woken_and_close_ends_it() {
        let q = std::sync::Arc::new(EventQueue::new(8, usize::MAX));
        let q2 = q.clone();
        let consumer = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(e) = q2.pop().await {
                got.push(payload_of(&e));
            }
            got
        });
        tokio::task::yield_now().await;
        q.push(data(1, 1));
        q.push(data(2, 1));
        q.close();
        q.push(data(3, 1));
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), consumer)
            .await
            .expect("consumer ends")
            .expect("no panic");
        assert_eq!(got, vec![1, 2]);
    }
}
