//! Connectivity: a user's first connection (on any instance) makes them online to their
//! friends, the last one closing makes them offline; with Redis, the upkeep announces the users
//! of instances that died (see [`crate::presence`]).

use std::sync::Arc;

use social_proto::v2;

use super::Social;
use crate::bus::Update;

impl Social {
    /// With Redis: keeps this instance alive in the shared presence and announces the users of
    /// instances that died as offline (see [`crate::presence`]). Stops when the service is gone.
    pub fn spawn_presence_upkeep(self: &Arc<Self>) {
        let Some(period) = self.presence.upkeep_period() else {
            return;
        };
        let social = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let Some(social) = social.upgrade() else {
                    return;
                };
                let found = social.presence.upkeep().await;
                for user in &found.offline {
                    social.announce(user, v2::ConnectivityStatus::Offline).await;
                }
                for user in &found.online {
                    social.announce(user, v2::ConnectivityStatus::Online).await;
                }
            }
        });
    }

    /// A user's first connection (on any instance) makes them online to their friends.
    pub async fn connected(&self, address: &str) {
        if self.presence.joined(address).await {
            self.announce(address, v2::ConnectivityStatus::Online).await;
        }
    }

    /// A user's last connection (on any instance) closing makes them offline.
    pub async fn disconnected(&self, address: &str) {
        if self.presence.left(address).await {
            self.announce(address, v2::ConnectivityStatus::Offline)
                .await;
        }
    }

    /// Whether `address` holds a connection to this instance.
    pub async fn is_connected_here(&self, address: &str) -> bool {
        self.presence.here(address).await
    }

    async fn announce(&self, address: &str, status: v2::ConnectivityStatus) {
        match self.friends_for_presence(address).await {
            Ok(friends) if friends.is_empty() => {}
            Ok(friends) => {
                let me = self.profile(address).await.friend();
                for f in friends {
                    self.bus
                        .publish(
                            &f,
                            Update::Connectivity(v2::FriendConnectivityUpdate {
                                friend: Some(me.clone()),
                                status: status as i32,
                            }),
                        )
                        .await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot announce connectivity"),
        }
    }
}
