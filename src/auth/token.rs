//! HS256 access tokens. Only HS256 is accepted: `alg: none` and other algorithms are refused.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: String,
    pub email: String,
    pub iat: u64,
    pub exp: u64,
    /// Always "access": a refresh token is never a JWT, but be explicit.
    pub typ: String,
}

pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
}

impl Keys {
    pub fn new(secret: &[u8], access_ttl: Duration, refresh_ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub", "iat"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            access_ttl,
            refresh_ttl,
        }
    }

    pub fn sign_access(&self, user_id: i64, email: &str) -> String {
        let iat = crate::time::now_ms() as u64 / 1000;
        let claims = Claims {
            sub: user_id.to_string(),
            email: email.to_string(),
            iat,
            exp: iat + self.access_ttl.as_secs(),
            typ: "access".into(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing cannot fail")
    }

    pub fn verify_access(&self, token: &str) -> Result<Claims, String> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    "access token expired".to_string()
                }
                _ => "access token is invalid".to_string(),
            })?;
        if data.claims.typ != "access" {
            return Err("not an access token".into());
        }
        Ok(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn keys() -> Keys {
        Keys::new(
            &[7u8; 32],
            Duration::from_secs(60),
            Duration::from_secs(600),
        )
    }

    #[test]
    fn signed_token_verifies() {
        let k = keys();
        let t = k.sign_access(4, "a@b.c");
        let c = k.verify_access(&t).unwrap();
        assert_eq!(c.sub, "4");
        assert_eq!(c.email, "a@b.c");
    }

    #[test]
    fn tampered_and_foreign_tokens_fail() {
        let k = keys();
        let t = k.sign_access(4, "a@b.c");
        let mut parts: Vec<String> = t.split('.').map(String::from).collect();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let payload = String::from_utf8(b64.decode(&parts[1]).unwrap())
            .unwrap()
            .replace("\"4\"", "\"1\"");
        parts[1] = b64.encode(payload);
        assert!(k.verify_access(&parts.join(".")).is_err());

        let other = Keys::new(
            &[8u8; 32],
            Duration::from_secs(60),
            Duration::from_secs(600),
        );
        assert!(k.verify_access(&other.sign_access(4, "a@b.c")).is_err());
    }

    #[test]
    fn alg_none_is_refused() {
        let k = keys();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let payload = b64.encode(format!(
            r#"{{"sub":"1","email":"a@b.c","iat":{},"exp":{},"typ":"access"}}"#,
            1,
            u64::MAX / 2
        ));
        assert!(k.verify_access(&format!("{header}.{payload}.")).is_err());
    }
}
