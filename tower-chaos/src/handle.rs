//! The operator's handle: the kill switch, live rates, hung calls, counters.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use crate::ConfigError;
use crate::core::Shared;
use crate::decide::{rate_of, threshold};
use crate::error::check_rate;
use crate::fault::FaultKind;

/// What a handle needs of a layer, without its request and response types.
trait Control: Send + Sync {
    fn shared_name(&self) -> &str;
    fn arm(&self);
    fn disarm(&self, release: Option<bool>);
    fn is_armed(&self) -> bool;
    fn set_dry_run(&self, dry_run: bool);
    fn is_dry_run(&self) -> bool;
    fn set_rate(&self, fault: &str, rate: f64) -> Result<(), ConfigError>;
    fn release_hung(&self);
    fn release_held(&self);
    fn stats(&self) -> ChaosStats;
}

impl<Req, Res> Control for Shared<Req, Res> {
    fn shared_name(&self) -> &str {
        &self.name
    }
    fn arm(&self) {
        Shared::arm(self);
    }
    fn disarm(&self, release: Option<bool>) {
        Shared::disarm(self, "handle", release.unwrap_or(self.release_on_disarm));
    }
    fn is_armed(&self) -> bool {
        !self.expire()
    }
    fn set_dry_run(&self, dry_run: bool) {
        self.dry_run.store(dry_run, Relaxed);
    }
    fn is_dry_run(&self) -> bool {
        self.dry_run.load(Relaxed)
    }
    fn set_rate(&self, name: &str, rate: f64) -> Result<(), ConfigError> {
        let fault = self
            .faults
            .iter()
            .find(|f| &*f.name == name)
            .ok_or_else(|| ConfigError::UnknownFault(name.to_owned()))?;
        let rate = check_rate(|| format!("faults.{name}.rate"), rate)?;
        fault.threshold.store(threshold(rate), Relaxed);
        Ok(())
    }
    fn release_hung(&self) {
        Shared::release_hung(self);
    }
    fn release_held(&self) {
        Shared::release_held(self);
    }
    fn stats(&self) -> ChaosStats {
        ChaosStats {
            armed: !self.expire(),
            dry_run: self.dry_run.load(Relaxed),
            guard_tripped: self.guard_tripped.load(Relaxed),
            guard_trips: self.guard_trips.load(Relaxed),
            calls: self.seq.load(Relaxed),
            active: self.active.load(Relaxed),
            overflow: self.overflow.load(Relaxed),
            no_runtime: self.no_runtime.load(Relaxed),
            faults: self
                .faults
                .iter()
                .map(|f| FaultStats {
                    name: f.name.to_string(),
                    kind: f.kind,
                    rate: rate_of(f.threshold.load(Relaxed)),
                    injected: f.injected.load(Relaxed),
                    dry_run: f.dry_run.load(Relaxed),
                })
                .collect(),
        }
    }
}

/// A handle on one chaos layer: the kill switch and the live controls.
///
/// Cheap to clone; every clone controls the same layer. The guard can disarm the layer by
/// itself; only [`arm`](Self::arm) re-arms it.
///
/// ```
/// use tower_chaos::{ChaosLayer, Fault};
///
/// let layer = ChaosLayer::<u32, u32>::builder()
///     .fault(Fault::abort().rate(0.1))
///     .build()
///     .unwrap();
/// let handle = layer.handle();
/// assert!(!handle.is_armed()); // safe by default
/// handle.arm();
/// handle.set_rate("abort", 0.5).unwrap();
/// assert!(handle.set_rate("abort", 2.0).is_err());
/// assert!(handle.set_rate("latency", 0.5).is_err()); // no such fault
/// handle.disarm();
/// assert_eq!(handle.stats().faults[0].rate, 0.5);
/// ```
#[derive(Clone)]
#[must_use]
pub struct ChaosHandle {
    control: Arc<dyn Control>,
}

impl ChaosHandle {
    pub(crate) fn new<Req: 'static, Res: 'static>(shared: Arc<Shared<Req, Res>>) -> Self {
        Self { control: shared }
    }

    /// The layer's name.
    #[must_use]
    pub fn name(&self) -> &str {
        self.control.shared_name()
    }

    /// Arms the layer: faults fire from the next call. Sequence numbers and schedules restart
    /// from 0, the guard's window starts afresh, and a guard trip is cleared.
    pub fn arm(&self) {
        self.control.arm();
    }

