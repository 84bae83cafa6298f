//! A real `redis-server` (Debian's package, installed by tests/redis/setup.sh)
//! on a free port in a temporary directory, for the cluster tests.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::TempDir;

pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    dir: TempDir,
    /// Keeps its data across restarts (an append-only file written at every command).
    durable: bool,
    /// `requirepass`, if any.
    password: Option<String>,
}

/// The redis-server binary; runs the set-up that installs it when it is missing.
fn redis_server() -> PathBuf {
    let find = || {
        std::env::var_os("PATH").and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("redis-server"))
                .find(|f| f.is_file())
        })
    };
    if let Some(p) = find() {
        return p;
    }
    let setup = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/redis/setup.sh");
    let st = Command::new("bash")
        .arg(setup)
        .status()
        .expect("run tests/redis/setup.sh");
    assert!(
        st.success(),
        "tests/redis/setup.sh failed: it installs Debian's redis-server package"
    );
    find().expect("redis-server is still missing after tests/redis/setup.sh")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Redis {
    /// A Redis that forgets everything when it stops.
    pub fn start() -> Redis {
        Self::start_as(false)
    }

    /// A Redis that keeps its data across [`Redis::kill`] and [`Redis::restart`].
    pub fn start_durable() -> Redis {
        Self::start_as(true)
    }

    /// A Redis that refuses clients without `password`.
    pub fn start_with_password(password: &str) -> Redis {
        let mut r = Redis {
            child: None,
            port: free_port(),
            dir: TempDir::new("redis"),
            durable: false,
            password: Some(password.to_string()),
        };
        r.spawn();
        r
    }

    fn start_as(durable: bool) -> Redis {
        let mut r = Redis {
            child: None,
            port: free_port(),
            dir: TempDir::new("redis"),
            durable,
            password: None,
        };
        r.spawn();
        r
    }

    /// Its URL, with the password when it has one.
    pub fn url(&self) -> String {
        match &self.password {
            Some(p) => format!("redis://:{p}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(redis_server());
        cmd.arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--dir")
            .arg(&self.dir.0)
            .arg("--save")
            .arg("")
            .arg("--daemonize")
            .arg("no");
        if let Some(p) = &self.password {
            cmd.arg("--requirepass").arg(p);
        }
        if self.durable {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(reply) = self.try_command(&["PING"]) {
                if reply.starts_with(b"+PONG") {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer PING on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills it at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port (with its data when durable).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Starts it again on the same port with no data at all.
    pub fn restart_empty(&mut self) {
        self.kill();
        for e in std::fs::read_dir(&self.dir.0).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                let _ = std::fs::remove_dir_all(&p);
            } else {
                let _ = std::fs::remove_file(&p);
            }
        }
        self.spawn();
    }

    fn try_command(&self, args: &[&str]) -> std::io::Result<Vec<u8>> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut req = String::new();
        if let Some(p) = &self.password {
            req.push_str(&format!("*2\r\n$4\r\nAUTH\r\n${}\r\n{p}\r\n", p.len()));
        }
        req.push_str(&format!("*{}\r\n", args.len()));
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(req.as_bytes())?;
        // the whole answer (the AUTH answer, `+OK`, first when there is one)
        let skip = if self.password.is_some() { 5 } else { 0 };
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let n = s.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            if buf.len() > skip && buf.ends_with(b"\r\n") {
                break;
            }
        }
        if skip > 0 && buf.starts_with(b"+OK\r\n") {
            buf.drain(..5);
        }
        Ok(buf)
    }

    /// Runs one command; its raw RESP reply.
    pub fn command(&self, args: &[&str]) -> String {
        String::from_utf8_lossy(&self.try_command(args).expect("redis command")).into_owned()
    }

    /// Whether a key exists.
    pub fn exists(&self, key: &str) -> bool {
        self.command(&["EXISTS", key]).starts_with(":1")
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}
