//! Password hashes: argon2id for every new or changed password, and verification of hashes
//! imported from an ASP.NET Core Identity user table (format V3), which are re-hashed with
//! argon2id at the first successful login.
//!
//! ASP.NET Core Identity V3 (`PasswordHasher<TUser>`, `IdentityV3`), base64 of:
//!
//! ```text
//! 0x01 | prf: u32 BE | iteration count: u32 BE | salt length: u32 BE | salt | subkey
//! ```
//!
//! where prf 0 = HMAC-SHA1, 1 = HMAC-SHA256 (the default up to .NET 6, 10 000 iterations),
//! 2 = HMAC-SHA512 (the default from .NET 7, 100 000 iterations). Source:
//! <https://github.com/dotnet/aspnetcore/blob/main/src/Identity/Extensions.Core/src/PasswordHasher.cs>.
//! SHA-1 hashes (prf 0) and the V2 format (0x00) are refused: they predate ASP.NET Core's
//! defaults and an import that has them should reset those passwords instead.

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Sha256, Sha512};

use crate::config::Argon2Settings;

/// Runs password hashing and verification on blocking threads, at most `permits` at a time:
/// each argon2id run takes its memory cost (19 MiB by default) and a core for a while, so
/// anonymous requests (register, login) must not be able to start any number of them at once.
#[derive(Clone, Debug)]
pub struct PasswordWork {
    passwords: Passwords,
    permits: std::sync::Arc<tokio::sync::Semaphore>,
    waiting: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl PasswordWork {
    /// `permits` concurrent runs (at least one).
    pub fn new(passwords: Passwords, permits: usize) -> Self {
        Self {
            passwords,
            permits: std::sync::Arc::new(tokio::sync::Semaphore::new(permits.max(1))),
            waiting: Default::default(),
        }
    }

    /// Twice the cores of this machine.
    pub fn default_permits() -> usize {
        std::thread::available_parallelism().map_or(2, |n| n.get() * 2)
    }

    /// The semaphore bounding the runs (tests hold its permits).
    pub fn permits(&self) -> &std::sync::Arc<tokio::sync::Semaphore> {
        &self.permits
    }

    /// Requests waiting for a permit now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(Passwords) -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        use std::sync::atomic::Ordering;
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let permit = self.permits.clone().acquire_owned().await;
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        let permit = permit?;
        let passwords = self.passwords;
        let out = tokio::task::spawn_blocking(move || {
            let out = f(passwords);
            drop(permit);
            out
        })
        .await?;
        Ok(out)
    }

    /// [`Passwords::hash`], bounded.
    pub async fn hash(&self, password: String) -> anyhow::Result<String> {
        self.run(move |p| p.hash(&password)).await?
    }

    /// [`Passwords::verify`], bounded.
    pub async fn verify(&self, password: String, stored: String) -> anyhow::Result<Verified> {
        self.run(move |p| p.verify(&password, &stored)).await
    }
}

/// What checking a password against a stored hash found.
#[derive(Debug, PartialEq, Eq)]
pub enum Verified {
    /// Correct, and the stored hash is current.
    Ok,
    /// Correct, and the stored hash should be replaced by this argon2id hash.
    OkRehashed(String),
    /// Wrong password, or a hash this service cannot read.
    Wrong,
}

/// Hashes and verifies passwords with the configured argon2id cost.
#[derive(Clone, Copy, Debug)]
pub struct Passwords {
    cost: Argon2Settings,
}

impl Passwords {
    /// Hashing with this argon2id memory and time cost (one lane).
    pub fn new(cost: Argon2Settings) -> Self {
        Self { cost }
    }

    fn argon2(&self) -> anyhow::Result<Argon2<'static>> {
        let params = Params::new(self.cost.memory_kib, self.cost.iterations, 1, None)
            .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }

    /// A new argon2id PHC string (`$argon2id$v=19$m=…,t=…,p=1$salt$hash`) with a random salt.
    /// CPU- and memory-heavy: call from a blocking thread.
    pub fn hash(&self, password: &str) -> anyhow::Result<String> {
        let hash = self
            .argon2()?
            .hash_password(password.as_bytes())
            .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))?;
        Ok(hash.to_string())
    }

    /// Checks `password` against a stored argon2 PHC string or ASP.NET Identity V3 hash.
    /// CPU-heavy: call from a blocking thread.
    pub fn verify(&self, password: &str, stored: &str) -> Verified {
        if stored.starts_with("$argon2") {
            let Ok(argon2) = self.argon2() else {
                return Verified::Wrong;
            };
            return match argon2.verify_password(password.as_bytes(), stored) {
                Ok(()) => Verified::Ok,
                Err(_) => Verified::Wrong,
            };
        }
        if verify_identity_v3(password, stored) {
            match self.hash(password) {
                Ok(h) => Verified::OkRehashed(h),
                // Correct password; keep the old hash and try again next time.
                Err(_) => Verified::Ok,
            }
        } else {
            Verified::Wrong
        }
    }
}

