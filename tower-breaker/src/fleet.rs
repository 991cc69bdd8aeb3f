//! Fleet-wide operator overrides through Redis: force-open, disable or reset a named breaker
//! on every replica at once.

use std::fmt;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::CircuitBreakerHandle;

/// An override an operator sets for a named breaker on every replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Override {
    /// [`CircuitBreakerHandle::force_open`]: reject every call.
    ForceOpen,
    /// [`CircuitBreakerHandle::disable`]: pass every call, never trip.
    Disable,
    /// [`CircuitBreakerHandle::reset`]: back to closed with fresh counters.
    Reset,
}

impl Override {
    const fn as_str(self) -> &'static str {
        match self {
            Self::ForceOpen => "force_open",
            Self::Disable => "disable",
            Self::Reset => "reset",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "force_open" => Some(Self::ForceOpen),
            "disable" => Some(Self::Disable),
            "reset" => Some(Self::Reset),
            _ => None,
        }
    }

    fn apply(self, handle: &CircuitBreakerHandle) {
        match self {
            Self::ForceOpen => handle.force_open(),
            Self::Disable => handle.disable(),
            Self::Reset => handle.reset(),
        }
    }
}

/// A Redis call of [`FleetOverrides`] failed or timed out.
#[derive(Debug)]
pub struct FleetError(Box<dyn std::error::Error + Send + Sync>);

impl fmt::Display for FleetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fleet override failed: {}", self.0)
    }
}

impl std::error::Error for FleetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// Sets the override and its generation, then announces it, in one step. The generation is
/// the server's clock in microseconds (above the last one), so it still grows after Redis
/// restarts empty.
const SET: &str = r"
local t = redis.call('TIME')
local gen = tonumber(t[1]) * 1000000 + tonumber(t[2])
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
if gen <= last then gen = last + 1 end
local g = string.format('%.0f', gen)
redis.call('SET', KEYS[2], g)
local value = g .. ':' .. ARGV[1]
redis.call('SET', KEYS[1], value)
redis.call('PUBLISH', ARGV[2], value)
return 1";

/// Operator overrides shared by every replica through Redis (OSS 7+ or Valkey; no modules).
///
/// An operator (or an admin endpoint on any replica) calls [`force_open`](Self::force_open),
/// [`disable`](Self::disable) or [`reset`](Self::reset) with a breaker's name; every replica
/// that [`watch`](Self::watch)es a breaker of that name applies it through its
/// [`CircuitBreakerHandle`], within one message (pub/sub) or, if the message is lost (a
/// replica reconnecting, Redis restarting), within `poll_interval` (default 5 s) from the
/// stored override. A replica that starts later applies the current override at once.
///
/// Each override is stored as `<generation>:<override>` under
/// `{tower-breaker:<namespace>}:override:<name>` and published on
/// `tower-breaker:<namespace>:override:<name>`; a replica applies each generation once, so a
/// reset is not repeated at every poll.
///
/// **The breakers' counters stay local.** A breaker measures the dependency as its own
/// replica sees it: one replica with a bad network path, a bad DNS answer or an overloaded
/// host must open its own circuit, not everyone's. Sharing the counters would let one sick
/// replica stop the whole fleet from calling a healthy dependency, and would put a Redis
/// round trip on every call. What an operator decides, by contrast, is one decision for the
/// whole fleet.
///
/// ```no_run
/// use tower_breaker::{CircuitBreakerLayer, fleet::FleetOverrides};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let layer = CircuitBreakerLayer::builder().name("payments").build().unwrap();
/// let overrides = FleetOverrides::builder("redis://127.0.0.1:6379/", "shop")
///     .connect()
///     .await
///     .unwrap();
/// // Every replica: apply the fleet's overrides to this breaker while `_watch` lives.
/// let _watch = overrides.watch(layer.handle());
/// // An operator, from any replica:
/// overrides.force_open("payments").await.unwrap();
/// # }
/// ```
#[derive(Clone)]
pub struct FleetOverrides {
    client: redis::Client,
    conn: ConnectionManager,
    namespace: String,
    poll_interval: Duration,
    timeout: Duration,
    script: redis::Script,
}

/// Builds [`FleetOverrides`]; see [`FleetOverrides::builder`].
#[derive(Clone, Debug)]
#[must_use]
pub struct FleetOverridesBuilder {
    url: String,
    namespace: String,
    poll_interval: Duration,
    timeout: Duration,
}

impl FleetOverridesBuilder {
    /// `poll_interval`: how often a watcher reads the stored override, in case a message was
    /// lost (default 5 s; at least 10 ms).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// `timeout`: the longest a Redis call may take (default 1 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Connects.
    ///
    /// # Errors
    /// The URL is not a Redis URL, or Redis does not answer within the timeout.
    pub async fn connect(self) -> Result<FleetOverrides, FleetError> {
        let client = redis::Client::open(self.url.as_str()).map_err(|e| FleetError(Box::new(e)))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1);
        let conn = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(|e| FleetError(Box::new(e)))?;
        Ok(FleetOverrides {
            client,
            conn,
            namespace: self.namespace,
            poll_interval: self.poll_interval,
            timeout: self.timeout,
            script: redis::Script::new(SET),
        })
    }
}

