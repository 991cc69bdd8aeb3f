//! A workflow process killed in step 3 (a real child process, killed) resumes at step 3 with
//! steps 1 and 2 not re-run.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const AGENT: &str = env!("CARGO_BIN_EXE_heal_checkpoint_child");

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tower-heal-agent-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn journal(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_workflow_killed_in_step_3_resumes_at_step_3() {
    let dir = temp_dir();
    let (db, log) = (dir.join("agent.db"), dir.join("journal.txt"));

    // First run: hangs in step 3; killed there.
    let mut child = Command::new(AGENT)
        .arg(&db)
        .arg(&log)
        .args(["--hang-in-step", "3"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("the agent starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let step3 = line == "step 3 started";
            if tx.send(line).is_err() || step3 {
                break;
            }
        }
    });
    let mut first = Vec::new();
    loop {
        // Bounded: a broken agent fails the test instead of hanging it.
        let line = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("the agent reaches step 3");
        first.push(line.clone());
        if line == "step 3 started" {
            break;
        }
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "killed, not finished");
    assert_eq!(first, ["step 1: ran", "step 2: ran", "step 3 started"]);
    assert_eq!(
        journal(&log),
        ["ran gather_context", "ran analyze", "started apply_fix"]
    );

    // Second run: steps 1 and 2 come from the checkpoint; step 3 runs to the end.
    let output = Command::new(AGENT).arg(&db).arg(&log).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let second: Vec<String> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        second[..4],
        [
            "step 1: resumed from checkpoint",
            "step 2: resumed from checkpoint",
            "step 3 started",
            "step 3: ran",
        ]
    );
    assert_eq!(
        journal(&log),
        [
            "ran gather_context",
            "ran analyze",
            "started apply_fix",
            "started apply_fix",
            "ran apply_fix: restart_pods",
        ],
        "steps 1 and 2 ran once; step 3 ran again after the kill"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
