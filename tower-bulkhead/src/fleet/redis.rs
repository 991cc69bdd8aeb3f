//! The fleet budget on Redis: GCRA and leases in Lua scripts, an explicit failure mode.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::time::Instant;

use super::{BudgetStore, FailureMode, Grant, LocalBudget};
use crate::BoxError;

/// `bulkhead_fleet_degraded{bulkhead}`: 1 while a fleet budget cannot reach Redis and runs
/// its failure mode, 0 otherwise.
pub const FLEET_DEGRADED: &str = "bulkhead_fleet_degraded";

/// GCRA on the server's clock. KEYS[1]: the theoretical arrival time (µs). ARGV: interval
/// (µs per token), tolerance (µs), cost (negative: a refund), `take` or `settle`. Returns
/// `{allowed, remaining, retry_after_us}`. A settle is never refused: a charge above the
/// tolerance is debt that the next refills pay first.
const RATE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new = tat + cost * interval
if ARGV[4] == 'take' and new - now > tolerance then
  return {0, 0, math.ceil(new - tolerance - now)}
end
if new < now then new = now end
redis.call('SET', KEYS[1], string.format('%.0f', math.ceil(new)), 'PX', math.ceil((new - now) / 1000) + 1)
local remaining = math.floor((tolerance - (new - now)) / interval)
if remaining < 0 then remaining = 0 end
return {1, remaining, 0}";

/// Leases with an expiry. KEYS[1]: a sorted set of `id:cost` by expiry (µs); KEYS[2]: the
/// tokens leased. ARGV: `lease`, `renew` or `release`; the member; its cost; the capacity;
/// the lease time (µs). Expired leases are dropped first. Returns `{allowed, remaining,
/// retry_after_us}`.
const LEASE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local total = tonumber(redis.call('GET', KEYS[2]) or '0')
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for _, m in ipairs(expired) do
  total = total - (tonumber(string.match(m, ':(%d+)$')) or 0)
end
if #expired > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now) end
if total < 0 then total = 0 end
local op = ARGV[1]
local member = ARGV[2]
local cost = tonumber(ARGV[3])
local capacity = tonumber(ARGV[4])
local lease = tonumber(ARGV[5])
local result
if op == 'lease' then
  if total + cost > capacity then
    local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    local wait = lease
    if first[2] then wait = tonumber(first[2]) - now end
    if wait < 0 then wait = 0 end
    result = {0, 0, wait}
  else
    redis.call('ZADD', KEYS[1], now + lease, member)
    total = total + cost
    result = {1, capacity - total, 0}
  end
elseif op == 'renew' then
  if redis.call('ZSCORE', KEYS[1], member) then
    redis.call('ZADD', KEYS[1], now + lease, member)
    result = {1, 0, 0}
  else
    result = {0, 0, 0}
  end
else
  if redis.call('ZREM', KEYS[1], member) == 1 then total = total - cost end
  if total < 0 then total = 0 end
  result = {1, capacity - total, 0}
end
local keep = math.ceil(lease / 1000) * 2 + 1000
redis.call('SET', KEYS[2], total, 'PX', keep)
redis.call('PEXPIRE', KEYS[1], keep)
return result";

