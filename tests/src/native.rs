//! Harness of the multi-process tests: real `ringside` processes on loopback ports chosen by the
//! OS, data in a temporary directory, typed gRPC clients, a continuous QUORUM writer load that
//! records every acknowledged write, and a checker that reads them all back.
//!
//! Every process a [`Cluster`] starts is killed when it is dropped, so a failing or panicking
//! test leaves nothing running. Waits are generous "this should have happened by now" limits;
//! when one runs out, the panic carries the tail of every node's log.

use ringside_node::proto::v1 as pb;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

pub use ringside_node::proto::v1::admin_client::AdminClient;
pub use ringside_node::proto::v1::kv_client::KvClient;

/// The generated protocol types.
pub use ringside_node::proto::v1 as proto;

/// How long one gRPC call may take before the client gives up on it.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// Lines of each log shown when a test fails.
const LOG_TAIL: usize = 40;

// -------------------------------------------------------------------------------------------------
// Binary and ports
// -------------------------------------------------------------------------------------------------

/// The `ringside` binary: `RINGSIDE_BIN` when set, else `target/<profile>/ringside` next to the
/// test executable's `deps/` directory.
pub fn binary() -> PathBuf {
    let path = match std::env::var_os("RINGSIDE_BIN") {
        Some(p) => PathBuf::from(p),
        None => {
            let exe = std::env::current_exe().expect("path of the test executable");
            let deps = exe.parent().expect("the test executable has a directory");
            deps.join("..").join("ringside")
        }
    };
    if !path.is_file() {
        panic!(
            "build the node first: cargo build -p ringside-node (no ringside binary at {})",
            path.display()
        );
    }
    path
}

/// `n` consecutive free loopback ports (the first is returned); see [`ringside_procs::free_ports`].
pub fn free_ports(n: u16) -> u16 {
    ringside_procs::free_ports(n)
        .unwrap_or_else(|| panic!("found no {n} consecutive free ports on 127.0.0.1"))
}

/// A client channel to `address` that connects lazily (and reconnects after a restart).
pub fn channel(address: &str) -> Channel {
    Endpoint::from_shared(format!("http://{address}"))
        .expect("valid address")
        .connect_timeout(Duration::from_secs(2))
        .timeout(CALL_TIMEOUT)
        .connect_lazy()
}

// -------------------------------------------------------------------------------------------------
// Processes
// -------------------------------------------------------------------------------------------------

pub use ringside_procs::pid_alive;
use ringside_procs::{Signal, proc_stat, signal};

fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

enum Proc {
    /// Not running (never started, killed or stopped).
    Stopped,
    /// A process this harness spawned.
    Own(Child),
    /// A node process started by `ringside cluster up` (its child, not ours).
    UpChild(u32),
}

/// One node: where it listens and keeps its data, and how to start it again.
pub struct NodeProc {
    /// Host id.
    pub id: u32,
    /// gRPC address.
    pub address: String,
    /// Its directory (holds `node.log`).
    pub dir: PathBuf,
    /// Arguments of `ringside` that start it.
    args: Vec<String>,
    proc: Mutex<Proc>,
}

impl NodeProc {
    /// Its log file.
    pub fn log(&self) -> PathBuf {
        self.dir.join("node.log")
    }

