//! The `heal_checkpoint_agent` example as a binary, so `tests/heal_checkpoint.rs` can spawn
//! it as a real child process (`CARGO_BIN_EXE_heal_checkpoint_child`) and kill it.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    examples::heal_agent::main()
}
