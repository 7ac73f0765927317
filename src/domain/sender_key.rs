//! A leak-report sender's public key, in the form code hosts publish them
//! (a key identifier and a PEM `PUBLIC KEY`, ECDSA P-256), and the check of
//! its signature over a report's body (ECDSA with SHA-256, DER-encoded).

use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use rustls_pki_types::SubjectPublicKeyInfoDer;
use rustls_pki_types::pem::PemObject;

/// The DER of a P-256 SubjectPublicKeyInfo up to the point: SEQUENCE {
/// SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING (0 unused bits) }.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

#[derive(Clone)]
pub struct SenderKey {
    pub id: String,
    /// The uncompressed point, `04 ‖ x ‖ y`.
    point: Vec<u8>,
}

impl std::fmt::Debug for SenderKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SenderKey").field("id", &self.id).finish()
    }
}

impl SenderKey {
    /// Reads a PEM `PUBLIC KEY` that must be an uncompressed ECDSA P-256 key.
    pub fn from_pem(id: &str, pem: &str) -> Result<Self, String> {
        let der = SubjectPublicKeyInfoDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| format!("is not a PEM PUBLIC KEY ({e})"))?;
        let bytes: &[u8] = der.as_ref();
        match bytes.strip_prefix(&P256_SPKI_PREFIX[..]) {
            Some(point) if point.len() == 65 && point[0] == 0x04 => Ok(Self {
                id: id.to_owned(),
                point: point.to_vec(),
            }),
            _ => Err("is not an ECDSA P-256 public key".to_owned()),
        }
    }

    /// The key's SubjectPublicKeyInfo DER, as tests and tools publish it.
    pub fn spki_der(point: &[u8]) -> Vec<u8> {
        let mut out = P256_SPKI_PREFIX.to_vec();
        out.extend_from_slice(point);
        out
    }

    /// Whether `signature` (DER) is this key's over `message`.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &self.point)
            .verify(message, signature)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};

    fn pem_of(point: &[u8]) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(SenderKey::spki_der(point));
        format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n")
    }

    #[test]
    fn a_signature_verifies_only_for_its_body_and_key() {
        let rng = SystemRandom::new();
        let make = || {
            let pkcs8 =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).unwrap()
        };
        let (pair, other) = (make(), make());
        let key = SenderKey::from_pem("k1", &pem_of(pair.public_key().as_ref())).unwrap();
        let body = br#"[{"token":"x","type":"t","url":"u","source":"s"}]"#;
        let sig = pair.sign(&rng, body).unwrap();
        assert!(key.verifies(body, sig.as_ref()));
        assert!(!key.verifies(b"[]", sig.as_ref()));
        let forged = other.sign(&rng, body).unwrap();
        assert!(!key.verifies(body, forged.as_ref()));
        assert!(!key.verifies(body, b"not der"));
    }

    #[test]
    fn only_p256_public_keys_are_read() {
        assert!(SenderKey::from_pem("k", "nonsense").is_err());
        let short = pem_of(&[4u8; 10]);
        assert!(SenderKey::from_pem("k", &short).is_err());
    }
}
