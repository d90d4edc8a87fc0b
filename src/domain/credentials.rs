//! Credentials handed to a new user: a temporary password (stored as an argon2id hash) and
//! a confirmation-link secret (stored as a SHA-256 digest: it is 256 random bits, so a fast
//! hash is enough; a password is guessable, so it gets a slow one).

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::{Rng, RngCore};

/// Letters and digits that cannot be mistaken for one another when read from an email
/// (no 0/O, 1/l/I).
const PASSWORD_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
const PASSWORD_LENGTH: usize = 16;

/// A new temporary password: 16 characters, about 93 bits.
pub fn new_temporary_password() -> String {
    let mut rng = rand::rng();
    (0..PASSWORD_LENGTH)
        .map(|_| PASSWORD_ALPHABET[rng.random_range(0..PASSWORD_ALPHABET.len())] as char)
        .collect()
}

/// A new secret: 256 random bits, hex. Confirmation links and rotated API tokens.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

#[derive(Debug, thiserror::Error)]
#[error("cannot hash the password: {0}")]
pub struct HashError(String);

/// The argon2id PHC string of `password`, with a random salt.
pub fn hash_password(password: &str) -> Result<String, HashError> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| HashError(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| HashError(e.to_string()))
}

/// Whether `password` matches the stored PHC string (what the auth service does at sign-in).
pub fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_passwords_are_long_unambiguous_and_different() {
        let a = new_temporary_password();
        let b = new_temporary_password();
        assert_eq!(a.len(), PASSWORD_LENGTH);
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| PASSWORD_ALPHABET.contains(&c)));
        assert!(!a.contains(['0', 'O', '1', 'l', 'I']));
    }

    #[test]
    fn link_secrets_are_256_bits_of_hex() {
        let secret = new_secret();
        assert_eq!(secret.len(), 64);
        assert!(secret.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(secret, new_secret());
    }

    #[test]
    fn the_hash_verifies_the_password_only_and_does_not_contain_it() {
        let password = new_temporary_password();
        let stored = hash_password(&password).unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert!(!stored.contains(&password));
        assert!(verify_password(&password, &stored));
        assert!(!verify_password("wrong-password", &stored));
        assert_ne!(stored, hash_password(&password).unwrap(), "salted");
    }
}
