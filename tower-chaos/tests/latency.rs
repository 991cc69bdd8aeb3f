//! Latency injection delays by the configured amount, in virtual time.
#![cfg(feature = "inject")]

mod support;

use std::time::Duration;

use support::{Echo, call};
use tokio::time::Instant;
use tower::{Layer, Service};
use tower_chaos::{ChaosLayer, Fault, Latency};

#[tokio::test(start_paused = true)]
async fn latency_delays_by_the_configured_amount_in_virtual_time() {
    let layer = ChaosLayer::<u64, u64>::builder()
        .fault(Fault::latency(Latency::Fixed(Duration::from_millis(750))).rate(1.0))
        .armed(true)
        .build()
        .unwrap();
    let mut svc = layer.layer(Echo::default());
    let start = Instant::now();
    assert_eq!(call(&mut svc, 3).await.unwrap(), 3);
    assert_eq!(start.elapsed(), Duration::from_millis(750));
}

#[tokio::test(start_paused = true)]
async fn uniform_latency_stays_in_its_range() {
    let layer = ChaosLayer::<u64, u64>::builder()
        .fault(
            Fault::latency(Latency::Uniform {
                low: Duration::from_millis(100),
                high: Duration::from_millis(200),
            })
            .rate(1.0),
        )
        .armed(true)
        .build()
        .unwrap();
    let mut svc = layer.layer(Echo::default());
    let mut distinct = std::collections::BTreeSet::new();
    for n in 0..200 {
        let start = Instant::now();
        call(&mut svc, n).await.unwrap();
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(100) && elapsed <= Duration::from_millis(200),
            "{elapsed:?}"
        );
        distinct.insert(elapsed.as_millis());
    }
    assert!(distinct.len() > 50, "samples spread over the range");
}

#[tokio::test(start_paused = true)]
async fn log_normal_latency_has_its_median_and_p99() {
    let layer = ChaosLayer::<u64, u64>::builder()
        .seed(3)
        .fault(
            Fault::latency(Latency::LogNormal {
                p50: Duration::from_millis(100),
                p99: Duration::from_secs(1),
            })
            .rate(1.0),
        )
        .armed(true)
        .build()
        .unwrap();
    let mut svc = layer.layer(Echo::default());
    let mut samples = Vec::new();
    for n in 0..5_000 {
        let start = Instant::now();
        call(&mut svc, n).await.unwrap();
        samples.push(start.elapsed());
    }
    samples.sort();
    let p50 = samples[2_500].as_secs_f64();
    let p99 = samples[4_950].as_secs_f64();
    assert!((p50 - 0.1).abs() < 0.015, "p50 {p50}");
    assert!((0.75..1.3).contains(&p99), "p99 {p99}");
}

/// An inner service that records when it is called.
fn stamped(
    at: std::sync::Arc<std::sync::Mutex<Vec<Instant>>>,
) -> impl tower::Service<
    u64,
    Response = u64,
    Error = std::convert::Infallible,
    Future = std::future::Ready<Result<u64, std::convert::Infallible>>,
> + Clone {
    tower::service_fn(move |n: u64| {
        at.lock().unwrap().push(Instant::now());
        std::future::ready(Ok(n))
    })
}

#[tokio::test(start_paused = true)]
async fn a_latency_fault_delays_the_request_itself() {
    let layer = ChaosLayer::<u64, u64>::builder()
        .fault(Fault::latency(Latency::Fixed(Duration::from_millis(750))).rate(1.0))
        .armed(true)
        .build()
        .unwrap();
    let at = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut svc = layer.layer(stamped(at.clone()));
    let start = Instant::now();
    let fut = tower::ServiceExt::ready(&mut svc).await.unwrap().call(3);
    assert!(at.lock().unwrap().is_empty(), "not sent yet");
    assert_eq!(fut.await.unwrap(), 3);
    assert_eq!(
        *at.lock().unwrap(),
        vec![start + Duration::from_millis(750)],
        "the service saw the request after the delay"
    );
}

#[tokio::test(start_paused = true)]
async fn a_hung_request_never_reaches_the_service_until_released() {
    let layer = ChaosLayer::<u64, u64>::builder()
        .fault(Fault::hang().rate(1.0))
        .armed(true)
        .build()
        .unwrap();
    let handle = layer.handle();
    let at = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let svc = layer.layer(stamped(at.clone()));
    let call = tokio::spawn(tower::ServiceExt::oneshot(svc, 8));
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(at.lock().unwrap().is_empty());
    handle.release_hung();
    assert_eq!(call.await.unwrap().unwrap(), 8);
    assert_eq!(at.lock().unwrap().len(), 1);
}

