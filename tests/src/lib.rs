//! Shared harness of Ringside's cross-crate tests: random fault schedules over the simulator
//! (in the spirit of TigerBeetle's VOPR), with the one-line command that replays a failing seed.

pub mod movements;
pub mod native;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use ringside_core::alloc::{Allocation, build_ring};
use ringside_core::checker::{CausalViolation, CheckConfig, CheckReport, check, check_causal};
use ringside_core::history::{OpError, OpType};
use ringside_core::node::NodeConfig;
use ringside_core::scenario::{FinalPhase, finish};
use ringside_core::sim::network::{Hold, LatencyModel, NetworkConfig};
use ringside_core::sim::workload::WorkloadConfig;
use ringside_core::sim::{SimConfig, Simulation};
use ringside_core::{ConflictMode, ConsistencyLevel, Instant, NodeId};
use std::time::Duration;

/// The shape of one randomized run, derived from its seed.
#[derive(Clone, Debug)]
pub struct RandomRun {
    /// The seed everything in the run derives from (`RINGSIDE_SEED` replays it).
    pub seed: u64,
    /// Nodes in the cluster.
    pub nodes: usize,
    /// Replication factor.
    pub rf: usize,
    /// Read level.
    pub read_cl: ConsistencyLevel,
    /// Write level.
    pub write_cl: ConsistencyLevel,
    /// Conflict mode.
    pub mode: ConflictMode,
    /// Loss probability while faults are active.
    pub loss: f64,
    /// Nemesis: some messages (5 %) take up to 50 ms more and overtake others on their link.
    pub reorder: bool,
    /// Nemesis: a Pareto latency tail (scale 1 ms, cut at 100 ms) on every message.
    pub pareto: bool,
    /// Nemesis: fault ticks may hold a link (one or both directions) for 1–8 s, then release it.
    pub holds: bool,
    /// The driver syncs storage before releasing outputs (`false` only in the negative control).
    pub sync: bool,
    /// The quiet phase runs a Merkle repair on every node (`false` only in negative controls).
    pub anti_entropy: bool,
}

/// What a randomized run produced.
pub struct Outcome {
    /// The run's parameters.
    pub run: RandomRun,
    /// The simulation at the end (after the final phase).
    pub sim: Simulation,
    /// The checker's report.
    pub check: CheckReport,
    /// Keys whose replicas still held different versions after the faults ended, hints had
    /// been replayed and every node had run a Merkle repair — before any forced read (invariant
    /// 3 from hints, read repair and anti-entropy alone).
    pub quiet_divergence: Vec<String>,
    /// Dot reuse and over-claiming contexts (vector-clock runs only; empty under LWW).
    pub causal: Vec<CausalViolation>,
    /// Requests that failed without a reason: an `Unavailable` raised after messages were sent,
    /// or a timeout while enough replicas were up, reachable and known up throughout.
    pub request_problems: Vec<String>,
}

/// How long the faults last, and the quiet period after them before convergence is compared.
const FAULTS_END: Duration = Duration::from_secs(31);
/// Two hint replay rounds (every 10 s) and the time to acknowledge them.
const QUIET: Duration = Duration::from_secs(25);

impl RandomRun {
    /// Derives a run from a seed: 3–6 nodes, RF 3, a pair of levels (overlapping, or not:
    /// `R + W <= RF` pairs, where the checker must not count stale reads), either conflict mode,
    /// no loss in half the runs and 1–5 % in the others, and each timing nemesis with
    /// probability 1/3.
    pub fn from_seed(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let nodes = rng.random_range(3..=6);
        let pairs = [
            (ConsistencyLevel::Quorum, ConsistencyLevel::Quorum),
            (ConsistencyLevel::One, ConsistencyLevel::All),
            (ConsistencyLevel::All, ConsistencyLevel::One),
            (ConsistencyLevel::Quorum, ConsistencyLevel::All),
            (ConsistencyLevel::One, ConsistencyLevel::One),
            (ConsistencyLevel::One, ConsistencyLevel::Quorum),
            (ConsistencyLevel::Quorum, ConsistencyLevel::One),
        ];
        let (read_cl, write_cl) = pairs[rng.random_range(0..pairs.len())];
        let mode = if rng.random_bool(0.5) { ConflictMode::VectorClock } else { ConflictMode::Lww };
        let loss =
            if rng.random_bool(0.5) { 0.0 } else { f64::from(rng.random_range(1..=5u32)) / 100.0 };
        let reorder = rng.random_ratio(1, 3);
        let pareto = rng.random_ratio(1, 3);
        let holds = rng.random_ratio(1, 3);
        RandomRun {
            seed,
            nodes,
            rf: 3,
            read_cl,
            write_cl,
            mode,
            loss,
            reorder,
            pareto,
            holds,
            sync: true,
            anti_entropy: true,
        }
    }

