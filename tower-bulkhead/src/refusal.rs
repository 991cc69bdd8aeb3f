//! Why a call was not admitted at once.

use std::time::Duration;

use tower_outcome::Reason;

/// Why a call was not admitted at once.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Denied {
    pub(crate) reason: Reason,
    pub(crate) retry_after: Option<Duration>,
    /// `retry_after` is when the rate budget will have enough, not just a hint.
    pub(crate) until_refill: bool,
}
