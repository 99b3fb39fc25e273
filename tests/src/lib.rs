//! Shared harness of Ringside's cross-crate tests: random fault schedules over the simulator
//! (in the spirit of TigerBeetle's VOPR), with the one-line command that replays a failing seed.

pub mod movements;
pub mod native;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use ringside_core::alloc::{Allocation, build_ring};
use ringside_core::checker::{CheckConfig, CheckReport, check};
use ringside_core::node::NodeConfig;
use ringside_core::scenario::{FinalPhase, finish};
use ringside_core::sim::network::{LatencyModel, NetworkConfig};
use ringside_core::sim::workload::WorkloadConfig;
use ringside_core::sim::{SimConfig, Simulation};
use ringside_core::{ConflictMode, ConsistencyLevel, Instant, NodeId};
use std::time::Duration;

/// The shape of one randomized run, derived from its seed.
#[derive(Clone, Debug)]
pub struct RandomRun {
    /// Seed.
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
}

/// What a randomized run produced.
pub struct Outcome {
    /// The run's parameters.
    pub run: RandomRun,
    /// The simulation at the end (after the final phase).
    pub sim: Simulation,
    /// The checker's report.
    pub check: CheckReport,
}

impl RandomRun {
    /// Derives a run from a seed: 3–6 nodes, RF 3, an overlapping pair of levels, either
    /// conflict mode, 0–5 % loss.
    pub fn from_seed(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let nodes = rng.random_range(3..=6);
        let pairs = [
            (ConsistencyLevel::Quorum, ConsistencyLevel::Quorum),
            (ConsistencyLevel::One, ConsistencyLevel::All),
            (ConsistencyLevel::All, ConsistencyLevel::One),
            (ConsistencyLevel::Quorum, ConsistencyLevel::All),
        ];
        let (read_cl, write_cl) = pairs[rng.random_range(0..pairs.len())];
        let mode = if rng.random_bool(0.5) { ConflictMode::VectorClock } else { ConflictMode::Lww };
        let loss = f64::from(rng.random_range(0..=5u32)) / 100.0;
        RandomRun { seed, nodes, rf: 3, read_cl, write_cl, mode, loss }
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
                },
                loss: 0.0,
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
        let mut t = 1_000u64;
        while t < 30_000 {
            t += rng.random_range(1_000..6_000);
            sim.run_until(Instant::from_millis(t));
            let victim = NodeId(rng.random_range(0..self.nodes as u32));
            match rng.random_range(0..6) {
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
                _ => {}
            }
        }
        extra(&mut sim);
        sim.run_until(Instant::from_secs(31));
        finish(&mut sim, &FinalPhase::default());
        let check = check(sim.history(), &CheckConfig { rf: self.rf, mode: self.mode });
        Outcome { run: self, sim, check }
    }
}

/// Seeds to run: `RINGSIDE_SEED` alone when set (replaying one failure), else `0..count`.
pub fn seeds(count: u64) -> Vec<u64> {
    match std::env::var("RINGSIDE_SEED") {
        Ok(s) => vec![s.parse().expect("RINGSIDE_SEED must be an integer")],
        Err(_) => (0..count).collect(),
    }
}
