//! Errors of checkpointed workflows.

use std::fmt;

use crate::store::StoreError;

/// A checkpoint could not be read or written.
#[derive(Debug)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The store failed.
    Store(StoreError),
    /// A step's result could not be encoded.
    Encode {
        /// The step's name.
        step: String,
        /// Why.
        error: serde_json::Error,
    },
    /// The stored step at this position has another name: the workflow's steps changed since
    /// the checkpoint was written.
    Mismatch {
        /// The step's position, from 0.
        index: usize,
        /// The name asked for now.
        step: String,
    },
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Store(err) => write!(f, "checkpoint store failed: {err}"),
            Self::Encode { step, error } => {
                write!(f, "result of step {step:?} cannot be encoded: {error}")
            }
            Self::Mismatch { index, step } => write!(
                f,
                "step {index} ({step:?}) does not match the checkpoint written for this workflow"
            ),
        }
    }
}

impl std::error::Error for CheckpointError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Store(err) => Some(err),
            Self::Encode { error, .. } => Some(error),
            Self::Mismatch { .. } => None,
        }
    }
}

impl From<StoreError> for CheckpointError {
    fn from(err: StoreError) -> Self {
        Self::Store(err)
    }
}

/// A workflow step failed, or its checkpoint could not be kept.
#[derive(Debug)]
pub enum WorkflowError<E> {
    /// The step itself failed; nothing was recorded, so a rerun runs it again.
    Step {
        /// The step's name.
        step: String,
        /// The step's error.
        error: E,
    },
    /// The checkpoint could not be read or written.
    Checkpoint(CheckpointError),
}

impl<E: fmt::Display> fmt::Display for WorkflowError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Step { step, error } => write!(f, "step {step:?} failed: {error}"),
            Self::Checkpoint(err) => err.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for WorkflowError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Step { error, .. } => Some(error),
            Self::Checkpoint(err) => Some(err),
        }
    }
}

impl<E> From<CheckpointError> for WorkflowError<E> {
    fn from(err: CheckpointError) -> Self {
        Self::Checkpoint(err)
    }
}
