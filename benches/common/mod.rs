//! What every bench starts from: default settings, a migrated SQLite
//! database in a temporary directory, and a key ring with an active key.
// Each bench is its own crate and uses only part of the fixture.
#![allow(dead_code)]

use chrono::Utc;
use keymint::config::{Overrides, Settings};
use keymint::crypto::master::MasterKey;
use keymint::db::AnyConnection;
use keymint::tokens::signing::{self, KeyRing};

pub struct Fixture {
    pub settings: Settings,
    pub conn: AnyConnection,
    pub ring: KeyRing,
    /// Holds the database file until the bench ends.
    _dir: tempfile::TempDir,
}

pub fn fixture() -> Fixture {
    keymint::tokens::ring_provider::install();
    let settings = Settings::from_toml(&[], &Overrides::default()).expect("default settings");
    let master = MasterKey::from_bytes([7; 32]);
    let now = Utc::now().naive_utc();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut database = settings.database.clone();
    database.target = keymint::config::DatabaseTarget::Sqlite(dir.path().join("bench.db"));
    let mut conn = keymint::db::connect(&database).expect("sqlite");
    keymint::db::migrate(&mut conn).expect("migrations");
    keymint::crypto::check::record(&mut conn, &master, now).expect("check row");
    signing::ensure_keys(&mut conn, &master, &settings.signing, now).expect("signing keys");
    let rows = signing::load_rows(&mut conn).expect("rows");
    let ring = KeyRing::load(&rows, &master, &settings.signing, now).expect("key ring");
    Fixture {
        settings,
        conn,
        ring,
        _dir: dir,
    }
}
