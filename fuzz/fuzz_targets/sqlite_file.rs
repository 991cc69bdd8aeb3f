//! The SQLite result store opening a file of any bytes (a damaged database, another program's
//! file, a truncated write): a typed error, or a store whose reads and writes never panic.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tower_heal::store::{Record, ResultStore, SqliteStore};

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("tower-heal-fuzz-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("store.db");
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    std::fs::write(&path, data).unwrap();
    if let Ok(store) = SqliteStore::open(&path) {
        for key in ["", "k", "order-42", "ckpt:wf:0"] {
            let _ = store.get(key);
        }
        let _ = store.put(
            "k",
            Record::new(7, &b"value"[..]),
            Some(Duration::from_secs(60)),
        );
        let _ = store.get("k");
        let _ = store.remove("k");
    }
});
