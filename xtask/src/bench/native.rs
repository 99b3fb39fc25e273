//! `cargo xtask bench native [--quick] [--skip-compare] [--skip-join]`: the native `ringside`
//! cluster measured side by side with its peers, in one run on this machine. These are
//! measurements to read, not tests: nothing is asserted, targets are reported as met or not.
//!
//! 1. **Physical limits**: the rate of serial `write` (4 KiB) + `fdatasync` on the disk the data
//!    lives on, and the loopback TCP round trip.
//! 2. **Ringside**: a 3-node cluster (`ringside cluster up`, RF 3, data under
//!    `target/bench/native`). QUORUM writes, then QUORUM reads of prefilled keys, closed loop at
//!    concurrency C; then writes open loop at 50 % of the measured write peak (the p99 at half
//!    load). Group-commit counters come from each node's `/metrics`.
//! 3. **etcd 3.4**: a 3-member cluster (default fsync behaviour), the same loads with the same
//!    client (`ringside bench --target etcd`, etcd's gRPC KV API, linearizable reads).
//! 4. **Redis**: one `redis-server` without persistence (the unreplicated ceiling) and one with
//!    `appendfsync always` (one durable node), driven by `redis-benchmark` at the same C and value
//!    size.
//! 5. **Join**: a fresh 3-node cluster loaded with ~1 GiB of 64 KiB values at QUORUM; a 4th node
//!    joins with unthrottled streaming. Streaming rate next to `cp -r` + fsync of one node's data
//!    directory on the same disk, and the p99 of a light open-loop QUORUM write load before and
//!    during the join.
//!
//! Missing peers (etcd, Redis) are installed with apt-get when running as root; otherwise their
//! rows are skipped with a message saying what to install. Every process is stopped at the end
//! and on error (guards stop them when dropped). The report is printed and written to
//! `target/bench/native/report.md`; the join's large data directories are removed afterwards.

mod probe;
mod report;

use crate::{project_root, tools};
use anyhow::{Context, Result, bail};
use probe::*;
use serde_json::Value;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage: cargo xtask bench native [--quick] [--skip-compare] [--skip-join]

  --quick         small sizes and short runs (about a minute), for development
  --skip-compare  skip the Ringside / etcd / Redis comparison
  --skip-join     skip the join streaming benchmark
";

const MIB: f64 = 1024.0 * 1024.0;

/// Sizes and durations of one run.
struct Plan {
    duration: Duration,
    warmup: Duration,
    concurrency: usize,
    keys: u64,
    value_size: usize,
    redis_requests: u64,
    fsync_time: Duration,
    rtt_round_trips: usize,
    join_keys: u64,
    join_value: usize,
    join_concurrency: usize,
    fg_rate: f64,
    fg_concurrency: usize,
    fg_duration: Duration,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                duration: Duration::from_secs(3),
                warmup: Duration::from_secs(1),
                concurrency: 64,
                keys: 2_000,
                value_size: 256,
                redis_requests: 30_000,
                fsync_time: Duration::from_secs(1),
                rtt_round_trips: 5_000,
                join_keys: 1_024,
                join_value: 64 * 1024,
                join_concurrency: 16,
                fg_rate: 100.0,
                fg_concurrency: 16,
                fg_duration: Duration::from_secs(3),
            }
        } else {
            Plan {
                duration: Duration::from_secs(15),
                warmup: Duration::from_secs(2),
                concurrency: 64,
                keys: 10_000,
                value_size: 256,
                redis_requests: 500_000,
                fsync_time: Duration::from_secs(3),
                rtt_round_trips: 20_000,
                join_keys: 16_384,
                join_value: 64 * 1024,
                join_concurrency: 16,
                fg_rate: 200.0,
                fg_concurrency: 16,
                fg_duration: Duration::from_secs(15),
            }
        }
    }
}

