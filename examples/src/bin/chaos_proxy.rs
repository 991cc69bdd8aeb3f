//! tower-chaos in front of any HTTP/1.1 upstream, with faults switched live on an admin route.
//!
//! ```text
//! cargo run -p examples --bin chaos-proxy -- --listen 127.0.0.1:9000 --upstream 127.0.0.1:8080 --faults faults.json
//!     [--admin 127.0.0.1:9001] [--token TOKEN]
//! ```
//!
//! The token comes from `--token`, else `CHAOS_PROXY_TOKEN`, else a random one printed at start.
//! See `examples::chaos_proxy` for the admin routes.

use std::net::SocketAddr;

use examples::chaos_proxy::{ProxyConfig, start};
use tower_chaos::{BoxError, ChaosConfig};

const USAGE: &str = "usage: chaos-proxy --upstream HOST:PORT [--listen ADDR] [--faults FILE] [--admin ADDR] [--token TOKEN]";

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut listen: SocketAddr = "127.0.0.1:9000".parse()?;
    let mut admin: SocketAddr = "127.0.0.1:9001".parse()?;
    let mut upstream = None;
    let mut faults = None;
    let mut token = std::env::var("CHAOS_PROXY_TOKEN").ok();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().ok_or(USAGE)?;
        match arg.as_str() {
            "--listen" => listen = value.parse()?,
            "--admin" => admin = value.parse()?,
            "--upstream" => upstream = Some(value),
            "--faults" => faults = Some(value),
            "--token" => token = Some(value),
            _ => return Err(USAGE.into()),
        }
    }
    let upstream = upstream.ok_or(USAGE)?;
    let chaos = match faults {
        Some(path) => ChaosConfig::from_json(&std::fs::read_to_string(&path)?)?,
        None => ChaosConfig::default(),
    };
    let token = token.filter(|t| !t.is_empty()).unwrap_or_else(|| {
        let mut rng = fastrand::Rng::new();
        let token: String = std::iter::repeat_with(|| rng.alphanumeric())
            .take(32)
            .collect();
        println!("admin token: {token}");
        token
    });
    let proxy = start(ProxyConfig {
        listen,
        upstream: upstream.clone(),
        admin,
        token,
        chaos,
    })
    .await?;
    println!(
        "chaos-proxy: http://{} -> http://{upstream}; admin on http://{}/chaos ({})",
        proxy.addr,
        proxy.admin_addr,
        if proxy.chaos.is_armed() {
            "armed"
        } else {
            "disarmed"
        }
    );
    std::future::pending::<()>().await;
    Ok(())
}
