//! `ringside bench`: a load generator for Ringside's `Kv` API and, for side-by-side comparisons,
//! etcd's v3 `KV` API.
//!
//! A fixed number of workers (`--concurrency`) issue requests until `--duration` has passed or
//! `--ops` operations were started, whichever comes first (SIGTERM or Ctrl-C also stop the run;
//! the report is printed either way). Request *i* of a run goes to endpoint *i* mod *n* of the
//! endpoints given (round robin); its key is *i* mod `--keys` with `--sequential`, otherwise drawn
//! uniformly from the key space.
//!
//! Two ways of pacing:
//! - **closed loop** (default): each worker sends its next request as soon as the previous one
//!   answered; throughput is what the system sustains at that concurrency, latency is per request.
//! - **open loop** (`--rate R`): request *i* is *scheduled* at `start + i / R`, whatever happened
//!   before. A worker waits for the scheduled time and sends; when every worker is busy the request
//!   goes out late, and its latency is measured from the **scheduled** time, not from when it was
//!   sent. That is what a client arriving at a fixed rate sees, and it avoids coordinated omission
//!   (a stalled server would otherwise hold back the requests that would have measured the stall).
//!   The report also gives the service time (from the actual send) for comparison.
//!
//! Latencies are recorded in microseconds with HdrHistogram (3 significant digits). Requests that
//! start during `--warmup` are sent but not recorded. Throughput is recorded operations divided by
//! the time from the end of the warm-up to the last recorded completion.

use crate::config::DEFAULT_LISTEN;
use crate::convert::consistency_to_proto;
use crate::proto::v1 as pb;
use crate::proto::v1::kv_client::KvClient;
use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use ringside_core::consistency::ConsistencyLevel;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use tonic::transport::Channel;

/// Code generated from the trimmed `proto/etcd/kv.proto` (etcd v3's `Range` and `Put`).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod etcdpb {
    tonic::include_proto!("etcdserverpb");
}

/// Which API the load goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum System {
    /// Ringside's `ringside.v1.Kv` (Put / Get at `--cl`).
    Ringside,
    /// etcd v3's `etcdserverpb.KV` (Put / Range).
    Etcd,
}

/// The operation every request performs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// Write a value (blind write for Ringside).
    Put,
    /// Read a key (Ringside Get at `--cl`; etcd Range, linearizable unless `--serializable`).
    Get,
}

/// Options of `ringside bench`.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// The API to load.
    #[arg(long, value_enum, default_value_t = System::Ringside)]
    pub target: System,
    /// gRPC addresses (host:port), comma-separated; requests go round robin over them.
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_LISTEN)]
    pub endpoints: Vec<String>,
    /// What each request does: `put` or `get`.
    #[arg(long, value_enum, default_value_t = Op::Put)]
    pub op: Op,
    /// Requests in flight at most (number of workers).
    #[arg(long, short = 'c', default_value_t = 64)]
    pub concurrency: usize,
    /// How long to run after the warm-up (10s when neither this nor --ops is given).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Stop after starting this many operations (warm-up included).
    #[arg(long)]
    pub ops: Option<u64>,
    /// Open loop at this many operations per second (see the module docs); closed loop when
    /// absent.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Requests started during this first period are not recorded.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    pub warmup: Duration,
    /// Size of the key space.
    #[arg(long, default_value_t = 10_000)]
    pub keys: u64,
    /// Key prefix (keys are the prefix followed by a 10-digit number).
    #[arg(long, default_value = "bench/")]
    pub key_prefix: String,
    /// Value size in bytes (pseudo-random bytes, so storage compression does not shrink them).
    #[arg(long, default_value_t = 256)]
    pub value_size: usize,
    /// Keys in order (operation i uses key i mod --keys) instead of at random: with
    /// `--ops N --keys N` every key is written exactly once.
    #[arg(long)]
    pub sequential: bool,
    /// Consistency level of Ringside requests.
    #[arg(long, default_value = "quorum")]
    pub cl: ConsistencyLevel,
    /// etcd reads: serializable (answered by the member locally) instead of linearizable.
    #[arg(long)]
    pub serializable: bool,
    /// HTTP/2 connections per endpoint (workers are spread over them).
    #[arg(long, default_value_t = 2)]
    pub connections: usize,
    /// Per-request timeout; a request that takes longer counts as an error.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub timeout: Duration,
    /// Seed of the key and value generator.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    /// The arithmetic mean.
    pub mean_us: f64,
    /// The median (50th percentile).
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// The slowest request recorded.
    pub max_us: u64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            mean_us: h.mean(),
            p50_us: h.value_at_quantile(0.5),
            p90_us: h.value_at_quantile(0.9),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// API loaded.
    pub target: System,
    /// What each request did.
    pub op: Op,
    /// Consistency level (Ringside) or read mode (etcd).
    pub level: String,
    /// Requests in flight at most (workers).
    pub concurrency: usize,
    /// Target rate of an open-loop run.
    pub rate_target: Option<f64>,
    /// Endpoints loaded.
    pub endpoints: Vec<String>,
    /// Value size in bytes.
    pub value_size: usize,
    /// Key space.
    pub keys: u64,
    /// Seconds from the end of the warm-up to the last recorded completion.
    pub elapsed_s: f64,
    /// Recorded operations that succeeded.
    pub ops: u64,
    /// Recorded operations that failed.
    pub errors: u64,
    /// Failures by kind (gRPC code, or `client-timeout`).
    pub error_kinds: BTreeMap<String, u64>,
    /// The first failure's message.
    pub first_error: Option<String>,
    /// Reads that found no value.
    pub not_found: u64,
    /// Successful recorded operations per second.
    pub throughput: f64,
    /// Value bytes moved per second (successful operations × value size).
    pub value_mib_per_s: f64,
    /// Latency of successful operations; in an open-loop run measured from the scheduled start.
    pub latency: Latency,
    /// Open-loop runs: latency from the actual send (what a closed-loop client would report).
    pub service: Option<Latency>,
    /// Operations started during the warm-up (not recorded).
    pub warmup_ops: u64,
    /// Whether the run was stopped by a signal before its end.
    pub interrupted: bool,
}