/// `cargo xtask bench native ...`.
pub fn run(args: &[String]) -> Result<()> {
    let (mut quick, mut compare, mut join) = (false, true, true);
    for arg in args {
        match arg.as_str() {
            "--quick" => quick = true,
            "--skip-compare" => compare = false,
            "--skip-join" => join = false,
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(());
            }
            other => {
                eprint!("{USAGE}");
                bail!("unknown argument `{other}` to `cargo xtask bench native`");
            }
        }
    }
    let plan = Plan::new(quick);
    tools::run(tools::cargo().args(["build", "--release", "-p", "ringside-node"]))?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join("target"));
    let binary = target.join("release/ringside");
    if !binary.is_file() {
        bail!("`cargo build --release -p ringside-node` did not produce {}", binary.display());
    }
    let dir = target.join("bench/native");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("cannot clear {} from an earlier run", dir.display()))?;
    }
    std::fs::create_dir_all(&dir)?;
    let peers = if compare { ensure_peers() } else { Peers::default() };
    // One block of free loopback ports for everything (below the ephemeral range).
    let base = ringside_procs::free_ports(24)
        .context("no block of 24 free loopback ports in 20000-31999")?;
    let bench = Bench { binary, dir: dir.clone(), plan, ports: base };
    let started = now_utc();
    let load_start = load_average();
    println!(
        "xtask: native benchmarks ({}), results in {}, ports {}-{}",
        if quick { "quick" } else { "full" },
        dir.display(),
        base,
        base + 23
    );
    let mut compared = None;
    if compare {
        compared = Some(bench.compare(&peers)?);
    }
    let mut joined = None;
    if join {
        let outcome = bench.join();
        // The join's data directories are large: remove them whatever happened (logs stay).
        for n in 1..=4 {
            let _ = std::fs::remove_dir_all(dir.join(format!("join/n{n}/data")));
        }
        let _ = std::fs::remove_dir_all(dir.join("join/copy"));
        joined = Some(outcome?);
    }
    let load_end = load_average();
    let mut report = String::new();
    let _ = writeln!(
        report,
        "Run {started} ({}), `cargo xtask bench native{}`; load average {load_start} at the start, {load_end} at the end.\n",
        if quick { "quick" } else { "full" },
        if quick { " --quick" } else { "" }
    );
    if let Some(c) = &compared {
        report.push_str(&c.render(&bench.plan, &peers));
    }
    if let Some(j) = &joined {
        report.push_str(&j.render(&bench.plan));
    }
    let path = dir.join("report.md");
    std::fs::write(&path, &report)?;
    println!("\n{report}");
    println!("xtask: report written to {}", path.display());
    Ok(())
}

/// Which peers are installed.
#[derive(Default)]
struct Peers {
    etcd: Option<String>,
    redis: Option<String>,
}

/// Finds etcd and Redis, installing them with apt-get when running as root.
fn ensure_peers() -> Peers {
    let wanted: [(&str, &[&str], &str); 2] = [
        ("etcd", &["etcd", "etcdctl"], "etcd-server etcd-client"),
        ("redis", &["redis-server", "redis-benchmark"], "redis-server"),
    ];
    let missing = |bins: &[&str]| bins.iter().any(|b| tools::find_executable(b).is_none());
    let packages: Vec<&str> = wanted
        .iter()
        .filter(|(_, bins, _)| missing(bins))
        .flat_map(|(_, _, pkgs)| pkgs.split(' '))
        .collect();
    if !packages.is_empty() {
        let is_root =
            tools::output(Command::new("id").arg("-u")).is_ok_and(|uid| uid.trim() == "0");
        if is_root && tools::find_executable("apt-get").is_some() {
            println!("xtask: installing missing peers with apt-get: {}", packages.join(" "));
            let install = |c: &mut Command| tools::run(c.args(["install", "-y"]).args(&packages));
            if install(&mut Command::new("apt-get")).is_err() {
                let _ = tools::run(Command::new("apt-get").arg("update"));
                if let Err(e) = install(&mut Command::new("apt-get")) {
                    eprintln!("xtask: apt-get could not install {}: {e:#}", packages.join(" "));
                }
            }
        }
    }
    let mut peers = Peers::default();
    for (name, bins, pkgs) in wanted {
        if missing(bins) {
            eprintln!(
                "xtask: {name} is not installed ({} not found) and could not be installed \
                 (not root or no apt-get): its rows are skipped. Install it with \
                 `apt-get install -y {pkgs}`.",
                bins.join(", ")
            );
            continue;
        }
        let version_arg = if name == "etcd" { "--version" } else { "-v" };
        let version = Command::new(bins[0])
            .arg(version_arg)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or("").to_string())
            .unwrap_or_default();
        if name == "etcd" {
            peers.etcd = Some(version);
        } else {
            peers.redis = Some(version);
        }
    }
    peers
}

/// A child process stopped with SIGTERM (then SIGKILL) when dropped.
struct Proc {
    name: String,
    child: Option<Child>,
}