/// A rate budget and an in-flight budget shared by every replica through Redis (OSS 7+ or
/// Valkey; no modules). See the [module docs](super) for what is shared and what stays local.
///
/// - [`take`](BudgetStore::take) / [`settle`](BudgetStore::settle): GCRA with a weighted cost
///   in one Lua script (`EVALSHA`, loaded again after `NOSCRIPT`), on the server's clock;
///   refused calls get the time until their tokens are there (the rejection's
///   `Retry-After`). A settle refunds (actual below the estimate) or charges debt (above it).
/// - [`lease`](BudgetStore::lease) / [`release`](BudgetStore::release) /
///   [`renew`](Self::renew): in-flight tokens held under a lease that expires after
///   `lease_time` (default 30 s) unless renewed, so a replica that dies gives its share back
///   within `lease_time`.
/// - every Redis call is bounded by `timeout` (default 50 ms); when one fails the budget runs
///   its [`FailureMode`] (default `FailClosed`) until a probe, once per `probe_interval`
///   (default 1 s), finds Redis back. Settles that could not be applied meanwhile are kept
///   and applied when it is back.
///
/// ```no_run
/// use std::time::Duration;
/// use tower_bulkhead::fleet::{BudgetStore, FailureMode, RedisBudget};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// // 100 000 tokens per minute for the whole fleet of 10 replicas.
/// let budget = RedisBudget::builder("llm")
///     .refill(100_000, Duration::from_secs(60))
///     .burst(100_000)
///     .failure(FailureMode::LocalFallback { replicas: 10 })
///     .connect("redis://127.0.0.1:6379/")
///     .await
///     .unwrap();
/// let grant = budget.take(1_200).await;
/// if grant.allowed {
///     // ... call the model, read its usage ...
///     budget.settle(1_200, 950).await;
/// }
/// # }
/// ```
pub struct RedisBudget {
    conn: ConnectionManager,
    name: String,
    rate_key: String,
    leases_key: String,
    leased_key: String,
    interval_us: f64,
    tolerance_us: f64,
    capacity: u64,
    lease_us: u64,
    timeout: Duration,
    probe_interval: Duration,
    failure: FailureMode,
    fallback: LocalBudget,
    degraded: AtomicBool,
    next_probe: Mutex<Instant>,
    /// Settles (actual − estimate) not applied yet, because Redis was away.
    pending: AtomicI64,
    /// Leases granted while degraded: never on Redis.
    unshared: Mutex<HashSet<u64>>,
    rate: redis::Script,
    lease: redis::Script,
    gauge: metrics::Gauge,
}

/// Builds a [`RedisBudget`]; see [`RedisBudget::builder`].
#[derive(Clone, Debug)]
#[must_use]
pub struct RedisBudgetBuilder {
    name: String,
    prefix: String,
    refill: u64,
    period: Duration,
    burst: Option<u64>,
    capacity: u64,
    lease_time: Duration,
    timeout: Duration,
    probe_interval: Duration,
    failure: FailureMode,
}

impl RedisBudgetBuilder {
    /// `prefix`: put before every key (default `"tower-bulkhead:"`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The rate budget: `tokens` every `period` (default: unlimited in practice,
    /// `u32::MAX` per second).
    pub fn refill(mut self, tokens: u64, period: Duration) -> Self {
        self.refill = tokens;
        self.period = period;
        self
    }

    /// `burst`: the most tokens the rate budget holds (default: `refill`).
    pub fn burst(mut self, tokens: u64) -> Self {
        self.burst = Some(tokens);
        self
    }

    /// `capacity`: the in-flight budget, tokens leased at once by the whole fleet (default
    /// `u32::MAX`).
    pub fn capacity(mut self, tokens: u64) -> Self {
        self.capacity = tokens;
        self
    }

    /// `lease_time`: how long a lease lives without [`renew`](RedisBudget::renew) (default 30 s).
    pub fn lease_time(mut self, time: Duration) -> Self {
        self.lease_time = time;
        self
    }

    /// `timeout`: the longest any Redis call may take (default 50 ms).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// `probe_interval`: how often a degraded budget tries Redis again (default 1 s).
    pub fn probe_interval(mut self, interval: Duration) -> Self {
        self.probe_interval = interval;
        self
    }

    /// `failure`: what the budget does while Redis is away (default [`FailureMode::FailClosed`]).
    pub fn failure(mut self, failure: FailureMode) -> Self {
        self.failure = failure;
        self
    }

