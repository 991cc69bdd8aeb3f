//! Graceful degradation in an axum handler: three dependencies behind fallbacks, and a JSON
//! answer that says what degraded.
//!
//! ```sh
//! cargo run -p examples --example heal_degradation_axum
//! ```
//!
//! It takes the dependencies down one by one and prints each answer: first `full`, then
//! metrics from the cache (level 1), logs as a static notice (level 3), alerts failed (4).

use std::sync::atomic::Ordering;

use examples::heal_incident::{Health, serve};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let health = Health::default();
    let addr = serve(&health).await?;
    println!("listening on http://{addr}/incidents/{{id}}\n");
    let steps: [(&str, &std::sync::atomic::AtomicBool); 3] = [
        ("metrics down", &health.metrics),
        ("logs down", &health.logs),
        ("alerts down", &health.alerts),
    ];
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/incidents/42");
    let reply = client.get(&url).send().await?.text().await?;
    println!("all up:\n  {reply}\n");
    for (what, switch) in steps {
        switch.store(false, Ordering::Relaxed);
        let reply = client.get(&url).send().await?.text().await?;
        println!("{what}:\n  {reply}\n");
    }
    Ok(())
}
