//! Checkpoint recovery: a multi-step workflow records each completed step's result; run
//! again after a crash, it skips the completed steps (their stored results are returned) and
//! resumes at the first unfinished one.
//!
//! See [`Workflow`]. The results live in a [`ResultStore`](crate::store::ResultStore): a
//! `SqliteStore` to survive a crash of the process.

mod error;
mod workflow;

pub use error::{CheckpointError, WorkflowError};
pub use workflow::Workflow;
