//! A tonic client `Channel` behind a circuit breaker, talking to a tonic-health server on
//! 127.0.0.1 that goes away halfway.
//!
//! Run it with:
//!
//! ```sh
//! cargo run -p examples --example tonic_client
//! ```
//!
//! The breaker reads `grpc-status` from headers or trailers ([`GrpcStatus`]) and, in `.grpc()`
//! mode, answers an open circuit with `UNAVAILABLE` itself, so the generated client sees an
//! ordinary status and no request leaves the process.

use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Channel, Server};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tower::ServiceBuilder;
use tower_breaker::{CircuitBreakerLayer, GrpcStatus};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let (_reporter, health) = tonic_health::server::health_reporter();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        Server::builder()
            .add_service(health)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = stopped.await;
            }),
    );

    let breaker = CircuitBreakerLayer::builder()
        .name("health")
        .failure_threshold(3)
        .reset_timeout(Duration::from_secs(30))
        .classifier(GrpcStatus::new())
        .on_transition(|t| {
            println!(
                "   ** circuit breaker \"{}\": {} -> {} ({})",
                t.name,
                t.from,
                t.to,
                t.reason.as_str()
            )
        })
        .grpc()
        .build()?;
    let channel = Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let mut client = HealthClient::new(ServiceBuilder::new().layer(breaker).service(channel));

    let request = || HealthCheckRequest {
        service: String::new(),
    };
    let mut running = Some((stop, server));
    for i in 1..=8 {
        if i == 3
            && let Some((stop, server)) = running.take()
        {
            println!(
                "-- stopping the server: from here the channel fails, then the breaker answers"
            );
            let _ = stop.send(());
            server.await??;
        }
        let started = Instant::now();
        let answer = tokio::time::timeout(Duration::from_secs(5), client.check(request())).await?;
        let took = started.elapsed();
        match answer {
            Ok(reply) => println!("call {i}: {:?} in {took:?}", reply.into_inner().status()),
            Err(status) => println!(
                "call {i}: {:?} \"{}\" in {took:?}",
                status.code(),
                status.message()
            ),
        }
    }
    Ok(())
}
