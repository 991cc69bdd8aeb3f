//! A result store on Redis, shared by every replica: stored answers with their ttl, and
//! fleet-wide claims of idempotency keys.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{Record, ResultStore, StoreClaim, StoreError};

/// `heal_store_failures_total`: Redis calls of a [`RedisStore`] that failed or timed out.
pub const STORE_FAILURES_TOTAL: &str = "heal_store_failures_total";

/// What a [`RedisStore`] does when Redis does not answer within its timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RedisFailure {
    /// Refuse: a read or a claim that fails refuses the request (HTTP 503), so a key is
    /// never run twice while Redis is away. The default.
    #[default]
    FailClosed,
    /// Run: a failed read is a miss and a failed claim lets the call run, so requests are
    /// served while Redis is away, and a duplicate sent meanwhile may run again.
    FailOpen,
}

const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

/// A [`ResultStore`] on Redis (OSS 7+ or Valkey; no modules), shared by every replica of a
/// service: an idempotency key answered on one replica is replayed on all of them, and a
/// duplicate arriving at another replica while the first call runs is answered "in progress"
/// (HTTP 409) instead of running the handler again.
///
/// - the first call claims its key with `SET NX PX` of an in-progress record; the claim lives
///   `claim_ttl` (default 30 s) so a replica that dies mid-call does not hold the key for ever;
///   a call running longer than `claim_ttl` loses its claim, so set it above the slowest
///   handler;
/// - the answer is stored with the layer's `ttl` before the claim is released;
/// - every Redis call has a short `timeout` (default 250 ms); what a failure does is
///   [`RedisFailure`] (default: refuse);
/// - keys are `<prefix>{<key>}` and `<prefix>claim:{<key>}`: the hash tag keeps a key's record
///   and claim on one Redis Cluster shard.
///
/// Calls are synchronous like every [`ResultStore`]: they run on a thread of the store's own
/// and wait for it at most `timeout`.
///
/// ```no_run
/// use std::time::Duration;
/// use tower_heal::IdempotencyLayer;
/// use tower_heal::store::RedisStore;
///
/// let store = RedisStore::builder("redis://127.0.0.1:6379/")
///     .prefix("orders:")
///     .claim_ttl(Duration::from_secs(60))
///     .build()
///     .unwrap();
/// let layer = IdempotencyLayer::http().store(store).build();
/// # drop(layer);
/// ```
pub struct RedisStore {
    conn: ConnectionManager,
    runtime: tokio::runtime::Handle,
    _stop: tokio::sync::oneshot::Sender<()>,
    prefix: String,
    timeout: Duration,
    claim_ttl: Duration,
    failure: RedisFailure,
    release: Arc<redis::Script>,
}

/// Builds a [`RedisStore`]; see [`RedisStore::builder`].
#[derive(Clone, Debug)]
#[must_use]
pub struct RedisStoreBuilder {
    url: String,
    prefix: String,
    timeout: Duration,
    claim_ttl: Duration,
    failure: RedisFailure,
}

impl RedisStoreBuilder {
    /// `prefix`: put before every key (default `"tower-heal:"`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// `timeout`: the longest any Redis call may take (default 250 ms).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// `claim_ttl`: how long an in-progress claim lives (default 30 s).
    pub fn claim_ttl(mut self, ttl: Duration) -> Self {
        self.claim_ttl = ttl;
        self
    }

    /// `failure`: what a failed Redis call does (default [`RedisFailure::FailClosed`]).
    pub fn failure(mut self, failure: RedisFailure) -> Self {
        self.failure = failure;
        self
    }

    /// The store. It connects lazily: a Redis down now is a failure of the first calls, not
    /// of `build`.
    ///
    /// # Errors
    /// The URL is not a Redis URL, a duration is zero, or the store's thread cannot start.
    pub fn build(self) -> Result<RedisStore, StoreError> {
        if self.timeout.is_zero() || self.claim_ttl.is_zero() {
            return Err(StoreError::Backend(
                "timeout and claim_ttl must be above zero".into(),
            ));
        }
        let client =
            redis::Client::open(self.url.as_str()).map_err(|e| StoreError::Backend(Box::new(e)))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1)
            .set_max_delay(self.timeout);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("tower-heal-redis".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready_tx.send(Err(StoreError::Backend(Box::new(e))));
                        return;
                    }
                };
                let conn = {
                    let _enter = runtime.enter();
                    ConnectionManager::new_lazy_with_config(client, config)
                        .map_err(|e| StoreError::Backend(Box::new(e)))
                };
                let _ = ready_tx.send(conn.map(|c| (c, runtime.handle().clone())));
                let _ = runtime.block_on(stopped);
            })
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        let (conn, runtime) = ready_rx
            .recv()
            .map_err(|e| StoreError::Backend(Box::new(e)))??;
        Ok(RedisStore {
            conn,
            runtime,
            _stop: stop,
            prefix: self.prefix,
            timeout: self.timeout,
            claim_ttl: self.claim_ttl,
            failure: self.failure,
            release: Arc::new(redis::Script::new(RELEASE)),
        })
    }
}

