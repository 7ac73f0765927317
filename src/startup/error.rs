//! Why the server could not start.

use crate::bootstrap;
use crate::db::DbError;
use crate::tokens::signing;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("database {target}: {source}")]
    Database { target: String, source: DbError },
    #[error("master key: {0}")]
    MasterKey(String),
    #[error("signing keys: {0}")]
    Signing(#[from] signing::SigningError),
    #[error("bootstrap: {0}")]
    Bootstrap(#[from] bootstrap::BootstrapError),
    #[error("{0}")]
    Other(String),
}