    /// Disarms the layer (the kill switch): the next calls pass untouched, and (unless the
    /// layer was built with `release_on_disarm(false)`) every call held by a hang or latency
    /// fault is released and goes on to the service at once. Other faults already decided
    /// (an error, a status, a body fault) finish as decided.
    ///
    /// ```
    /// use tower::{Layer, Service, ServiceExt};
    /// use tower_chaos::{ChaosLayer, Fault};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), tower_chaos::BoxError> {
    /// let chaos = ChaosLayer::<u32, u32>::builder()
    ///     .fault(Fault::hang().rate(1.0))
    ///     .armed(true)
    ///     .build()?;
    /// let handle = chaos.handle();
    /// let mut svc = chaos.layer(tower::service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n) }));
    ///
    /// let hung = tokio::spawn(svc.ready().await?.call(7));
    /// tokio::task::yield_now().await;
    /// handle.disarm(); // the kill switch also lets the hung call go
    /// assert_eq!(hung.await??, 7);
    /// # Ok(()) }
    /// ```
    pub fn disarm(&self) {
        self.control.disarm(None);
    }

    /// Disarms the layer and says whether held calls are released, whatever the layer's
    /// `release_on_disarm` says: `disarm_with(false)` lets hung and delayed calls finish as
    /// decided.
    pub fn disarm_with(&self, release_held: bool) {
        self.control.disarm(Some(release_held));
    }

    /// Whether the layer is armed (after `auto_disarm_after`, it no longer is).
    #[must_use]
    pub fn is_armed(&self) -> bool {
        self.control.is_armed()
    }

    /// Dry run on or off: decide, count and log, but inject nothing.
    pub fn set_dry_run(&self, dry_run: bool) {
        self.control.set_dry_run(dry_run);
    }

    /// Whether the layer is in dry-run mode.
    #[must_use]
    pub fn is_dry_run(&self) -> bool {
        self.control.is_dry_run()
    }

    /// Changes fault `fault`'s rate, live.
    ///
    /// # Errors
    /// [`ConfigError::UnknownFault`], or [`ConfigError::Rate`] for a rate outside 0..=1.
    pub fn set_rate(&self, fault: &str, rate: f64) -> Result<(), ConfigError> {
        self.control.set_rate(fault, rate)
    }

    /// Releases every hung call: each goes on to the service's answer.
    pub fn release_hung(&self) {
        self.control.release_hung();
    }

    /// Releases every call held by a hang or a latency fault, without disarming: each goes on
    /// to the service at once.
    pub fn release_held(&self) {
        self.control.release_held();
    }

    /// Counters and settings, read now.
    #[must_use]
    pub fn stats(&self) -> ChaosStats {
        self.control.stats()
    }

    /// Whether the guard disarmed the layer (cleared by [`arm`](Self::arm)).
    #[must_use]
    pub fn guard_tripped(&self) -> bool {
        self.control.stats().guard_tripped
    }
}

impl fmt::Debug for ChaosHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChaosHandle")
            .field("name", &self.name())
            .field("armed", &self.is_armed())
            .finish()
    }
}

/// A chaos layer's counters, read through [`ChaosHandle::stats`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ChaosStats {
    /// Armed now.
    pub armed: bool,
    /// In dry-run mode now.
    pub dry_run: bool,
    /// The guard disarmed the layer, and it has not been re-armed since.
    pub guard_tripped: bool,
    /// Times the guard disarmed the layer (since it was built).
    pub guard_trips: u64,
    /// Calls seen since the layer was last armed.
    pub calls: u64,
    /// Faulted calls in progress now (a call with a body fault until its body ends).
    pub active: u32,
    /// Faults not injected because `max_active_faults` were in progress.
    pub overflow: u64,
    /// Faults not injected because they needed a tokio runtime (a timer) and the call was
    /// made outside one.
    pub no_runtime: u64,
    /// Per fault, in the layer's order.
    pub faults: Vec<FaultStats>,
}

impl ChaosStats {
    /// Faults injected, all faults together.
    #[must_use]
    pub fn injected(&self) -> u64 {
        self.faults.iter().map(|f| f.injected).sum()
    }

    /// The counters of fault `name`.
    #[must_use]
    pub fn fault(&self, name: &str) -> Option<&FaultStats> {
        self.faults.iter().find(|f| f.name == name)
    }
}

/// One fault's counters (since the layer was built).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct FaultStats {
    /// The fault's name.
    pub name: String,
    /// Its kind.
    pub kind: FaultKind,
    /// Its rate now.
    pub rate: f64,
    /// Times it was injected.
    pub injected: u64,
    /// Times it fired in dry-run mode (decided, not injected).
    pub dry_run: u64,
}
