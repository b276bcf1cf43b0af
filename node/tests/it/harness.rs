//! Runs the real `agora` binary: nodes on loopback ports, CLI commands, raw JSON-RPC.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use agora_core::{Call, Genesis, Keypair, SignedTransaction, Transaction};
use serde_json::{json, Value};

pub const BIN: &str = env!("CARGO_BIN_EXE_agora");

/// The package's directory: at run time where the test runner says (a shared target
/// directory may hold binaries built from another checkout), else where it was built.
pub fn manifest_dir() -> String {
    std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into())
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The dev genesis with fast blocks, written into `dir`.
pub fn fast_genesis(dir: &Path) -> (Genesis, PathBuf) {
    let mut g = Genesis::dev();
    g.block_time_ms = 250;
    let path = dir.join("genesis.toml");
    std::fs::write(&path, toml::to_string(&g).unwrap()).unwrap();
    (g, path)
}

/// The dev genesis for subnet tests, written into `dir`: 250 ms blocks, 10-block epochs,
/// weights every 2 blocks, commit-reveal as asked.
pub fn subnet_genesis(dir: &Path, commit_reveal: bool) -> PathBuf {
    let mut g = Genesis::dev();
    g.block_time_ms = 250;
    g.subnets.defaults.tempo = 10;
    g.subnets.defaults.weights_rate_limit = 2;
    g.subnets.defaults.commit_reveal = commit_reveal;
    let path = dir.join("genesis.toml");
    std::fs::write(&path, toml::to_string(&g).unwrap()).unwrap();
    path
}

/// How a test node runs: read-only, or a dev chain with a sealing mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// No `--dev`, no peers: a full node that serves the stored chain.
    ReadOnly,
    /// `--dev --seal interval`: a block every block time (tests of the clock itself only).
    Interval,
    /// `--dev --seal instant`: a block per submission, none otherwise.
    Instant,
    /// `--dev --seal manual`: blocks only on `dev_produceBlocks`.
    Manual,
    /// `--dev --seal interval --p2p-addr ...`: a block clock, and the DHT neurons find
    /// each other through.
    IntervalDht,
}

/// A running node; killed on drop.
pub struct Node {
    child: Option<Child>,
    pub port: u16,
    pub log: PathBuf,
}

impl Node {
    pub fn start(dir: &Path, genesis: &Path, mode: Mode, tag: &str) -> Node {
        Self::start_with(dir, genesis, mode, tag, &[])
    }

    /// [`Node::start`] with `extra` flags for `agora node`.
    pub fn start_with(dir: &Path, genesis: &Path, mode: Mode, tag: &str, extra: &[&str]) -> Node {
        let port = free_port();
        let log = dir.join(format!("node-{tag}.log"));
        let mut cmd = Command::new(BIN);
        cmd.arg("node")
            .arg("--data-dir")
            .arg(dir.join("data"))
            .arg("--rpc-addr")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--genesis")
            .arg(genesis)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        match mode {
            // A networked full node with no peers: it serves the stored chain.
            Mode::ReadOnly => {
                cmd.args(["--p2p-addr", "/ip4/127.0.0.1/tcp/0"]);
            }
            Mode::Interval => {
                cmd.args(["--dev", "--seal", "interval"]);
            }
            Mode::Instant => {
                cmd.args(["--dev", "--seal", "instant"]);
            }
            Mode::Manual => {
                cmd.args(["--dev", "--seal", "manual"]);
            }
            Mode::IntervalDht => {
                cmd.args(["--dev", "--seal", "interval"]);
                cmd.args(["--p2p-addr", "/ip4/127.0.0.1/tcp/0"]);
            }
        }
        cmd.args(extra);
        let node = Node {
            child: Some(cmd.spawn().unwrap()),
            port,
            log,
        };
        let start = Instant::now();
        while rpc_raw(port, r#"{"jsonrpc":"2.0","id":1,"method":"chain_head"}"#).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "node did not start:\n{}",
                node.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        node
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn call(&self, method: &str, params: Value) -> Value {
        let body =
            json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params}).to_string();
        serde_json::from_str(&rpc_raw(self.port, &body).unwrap()).unwrap()
    }

    /// `result` of a call that must succeed.
    pub fn ok(&self, method: &str, params: Value) -> Value {
        let v = self.call(method, params);
        assert!(v.get("error").is_none(), "{method} failed: {v}");
        v["result"].clone()
    }

    /// Stop with SIGTERM and wait; returns the exit status code.
    pub fn stop(&mut self) -> i32 {
        let mut child = self.child.take().unwrap();
        let pid = child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let status = child.wait().unwrap();
        status.code().unwrap_or(-1)
    }

