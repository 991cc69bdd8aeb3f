//! Circuit breakers from your JSON configuration: one named breaker, and a map of named
//! profiles.
//!
//! Run it with:
//!
//! ```sh
//! cargo run -p examples --example breaker_profiles
//! ```

use serde_json::json;
use tower_breaker::{CircuitBreakerConfig, CircuitBreakerLayer, CircuitBreakerProfiles};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let settings = json!({
        "circuit_breaker": {
            "name": "mcp_filesystem", "failure_threshold": 5,
            "reset_timeout_seconds": 60, "half_open_max_calls": 1
        },
        "circuit_breakers": {
            "default": {"failure_threshold": 5, "success_threshold": 1, "timeout_seconds": 60},
            "critical_services": {"failure_threshold": 3, "success_threshold": 2, "timeout_seconds": 30},
            "non_critical": {
                "failure_threshold": null, "failure_rate_threshold": 0.5,
                "window": {"type": "time", "seconds": 60, "buckets": 12}, "minimum_calls": 50,
                "timeout_seconds": 120
            }
        }
    });

    let one: CircuitBreakerConfig = serde_json::from_value(settings["circuit_breaker"].clone())?;
    let layer = CircuitBreakerLayer::from_config(one)?;
    println!("{}: {:?}", layer.name(), layer.handle().state());

    let profiles: CircuitBreakerProfiles =
        serde_json::from_value(settings["circuit_breakers"].clone())?;
    for name in profiles.profiles.keys() {
        let layer = profiles.layer(name)?;
        println!(
            "profile {name}: breaker {:?}, {:?}",
            layer.name(),
            layer.handle().state()
        );
    }

    // A profile for an axum route: `.http()` answers 503 itself and counts 5xx answers.
    let route = profiles.builder("critical_services")?.http().build()?;
    println!("route breaker {:?}, answering HTTP", route.name());

    // A mistake is a typed error naming the field, found when the layer is built.
    let bad: CircuitBreakerConfig = serde_json::from_value(json!({"failure_rate_threshold": 1.5}))?;
    match CircuitBreakerLayer::from_config(bad) {
        Ok(_) => println!("unexpectedly valid"),
        Err(err) => println!("rejected configuration: {err}"),
    }
    Ok(())
}
