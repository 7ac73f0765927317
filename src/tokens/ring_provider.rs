//! jsonwebtoken's crypto, backed by ring for both signing and verifying.
//!
//! jsonwebtoken asks its process-wide `CryptoProvider` for a signer on every
//! `encode`, handing it the key's PKCS#8 bytes. Parsing a ring key pair costs
//! about as much as the signature itself, so parsed pairs are kept in a
//! process-wide map keyed by those bytes; [`register`] fills it when a signing
//! key is loaded, so the hot path only looks up.
//!
//! The map does not own the pairs: whoever registered one (a key ring's
//! signer) holds it, and the entry lives exactly as long as that holder. A
//! key that leaves every ring (revoked, expired) is freed with it, and
//! [`forget_unused`] drops its entry; nothing lingers for the process's life.
//!
//! [`install`] must run before any other jsonwebtoken call in the process:
//! the first call otherwise fixes a provider that panics.

use std::collections::HashMap;
use std::sync::{Arc, Once, RwLock, Weak};

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error, ErrorKind};
use jsonwebtoken::jwk::{EllipticCurve, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use ring::rand::SystemRandom;
use ring::signature::{
    self as sig, ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ED25519, EcdsaKeyPair,
    Ed25519KeyPair, KeyPair,
};

/// A key pair parsed once.
pub enum ParsedKey {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl ParsedKey {
    pub fn parse(alg: Algorithm, pkcs8: &[u8]) -> Result<Self, Error> {
        match alg {
            Algorithm::ES256 => EcdsaKeyPair::from_pkcs8(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                pkcs8,
                &SystemRandom::new(),
            )
            .map(Self::Ecdsa)
            .map_err(|_| ErrorKind::InvalidEcdsaKey.into()),
            Algorithm::EdDSA => Ed25519KeyPair::from_pkcs8(pkcs8)
                .map(Self::Ed25519)
                .map_err(|_| ErrorKind::InvalidEddsaKey.into()),
            _ => Err(ErrorKind::InvalidAlgorithm.into()),
        }
    }

    pub fn public_key(&self) -> &[u8] {
        match self {
            Self::Ecdsa(k) => k.public_key().as_ref(),
            Self::Ed25519(k) => k.public_key().as_ref(),
        }
    }

    fn algorithm(&self) -> Algorithm {
        match self {
            Self::Ecdsa(_) => Algorithm::ES256,
            Self::Ed25519(_) => Algorithm::EdDSA,
        }
    }
}

/// Keyed by a digest of the PKCS#8 bytes, so the map holds no second copy
/// of any private key; weak, so it keeps no key alive.
type Cache = RwLock<HashMap<[u8; 32], Weak<ParsedKey>>>;

fn cache_key(pkcs8: &[u8]) -> [u8; 32] {
    let mut key = [0u8; 32];
    key.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, pkcs8).as_ref());
    key
}

fn cache() -> &'static Cache {
    static CACHE: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();
    CACHE.get_or_init(|| RwLock::new(HashMap::new()))
}

/// Parses a key pair and makes it findable by the signer factory for as
/// long as the caller keeps the returned `Arc`.
pub fn register(alg: Algorithm, pkcs8: &[u8]) -> Result<Arc<ParsedKey>, Error> {
    let parsed = Arc::new(ParsedKey::parse(alg, pkcs8)?);
    if let Ok(mut map) = cache().write() {
        map.insert(cache_key(pkcs8), Arc::downgrade(&parsed));
    }
    Ok(parsed)
}

fn lookup(pkcs8: &[u8]) -> Option<Arc<ParsedKey>> {
    cache().read().ok()?.get(&cache_key(pkcs8))?.upgrade()
}

/// Drops the entries of keys nobody holds any more (called after a key
/// ring reload let go of its old keys).
pub fn forget_unused() {
    if let Ok(mut map) = cache().write() {
        map.retain(|_, parsed| parsed.strong_count() > 0);
    }
}

/// Whether a parsed pair for these bytes is held.
#[cfg(test)]
pub(crate) fn is_cached(pkcs8: &[u8]) -> bool {
    cache()
        .read()
        .map(|map| map.contains_key(&cache_key(pkcs8)))
        .unwrap_or(false)
}

struct RingSigner(Arc<ParsedKey>);

impl signature::Signer<Vec<u8>> for RingSigner {
    fn try_sign(&self, msg: &[u8]) -> Result<Vec<u8>, signature::Error> {
        match self.0.as_ref() {
            ParsedKey::Ecdsa(pair) => pair
                .sign(&SystemRandom::new(), msg)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| signature::Error::new()),
            ParsedKey::Ed25519(pair) => Ok(pair.sign(msg).as_ref().to_vec()),
        }
    }
}

impl JwtSigner for RingSigner {
    fn algorithm(&self) -> Algorithm {
        self.0.algorithm()
    }
}

struct RingVerifier {
    alg: Algorithm,
    public_key: Vec<u8>,
}