impl RedisStore {
    /// A builder for a store on the Redis at `url` (`redis://host:port/db`).
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url: url.into(),
            prefix: "tower-heal:".into(),
            timeout: Duration::from_millis(250),
            claim_ttl: Duration::from_secs(30),
            failure: RedisFailure::FailClosed,
        }
    }

    fn record_key(&self, key: &str) -> String {
        format!("{}{{{key}}}", self.prefix)
    }

    fn claim_key(&self, key: &str) -> String {
        format!("{}claim:{{{key}}}", self.prefix)
    }

    /// Runs `f` on the store's thread and waits at most `timeout` for it.
    fn run<T, F>(&self, f: impl FnOnce(ConnectionManager) -> F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Future<Output = redis::RedisResult<T>> + Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel(1);
        let fut = f(self.conn.clone());
        let timeout = self.timeout;
        self.runtime.spawn(async move {
            let result = tokio::time::timeout(timeout, fut).await;
            let _ = tx.send(result);
        });
        let waited = || rx.recv_timeout(timeout + Duration::from_millis(50));
        let result = match tokio::runtime::Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(waited)
            }
            _ => waited(),
        };
        match result {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(e))) => Err(StoreError::Backend(Box::new(e))),
            _ => Err(StoreError::Backend("redis did not answer in time".into())),
        }
    }

    fn failed<T>(&self, what: &str, error: StoreError, open: T) -> Result<T, StoreError> {
        metrics::counter!(STORE_FAILURES_TOTAL).increment(1);
        match self.failure {
            RedisFailure::FailClosed => {
                tracing::error!(target: "tower_heal", %error, what, "redis result store failed; refusing");
                Err(error)
            }
            RedisFailure::FailOpen => {
                tracing::warn!(target: "tower_heal", %error, what, "redis result store failed; failing open");
                Ok(open)
            }
        }
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("claim_ttl", &self.claim_ttl)
            .field("failure", &self.failure)
            .finish_non_exhaustive()
    }
}

/// A record on Redis: the fingerprint (8 bytes, little-endian), then the value.
fn encode(record: &Record) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(8 + record.value.len());
    bytes.extend_from_slice(&record.fingerprint.to_le_bytes());
    bytes.extend_from_slice(&record.value);
    bytes
}

fn decode(bytes: &[u8]) -> Option<Record> {
    let (head, value) = bytes.split_first_chunk::<8>()?;
    Some(Record::new(u64::from_le_bytes(*head), value.to_vec()))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl ResultStore for RedisStore {
    fn get(&self, key: &str) -> Result<Option<Record>, StoreError> {
        let key = self.record_key(key);
        match self.run(|mut c| async move { c.get::<_, Option<Vec<u8>>>(key).await }) {
            // A damaged record is absent, like in every store.
            Ok(bytes) => Ok(bytes.as_deref().and_then(decode)),
            Err(e) => self.failed("get", e, None),
        }
    }

    fn put(&self, key: &str, record: Record, ttl: Option<Duration>) -> Result<(), StoreError> {
        let key = self.record_key(key);
        let bytes = encode(&record);
        let result = self.run(move |mut c| async move {
            match ttl {
                Some(ttl) => c.pset_ex::<_, _, ()>(key, bytes, millis(ttl)).await,
                None => c.set::<_, _, ()>(key, bytes).await,
            }
        });
        result.or_else(|e| self.failed("put", e, ()))
    }

    fn remove(&self, key: &str) -> Result<(), StoreError> {
        let key = self.record_key(key);
        let result = self.run(|mut c| async move { c.del::<_, ()>(key).await });
        result.or_else(|e| self.failed("remove", e, ()))
    }

    fn claim(&self, key: &str) -> Result<StoreClaim, StoreError> {
        let key = self.claim_key(key);
        let token = fastrand::u64(1..);
        let ttl = millis(self.claim_ttl);
        let result = self.run(move |mut c| async move {
            redis::cmd("SET")
                .arg(key)
                .arg(token.to_string())
                .arg("NX")
                .arg("PX")
                .arg(ttl)
                .query_async::<Option<String>>(&mut c)
                .await
        });
        match result {
            Ok(Some(_)) => Ok(StoreClaim::Held(token)),
            Ok(None) => Ok(StoreClaim::Busy),
            Err(e) => self.failed("claim", e, StoreClaim::Unshared),
        }
    }

    fn release(&self, key: &str, token: u64) {
        let key = self.claim_key(key);
        let script = Arc::clone(&self.release);
        let result = self.run(move |mut c| async move {
            script
                .key(key)
                .arg(token.to_string())
                .invoke_async::<i64>(&mut c)
                .await
        });
        if let Err(error) = result {
            // The claim then expires after claim_ttl.
            tracing::warn!(target: "tower_heal", %error, "idempotency claim not released; it expires after claim_ttl");
        }
    }
}
