//! The layer: holds the chaos state and wraps services with it.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use tower_layer::Layer;
use tower_outcome::BoxErrorAnswer;

use crate::core::Shared;
use crate::{ChaosBuilder, ChaosHandle};

/// Injects faults into the calls of the services it wraps, once armed.
///
/// The state (armed or not, rates, counters, the guard) is created with this value: every
/// service it wraps, and every clone of those, share it. `Req` and `Res` are the wrapped
/// service's request and response types (the faults' closures see them); `A` is the
/// [answer mode](tower_outcome::Answer).
///
/// Without the `inject` feature (on by default), [`layer`](Layer::layer) returns the service
/// unchanged: the handle and configuration still compile, and nothing is ever injected.
///
/// ```
/// use tower::{Service, ServiceBuilder, ServiceExt};
/// use tower_chaos::{ChaosLayer, Fault, Schedule};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), tower_chaos::BoxError> {
/// let chaos = ChaosLayer::<u32, u32>::builder()
///     .fault(Fault::error(|| "injected".into()).rate(1.0).schedule(Schedule::FirstCalls(1)))
///     .build()?;
/// let handle = chaos.handle();
/// let mut svc = ServiceBuilder::new()
///     .layer(chaos)
///     .service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n + 1) });
///
/// assert_eq!(svc.ready().await?.call(1).await?, 2); // not armed: nothing injected
/// handle.arm();
/// assert!(svc.ready().await?.call(1).await.is_err()); // the first call after arming
/// assert_eq!(svc.ready().await?.call(1).await?, 2);
/// # Ok(()) }
/// ```
#[must_use]
pub struct ChaosLayer<Req, Res, A = BoxErrorAnswer> {
    pub(crate) shared: Arc<Shared<Req, Res>>,
    _answer: PhantomData<fn() -> A>,
}

impl<Req, Res: 'static> ChaosLayer<Req, Res> {
    /// A builder: no faults, not armed, guard on with its defaults.
    pub fn builder() -> ChaosBuilder<Req, Res> {
        ChaosBuilder::new()
    }

    /// A layer from a configuration (for example one read from JSON), for a service of any
    /// request and response type. For an HTTP service answering its callers, use
    /// [`ChaosConfig::http_layer`](crate::ChaosConfig::http_layer).
    ///
    /// # Errors
    /// The first invalid value, naming its field.
    pub fn from_config(config: &crate::ChaosConfig) -> Result<Self, crate::ConfigError> {
        config.build_layer()
    }
}

impl<Req, Res, A> ChaosLayer<Req, Res, A> {
    pub(crate) const fn from_shared(shared: Arc<Shared<Req, Res>>) -> Self {
        Self {
            shared,
            _answer: PhantomData,
        }
    }

    /// The layer's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.shared.name
    }
}

impl<Req: 'static, Res: 'static, A> ChaosLayer<Req, Res, A> {
    /// A handle: arm, disarm, change rates, release hung calls, read counters.
    pub fn handle(&self) -> ChaosHandle {
        ChaosHandle::new(self.shared.clone())
    }
}

impl<Req, Res, A> Clone for ChaosLayer<Req, Res, A> {
    fn clone(&self) -> Self {
        Self::from_shared(Arc::clone(&self.shared))
    }
}

impl<Req, Res, A> fmt::Debug for ChaosLayer<Req, Res, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChaosLayer")
            .field("shared", &self.shared)
            .field("answer", &std::any::type_name::<A>())
            .finish()
    }
}

#[cfg(feature = "inject")]
impl<S, Req, Res, A> Layer<S> for ChaosLayer<Req, Res, A> {
    type Service = crate::Chaos<S, Req, Res, A>;

    fn layer(&self, inner: S) -> Self::Service {
        crate::Chaos::new(inner, Arc::clone(&self.shared))
    }
}

/// Injection compiled out: the service is returned as it is.
#[cfg(not(feature = "inject"))]
impl<S, Req, Res, A> Layer<S> for ChaosLayer<Req, Res, A> {
    type Service = S;

    fn layer(&self, inner: S) -> S {
        inner
    }
}
