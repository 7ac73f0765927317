//! The public half of a signing key as the JWKS publishes it, and the
//! algorithms keymint signs with.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Serialize;

use crate::config::SigningAlg;

/// The public half as published in the JWKS, members in RFC 7517 names.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct PublicJwk {
    pub kty: String,
    pub crv: String,
    pub x: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub y: Option<String>,
    pub kid: String,
    pub alg: String,
    #[serde(rename = "use")]
    pub use_: String,
}

pub(super) fn jwt_algorithm(alg: SigningAlg) -> Algorithm {
    match alg {
        SigningAlg::ES256 => Algorithm::ES256,
        SigningAlg::EdDSA => Algorithm::EdDSA,
    }
}

fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::EdDSA => "EdDSA",
        _ => "ES256",
    }
}

impl PublicJwk {
    /// The verifying key this JWK publishes and its algorithm, when `alg`,
    /// `kty` and `crv` are a combination keymint signs with. Shared by the
    /// key ring (stored keys) and the downstream validator (fetched JWKS).
    pub fn decoding_key(&self) -> Option<(Algorithm, DecodingKey)> {
        match (self.alg.as_str(), self.kty.as_str(), self.crv.as_str()) {
            ("ES256", "EC", "P-256") => {
                let y = self.y.as_deref()?;
                let key = DecodingKey::from_ec_components(&self.x, y).ok()?;
                Some((Algorithm::ES256, key))
            }
            ("EdDSA", "OKP", "Ed25519") => {
                let key = DecodingKey::from_ed_components(&self.x).ok()?;
                Some((Algorithm::EdDSA, key))
            }
            _ => None,
        }
    }
}

pub(super) fn parse_alg(name: &str) -> Option<Algorithm> {
    match name {
        "ES256" => Some(Algorithm::ES256),
        "EdDSA" => Some(Algorithm::EdDSA),
        _ => None,
    }
}

/// The public JWK of a public key, with `kid` = its RFC 7638 thumbprint.
pub fn public_jwk(alg: Algorithm, public_key: &[u8]) -> Option<PublicJwk> {
    let (kty, crv, x, y) = match alg {
        Algorithm::ES256 if public_key.len() == 65 && public_key[0] == 4 => (
            "EC",
            "P-256",
            URL_SAFE_NO_PAD.encode(&public_key[1..33]),
            Some(URL_SAFE_NO_PAD.encode(&public_key[33..])),
        ),
        Algorithm::EdDSA if public_key.len() == 32 => {
            ("OKP", "Ed25519", URL_SAFE_NO_PAD.encode(public_key), None)
        }
        _ => return None,
    };
    // RFC 7638: the required members only, lexicographic order, no spaces.
    let canonical = match &y {
        Some(y) => format!(r#"{{"crv":"{crv}","kty":"{kty}","x":"{x}","y":"{y}"}}"#),
        None => format!(r#"{{"crv":"{crv}","kty":"{kty}","x":"{x}"}}"#),
    };
    let kid = URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        canonical.as_bytes(),
    ));
    Some(PublicJwk {
        kty: kty.to_owned(),
        crv: crv.to_owned(),
        x,
        y,
        kid,
        alg: alg_name(alg).to_owned(),
        use_: "sig".to_owned(),
    })
}
