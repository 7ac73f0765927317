//! The master key and the envelope encryption of secrets at rest (signing
//! keys' private parts, advanced keys' secrets).
//!
//! Purpose keys are derived with HKDF-SHA256; ciphertexts are
//! `version ‖ master_key_id ‖ nonce(12) ‖ ciphertext ‖ tag(16)` under
//! AES-256-GCM with AAD = table ‖ 0 ‖ row id ‖ 0 ‖ tenant, so a ciphertext
//! moved to another row does not decrypt. The key's bytes never leave this
//! module; errors never contain them.
//!
//! A running server's key can be replaced (see `crypto::check`): after
//! `keymint master-key rotate` it takes the new key from its key file. Each
//! operation works on one snapshot of the key, so a replacement never mixes
//! two keys inside one encryption.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use crate::domain::text::hex;
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
    /// The database was moved to another master key while this process ran.
    #[error(
        "the database's master key was rotated to key {stored}; this process holds key {held} \
         and writes no secret under it: put the new key in its key file (re-read on every \
         signing reload) or restart it with the new key"
    )]
    Rotated { held: String, stored: String },
    #[error("the database has no master-key check row")]
    NoCheckRow,
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
    /// Bearer secrets keymint presents to event receivers.
    EventStreamSecrets,
    Check,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Self::SigningKeys => b"signing-keys",
            Self::ApiKeySecrets => b"api-key-secrets",
            Self::EventStreamSecrets => b"event-stream-secrets",
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

/// The key bytes and their id: what one operation uses, whole.
struct Material {
    bytes: Zeroizing<[u8; 32]>,
    id: [u8; ID_LEN],
    id_hex: String,
}

pub struct MasterKey {
    material: RwLock<Arc<Material>>,
    /// The file the key was read from or generated into: where a running
    /// server looks for the key a rotation moved the database to.
    file: Option<PathBuf>,
    /// The database was seen under another key that could not be loaded.
    behind: AtomicBool,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey").field("id", &self.id()).finish()
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

impl Material {
    fn new(bytes: [u8; 32]) -> Self {
        let bytes = Zeroizing::new(bytes);
        let mut id = [0u8; ID_LEN];
        derive(&bytes, b"key-id", &mut id);
        Self {
            id_hex: hex(&id),
            bytes,
            id,
        }
    }
}

impl MasterKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self {
            material: RwLock::new(Arc::new(Material::new(bytes))),
            file: None,
            behind: AtomicBool::new(false),
        }
    }

    fn with_file(mut self, path: &Path) -> Self {
        self.file = Some(path.to_path_buf());
        self
    }

    /// The key as it is now; later replacements do not change the snapshot.
    fn material(&self) -> Arc<Material> {
        match self.material.read() {
            Ok(m) => m.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Takes `other`'s key in place of this one; the file stays this key's.
    pub fn replace_with(&self, other: &MasterKey) {
        let new = other.material();
        match self.material.write() {
            Ok(mut slot) => *slot = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
    }

    /// Where this key was read from, if a file.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Whether the database was last seen under a key this process lacks.
    pub fn is_behind(&self) -> bool {
        self.behind.load(Ordering::Relaxed)
    }

    /// Records whether the database is under another key; returns the
    /// previous value.
    pub fn set_behind(&self, behind: bool) -> bool {
        self.behind.swap(behind, Ordering::Relaxed)
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
        Ok(Self::parse(&text, source_name)?.with_file(path))
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
        Ok(Self::from_bytes(*bytes).with_file(path))
    }

    /// The key's id (derived, not secret): the one ciphertexts carry.
    pub fn id(&self) -> String {
        self.material().id_hex.clone()
    }

    /// Encrypts under the key whose id is `expected_id` (the database's),
    /// or fails with [`MasterKeyError::Rotated`] if this process holds
    /// another: the check and the encryption use one snapshot.
    pub fn encrypt_as(
        &self,
        expected_id: &str,
        purpose: Purpose,
        aad: &Aad<'_>,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, MasterKeyError> {
        let material = self.material();
        if material.id_hex != expected_id {
            return Err(MasterKeyError::Rotated {
                held: material.id_hex.clone(),
                stored: expected_id.to_owned(),
            });
        }
        material.encrypt(purpose, aad, plaintext)
    }

    pub fn encrypt(
        &self,
        purpose: Purpose,
        aad: &Aad<'_>,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, MasterKeyError> {
        self.material().encrypt(purpose, aad, plaintext)
    }

    /// Decrypts a stored secret. A ciphertext under another key is one a
    /// rotation re-encrypted before this process followed it (see
    /// `crypto::check`): if the key file already holds that key, it opens
    /// the ciphertext, so signed requests keep working through a rotation.
    /// Switching keys is left to the check row.
    pub fn decrypt(
        &self,
        purpose: Purpose,
        aad: &Aad<'_>,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, MasterKeyError> {
        match self.material().decrypt(purpose, aad, ciphertext) {
            Err(MasterKeyError::WrongMasterKey) if purpose != Purpose::Check => {
                let path = self.file.as_deref().ok_or(MasterKeyError::WrongMasterKey)?;
                let from_file = Self::from_file(path, ENV_FILE)?.material();
                from_file.decrypt(purpose, aad, ciphertext)
            }
            other => other,
        }
    }

    /// An HMAC-SHA256 tag over `data` under a key derived for `label`: for
    /// tokens the server hands out and must recognise later (list cursors).
    pub fn mac(&self, label: &[u8], data: &[u8]) -> Vec<u8> {
        ring::hmac::sign(&self.material().mac_key(label), data)
            .as_ref()
            .to_vec()
    }

    /// Checks a (possibly truncated, at least 16-byte) tag in constant time.
    pub fn verify_mac(&self, label: &[u8], data: &[u8], tag: &[u8]) -> bool {
        if tag.len() < 16 || tag.len() > 32 {
            return false;
        }
        let full = ring::hmac::sign(&self.material().mac_key(label), data);
        subtle::ConstantTimeEq::ct_eq(&full.as_ref()[..tag.len()], tag).into()
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
        match self
            .material()
            .decrypt(Purpose::Check, &Self::check_aad(), stored)
        {
            Ok(plain) if plain.as_slice() == CHECK_PLAINTEXT => Ok(()),
            _ => Err(MasterKeyError::WrongMasterKey),
        }
    }
}

impl Material {
    fn purpose_key(&self, purpose: Purpose) -> Result<LessSafeKey, MasterKeyError> {
        let mut raw = Zeroizing::new([0u8; 32]);
        derive(&self.bytes, purpose.label(), raw.as_mut());
        let unbound =
            UnboundKey::new(&AES_256_GCM, raw.as_ref()).map_err(|_| MasterKeyError::Decrypt)?;
        Ok(LessSafeKey::new(unbound))
    }

    fn encrypt(
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

    fn decrypt(
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

    fn mac_key(&self, label: &[u8]) -> ring::hmac::Key {
        let mut raw = Zeroizing::new([0u8; 32]);
        derive(&self.bytes, label, raw.as_mut());
        ring::hmac::Key::new(ring::hmac::HMAC_SHA256, raw.as_ref())
    }
}

/// The master-key id a ciphertext was written under.
pub fn ciphertext_key_id(ciphertext: &[u8]) -> Option<String> {
    (ciphertext.len() > ID_LEN && ciphertext[0] == VERSION).then(|| hex(&ciphertext[1..1 + ID_LEN]))
}
#[cfg(test)]
mod tests;