    /// Its process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        match &*self.lock() {
            Proc::Stopped => None,
            Proc::Own(c) => Some(c.id()),
            Proc::UpChild(pid) => Some(*pid),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Proc> {
        self.proc.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The exit status of its process when the harness started it and it has ended.
    pub fn exited(&self) -> Option<ExitStatus> {
        match &mut *self.lock() {
            Proc::Own(child) => child.try_wait().ok().flatten(),
            _ => None,
        }
    }

    /// Whether the harness believes it runs (started and not killed or stopped).
    pub fn running(&self) -> bool {
        !matches!(*self.lock(), Proc::Stopped)
    }
}

/// Options of [`Cluster::up`].
#[derive(Clone, Debug)]
pub struct UpOptions {
    /// Nodes of the initial cluster.
    pub nodes: u32,
    /// Replication factor.
    pub rf: usize,
    /// Outbound streaming throttle of the initial nodes in MiB/s (0: unthrottled).
    pub stream_throughput_mib: f64,
    /// Join strategy of the initial nodes (a node added later takes `--strategy` to match).
    pub strategy: &'static str,
}

impl Default for UpOptions {
    fn default() -> Self {
        UpOptions { nodes: 3, rf: 3, stream_throughput_mib: 24.0, strategy: "staged" }
    }
}

/// The output of a CLI command.
#[derive(Debug)]
pub struct CliOutput {
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl CliOutput {
    /// Both streams, for messages.
    pub fn text(&self) -> String {
        format!("status {}\nstdout:\n{}\nstderr:\n{}", self.status, self.stdout, self.stderr)
    }
}

/// A local cluster of `ringside` processes in a temporary directory.
pub struct Cluster {
    root: PathBuf,
    up: Option<Child>,
    nodes: Vec<NodeProc>,
    seed: String,
    tempdir: Option<tempfile::TempDir>,
}

impl Cluster {
    /// Starts `ringside cluster up` (the user-facing command) and waits until every node
    /// answers and sees every other one up. Starts over on other ports when a port was taken
    /// meanwhile by another process.
    pub async fn up(options: UpOptions) -> Cluster {
        let mut attempt = 1;
        loop {
            let mut cluster = Cluster::start_up(&options);
            match cluster.wait_up_ready().await {
                Ok(()) => {
                    cluster.wait_all_up(Duration::from_secs(90)).await;
                    return cluster;
                }
                Err(reason) => {
                    let logs = cluster.logs();
                    if attempt < 3 && logs.contains("cannot listen on") {
                        eprintln!("a port was taken, starting over on others: {reason}");
                        attempt += 1;
                        continue;
                    }
                    cluster.fail(&reason);
                }
            }
        }
    }

