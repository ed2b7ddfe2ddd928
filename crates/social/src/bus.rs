//! Updates for connected users (friendship, block, connectivity). In-process broadcast; each
//! subscriber keeps the events addressed to its user.

use std::sync::Arc;

use social_proto::v2;
use tokio::sync::broadcast;

/// An update for one user.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    Friendship(v2::FriendshipUpdate),
    Block(v2::BlockUpdate),
    Connectivity(v2::FriendConnectivityUpdate),
}

/// An update and its recipient.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub to: String,
    pub update: Update,
}

/// The in-process fan-out.
#[derive(Clone)]
pub struct Bus {
    tx: broadcast::Sender<Arc<Envelope>>,
}

impl Default for Bus {
    fn default() -> Self {
        Bus {
            tx: broadcast::channel(4096).0,
        }
    }
}

impl Bus {
    pub fn publish(&self, to: &str, update: Update) {
        let _ = self.tx.send(Arc::new(Envelope {
            to: to.to_owned(),
            update,
        }));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Envelope>> {
        self.tx.subscribe()
    }
}
