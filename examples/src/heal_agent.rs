//! The checkpointed three-step agent workflow of the `heal_checkpoint_agent` example: kill it
//! in step 3, run it again, and it resumes at step 3 without re-running steps 1 and 2.
//!
//! The journal file gets one line per side effect, so the rerun can be checked: the
//! `heal_checkpoint` test spawns it as a real child process and kills it.

use std::io::Write;

use serde::{Deserialize, Serialize};
use tower_heal::checkpoint::Workflow;
use tower_heal::store::SqliteStore;

#[derive(Debug, Serialize, Deserialize)]
struct Context {
    incident: String,
    error_rate: f64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Analysis {
    cause: String,
    fix: String,
}

fn journal(path: &str, line: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    writeln!(file, "{line}")?;
    file.sync_all()
}

fn say(line: &str) {
    println!("{line}");
    let _ = std::io::stdout().flush();
}

/// Runs the workflow with the process's arguments:
/// `<store.db> <journal.txt> [--hang-in-step 3]`.
///
/// # Errors
/// The store cannot be opened, a step fails, or a checkpoint cannot be written.
pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(db), Some(log)) = (args.first(), args.get(1)) else {
        eprintln!("usage: heal_checkpoint_agent <store.db> <journal.txt> [--hang-in-step 3]");
        std::process::exit(2);
    };
    let hang_in = args
        .iter()
        .position(|a| a == "--hang-in-step")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse::<usize>().ok());

    let store = SqliteStore::open(db)?;
    let mut workflow = Workflow::open(store, "incident-4711");
    let report = |workflow: &Workflow, n: usize| {
        if workflow.resumed_steps() >= n {
            say(&format!("step {n}: resumed from checkpoint"));
        } else {
            say(&format!("step {n}: ran"));
        }
    };

    // Step 1: gather context (in real life: metrics, logs, alerts).
    let context: Context = workflow
        .step("gather_context", || async {
            journal(log, "ran gather_context")?;
            Ok::<_, std::io::Error>(Context {
                incident: "checkout latency".into(),
                error_rate: 0.27,
            })
        })
        .await?;
    report(&workflow, 1);

    // Step 2: analyze (in real life: an LLM call).
    let analysis: Analysis = workflow
        .step("analyze", || async {
            journal(log, "ran analyze")?;
            Ok::<_, std::io::Error>(Analysis {
                cause: format!(
                    "{} at {:.0} % errors: connection pool exhausted",
                    context.incident,
                    context.error_rate * 100.0
                ),
                fix: "restart_pods".into(),
            })
        })
        .await?;
    report(&workflow, 2);

    // Step 3: apply the fix. With --hang-in-step 3 the process hangs here until killed.
    let applied: bool = workflow
        .step("apply_fix", || async {
            journal(log, "started apply_fix")?;
            say("step 3 started");
            if hang_in == Some(3) {
                std::future::pending::<()>().await;
            }
            journal(log, &format!("ran apply_fix: {}", analysis.fix))?;
            Ok::<_, std::io::Error>(true)
        })
        .await?;
    report(&workflow, 3);

    say(&format!("done: {} (fixed: {applied})", analysis.cause));
    workflow.complete()?;
    Ok(())
}