impl signature::Verifier<Vec<u8>> for RingVerifier {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> Result<(), signature::Error> {
        let algorithm: &dyn sig::VerificationAlgorithm = match self.alg {
            Algorithm::ES256 => &ECDSA_P256_SHA256_FIXED,
            Algorithm::EdDSA => &ED25519,
            _ => return Err(signature::Error::new()),
        };
        sig::UnparsedPublicKey::new(algorithm, &self.public_key)
            .verify(msg, signature)
            .map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for RingVerifier {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

fn signer_factory(alg: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>, Error> {
    let parsed = match lookup(key.as_bytes()) {
        Some(parsed) => parsed,
        // A key no ring holds (tools, tests): parse it for this signature.
        None => Arc::new(ParsedKey::parse(*alg, key.as_bytes())?),
    };
    if parsed.algorithm() != *alg {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    Ok(Box::new(RingSigner(parsed)))
}

fn verifier_factory(alg: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>, Error> {
    match alg {
        Algorithm::ES256 | Algorithm::EdDSA => Ok(Box::new(RingVerifier {
            alg: *alg,
            public_key: key.try_get_as_bytes()?.to_vec(),
        })),
        _ => Err(ErrorKind::InvalidAlgorithm.into()),
    }
}

fn unsupported_rsa(_: &[u8]) -> Result<(Vec<u8>, Vec<u8>), Error> {
    Err(ErrorKind::InvalidAlgorithm.into())
}

fn ec_components(pkcs8: &[u8], alg: Algorithm) -> Result<(EllipticCurve, Vec<u8>, Vec<u8>), Error> {
    if alg != Algorithm::ES256 {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    let parsed = ParsedKey::parse(alg, pkcs8)?;
    let point = parsed.public_key();
    if point.len() != 65 || point[0] != 4 {
        return Err(ErrorKind::InvalidEcdsaKey.into());
    }
    Ok((
        EllipticCurve::P256,
        point[1..33].to_vec(),
        point[33..].to_vec(),
    ))
}

fn ed_components(pkcs8: &[u8], curve: &EllipticCurve) -> Result<Vec<u8>, Error> {
    if *curve != EllipticCurve::Ed25519 {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    Ok(ParsedKey::parse(Algorithm::EdDSA, pkcs8)?
        .public_key()
        .to_vec())
}

fn digest(data: &[u8], hash: ThumbprintHash) -> Result<Vec<u8>, Error> {
    let algorithm = match hash {
        ThumbprintHash::SHA256 => &ring::digest::SHA256,
        ThumbprintHash::SHA384 => &ring::digest::SHA384,
        ThumbprintHash::SHA512 => &ring::digest::SHA512,
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    };
    Ok(ring::digest::digest(algorithm, data).as_ref().to_vec())
}

static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory,
    verifier_factory,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: unsupported_rsa,
        rsa_pub_components_from_public_key: unsupported_rsa,
        ec_pub_components_from_private_key: ec_components,
        ed_pub_components_from_private_key: ed_components,
        compute_digest: digest,
    },
};

/// Installs the ring provider for this process; idempotent. Every entry point
/// (server, CLI, tests, benches) calls it before touching jsonwebtoken.
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if PROVIDER.install_default().is_err() {
            // Someone installed a provider first; if it is not ours, signing
            // would not use ring. Refuse to run rather than silently differ.
            tracing::error!("a different jsonwebtoken CryptoProvider was installed first");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{Header, Validation, decode, encode};

    #[test]
    fn es256_and_eddsa_round_trip_through_jsonwebtoken() {
        install();
        let rng = SystemRandom::new();
        for alg in [Algorithm::ES256, Algorithm::EdDSA] {
            let pkcs8 = match alg {
                Algorithm::ES256 => {
                    EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap()
                }
                _ => Ed25519KeyPair::generate_pkcs8(&rng).unwrap(),
            };
            let parsed = register(alg, pkcs8.as_ref()).unwrap();
            let token = encode(
                &Header::new(alg),
                &serde_json::json!({"sub": "x", "exp": 4_000_000_000u64}),
                &match alg {
                    Algorithm::ES256 => EncodingKey::from_ec_der(pkcs8.as_ref()),
                    _ => EncodingKey::from_ed_der(pkcs8.as_ref()),
                },
            )
            .unwrap();
            let decoding = match alg {
                Algorithm::ES256 => DecodingKey::from_ec_der(parsed.public_key()),
                _ => DecodingKey::from_ed_der(parsed.public_key()),
            };
            let data =
                decode::<serde_json::Value>(&token, &decoding, &Validation::new(alg)).unwrap();
            assert_eq!(data.claims["sub"], "x");
            // A flipped signature byte fails.
            let mut bad = token.clone().into_bytes();
            let last = bad.len() - 2;
            bad[last] = if bad[last] == b'A' { b'B' } else { b'A' };
            let bad = String::from_utf8(bad).unwrap();
            assert!(decode::<serde_json::Value>(&bad, &decoding, &Validation::new(alg)).is_err());
        }
    }
}
