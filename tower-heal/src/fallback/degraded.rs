//! Degradation levels and the marker a fallback's answer carries.

use std::fmt;
use std::sync::Arc;

/// How much of its function a component still delivers, in five levels.
///
/// The goal of a chain of fallbacks is never to drop from [`Full`](Self::Full) straight to
/// [`Failed`](Self::Failed) while a level in between can answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(u8)]
pub enum DegradationLevel {
    /// 0: every feature works, fresh data.
    #[default]
    Full = 0,
    /// 1: slight, such as cached responses.
    Slight = 1,
    /// 2: moderate, partial or read-only.
    Moderate = 2,
    /// 3: minimal, static content.
    Minimal = 3,
    /// 4: failed; no fallback answered.
    Failed = 4,
}

impl DegradationLevel {
    /// All levels, in order.
    pub const ALL: [Self; 5] = [
        Self::Full,
        Self::Slight,
        Self::Moderate,
        Self::Minimal,
        Self::Failed,
    ];

    /// The level as a number, 0 to 4.
    #[must_use]
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// The level for a number (values above 4 are `Failed`).
    #[must_use]
    pub const fn from_u8(level: u8) -> Self {
        match level {
            0 => Self::Full,
            1 => Self::Slight,
            2 => Self::Moderate,
            3 => Self::Minimal,
            _ => Self::Failed,
        }
    }

    /// The metric label: `"0"` to `"4"`.
    #[must_use]
    pub const fn as_label(self) -> &'static str {
        match self {
            Self::Full => "0",
            Self::Slight => "1",
            Self::Moderate => "2",
            Self::Minimal => "3",
            Self::Failed => "4",
        }
    }

    /// A word for people: `full`, `slight`, `moderate`, `minimal`, `failed`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Slight => "slight",
            Self::Moderate => "moderate",
            Self::Minimal => "minimal",
            Self::Failed => "failed",
        }
    }
}

impl fmt::Display for DegradationLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.as_u8(), self.as_str())
    }
}

/// The marker on a response answered by a fallback: which component degraded, and how far.
///
/// A [`FallbackLayer`](crate::FallbackLayer) puts it on the response through [`Degradable`]:
/// an `http::Response` carries it as an extension (and, under `.http()`, as the
/// [`DEGRADED_HEADER`] header).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Degraded {
    // One pointer, so `Option<Degraded>` is one word: responses that carry room for a marker
    // (such as `Marked<T>`) stay small on the happy path, where no marker is set.
    inner: Arc<Inner>,
}

#[derive(Debug, PartialEq, Eq)]
struct Inner {
    component: Arc<str>,
    level: DegradationLevel,
}

impl Degraded {
    /// A marker for `component` at `level`.
    #[must_use]
    pub fn new(component: impl Into<Arc<str>>, level: DegradationLevel) -> Self {
        Self {
            inner: Arc::new(Inner {
                component: component.into(),
                level,
            }),
        }
    }

    /// The component that degraded (the fallback layer's `component` name).
    #[must_use]
    pub fn component(&self) -> &str {
        &self.inner.component
    }

    /// How far it degraded.
    #[must_use]
    pub fn level(&self) -> DegradationLevel {
        self.inner.level
    }

    /// The header value: `<component>; level=<n>`.
    #[must_use]
    pub fn header_value(&self) -> String {
        format!(
            "{}; level={}",
            self.inner.component,
            self.inner.level.as_u8()
        )
    }
}

/// The header a fallback's answer carries under `.http()`: `x-degraded: <component>; level=<n>`.
pub const DEGRADED_HEADER: &str = "x-degraded";

