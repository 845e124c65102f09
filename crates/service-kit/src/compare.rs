//! Constant-time comparison of secrets (webhook tokens, callback ids, shared secrets).

use subtle::ConstantTimeEq;

/// `true` when `a == b`, in time that depends only on the lengths, never on where the first
/// difference is (so a caller cannot guess a token byte by byte from response times).
pub fn secure_eq(a: impl AsRef<[u8]>, b: impl AsRef<[u8]>) -> bool {
    a.as_ref().ct_eq(b.as_ref()).into()
}

#[cfg(test)]
mod tests {
    use super::secure_eq;

    #[test]
    fn equal_only_when_equal() {
        assert!(secure_eq("s3cr3t-token", "s3cr3t-token"));
        assert!(!secure_eq("s3cr3t-token", "s3cr3t-tokem"));
        assert!(!secure_eq("s3cr3t", "s3cr3t-token"));
        assert!(!secure_eq("", "x"));
    }
}
