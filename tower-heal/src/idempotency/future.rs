//! The response future: read the key, replay or wait or call, store the answer.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_outcome::{Answer, LayerKind, Reason, Rejected};
use tower_service::Service;

use super::flight::{Claim, Leader, Waiter};
use super::layer::Shared;
use super::{IdempotencyCodec, Prepared, StoreSlot};
use crate::store::StoreClaim;

pin_project! {
    /// The response future of [`Idempotency`](crate::idempotency::Idempotency).
    ///
    /// Dropping it while it runs the first call for a key releases the key: duplicates
    /// waiting on it then run themselves. A duplicate waiting for the first call, or a request
    /// whose body is still arriving, holds no ready inner service (no downstream slot): it
    /// polls a clone ready before calling it.
    pub struct ResponseFuture<S, Req, Codec, A>
    where
        S: Service<Req>,
        Codec: IdempotencyCodec<Req, S::Response>,
    {
        #[pin]
        state: State<S, Req, S::Future, Codec::Prepare>,
        shared: Arc<Shared<Codec>>,
        _answer: PhantomData<fn() -> A>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, Req, SF, P> {
        Prepare { #[pin] future: P, service: Option<S>, ready: bool },
        Waiting {
            #[pin]
            sleep: Sleep,
            deadline: Instant,
            waiter: Waiter,
            request: Option<Req>,
            key: String,
            fingerprint: u64,
            service: Option<S>,
        },
        Readying { service: S, request: Option<Req>, leader: Option<Leader>, fingerprint: u64 },
        Calling { #[pin] future: SF, leader: Option<Leader>, fingerprint: u64 },
    }
}

const POLLED_AFTER_DONE: &str = "idempotency ResponseFuture polled after completion";

fn store_unavailable() -> Rejected {
    Rejected::new(
        LayerKind::Heal,
        Reason::Other("cannot read its idempotency store"),
    )
}

impl<S, Req, Codec, A> ResponseFuture<S, Req, Codec, A>
where
    S: Service<Req>,
    Codec: IdempotencyCodec<Req, S::Response>,
{
    pub(crate) fn new(prepare: Codec::Prepare, service: S, shared: Arc<Shared<Codec>>) -> Self {
        Self {
            state: State::Prepare {
                future: prepare,
                service: Some(service),
                ready: true,
            },
            shared,
            _answer: PhantomData,
        }
    }
}

/// What the key's lookup decided.
enum Step<S, Req, Res, E> {
    Done(Result<Res, E>),
    /// Wait for the call in flight, holding an idle clone of the service.
    Wait(Waiter, Req, String, u64, S),
    /// Run the call; `ready` says whether `S` was polled ready for it.
    Call {
        service: S,
        ready: bool,
        request: Req,
        leader: Leader,
        fingerprint: u64,
    },
}

fn lookup<S, Req, Codec, A>(
    shared: &Shared<Codec>,
    service: S,
    ready: bool,
    request: Req,
    key: String,
    fingerprint: u64,
) -> Step<S, Req, Codec::Response, A::Error>
where
    S: Service<Req> + Clone,
    Codec: IdempotencyCodec<Req, S::Response>,
    A: Answer<Codec::Response, S::Error>,
{
    let store_key = Shared::<Codec>::store_key(&key);
    // A stored response is final: replay it without taking part in the calls in flight.
    if let Some(answer) = stored::<S, Req, Codec, A>(shared, &store_key, &key, fingerprint) {
        return Step::Done(answer);
    }
    // Claim, then read the store again: the first call stores before it releases the key,
    // so a response stored since the first read is seen here.
    let leader = match shared.flights.claim(&key) {
        Claim::Wait(flight) => {
            // Waiting must not hold what `poll_ready` reserved downstream: keep an idle clone.
            let idle = service.clone();
            drop(service);
            return Step::Wait(Waiter::new(flight), request, key, fingerprint, idle);
        }
        Claim::Leader(leader) => leader,
    };
    if let Some(answer) = stored::<S, Req, Codec, A>(shared, &store_key, &key, fingerprint) {
        return Step::Done(answer);
    }
    // A store shared by other replicas: claim the key there too.
    let mut leader = leader;
    match shared.store.claim(&store_key) {
        Ok(StoreClaim::Held(token)) => {
            // Another replica may have stored its answer and released the key between the
            // read above and this claim: read once more, holding the claim.
            let answer = stored::<S, Req, Codec, A>(shared, &store_key, &key, fingerprint);
            leader.hold_fleet(Arc::clone(&shared.store), store_key, token);
            if let Some(answer) = answer {
                return Step::Done(answer);
            }
        }
        Ok(StoreClaim::Busy) => {
            tracing::info!(target: "tower_heal", key, "a request with this idempotency key is in progress on another replica");
            return Step::Done(in_progress::<S, Req, Codec, A>(shared));
        }
        Ok(_) => {}
        Err(error) => {
            tracing::error!(target: "tower_heal", %error, "idempotency key not claimed; request refused");
            return Step::Done(A::rejected(store_unavailable()));
        }
    }
    Step::Call {
        service,
        ready,
        request,
        leader,
        fingerprint,
    }
}

/// The answer to a duplicate whose first call is still in progress (HTTP 409).
fn in_progress<S, Req, Codec, A>(shared: &Shared<Codec>) -> Result<Codec::Response, A::Error>
where
    S: Service<Req>,
    Codec: IdempotencyCodec<Req, S::Response>,
    A: Answer<Codec::Response, S::Error>,
{
    match shared.codec.in_progress() {
        Some(response) => Ok(response),
        None => A::rejected(Rejected::new(
            LayerKind::Heal,
            Reason::Other("has a request with this idempotency key in progress"),
        )),
    }
}

/// The answer from the store for `key`, if it has one: a replay, a 422 for another
/// fingerprint, or a refusal when the store cannot be read.
fn stored<S, Req, Codec, A>(
    shared: &Shared<Codec>,
    store_key: &str,
    key: &str,
    fingerprint: u64,
) -> Option<Result<Codec::Response, A::Error>>
where
    S: Service<Req>,
    Codec: IdempotencyCodec<Req, S::Response>,
    A: Answer<Codec::Response, S::Error>,
{
    match shared.store.get(store_key) {
        Err(error) => {
            tracing::error!(target: "tower_heal", %error, "idempotency store unreadable; request refused");
            Some(A::rejected(store_unavailable()))
        }
        Ok(Some(record)) if record.fingerprint != fingerprint => {
            tracing::warn!(target: "tower_heal", key, "idempotency key reused with another request");
            Some(match shared.codec.mismatch() {
                Some(response) => Ok(response),
                None => A::rejected(Rejected::new(
                    LayerKind::Heal,
                    Reason::Other("saw this idempotency key with another request"),
                )),
            })
        }
        Ok(Some(record)) => match shared.codec.replay(&record.value) {
            Some(response) => {
                shared.replays.increment(1);
                tracing::info!(target: "tower_heal", key, "idempotent replay of the stored response");
                Some(Ok(response))
            }
            None => {
                tracing::warn!(target: "tower_heal", key, "stored response cannot be decoded; the request runs again");
                None
            }
        },
        Ok(None) => None,
    }
}

impl<S, Req, Codec, A> Future for ResponseFuture<S, Req, Codec, A>
where
    S: Service<Req> + Clone,
    Codec: IdempotencyCodec<Req, S::Response>,
    A: Answer<Codec::Response, S::Error>,
{
    type Output = Result<Codec::Response, A::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let (step, deadline) = match this.state.as_mut().project() {
                StateProj::Prepare {
                    future,
                    service,
                    ready,
                } => {
                    let Poll::Ready(prepared) = future.poll(cx) else {
                        if std::mem::replace(ready, false) {
                            // A request body still arriving must not hold what `poll_ready`
                            // reserved downstream: keep an idle clone, poll it ready later.
                            let held = service.as_mut().expect(POLLED_AFTER_DONE);
                            let idle = held.clone();
                            drop(std::mem::replace(held, idle));
                        }
                        return Poll::Pending;
                    };
                    let mut service = service.take().expect(POLLED_AFTER_DONE);
                    let ready = *ready;
                    match prepared {
                        Prepared::Answer(response) => return Poll::Ready(Ok(response)),
                        Prepared::Pass(request) if ready => {
                            let future = service.call(request);
                            this.state.set(State::Calling {
                                future,
                                leader: None,
                                fingerprint: 0,
                            });
                            continue;
                        }
                        Prepared::Pass(request) => {
                            this.state.set(State::Readying {
                                service,
                                request: Some(request),
                                leader: None,
                                fingerprint: 0,
                            });
                            continue;
                        }
                        Prepared::Keyed {
                            request,
                            key,
                            fingerprint,
                        } => {
                            let step = lookup::<S, Req, Codec, A>(
                                this.shared,
                                service,
                                ready,
                                request,
                                key,
                                fingerprint,
                            );
                            (step, None)
                        }
                    }
                }
                StateProj::Waiting {
                    sleep,
                    deadline,
                    waiter,
                    request,
                    key,
                    fingerprint,
                    service,
                } => {
                    if waiter.poll_done(cx).is_pending() {
                        ready!(sleep.poll(cx));
                        tracing::warn!(target: "tower_heal", key = &**key, "a duplicate waited max_wait for the first call with its idempotency key");
                        return Poll::Ready(in_progress::<S, Req, Codec, A>(this.shared));
                    }
                    let request = request.take().expect(POLLED_AFTER_DONE);
                    let service = service.take().expect(POLLED_AFTER_DONE);
                    let key = std::mem::take(key);
                    let step = lookup::<S, Req, Codec, A>(
                        this.shared,
                        service,
                        false,
                        request,
                        key,
                        *fingerprint,
                    );
                    (step, Some(*deadline))
                }
                StateProj::Readying {
                    service,
                    request,
                    leader,
                    fingerprint,
                } => {
                    if let Err(error) = ready!(service.poll_ready(cx)) {
                        return Poll::Ready(Err(A::inner_error(error)));
                    }
                    let future = service.call(request.take().expect(POLLED_AFTER_DONE));
                    let leader = leader.take();
                    let fingerprint = *fingerprint;
                    this.state.set(State::Calling {
                        future,
                        leader,
                        fingerprint,
                    });
                    continue;
                }
                StateProj::Calling {
                    future,
                    leader,
                    fingerprint,
                } => {
                    let result = ready!(future.poll(cx));
                    let Some(leader) = leader.take() else {
                        return Poll::Ready(
                            result
                                .map(|response| this.shared.codec.pass(response))
                                .map_err(A::inner_error),
                        );
                    };
                    return Poll::Ready(match result {
                        // A failure is not stored; dropping the leader lets a duplicate run.
                        Err(error) => Err(A::inner_error(error)),
                        Ok(response) => {
                            let slot = StoreSlot::new(
                                Arc::clone(&this.shared.store),
                                this.shared.ttl,
                                *fingerprint,
                                leader,
                            );
                            Ok(this.shared.codec.capture(response, slot))
                        }
                    });
                }
            };
            match step {
                Step::Done(result) => return Poll::Ready(result),
                Step::Wait(waiter, request, key, fingerprint, service) => {
                    let deadline =
                        deadline.unwrap_or_else(|| Instant::now() + this.shared.max_wait);
                    this.state.set(State::Waiting {
                        sleep: tokio::time::sleep_until(deadline),
                        deadline,
                        waiter,
                        request: Some(request),
                        key,
                        fingerprint,
                        service: Some(service),
                    });
                }
                Step::Call {
                    mut service,
                    ready: true,
                    request,
                    leader,
                    fingerprint,
                } => {
                    let future = service.call(request);
                    this.state.set(State::Calling {
                        future,
                        leader: Some(leader),
                        fingerprint,
                    });
                }
                Step::Call {
                    service,
                    ready: false,
                    request,
                    leader,
                    fingerprint,
                } => {
                    this.state.set(State::Readying {
                        service,
                        request: Some(request),
                        leader: Some(leader),
                        fingerprint,
                    });
                }
            }
        }
    }
}

impl<S, Req, Codec, A> fmt::Debug for ResponseFuture<S, Req, Codec, A>
where
    S: Service<Req>,
    Codec: IdempotencyCodec<Req, S::Response>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Prepare { .. } => "prepare",
            State::Waiting { .. } => "waiting",
            State::Readying { .. } => "readying",
            State::Calling { .. } => "calling",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}
