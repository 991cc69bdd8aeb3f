//! Errors of the result stores.

use std::fmt;

/// A result store could not do what was asked.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// The record is larger than the store takes.
    TooLarge {
        /// The record's size in bytes.
        bytes: usize,
        /// The most the store takes.
        max: usize,
    },
    /// The store's file is damaged beyond use (not a database, failed integrity check).
    Corrupt(String),
    /// The storage backend failed (I/O, locking).
    Backend(Box<dyn std::error::Error + Send + Sync>),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { bytes, max } => {
                write!(
                    f,
                    "record of {bytes} bytes is larger than the store's limit of {max}"
                )
            }
            Self::Corrupt(why) => write!(f, "result store is corrupt: {why}"),
            Self::Backend(err) => write!(f, "result store failed: {err}"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Backend(err) => Some(&**err),
            _ => None,
        }
    }
}
