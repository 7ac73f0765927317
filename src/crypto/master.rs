//! The master key and the envelope encryption of secrets at rest (signing
//! keys' private parts, advanced keys' secrets).
//!
//! Purpose keys are derived with HKDF-SHA256; ciphertexts are
//! `version ‖ master_key_id ‖ nonce(12) ‖ ciphertext ‖ tag(16)` under
//! AES-256-GCM with AAD = table ‖ 0 ‖ row id ‖ 0 ‖ tenant, so a ciphertext
//! moved to another row does not decrypt. The key's bytes never leave this
//! module; errors never contain them.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{AES_256_GCM, Aad as RingAad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

const VERSION: u8 = 1;
const ID_LEN: usize = 8;
const TAG_LEN: usize = 16;
const HKDF_SALT: &[u8] = b"keymint master key v1";
const CHECK_PLAINTEXT: &[u8] = b"keymint master key check";

pub const ENV_FILE: &str = "KEYMINT_MASTER_KEY_FILE";
pub const ENV_VALUE: &str = "KEYMINT_MASTER_KEY";

#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error("{source_name}: {reason}")]
    Invalid {
        source_name: &'static str,
        reason: String,
    },
    #[error("cannot write master key file {path}: {error}")]
    Write { path: String, error: std::io::Error },
    #[error("cannot read master key file {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("the master key does not match the one this data was written with")]
    WrongMasterKey,
    #[error("ciphertext is malformed")]
    Malformed,
    #[error("decryption failed")]
    Decrypt,
    #[error("random source failed")]
    Random,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    SigningKeys,
    ApiKeySecrets,
    Check,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Self::SigningKeys => b"signing-keys",
            Self::ApiKeySecrets => b"api-key-secrets",
            Self::Check => b"check",
        }
    }
}

/// Where a ciphertext belongs.
pub struct Aad<'a> {
    pub table: &'a str,
    pub row_id: &'a str,
    pub tenant: &'a str,
}

impl Aad<'_> {
    fn bytes(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(self.table.len() + self.row_id.len() + self.tenant.len() + 2);
        out.extend_from_slice(self.table.as_bytes());
        out.push(0);
        out.extend_from_slice(self.row_id.as_bytes());
        out.push(0);
        out.extend_from_slice(self.tenant.as_bytes());
        out
    }
}

pub struct MasterKey {
    bytes: Zeroizing<[u8; 32]>,
    id: [u8; ID_LEN],
    id_hex: String,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id_hex)
            .finish()
    }
}

struct OkmLen(usize);

impl hkdf::KeyType for OkmLen {
    fn len(&self) -> usize {
        self.0
    }
}

