//! Unit tests of the master key: derivation, envelopes, files, rotation.

use super::*;

fn aad<'a>(table: &'a str, row: &'a str, tenant: &'a str) -> Aad<'a> {
    Aad {
        table,
        row_id: row,
        tenant,
    }
}

#[test]
fn round_trip_bound_to_its_row() {
    let key = MasterKey::from_bytes([7; 32]);
    let sealed = key
        .encrypt(Purpose::SigningKeys, &aad("t", "r", "x"), b"secret")
        .unwrap();
    let opened = key
        .decrypt(Purpose::SigningKeys, &aad("t", "r", "x"), &sealed)
        .unwrap();
    assert_eq!(opened.as_slice(), b"secret");
    for other in [aad("u", "r", "x"), aad("t", "s", "x"), aad("t", "r", "y")] {
        assert!(key.decrypt(Purpose::SigningKeys, &other, &sealed).is_err());
    }
    assert!(
        key.decrypt(Purpose::ApiKeySecrets, &aad("t", "r", "x"), &sealed)
            .is_err()
    );
    assert_ne!(
        sealed,
        key.encrypt(Purpose::SigningKeys, &aad("t", "r", "x"), b"secret")
            .unwrap()
    );
    let mut tampered = sealed.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert!(matches!(
        key.decrypt(Purpose::SigningKeys, &aad("t", "r", "x"), &tampered),
        Err(MasterKeyError::Decrypt)
    ));
    assert!(matches!(
        key.decrypt(Purpose::SigningKeys, &aad("t", "r", "x"), &sealed[..20]),
        Err(MasterKeyError::Malformed)
    ));
    assert_eq!(ciphertext_key_id(&sealed).unwrap(), key.id());
}

#[test]
fn another_master_key_is_recognised() {
    let a = MasterKey::from_bytes([1; 32]);
    let b = MasterKey::from_bytes([2; 32]);
    let check = a.check_value().unwrap();
    assert!(a.verify_check(&check).is_ok());
    assert!(matches!(
        b.verify_check(&check),
        Err(MasterKeyError::WrongMasterKey)
    ));
}

/// A replaced key encrypts and decrypts as the new one, and
/// `encrypt_as` refuses to write under a key the caller did not expect.
#[test]
fn a_replaced_key_is_the_new_one_and_expectations_are_checked() {
    let held = MasterKey::from_bytes([1; 32]);
    let new = MasterKey::from_bytes([2; 32]);
    let old_id = held.id();
    let a = aad("t", "r", "x");
    let under_old = held.encrypt(Purpose::SigningKeys, &a, b"s").unwrap();
    assert!(matches!(
        held.encrypt_as(&new.id(), Purpose::SigningKeys, &a, b"s"),
        Err(MasterKeyError::Rotated { ref held, ref stored }) if *held == old_id && *stored == new.id()
    ));
    held.replace_with(&new);
    assert_eq!(held.id(), new.id());
    let sealed = held
        .encrypt_as(&new.id(), Purpose::SigningKeys, &a, b"s")
        .unwrap();
    assert_eq!(ciphertext_key_id(&sealed).unwrap(), new.id());
    assert_eq!(
        new.decrypt(Purpose::SigningKeys, &a, &sealed)
            .unwrap()
            .as_slice(),
        b"s"
    );
    assert!(matches!(
        held.decrypt(Purpose::SigningKeys, &a, &under_old),
        Err(MasterKeyError::WrongMasterKey)
    ));
    assert!(held.verify_check(&new.check_value().unwrap()).is_ok());
}

/// Before it switches, a key read from a file opens ciphertexts that
/// the file's newer key wrote; never the check value.
#[test]
fn ciphertexts_of_the_key_file_open_before_the_switch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mk");
    std::fs::write(&path, STANDARD.encode([3u8; 32])).unwrap();
    let held = MasterKey::from_file(&path, ENV_FILE).unwrap();
    let newer = MasterKey::from_bytes([4; 32]);
    let a = aad("t", "r", "x");
    let sealed = newer.encrypt(Purpose::ApiKeySecrets, &a, b"s").unwrap();
    assert!(held.decrypt(Purpose::ApiKeySecrets, &a, &sealed).is_err());
    std::fs::write(&path, STANDARD.encode([4u8; 32])).unwrap();
    let opened = held.decrypt(Purpose::ApiKeySecrets, &a, &sealed).unwrap();
    assert_eq!(opened.as_slice(), b"s");
    assert_ne!(held.id(), newer.id(), "no switch");
    assert!(held.verify_check(&newer.check_value().unwrap()).is_err());
}

#[test]
fn env_values_are_checked_without_echoing_them() {
    let good = STANDARD.encode([9u8; 32]);
    assert!(
        MasterKey::from_env_vars(None, Some(&good))
            .unwrap()
            .is_some()
    );
    assert!(MasterKey::from_env_vars(None, None).unwrap().is_none());
    for bad in [
        STANDARD.encode([9u8; 31]),
        STANDARD.encode([9u8; 33]),
        "%%%".into(),
    ] {
        let err = MasterKey::from_env_vars(None, Some(&bad))
            .unwrap_err()
            .to_string();
        assert!(err.contains(ENV_VALUE), "{err}");
        assert!(!err.contains(&bad), "{err}");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mk");
    std::fs::write(&path, format!("{good}\n")).unwrap();
    let bad_value = STANDARD.encode([1u8; 32]);
    let from_file = MasterKey::from_env_vars(Some(path.to_str().unwrap()), Some(&bad_value))
        .unwrap()
        .unwrap();
    assert_eq!(from_file.id(), MasterKey::from_bytes([9; 32]).id());
}

#[test]
fn generated_files_are_new_and_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    let key = MasterKey::generate_file(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(MasterKey::generate_file(&path).is_err());
    let again = MasterKey::from_file(&path, ENV_FILE).unwrap();
    assert_eq!(again.id(), key.id());
    assert_eq!(key.file(), Some(path.as_path()), "re-read after a rotation");
}
