//! Settings: GetSocialSettings, UpsertSocialSettings (fail-closed with the gatekeeper) and
//! GetPrivateMessagesSettings (privacy and friendship of up to [`MAX_SETTINGS_USERS`] users).

use std::sync::Arc;

use dcl_rpc_server::CallContext;
use pchat_core::{Privacy, normalize_address_owned};
use social_core::SettingsChange;
use social_proto::v2;

use super::convert::{privacy_to_proto, settings_change, settings_to_proto};
use super::reply::{Internal, Refusal, invalid};
use super::{MAX_SETTINGS_USERS, Social};

impl Social {
    pub(super) async fn get_settings(
        self: Arc<Self>,
        ctx: CallContext,
        _req: (),
    ) -> Result<v2::GetSocialSettingsResponse, Internal> {
        use v2::get_social_settings_response::{Ok as SettingsOk, Response};
        let s = self.data.settings(&ctx.address).await?;
        Ok(v2::GetSocialSettingsResponse {
            response: Some(Response::Ok(SettingsOk {
                settings: Some(settings_to_proto(&s)),
            })),
        })
    }

    /// Fail-closed with the gatekeeper: a change to `only_friends` is sent to the gatekeeper
    /// first and stored only if that worked (other fields are still saved); a change to `all`
    /// is stored first and then sent. A gatekeeper failure is reported to the client either way.
    pub(super) async fn upsert_settings(
        self: Arc<Self>,
        ctx: CallContext,
        req: v2::UpsertSocialSettingsPayload,
    ) -> Result<v2::UpsertSocialSettingsResponse, Refusal> {
        use v2::upsert_social_settings_response::Response;
        let change = settings_change(&req)?;
        let me = &ctx.address;
        // Every path writes through `data`, which invalidates the settings whatever happened.
        let saved = match change.private_messages_privacy {
            Some(Privacy::OnlyFriends) => {
                let told = self
                    .gatekeeper
                    .privacy_changed(me, Privacy::OnlyFriends)
                    .await;
                // Not told: the other fields are still saved, the privacy is not.
                let change = if told.is_ok() {
                    change
                } else {
                    SettingsChange {
                        private_messages_privacy: None,
                        ..change
                    }
                };
                let saved = self.data.upsert_settings(me, change).await?;
                told.map_err(Internal::new)?;
                saved
            }
            Some(Privacy::All) => {
                let saved = self.data.upsert_settings(me, change).await?;
                self.gatekeeper
                    .privacy_changed(me, Privacy::All)
                    .await
                    .map_err(Internal::new)?;
                saved
            }
            None => self.data.upsert_settings(me, change).await?,
        };
        Ok(v2::UpsertSocialSettingsResponse {
            response: Some(Response::Ok(settings_to_proto(&saved))),
        })
    }

    pub(super) async fn private_messages_settings(
        self: Arc<Self>,
        ctx: CallContext,
        req: v2::GetPrivateMessagesSettingsPayload,
    ) -> Result<v2::GetPrivateMessagesSettingsResponse, Refusal> {
        use v2::get_private_messages_settings_response::{
            Ok as SettingsOk, PrivateMessagesSettings, Response,
        };
        if req.user.is_empty() || req.user.len() > MAX_SETTINGS_USERS {
            return Err(invalid(format!(
                "between 1 and {MAX_SETTINGS_USERS} users are accepted, got {}",
                req.user.len()
            ))
            .into());
        }
        let addresses = req
            .user
            .into_iter()
            .map(|u| {
                normalize_address_owned(u.address)
                    .map_err(|bad| invalid(format!("invalid address {bad:?}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let settings = self.data.settings_of(&addresses).await?;
        let friends = self.data.are_friends(&ctx.address, &addresses).await?;
        Ok(v2::GetPrivateMessagesSettingsResponse {
            response: Some(Response::Ok(SettingsOk {
                settings: addresses
                    .into_iter()
                    .zip(settings)
                    .zip(friends)
                    .map(|((address, s), is_friend)| PrivateMessagesSettings {
                        user: Some(v2::User { address }),
                        private_messages_privacy: privacy_to_proto(s.private_messages_privacy),
                        is_friend,
                    })
                    .collect(),
            })),
        })
    }
}
