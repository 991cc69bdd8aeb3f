//! Per-agent compartments from our users' JSON: a research agent stuck in a loop floods its own
//! compartment, and the writing agent keeps working.
//!
//! ```sh
//! cargo run -p examples --example bulkhead_agents
//! ```

use std::time::Duration;

use tower::{Service, ServiceBuilder, ServiceExt};
use tower_bulkhead::{KeyedBulkheadConfig, KeyedBulkheadLayer, find_rejected};

/// A request to the shared LLM backend: which agent asks, and the tokens it expects to spend.
#[derive(Debug)]
struct Prompt {
    agent: &'static str,
    estimated_tokens: u64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config: KeyedBulkheadConfig = serde_json::from_str(
        r#"{"name": "llm", "bulkheads": {
            "research_agent": {"max_concurrent": 4, "token_budget": 1000, "max_wait_seconds": 2},
            "writing_agent": {"max_concurrent": 2, "token_budget": 500}
        }}"#,
    )?;
    let per_agent = KeyedBulkheadLayer::from_config(&config, |p: &Prompt| p.agent.to_owned())?
        .cost(|p: &Prompt| p.estimated_tokens);
    let handle = per_agent.handle();

    let llm = ServiceBuilder::new()
        .layer(per_agent)
        .service_fn(|p: Prompt| async move {
            tokio::time::sleep(Duration::from_millis(300)).await; // the model thinks
            Ok::<_, std::io::Error>(format!("{} got an answer", p.agent))
        });

    // The research agent loops: 40 prompts at once, 300 tokens each.
    let flood: Vec<_> = (0..40)
        .map(|_| {
            let llm = llm.clone();
            tokio::spawn(llm.oneshot(Prompt {
                agent: "research_agent",
                estimated_tokens: 300,
            }))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let research = handle.get(&"research_agent".to_owned()).expect("live");
    println!(
        "research_agent: {} in flight, {:?} tokens in use, {} waiting",
        research.in_flight(),
        research.tokens_in_use(),
        research.waiters()
    );

    // The writing agent is not slowed at all.
    let mut writer = llm.clone();
    let answer = writer
        .ready()
        .await
        .map_err(|e| e.to_string())?
        .call(Prompt {
            agent: "writing_agent",
            estimated_tokens: 200,
        })
        .await
        .map_err(|e| e.to_string())?;
    println!("{answer} while research_agent was flooding");

    let (mut answered, mut refused) = (0, 0);
    for call in flood {
        match call.await? {
            Ok(_) => answered += 1,
            Err(err) => {
                let rejected = find_rejected(&*err).expect("a bulkhead rejection");
                if refused == 0 {
                    println!("research_agent refused: {rejected}");
                }
                refused += 1;
            }
        }
    }
    println!("research_agent: {answered} answered, {refused} refused (its own compartment only)");
    Ok(())
}
