//! API key secrets: `<prefix>_<32 random><6 checksum>`.
//!
//! The random part is 32 characters of `0-9A-Za-z` drawn from ring's
//! `SystemRandom` by rejection sampling; the checksum is the CRC-32 (zlib) of
//! those 32 bytes in base62, big-endian, padded to 6. The checksum lets a
//! typo or a random string be refused before any database work. Only the
//! SHA-256 of the whole secret is ever stored.
//!
//! A secret lives in a zeroizing string, prints as `<redacted>`, and is never
//! compared except through its hash (in constant time).

use ring::rand::SecureRandom;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

pub const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const RANDOM_LEN: usize = 32;
const CHECKSUM_LEN: usize = 6;
const BODY_LEN: usize = RANDOM_LEN + CHECKSUM_LEN;
const MAX_PREFIX_LEN: usize = 10;
/// Longest possible secret; anything longer is refused before other work.
pub const MAX_LEN: usize = MAX_PREFIX_LEN + 1 + BODY_LEN;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("invalid key prefix")]
    Prefix,
    #[error("malformed key")]
    Malformed,
    #[error("bad key checksum")]
    Checksum,
    #[error("random source failed")]
    Random,
}

/// Regular expressions for a secret scanner (a code host's custom pattern:
/// the secret's format, and what may stand before and after it). A regular
/// expression cannot check the CRC-32; the scanner's match is checked again
/// when it is reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanPattern {
    pub secret: String,
    pub before: &'static str,
    pub after: &'static str,
}

impl ScanPattern {
    /// Keys with `prefix`: `<prefix>_` then 32 random and 6 checksum
    /// characters of the base62 alphabet. The boundaries keep a key from
    /// matching inside a longer word (`x_km_…` or a 39th character).
    pub fn for_prefix(prefix: &str) -> Self {
        Self {
            secret: format!("{prefix}_[0-9A-Za-z]{{{BODY_LEN}}}"),
            before: r"\A|[^0-9A-Za-z_]",
            after: r"\z|[^0-9A-Za-z]",
        }
    }

    /// The three as one POSIX extended expression (`grep -E`), for scanners
    /// that take a single pattern.
    pub fn single(&self) -> String {
        format!("(^|[^0-9A-Za-z_]){}($|[^0-9A-Za-z])", self.secret)
    }
}

pub fn is_valid_prefix(prefix: &str) -> bool {
    crate::domain::key_prefix::is_valid(prefix)
}

pub struct ApiKeySecret(Zeroizing<String>);

impl std::fmt::Debug for ApiKeySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKeySecret(<redacted>)")
    }
}

impl std::fmt::Display for ApiKeySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

fn checksum(random: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut value = crc32fast::hash(random);
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(value % 62) as usize];
        value /= 62;
    }
    out
}

impl ApiKeySecret {
    pub fn generate(prefix: &str, rng: &dyn SecureRandom) -> Result<Self, SecretError> {
        if !is_valid_prefix(prefix) {
            return Err(SecretError::Prefix);
        }
        let mut random = Zeroizing::new(Vec::with_capacity(RANDOM_LEN));
        let mut pool = Zeroizing::new([0u8; 64]);
        while random.len() < RANDOM_LEN {
            rng.fill(pool.as_mut()).map_err(|_| SecretError::Random)?;
            for &byte in pool.iter() {
                // 248 = 4 × 62: accepting only bytes below it keeps every
                // character equally likely.
                if byte < 248 && random.len() < RANDOM_LEN {
                    random.push(ALPHABET[usize::from(byte % 62)]);
                }
            }
        }
        let mut secret = Zeroizing::new(String::with_capacity(MAX_LEN));
        secret.push_str(prefix);
        secret.push('_');
        secret.extend(random.iter().map(|&b| char::from(b)));
        secret.extend(checksum(&random).iter().map(|&b| char::from(b)));
        Ok(Self(secret))
    }

