//! PostgreSQL: the token endpoints' point reads, batched. A lookup is a
//! network round trip, which sync Diesel cannot make without blocking, so
//! it cannot run inline like SQLite's ([`super::inline`]). Instead of a hop
//! to the blocking pool per lookup, each worker hands its lookups to a
//! database thread of its own, which sends everything that queued while
//! the previous query ran as one query (`= ANY($1)`): under load, one
//! round trip and one wake-up serve many requests.
//!
//! A batch's query starts after every request in it was handed over, so it
//! sees every write committed before those requests arrived: a key revoked
//! through any replica is refused by its very next lookup, as with a query
//! of its own.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use diesel::QueryResult;

use super::connection::AnyConnection;
use super::error::DbError;
use super::pool::ConnectionManager;
use crate::config::{DatabaseSettings, DatabaseTarget};

/// The most lookups one query carries.
const MAX_BATCH: usize = 64;
/// Lookups waiting per lane; past it a request takes the pool instead.
const QUEUE: usize = 1024;

type Reply<V> = tokio::sync::oneshot::Sender<Result<Option<V>, DbError>>;

/// Looks up many keys in one query, answering each in the order asked.
pub type LookupMany<K, V> = fn(&mut AnyConnection, &[K]) -> QueryResult<Vec<Option<V>>>;

/// The database threads of one database, one per worker.
pub struct Batched<K, V> {
    lanes: Vec<SyncSender<(K, Reply<V>)>>,
    next: AtomicUsize,
}

thread_local! {
    /// The lane this worker thread hands its lookups to.
    static LANE: Cell<Option<usize>> = const { Cell::new(None) };
}

impl<K: Send + 'static, V: Send + 'static> Batched<K, V> {
    /// `lanes` threads for PostgreSQL, each with a connection of its own
    /// (opened on first use); `None` for SQLite.
    pub fn start(
        settings: &DatabaseSettings,
        lanes: usize,
        lookup: LookupMany<K, V>,
    ) -> std::io::Result<Option<Self>> {
        if !matches!(settings.target, DatabaseTarget::Postgres(_)) {
            return Ok(None);
        }
        let mut senders = Vec::with_capacity(lanes);
        for n in 0..lanes.max(1) {
            let (tx, rx) = sync_channel(QUEUE);
            let manager = ConnectionManager::new(settings);
            std::thread::Builder::new()
                .name(format!("keymint-lookup-{n}"))
                .spawn(move || serve(rx, manager, lookup))?;
            senders.push(tx);
        }
        Ok(Some(Self {
            lanes: senders,
            next: AtomicUsize::new(0),
        }))
    }

    /// Looks `key` up in this worker's next batch. `Err(key)` when the lane
    /// is full or gone: the caller runs the lookup on the pool instead.
    pub async fn find(&self, key: K) -> Result<Result<Option<V>, DbError>, K> {
        let lane = LANE.with(|lane| match lane.get() {
            Some(n) => n,
            None => {
                let n = self.next.fetch_add(1, Ordering::Relaxed);
                lane.set(Some(n));
                n
            }
        }) % self.lanes.len();
        let (tx, rx) = tokio::sync::oneshot::channel();
        match self.lanes[lane].try_send((key, tx)) {
            Ok(()) => {}
            Err(TrySendError::Full((key, _)) | TrySendError::Disconnected((key, _))) => {
                return Err(key);
            }
        }
        Ok(rx
            .await
            .unwrap_or_else(|_| Err(DbError::Task("the lookup thread stopped".into()))))
    }
}

/// One lane: wait for a lookup, take whatever else queued meanwhile, answer
/// them all from one query. Ends when the server drops its senders.
fn serve<K, V>(rx: Receiver<(K, Reply<V>)>, manager: ConnectionManager, lookup: LookupMany<K, V>) {
    let mut conn: Option<AnyConnection> = None;
    let mut keys = Vec::with_capacity(MAX_BATCH);
    let mut replies = Vec::with_capacity(MAX_BATCH);
    while let Ok((key, reply)) = rx.recv() {
        keys.push(key);
        replies.push(reply);
        while keys.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok((key, reply)) => {
                    keys.push(key);
                    replies.push(reply);
                }
                Err(_) => break,
            }
        }
        let answers = answer(&mut conn, &manager, lookup, &keys);
        keys.clear();
        match answers {
            Ok(found) => {
                for (reply, value) in replies.drain(..).zip(found) {
                    let _ = reply.send(Ok(value));
                }
            }
            Err(error) => {
                let message = error.to_string();
                let unavailable = error.is_unavailable();
                for reply in replies.drain(..) {
                    let _ = reply.send(Err(if unavailable {
                        DbError::Unavailable(message.clone())
                    } else {
                        DbError::Task(message.clone())
                    }));
                }
            }
        }
    }
}

/// One query for `keys`, on the lane's connection, reopened if it failed.
fn answer<K, V>(
    conn: &mut Option<AnyConnection>,
    manager: &ConnectionManager,
    lookup: LookupMany<K, V>,
    keys: &[K],
) -> Result<Vec<Option<V>>, DbError> {
    let open = match conn {
        Some(open) => open,
        None => conn.insert(
            manager
                .open()
                .map_err(|e| DbError::Unavailable(e.to_string()))?,
        ),
    };
    match lookup(open, keys) {
        Ok(found) if found.len() == keys.len() => Ok(found),
        Ok(_) => Err(DbError::Task(
            "a batch answered the wrong number of lookups".into(),
        )),
        Err(error) => {
            // Whatever failed, the next batch starts on a fresh connection.
            *conn = None;
            Err(DbError::Query(error))
        }
    }
}