impl Report {
    /// Human-readable text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let ms = |us: u64| us as f64 / 1000.0;
        let pacing = match self.rate_target {
            Some(r) => format!("open loop at {r:.0} ops/s"),
            None => "closed loop".into(),
        };
        let _ = writeln!(
            out,
            "{:?} {:?} ({}) x{} over {} endpoint(s), {pacing}, {} B values, {} keys",
            self.target,
            self.op,
            self.level,
            self.concurrency,
            self.endpoints.len(),
            self.value_size,
            self.keys
        );
        let _ = writeln!(
            out,
            "  ops {}  errors {}  in {:.2} s  throughput {:.0} ops/s ({:.2} MiB/s of values)",
            self.ops, self.errors, self.elapsed_s, self.throughput, self.value_mib_per_s
        );
        let l = &self.latency;
        let _ = writeln!(
            out,
            "  latency ms: mean {:.3}  p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
            l.mean_us / 1000.0,
            ms(l.p50_us),
            ms(l.p90_us),
            ms(l.p99_us),
            ms(l.p999_us),
            ms(l.max_us)
        );
        if let Some(s) = &self.service {
            let _ = writeln!(
                out,
                "  service ms (from the actual send): p50 {:.3}  p99 {:.3}  p99.9 {:.3}",
                ms(s.p50_us),
                ms(s.p99_us),
                ms(s.p999_us)
            );
        }
        if self.op == Op::Get {
            let _ = writeln!(out, "  not found: {}", self.not_found);
        }
        if !self.error_kinds.is_empty() {
            let _ = writeln!(out, "  errors by kind: {:?}", self.error_kinds);
        }
        if let Some(e) = &self.first_error {
            let _ = writeln!(out, "  first error: {e}");
        }
        if self.interrupted {
            let _ = writeln!(out, "  (stopped by a signal)");
        }
        out
    }
}

/// One connection's client.
#[derive(Clone)]
enum Client {
    Ringside(KvClient<Channel>),
    Etcd(etcdpb::kv_client::KvClient<Channel>),
}

/// How one request ended.
enum Outcome {
    Found,
    NotFound,
    Failed(String, String),
}

impl Client {
    // `.into()` keeps this compiling whether prost generates `Vec<u8>` or `Bytes` for the
    // Ringside messages' bytes fields.
    #[allow(clippy::useless_conversion)]
    async fn call(&mut self, args: &BenchArgs, key: Vec<u8>, value: Vec<u8>) -> Outcome {
        let failed = |s: tonic::Status| Outcome::Failed(format!("{:?}", s.code()), s.to_string());
        match (self, args.op) {
            (Client::Ringside(kv), Op::Put) => {
                let request = pb::PutRequest {
                    key: key.into(),
                    value: value.into(),
                    consistency: consistency_to_proto(args.cl) as i32,
                    context: Vec::new().into(),
                };
                match kv.put(request).await {
                    Ok(_) => Outcome::Found,
                    Err(s) => failed(s),
                }
            }
            (Client::Ringside(kv), Op::Get) => {
                let request = pb::GetRequest {
                    key: key.into(),
                    consistency: consistency_to_proto(args.cl) as i32,
                };
                match kv.get(request).await {
                    Ok(r) if r.get_ref().found => Outcome::Found,
                    Ok(_) => Outcome::NotFound,
                    Err(s) => failed(s),
                }
            }
            (Client::Etcd(kv), Op::Put) => {
                let request = etcdpb::PutRequest { key, value, ..etcdpb::PutRequest::default() };
                match kv.put(request).await {
                    Ok(_) => Outcome::Found,
                    Err(s) => failed(s),
                }
            }
            (Client::Etcd(kv), Op::Get) => {
                let request = etcdpb::RangeRequest {
                    key,
                    serializable: args.serializable,
                    ..etcdpb::RangeRequest::default()
                };
                match kv.range(request).await {
                    Ok(r) if !r.get_ref().kvs.is_empty() => Outcome::Found,
                    Ok(_) => Outcome::NotFound,
                    Err(s) => failed(s),
                }
            }
        }
    }
}