    /// The command that replays this seed.
    pub fn replay_command(&self, test: &str) -> String {
        format!(
            "RINGSIDE_SEED={} cargo test -p ringside-tests --test {test} -- --nocapture",
            self.seed
        )
    }

    /// Runs it: a workload with crashes, restarts, process pauses, partitions and loss for 30 s, then the final
    /// phase (heal, restart, settle, repair reads) and the checker.
    pub fn execute(self) -> Outcome {
        self.execute_with(|_| {})
    }

    /// Like [`RandomRun::execute`], with `extra` applied to the simulation after the random
    /// faults (it may run the simulation further).
    pub fn execute_with(self, extra: impl FnOnce(&mut Simulation)) -> Outcome {
        self.execute_with_midpoint(Instant::ZERO + FAULTS_END, |_| {}, extra)
    }

    /// Like [`RandomRun::execute_with`], with `mid` applied once, at the first fault tick at or
    /// after `at` (while clients are still running), before that tick's fault.
    pub fn execute_with_midpoint(
        self,
        at: Instant,
        mid: impl FnOnce(&mut Simulation),
        extra: impl FnOnce(&mut Simulation),
    ) -> Outcome {
        let mut mid = Some(mid);
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ 0xfa_u64);
        let ids: Vec<NodeId> = (0..self.nodes as u32).map(NodeId).collect();
        let ring = build_ring(&ids, 8, self.rf, Allocation::Random, &mut rng).expect("ring");
        let config = SimConfig {
            seed: self.seed,
            names: (0..self.nodes).map(|i| format!("n{i}")).collect(),
            ring,
            node: NodeConfig { conflict_mode: self.mode, ..NodeConfig::default() },
            network: NetworkConfig {
                latency: LatencyModel {
                    min: Duration::from_micros(300),
                    jitter: Duration::from_millis(3),
                    tail_probability: 0.02,
                    tail: Duration::from_millis(300),
                    ..LatencyModel::default()
                },
                ..NetworkConfig::default()
            },
            workload: WorkloadConfig {
                clients: 3,
                keys: 6,
                read_fraction: 0.5,
                delete_fraction: 0.1,
                read_cl: self.read_cl,
                write_cl: self.write_cl,
                think_time: Duration::from_millis(40),
                start: Duration::from_secs(1),
                stop: Duration::from_secs(30),
                use_context: true,
            },
            keep_trace: std::env::var("RINGSIDE_KEEP_TRACE").is_ok(),
            record_history: true,
        };
        let mut sim = Simulation::new(config);
        sim.set_loss(self.loss);
        sim.set_sync_before_release(self.sync);
        // Nemesis sizes keep four worst-case hops (303 ms + 100 ms + 50 ms each) under the 2 s
        // write timeout, so a timeout with healthy replicas still means an engine bug.
        if self.reorder {
            sim.set_reorder(0.05, Duration::from_millis(50));
        }
        if self.pareto {
            sim.set_pareto(Duration::from_millis(1), Duration::from_millis(100));
        }
        let mut t = 1_000u64;
        while t < 30_000 {
            t += rng.random_range(1_000..6_000);
            sim.run_until(Instant::from_millis(t));
            if sim.now() >= at
                && let Some(mid) = mid.take()
            {
                mid(&mut sim);
            }
            let victim = NodeId(rng.random_range(0..self.nodes as u32));
            let faults = if self.holds { 8 } else { 6 };
            match rng.random_range(0..faults) {
                0 => {
                    let _ = sim.crash(victim);
                }
                1 => {
                    let _ = sim.restart(victim);
                }
                2 => {
                    let cut = rng.random_range(1..self.nodes);
                    sim.partition(vec![ids[..cut].to_vec()]);
                }
                3 => sim.heal(),
                4 => {
                    let _ = sim.pause(victim, Duration::from_millis(rng.random_range(500..15_000)));
                }
                6 | 7 => {
                    // Hold (not drop) a link for 1–8 s: longer than the timeouts, shorter than
                    // a conviction takes, so requests time out on a replica known up.
                    let other = NodeId(rng.random_range(0..self.nodes as u32));
                    let until = sim.now() + Duration::from_millis(rng.random_range(1_000..8_000));
                    if other != victim {
                        let both_directions = rng.random_bool(0.5);
                        sim.hold(Hold {
                            from: victim,
                            to: other,
                            both_directions,
                            kinds: None,
                            until,
                        });
                    }
                }
                _ => {}
            }
        }
        extra(&mut sim);
        sim.run_until(Instant::ZERO + FAULTS_END);
        let quiet_divergence = quiet_convergence(&mut sim, self.anti_entropy);
        // The forced phase (repair reads at ALL, then the final state) is a separate check.
        finish(&mut sim, &FinalPhase { settle: Duration::ZERO, ..FinalPhase::default() });
        let check = check(sim.history(), &CheckConfig { rf: self.rf, mode: self.mode });
        let causal = check_causal(sim.history(), self.mode);
        let request_problems = request_problems(&sim, self.rf);
        Outcome { run: self, sim, check, quiet_divergence, causal, request_problems }
    }
}