/// Verifies an ASP.NET Core Identity V3 hash (see the module docs); false for anything that
/// is not one.
pub fn verify_identity_v3(password: &str, stored: &str) -> bool {
    let Ok(raw) = STANDARD.decode(stored.trim()) else {
        return false;
    };
    // 1 format byte + 3 × u32 header, then salt and a subkey of at least 128 bits
    if raw.len() < 13 || raw[0] != 0x01 {
        return false;
    }
    let be = |i: usize| u32::from_be_bytes([raw[i], raw[i + 1], raw[i + 2], raw[i + 3]]);
    let (prf, iterations, salt_len) = (be(1), be(5), be(9) as usize);
    if iterations == 0 || salt_len < 16 || raw.len() < 13 + salt_len + 16 {
        return false;
    }
    let salt = &raw[13..13 + salt_len];
    let expected = &raw[13 + salt_len..];
    let mut actual = vec![0u8; expected.len()];
    match prf {
        1 => pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut actual),
        2 => pbkdf2::pbkdf2_hmac::<Sha512>(password.as_bytes(), salt, iterations, &mut actual),
        _ => return false,
    }
    service_kit::secure_eq(&actual, expected)
}

/// Builds an Identity V3 hash (tests and the import docs use it to make fixtures).
pub fn identity_v3_hash(password: &str, prf: u32, iterations: u32, salt: &[u8]) -> String {
    let mut subkey = [0u8; 32];
    match prf {
        2 => pbkdf2::pbkdf2_hmac::<Sha512>(password.as_bytes(), salt, iterations, &mut subkey),
        _ => pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut subkey),
    }
    let mut raw = vec![0x01];
    raw.extend_from_slice(&prf.to_be_bytes());
    raw.extend_from_slice(&iterations.to_be_bytes());
    raw.extend_from_slice(&(salt.len() as u32).to_be_bytes());
    raw.extend_from_slice(salt);
    raw.extend_from_slice(&subkey);
    STANDARD.encode(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Passwords {
        Passwords::new(Argon2Settings {
            memory_kib: 1024,
            iterations: 1,
        })
    }

    #[test]
    fn argon2id_round_trip() {
        let p = cheap();
        let h = p.hash("correct horse").expect("hash");
        assert!(h.starts_with("$argon2id$v=19$"), "{h}");
        assert_eq!(p.verify("correct horse", &h), Verified::Ok);
        assert_eq!(p.verify("wrong horse", &h), Verified::Wrong);
    }

    /// Vectors computed independently (Python's `hashlib.pbkdf2_hmac`, salt 00 01 … 0f,
    /// password `P@ssw0rd!`) in the two layouts ASP.NET Core Identity writes: HMAC-SHA256 with
    /// 10 000 iterations (up to .NET 6) and HMAC-SHA512 with 100 000 (from .NET 7). Their
    /// prefixes `AQAAAAEAACcQAAAAE` / `AQAAAAIAAYagAAAAE` are what real AspNetUsers tables hold.
    const V3_SHA256: &str =
        "AQAAAAEAACcQAAAAEAABAgMEBQYHCAkKCwwNDg8DdwjoEHz0/etJ9zIUuX2Uzuy5BEPAxcXc5K75Ln2FLQ==";
    const V3_SHA512: &str =
        "AQAAAAIAAYagAAAAEAABAgMEBQYHCAkKCwwNDg9Gc2PPKbGpkdJm4WT4Hxci5hFecq/qbm93nDOXWGnqcw==";

    #[test]
    fn identity_v3_hashes_verify_and_are_rehashed() {
        // (100 000 rounds of SHA-512 are slow in a debug build: one check of that one.)
        assert!(verify_identity_v3("P@ssw0rd!", V3_SHA512));
        assert!(verify_identity_v3("P@ssw0rd!", V3_SHA256));
        assert!(!verify_identity_v3("p@ssw0rd!", V3_SHA256));
        match cheap().verify("P@ssw0rd!", V3_SHA256) {
            Verified::OkRehashed(h) => assert!(h.starts_with("$argon2id$")),
            other => panic!("expected a rehash, got {other:?}"),
        }
        assert_eq!(cheap().verify("nope", V3_SHA256), Verified::Wrong);
        let salt: Vec<u8> = (0u8..16).collect();
        assert_eq!(identity_v3_hash("P@ssw0rd!", 1, 10_000, &salt), V3_SHA256);
    }

    /// The RFC 7914 §11 PBKDF2-HMAC-SHA256 vector, through the V3 layout.
    #[test]
    fn pbkdf2_sha256_matches_the_rfc_vector() {
        let mut out = [0u8; 64];
        pbkdf2::pbkdf2_hmac::<Sha256>(b"passwd", b"salt", 1, &mut out);
        assert_eq!(hex_of(&out[..16]), "55ac046e56e3089fec1691c22544b605");
    }

    fn hex_of(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn garbage_and_other_formats_are_refused() {
        for s in ["", "not base64!", "AAAA", &STANDARD.encode([0u8; 49])] {
            assert!(!verify_identity_v3("x", s), "{s}");
        }
        // prf 0 (SHA-1) is refused
        let mut raw = STANDARD
            .decode(identity_v3_hash("x", 1, 1000, b"0123456789abcdef"))
            .expect("b64");
        raw[4] = 0;
        assert!(!verify_identity_v3("x", &STANDARD.encode(raw)));
    }
}
