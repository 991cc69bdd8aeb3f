//! The workflow: numbered, named steps whose results are checkpointed.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tower_service::Service;

use super::{CheckpointError, WorkflowError};
use crate::store::{Fnv, Record, ResultStore};

/// A multi-step workflow with an id whose completed steps are checkpointed in a store.
///
/// Each [`step`](Self::step) (an async closure) or [`call`](Self::call) (a tower service call)
/// has a name and a position. When it completes, its result (serde data) is committed to the
/// store before it is returned. Run again with the same id after a crash, the workflow
/// returns the stored results of completed steps without running them, and runs from the
/// first unfinished step on. The results of
/// earlier steps are the state the later steps start from.
///
/// A stored result that no longer decodes (damaged, or the type changed) is ignored: the step
/// runs again. A stored step with another name at the same position is a
/// [`CheckpointError::Mismatch`]. [`complete`](Self::complete) removes the checkpoints.
///
/// ```
/// use std::sync::Arc;
/// use tower_heal::checkpoint::Workflow;
/// use tower_heal::store::MemoryStore;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = Arc::new(MemoryStore::default());
///
/// // A first run fails in step 2.
/// let mut run = Workflow::open(store.clone(), "incident-42");
/// let logs: Vec<String> = run.step("gather", || async { Ok::<_, std::io::Error>(vec!["oom".into()]) }).await?;
/// let failed = run.step("analyze", || async { Err::<String, _>(std::io::Error::other("llm timeout")) }).await;
/// assert!(failed.is_err());
///
/// // The rerun skips step 1 (its stored result comes back) and resumes at step 2.
/// let mut run = Workflow::open(store.clone(), "incident-42");
/// let again: Vec<String> = run.step("gather", || async { unreachable!("step 1 is not re-run") as Result<_, std::io::Error> }).await?;
/// assert_eq!(again, logs);
/// let cause: String = run.step("analyze", || async { Ok::<_, std::io::Error>(format!("cause: {}", again[0])) }).await?;
/// assert_eq!(cause, "cause: oom");
/// assert_eq!(run.resumed_steps(), 1);
/// run.complete()?;
/// # Ok(()) }
/// ```
pub struct Workflow {
    id: String,
    store: Arc<dyn ResultStore>,
    next: usize,
    resumed: usize,
}

impl Workflow {
    /// The workflow `id`, checkpointed in `store`.
    pub fn open(store: impl ResultStore, id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            store: Arc::new(store),
            next: 0,
            resumed: 0,
        }
    }

    /// The workflow's id.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Steps skipped so far because a checkpoint had their result.
    #[must_use]
    pub const fn resumed_steps(&self) -> usize {
        self.resumed
    }

    /// Steps done or skipped so far.
    #[must_use]
    pub const fn position(&self) -> usize {
        self.next
    }

    fn key(&self, index: usize) -> String {
        format!("ckpt:{}:{index}", self.id)
    }

    /// The stored result of the step at the current position, if it completed before.
    fn stored<T: DeserializeOwned>(&mut self, name: &str) -> Result<Option<T>, CheckpointError> {
        let index = self.next;
        let Some(record) = self.store.get(&self.key(index))? else {
            return Ok(None);
        };
        if record.fingerprint != step_fingerprint(name) {
            return Err(CheckpointError::Mismatch {
                index,
                step: name.to_owned(),
            });
        }
        match serde_json::from_slice(&record.value) {
            Ok(value) => {
                if self.resumed == 0 {
                    crate::metrics::resume_counter().increment(1);
                    tracing::info!(target: "tower_heal", workflow = %self.id, step = name, index, "workflow resumed from its checkpoint");
                }
                self.resumed += 1;
                self.next += 1;
                tracing::debug!(target: "tower_heal", workflow = %self.id, step = name, index, "step skipped: completed before");
                Ok(Some(value))
            }
            Err(error) => {
                tracing::warn!(target: "tower_heal", workflow = %self.id, step = name, index, %error, "stored step result does not decode; the step runs again");
                Ok(None)
            }
        }
    }

    fn record<T: Serialize>(&mut self, name: &str, value: &T) -> Result<(), CheckpointError> {
        let bytes = serde_json::to_vec(value).map_err(|error| CheckpointError::Encode {
            step: name.to_owned(),
            error,
        })?;
        let key = self.key(self.next);
        self.store
            .put(&key, Record::new(step_fingerprint(name), bytes), None)?;
        self.next += 1;
        Ok(())
    }

    /// Runs the step `name` (an async closure), or returns its stored result if it completed
    /// in an earlier run. The result is committed to the store before it is returned.
    ///
    /// # Errors
    /// The step's own error (nothing is recorded: a rerun runs it again), or a checkpoint
    /// that cannot be read or written.
    pub async fn step<T, E, F, Fut>(&mut self, name: &str, step: F) -> Result<T, WorkflowError<E>>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        if let Some(value) = self.stored(name)? {
            return Ok(value);
        }
        let value = step().await.map_err(|error| WorkflowError::Step {
            step: name.to_owned(),
            error,
        })?;
        self.record(name, &value)?;
        Ok(value)
    }

    /// Runs the step `name` as a call of `service` with `request`, or returns its stored
    /// response if it completed in an earlier run.
    ///
    /// # Errors
    /// As [`step`](Self::step); the service's readiness error counts as the step's error.
    pub async fn call<S, Req>(
        &mut self,
        name: &str,
        service: &mut S,
        request: Req,
    ) -> Result<S::Response, WorkflowError<S::Error>>
    where
        S: Service<Req>,
        S::Response: Serialize + DeserializeOwned,
    {
        self.step(name, || async move {
            std::future::poll_fn(|cx| service.poll_ready(cx)).await?;
            service.call(request).await
        })
        .await
    }

    /// The workflow is done: removes its checkpoints, so the id can start afresh.
    ///
    /// # Errors
    /// The store could not be written.
    pub fn complete(self) -> Result<(), CheckpointError> {
        for index in 0..self.next {
            self.store.remove(&self.key(index))?;
        }
        Ok(())
    }
}

fn step_fingerprint(name: &str) -> u64 {
    let mut h = Fnv::new();
    h.field(b"step").field(name.as_bytes());
    h.finish()
}

impl fmt::Debug for Workflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Workflow")
            .field("id", &self.id)
            .field("position", &self.next)
            .field("resumed", &self.resumed)
            .finish()
    }
}