    /// The budget on the Redis at `url`. It connects lazily: a Redis down now puts the budget
    /// in its failure mode at the first call, it does not fail here.
    ///
    /// # Errors
    /// The URL is not a Redis URL, or a value is zero (`refill`, `period`, `burst`,
    /// `capacity`, `lease_time`, `timeout`), or `LocalFallback` has zero replicas.
    pub async fn connect(self, url: &str) -> Result<RedisBudget, BoxError> {
        let burst = self.burst.unwrap_or(self.refill);
        let zero = [
            ("refill", self.refill == 0),
            ("period", self.period.is_zero()),
            ("burst", burst == 0),
            ("capacity", self.capacity == 0),
            ("lease_time", self.lease_time.is_zero()),
            ("timeout", self.timeout.is_zero()),
            (
                "replicas",
                matches!(self.failure, FailureMode::LocalFallback { replicas: 0 }),
            ),
        ];
        if let Some((field, _)) = zero.iter().find(|(_, bad)| *bad) {
            return Err(format!("fleet budget: `{field}` must be above zero").into());
        }
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1)
            .set_max_delay(self.timeout);
        let conn = ConnectionManager::new_lazy_with_config(client, config)?;
        let interval_us = self.period.as_secs_f64() * 1e6 / self.refill as f64;
        let replicas = match self.failure {
            FailureMode::LocalFallback { replicas } => u64::from(replicas),
            _ => 1,
        };
        let share = |v: u64| (v / replicas).max(1);
        let tag = format!("{}{{{}}}", self.prefix, self.name);
        Ok(RedisBudget {
            conn,
            gauge: metrics::gauge!(FLEET_DEGRADED, "bulkhead" => self.name.clone()),
            rate_key: format!("{tag}:rate"),
            leases_key: format!("{tag}:leases"),
            leased_key: format!("{tag}:leased"),
            name: self.name,
            interval_us,
            tolerance_us: interval_us * burst as f64,
            capacity: self.capacity,
            lease_us: u64::try_from(self.lease_time.as_micros()).unwrap_or(u64::MAX),
            timeout: self.timeout,
            probe_interval: self.probe_interval,
            failure: self.failure,
            fallback: LocalBudget::new(
                share(self.refill),
                self.period,
                share(burst),
                share(self.capacity),
            ),
            degraded: AtomicBool::new(false),
            next_probe: Mutex::new(Instant::now()),
            pending: AtomicI64::new(0),
            unshared: Mutex::new(HashSet::new()),
            rate: redis::Script::new(RATE),
            lease: redis::Script::new(LEASE),
        })
    }
}

type Reply = (i64, i64, i64);

fn grant((allowed, remaining, retry_us): Reply) -> Grant {
    if allowed == 1 {
        Grant::allowed(u64::try_from(remaining).unwrap_or(0))
    } else {
        Grant::refused(Duration::from_micros(u64::try_from(retry_us).unwrap_or(0)))
    }
}

impl RedisBudget {
    /// A builder for the fleet budget named `name` (the same name on every replica).
    pub fn builder(name: impl Into<String>) -> RedisBudgetBuilder {
        RedisBudgetBuilder {
            name: name.into(),
            prefix: "tower-bulkhead:".into(),
            refill: u64::from(u32::MAX),
            period: Duration::from_secs(1),
            burst: None,
            capacity: u64::from(u32::MAX),
            lease_time: Duration::from_secs(30),
            timeout: Duration::from_millis(50),
            probe_interval: Duration::from_secs(1),
            failure: FailureMode::FailClosed,
        }
    }