    fn start_up(options: &UpOptions) -> Cluster {
        let binary = binary();
        let tempdir =
            tempfile::Builder::new().prefix("ringside-native-").tempdir().expect("temp dir");
        let root = tempdir.path().canonicalize().expect("canonical temp dir");
        let base = free_ports(options.nodes as u16);
        let data = root.join("cluster");
        let up_log = std::fs::File::create(root.join("up.log")).expect("up.log");
        let child = Command::new(&binary)
            .args(["cluster", "up", "--nodes", &options.nodes.to_string(), "--data-dir"])
            .arg(&data)
            .args([
                "--base-port",
                &base.to_string(),
                "--metrics-base-port",
                "0",
                "--rf",
                &options.rf.to_string(),
                "--stream-throughput-mib",
                &options.stream_throughput_mib.to_string(),
                "--strategy",
                options.strategy,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::from(up_log.try_clone().expect("clone log")))
            .stderr(Stdio::from(up_log))
            .spawn()
            .expect("start ringside cluster up");
        let nodes = (1..=options.nodes)
            .map(|id| {
                let dir = data.join(format!("n{id}"));
                NodeProc {
                    id,
                    address: format!("127.0.0.1:{}", base + id as u16 - 1),
                    args: vec![
                        "node".into(),
                        "--config".into(),
                        dir.join("ringside.toml").display().to_string(),
                    ],
                    dir,
                    proc: Mutex::new(Proc::Stopped),
                }
            })
            .collect::<Vec<_>>();
        let seed = nodes[0].address.clone();
        Cluster { root, up: Some(child), nodes, seed, tempdir: Some(tempdir) }
    }

    async fn wait_up_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let up = self.up.as_mut().expect("cluster up process");
            if let Ok(Some(status)) = up.try_wait() {
                return Err(format!("`ringside cluster up` exited early ({status})"));
            }
            if std::fs::read_to_string(self.root.join("up.log"))
                .is_ok_and(|t| t.contains("ringside cluster") && t.contains("is up"))
            {
                break;
            }
            if Instant::now() > deadline {
                return Err(
                    "`ringside cluster up` did not report the cluster up within 120 s".into()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Its node processes: children of `cluster up`, each started with its own config file.
        let up_pid = self.up.as_ref().expect("cluster up").id();
        let mut found = BTreeMap::new();
        for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if proc_stat(pid).map(|(_, ppid)| ppid) != Some(up_pid) {
                continue;
            }
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            for node in &self.nodes {
                if cmdline.contains(&node.args[2]) {
                    found.insert(node.id, pid);
                }
            }
        }
        for node in &self.nodes {
            match found.get(&node.id) {
                Some(pid) => *node.lock() = Proc::UpChild(*pid),
                None => return Err(format!("no process of node {} under `cluster up`", node.id)),
            }
        }
        Ok(())
    }

    /// The root of the cluster's temporary directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The process of `ringside cluster up`, while it runs.
    pub fn up_pid(&self) -> Option<u32> {
        self.up.as_ref().map(Child::id)
    }

    fn node(&self, id: u32) -> &NodeProc {
        self.nodes.iter().find(|n| n.id == id).unwrap_or_else(|| panic!("no node {id}"))
    }

    /// Node `id`.
    pub fn get(&self, id: u32) -> &NodeProc {
        self.node(id)
    }

    /// The gRPC address of node `id`.
    pub fn address(&self, id: u32) -> String {
        self.node(id).address.clone()
    }

    /// The addresses of nodes `ids`.
    pub fn addresses(&self, ids: &[u32]) -> Vec<String> {
        ids.iter().map(|id| self.address(*id)).collect()
    }

    /// Host ids of every node the harness knows (running or not).
    pub fn ids(&self) -> Vec<u32> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    /// A client of node `id`'s key-value API.
    pub fn kv(&self, id: u32) -> KvClient<Channel> {
        KvClient::new(channel(&self.node(id).address))
    }

    /// A client of node `id`'s operator API.
    pub fn admin(&self, id: u32) -> AdminClient<Channel> {
        AdminClient::new(channel(&self.node(id).address))
    }

    /// Node `id`'s view of the ring.
    pub async fn status(&self, id: u32) -> Result<pb::StatusReply, tonic::Status> {
        self.admin(id).status(pb::StatusRequest {}).await.map(tonic::Response::into_inner)
    }

    /// Node `id`'s movement progress.
    pub async fn progress(&self, id: u32) -> Result<pb::ProgressReply, tonic::Status> {
        self.admin(id).progress(pb::ProgressRequest {}).await.map(tonic::Response::into_inner)
    }

    fn spawn(&self, args: &[String], log: &Path) -> Child {
        std::fs::create_dir_all(log.parent().expect("log dir")).expect("node dir");
        let file = OpenOptions::new().create(true).append(true).open(log).expect("node log");
        let _ = writeln_file(&file, &format!("==== harness: ringside {}", args.join(" ")));
        Command::new(binary())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(file.try_clone().expect("clone log")))
            .stderr(Stdio::from(file))
            .spawn()
            .expect("start ringside node")
    }