    /// Checks the format and the checksum; no database work is needed to
    /// refuse what fails here.
    pub fn parse(input: &str) -> Result<Self, SecretError> {
        if input.len() > MAX_LEN {
            return Err(SecretError::Malformed);
        }
        let (prefix, body) = input.rsplit_once('_').ok_or(SecretError::Malformed)?;
        if !is_valid_prefix(prefix) {
            return Err(SecretError::Prefix);
        }
        let bytes = body.as_bytes();
        if bytes.len() != BODY_LEN || !bytes.iter().all(|b| b.is_ascii_alphanumeric()) {
            return Err(SecretError::Malformed);
        }
        let (random, sum) = bytes.split_at(RANDOM_LEN);
        if checksum(random).as_slice() != sum {
            return Err(SecretError::Checksum);
        }
        Ok(Self(Zeroizing::new(input.to_owned())))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn prefix(&self) -> &str {
        self.0.rsplit_once('_').map(|(p, _)| p).unwrap_or_default()
    }

    /// `prefix_` and the first 4 random characters: enough to recognise a key.
    pub fn start(&self) -> String {
        let prefix = self.prefix();
        let body = &self.0[prefix.len() + 1..];
        format!("{prefix}_{}", &body[..4])
    }

    pub fn hash(&self) -> SecretHash {
        let digest = ring::digest::digest(&ring::digest::SHA256, self.0.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        SecretHash(out)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SecretHash(pub [u8; 32]);

impl std::fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SecretHash({:02x}{:02x}{:02x}{:02x}…)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

impl SecretHash {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        Some(Self(bytes.try_into().ok()?))
    }

    pub fn ct_eq(&self, other: &SecretHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;

    #[test]
    fn generated_secrets_parse_back() {
        let rng = SystemRandom::new();
        let secret = ApiKeySecret::generate("km", &rng).unwrap();
        let text = secret.expose().to_owned();
        assert_eq!(text.len(), 2 + 1 + 38);
        let parsed = ApiKeySecret::parse(&text).unwrap();
        assert_eq!(parsed.hash(), secret.hash());
        assert_eq!(parsed.start(), text[..7]);
        assert_eq!(parsed.prefix(), "km");
    }

    #[test]
    fn checksum_is_base62_big_endian_padded() {
        let random = [b'0'; 32];
        let mut value = crc32fast::hash(&random);
        let mut expected = Vec::new();
        while value > 0 {
            expected.push(ALPHABET[(value % 62) as usize]);
            value /= 62;
        }
        while expected.len() < 6 {
            expected.push(b'0');
        }
        expected.reverse();
        assert_eq!(checksum(&random).to_vec(), expected);
        // Known vectors (CRC-32 as zlib computes it): 0xA0F292D0 and
        // 0x06D4AA43, the second showing the left padding.
        assert_eq!(&checksum(&random), b"2wjyrI");
        assert_eq!(&checksum(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef"), b"07kqpP");
        let text = format!(
            "km_{}{}",
            "0".repeat(32),
            String::from_utf8(expected).unwrap()
        );
        assert!(ApiKeySecret::parse(&text).is_ok());
    }

    #[test]
    fn any_changed_character_fails_the_checksum() {
        let secret = ApiKeySecret::generate("km", &SystemRandom::new()).unwrap();
        let mut chars: Vec<char> = secret.expose().chars().collect();
        chars[10] = if chars[10] == 'a' { 'b' } else { 'a' };
        let changed: String = chars.into_iter().collect();
        assert_eq!(
            ApiKeySecret::parse(&changed).unwrap_err(),
            SecretError::Checksum
        );
    }

    #[test]
    fn malformed_inputs_are_refused() {
        let good = ApiKeySecret::generate("km", &SystemRandom::new()).unwrap();
        let body = &good.expose()[3..];
        for bad in [
            String::new(),
            body.to_owned(),
            format!("KM_{body}"),
            format!("my_app_{body}"),
            format!("km_{body}x"),
            format!("km_{}", &body[1..]),
            format!("km_{}!", &body[1..]),
            format!("abcdefghijk_{body}"),
        ] {
            assert!(ApiKeySecret::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_character_is_drawn() {
        let rng = SystemRandom::new();
        let mut seen = [false; 62];
        for _ in 0..500 {
            let s = ApiKeySecret::generate("km", &rng).unwrap();
            for b in s.expose()[3..35].bytes() {
                let i = ALPHABET.iter().position(|&a| a == b).unwrap();
                seen[i] = true;
            }
        }
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn secrets_never_print() {
        let s = ApiKeySecret::generate("km", &SystemRandom::new()).unwrap();
        assert!(!format!("{s:?}{s}").contains(&s.expose()[3..]));
    }
}
