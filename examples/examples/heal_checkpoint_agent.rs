//! A three-step agent workflow with checkpoints in a SQLite file: kill it in step 3, run it
//! again, and it resumes at step 3 without re-running steps 1 and 2.
//!
//! ```sh
//! cargo run -p examples --example heal_checkpoint_agent -- /tmp/agent.db /tmp/agent.log --hang-in-step 3
//! # in step 3 it hangs: press Ctrl-C (or kill it), then run it again without the flag:
//! cargo run -p examples --example heal_checkpoint_agent -- /tmp/agent.db /tmp/agent.log
//! ```
//!
//! The journal file (second argument) gets one line per side effect, so you can see which
//! steps really ran. `tests/heal_checkpoint.rs` does exactly this with a real child process.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    examples::heal_agent::main()
}
