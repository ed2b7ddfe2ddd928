//! Social settings: one row per user who changed one, defaults for everyone else.

use std::collections::HashMap;

use social_core::{BlockedMessagesVisibility, SettingsChange, SituationReactions, SocialSettings};
use sqlx::Row;

use crate::{Privacy, Reader, Result, Store, StoreError, placeholders};

impl Store {
    /// Changes the given fields of a user's settings in one statement (concurrent changes to
    /// different fields all stick) and returns the result.
    pub async fn upsert_settings(
        &self,
        address: &str,
        change: SettingsChange,
    ) -> Result<SocialSettings> {
        self.retrying(|| async { self.try_upsert_settings(address, change).await.map(Some) })
            .await
    }

    async fn try_upsert_settings(
        &self,
        address: &str,
        change: SettingsChange,
    ) -> Result<SocialSettings> {
        let row = sqlx::query(
            "INSERT INTO social_settings (address, private_messages_privacy, blocked_users_messages_visibility, show_situation_reactions) \
             VALUES ($1, COALESCE($2, $5), COALESCE($3, $6), COALESCE($4, $7)) ON CONFLICT (address) DO UPDATE SET \
             private_messages_privacy = COALESCE($2, social_settings.private_messages_privacy), \
             blocked_users_messages_visibility = COALESCE($3, social_settings.blocked_users_messages_visibility), \
             show_situation_reactions = COALESCE($4, social_settings.show_situation_reactions) \
             RETURNING private_messages_privacy, blocked_users_messages_visibility, show_situation_reactions",
        )
        .bind(address.to_owned())
        .bind(change.private_messages_privacy.map(|p| p.as_str()))
        .bind(change.blocked_users_messages_visibility.map(|v| v.as_str()))
        .bind(change.show_situation_reactions.map(|r| r.as_str()))
        .bind(Privacy::default().as_str())
        .bind(BlockedMessagesVisibility::default().as_str())
        .bind(SituationReactions::default().as_str())
        .fetch_one(&self.pool)
        .await?;
        settings_row(&row, 0)
    }
}

impl Reader {
    /// A user's settings (defaults when the user has none).
    pub async fn settings(&self, address: &str) -> Result<SocialSettings> {
        Ok(self
            .settings_many(&[address.to_owned()])
            .await?
            .remove(address)
            .unwrap_or_default())
    }

    /// Settings of several users; users without a row are absent from the map.
    pub async fn settings_many(
        &self,
        addresses: &[String],
    ) -> Result<HashMap<String, SocialSettings>> {
        if addresses.is_empty() {
            return Ok(HashMap::new());
        }
        let sql = format!(
            "SELECT address, private_messages_privacy, blocked_users_messages_visibility, show_situation_reactions \
             FROM social_settings WHERE address IN ({})",
            placeholders(1, addresses.len())
        );
        let mut q = sqlx::query(&sql);
        for a in addresses {
            q = q.bind(a.clone());
        }
        let mut out = HashMap::new();
        for row in q.fetch_all(&self.pool).await? {
            let address: String = row.try_get(0)?;
            out.insert(address, settings_row(&row, 1)?);
        }
        Ok(out)
    }
}

/// Settings from the three columns starting at `first`.
fn settings_row(row: &sqlx::any::AnyRow, first: usize) -> Result<SocialSettings> {
    let privacy: String = row.try_get(first)?;
    let visibility: String = row.try_get(first + 1)?;
    let reactions: String = row.try_get(first + 2)?;
    Ok(SocialSettings {
        private_messages_privacy: privacy
            .parse()
            .map_err(|_| StoreError::Corrupt(privacy.clone()))?,
        blocked_users_messages_visibility: visibility.parse().map_err(StoreError::Corrupt)?,
        show_situation_reactions: reactions.parse().map_err(StoreError::Corrupt)?,
    })
}