/// A response that can carry a [`Degraded`] marker, or goes behind a fallback unmarked.
///
/// Implemented for `http::Response<B>` (an extension) and for [`Marked<T>`], which wraps any
/// value and carries the marker. Plain types (numbers, `bool`, `char`, `()`, `String`,
/// `&'static str`, `Vec<T>`, `Box<T>`, `Arc<T>`, `Option<T>`, `Result<T, E>`, `Bytes`) go behind
/// a fallback as they are, unmarked: which level answered shows in the metrics and events,
/// not on the answer. Your own type takes either road: an empty impl (unmarked), or the two
/// methods over a field of its own.
///
/// ```
/// use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
/// use tower_heal::{Degradable, DegradationLevel, FallbackLayer};
///
/// #[derive(Debug, PartialEq)]
/// struct Quote(u32);
/// impl Degradable for Quote {} // unmarked
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let fallback = service_fn(|_: u32| async { Ok::<_, std::io::Error>(Quote(0)) });
/// let mut svc = ServiceBuilder::new()
///     .layer(FallbackLayer::new("quotes", DegradationLevel::Minimal, fallback))
///     .service_fn(|_: u32| async { Err::<Quote, _>(std::io::Error::other("down")) });
/// assert_eq!(svc.ready().await.unwrap().call(7).await.unwrap(), Quote(0));
/// # }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not say whether it can carry a fallback's `Degraded` marker",
    label = "the fallback's answers are of this type",
    note = "to go behind a fallback unmarked, add `impl tower_heal::Degradable for {Self} {{}}`",
    note = "to carry the marker, wrap it in `tower_heal::Marked<{Self}>` or implement `mark_degraded` and `degraded` over a field"
)]
pub trait Degradable {
    /// Marks the response; `header` asks for the visible header too (where the type has one).
    /// Does nothing by default: the answer goes unmarked.
    fn mark_degraded(&mut self, degraded: Degraded, header: bool) {
        let _ = (degraded, header);
    }

    /// The marker, if a fallback answered (`None` by default: a type that does not keep the
    /// marker never shows one).
    fn degraded(&self) -> Option<&Degraded> {
        None
    }

    /// Whether the response is a rejection answered by one of the family's layers (an open
    /// breaker under `.http()`): it then counts as a rejection, not as the dependency's answer.
    fn is_rejection(&self) -> bool {
        false
    }

    /// Whether the response is a good answer, worth keeping as the last good one by
    /// [`LastGood::record`](crate::LastGood::record): by default any response that is not a
    /// rejection; for `http::Response`, a `2xx` status (a 503 the retries left is no answer
    /// to serve again later).
    fn is_good_answer(&self) -> bool {
        !self.is_rejection()
    }
}

/// Any value with room for a [`Degraded`] marker, for services whose responses are not
/// `http::Response`.
///
/// ```
/// use tower_heal::{Degradable, Marked};
///
/// let answer = Marked::new(42);
/// assert!(answer.degraded().is_none());
/// assert_eq!(answer.value, 42);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Marked<T> {
    /// The response itself.
    pub value: T,
    /// The marker, if a fallback answered.
    pub degraded: Option<Degraded>,
}

impl<T> Marked<T> {
    /// An unmarked value.
    pub const fn new(value: T) -> Self {
        Self {
            value,
            degraded: None,
        }
    }
}

impl<T> From<T> for Marked<T> {
    fn from(value: T) -> Self {
        Self::new(value)
    }
}

/// Plain types go behind a fallback unmarked.
macro_rules! unmarked {
    ($($ty:ty),* $(,)?) => {$(
        impl Degradable for $ty {}
    )*};
}

unmarked!(
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64,
    bool,
    char,
    (),
    String,
    &'static str,
);

impl<T> Degradable for Vec<T> {}
impl<T: ?Sized> Degradable for Box<T> {}
impl<T: ?Sized> Degradable for Arc<T> {}
impl<T> Degradable for Option<T> {}
impl<T, E> Degradable for Result<T, E> {}
#[cfg(feature = "http")]
impl Degradable for bytes::Bytes {}

impl<T> Degradable for Marked<T> {
    fn mark_degraded(&mut self, degraded: Degraded, _header: bool) {
        self.degraded = Some(degraded);
    }

    fn degraded(&self) -> Option<&Degraded> {
        self.degraded.as_ref()
    }
}

#[cfg(feature = "http")]
impl<B> Degradable for http::Response<B> {
    fn mark_degraded(&mut self, degraded: Degraded, header: bool) {
        if header && let Ok(value) = http::HeaderValue::from_str(&degraded.header_value()) {
            self.headers_mut().insert(DEGRADED_HEADER, value);
        }
        self.extensions_mut().insert(degraded);
    }

    fn degraded(&self) -> Option<&Degraded> {
        self.extensions().get::<Degraded>()
    }

    fn is_rejection(&self) -> bool {
        self.extensions().get::<tower_outcome::Rejected>().is_some()
    }

    fn is_good_answer(&self) -> bool {
        self.status().is_success() && !self.is_rejection()
    }
}