/// The service a held call takes along is the one `poll_ready` made ready: the request is
/// sent to it after the delay, through the readiness obtained before `call`.
#[tokio::test(start_paused = true)]
async fn a_held_call_is_sent_through_the_readiness_it_was_given() {
    let layer = ChaosLayer::<u64, u64>::builder()
        .fault(Fault::latency(Latency::Fixed(Duration::from_secs(1))).rate(1.0))
        .armed(true)
        .build()
        .unwrap();
    let (mock, mut server) = tower_test::mock::pair::<u64, u64>();
    let mut svc = layer.layer(mock);
    server.allow(1);
    tower::ServiceExt::ready(&mut svc).await.unwrap();
    let mut first = tokio_test::task::spawn(svc.call(1));
    tokio_test::assert_pending!(first.poll());
    tokio::time::advance(Duration::from_millis(999)).await;
    tokio_test::assert_pending!(first.poll());
    assert!(
        tokio_test::task::spawn(server.next_request())
            .poll()
            .is_pending(),
        "nothing sent during the delay"
    );
    tokio::time::advance(Duration::from_millis(1)).await;
    tokio_test::assert_pending!(first.poll());
    let (request, respond) = server.next_request().await.unwrap();
    assert_eq!(request, 1);
    respond.send_response(10);
    assert_eq!(tokio_test::assert_ready_ok!(first.poll()), 10);
}

#[tokio::test(start_paused = true)]
async fn a_response_delay_holds_the_answer_not_the_request() {
    let layer = ChaosLayer::<u64, u64>::builder()
        .fault(Fault::response_delay(Latency::Fixed(Duration::from_millis(750))).rate(1.0))
        .max_active_faults(1)
        .armed(true)
        .build()
        .unwrap();
    let handle = layer.handle();
    let at = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut svc = layer.layer(stamped(at.clone()));
    let start = Instant::now();
    let fut = tower::ServiceExt::ready(&mut svc).await.unwrap().call(3);
    let mut fut = tokio_test::task::spawn(fut);
    tokio_test::assert_pending!(fut.poll());
    assert_eq!(
        *at.lock().unwrap(),
        vec![start],
        "the service answered at once"
    );
    assert_eq!(handle.stats().active, 1, "the held answer keeps its slot");
    tokio::time::advance(Duration::from_millis(749)).await;
    tokio_test::assert_pending!(fut.poll());
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(tokio_test::assert_ready_ok!(fut.poll()), 3);
    drop(fut);
    assert_eq!(handle.stats().active, 0);
    assert_eq!(handle.stats().fault("response_delay").unwrap().injected, 1);
}

#[tokio::test(start_paused = true)]
async fn the_kill_switch_lets_a_held_answer_through() {
    let layer = ChaosLayer::<u64, u64>::builder()
        .fault(Fault::response_delay(Latency::Fixed(Duration::from_secs(3600))).rate(1.0))
        .armed(true)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(support::Echo::default());
    tower::ServiceExt::ready(&mut svc).await.unwrap();
    let mut fut = tokio_test::task::spawn(svc.call(5));
    tokio_test::assert_pending!(fut.poll());
    handle.disarm();
    assert!(fut.is_woken());
    assert_eq!(tokio_test::assert_ready_ok!(fut.poll()), 5);
}

#[tokio::test(start_paused = true)]
async fn request_and_response_delays_add_up() {
    let layer = ChaosLayer::<u64, u64>::builder()
        .fault(Fault::latency(Latency::Fixed(Duration::from_millis(100))).rate(1.0))
        .fault(Fault::response_delay(Latency::Fixed(Duration::from_millis(200))).rate(1.0))
        .armed(true)
        .build()
        .unwrap();
    let at = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut svc = layer.layer(stamped(at.clone()));
    let start = Instant::now();
    call_stamped(&mut svc, 1).await;
    assert_eq!(
        *at.lock().unwrap(),
        vec![start + Duration::from_millis(100)]
    );
    assert_eq!(start.elapsed(), Duration::from_millis(300));
}

async fn call_stamped<S>(svc: &mut S, n: u64)
where
    S: tower::Service<u64, Response = u64, Error = tower_chaos::BoxError>,
{
    assert_eq!(
        tower::ServiceExt::ready(svc)
            .await
            .unwrap()
            .call(n)
            .await
            .unwrap(),
        n
    );
}
