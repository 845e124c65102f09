//! Access tokens (JWT, HS256), refresh tokens (random, stored hashed) and the hub's signed
//! connection tokens.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::config::JwtSettings;

/// A user's role, as in the token's `role` claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Role {
    /// An ordinary user: `User`.
    User,
    /// An administrator (the admin API): `Admin`.
    Admin,
}

impl Role {
    /// The claim and database value: `User` or `Admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "User",
            Role::Admin => "Admin",
        }
    }

    /// From the database value: `Admin` is an administrator, anything else a user.
    pub fn parse(s: &str) -> Self {
        if s == "Admin" {
            Role::Admin
        } else {
            Role::User
        }
    }
}

/// Claims of an access token. `sub` is the user id; `name` the display name; `role` `User` or
/// `Admin` (the claim names ASP.NET's JwtBearer maps by default).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: Uuid,
    /// The display name.
    pub name: String,
    /// The phone number, E.164.
    pub phone: String,
    /// `User` or `Admin`.
    pub role: Role,
    /// Issued at, unix seconds.
    pub iat: u64,
    /// Expires at, unix seconds (`iat` + the access token lifetime).
    pub exp: u64,
    /// Issuer (`JWT_ISSUER`).
    pub iss: String,
    /// Audience (`JWT_AUDIENCE`).
    pub aud: String,
    /// A random (v4) id of this token.
    pub jti: Uuid,
}

/// Who the caller is, from a verified access token.
#[derive(Debug, Clone)]
pub struct AuthUser {
    /// The user id (`sub`).
    pub id: Uuid,
    /// The display name (`name`).
    pub name: String,
    /// The phone number, E.164 (`phone`).
    pub phone: String,
    /// The role the token was issued with (`role`). It may be stale: an administrator demoted
    /// or deleted since still holds `Admin` here until the token expires. Never authorize with
    /// it; ask [`crate::auth::current_role`], which reads the database.
    pub claimed_role: Role,
}

/// Issues and verifies tokens with the configured secret.
#[derive(Clone)]
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    access_ttl: Duration,
    refresh_ttl: Duration,
    /// HMAC key of hub connection tokens, derived from the JWT secret.
    connection_key: Vec<u8>,
}

/// A freshly issued access token.
pub struct AccessToken {
    /// The JWT, for `Authorization: Bearer`.
    pub token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
}

impl Tokens {
    /// Keys and validation (HS256, `iss`, `aud`, 30 s leeway) from the JWT settings; the hub
    /// connection-token key is derived from the same secret.
    pub fn new(s: &JwtSettings) -> Self {
        let secret = s.secret.expose().as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&s.issuer]);
        validation.set_audience(&[&s.audience]);
        validation.leeway = 30;
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
            .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new_from_slice(b"x").expect("key"));
        mac.update(b"messenger-api hub connection token v1");
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer: s.issuer.clone(),
            audience: s.audience.clone(),
            access_ttl: s.access_ttl,
            refresh_ttl: s.refresh_ttl,
            connection_key: mac.finalize().into_bytes().to_vec(),
        }
    }

    /// How long a refresh token lives.
    pub fn refresh_ttl(&self) -> Duration {
        self.refresh_ttl
    }

    /// Signs an access token for `user`.
    pub fn issue(&self, user: &AuthUser) -> anyhow::Result<AccessToken> {
        let now = unix_now();
        let claims = Claims {
            sub: user.id,
            name: user.name.clone(),
            phone: user.phone.clone(),
            role: user.claimed_role,
            iat: now,
            exp: now + self.access_ttl.as_secs(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            jti: Uuid::new_v4(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok(AccessToken {
            token,
            expires_in: self.access_ttl.as_secs(),
        })
    }

    /// Verifies signature, `exp`, `iss` and `aud`.
    pub fn verify(&self, token: &str) -> Option<AuthUser> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).ok()?;
        let c = data.claims;
        Some(AuthUser {
            id: c.sub,
            name: c.name,
            phone: c.phone,
            claimed_role: c.role,
        })
    }

    /// A hub connection token for negotiate: `<connection id>.<expiry>.<mac>`, bound to the
    /// user, so that any replica can accept it without shared state (no sticky sessions).
    pub fn connection_token(&self, connection_id: Uuid, user: Uuid, ttl: Duration) -> String {
        let exp = unix_now() + ttl.as_secs();
        let id = connection_id.simple();
        let mac = self.connection_mac(&format!("{id}.{exp}.{user}"));
        format!("{id}.{exp}.{mac}")
    }

    /// The connection id of a valid, unexpired token issued to `user`.
    pub fn verify_connection_token(&self, token: &str, user: Uuid) -> Option<Uuid> {
        let mut parts = token.splitn(3, '.');
        let (id, exp, mac) = (parts.next()?, parts.next()?, parts.next()?);
        let exp_n: u64 = exp.parse().ok()?;
        if exp_n < unix_now() {
            return None;
        }
        let expected = self.connection_mac(&format!("{id}.{exp}.{user}"));
        if !constant_eq(expected.as_bytes(), mac.as_bytes()) {
            return None;
        }
        Uuid::parse_str(id).ok()
    }

    fn connection_mac(&self, data: &str) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.connection_key)
            .expect("HMAC takes any key length");
        mac.update(data.as_bytes());
        URL_SAFE_NO_PAD.encode(&mac.finalize().into_bytes()[..16])
    }
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A new opaque refresh token (256 random bits, base64url) and the SHA-256 stored for it.
pub fn new_refresh_token() -> anyhow::Result<(String, Vec<u8>)> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let token = URL_SAFE_NO_PAD.encode(raw);
    let hash = hash_refresh_token(&token);
    Ok((token, hash))
}

