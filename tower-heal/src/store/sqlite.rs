//! A durable result store on SQLite (the bundled library): survives a process crash.

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, ErrorCode, OptionalExtension, params};

use super::{Fnv, Record, ResultStore, StoreError};

/// A durable [`ResultStore`] in one SQLite file (feature `sqlite`; the SQLite library is
/// compiled from the crate, nothing to install).
///
/// - **Committed before the caller sees it**: [`put`](ResultStore::put) returns once its
///   transaction is committed with a full flush (`journal_mode=WAL`, `synchronous=FULL`). A
///   crash at any point loses no completed result and never exposes a half-written one (SQLite's
///   journal rolls an unfinished transaction back on the next open).
/// - **Damage is detected**: opening a file that is not a database, or one that fails SQLite's
///   `quick_check`, is a [`StoreError::Corrupt`]; each record carries a checksum, and a record
///   whose bytes no longer match it is ignored (read as absent) and removed, never returned.
/// - Expiry is wall-clock time (it must survive restarts), bounded to `max_entries` records
///   (the oldest written go first) and `max_value_bytes` per record.
///
/// ```
/// # #[cfg(feature = "sqlite")] {
/// use tower_heal::store::{Record, ResultStore, SqliteStore};
///
/// let dir = std::env::temp_dir().join(format!("tower-heal-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("results.db");
/// let store = SqliteStore::open(&path).unwrap();
/// store.put("order-12345", Record::new(1, b"charged".to_vec()), None).unwrap();
/// drop(store);
///
/// let reopened = SqliteStore::open(&path).unwrap();
/// assert_eq!(&*reopened.get("order-12345").unwrap().unwrap().value, b"charged");
/// # drop(reopened); std::fs::remove_dir_all(&dir).unwrap();
/// # }
/// ```
pub struct SqliteStore {
    conn: Mutex<Connection>,
    max_entries: u64,
    max_value_bytes: usize,
    puts: AtomicU32,
    evictions: metrics::Counter,
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS heal_results (
    key TEXT PRIMARY KEY NOT NULL,
    fingerprint INTEGER NOT NULL,
    value BLOB NOT NULL,
    expires_at INTEGER,
    checksum INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS heal_results_expiry ON heal_results (expires_at);";

fn backend(err: rusqlite::Error) -> StoreError {
    match err.sqlite_error_code() {
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
            StoreError::Corrupt(err.to_string())
        }
        _ => StoreError::Backend(Box::new(err)),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn checksum(key: &str, fingerprint: i64, value: &[u8], expires_at: Option<i64>) -> i64 {
    let mut h = Fnv::new();
    h.field(key.as_bytes())
        .write(&fingerprint.to_le_bytes())
        .field(value)
        .write(&expires_at.unwrap_or(-1).to_le_bytes());
    // Stored as SQLite's signed 64-bit integer: the same bits.
    h.finish() as i64
}

impl SqliteStore {
    /// Opens (or creates) the store at `path`, with at most 100,000 records of at most 1 MiB.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] if the file is not a database or fails the integrity check;
    /// [`StoreError::Backend`] if it cannot be opened.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, 100_000, 1 << 20)
    }

    /// Opens (or creates) the store at `path` with the given bounds.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_with(
        path: impl AsRef<Path>,
        max_entries: u64,
        max_value_bytes: usize,
    ) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(backend)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(backend)?;
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |row| row.get(0))
            .map_err(backend)?;
        if check != "ok" {
            return Err(StoreError::Corrupt(check));
        }
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;")
            .map_err(backend)?;
        conn.execute_batch(SCHEMA).map_err(backend)?;
        Ok(Self {
            conn: Mutex::new(conn),
            max_entries: max_entries.max(1),
            max_value_bytes,
            puts: AtomicU32::new(0),
            evictions: crate::metrics::store_eviction_counter(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A connection stays usable after a panic elsewhere: every statement is atomic.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn sweep(&self, conn: &Connection) -> Result<(), StoreError> {
        conn.execute(
            "DELETE FROM heal_results WHERE expires_at IS NOT NULL AND expires_at <= ?1",
            params![now_ms()],
        )
        .map_err(backend)?;
        let count: i64 = conn
            .query_row("SELECT count(*) FROM heal_results", [], |row| row.get(0))
            .map_err(backend)?;
        let excess = u64::try_from(count)
            .unwrap_or(0)
            .saturating_sub(self.max_entries);
        if excess > 0 {
            // Expired records went first: these had not expired yet.
            self.evictions.increment(excess);
            tracing::warn!(
                target: "tower_heal",
                evicted = excess,
                max_entries = self.max_entries,
                "result store full: records evicted before their ttl; size the store for the ttl"
            );
            conn.execute(
                "DELETE FROM heal_results WHERE rowid IN
                 (SELECT rowid FROM heal_results ORDER BY rowid LIMIT ?1)",
                params![i64::try_from(excess).unwrap_or(i64::MAX)],
            )
            .map_err(backend)?;
        }
        Ok(())
    }
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("max_entries", &self.max_entries)
            .field("max_value_bytes", &self.max_value_bytes)
            .finish()
    }
}

/// Runs `f`, which blocks on the disk (a flush, or the database lock up to the busy timeout),
/// without stalling a tokio worker: on a multi-thread runtime the worker hands its other
/// tasks to another thread first (`block_in_place`). Elsewhere (no runtime, a current-thread
/// runtime, which has no other thread to hand them to) `f` runs as it is.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

impl ResultStore for SqliteStore {
    fn get(&self, key: &str) -> Result<Option<Record>, StoreError> {
        blocking(|| self.get_now(key))
    }

    fn put(&self, key: &str, record: Record, ttl: Option<Duration>) -> Result<(), StoreError> {
        blocking(|| self.put_now(key, record, ttl))
    }

    fn remove(&self, key: &str) -> Result<(), StoreError> {
        blocking(|| {
            self.lock()
                .execute("DELETE FROM heal_results WHERE key = ?1", params![key])
                .map_err(backend)?;
            Ok(())
        })
    }
}

impl SqliteStore {
    fn get_now(&self, key: &str) -> Result<Option<Record>, StoreError> {
        let conn = self.lock();
        let row = conn
            .prepare_cached(
                "SELECT fingerprint, value, expires_at, checksum FROM heal_results WHERE key = ?1",
            )
            .and_then(|mut statement| {
                statement.query_row(params![key], |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, Vec<u8>>(1)?,
                        row.get::<_, Option<i64>>(2)?,
                        row.get::<_, i64>(3)?,
                    ))
                })
            })
            .optional();
        let (fingerprint, value, expires_at, sum) = match row {
            Ok(Some(row)) => row,
            Ok(None) => return Ok(None),
            // A value of the wrong type in a column is damage to that record: ignore it.
            Err(
                rusqlite::Error::FromSqlConversionFailure(..)
                | rusqlite::Error::InvalidColumnType(..),
            ) => {
                tracing::warn!(target: "tower_heal", key, "damaged record ignored");
                return Ok(None);
            }
            Err(err) => return Err(backend(err)),
        };
        if checksum(key, fingerprint, &value, expires_at) != sum {
            tracing::warn!(target: "tower_heal", key, "record fails its checksum; ignored and removed");
            let _ = conn.execute("DELETE FROM heal_results WHERE key = ?1", params![key]);
            return Ok(None);
        }
        if expires_at.is_some_and(|at| at <= now_ms()) {
            return Ok(None);
        }
        Ok(Some(Record {
            fingerprint: fingerprint as u64,
            value: value.into(),
        }))
    }

    fn put_now(&self, key: &str, record: Record, ttl: Option<Duration>) -> Result<(), StoreError> {
        if record.value.len() > self.max_value_bytes {
            return Err(StoreError::TooLarge {
                bytes: record.value.len(),
                max: self.max_value_bytes,
            });
        }
        let expires_at = ttl
            .map(|ttl| now_ms().saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)));
        // Stored as SQLite's signed 64-bit integer: the same bits.
        let fingerprint = record.fingerprint as i64;
        let sum = checksum(key, fingerprint, &record.value, expires_at);
        let conn = self.lock();
        conn.prepare_cached(
            "INSERT OR REPLACE INTO heal_results (key, fingerprint, value, expires_at, checksum)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .and_then(|mut statement| {
            statement.execute(params![key, fingerprint, &*record.value, expires_at, sum])
        })
        .map_err(backend)?;
        if self.puts.fetch_add(1, Ordering::Relaxed) % 64 == 63 {
            self.sweep(&conn)?;
        }
        Ok(())
    }
}