    /// Starts a new node process `id` that knows the cluster from its first node as seed:
    /// `ringside node --listen … --metrics '' --seeds … --data-dir … --host-id id` plus `extra`
    /// flags. Does not wait for it.
    pub fn add_node(&mut self, id: u32, extra: &[&str]) -> String {
        assert!(self.nodes.iter().all(|n| n.id != id), "node {id} exists");
        let address = format!("127.0.0.1:{}", free_ports(1));
        let dir = self.root.join(format!("n{id}"));
        let mut args: Vec<String> = [
            "node",
            "--listen",
            &address,
            "--metrics",
            "",
            "--seeds",
            &self.seed,
            "--data-dir",
            &dir.join("data").display().to_string(),
            "--host-id",
            &id.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let child = self.spawn(&args, &dir.join("node.log"));
        self.nodes.push(NodeProc {
            id,
            address: address.clone(),
            dir,
            args,
            proc: Mutex::new(Proc::Own(child)),
        });
        address
    }

    /// Kills node `id` with SIGKILL and waits until the process is gone.
    pub fn kill9(&mut self, id: u32) {
        let up_pid = self.up_pid();
        let node = self.node(id);
        let proc = std::mem::replace(&mut *node.lock(), Proc::Stopped);
        if let Proc::UpChild(pid) = proc {
            kill_proc(Proc::UpChild(pid), up_pid);
            let deadline = Instant::now() + Duration::from_secs(30);
            while pid_alive(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            assert!(!pid_alive(pid), "node {id} (pid {pid}) survived SIGKILL");
        } else {
            assert!(!matches!(proc, Proc::Stopped), "node {id} is not running");
            kill_proc(proc, up_pid);
        }
    }

    /// Starts node `id` again with the same arguments (its log continues).
    pub fn restart(&mut self, id: u32) {
        let node = self.node(id);
        assert!(!node.running(), "node {id} is running");
        let child = self.spawn(&node.args, &node.log());
        *node.lock() = Proc::Own(child);
    }

    /// The exit status of node `id` when the harness started it and it has ended.
    pub fn exited(&self, id: u32) -> Option<ExitStatus> {
        self.node(id).exited()
    }

    /// Stops `ringside cluster up` with SIGTERM (like Ctrl-C) and waits for it to exit.
    pub fn stop_up(&mut self) -> ExitStatus {
        let mut up = self.up.take().expect("cluster up is running");
        let stopped = ringside_procs::terminate(&mut up, Duration::from_secs(60));
        let status = match stopped.status {
            Some(status) if !stopped.killed => status,
            _ => self.fail("`ringside cluster up` did not exit within 60 s of SIGTERM"),
        };
        for node in &self.nodes {
            let mut proc = node.lock();
            if let Proc::UpChild(_) = *proc {
                *proc = Proc::Stopped;
            }
        }
        status
    }

    /// Runs `ringside ARGS` to completion (at most 240 s).
    pub async fn cli(&self, args: &[&str]) -> CliOutput {
        let child = self.cli_spawn(args);
        self.cli_wait(child, Duration::from_secs(240), &args.join(" ")).await
    }

    /// Starts `ringside ARGS` in the background (killed when dropped).
    pub fn cli_spawn(&self, args: &[&str]) -> tokio::process::Child {
        tokio::process::Command::new(binary())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("run ringside")
    }

    /// Waits for a CLI command started by [`Cluster::cli_spawn`].
    pub async fn cli_wait(
        &self,
        child: tokio::process::Child,
        patience: Duration,
        what: &str,
    ) -> CliOutput {
        match tokio::time::timeout(patience, child.wait_with_output()).await {
            Ok(Ok(out)) => CliOutput {
                status: out.status,
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            },
            Ok(Err(e)) => self.fail(&format!("`ringside {what}` could not run: {e}")),
            Err(_) => self.fail(&format!("`ringside {what}` did not finish within {patience:?}")),
        }
    }

    /// `ringside status --json --node ADDR` of node `id`, parsed.
    pub async fn status_json(&self, id: u32) -> Result<serde_json::Value, String> {
        let out = self.cli(&["status", "--json", "--node", &self.address(id)]).await;
        if !out.status.success() {
            return Err(out.text());
        }
        serde_json::from_str(&out.stdout).map_err(|e| format!("{e}: {}", out.text()))
    }

    /// The tail of every log: `cluster up` and each node.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        let up = self.root.join("up.log");
        if up.exists() {
            let _ = writeln!(out, "---- ringside cluster up ----\n{}", tail(&up, LOG_TAIL));
        }
        for node in &self.nodes {
            let _ = writeln!(
                out,
                "---- node {} ({}) {} ----\n{}",
                node.id,
                node.address,
                node.log().display(),
                tail(&node.log(), LOG_TAIL)
            );
        }
        out
    }

    /// Writes `count` keys `{prefix}-{i}` at QUORUM through node `via` while node `down` is dead
    /// (the caller killed it), retrying each a few times while the cluster notices; returns what
    /// was written. Fails the test if a write never succeeds.
    pub async fn write_while_down(
        &self,
        via: u32,
        down: u32,
        prefix: &str,
        count: usize,
    ) -> std::collections::BTreeMap<String, String> {
        let mut written = std::collections::BTreeMap::new();
        let mut kv = self.kv(via);
        for i in 0..count {
            let (key, value) =
                (format!("{prefix}-{i}"), format!("value {i} written while {down} was down"));
            let mut attempts = 0;
            loop {
                attempts += 1;
                match put(&mut kv, &key, &value, pb::ConsistencyLevel::Quorum).await {
                    Ok(_) => break,
                    Err(e) if attempts < 10 => {
                        eprintln!("put {key}: {e:?}; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    Err(e) => self.fail(&format!("QUORUM put with one replica down failed: {e:?}")),
                }
            }
            written.insert(key, value);
        }
        written
    }

    /// Panics with `message` and the tail of every log.
    pub fn fail(&self, message: &str) -> ! {
        panic!("{message}\n\n==== logs (last {LOG_TAIL} lines each) ====\n{}", self.logs())
    }

    /// Panics with `message` and the logs unless `condition` holds.
    pub fn check(&self, condition: bool, message: impl FnOnce() -> String) {
        if !condition {
            self.fail(&message());
        }
    }

    /// Polls `probe` every 200 ms until it returns `Ok`; after `timeout`, panics with `what`,
    /// the last observation (the `Err` text) and the logs.
    pub async fn wait_for<T>(
        &self,
        timeout: Duration,
        what: &str,
        mut probe: impl AsyncFnMut() -> Result<T, String>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match probe().await {
                Ok(v) => return v,
                Err(last) => last,
            };
            if Instant::now() >= deadline {
                self.fail(&format!(
                    "timed out after {timeout:?} waiting for {what}\nlast observation: {last}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Polls `condition` every 200 ms until it holds; after `timeout`, panics with `what` and
    /// the logs.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        what: &str,
        mut condition: impl AsyncFnMut() -> bool,
    ) {
        self.wait_for(timeout, what, async || {
            if condition().await { Ok(()) } else { Err("condition false".into()) }
        })
        .await;
    }

    /// Waits until node `id` answers `Status`.
    pub async fn wait_serving(&self, id: u32, timeout: Duration) -> pb::StatusReply {
        self.wait_for(timeout, &format!("node {id} to answer Status"), async || {
            if let Some(status) = self.exited(id) {
                self.fail(&format!("node {id} exited ({status}) instead of serving"));
            }
            self.status(id).await.map_err(|e| format!("{e:?}"))
        })
        .await
    }

    /// Waits until every running node of `ids` is NORMAL and sees every one of `ids` up and
    /// NORMAL (UN).
    pub async fn wait_un(&self, ids: &[u32], timeout: Duration) {
        let what = format!("nodes {ids:?} to all be UN in each other's status");
        self.wait_for(timeout, &what, async || {
            for id in ids {
                let s = self.status(*id).await.map_err(|e| format!("node {id}: {e:?}"))?;
                if s.lifecycle != "normal" {
                    return Err(format!("node {id} is {}", s.lifecycle));
                }
                for other in ids {
                    match member(&s, *other) {
                        Some(m) if m.state == "U" && m.mode == "N" => {}
                        Some(m) => {
                            return Err(format!(
                                "node {id} sees {other} as {}{} ({})",
                                m.state, m.mode, m.status
                            ));
                        }
                        None => return Err(format!("node {id} does not list {other}")),
                    }
                }
            }
            Ok(())
        })
        .await;
    }

    /// Waits until every node the harness started (and runs) is UN for all of them.
    pub async fn wait_all_up(&self, timeout: Duration) {
        let ids: Vec<u32> = self.nodes.iter().filter(|n| n.running()).map(|n| n.id).collect();
        self.wait_un(&ids, timeout).await;
    }

    /// Writes `count` keys `{prefix}-{i}` of `value_bytes` bytes at QUORUM through node `via`,
    /// retrying each until it is acknowledged. Returns what was written.
    pub async fn preload(
        &self,
        via: u32,
        prefix: &str,
        count: usize,
        value_bytes: usize,
    ) -> BTreeMap<String, String> {
        let address = self.address(via);
        let mut tasks = tokio::task::JoinSet::new();
        let workers = 8;
        for w in 0..workers {
            let address = address.clone();
            let prefix = prefix.to_string();
            tasks.spawn(async move {
                let mut kv = KvClient::new(channel(&address));
                let mut written = Vec::new();
                for i in (w..count).step_by(workers) {
                    let key = format!("{prefix}-{i}");
                    let value = padded(&format!("{prefix}:{i}:"), value_bytes);
                    let mut attempts = 0;
                    loop {
                        attempts += 1;
                        match put(&mut kv, &key, &value, pb::ConsistencyLevel::Quorum).await {
                            Ok(_) => break,
                            Err(e) if attempts < 20 => {
                                let _ = e;
                                tokio::time::sleep(Duration::from_millis(250)).await;
                            }
                            Err(e) => return Err(format!("preload of {key} failed: {e:?}")),
                        }
                    }
                    written.push((key, value));
                }
                Ok(written)
            });
        }
        let mut all = BTreeMap::new();
        while let Some(r) = tasks.join_next().await {
            match r.expect("preload task") {
                Ok(written) => all.extend(written),
                Err(e) => self.fail(&e),
            }
        }
        all
    }

    /// Reads every key of `expected` at `cl` through the nodes `via` (round robin) and panics
    /// (with the number missing, a few examples and the logs) unless each read returns the
    /// expected value. Transient failures (unavailable, timeout, not serving yet) are retried
    /// for up to a minute per key; a read that succeeds without the value is a miss.
    pub async fn assert_readable(
        &self,
        expected: &BTreeMap<String, String>,
        via: &[u32],
        cl: pb::ConsistencyLevel,
    ) {
        let report = read_back(expected, &self.addresses(via), cl).await;
        if !report.missing.is_empty() || !report.unreadable.is_empty() {
            let mut message = format!(
                "{} of {} acknowledged keys are not readable at {cl:?} via nodes {via:?}: {} missing or wrong, {} unreadable",
                report.missing.len() + report.unreadable.len(),
                expected.len(),
                report.missing.len(),
                report.unreadable.len()
            );
            for (key, want, got) in report.missing.iter().take(5) {
                let _ = write!(message, "\n  missing {key}: want {want:?}, read {got:?}");
            }
            for (key, error) in report.unreadable.iter().take(5) {
                let _ = write!(message, "\n  unreadable {key}: {error}");
            }
            self.fail(&message);
        }
    }
}

fn writeln_file(mut file: &std::fs::File, line: &str) -> std::io::Result<()> {
    use std::io::Write;
    writeln!(file, "{line}")
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let up_pid = self.up_pid();
        for node in &self.nodes {
            kill_proc(std::mem::replace(&mut *node.lock(), Proc::Stopped), up_pid);
        }
        if let Some(mut up) = self.up.take() {
            let _ = up.kill();
            let _ = up.wait();
        }
        if std::env::var_os("RINGSIDE_KEEP_DATA").is_some()
            && let Some(dir) = self.tempdir.take()
        {
            eprintln!("keeping the cluster's data in {}", dir.keep().display());
        }
    }
}

/// Kills a node process with SIGKILL: our own child, or a child of our `cluster up` — only while
/// it still is one (never a reused pid).
fn kill_proc(proc: Proc, up_pid: Option<u32>) {
    match proc {
        Proc::Own(mut child) => {
            let _ = child.kill();
            let _ = child.wait();
        }
        Proc::UpChild(pid) => {
            if proc_stat(pid).is_some_and(|(_, ppid)| Some(ppid) == up_pid) {
                signal(pid, Signal::Kill);
            }
        }
        Proc::Stopped => {}
    }
}

/// The member `id` of a status reply.
pub fn member(status: &pb::StatusReply, id: u32) -> Option<&pb::MemberStatus> {
    status.members.iter().find(|m| m.host_id == id)
}

/// The state of member `id` in a `status --json` reply as "UJ", "UN", …, or `None` when not
/// listed.
pub fn json_state(status: &serde_json::Value, id: u32) -> Option<String> {
    status["members"].as_array()?.iter().find(|m| m["host_id"] == id).map(|m| {
        format!("{}{}", m["state"].as_str().unwrap_or("?"), m["mode"].as_str().unwrap_or("?"))
    })
}

/// The gossip status (BOOT, NORMAL, LEFT, …) of member `id` in a `status --json` reply.
pub fn json_status(status: &serde_json::Value, id: u32) -> Option<String> {
    status["members"]
        .as_array()?
        .iter()
        .find(|m| m["host_id"] == id)
        .map(|m| m["status"].as_str().unwrap_or("?").to_string())
}

/// `prefix` padded with `x` to `len` bytes (or `prefix` when longer).
pub fn padded(prefix: &str, len: usize) -> String {
    let mut s = prefix.to_string();
    while s.len() < len {
        s.push('x');
    }
    s
}

/// Bytes for a protocol field, whichever of `Vec<u8>` and `Bytes` the generated code uses.
pub fn bytes<T: From<Vec<u8>>>(data: &[u8]) -> T {
    T::from(data.to_vec())
}

/// A blind put.
pub async fn put(
    kv: &mut KvClient<Channel>,
    key: &str,
    value: &str,
    cl: pb::ConsistencyLevel,
) -> Result<pb::WriteReply, tonic::Status> {
    kv.put(pb::PutRequest {
        key: bytes(key.as_bytes()),
        value: bytes(value.as_bytes()),
        consistency: cl as i32,
        context: Default::default(),
    })
    .await
    .map(tonic::Response::into_inner)
}

/// A get.
pub async fn get(
    kv: &mut KvClient<Channel>,
    key: &str,
    cl: pb::ConsistencyLevel,
) -> Result<pb::GetReply, tonic::Status> {
    kv.get(pb::GetRequest { key: bytes(key.as_bytes()), consistency: cl as i32 })
        .await
        .map(tonic::Response::into_inner)
}

/// The values of a get reply as text.
pub fn values(reply: &pb::GetReply) -> Vec<String> {
    reply.values.iter().map(|v| String::from_utf8_lossy(v).into_owned()).collect()
}

fn transient(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::FailedPrecondition
            | Code::Cancelled
            | Code::Unknown
            | Code::Internal
    )
}

/// What [`read_back`] found.
#[derive(Debug, Default)]
pub struct ReadReport {
    /// Keys read.
    pub checked: usize,
    /// Key, expected value, values read: the read succeeded without the expected value.
    pub missing: Vec<(String, String, Vec<String>)>,
    /// Key and last error: no read succeeded.
    pub unreadable: Vec<(String, String)>,
}

/// Reads every key of `expected` at `cl` through `addresses` (round robin, 8 at a time).
pub async fn read_back(
    expected: &BTreeMap<String, String>,
    addresses: &[String],
    cl: pb::ConsistencyLevel,
) -> ReadReport {
    let entries: Vec<(String, String)> =
        expected.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let workers = 8;
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..workers {
        let mine: Vec<(String, String)> =
            entries.iter().skip(w).step_by(workers).cloned().collect();
        let clients: Vec<KvClient<Channel>> =
            addresses.iter().map(|a| KvClient::new(channel(a))).collect();
        tasks.spawn(async move {
            let mut clients = clients;
            let mut report = ReadReport::default();
            for (i, (key, want)) in mine.into_iter().enumerate() {
                report.checked += 1;
                let deadline = Instant::now() + Duration::from_secs(60);
                let mut attempt = 0;
                loop {
                    let n = clients.len();
                    let kv = &mut clients[(i + w + attempt) % n];
                    attempt += 1;
                    match get(kv, &key, cl).await {
                        Ok(reply) => {
                            let got = values(&reply);
                            if !got.contains(&want) {
                                report.missing.push((key.clone(), want.clone(), got));
                            }
                            break;
                        }
                        Err(e) if transient(e.code()) && Instant::now() < deadline => {
                            tokio::time::sleep(Duration::from_millis(250)).await;
                        }
                        Err(e) => {
                            report.unreadable.push((key.clone(), format!("{e:?}")));
                            break;
                        }
                    }
                }
            }
            report
        });
    }
    let mut all = ReadReport::default();
    while let Some(r) = tasks.join_next().await {
        let r = r.expect("read task");
        all.checked += r.checked;
        all.missing.extend(r.missing);
        all.unreadable.extend(r.unreadable);
    }
    all
}

// -------------------------------------------------------------------------------------------------
// Continuous writer load
// -------------------------------------------------------------------------------------------------

/// Continuous QUORUM writes of distinct keys with unique values by concurrent tasks, recording
/// every acknowledged write. Failed writes are counted, not recorded (nothing is promised about
/// them).
pub struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    acked: Arc<Mutex<BTreeMap<String, String>>>,
    failed: Arc<AtomicU64>,
    errors: Arc<Mutex<BTreeMap<String, u64>>>,
}

/// What a [`Load`] did.
#[derive(Debug)]
pub struct LoadReport {
    /// Every acknowledged write: key → value.
    pub acked: BTreeMap<String, String>,
    /// Writes that failed.
    pub failed: u64,
    /// Failures by gRPC code.
    pub errors: BTreeMap<String, u64>,
}

impl Load {
    /// Starts `writers` tasks writing keys `{prefix}-{writer}-{seq}` of `value_bytes` bytes at
    /// QUORUM, each spreading its writes over `addresses`.
    pub fn start(prefix: &str, addresses: Vec<String>, writers: usize, value_bytes: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(BTreeMap::new()));
        let failed = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(Mutex::new(BTreeMap::new()));
        let tasks = (0..writers)
            .map(|w| {
                let (stop, acked, failed, errors) =
                    (stop.clone(), acked.clone(), failed.clone(), errors.clone());
                let mut clients: Vec<KvClient<Channel>> =
                    addresses.iter().map(|a| KvClient::new(channel(a))).collect();
                let prefix = prefix.to_string();
                tokio::spawn(async move {
                    let mut seq = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        seq += 1;
                        let key = format!("{prefix}-{w}-{seq}");
                        let value = padded(&format!("{prefix}:{w}:{seq}:"), value_bytes);
                        let n = clients.len();
                        let kv = &mut clients[(w + seq as usize) % n];
                        match put(kv, &key, &value, pb::ConsistencyLevel::Quorum).await {
                            Ok(_) => {
                                acked.lock().expect("acked").insert(key, value);
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            }
                            Err(e) => {
                                failed.fetch_add(1, Ordering::Relaxed);
                                *errors
                                    .lock()
                                    .expect("errors")
                                    .entry(format!("{:?}", e.code()))
                                    .or_default() += 1;
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                        }
                    }
                })
            })
            .collect();
        Load { stop, tasks, acked, failed, errors }
    }

    /// Writes acknowledged so far.
    pub fn acked(&self) -> usize {
        self.acked.lock().expect("acked").len()
    }

    /// Writes failed so far.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Stops the writers (each finishes its request in flight) and reports.
    pub async fn stop(mut self) -> LoadReport {
        self.stop.store(true, Ordering::Relaxed);
        for t in std::mem::take(&mut self.tasks) {
            let _ = t.await;
        }
        let acked = std::mem::take(&mut *self.acked.lock().expect("acked"));
        let errors = std::mem::take(&mut *self.errors.lock().expect("errors"));
        LoadReport { acked, failed: self.failed.load(Ordering::Relaxed), errors }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in &self.tasks {
            t.abort();
        }
    }
}