/// Ends every fault, restarts crashed nodes, gives hints a quiet period to replay, runs a Merkle
/// repair on every node (when `anti_entropy`) and lets it finish; returns the keys whose
/// natural replicas still hold different versions (compared in storage, no read involved).
pub fn quiet_convergence(sim: &mut Simulation, anti_entropy: bool) -> Vec<String> {
    if sim.network().is_partitioned() {
        sim.heal();
    }
    sim.set_loss(0.0);
    sim.release_holds();
    for i in 0..sim.names().len() {
        let id = NodeId(i as u32);
        if !sim.is_up(id) {
            let _ = sim.restart(id);
        }
    }
    sim.run_for(QUIET);
    sim.quiesce(Duration::from_secs(60));
    if anti_entropy {
        for i in 0..sim.names().len() {
            let _ = sim.repair(NodeId(i as u32));
        }
        sim.run_for(Duration::from_secs(5));
        sim.quiesce(Duration::from_secs(60));
    }
    sim.divergent_keys()
}

/// The request-level assertions of the randomized runs, from the simulator's
/// [`RequestRecord`](ringside_core::sim::RequestRecord)s: every `Unavailable` was raised up front
/// (answered while the invoke was handled, no message sent), and no request timed out while at
/// least `block_for` natural replicas were up, reachable and known up by the coordinator for its
/// whole duration, with no loss or latency nemesis that could explain it.
pub fn request_problems(sim: &Simulation, rf: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut invokes = std::collections::BTreeMap::new();
    for op in &sim.history().ops {
        if op.op_type == OpType::Invoke {
            invokes.insert(op.process, op.index);
            continue;
        }
        let Some(invoke) = invokes.remove(&op.process) else { continue };
        let Some(record) = sim.requests().get(&invoke) else { continue };
        let describe = || {
            format!(
                "{:?} of {} at {:?} by n{} (op {invoke}, {})",
                op.f,
                op.key,
                op.cl,
                op.node.0,
                sim.history().ops[invoke as usize].time
            )
        };
        match op.error {
            Some(OpError::Unavailable)
                if !record.answered_at_invoke || record.sent_at_invoke > 0 =>
            {
                out.push(format!(
                    "{} was refused Unavailable after sending {} messages{}",
                    describe(),
                    record.sent_at_invoke,
                    if record.answered_at_invoke { "" } else { ", not at invoke" }
                ));
            }
            Some(OpError::Timeout)
                if record.excused.is_none() && record.good_replicas() >= op.cl.block_for(rf) =>
            {
                let good: Vec<String> = record
                    .replicas
                    .iter()
                    .filter(|r| !record.tainted.contains(r))
                    .map(|r| format!("n{}", r.0))
                    .collect();
                let all: Vec<String> =
                    record.replicas.iter().map(|r| format!("n{}", r.0)).collect();
                out.push(format!(
                    "{} timed out at {} while replicas {good:?} of {all:?} were up and known up",
                    describe(),
                    op.time
                ));
            }
            _ => {}
        }
    }
    out
}

/// Seeds to run: `RINGSIDE_SEED` alone when set (replaying one failure), else `0..count`.
pub fn seeds(count: u64) -> Vec<u64> {
    match std::env::var("RINGSIDE_SEED") {
        Ok(s) => vec![s.parse().expect("RINGSIDE_SEED must be an integer")],
        Err(_) => (0..count).collect(),
    }
}
