//! Unit tests of the signing keys: the JWK, the schedule, the key ring.

use base64::Engine;
use chrono::{Duration, NaiveDateTime, Utc};
use jsonwebtoken::Algorithm;

use super::schedule::{handovers, is_settled, new_row};
use super::store::aad;
use super::*;
use crate::config::{SigningAlg, SigningSettings};
use crate::crypto::master::{MasterKey, Purpose};
use crate::db::models::SigningKeyRow;
use crate::tokens::ring_provider;

/// A generated row sealed without a database to check against.
fn test_row(
    alg: Algorithm,
    master: &MasterKey,
    now: NaiveDateTime,
    activates_at: NaiveDateTime,
) -> SigningKeyRow {
    new_row(alg, now, activates_at, |kid, pkcs8| {
        Ok(master
            .encrypt(Purpose::SigningKeys, &aad(kid), pkcs8)
            .unwrap())
    })
    .unwrap()
}

#[test]
fn rfc7638_thumbprint_of_the_rfc_example_key() {
    // RFC 7638 §3.1 uses an RSA key; RFC 8037 §A.3 gives the Ed25519 one.
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
        .unwrap();
    let jwk = public_jwk(Algorithm::EdDSA, &x).unwrap();
    assert_eq!(jwk.kid, "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    let json = serde_json::to_value(&jwk).unwrap();
    let mut members: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
    members.sort();
    assert_eq!(members, ["alg", "crv", "kid", "kty", "use", "x"]);
}

/// A key ring built from generated rows signs tokens that its own
/// published JWKs verify, for both algorithms; a JWK whose members do
/// not fit its `alg` yields no key.
#[test]
fn published_keys_verify_what_the_ring_signs() {
    ring_provider::install();
    let master = MasterKey::from_bytes([7; 32]);
    let settings = settings();
    let now = Utc::now().naive_utc();
    for alg in [Algorithm::ES256, Algorithm::EdDSA] {
        let row = test_row(alg, &master, now, now);
        let ring = KeyRing::load(std::slice::from_ref(&row), &master, &settings, now).unwrap();
        let token = ring
            .signer(now.and_utc().timestamp())
            .unwrap()
            .sign(&serde_json::json!({"sub": "s"}))
            .unwrap();
        let jwk: PublicJwk = serde_json::from_str(&row.public_jwk).unwrap();
        let (published, key) = jwk.decoding_key().expect("a usable JWK");
        assert_eq!(published, alg);
        let mut validation = jsonwebtoken::Validation::new(alg);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation).unwrap();
        assert!(ring.decoding_key(&row.kid, alg).is_some());

        let mut mismatched = jwk.clone();
        mismatched.crv = if alg == Algorithm::EdDSA {
            "P-256"
        } else {
            "Ed25519"
        }
        .into();
        assert!(mismatched.decoding_key().is_none());
    }
}

/// After an emergency revoke and a reload, the revoked key's parsed pair
/// is gone from the process-wide cache; the others stay.
#[test]
fn a_reload_evicts_keys_that_left_the_ring() {
    ring_provider::install();
    let master = MasterKey::from_bytes([9; 32]);
    let settings = settings();
    let now = Utc::now().naive_utc();
    let active = test_row(Algorithm::ES256, &master, now, now);
    let next = test_row(Algorithm::ES256, &master, now, now + Duration::days(1));
    let pkcs8 = |row: &SigningKeyRow| {
        master
            .decrypt(Purpose::SigningKeys, &aad(&row.kid), &row.private_key_enc)
            .unwrap()
    };
    let mut rows = vec![next.clone(), active.clone()];
    let ring = KeyRing::load(&rows, &master, &settings, now).unwrap();
    ring.signer(now.and_utc().timestamp())
        .unwrap()
        .sign(&serde_json::json!({"sub": "s"}))
        .unwrap();
    assert!(ring_provider::is_cached(&pkcs8(&active)));
    assert!(ring_provider::is_cached(&pkcs8(&next)));

    // What `revoke` leaves in the database: revoked, next promoted.
    rows[1].revoked_at = Some(now);
    rows[1].retired_at = Some(now);
    rows[0].activates_at = now;
    ring.reload(&rows, &master, now).unwrap();
    assert!(
        !ring_provider::is_cached(&pkcs8(&active)),
        "the revoked key left"
    );
    assert!(
        ring_provider::is_cached(&pkcs8(&next)),
        "the signing key stays"
    );
    let signer = ring.signer(now.and_utc().timestamp()).unwrap();
    assert_eq!(signer.kid, next.kid);
    signer.sign(&serde_json::json!({"sub": "s"})).unwrap();
}