impl Proc {
    fn spawn(name: &str, command: &mut Command, stdout: &Path, stderr: &Path) -> Result<Proc> {
        let out =
            File::create(stdout).with_context(|| format!("cannot create {}", stdout.display()))?;
        let err = if stdout == stderr {
            out.try_clone()?
        } else {
            File::create(stderr).with_context(|| format!("cannot create {}", stderr.display()))?
        };
        command.stdin(Stdio::null()).stdout(out).stderr(err);
        println!("$ {}  (output in {})", tools::display(command), stdout.display());
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {name}: `{}`", tools::display(command)))?;
        Ok(Proc { name: name.to_string(), child: Some(child) })
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Fails when the process has exited.
    fn check(&mut self) -> Result<()> {
        if let Some(child) = &mut self.child
            && let Some(status) = child.try_wait()?
        {
            bail!("{} exited unexpectedly ({status})", self.name);
        }
        Ok(())
    }

    /// SIGTERM, then SIGKILL after a grace period. Idempotent.
    fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let stopped = ringside_procs::terminate(&mut child, Duration::from_secs(30));
        if stopped.killed {
            eprintln!("xtask: {} did not stop within 30 s of SIGTERM; killed it", self.name);
        }
        stopped.status
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One load generator run, from `ringside bench --json`.
#[derive(Clone, Debug, Default)]
struct Load {
    ops: u64,
    errors: u64,
    throughput: f64,
    mib_per_s: f64,
    elapsed: f64,
    mean: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    service_p99: Option<f64>,
    first_error: Option<String>,
    rate: Option<f64>,
}

impl Load {
    fn parse(text: &str) -> Result<Load> {
        let v: Value = serde_json::from_str(text.trim()).with_context(|| {
            format!("`ringside bench` printed something else than JSON: {text}")
        })?;
        let ms = |l: &Value, k: &str| l[k].as_f64().unwrap_or(f64::NAN) / 1000.0;
        Ok(Load {
            ops: v["ops"].as_u64().unwrap_or(0),
            errors: v["errors"].as_u64().unwrap_or(0),
            throughput: v["throughput"].as_f64().unwrap_or(0.0),
            mib_per_s: v["value_mib_per_s"].as_f64().unwrap_or(0.0),
            elapsed: v["elapsed_s"].as_f64().unwrap_or(0.0),
            mean: ms(&v["latency"], "mean_us"),
            p50: ms(&v["latency"], "p50_us"),
            p99: ms(&v["latency"], "p99_us"),
            p999: ms(&v["latency"], "p999_us"),
            service_p99: v["service"].is_object().then(|| ms(&v["service"], "p99_us")),
            first_error: v["first_error"].as_str().map(str::to_string),
            rate: v["rate_target"].as_f64(),
        })
    }

    fn summary(&self) -> String {
        let mut s = format!(
            "{} ops in {:.1} s: {:.0} ops/s, p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, {} errors",
            self.ops, self.elapsed, self.throughput, self.p50, self.p99, self.p999, self.errors
        );
        if let Some(e) = &self.first_error {
            let _ = write!(s, " (first: {e})");
        }
        s
    }
}

/// A `redis-benchmark` result.
#[derive(Clone, Debug, Default)]
struct RedisLoad {
    rps: f64,
    p50: f64,
    p99: f64,
}

/// What the servers did during one run.
#[derive(Clone, Debug, Default)]
struct Observed {
    /// Ringside nodes: fsyncs per second, averaged over the nodes.
    syncs_per_s: Option<f64>,
    /// Ringside nodes: inputs (client requests and internode messages) per fsync.
    inputs_per_sync: Option<f64>,
    /// Ringside: mean latency of the operation inside the coordinator (gRPC handler to reply),
    /// from `ringside_request_duration_seconds`, in ms.
    node_mean_ms: Option<f64>,
    /// CPU used by the server processes, in cores.
    server_cores: f64,
    /// CPU busy on the whole machine (servers, load generator, anything else), in cores.
    machine_cores: f64,
    /// CPU cores of the machine.
    machine_total: f64,
    /// Server CPU time per successful operation, in µs.
    server_us_per_op: f64,
}

/// Counters taken before and after a run.
struct Snapshot {
    at: Instant,
    /// Per ringside node: syncs, synced inputs, request duration sum and count of the op.
    nodes: Vec<[f64; 4]>,
    /// CPU ticks of the server processes.
    ticks: u64,
    /// Machine: busy and total ticks, and the number of CPUs.
    machine: (u64, u64, usize),
}

impl Snapshot {
    fn take(metrics: &[String], op: &str, pids: &[u32]) -> Snapshot {
        let labels = format!("op=\"{op}\"");
        let nodes = metrics
            .iter()
            .map(|m| {
                let text = scrape(m).unwrap_or_default();
                [
                    metric(&text, "ringside_storage_syncs_total"),
                    metric(&text, "ringside_storage_synced_inputs_total"),
                    metric_with(&text, "ringside_request_duration_seconds_sum", &labels),
                    metric_with(&text, "ringside_request_duration_seconds_count", &labels),
                ]
            })
            .collect();
        Snapshot {
            at: Instant::now(),
            nodes,
            ticks: pids.iter().map(|p| cpu_ticks(*p)).sum(),
            machine: machine_ticks(),
        }
    }

    fn since(&self, before: &Snapshot, ops: u64) -> Observed {
        let secs = self.at.duration_since(before.at).as_secs_f64().max(0.001);
        let d = |i: usize| -> f64 {
            self.nodes.iter().zip(&before.nodes).map(|(a, b)| a[i] - b[i]).sum()
        };
        let nodes = self.nodes.len() as f64;
        let (syncs, inputs, sum, count) = (d(0), d(1), d(2), d(3));
        let server_secs = self.ticks.saturating_sub(before.ticks) as f64 / clock_ticks();
        let busy = self.machine.0.saturating_sub(before.machine.0) as f64;
        let total = self.machine.1.saturating_sub(before.machine.1) as f64;
        let cpus = self.machine.2 as f64;
        Observed {
            syncs_per_s: (nodes > 0.0).then(|| syncs / nodes / secs),
            inputs_per_sync: (syncs > 0.0).then(|| inputs / syncs),
            node_mean_ms: (count > 0.0).then(|| sum / count * 1000.0),
            server_cores: server_secs / secs,
            machine_cores: if total > 0.0 { busy / total * cpus } else { 0.0 },
            machine_total: cpus,
            server_us_per_op: if ops > 0 { server_secs * 1e6 / ops as f64 } else { 0.0 },
        }
    }
}

/// Results of the comparison.
#[derive(Default)]
struct Compared {
    fsync_rate: f64,
    fsync_p50: f64,
    fsync_p99: f64,
    rtt_p50_us: f64,
    rtt_p99_us: f64,
    ringside_put: Load,
    ringside_get: Load,
    ringside_half: Load,
    /// Writes one at a time: the latency of the write path without queueing.
    ringside_serial: Load,
    /// What the servers did during each run, by row label.
    observed: Vec<(String, Load, Observed)>,
    etcd_put: Option<Load>,
    etcd_get: Option<Load>,
    etcd_half: Option<Load>,
    etcd_serial: Option<Load>,
    redis_set: Option<RedisLoad>,
    redis_get: Option<RedisLoad>,
    redis_aof_set: Option<RedisLoad>,
}

/// Results of the join benchmark.
#[derive(Default)]
struct Joined {
    load: Load,
    loaded_bytes: u64,
    node_dir_bytes: u64,
    join_secs: f64,
    join_line: String,
    streamed_bytes: f64,
    streamed_keys: f64,
    stream_secs: f64,
    copy_bytes: u64,
    copy_secs: f64,
    fg_before: Load,
    fg_during: Load,
}

struct Bench {
    binary: PathBuf,
    dir: PathBuf,
    plan: Plan,
    /// First port of the block this run uses.
    ports: u16,
}

/// A running `ringside cluster up`.
struct RingsideCluster {
    proc: Proc,
    grpc: Vec<String>,
    metrics: Vec<String>,
    dir: PathBuf,
}

impl RingsideCluster {
    /// The node processes (children of `ringside cluster up`).
    fn node_pids(&self) -> Vec<u32> {
        self.proc.pid().map(ringside_procs::children).unwrap_or_default()
    }
}

impl Bench {
    fn millis(d: Duration) -> String {
        format!("{}ms", d.as_millis())
    }

    /// Arguments of a closed-loop `ringside bench` run with the plan's sizes.
    fn load_args(&self, target: &str, endpoints: &[String], op: &str) -> Vec<String> {
        let p = &self.plan;
        vec![
            "--target".into(),
            target.into(),
            "--endpoints".into(),
            endpoints.join(","),
            "--op".into(),
            op.into(),
            "--concurrency".into(),
            p.concurrency.to_string(),
            "--keys".into(),
            p.keys.to_string(),
            "--value-size".into(),
            p.value_size.to_string(),
            "--duration".into(),
            Self::millis(p.duration),
            "--warmup".into(),
            Self::millis(p.warmup),
        ]
    }

    fn bench_command(&self, args: &[String]) -> Command {
        let mut command = Command::new(&self.binary);
        command.arg("bench").args(args).arg("--json");
        command
    }

    /// Runs `ringside bench` to completion and parses its report.
    fn load(&self, label: &str, args: &[String]) -> Result<Load> {
        let mut command = self.bench_command(args);
        println!("$ {}", tools::display(&command));
        let out = tools::output(&mut command)?;
        let load = Load::parse(&out)?;
        println!("  {label}: {}", load.summary());
        Ok(load)
    }

    /// Writes every key of the key space once (so reads find them).
    fn prefill(&self, target: &str, endpoints: &[String]) -> Result<Load> {
        let mut args = self.load_args(target, endpoints, "put");
        // Replace the duration and warm-up by an exact operation count.
        let cut = args.iter().position(|a| a == "--duration").expect("built above");
        args.truncate(cut);
        args.extend(["--ops".into(), self.plan.keys.to_string(), "--sequential".into()]);
        self.load("prefill", &args)
    }

    fn start_ringside(
        &self,
        dir: &Path,
        grpc_base: u16,
        metrics_base: u16,
    ) -> Result<RingsideCluster> {
        std::fs::create_dir_all(dir)?;
        let log = dir.join("cluster-up.log");
        let proc = Proc::spawn(
            "ringside cluster up",
            Command::new(&self.binary)
                .args(["cluster", "up", "--nodes", "3", "--rf", "3", "--cluster-name", "bench"])
                .arg("--data-dir")
                .arg(dir)
                .args(["--base-port", &grpc_base.to_string()])
                .args(["--metrics-base-port", &metrics_base.to_string()])
                .args(["--stream-throughput-mib", "0"]),
            &log,
            &log,
        )?;
        let mut cluster = RingsideCluster {
            proc,
            grpc: (0..3).map(|i| format!("127.0.0.1:{}", grpc_base + i)).collect(),
            metrics: (0..3).map(|i| format!("127.0.0.1:{}", metrics_base + i)).collect(),
            dir: dir.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains(" is up: ") {
                break;
            }
            cluster
                .proc
                .check()
                .with_context(|| format!("the cluster did not start; see {}", log.display()))?;
            if Instant::now() > deadline {
                bail!("the cluster did not come up within 2 minutes; see {}", log.display());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        println!("  ringside cluster up: {}", cluster.grpc.join(", "));
        Ok(cluster)
    }

    /// Runs a load and records what the servers did meanwhile.
    fn observed_load(
        &self,
        label: &str,
        args: &[String],
        metrics: &[String],
        op: &str,
        pids: &[u32],
    ) -> Result<(Load, Observed)> {
        let before = Snapshot::take(metrics, op, pids);
        let load = self.load(label, args)?;
        let observed = Snapshot::take(metrics, op, pids).since(&before, load.ops);
        println!(
            "    servers: {:.2} cores ({:.0} µs CPU per op), machine {:.2} of {} cores busy{}",
            observed.server_cores,
            observed.server_us_per_op,
            observed.machine_cores,
            observed.machine_total,
            match (observed.syncs_per_s, observed.inputs_per_sync, observed.node_mean_ms) {
                (Some(s), Some(i), Some(m)) => format!(
                    "; per node {s:.0} fsyncs/s, {i:.1} inputs per fsync; coordinator mean {m:.2} ms"
                ),
                _ => String::new(),
            }
        );
        Ok((load, observed))
    }

    fn compare(&self, peers: &Peers) -> Result<Compared> {
        let mut c = Compared::default();
        println!("\n== physical limits");
        let probe_dir = self.dir.join("probe");
        std::fs::create_dir_all(&probe_dir)?;
        let (rate, p50, p99) = fsync_rate(&probe_dir, self.plan.fsync_time)?;
        (c.fsync_rate, c.fsync_p50, c.fsync_p99) = (rate, p50, p99);
        println!("  fsync: {rate:.0}/s serial, p50 {p50:.2} ms, p99 {p99:.2} ms");
        let (r50, r99) = loopback_rtt(self.plan.rtt_round_trips)?;
        (c.rtt_p50_us, c.rtt_p99_us) = (r50, r99);
        println!("  loopback TCP round trip: p50 {r50:.1} µs, p99 {r99:.1} µs");

        println!("\n== ringside: 3 nodes, RF 3");
        let cluster =
            self.start_ringside(&self.dir.join("ringside"), self.ports, self.ports + 4)?;
        let pids = cluster.node_pids();
        let (m, grpc) = (&cluster.metrics, &cluster.grpc);
        let args = self.load_args("ringside", grpc, "put");
        let (put, o) = self.observed_load("put QUORUM", &args, m, "put", &pids)?;
        c.observed.push(("ringside put QUORUM".into(), put.clone(), o));
        c.ringside_put = put;
        let mut args = self.load_args("ringside", grpc, "put");
        set_arg(&mut args, "--concurrency", "1");
        let (load, o) = self.observed_load("put QUORUM, C = 1", &args, m, "put", &pids)?;
        c.observed.push(("ringside put QUORUM, C = 1".into(), load.clone(), o));
        c.ringside_serial = load;
        self.prefill("ringside", grpc)?;
        let args = self.load_args("ringside", grpc, "get");
        let (get, o) = self.observed_load("get QUORUM", &args, m, "get", &pids)?;
        c.observed.push(("ringside get QUORUM".into(), get.clone(), o));
        c.ringside_get = get;
        let half = (c.ringside_put.throughput / 2.0).max(1.0);
        let mut args = self.load_args("ringside", grpc, "put");
        args.extend(["--rate".into(), format!("{half:.0}")]);
        let (load, o) = self.observed_load("put QUORUM at 50 % of peak", &args, m, "put", &pids)?;
        c.observed.push(("ringside put QUORUM at 50 % of peak".into(), load.clone(), o));
        c.ringside_half = load;
        drop(cluster);

        if peers.etcd.is_some() {
            println!("\n== etcd: 3 members");
            let endpoints =
                self.start_etcd(&self.dir.join("etcd"), self.ports + 8, self.ports + 11)?;
            let grpc = endpoints.1.clone();
            let pids: Vec<u32> = endpoints.0.iter().filter_map(Proc::pid).collect();
            let args = self.load_args("etcd", &grpc, "put");
            let (put, o) = self.observed_load("etcd put", &args, &[], "put", &pids)?;
            c.observed.push(("etcd put".into(), put.clone(), o));
            let mut args = self.load_args("etcd", &grpc, "put");
            set_arg(&mut args, "--concurrency", "1");
            let (load, o) = self.observed_load("etcd put, C = 1", &args, &[], "put", &pids)?;
            c.observed.push(("etcd put, C = 1".into(), load.clone(), o));
            c.etcd_serial = Some(load);
            self.prefill("etcd", &grpc)?;
            let args = self.load_args("etcd", &grpc, "get");
            let (get, o) =
                self.observed_load("etcd get (linearizable)", &args, &[], "get", &pids)?;
            c.observed.push(("etcd range (linearizable)".into(), get.clone(), o));
            c.etcd_get = Some(get);
            let half = (put.throughput / 2.0).max(1.0);
            let mut args = self.load_args("etcd", &grpc, "put");
            args.extend(["--rate".into(), format!("{half:.0}")]);
            let (load, o) =
                self.observed_load("etcd put at 50 % of its peak", &args, &[], "put", &pids)?;
            c.observed.push(("etcd put at 50 % of its peak".into(), load.clone(), o));
            c.etcd_half = Some(load);
            c.etcd_put = Some(put);
            drop(endpoints);
        }

        if peers.redis.is_some() {
            println!("\n== redis: one server");
            let dir = self.dir.join("redis");
            std::fs::create_dir_all(&dir)?;
            let port = self.ports + 14;
            let server = self.start_redis(&dir, port, false)?;
            let (set, get) = self.redis_benchmark(port, "set,get")?;
            (c.redis_set, c.redis_get) = (set, get);
            drop(server);
            let aof_dir = self.dir.join("redis-aof");
            std::fs::create_dir_all(&aof_dir)?;
            let port = self.ports + 15;
            let server = self.start_redis(&aof_dir, port, true)?;
            let (set, _) = self.redis_benchmark(port, "set")?;
            c.redis_aof_set = set;
            drop(server);
        }
        Ok(c)
    }

    /// Starts a 3-member etcd cluster; returns the processes and the client addresses.
    fn start_etcd(
        &self,
        dir: &Path,
        client_base: u16,
        peer_base: u16,
    ) -> Result<(Vec<Proc>, Vec<String>)> {
        std::fs::create_dir_all(dir)?;
        let clients: Vec<String> =
            (0..3).map(|i| format!("127.0.0.1:{}", client_base + i)).collect();
        let peers: Vec<String> =
            (0..3).map(|i| format!("http://127.0.0.1:{}", peer_base + i)).collect();
        let initial: Vec<String> =
            peers.iter().enumerate().map(|(i, p)| format!("m{}={p}", i + 1)).collect();
        let mut procs = Vec::new();
        for i in 0..3 {
            let name = format!("m{}", i + 1);
            let log = dir.join(format!("{name}.log"));
            let client_url = format!("http://{}", clients[i]);
            procs.push(Proc::spawn(
                &format!("etcd {name}"),
                Command::new("etcd")
                    .args(["--name", &name])
                    .arg("--data-dir")
                    .arg(dir.join(&name))
                    .args(["--listen-client-urls", &client_url])
                    .args(["--advertise-client-urls", &client_url])
                    .args(["--listen-peer-urls", &peers[i]])
                    .args(["--initial-advertise-peer-urls", &peers[i]])
                    .args(["--initial-cluster", &initial.join(",")])
                    .args(["--initial-cluster-state", "new", "--initial-cluster-token", "bench"])
                    .args(["--logger", "zap", "--log-level", "warn"]),
                &log,
                &log,
            )?);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let healthy = Command::new("etcdctl")
                .args(["--endpoints", &clients.join(","), "endpoint", "health"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if healthy {
                break;
            }
            for p in &mut procs {
                p.check().with_context(|| format!("see the logs in {}", dir.display()))?;
            }
            if Instant::now() > deadline {
                bail!("etcd did not become healthy within 60 s; see the logs in {}", dir.display());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        println!("  etcd healthy: {}", clients.join(", "));
        Ok((procs, clients))
    }

    fn start_redis(&self, dir: &Path, port: u16, fsync_always: bool) -> Result<Proc> {
        let log = dir.join("redis.log");
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--protected-mode", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir);
        if fsync_always {
            command.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            command.args(["--appendonly", "no"]);
        }
        let mut proc = Proc::spawn("redis-server", &mut command, &log, &log)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let pong = TcpStream::connect(("127.0.0.1", port)).and_then(|mut s| {
                s.set_read_timeout(Some(Duration::from_secs(1)))?;
                s.write_all(b"PING\r\n")?;
                let mut buf = [0u8; 7];
                s.read_exact(&mut buf)?;
                Ok(buf.starts_with(b"+PONG"))
            });
            if pong.unwrap_or(false) {
                return Ok(proc);
            }
            proc.check().with_context(|| format!("see {}", log.display()))?;
            if Instant::now() > deadline {
                bail!("redis-server did not answer within 30 s; see {}", log.display());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs redis-benchmark; returns the SET and GET rows it printed.
    fn redis_benchmark(
        &self,
        port: u16,
        tests: &str,
    ) -> Result<(Option<RedisLoad>, Option<RedisLoad>)> {
        let p = &self.plan;
        let out = tools::output(
            Command::new("redis-benchmark")
                .args(["-h", "127.0.0.1", "-p", &port.to_string()])
                .args(["-c", &p.concurrency.to_string(), "-P", "1"])
                .args(["-d", &p.value_size.to_string(), "-r", &p.keys.to_string()])
                .args(["-n", &p.redis_requests.to_string(), "-t", tests, "--csv"]),
        )?;
        // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
        let row = |name: &str| {
            out.lines().find(|l| l.starts_with(&format!("\"{name}\""))).map(|l| {
                let f: Vec<f64> =
                    l.split(',').map(|x| x.trim_matches('"').parse().unwrap_or(f64::NAN)).collect();
                RedisLoad { rps: f[1], p50: f[4], p99: f[6] }
            })
        };
        let (set, get) = (row("SET"), row("GET"));
        for (name, r) in [("SET", &set), ("GET", &get)] {
            if let Some(r) = r {
                println!(
                    "  redis {name}: {:.0} ops/s, p50 {:.2} ms, p99 {:.2} ms",
                    r.rps, r.p50, r.p99
                );
            }
        }
        Ok((set, get))
    }

    fn join(&self) -> Result<Joined> {
        println!("\n== join: 3 nodes + 1, unthrottled streaming");
        let mut j = Joined::default();
        let dir = self.dir.join("join");
        let (grpc_base, metrics_base) = (self.ports + 16, self.ports + 20);
        let cluster = self.start_ringside(&dir, grpc_base, metrics_base)?;
        let p = &self.plan;
        j.loaded_bytes = p.join_keys * p.join_value as u64;
        let load_args: Vec<String> = vec![
            "--endpoints".into(),
            cluster.grpc.join(","),
            "--op".into(),
            "put".into(),
            "--cl".into(),
            "quorum".into(),
            "--concurrency".into(),
            p.join_concurrency.to_string(),
            "--keys".into(),
            p.join_keys.to_string(),
            "--ops".into(),
            p.join_keys.to_string(),
            "--sequential".into(),
            "--key-prefix".into(),
            "join/".into(),
            "--value-size".into(),
            p.join_value.to_string(),
            "--timeout".into(),
            "60s".into(),
        ];
        j.load = self.load(
            &format!(
                "load {:.0} MiB ({} x {} KiB values, QUORUM)",
                j.loaded_bytes as f64 / MIB,
                p.join_keys,
                p.join_value / 1024
            ),
            &load_args,
        )?;
        if j.load.errors > 0 {
            bail!("loading the join data failed: {}", j.load.summary());
        }
        j.node_dir_bytes = dir_size(&cluster.dir.join("n1/data"));

        // The same light foreground load before and during the join.
        let fg_args = |duration: &str, warmup: &str| -> Vec<String> {
            vec![
                "--endpoints".into(),
                cluster.grpc.join(","),
                "--op".into(),
                "put".into(),
                "--cl".into(),
                "quorum".into(),
                "--concurrency".into(),
                p.fg_concurrency.to_string(),
                "--rate".into(),
                format!("{}", p.fg_rate),
                "--keys".into(),
                "10000".into(),
                "--key-prefix".into(),
                "fg/".into(),
                "--value-size".into(),
                p.value_size.to_string(),
                "--duration".into(),
                duration.into(),
                "--warmup".into(),
                warmup.into(),
            ]
        };
        j.fg_before =
            self.load("foreground before the join", &fg_args(&Self::millis(p.fg_duration), "1s"))?;

        let node4 = format!("127.0.0.1:{}", grpc_base + 3);
        let metrics4 = format!("127.0.0.1:{}", metrics_base + 3);
        let n4 = dir.join("n4");
        std::fs::create_dir_all(&n4)?;
        let log4 = n4.join("node.log");
        let mut node = Proc::spawn(
            "node 4",
            Command::new(&self.binary)
                .args(["node", "--listen", &node4, "--metrics", &metrics4])
                .args(["--seeds", &cluster.grpc[0], "--host-id", "4", "--cluster-name", "bench"])
                .args(["--stream-throughput-mib", "0", "--rf", "3"])
                .arg("--data-dir")
                .arg(n4.join("data")),
            &log4,
            &log4,
        )?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let up = Command::new(&self.binary)
                .args(["status", "--node", &node4])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if up {
                break;
            }
            node.check().with_context(|| format!("see {}", log4.display()))?;
            if Instant::now() > deadline {
                bail!("node 4 did not answer within 60 s; see {}", log4.display());
            }
            std::thread::sleep(Duration::from_millis(200));
        }

        // Foreground load in the background for the whole join (stopped with SIGTERM after).
        let fg_out = dir.join("foreground-during.json");
        let mut command = self.bench_command(&fg_args("3600s", "1s"));
        let mut fg = Proc::spawn(
            "foreground load",
            &mut command,
            &fg_out,
            &dir.join("foreground-during.log"),
        )?;
        std::thread::sleep(Duration::from_millis(1200));

        // Sample node 4's streamed bytes to time the streaming phase.
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let stop = stop.clone();
            let metrics4 = metrics4.clone();
            std::thread::spawn(move || {
                let start = Instant::now();
                let mut samples = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(text) = scrape(&metrics4) {
                        samples.push((
                            start.elapsed().as_secs_f64(),
                            metric(&text, "ringside_stream_bytes_received_total"),
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                samples
            })
        };
        let t = Instant::now();
        let mut command = Command::new(&self.binary);
        command.args(["join", "--node", &node4]);
        println!("$ {}", tools::display(&command));
        let joined = tools::output(&mut command);
        j.join_secs = t.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        let samples = sampler.join().unwrap_or_default();
        fg.stop();
        let joined = joined.context("the join failed")?;
        print!("{joined}");
        j.join_line = joined.lines().find(|l| l.starts_with("joined:")).unwrap_or("").to_string();
        let fg_text = std::fs::read_to_string(&fg_out).unwrap_or_default();
        j.fg_during = Load::parse(&fg_text).context("the foreground load during the join")?;
        println!("  foreground during the join: {}", j.fg_during.summary());

        let text = scrape(&metrics4).unwrap_or_default();
        j.streamed_bytes = metric(&text, "ringside_stream_bytes_received_total");
        j.streamed_keys = metric(&text, "ringside_stream_keys_received_total");
        // Streaming phase: from the last sample before any byte arrived to the first sample
        // showing the final count (an overestimate by at most two sampling intervals).
        let started = samples.iter().take_while(|(_, b)| *b == 0.0).last().map_or(0.0, |s| s.0);
        let finished = samples
            .iter()
            .find(|(_, b)| *b >= j.streamed_bytes && j.streamed_bytes > 0.0)
            .map_or(j.join_secs, |s| s.0);
        j.stream_secs = (finished - started).max(0.001);
        println!(
            "  streamed {:.1} MiB ({:.0} keys): streaming phase {:.2} s ({:.1} MiB/s), whole join {:.2} s ({:.1} MiB/s)",
            j.streamed_bytes / MIB,
            j.streamed_keys,
            j.stream_secs,
            j.streamed_bytes / MIB / j.stream_secs,
            j.join_secs,
            j.streamed_bytes / MIB / j.join_secs
        );
        drop(node);
        drop(cluster);

        // Raw copy of one node's data directory on the same disk, made durable.
        let source = dir.join("n1/data");
        let copy = dir.join("copy");
        j.copy_bytes = dir_size(&source);
        let t = Instant::now();
        tools::run(Command::new("cp").arg("-r").arg(&source).arg(&copy))?;
        fsync_tree(&copy)?;
        j.copy_secs = t.elapsed().as_secs_f64();
        println!(
            "  raw copy: {:.1} MiB in {:.2} s ({:.1} MiB/s)",
            j.copy_bytes as f64 / MIB,
            j.copy_secs,
            j.copy_bytes as f64 / MIB / j.copy_secs
        );
        Ok(j)
    }
}
