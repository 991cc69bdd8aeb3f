//! Without the `inject` feature the layer wraps nothing: `layer(svc)` is `svc`.
//!
//! Runs with `cargo test -p tower-chaos --no-default-features --test compiled_out`.
#![cfg(not(feature = "inject"))]

use tower::Layer;
use tower_chaos::{ChaosLayer, Fault};

#[derive(Clone, Debug, PartialEq)]
struct Bare(u32);

#[test]
fn the_layer_returns_the_service_itself() {
    let layer = ChaosLayer::<u64, u64>::builder()
        .fault(Fault::abort().rate(1.0))
        .armed(true)
        .build()
        .unwrap();
    // The type says it: the layered service is the bare one, so it costs exactly as much.
    let svc: Bare = layer.layer(Bare(7));
    assert_eq!(svc, Bare(7));
    assert_eq!(std::mem::size_of_val(&svc), std::mem::size_of::<Bare>());
}
