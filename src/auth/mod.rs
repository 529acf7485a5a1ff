//! Who may call the API: argon2id passwords, short-lived JWT access tokens, and opaque refresh
//! tokens that rotate on every use (a spent one presented again revokes the user's sessions).

pub mod password;
pub mod secret;
pub mod throttle;
pub mod token;

use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::db::users;
use crate::db::{self, Durability, Writer};

pub use token::{Claims, Keys};

/// An access/refresh pair, as the login and refresh endpoints return it.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("refresh token is invalid or expired")]
    Invalid,
    #[error("refresh token was already used; all sessions of this user are signed out")]
    Reused,
    #[error(transparent)]
    Db(#[from] db::DbError),
}

/// A new refresh token: `rt_` and 32 random bytes, base64url.
fn new_refresh_token() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!(
        "rt_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// Only this hash is stored; the token itself exists only on the client.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Issues a pair for a user who just proved who they are, starting a new refresh family.
pub async fn issue(
    writer: &Writer,
    keys: &Keys,
    user_id: i64,
    email: &str,
) -> Result<TokenPair, db::DbError> {
    let family = uuid::Uuid::new_v4().simple().to_string();
    issue_in_family(writer, keys, user_id, email, family).await
}

async fn issue_in_family(
    writer: &Writer,
    keys: &Keys,
    user_id: i64,
    email: &str,
    family: String,
) -> Result<TokenPair, db::DbError> {
    let refresh = new_refresh_token();
    let hash = hash_token(&refresh);
    let now = crate::time::now_ms();
    let expires = now + keys.refresh_ttl.as_millis() as i64;
    writer
        .exec(Durability::Durable, move |c| {
            Box::pin(async move {
                users::insert_refresh(c, &hash, user_id, &family, expires, now).await
            })
        })
        .await?;
    Ok(pair(keys, user_id, email, refresh))
}

fn pair(keys: &Keys, user_id: i64, email: &str, refresh: String) -> TokenPair {
    TokenPair {
        access_token: keys.sign_access(user_id, email),
        refresh_token: refresh,
        token_type: "Bearer",
        expires_in: keys.access_ttl.as_secs(),
    }
}

enum Rotation {
    Rotated { user_id: i64, email: String },
    Invalid,
    Reused,
}

/// Trades a refresh token for a new pair. The old token is spent in the same transaction that
/// stores the new one, so a token can be traded only once.
pub async fn refresh(writer: &Writer, keys: &Keys, token: &str) -> Result<TokenPair, RefreshError> {
    let old_hash = hash_token(token);
    let new_token = new_refresh_token();
    let new_hash = hash_token(&new_token);
    let ttl = keys.refresh_ttl.as_millis() as i64;
    let outcome = writer
        .exec(Durability::Durable, move |c| {
            Box::pin(async move {
                let now = crate::time::now_ms();
                let Some(row) = users::find_refresh(c, &old_hash).await? else {
                    return Ok(Rotation::Invalid);
                };
                if row.used_at.is_some() {
                    // A spent token came back: someone holds a copy. Sign the user out everywhere.
                    users::revoke_all(c, row.user_id, now).await?;
                    return Ok(Rotation::Reused);
                }
                if row.revoked_at.is_some() || row.expires_at <= now {
                    return Ok(Rotation::Invalid);
                }
                if !users::spend_refresh(c, &old_hash, now).await? {
                    return Ok(Rotation::Invalid);
                }
                let email = users::email_of(c, row.user_id).await?;
                let Some(email) = email else {
                    return Ok(Rotation::Invalid);
                };
                users::insert_refresh(c, &new_hash, row.user_id, &row.family, now + ttl, now)
                    .await?;
                Ok(Rotation::Rotated {
                    user_id: row.user_id,
                    email,
                })
            })
        })
        .await?;
    match outcome {
        Rotation::Rotated { user_id, email } => Ok(pair(keys, user_id, &email, new_token)),
        Rotation::Invalid => Err(RefreshError::Invalid),
        Rotation::Reused => Err(RefreshError::Reused),
    }
}

/// Revokes the refresh token's whole family (this login's chain). Unknown tokens are ignored,
/// so logout never tells a caller whether a token existed.
pub async fn logout(writer: &Writer, token: &str) -> Result<(), db::DbError> {
    let hash = hash_token(token);
    writer
        .exec(Durability::Durable, move |c| {
            Box::pin(async move {
                if let Some(row) = users::find_refresh(c, &hash).await? {
                    users::revoke_family(c, &row.family, crate::time::now_ms()).await?;
                }
                Ok(())
            })
        })
        .await
}
