//! The response future: read the key, replay or wait or call, store the answer.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tower_outcome::{Answer, LayerKind, Reason, Rejected};
use tower_service::Service;

use super::flight::{Claim, Flight, Leader};
use super::layer::Shared;
use super::{Captured, IdempotencyCodec, Prepared};
use crate::store::Record;

pin_project! {
    /// The response future of [`Idempotency`](crate::idempotency::Idempotency).
    ///
    /// Dropping it while it runs the first call for a key releases the key: duplicates
    /// waiting on it then run themselves.
    pub struct ResponseFuture<S, Req, Codec, A>
    where
        S: Service<Req>,
        Codec: IdempotencyCodec<Req, S::Response>,
    {
        #[pin]
        state: State<S, Req, S::Future, Codec::Prepare, Codec::Capture>,
        shared: Arc<Shared<Codec>>,
        _answer: PhantomData<fn() -> A>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, Req, SF, P, C> {
        Prepare { #[pin] future: P, service: Option<S> },
        Waiting { flight: Arc<Flight>, request: Option<Req>, key: String, fingerprint: u64, service: Option<S> },
        Calling { #[pin] future: SF, leader: Option<Leader>, fingerprint: u64 },
        Capturing { #[pin] future: C, leader: Option<Leader>, fingerprint: u64 },
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
            },
            shared,
            _answer: PhantomData,
        }
    }
}

/// What the key's lookup decided.
enum Step<S, Req, Res, E> {
    Done(Result<Res, E>),
    Wait(Arc<Flight>, Req, String, u64, S),
    Call(S, Req, Leader, u64),
}

fn lookup<S, Req, Codec, A>(
    shared: &Shared<Codec>,
    service: S,
    request: Req,
    key: String,
    fingerprint: u64,
) -> Step<S, Req, S::Response, A::Error>
where
    S: Service<Req>,
    Codec: IdempotencyCodec<Req, S::Response>,
    A: Answer<S::Response, S::Error>,
{
    let store_key = Shared::<Codec>::store_key(&key);
    // A stored response is final: replay it without taking part in the calls in flight.
    if let Some(answer) = stored::<S, Req, Codec, A>(shared, &store_key, &key, fingerprint) {
        return Step::Done(answer);
    }
    // Claim, then read the store again: the first call stores before it releases the key,
    // so a response stored since the first read is seen here.
    let leader = match shared.flights.claim(&key) {
        Claim::Wait(flight) => return Step::Wait(flight, request, key, fingerprint, service),
        Claim::Leader(leader) => leader,
    };
    if let Some(answer) = stored::<S, Req, Codec, A>(shared, &store_key, &key, fingerprint) {
        return Step::Done(answer);
    }
    Step::Call(service, request, leader, fingerprint)
}

/// The answer from the store for `key`, if it has one: a replay, a 422 for another
/// fingerprint, or a refusal when the store cannot be read.
fn stored<S, Req, Codec, A>(
    shared: &Shared<Codec>,
    store_key: &str,
    key: &str,
    fingerprint: u64,
) -> Option<Result<S::Response, A::Error>>
where
    S: Service<Req>,
    Codec: IdempotencyCodec<Req, S::Response>,
    A: Answer<S::Response, S::Error>,
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
    S: Service<Req>,
    Codec: IdempotencyCodec<Req, S::Response>,
    A: Answer<S::Response, S::Error>,
{
    type Output = Result<S::Response, A::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let step = match this.state.as_mut().project() {
                StateProj::Prepare { future, service } => {
                    let prepared = ready!(future.poll(cx));
                    let mut service = service.take().expect(POLLED_AFTER_DONE);
                    match prepared {
                        Prepared::Answer(response) => return Poll::Ready(Ok(response)),
                        Prepared::Pass(request) => {
                            let future = service.call(request);
                            this.state.set(State::Calling {
                                future,
                                leader: None,
                                fingerprint: 0,
                            });
                            continue;
                        }
                        Prepared::Keyed {
                            request,
                            key,
                            fingerprint,
                        } => lookup::<S, Req, Codec, A>(
                            this.shared,
                            service,
                            request,
                            key,
                            fingerprint,
                        ),
                    }
                }
                StateProj::Waiting {
                    flight,
                    request,
                    key,
                    fingerprint,
                    service,
                } => {
                    ready!(flight.poll_done(cx));
                    let request = request.take().expect(POLLED_AFTER_DONE);
                    let service = service.take().expect(POLLED_AFTER_DONE);
                    let key = std::mem::take(key);
                    lookup::<S, Req, Codec, A>(this.shared, service, request, key, *fingerprint)
                }
                StateProj::Calling {
                    future,
                    leader,
                    fingerprint,
                } => {
                    let result = ready!(future.poll(cx));
                    let Some(leader) = leader.take() else {
                        return Poll::Ready(result.map_err(A::inner_error));
                    };
                    match result {
                        // A failure is not stored; dropping the leader lets a duplicate run.
                        Err(error) => return Poll::Ready(Err(A::inner_error(error))),
                        Ok(response) => {
                            let fingerprint = *fingerprint;
                            let future = this.shared.codec.capture(response);
                            this.state.set(State::Capturing {
                                future,
                                leader: Some(leader),
                                fingerprint,
                            });
                            continue;
                        }
                    }
                }
                StateProj::Capturing {
                    future,
                    leader,
                    fingerprint,
                } => {
                    let Captured { response, stored } = ready!(future.poll(cx));
                    let leader = leader.take().expect(POLLED_AFTER_DONE);
                    if let Some(bytes) = stored {
                        let store_key = Shared::<Codec>::store_key(leader.key());
                        let record = Record::new(*fingerprint, bytes);
                        // Committed before the caller sees the response.
                        if let Err(error) =
                            this.shared.store.put(&store_key, record, this.shared.ttl)
                        {
                            tracing::warn!(target: "tower_heal", key = leader.key(), %error, "response not stored; a duplicate will run again");
                        }
                    }
                    drop(leader);
                    return Poll::Ready(Ok(response));
                }
            };
            match step {
                Step::Done(result) => return Poll::Ready(result),
                Step::Wait(flight, request, key, fingerprint, service) => {
                    this.state.set(State::Waiting {
                        flight,
                        request: Some(request),
                        key,
                        fingerprint,
                        service: Some(service),
                    });
                }
                Step::Call(mut service, request, leader, fingerprint) => {
                    let future = service.call(request);
                    this.state.set(State::Calling {
                        future,
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
            State::Calling { .. } => "calling",
            State::Capturing { .. } => "capturing",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}