/// What is stored for a refresh token: its SHA-256 (a database leak reveals no usable token).
pub fn hash_refresh_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A random code from an unambiguous alphabet (no 0/O, 1/I/L), for invites and passwords.
pub fn random_code(len: usize) -> anyhow::Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
    let mut raw = vec![0u8; len];
    getrandom::fill(&mut raw).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    // 256 % 31 leaves a bias of < 1/8 per character on 8 of the symbols: irrelevant for codes
    // this long that also expire and are rate limited.
    Ok(raw
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect())
}

/// Now in unix seconds (0 if the clock is before 1970).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use service_kit::Secret;

    use super::*;

    fn tokens(secret: &str) -> Tokens {
        Tokens::new(&JwtSettings {
            secret: Secret::new(secret),
            issuer: "messenger-api".into(),
            audience: "messenger-clients".into(),
            access_ttl: Duration::from_secs(60),
            refresh_ttl: Duration::from_secs(3600),
        })
    }

    fn user() -> AuthUser {
        AuthUser {
            id: Uuid::now_v7(),
            name: "Анна".into(),
            phone: "+79991234567".into(),
            claimed_role: Role::Admin,
        }
    }

    #[test]
    fn access_tokens_round_trip_and_other_secrets_fail() {
        let t = tokens("0123456789abcdef0123456789abcdef");
        let u = user();
        let issued = t.issue(&u).expect("issued");
        let back = t.verify(&issued.token).expect("valid");
        assert_eq!(back.id, u.id);
        assert_eq!(back.claimed_role, Role::Admin);
        assert_eq!(back.name, "Анна");
        assert!(
            tokens("another-secret-another-secret-xx")
                .verify(&issued.token)
                .is_none()
        );
        assert!(t.verify("garbage").is_none());
    }

    #[test]
    fn connection_tokens_are_bound_to_the_user() {
        let t = tokens("0123456789abcdef0123456789abcdef");
        let id = Uuid::new_v4();
        let u = Uuid::new_v4();
        let tok = t.connection_token(id, u, Duration::from_secs(60));
        assert_eq!(t.verify_connection_token(&tok, u), Some(id));
        assert_eq!(t.verify_connection_token(&tok, Uuid::new_v4()), None);
        assert_eq!(t.verify_connection_token("a.b.c", u), None);
        let tampered = tok.replacen('.', "0.", 1);
        assert_eq!(t.verify_connection_token(&tampered, u), None);
    }

    #[test]
    fn refresh_tokens_are_random_and_hashed() {
        let (a, ha) = new_refresh_token().expect("token");
        let (b, _) = new_refresh_token().expect("token");
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(hash_refresh_token(&a), ha);
        let code = random_code(10).expect("code");
        assert_eq!(code.len(), 10);
    }
}