fn settings() -> SigningSettings {
    SigningSettings {
        alg: SigningAlg::ES256,
        jwks_max_age_s: 300,
        prepublish_s: 600,
        reload_s: 30,
        rotation_interval_s: 86_400,
    }
}

/// Finding 4's state: the signing key retires at the switch, the key
/// that was to take over is revoked, the one after it is a month away.
#[test]
fn a_revoked_successor_is_skipped_in_the_hand_over_chain() {
    ring_provider::install();
    let master = MasterKey::from_bytes([3; 32]);
    let now = Utc::now().naive_utc();
    let switch = now + Duration::seconds(30);
    let later = switch + Duration::days(30);
    let mut active = test_row(Algorithm::ES256, &master, now, now);
    active.retired_at = Some(switch);
    let mut revoked = test_row(Algorithm::ES256, &master, now, switch);
    revoked.revoked_at = Some(now);
    revoked.retired_at = Some(now);
    let after = test_row(Algorithm::ES256, &master, now, later);
    let rows = vec![after.clone(), revoked.clone(), active.clone()];

    assert!(!is_settled(&rows, now));
    let chain: Vec<(&str, Option<NaiveDateTime>)> = handovers(&rows, now)
        .into_iter()
        .map(|(r, wanted)| (r.kid.as_str(), wanted))
        .collect();
    assert_eq!(
        chain,
        [
            (active.kid.as_str(), Some(later)),
            (after.kid.as_str(), None)
        ]
    );
    // Past the switch, nothing live has activated: nothing is active.
    let past = switch + Duration::seconds(1);
    assert!(active_at(&rows, past).is_none());
    assert_eq!(state_of(&active, &rows, past), "retired");
    assert_eq!(state_of(&revoked, &rows, now), "revoked");
}

/// A retired key never signs, even while its row is still published;
/// the ring knows each key's end.
#[test]
fn a_key_past_its_retirement_never_signs() {
    ring_provider::install();
    let master = MasterKey::from_bytes([4; 32]);
    let now = Utc::now().naive_utc();
    let mut active = test_row(Algorithm::ES256, &master, now, now);
    active.retired_at = Some(now + Duration::seconds(10));
    let ring = KeyRing::load(std::slice::from_ref(&active), &master, &settings(), now).unwrap();
    let at = |d: i64| (now + Duration::seconds(d)).and_utc().timestamp();
    assert!(ring.signer(at(9)).is_some());
    assert!(ring.signer(at(10)).is_none(), "retired at its retired_at");
    assert!(ring.schedule(at(10)).is_none());
    // Still published, so its tokens verify.
    assert!(ring.decoding_key(&active.kid, Algorithm::ES256).is_some());
}

/// When a reload cannot build the new ring (a key fails to decrypt),
/// the revocation it carries still takes effect: the revoked key stops
/// signing and leaves the JWKS, and the promoted key signs.
#[test]
fn a_failed_reload_still_withdraws_revoked_keys() {
    ring_provider::install();
    let master = MasterKey::from_bytes([5; 32]);
    let now = Utc::now().naive_utc();
    let active = test_row(Algorithm::ES256, &master, now, now);
    let next = test_row(Algorithm::ES256, &master, now, now + Duration::days(1));
    let ring = KeyRing::load(&[next.clone(), active.clone()], &master, &settings(), now).unwrap();

    let mut revoked = active.clone();
    revoked.revoked_at = Some(now);
    revoked.retired_at = Some(now);
    let mut promoted = next.clone();
    promoted.activates_at = now;
    let mut unreadable = test_row(Algorithm::ES256, &master, now, now + Duration::days(2));
    unreadable.private_key_enc = vec![0; 40];
    let rows = vec![unreadable, promoted, revoked];
    assert!(ring.reload(&rows, &master, now).is_err());

    let jwks = String::from_utf8(ring.jwks().to_vec()).unwrap();
    assert!(!jwks.contains(&active.kid) && jwks.contains(&next.kid));
    assert!(ring.decoding_key(&active.kid, Algorithm::ES256).is_none());
    let signer = ring.signer(now.and_utc().timestamp()).unwrap();
    assert_eq!(signer.kid, next.kid);
}