    /// Whether the budget runs its failure mode now (Redis away).
    #[must_use]
    pub fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::Acquire)
    }

    /// A fresh lease id (random, 64 bits).
    #[must_use]
    pub fn lease_id() -> u64 {
        fastrand::u64(..)
    }

    /// Extends the lease `id` of `cost` tokens by `lease_time` from now, for a long stream.
    /// `false`: the lease is gone (it expired), or Redis could not be reached.
    pub async fn renew(&self, id: u64, cost: u64) -> bool {
        if self.lock_unshared().contains(&id) {
            return true;
        }
        self.leases("renew", id, cost)
            .await
            .is_some_and(|reply| reply.0 == 1)
    }

    fn lock_unshared(&self) -> std::sync::MutexGuard<'_, HashSet<u64>> {
        self.unshared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `call` on Redis within the timeout, unless degraded and not yet due for a probe;
    /// switches in and out of the failure mode.
    async fn shared<T>(&self, call: impl Future<Output = redis::RedisResult<T>>) -> Option<T> {
        if self.is_degraded() {
            let mut next = self
                .next_probe
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            if now < *next {
                return None;
            }
            // This call probes; the others keep the failure mode until it answers.
            *next = now + self.probe_interval;
        }
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => {
                if self.degraded.swap(false, Ordering::AcqRel) {
                    self.gauge.set(0.0);
                    tracing::info!(target: "tower_bulkhead", bulkhead = %self.name, "fleet budget: redis is back; shared budget again");
                }
                Some(value)
            }
            Ok(Err(error)) => {
                self.degrade(&error);
                None
            }
            Err(elapsed) => {
                self.degrade(&elapsed);
                None
            }
        }
    }

    fn degrade(&self, error: &dyn fmt::Display) {
        *self
            .next_probe
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Instant::now() + self.probe_interval;
        if !self.degraded.swap(true, Ordering::AcqRel) {
            self.gauge.set(1.0);
            tracing::warn!(target: "tower_bulkhead", bulkhead = %self.name, %error, failure = ?self.failure, "fleet budget: redis unreachable; failure mode on");
        }
    }

    async fn rate_call(&self, cost: i64, op: &str) -> Option<Reply> {
        let mut conn = self.conn.clone();
        let mut invocation = self.rate.prepare_invoke();
        invocation
            .key(&self.rate_key)
            .arg(self.interval_us)
            .arg(self.tolerance_us)
            .arg(cost)
            .arg(op);
        self.shared(invocation.invoke_async::<Reply>(&mut conn))
            .await
    }

    async fn leases(&self, op: &str, id: u64, cost: u64) -> Option<Reply> {
        let mut conn = self.conn.clone();
        let mut invocation = self.lease.prepare_invoke();
        invocation
            .key(&self.leases_key)
            .key(&self.leased_key)
            .arg(op)
            .arg(format!("{id}:{cost}"))
            .arg(cost)
            .arg(self.capacity)
            .arg(self.lease_us);
        self.shared(invocation.invoke_async::<Reply>(&mut conn))
            .await
    }

    /// Applies the settles kept while Redis was away.
    async fn flush_pending(&self) {
        let delta = self.pending.swap(0, Ordering::AcqRel);
        if delta != 0 && self.rate_call(delta, "settle").await.is_none() {
            self.pending.fetch_add(delta, Ordering::AcqRel);
        }
    }

    fn refused_while_degraded(&self) -> Grant {
        Grant::refused(self.probe_interval)
    }
}

impl BudgetStore for RedisBudget {
    async fn take(&self, cost: u64) -> Grant {
        if self.pending.load(Ordering::Acquire) != 0 && !self.is_degraded() {
            self.flush_pending().await;
        }
        let cost_arg = i64::try_from(cost).unwrap_or(i64::MAX);
        if let Some(reply) = self.rate_call(cost_arg, "take").await {
            return grant(reply);
        }
        match self.failure {
            FailureMode::FailOpen => Grant::allowed(0),
            FailureMode::FailClosed => self.refused_while_degraded(),
            FailureMode::LocalFallback { .. } => self.fallback.take(cost).await,
        }
    }

    async fn settle(&self, estimate: u64, actual: u64) {
        let delta = i64::try_from(i128::from(actual) - i128::from(estimate)).unwrap_or(0);
        if delta == 0 {
            return;
        }
        if matches!(self.failure, FailureMode::LocalFallback { .. }) && self.is_degraded() {
            self.fallback.settle(estimate, actual).await;
        }
        self.pending.fetch_add(delta, Ordering::AcqRel);
        self.flush_pending().await;
    }

    async fn lease(&self, id: u64, cost: u64) -> Grant {
        if let Some(reply) = self.leases("lease", id, cost).await {
            return grant(reply);
        }
        let granted = match self.failure {
            FailureMode::FailOpen => Grant::allowed(0),
            FailureMode::FailClosed => return self.refused_while_degraded(),
            FailureMode::LocalFallback { .. } => self.fallback.lease(id, cost).await,
        };
        if granted.allowed {
            self.lock_unshared().insert(id);
        }
        granted
    }

    async fn release(&self, id: u64, cost: u64) {
        if self.lock_unshared().remove(&id) {
            if matches!(self.failure, FailureMode::LocalFallback { .. }) {
                self.fallback.release(id, cost).await;
            }
            return;
        }
        // Not released (Redis away): the lease expires after lease_time.
        let _ = self.leases("release", id, cost).await;
    }
}

impl fmt::Debug for RedisBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBudget")
            .field("name", &self.name)
            .field("capacity", &self.capacity)
            .field("failure", &self.failure)
            .field("degraded", &self.is_degraded())
            .finish_non_exhaustive()
    }
}