    /// SIGKILL: no chance to shut down cleanly.
    pub fn kill(&mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Seal `n` blocks now (dev nodes); returns the new head.
    pub fn produce(&self, n: u64) -> Value {
        self.ok("dev_produceBlocks", json!({ "n": n }))
    }

    pub fn height(&self) -> u64 {
        self.ok("chain_head", Value::Null)["height"]
            .as_u64()
            .unwrap()
    }

    pub fn wait_for_height(&self, height: u64) {
        let start = Instant::now();
        while self.ok("chain_head", Value::Null)["height"]
            .as_u64()
            .unwrap()
            < height
        {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "no progress to height {height}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A process a test started (a miner, a validator); killed by its PID on drop.
pub struct Proc {
    child: std::process::Child,
    pub log: PathBuf,
}

impl Proc {
    /// Start `agora args...` with the test wallets, logging to `log`.
    pub fn start(wallets: &Path, log: PathBuf, args: &[&str]) -> Proc {
        let child = Command::new(BIN)
            .args(args)
            .env("AGORA_WALLET_DIR", wallets)
            .env("AGORA_PASSWORD", PASSWORD)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Proc { child, log }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether it exited (and how).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// POST `body` to the node's JSON-RPC endpoint with a minimal HTTP/1.1 client.
pub fn rpc_raw(port: u16, body: &str) -> std::io::Result<String> {
    http(port, &format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ))
}

/// `GET path` on a loopback port; the body.
pub fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    http(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
    )
}

fn http(port: u16, request: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.write_all(request.as_bytes())?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let (head, rest) = resp
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no HTTP body"))?;
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Ok(dechunk(rest));
    }
    Ok(rest.to_string())
}

/// Parse Prometheus/OpenMetrics text strictly: `# HELP|TYPE|UNIT|EOF` comments and
/// `name{labels} value` samples, nothing else. The samples by their full series name.
pub fn parse_metrics(text: &str) -> Result<std::collections::BTreeMap<String, f64>, String> {
    let mut out = std::collections::BTreeMap::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(c) = line.strip_prefix('#') {
            let ok = ["HELP ", "TYPE ", "UNIT "]
                .iter()
                .any(|p| c.trim_start().starts_with(p))
                || c.trim() == "EOF";
            if !ok {
                return Err(format!("bad comment: {line}"));
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .ok_or_else(|| format!("no value: {line}"))?;
        let name = series.split('{').next().unwrap_or("");
        let name_ok = !name.is_empty()
            && name.chars().enumerate().all(|(i, ch)| {
                ch.is_ascii_alphabetic() || ch == '_' || ch == ':' || (i > 0 && ch.is_ascii_digit())
            });
        if !name_ok || (series.contains('{') && !series.ends_with('}')) {
            return Err(format!("bad series: {line}"));
        }
        let v = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().map_err(|_| format!("bad value: {line}"))?,
        };
        out.insert(series.to_string(), v);
    }
    Ok(out)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}

/// The password the tests' wallets use.
pub const PASSWORD: &str = "correct horse";

/// Run the CLI; returns (exit code, stdout, stderr).
pub fn cli(wallets: &Path, args: &[&str]) -> (i32, String, String) {
    cli_with_password(wallets, PASSWORD, args)
}

pub fn cli_with_password(wallets: &Path, password: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env("AGORA_WALLET_DIR", wallets)
        .env("AGORA_PASSWORD", password)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Run the CLI with `--json`, require success, parse stdout.
pub fn cli_json(wallets: &Path, args: &[&str]) -> Value {
    let mut all: Vec<&str> = args.to_vec();
    all.push("--json");
    let (code, out, err) = cli(wallets, &all);
    assert_eq!(code, 0, "agora {args:?} failed:\n{out}\n{err}");
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("agora {args:?} printed non-JSON ({e}):\n{out}"))
}

/// Encoded transaction bytes as `tx_submit` takes them.
pub fn hex_tx(stx: &SignedTransaction) -> String {
    format!("0x{}", hex::encode(stx.encode()))
}

/// A signed transfer of `amount` rao to the dev account charlie.
pub fn transfer(chain_id: u64, from: &Keypair, nonce: u64, amount: u64) -> SignedTransaction {
    Transaction {
        chain_id,
        signer: from.account(),
        nonce,
        call: Call::Transfer {
            dest: Keypair::dev("charlie").account(),
            amount,
        },
        tip: 0,
    }
    .sign(from)
}