async fn connect(target: System, address: &str) -> anyhow::Result<Client> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .with_context(|| format!("invalid endpoint `{address}`"))?
        .connect_timeout(Duration::from_secs(3))
        .tcp_nodelay(true)
        .connect()
        .await
        .with_context(|| format!("cannot reach {target:?} at {address}: is it running?"))?;
    Ok(match target {
        System::Ringside => Client::Ringside(KvClient::new(channel)),
        System::Etcd => Client::Etcd(
            etcdpb::kv_client::KvClient::new(channel).max_decoding_message_size(64 << 20),
        ),
    })
}

/// What one worker recorded.
struct Tally {
    latency: Histogram<u64>,
    service: Histogram<u64>,
    ops: u64,
    errors: u64,
    not_found: u64,
    warmup_ops: u64,
    error_kinds: BTreeMap<String, u64>,
    first_error: Option<(Instant, String)>,
    last_completion: Option<Instant>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// Shared by the workers of one run.
struct Plan {
    args: BenchArgs,
    start: Instant,
    warm_end: Instant,
    end: Option<Instant>,
    next: AtomicU64,
    stop: AtomicBool,
}

impl Plan {
    fn key(&self, i: u64, rng: &mut StdRng) -> Vec<u8> {
        let k = if self.args.sequential {
            i % self.args.keys
        } else {
            rng.random_range(0..self.args.keys)
        };
        format!("{}{k:010}", self.args.key_prefix).into_bytes()
    }
}

async fn worker(plan: Arc<Plan>, index: usize, mut clients: Vec<Client>) -> Tally {
    let args = &plan.args;
    let mut rng =
        StdRng::seed_from_u64(args.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ index as u64);
    // Values are slices of a random buffer at varying offsets: cheap, and incompressible.
    let mut pool = vec![0u8; args.value_size + 256];
    rng.fill_bytes(&mut pool);
    let mut tally = Tally {
        latency: histogram(),
        service: histogram(),
        ops: 0,
        errors: 0,
        not_found: 0,
        warmup_ops: 0,
        error_kinds: BTreeMap::new(),
        first_error: None,
        last_completion: None,
    };
    loop {
        if plan.stop.load(Ordering::Relaxed) {
            break;
        }
        let i = plan.next.fetch_add(1, Ordering::Relaxed);
        if args.ops.is_some_and(|n| i >= n) {
            break;
        }
        let scheduled = match args.rate {
            Some(rate) => {
                let at = plan.start + Duration::from_secs_f64(i as f64 / rate);
                if plan.end.is_some_and(|end| at >= end) {
                    break;
                }
                tokio::time::sleep_until(at).await;
                if plan.stop.load(Ordering::Relaxed) {
                    break;
                }
                at
            }
            None => {
                let now = Instant::now();
                if plan.end.is_some_and(|end| now >= end) {
                    break;
                }
                now
            }
        };
        let key = plan.key(i, &mut rng);
        let value = match args.op {
            Op::Put => {
                let offset = (i % 251) as usize;
                pool[offset..offset + args.value_size].to_vec()
            }
            Op::Get => Vec::new(),
        };
        let endpoint = (i % clients.len() as u64) as usize;
        let client = &mut clients[endpoint];
        let sent = Instant::now();
        let outcome = match tokio::time::timeout(args.timeout, client.call(args, key, value)).await
        {
            Ok(outcome) => outcome,
            Err(_) => Outcome::Failed(
                "client-timeout".into(),
                format!("no answer within {:?}", args.timeout),
            ),
        };
        let done = Instant::now();
        if scheduled < plan.warm_end {
            tally.warmup_ops += 1;
            continue;
        }
        tally.last_completion = Some(done);
        match outcome {
            Outcome::Found | Outcome::NotFound => {
                if matches!(outcome, Outcome::NotFound) {
                    tally.not_found += 1;
                }
                tally.ops += 1;
                let micros = |d: Duration| (d.as_micros() as u64).clamp(1, 3_600_000_000);
                tally.latency.saturating_record(micros(done - scheduled));
                tally.service.saturating_record(micros(done - sent));
            }
            Outcome::Failed(kind, message) => {
                tally.errors += 1;
                *tally.error_kinds.entry(kind).or_default() += 1;
                if tally.first_error.as_ref().is_none_or(|(t, _)| sent < *t) {
                    tally.first_error = Some((sent, message));
                }
            }
        }
    }
    tally
}

/// Runs the load described by `args` and returns what it measured.
pub async fn execute(args: &BenchArgs) -> anyhow::Result<Report> {
    if args.endpoints.is_empty() {
        bail!("--endpoints must name at least one address");
    }
    if args.concurrency == 0 || args.connections == 0 || args.keys == 0 {
        bail!("--concurrency, --connections and --keys must be at least 1");
    }
    if args.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        bail!("--rate must be a positive number of operations per second");
    }
    // connections[c][e]: connection c to endpoint e.
    let mut connections = Vec::new();
    for _ in 0..args.connections {
        let mut row = Vec::new();
        for address in &args.endpoints {
            row.push(connect(args.target, address).await?);
        }
        connections.push(row);
    }
    let start = Instant::now() + Duration::from_millis(20);
    let warm_end = start + args.warmup;
    let duration = match (args.duration, args.ops) {
        (Some(d), _) => Some(d),
        (None, Some(_)) => None,
        (None, None) => Some(Duration::from_secs(10)),
    };
    let plan = Arc::new(Plan {
        args: args.clone(),
        start,
        warm_end,
        end: duration.map(|d| warm_end + d),
        next: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let interrupted = Arc::new(AtomicBool::new(false));
    let signals = {
        let plan = plan.clone();
        let interrupted = interrupted.clone();
        tokio::spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            interrupted.store(true, Ordering::Relaxed);
            plan.stop.store(true, Ordering::Relaxed);
        })
    };
    tokio::time::sleep_until(start).await;
    let mut tasks = Vec::new();
    for w in 0..args.concurrency {
        let clients = connections[w % args.connections].clone();
        tasks.push(tokio::spawn(worker(plan.clone(), w, clients)));
    }
    let mut latency = histogram();
    let mut service = histogram();
    let (mut ops, mut errors, mut not_found, mut warmup_ops) = (0, 0, 0, 0);
    let mut error_kinds: BTreeMap<String, u64> = BTreeMap::new();
    let mut first_error: Option<(Instant, String)> = None;
    let mut last: Option<Instant> = None;
    for task in tasks {
        let t = task.await.context("a load worker panicked")?;
        latency.add(&t.latency).expect("same histogram bounds");
        service.add(&t.service).expect("same histogram bounds");
        ops += t.ops;
        errors += t.errors;
        not_found += t.not_found;
        warmup_ops += t.warmup_ops;
        for (k, n) in t.error_kinds {
            *error_kinds.entry(k).or_default() += n;
        }
        if let Some((at, message)) = t.first_error
            && first_error.as_ref().is_none_or(|(t0, _)| at < *t0)
        {
            first_error = Some((at, message));
        }
        last = last.max(t.last_completion);
    }
    signals.abort();
    let elapsed = last.map_or(0.0, |l| l.saturating_duration_since(warm_end).as_secs_f64());
    let throughput = if elapsed > 0.0 { ops as f64 / elapsed } else { 0.0 };
    let level = match args.target {
        System::Ringside => args.cl.to_string(),
        System::Etcd if args.op == Op::Get && args.serializable => "serializable".into(),
        System::Etcd if args.op == Op::Get => "linearizable".into(),
        System::Etcd => "raft".into(),
    };
    Ok(Report {
        target: args.target,
        op: args.op,
        level,
        concurrency: args.concurrency,
        rate_target: args.rate,
        endpoints: args.endpoints.clone(),
        value_size: args.value_size,
        keys: args.keys,
        elapsed_s: elapsed,
        ops,
        errors,
        error_kinds,
        first_error: first_error.map(|(_, m)| m),
        not_found,
        throughput,
        value_mib_per_s: if args.op == Op::Put {
            throughput * args.value_size as f64 / (1024.0 * 1024.0)
        } else {
            0.0
        },
        latency: Latency::of(&latency),
        service: args.rate.map(|_| Latency::of(&service)),
        warmup_ops,
        interrupted: interrupted.load(Ordering::Relaxed),
    })
}

/// `ringside bench`: runs the load and prints the report (JSON with `--json`).
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let report = execute(&args).await?;
    if args.json {
        println!("{}", serde_json::to_string(&report).context("cannot encode the report")?);
    } else {
        print!("{}", report.render());
    }
    Ok(())
}