impl FleetOverrides {
    /// A builder for overrides on the Redis at `url`, for the breakers of `namespace` (one
    /// service, one environment).
    pub fn builder(url: impl Into<String>, namespace: impl Into<String>) -> FleetOverridesBuilder {
        FleetOverridesBuilder {
            url: url.into(),
            namespace: namespace.into(),
            poll_interval: Duration::from_secs(5),
            timeout: Duration::from_secs(1),
        }
    }

    fn key(&self, name: &str) -> String {
        format!("{{tower-breaker:{}}}:override:{name}", self.namespace)
    }

    fn generation_key(&self) -> String {
        format!("{{tower-breaker:{}}}:generation", self.namespace)
    }

    fn channel(&self, name: &str) -> String {
        format!("tower-breaker:{}:override:{name}", self.namespace)
    }

    /// Forces the breakers named `name` open on every replica.
    ///
    /// # Errors
    /// Redis failed or did not answer within the timeout.
    pub async fn force_open(&self, name: &str) -> Result<(), FleetError> {
        self.set(name, Override::ForceOpen).await
    }

    /// Disables the breakers named `name` on every replica.
    ///
    /// # Errors
    /// Redis failed or did not answer within the timeout.
    pub async fn disable(&self, name: &str) -> Result<(), FleetError> {
        self.set(name, Override::Disable).await
    }

    /// Resets the breakers named `name` on every replica (closed, fresh counters; this also
    /// ends a forced or disabled state).
    ///
    /// # Errors
    /// Redis failed or did not answer within the timeout.
    pub async fn reset(&self, name: &str) -> Result<(), FleetError> {
        self.set(name, Override::Reset).await
    }

    /// Sets `what` for the breakers named `name` on every replica.
    ///
    /// # Errors
    /// Redis failed or did not answer within the timeout.
    pub async fn set(&self, name: &str, what: Override) -> Result<(), FleetError> {
        let mut conn = self.conn.clone();
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(self.key(name))
            .key(self.generation_key())
            .arg(what.as_str())
            .arg(self.channel(name));
        let call = invocation.invoke_async::<i64>(&mut conn);
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(FleetError(Box::new(e))),
            Err(e) => Err(FleetError(Box::new(e))),
        }
    }

    /// Applies the fleet's overrides to `handle`'s breaker (by its name) until the returned
    /// guard is dropped. Spawns one task on the current tokio runtime, with one pub/sub
    /// connection.
    ///
    /// # Panics
    /// Called outside a tokio runtime.
    pub fn watch(&self, handle: CircuitBreakerHandle) -> FleetWatch {
        let task = tokio::spawn(watch(self.clone(), handle));
        FleetWatch { task }
    }

    async fn stored(&self, name: &str) -> Option<(u64, Override)> {
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.key(name));
        let get = cmd.query_async::<Option<String>>(&mut conn);
        match tokio::time::timeout(self.timeout, get).await {
            Ok(Ok(Some(value))) => parse(&value),
            Ok(Ok(None)) => None,
            Ok(Err(error)) => {
                tracing::debug!(target: "tower_breaker", %error, "fleet override not read");
                None
            }
            Err(_) => None,
        }
    }
}

fn parse(value: &str) -> Option<(u64, Override)> {
    let (generation, what) = value.split_once(':')?;
    Some((generation.parse().ok()?, Override::parse(what)?))
}

impl fmt::Debug for FleetOverrides {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetOverrides")
            .field("namespace", &self.namespace)
            .field("poll_interval", &self.poll_interval)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Applies the fleet's overrides to one breaker while it lives; see
/// [`FleetOverrides::watch`]. Dropping it stops the watching.
#[must_use = "the overrides are applied only while the watch lives"]
pub struct FleetWatch {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FleetWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl fmt::Debug for FleetWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetWatch").finish_non_exhaustive()
    }
}

async fn watch(fleet: FleetOverrides, handle: CircuitBreakerHandle) {
    let name = handle.name().to_owned();
    let channel = fleet.channel(&name);
    let mut applied = 0_u64;
    let mut apply = |found: Option<(u64, Override)>| {
        if let Some((generation, what)) = found
            && generation > applied
        {
            applied = generation;
            tracing::info!(target: "tower_breaker", breaker = %name, generation, what = what.as_str(), "fleet override applied");
            what.apply(&handle);
        }
    };
    let mut poll = tokio::time::interval(fleet.poll_interval);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Subscribe first, then read the stored override: nothing set in between is missed.
        let subscribed = async {
            let mut pubsub = fleet.client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let mut messages = match tokio::time::timeout(fleet.timeout, subscribed).await {
            Ok(Ok(pubsub)) => Some(pubsub.into_on_message()),
            _ => None,
        };
        apply(fleet.stored(&name).await);
        loop {
            let message = async {
                match messages.as_mut() {
                    Some(stream) => stream.next().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                message = message => match message {
                    Some(message) => {
                        apply(message.get_payload::<String>().ok().as_deref().and_then(parse));
                    }
                    // The subscription ended (Redis went away): subscribe again after a poll.
                    None => {
                        poll.tick().await;
                        break;
                    }
                },
                _ = poll.tick() => {
                    apply(fleet.stored(&name).await);
                    if messages.is_none() {
                        break;
                    }
                }
            }
        }
    }
}
