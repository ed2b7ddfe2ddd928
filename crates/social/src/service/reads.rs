//! The reads several procedures share, served through the cache ([`crate::data::Data`]): a
//! user's settings, pages of friend profiles, and the friends online now.

use dcl_rpc_server::RpcError;
use social_core::SocialSettings;
use social_proto::v2;
use social_store::{Page, StoreError};

use super::convert::paginated;
use super::reply::read_failed;
use super::{MAX_PAGE, Social};

impl Social {
    /// One user's settings (defaults if the user never changed them); a failed read is an
    /// error.
    pub async fn settings_for(&self, address: &str) -> Result<SocialSettings, StoreError> {
        self.data.settings(address).await
    }

    /// A page of friend profiles; a store failure is a remote error (the response has no
    /// error arm, and an empty page would say "no friends").
    pub(super) async fn friends_page(
        &self,
        result: Result<Page<String>, StoreError>,
        limit: i64,
        offset: i64,
    ) -> Result<v2::PaginatedFriendsProfilesResponse, RpcError> {
        let Page {
            items: friends,
            total,
        } = result.map_err(read_failed)?;
        let profiles = self.profiles.profiles(&friends).await;
        Ok(v2::PaginatedFriendsProfilesResponse {
            friends: friends.iter().map(|f| profiles.get(f).friend()).collect(),
            pagination_data: Some(paginated(total, limit, offset)),
        })
    }

    /// The friends of `address` that connectivity concerns (whom an announcement reaches, whose
    /// presence the snapshot looks up): at most `MAX_PAGE * 10`, from the cache when it has them.
    pub(super) async fn friends_for_presence(
        &self,
        address: &str,
    ) -> Result<Vec<String>, StoreError> {
        Ok(self.data.friends(address, MAX_PAGE * 10, 0).await?.items)
    }

    /// Profiles of `address`'s friends who are online now (at most `MAX_PAGE * 10` friends are
    /// looked at). A store failure is an error, not "nobody online".
    pub async fn online_friends(
        &self,
        address: &str,
    ) -> Result<Vec<v2::FriendProfile>, StoreError> {
        let friends = self.friends_for_presence(address).await?;
        let online: Vec<String> = self
            .presence
            .online_among(&friends)
            .await
            .into_iter()
            .zip(friends)
            .filter_map(|(on, f)| on.then_some(f))
            .collect();
        let profiles = self.profiles.profiles(&online).await;
        Ok(online.iter().map(|f| profiles.get(f).friend()).collect())
    }
}