fn derive(master: &[u8; 32], label: &[u8], out: &mut [u8]) {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(master);
    let info = [label];
    // Lengths here are 8 or 32 bytes, far below HKDF's 255 × 32 limit, so
    // expand and fill cannot fail.
    if let Ok(okm) = prk.expand(&info, OkmLen(out.len())) {
        let _ = okm.fill(out);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl MasterKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let bytes = Zeroizing::new(bytes);
        let mut id = [0u8; ID_LEN];
        derive(&bytes, b"key-id", &mut id);
        Self {
            id_hex: hex(&id),
            bytes,
            id,
        }
    }

    fn parse(text: &str, source_name: &'static str) -> Result<Self, MasterKeyError> {
        let invalid = |reason: &str| MasterKeyError::Invalid {
            source_name,
            reason: reason.to_owned(),
        };
        let decoded = Zeroizing::new(
            STANDARD
                .decode(text.trim())
                .map_err(|_| invalid("is not standard base64"))?,
        );
        let bytes: [u8; 32] = decoded
            .as_slice()
            .try_into()
            .map_err(|_| invalid("must decode to exactly 32 bytes"))?;
        Ok(Self::from_bytes(bytes))
    }

    pub fn from_base64(text: &str) -> Result<Self, MasterKeyError> {
        Self::parse(text, ENV_VALUE)
    }

    /// `KEYMINT_MASTER_KEY_FILE` (preferred) or `KEYMINT_MASTER_KEY`.
    pub fn from_env() -> Result<Option<Self>, MasterKeyError> {
        let file = std::env::var(ENV_FILE).ok();
        let value = std::env::var(ENV_VALUE).ok().map(Zeroizing::new);
        Self::from_env_vars(file.as_deref(), value.as_ref().map(|v| v.as_str()))
    }

    pub fn from_env_vars(
        file: Option<&str>,
        value: Option<&str>,
    ) -> Result<Option<Self>, MasterKeyError> {
        if let Some(path) = file.filter(|p| !p.is_empty()) {
            return Self::from_file(Path::new(path), ENV_FILE).map(Some);
        }
        match value.filter(|v| !v.is_empty()) {
            Some(text) => Self::parse(text, ENV_VALUE).map(Some),
            None => Ok(None),
        }
    }

    pub fn from_file(path: &Path, source_name: &'static str) -> Result<Self, MasterKeyError> {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|error| {
            MasterKeyError::Read {
                path: path.display().to_string(),
                error,
            }
        })?);
        Self::parse(&text, source_name)
    }

    /// Writes a new random key to `path` (which must not exist), mode 0600
    /// whatever the umask.
    pub fn generate_file(path: &Path) -> Result<Self, MasterKeyError> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let mut bytes = Zeroizing::new([0u8; 32]);
        SystemRandom::new()
            .fill(bytes.as_mut())
            .map_err(|_| MasterKeyError::Random)?;
        let write_error = |error| MasterKeyError::Write {
            path: path.display().to_string(),
            error,
        };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(write_error)?;
        // The umask only narrows `mode`; set it exactly.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(write_error)?;
        let text = Zeroizing::new(format!("{}\n", STANDARD.encode(bytes.as_ref())));
        file.write_all(text.as_bytes()).map_err(write_error)?;
        file.sync_all().map_err(write_error)?;
        Ok(Self::from_bytes(*bytes))
    }

    pub fn id(&self) -> &str {
        &self.id_hex
    }

    fn purpose_key(&self, purpose: Purpose) -> Result<LessSafeKey, MasterKeyError> {
        let mut raw = Zeroizing::new([0u8; 32]);
        derive(&self.bytes, purpose.label(), raw.as_mut());
        let unbound =
            UnboundKey::new(&AES_256_GCM, raw.as_ref()).map_err(|_| MasterKeyError::Decrypt)?;
        Ok(LessSafeKey::new(unbound))
    }

    pub fn encrypt(
        &self,
        purpose: Purpose,
        aad: &Aad<'_>,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, MasterKeyError> {
        let key = self.purpose_key(purpose)?;
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| MasterKeyError::Random)?;
        let mut sealed = plaintext.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            RingAad::from(aad.bytes()),
            &mut sealed,
        )
        .map_err(|_| MasterKeyError::Random)?;
        let mut out = Vec::with_capacity(1 + ID_LEN + NONCE_LEN + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&self.id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    pub fn decrypt(
        &self,
        purpose: Purpose,
        aad: &Aad<'_>,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, MasterKeyError> {
        if ciphertext.len() < 1 + ID_LEN + NONCE_LEN + TAG_LEN || ciphertext[0] != VERSION {
            return Err(MasterKeyError::Malformed);
        }
        if ciphertext[1..1 + ID_LEN] != self.id {
            return Err(MasterKeyError::WrongMasterKey);
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&ciphertext[1 + ID_LEN..1 + ID_LEN + NONCE_LEN]);
        let key = self.purpose_key(purpose)?;
        let mut buffer = Zeroizing::new(ciphertext[1 + ID_LEN + NONCE_LEN..].to_vec());
        let plain_len = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                RingAad::from(aad.bytes()),
                &mut buffer,
            )
            .map_err(|_| MasterKeyError::Decrypt)?
            .len();
        buffer.truncate(plain_len);
        Ok(buffer)
    }

    /// An HMAC-SHA256 tag over `data` under a key derived for `label`: for
    /// tokens the server hands out and must recognise later (list cursors).
    pub fn mac(&self, label: &[u8], data: &[u8]) -> Vec<u8> {
        ring::hmac::sign(&self.mac_key(label), data)
            .as_ref()
            .to_vec()
    }

    /// Checks a (possibly truncated, at least 16-byte) tag in constant time.
    pub fn verify_mac(&self, label: &[u8], data: &[u8], tag: &[u8]) -> bool {
        if tag.len() < 16 || tag.len() > 32 {
            return false;
        }
        let full = ring::hmac::sign(&self.mac_key(label), data);
        subtle::ConstantTimeEq::ct_eq(&full.as_ref()[..tag.len()], tag).into()
    }

    fn mac_key(&self, label: &[u8]) -> ring::hmac::Key {
        let mut raw = Zeroizing::new([0u8; 32]);
        derive(&self.bytes, label, raw.as_mut());
        ring::hmac::Key::new(ring::hmac::HMAC_SHA256, raw.as_ref())
    }

    fn check_aad() -> Aad<'static> {
        Aad {
            table: "master_key_check",
            row_id: "1",
            tenant: "",
        }
    }

    pub fn check_value(&self) -> Result<Vec<u8>, MasterKeyError> {
        self.encrypt(Purpose::Check, &Self::check_aad(), CHECK_PLAINTEXT)
    }

    pub fn verify_check(&self, stored: &[u8]) -> Result<(), MasterKeyError> {
        match self.decrypt(Purpose::Check, &Self::check_aad(), stored) {
            Ok(plain) if plain.as_slice() == CHECK_PLAINTEXT => Ok(()),
            _ => Err(MasterKeyError::WrongMasterKey),
        }
    }
}

/// The master-key id a ciphertext was written under.
pub fn ciphertext_key_id(ciphertext: &[u8]) -> Option<String> {
    (ciphertext.len() > ID_LEN && ciphertext[0] == VERSION).then(|| hex(&ciphertext[1..1 + ID_LEN]))
}

#[cfg(test)]
mod tests {
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
    }
}
