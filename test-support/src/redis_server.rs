//! A real `redis-server` for the fleet tests: 127.0.0.1, a free port, a temporary directory,
//! no persistence; killed when dropped.
//!
//! Without the binary the tests skip with one printed line, unless `FLEET_TESTS=require` is
//! set (CI sets it), where they fail.

#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A running `redis-server`, killed (and its directory removed) on drop.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

fn binary() -> Option<&'static str> {
    ["redis-server", "valkey-server"].into_iter().find(|bin| {
        Command::new(bin)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

impl RedisServer {
    /// Starts a server, or `None` (with one printed line) when there is no binary and
    /// `FLEET_TESTS` is not `require`.
    ///
    /// # Panics
    /// The binary is missing with `FLEET_TESTS=require`, or the server does not answer PING
    /// within 5 s.
    pub fn start() -> Option<Self> {
        let Some(bin) = binary() else {
            assert!(
                std::env::var("FLEET_TESTS").as_deref() != Ok("require"),
                "fleet tests required (FLEET_TESTS=require) but redis-server is not installed"
            );
            static SAID: std::sync::Once = std::sync::Once::new();
            // Straight to stderr: the test harness captures `println!`, and this line must
            // be seen.
            SAID.call_once(|| {
                let _ = writeln!(
                    std::io::stderr(),
                    "fleet tests skipped: redis-server not found; install it or set FLEET_TESTS=require"
                );
            });
            return None;
        };
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "fleet-redis-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        let mut server = Self {
            child: None,
            port: 0,
            dir,
        };
        // A port taken between probing and binding makes the server exit: try a few.
        for _ in 0..5 {
            let port = free_port();
            let child = Command::new(bin)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(&server.dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn redis-server");
            server.child = Some(child);
            server.port = port;
            if server.wait_ping(Duration::from_secs(5)) {
                return Some(server);
            }
            server.kill();
        }
        panic!("redis-server did not answer PING");
    }

    /// The URL clients connect to.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server (a Redis outage); [`restart`](Self::restart) brings it back on the same port.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, empty.
    ///
    /// # Panics
    /// It does not answer PING within 5 s.
    pub fn restart(&mut self) {
        self.kill();
        let bin = binary().expect("redis-server");
        let child = Command::new(bin)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        assert!(
            self.wait_ping(Duration::from_secs(5)),
            "redis-server did not come back"
        );
    }

    fn wait_ping(&mut self, limit: Duration) -> bool {
        let start = Instant::now();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        while start.elapsed() < limit {
            if let Some(Ok(Some(_))) = self.child.as_mut().map(Child::try_wait) {
                return false;
            }
            if let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
                let mut buf = [0u8; 16];
                if stream.write_all(b"PING\r\n").is_ok()
                    && stream
                        .read(&mut buf)
                        .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
                {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
