//! Randomized range movements (docs/semantics.md, "Node lifecycle"): a node joins a live cluster under
//! faults and, in some runs, an original node is decommissioned once the join completed. Each
//! run is derived from its seed; a failing one is replayed with the command
//! [`MovementRun::replay_command`] prints.
//!
//! Also the small builders the negative controls of `tests/join_invariants.rs` share.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use ringside_core::alloc::{Allocation, build_ring};
use ringside_core::checker::{Anomaly, AnomalyKind, CheckConfig, CheckReport, check};
use ringside_core::gossip::Status;
use ringside_core::membership::JoinStrategy;
use ringside_core::message::Message;
use ringside_core::node::{Event, Node};
use ringside_core::node::{JoinPhase, JoinRequest, Lifecycle, NodeConfig};
use ringside_core::scenario::{FinalPhase, finish};
use ringside_core::sim::network::{LatencyModel, NetworkConfig};
use ringside_core::sim::workload::WorkloadConfig;
use ringside_core::sim::{SimConfig, Simulation};
use ringside_core::storage::MemStorage;
use ringside_core::{ConflictMode, ConsistencyLevel, Instant, NodeId};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::time::Duration;

/// The test file these runs belong to (for replay commands).
pub const TEST_FILE: &str = "join_invariants";

/// Tokens per node, initial ring and joiner alike.
pub const TOKENS_PER_NODE: usize = 8;

/// When the workload stops issuing requests.
const WORKLOAD_STOP: Duration = Duration::from_secs(75);
/// Random faults end here; then everything is healed and restarted.
const FAULTS_END: Duration = Duration::from_secs(45);
/// Movements must have completed by then (virtual time).
const MOVEMENT_DEADLINE: Duration = Duration::from_secs(240);
/// After a restart, how long to let gossip and the failure detector catch up before resuming.
const RESUME_AFTER: Duration = Duration::from_secs(4);

/// The shape of one randomized movement run, derived from its seed and a strategy.
#[derive(Clone, Debug)]
pub struct MovementRun {
    /// The seed everything in the run derives from (`RINGSIDE_SEED` replays it).
    pub seed: u64,
    /// Join strategy of every node.
    pub strategy: JoinStrategy,
    /// Nodes in the initial cluster.
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
    /// Original node decommissioned after the join completed, if any.
    pub leaver: Option<NodeId>,
    /// RING_DELAY (`pending-ranges`, and decommissions outside `staged`).
    pub ring_delay: Duration,
    /// Outbound stream throughput per node, bytes per second.
    pub stream_throughput: u64,
    /// Every original node is a seed (else the first three, the simulator's default).
    pub all_seeds: bool,
    /// Also start a node of another cluster ("other") right after the joiner; it tries to join
    /// through the same seeds and must never be admitted (invariant 9).
    pub foreign_node: bool,
    /// Nemesis: right after the join is requested, hold the `Mutation`s (and `Mint`s) from one
    /// coordinator to one replica for 3–12 s — past the write timeout and across the join's
    /// topology barriers — then deliver them (a client write in flight across a barrier).
    pub barrier_hold: bool,
}

/// The cluster name of [`MovementRun::foreign_node`].
pub const FOREIGN_CLUSTER: &str = "other";

/// What a movement run produced.
pub struct MovementOutcome {
    /// The run's parameters.
    pub run: MovementRun,
    /// The simulation at the end (after the final phase).
    pub sim: Simulation,
    /// The checker's report.
    pub check: CheckReport,
    /// The joining node.
    pub joiner: NodeId,
    /// Movement failures recorded and then recovered from (with the documented reason).
    pub recovered: Vec<String>,
    /// Movement problems: failures for an undocumented reason, movements that never completed.
    pub movement_problems: Vec<String>,
    /// The node of another cluster, when the run started one.
    pub foreign: Option<NodeId>,
    /// Every time a member was seen to know the foreign node (view, ring or gossip state).
    pub admitted: Vec<String>,
}

/// How often the views are sampled for the foreign node.
const SAMPLE: Duration = Duration::from_millis(50);

/// Samples every member's view while the run advances, recording any sign that a node of another
/// cluster was admitted (invariant 9).
#[derive(Default)]
struct ForeignWatch {
    /// A node of another cluster no member may ever know.
    foreign: Option<NodeId>,
    admitted: Vec<String>,
}

impl ForeignWatch {
    fn advance(&mut self, sim: &mut Simulation, until: Instant) {
        if self.foreign.is_none() {
            return sim.run_until(until);
        }
        while sim.now() < until {
            let next = (sim.now() + SAMPLE).min(until);
            sim.run_until(next);
            self.sample(sim);
        }
    }

    fn sample(&mut self, sim: &Simulation) {
        let now = sim.now();
        let Some(f) = self.foreign else { return };
        if self.admitted.len() >= 5 {
            return;
        }
        for i in 0..sim.names().len() as u32 {
            let Some(node) = sim.node(NodeId(i)).filter(|n| n.id() != f) else { continue };
            let learned = node
                .gossiper()
                .endpoint(f)
                .is_some_and(|e| e.heartbeat.generation > 0 || !e.states.is_empty());
            let in_ring = node.topology().is_some_and(|t| t.ring().contains_node(f));
            if node.view().member(f).is_some() || in_ring || learned || node.admits(f) {
                self.admitted.push(format!(
                    "{} knows the foreign node at {now}: in its view {}, in its ring {in_ring}, gossip state {learned}, admits its messages {}",
                    sim.name(NodeId(i)),
                    node.view().member(f).is_some(),
                    node.admits(f)
                ));
            }
        }
    }
}

impl MovementRun {
    /// Derives a run from a seed: 3–6 nodes, RF 3, an overlapping pair of levels, either
    /// conflict mode, 0–5 % loss, and in half the runs a decommission after the join.
    pub fn from_seed(seed: u64, strategy: JoinStrategy) -> Self {
        // The cluster's shape: the overlapping level pairs and 0–5 % loss (RandomRun's
        // distribution before it gained the non-overlapping pairs, so these seeds keep naming
        // the same runs).
        let mut shape = ChaCha8Rng::seed_from_u64(seed ^ 0x6a6f_696e);
        let nodes = shape.random_range(3..=6);
        let pairs = [
            (ConsistencyLevel::Quorum, ConsistencyLevel::Quorum),
            (ConsistencyLevel::One, ConsistencyLevel::All),
            (ConsistencyLevel::All, ConsistencyLevel::One),
            (ConsistencyLevel::Quorum, ConsistencyLevel::All),
        ];
        let (read_cl, write_cl) = pairs[shape.random_range(0..pairs.len())];
        let mode =
            if shape.random_bool(0.5) { ConflictMode::VectorClock } else { ConflictMode::Lww };
        let loss = f64::from(shape.random_range(0..=5u32)) / 100.0;
        let rf = 3;
        // A third of the runs hold one link's mutations for 3-12 s from the join on, across
        // its barriers (the nemesis that found a joiner taking a restarted seed's partial view
        // for the ring, seed 725).
        let holds = ChaCha8Rng::seed_from_u64(seed ^ 0x686f_6c64).random_ratio(1, 3);
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6d6f_7665);
        // After the join there are nodes + 1 owners, always more than RF = 3.
        let leaver = rng.random_bool(0.5).then(|| NodeId(rng.random_range(0..nodes as u32)));
        let ring_delay = match strategy {
            // Small clusters: gossip spreads in a few rounds, well within 10 s.
            JoinStrategy::PendingRanges => Duration::from_secs(10),
            _ => NodeConfig::default().ring_delay,
        };
        MovementRun {
            seed,
            strategy,
            nodes,
            rf,
            read_cl,
            write_cl,
            mode,
            loss,
            leaver,
            ring_delay,
            stream_throughput: 2_000,
            all_seeds: true,
            foreign_node: false,
            barrier_hold: holds,
        }
    }

    /// The command that replays this seed in `test`.
    pub fn replay_command(&self, test: &str) -> String {
        format!(
            "RINGSIDE_SEED={} cargo test -p ringside-tests --test {TEST_FILE} {test} -- --nocapture",
            self.seed
        )
    }

    fn sim_config(&self, rng: &mut ChaCha8Rng) -> SimConfig {
        let ids: Vec<NodeId> = (0..self.nodes as u32).map(NodeId).collect();
        let ring =
            build_ring(&ids, TOKENS_PER_NODE, self.rf, Allocation::Random, rng).expect("ring");
        SimConfig {
            seed: self.seed,
            names: (0..self.nodes).map(|i| format!("n{i}")).collect(),
            ring,
            node: NodeConfig {
                conflict_mode: self.mode,
                join_strategy: self.strategy,
                ring_delay: self.ring_delay,
                stream_throughput: Some(self.stream_throughput),
                num_tokens: TOKENS_PER_NODE,
                seeds: if self.all_seeds { ids.clone() } else { Vec::new() },
                ..NodeConfig::default()
            },
            network: test_network(),
            workload: WorkloadConfig {
                clients: 3,
                keys: 8,
                read_fraction: 0.5,
                delete_fraction: 0.1,
                read_cl: self.read_cl,
                write_cl: self.write_cl,
                think_time: Duration::from_millis(60),
                start: Duration::from_secs(1),
                stop: WORKLOAD_STOP,
                use_context: true,
            },
            keep_trace: std::env::var("RINGSIDE_KEEP_TRACE").is_ok(),
            record_history: true,
        }
    }

    /// Runs it: a node joins at 3–8 s while crashes and restarts (of nodes not moving),
    /// process pauses, partitions and loss go on until 45 s; the leaver (if any) starts its
    /// decommission once the join completed. Then everything is healed and restarted, failed
    /// movements are resumed (only after a failure for a documented reason), the workload runs
    /// to its end, and the final phase and the checker run.
    pub fn execute(self) -> MovementOutcome {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ 0xfa_u64);
        let mut sim = Simulation::new(self.sim_config(&mut rng));
        sim.set_loss(self.loss);
        let joiner = NodeId(self.nodes as u32);
        let join_at = rng.random_range(3_000..8_000u64);
        let mut mover = Movers::new(joiner, self.leaver);
        let mut watch = ForeignWatch::default();
        let mut t = 1_000u64;
        while t < FAULTS_END.as_millis() as u64 {
            t += rng.random_range(1_000..5_000);
            watch.advance(&mut sim, Instant::from_millis(t));
            if !mover.join_requested && t >= join_at {
                let id = sim.add_node("joiner", JoinRequest::default()).expect("add the joiner");
                assert_eq!(id, joiner);
                mover.join_requested = true;
                if self.barrier_hold {
                    // Its own generator, so the fault schedule is the same with or without it.
                    let mut hold_rng = ChaCha8Rng::seed_from_u64(self.seed ^ 0x686f_6c64);
                    let from = NodeId(hold_rng.random_range(0..self.nodes as u32));
                    let to = NodeId(hold_rng.random_range(0..self.nodes as u32));
                    let until =
                        sim.now() + Duration::from_millis(hold_rng.random_range(3_000..12_000));
                    if from != to {
                        sim.hold(ringside_core::sim::network::Hold {
                            from,
                            to,
                            both_directions: false,
                            kinds: Some(vec![ringside_core::message::MessageKind::Mutation]),
                            until,
                        });
                    }
                }
                if self.foreign_node {
                    let f = sim
                        .add_node_configured("foreign", JoinRequest::default(), |c| {
                            c.cluster_name = FOREIGN_CLUSTER.into();
                        })
                        .expect("add the foreign node");
                    watch.foreign = Some(f);
                    mover.foreign = Some(f);
                }
            }
            mover.drive(&mut sim, false);
            let count = sim.names().len() as u32;
            let victim = NodeId(rng.random_range(0..count));
            match rng.random_range(0..7) {
                0 if !mover.spared(victim) => {
                    let _ = sim.crash(victim);
                }
                1 => {
                    // Restart one crashed node, if any.
                    if let Some(down) = (0..count).map(NodeId).find(|n| !sim.is_up(*n)) {
                        let _ = sim.restart(down);
                        mover.restarted_at = sim.now();
                    }
                }
                2 => {
                    let mut ids: Vec<NodeId> = (0..count).map(NodeId).collect();
                    // Shuffle deterministically, then cut.
                    for i in (1..ids.len()).rev() {
                        ids.swap(i, rng.random_range(0..=i));
                    }
                    let cut = rng.random_range(1..ids.len());
                    sim.partition(vec![ids[..cut].to_vec()]);
                }
                3 => sim.heal(),
                4 => {
                    let _ = sim.pause(victim, Duration::from_millis(rng.random_range(500..8_000)));
                }
                _ => {}
            }
        }
        // Everything comes back; movements that failed for a documented reason are resumed.
        if sim.network().is_partitioned() {
            sim.heal();
        }
        sim.set_loss(0.0);
        for i in 0..sim.names().len() as u32 {
            if !sim.is_up(NodeId(i)) {
                let _ = sim.restart(NodeId(i));
                mover.restarted_at = sim.now();
            }
        }
        let deadline = Instant::ZERO + MOVEMENT_DEADLINE;
        while sim.now() < deadline && !mover.done(&sim) {
            let next = sim.now() + Duration::from_secs(1);
            watch.advance(&mut sim, next);
            mover.drive(&mut sim, true);
        }
        let stop = Instant::ZERO + WORKLOAD_STOP + Duration::from_secs(1);
        if sim.now() < stop {
            watch.advance(&mut sim, stop);
        }
        let mut movement_problems = mover.problems.clone();
        if let Some(f) = mover.foreign
            && !sim.stats().movement_failures.iter().any(|(n, _)| *n == f)
        {
            movement_problems.push(format!(
                "the foreign node's join never failed: it is {}",
                sim.node(f).map_or("down".into(), |n| n.lifecycle().describe())
            ));
        }
        if !sim.stats().join_completed.contains_key(&joiner) {
            movement_problems.push(format!(
                "the join never completed: joiner is {}",
                sim.node(joiner).map_or("down".into(), |n| n.lifecycle().describe())
            ));
        }
        if let Some(l) = self.leaver
            && !sim.stats().decommissioned.contains_key(&l)
        {
            movement_problems.push(format!(
                "the decommission of {l} never completed ({}): it is {}",
                if mover.leave_requested { "started" } else { "never started" },
                sim.node(l).map_or("down".into(), |n| n.lifecycle().describe())
            ));
        }
        finish(&mut sim, &FinalPhase::default());
        let check = check(sim.history(), &CheckConfig { rf: self.rf, mode: self.mode });
        MovementOutcome {
            recovered: mover.recovered,
            movement_problems,
            foreign: watch.foreign,
            admitted: watch.admitted,
            run: self,
            sim,
            check,
            joiner,
        }
    }
}

/// Drives the joiner and the leaver: starts the decommission after the join, resumes failed
/// movements, and tells legitimate failures from the others.
struct Movers {
    joiner: NodeId,
    leaver: Option<NodeId>,
    foreign: Option<NodeId>,
    join_requested: bool,
    leave_requested: bool,
    /// Failures already classified (index into `movement_failures`).
    seen_failures: usize,
    restarted_at: Instant,
    last_resume: Instant,
    recovered: Vec<String>,
    problems: Vec<String>,
}

/// Documented reasons for a movement to stop: the replica a range must be streamed from, or the
/// node gaining it, is down (docs/semantics.md, "Node lifecycle", step 3).
pub fn documented_failure(reason: &str) -> bool {
    (reason.starts_with("streaming source") && reason.contains("down"))
        || reason.contains("went down while it was streamed")
        || (reason.contains("gains") && reason.contains("but is down"))
        || reason.starts_with("no live replica holds")
}

impl Movers {
    fn new(joiner: NodeId, leaver: Option<NodeId>) -> Self {
        Movers {
            joiner,
            leaver,
            foreign: None,
            join_requested: false,
            leave_requested: false,
            seen_failures: 0,
            restarted_at: Instant::ZERO,
            last_resume: Instant::ZERO,
            recovered: Vec::new(),
            problems: Vec::new(),
        }
    }

    /// Never crashed by the random faults: the movers (crashing them is not what these runs
    /// test), and the foreign node (`Simulation::restart` would bring it back with the cluster's
    /// configuration; see `a_restarted_foreign_node_stays_foreign`).
    fn spared(&self, n: NodeId) -> bool {
        n == self.joiner || Some(n) == self.leaver || Some(n) == self.foreign
    }

    fn done(&self, sim: &Simulation) -> bool {
        let joined = sim.stats().join_completed.contains_key(&self.joiner);
        let left = self.leaver.is_none_or(|l| sim.stats().decommissioned.contains_key(&l));
        joined && left && !sim.movement_in_progress()
    }

    /// `recover`: the faults are over (everything healed and restarted): resume what failed.
    fn drive(&mut self, sim: &mut Simulation, recover: bool) {
        let failures = &sim.stats().movement_failures;
        for (node, reason) in &failures[self.seen_failures..] {
            let line = format!("{} at {:?}: {reason}", sim.name(*node), sim.now());
            if Some(*node) == self.foreign {
                // Its join must fail, on the refusal of its seeds.
                if !reason.contains("cluster mismatch") {
                    self.problems.push(format!(
                        "the foreign node's join failed for another reason than the cluster mismatch: {line}"
                    ));
                }
            } else if documented_failure(reason) {
                self.recovered.push(line);
            } else {
                self.problems.push(format!("movement failed for an undocumented reason: {line}"));
            }
        }
        self.seen_failures = failures.len();
        let now = sim.now();
        // The join: resume it when it failed (documented reasons only; the others stay failed
        // and are reported).
        if recover
            && now.saturating_duration_since(self.restarted_at) >= RESUME_AFTER
            && now.saturating_duration_since(self.last_resume) >= RESUME_AFTER
            && let Some(Lifecycle::Joining(j)) = sim.node(self.joiner).map(|n| n.lifecycle())
            && let JoinPhase::Failed { reason } = &j.phase
            && documented_failure(reason)
        {
            self.last_resume = now;
            let _ = sim.resume_join(self.joiner, false);
        }
        // The decommission: once the join completed.
        let Some(leaver) = self.leaver else { return };
        if !sim.stats().join_completed.contains_key(&self.joiner) || !sim.is_up(leaver) {
            return;
        }
        let (normal, failed) = match sim.node(leaver).map(|n| n.lifecycle()) {
            Some(Lifecycle::Normal) => (true, false),
            Some(Lifecycle::Leaving(l)) => (
                false,
                matches!(&l.phase, JoinPhase::Failed { reason } if documented_failure(reason)),
            ),
            _ => (false, false),
        };
        if normal && !self.leave_requested {
            // Refused while its view still shows the join in progress: try again later.
            self.leave_requested = sim.decommission(leaver).is_ok();
        } else if failed
            && recover
            && now.saturating_duration_since(self.restarted_at) >= RESUME_AFTER
            && now.saturating_duration_since(self.last_resume) >= RESUME_AFTER
        {
            self.last_resume = now;
            let _ = sim.decommission(leaver);
        }
    }
}

/// The anomalies a join strategy is documented to show during a movement (docs/semantics.md §1,
/// "Join strategies the explorer compares"). A run showing them keeps the strategy's contract;
/// any other anomaly, and every divergence, ring, view or movement problem, breaks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signature {
    /// Anomaly kinds the strategy is expected to show.
    pub kinds: &'static [AnomalyKind],
    /// Only when a coordinator planned the operation before it learned the mover's latest step
    /// (`pending-ranges`: "none if gossip settled within RING_DELAY").
    pub late_coordinator_only: bool,
}

impl Signature {
    /// The signature of `strategy`:
    /// - `staged`: nothing;
    /// - `pending-ranges`: stale reads and lost writes, only through a late coordinator;
    /// - `immediate`: stale reads ("stale and missing reads": the joiner is read empty);
    /// - `dual-write-cutover`: lost writes ("writes lost on the joiner") and the stale reads of
    ///   them (`dual_write_cutover_loses_writes_when_the_copy_fails`);
    /// - `stream-then-cutover`: stale reads and lost writes ("writes after their range streamed
    ///   are missing");
    /// - `sync-dual-write`: unavailability, never a correctness anomaly ("unavailability only").
    pub fn of(strategy: JoinStrategy) -> Signature {
        use AnomalyKind::{LostWrite, StaleRead, Unavailable};
        let (kinds, late_coordinator_only): (&'static [AnomalyKind], bool) = match strategy {
            JoinStrategy::Staged => (&[], false),
            JoinStrategy::PendingRanges => (&[StaleRead, LostWrite], true),
            JoinStrategy::Immediate => (&[StaleRead], false),
            JoinStrategy::DualWriteCutover => (&[LostWrite, StaleRead], false),
            JoinStrategy::StreamThenCutover => (&[StaleRead, LostWrite], false),
            JoinStrategy::SyncDualWrite => (&[Unavailable], false),
        };
        Signature { kinds, late_coordinator_only }
    }
}

/// What kind of invariant a violation breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ViolationKind {
    /// Stale reads outside the strategy's signature (invariants 1 and 4).
    StaleRead,
    /// Lost writes outside the strategy's signature (invariants 1 and 2).
    LostWrite,
    /// Replicas still disagree after the final phase (invariant 3).
    Divergence,
    /// A range without exactly RF distinct replicas, or an unexpected ring (invariant 6).
    Ring,
    /// A movement that failed for an undocumented reason or never completed.
    Movement,
    /// A view that does not agree with what the nodes announced, or a movement left in progress.
    View,
    /// A member knew the node of another cluster (invariant 9).
    Admitted,
}

impl ViolationKind {
    /// Short name for summaries.
    pub fn as_str(self) -> &'static str {
        match self {
            ViolationKind::StaleRead => "stale-read",
            ViolationKind::LostWrite => "lost-write",
            ViolationKind::Divergence => "divergence",
            ViolationKind::Ring => "ring",
            ViolationKind::Movement => "movement",
            ViolationKind::View => "view",
            ViolationKind::Admitted => "admitted",
        }
    }
}

/// One broken invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Its kind.
    pub kind: ViolationKind,
    /// One line describing it.
    pub line: String,
    /// A stale read or lost write whose every anomaly was planned by a coordinator that had not
    /// yet learned the mover's latest step (the window every strategy without fencing has; the
    /// signature of `pending-ranges` only). Never set for the other kinds.
    pub late_coordinator: bool,
}

/// A run judged against its strategy's [`Signature`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Every invariant the run breaks (empty when it keeps them all).
    pub violations: Vec<Violation>,
    /// The anomalies of the signature the run showed: how many of each kind (kinds with none are
    /// left out).
    pub signature: Vec<(AnomalyKind, usize)>,
}

/// Judges the anomalies of `check` against the signature of `strategy`; `problems` are the run's
/// other violations (divergence, ring, movement, view, admission), which no signature excuses.
/// `late` tells whether a coordinator planned an operation of the anomaly before it learned the
/// mover's latest step. Lost updates (LWW drops concurrent writes by design) and timeouts are
/// never violations; neither is unavailability.
pub fn judge(
    strategy: JoinStrategy,
    check: &CheckReport,
    late: impl Fn(&Anomaly) -> bool,
    problems: Vec<Violation>,
) -> Verdict {
    let sig = Signature::of(strategy);
    let mut verdict = Verdict::default();
    for (kind, as_violation) in [
        (AnomalyKind::StaleRead, Some(ViolationKind::StaleRead)),
        (AnomalyKind::LostWrite, Some(ViolationKind::LostWrite)),
        (AnomalyKind::Unavailable, None),
    ] {
        let in_signature = sig.kinds.contains(&kind);
        let (expected, other): (Vec<&Anomaly>, Vec<&Anomaly>) = check
            .of_kind(kind)
            .partition(|a| in_signature && (!sig.late_coordinator_only || late(a)));
        if !expected.is_empty() {
            verdict.signature.push((kind, expected.len()));
        }
        let (Some(as_violation), Some(first)) = (as_violation, other.first()) else { continue };
        // For triage: how many of them a late coordinator planned (the proviso every strategy
        // that does not fence shares with `pending-ranges`).
        let late_ones = other.iter().filter(|a| late(a)).count();
        verdict.violations.push(Violation {
            kind: as_violation,
            late_coordinator: late_ones == other.len(),
            line: format!(
                "{} {kind} outside the {strategy} signature ({late_ones} planned by a late coordinator): {}",
                other.len(),
                first.explanation
            ),
        });
    }
    verdict.violations.extend(problems);
    verdict
}

impl MovementOutcome {
    /// Every invariant this run breaks, one line each (empty when it keeps them all): see
    /// [`MovementOutcome::verdict`].
    pub fn violations(&self) -> Vec<String> {
        self.verdict().violations.into_iter().map(|v| v.line).collect()
    }

    /// The run judged against its strategy's [`Signature`]: stale reads and lost writes outside
    /// it (invariants 1, 2 and 4: no acknowledged write lost, read-your-writes when R + W > RF,
    /// during the movement too; in vector-clock mode a dropped concurrent write is a lost
    /// write), divergence after the final phase (invariant 3), the ring (invariant 6), movement
    /// and view problems, and the foreign node (invariant 9) are violations; the anomalies of
    /// the signature are counted apart.
    pub fn verdict(&self) -> Verdict {
        let mut problems = Vec::new();
        let mut push =
            |kind, line| problems.push(Violation { kind, line, late_coordinator: false });
        // Invariant 3: convergence.
        let divergent = self.sim.divergent_keys();
        if !divergent.is_empty() {
            push(ViolationKind::Divergence, format!("replicas diverge on {divergent:?}"));
        }
        // Invariant 6: every range has exactly RF distinct natural replicas, and the ring holds
        // exactly the nodes expected.
        for line in ring_problems(&self.sim, self.run.rf) {
            push(ViolationKind::Ring, line);
        }
        let mut expected: BTreeSet<NodeId> = (0..self.run.nodes as u32).map(NodeId).collect();
        expected.insert(self.joiner);
        if let Some(l) = self.run.leaver {
            expected.remove(&l);
        }
        let actual: BTreeSet<NodeId> = self.sim.topology().ring().nodes().into_iter().collect();
        if actual != expected {
            push(ViolationKind::Ring, format!("ring holds {actual:?}, expected {expected:?}"));
        }
        for line in &self.movement_problems {
            push(ViolationKind::Movement, line.clone());
        }
        for line in view_problems(&self.sim, self.foreign) {
            push(ViolationKind::View, line);
        }
        // Invariant 9.
        for line in &self.admitted {
            push(ViolationKind::Admitted, line.clone());
        }
        judge(self.run.strategy, &self.check, |a| self.late_coordinator(a), problems)
    }
}

impl MovementOutcome {
    /// Whether an operation of the anomaly (the read or write, or a write a stale read missed)
    /// was planned by a coordinator that had not yet learned the latest status a moving node
    /// had announced by then.
    fn late_coordinator(&self, a: &Anomaly) -> bool {
        let ops = &self.sim.history().ops;
        let learned = &self.sim.stats().status_learned;
        let movers: Vec<NodeId> = std::iter::once(self.joiner).chain(self.run.leaver).collect();
        let last = |observer: NodeId, member: NodeId, t: Instant| {
            learned
                .iter()
                .take_while(|(at, ..)| *at <= t)
                .filter(|(_, o, m, _)| *o == observer && *m == member)
                .last()
                .map(|x| x.3)
        };
        let late = |node: NodeId, t: Instant| {
            movers.iter().any(|m| {
                node != *m && last(*m, *m, t).is_some_and(|s| last(node, *m, t) != Some(s))
            })
        };
        std::iter::once(a.op_index).chain(a.related.iter().copied()).any(|i| {
            let Some(done) = ops.get(i as usize) else { return false };
            // The invocation: the same client's latest op before the completion.
            let invoked = ops[..i as usize]
                .iter()
                .rev()
                .find(|o| o.process == done.process)
                .map_or(done.time, |o| o.time);
            late(done.node, invoked)
        })
    }
}

/// Invariant 6 on the cluster's settled ring: every range has exactly `rf` distinct natural
/// replicas.
pub fn ring_problems(sim: &Simulation, rf: usize) -> Vec<String> {
    let ring = sim.topology().ring();
    let mut out = Vec::new();
    for (range, replicas) in ring.ranges() {
        let distinct: BTreeSet<NodeId> = replicas.iter().copied().collect();
        if replicas.len() != rf || distinct.len() != rf {
            out.push(format!("range {range:?} has replicas {replicas:?}, not {rf} distinct nodes"));
        }
    }
    out
}

/// Once everything settled, every running member's view agrees with what every node announced
/// (gossip converged), and no movement is left in progress. `foreign`, a node of another cluster,
/// is no member and is not judged.
pub fn view_problems(sim: &Simulation, foreign: Option<NodeId>) -> Vec<String> {
    let truth = sim.cluster_view();
    let mut out = Vec::new();
    if let Some((n, s)) = truth.movement_in_progress() {
        out.push(format!("{} is still {s} at the end", sim.name(n)));
    }
    for i in 0..sim.names().len() as u32 {
        let id = NodeId(i);
        let Some(node) = sim.node(id) else { continue };
        if truth.status(id) == Some(Status::Left) || Some(id) == foreign {
            continue;
        }
        for (m, member) in &truth.members {
            let seen = node.view().member(*m);
            if seen.map(|s| (s.status, &s.tokens)) != Some((member.status, &member.tokens)) {
                out.push(format!(
                    "{} sees {} as {:?}, but it announced {}",
                    sim.name(id),
                    sim.name(*m),
                    seen.map(|s| s.status),
                    member.status
                ));
            }
        }
    }
    out
}

/// The network of every run here: sub-millisecond to a few milliseconds, with a 2 % tail of
/// 300 ms.
pub fn test_network() -> NetworkConfig {
    NetworkConfig {
        latency: LatencyModel {
            min: Duration::from_micros(300),
            jitter: Duration::from_millis(3),
            tail_probability: 0.02,
            tail: Duration::from_millis(300),
            ..LatencyModel::default()
        },
        ..NetworkConfig::default()
    }
}

/// A small cluster for the negative controls: `nodes` nodes (`n0`, `n1`, …) of
/// [`TOKENS_PER_NODE`] random tokens each, every node configured by `node`, trace kept.
pub fn small_cluster(
    seed: u64,
    nodes: usize,
    rf: usize,
    node: NodeConfig,
    workload: WorkloadConfig,
) -> Simulation {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xfa_u64);
    let ids: Vec<NodeId> = (0..nodes as u32).map(NodeId).collect();
    let ring = build_ring(&ids, TOKENS_PER_NODE, rf, Allocation::Random, &mut rng).expect("ring");
    Simulation::new(SimConfig {
        seed,
        names: (0..nodes).map(|i| format!("n{i}")).collect(),
        ring,
        node: NodeConfig { num_tokens: TOKENS_PER_NODE, ..node },
        network: test_network(),
        workload,
        // Short runs: keep the trace, the tests inspect it.
        keep_trace: true,
        record_history: true,
    })
}

/// Runs until `node` completed its join (or `limit` passed); whether it did.
pub fn run_until_joined(sim: &mut Simulation, node: NodeId, limit: Instant) -> bool {
    while sim.now() < limit {
        if sim.stats().join_completed.contains_key(&node) {
            return true;
        }
        sim.run_for(Duration::from_millis(500));
    }
    sim.stats().join_completed.contains_key(&node)
}

/// Whether `node` has announced `status` (as the simulator's ground truth records it).
pub fn announced(sim: &Simulation, node: NodeId, status: Status) -> bool {
    sim.announced_status(node) == Some(status)
}

/// A minimal deterministic pump over bare [`Node`]s, for what the simulator cannot build: nodes
/// configured differently from each other (a node of another cluster). Every message takes 1 ms
/// plus a deterministic jitter; there is no loss, no partition and no crash.
pub struct Pump {
    /// The nodes, indexed by id.
    pub nodes: Vec<Node<MemStorage>>,
    /// Every event each node emitted, in order.
    pub events: Vec<Vec<(Instant, Event)>>,
    queue: BinaryHeap<Reverse<(Instant, u64)>>,
    in_flight: BTreeMap<u64, (NodeId, NodeId, Message)>,
    now: Instant,
    seq: u64,
}

impl Pump {
    /// Starts the pump at time zero over `nodes` (node `i` must have id `i`).
    pub fn new(nodes: Vec<Node<MemStorage>>) -> Self {
        let n = nodes.len();
        let mut pump = Pump {
            nodes,
            events: vec![Vec::new(); n],
            queue: BinaryHeap::new(),
            in_flight: BTreeMap::new(),
            now: Instant::ZERO,
            seq: 0,
        };
        for i in 0..n {
            pump.drain(NodeId(i as u32));
        }
        pump
    }

    /// Current time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Sends `message` from `from` to `to` as if `from` had sent it (a crafted message).
    pub fn inject(&mut self, from: NodeId, to: NodeId, message: Message) {
        self.seq += 1;
        let at = self.now + Duration::from_micros(1_000 + (self.seq * 7_919) % 2_000);
        self.in_flight.insert(self.seq, (from, to, message));
        self.queue.push(Reverse((at, self.seq)));
    }

    /// Drains a node's outputs after an input.
    pub fn drain(&mut self, id: NodeId) {
        let i = id.0 as usize;
        while let Some(t) = self.nodes[i].poll_transmit() {
            if (t.to.0 as usize) < self.nodes.len() {
                self.inject(id, t.to, t.message);
            }
        }
        while let Some(e) = self.nodes[i].poll_event() {
            self.events[i].push((self.now, e));
        }
    }

    /// Processes everything due up to `until`, calling `check` after every step.
    pub fn run_until(&mut self, until: Instant, mut check: impl FnMut(&Pump)) {
        loop {
            let message = self.queue.peek().map(|Reverse((t, _))| *t);
            let timer = (0..self.nodes.len())
                .filter_map(|i| self.nodes[i].poll_timeout().map(|t| (t.max(self.now), i)))
                .min();
            let next = match (message, timer) {
                (Some(m), Some((t, _))) => m.min(t),
                (Some(m), None) => m,
                (None, Some((t, _))) => t,
                (None, None) => break,
            };
            if next > until {
                break;
            }
            self.now = next;
            if message == Some(next) {
                let Reverse((_, seq)) = self.queue.pop().expect("peeked");
                let (from, to, m) = self.in_flight.remove(&seq).expect("in flight");
                self.nodes[to.0 as usize].handle_message(next, from, m);
                self.drain(to);
            } else if let Some((_, i)) = timer {
                self.nodes[i].handle_timeout(next);
                self.drain(NodeId(i as u32));
            }
            check(self);
        }
        self.now = self.now.max(until);
    }
}

#[cfg(test)]
mod tests {
    //! Negative controls of the classification: a signature excuses only its own anomalies.
    use super::*;

    /// Anomalies of the given kinds, op `i` for the `i`-th; op 0's is planned late.
    fn report(kinds: &[AnomalyKind]) -> CheckReport {
        let anomalies: Vec<Anomaly> = kinds
            .iter()
            .enumerate()
            .map(|(i, &kind)| Anomaly {
                kind,
                key: "k1".into(),
                op_index: i as u64,
                time: Instant::from_secs(10),
                related: Vec::new(),
                explanation: format!("{kind} of op {i}"),
            })
            .collect();
        let mut counts: BTreeMap<AnomalyKind, usize> =
            AnomalyKind::ALL.iter().map(|k| (*k, 0)).collect();
        for a in &anomalies {
            *counts.entry(a.kind).or_default() += 1;
        }
        CheckReport {
            anomalies,
            counts,
            reads: Default::default(),
            writes: Default::default(),
            problems: Vec::new(),
        }
    }

    fn late(a: &Anomaly) -> bool {
        a.op_index == 0
    }

    fn kinds(v: &Verdict) -> Vec<ViolationKind> {
        v.violations.iter().map(|v| v.kind).collect()
    }

    use AnomalyKind::{LostWrite, StaleRead, Timeout, Unavailable};

    #[test]
    fn the_signature_of_a_flawed_strategy_is_counted_not_violating() {
        let v = judge(JoinStrategy::Immediate, &report(&[StaleRead, StaleRead]), late, vec![]);
        assert_eq!(v, Verdict { violations: vec![], signature: vec![(StaleRead, 2)] });
        for s in [JoinStrategy::DualWriteCutover, JoinStrategy::StreamThenCutover] {
            let v = judge(s, &report(&[StaleRead, LostWrite, LostWrite]), late, vec![]);
            assert!(v.violations.is_empty(), "{s}: {v:?}");
            assert_eq!(v.signature, vec![(StaleRead, 1), (LostWrite, 2)]);
        }
        let v = judge(JoinStrategy::SyncDualWrite, &report(&[Unavailable, Timeout]), late, vec![]);
        assert_eq!(v, Verdict { violations: vec![], signature: vec![(Unavailable, 1)] });
    }

    #[test]
    fn an_anomaly_outside_the_signature_still_fails_the_run() {
        // `immediate` is expected to read stale, not to lose writes.
        let v = judge(JoinStrategy::Immediate, &report(&[StaleRead, LostWrite]), late, vec![]);
        assert_eq!(kinds(&v), [ViolationKind::LostWrite]);
        assert_eq!(v.signature, vec![(StaleRead, 1)]);
        // `sync-dual-write` may only be unavailable.
        let v = judge(JoinStrategy::SyncDualWrite, &report(&[StaleRead, LostWrite]), late, vec![]);
        assert_eq!(kinds(&v), [ViolationKind::StaleRead, ViolationKind::LostWrite]);
        assert!(v.signature.is_empty());
        // `staged` shows nothing, late coordinator or not.
        let v = judge(JoinStrategy::Staged, &report(&[StaleRead, LostWrite]), late, vec![]);
        assert_eq!(kinds(&v), [ViolationKind::StaleRead, ViolationKind::LostWrite]);
        // `pending-ranges` is excused only through a late coordinator (op 0).
        let v = judge(JoinStrategy::PendingRanges, &report(&[StaleRead, StaleRead]), late, vec![]);
        assert_eq!(kinds(&v), [ViolationKind::StaleRead]);
        assert_eq!(v.signature, vec![(StaleRead, 1)]);
        assert!(v.violations[0].line.starts_with("1 stale-read outside"), "{v:?}");
        assert!(!v.violations[0].late_coordinator);
        // A late coordinator excuses nothing outside `pending-ranges`, but it is told apart.
        let v = judge(JoinStrategy::SyncDualWrite, &report(&[StaleRead]), late, vec![]);
        assert_eq!(kinds(&v), [ViolationKind::StaleRead]);
        assert!(v.violations[0].late_coordinator);
    }

    #[test]
    fn no_signature_excuses_a_divergence_or_a_ring_view_or_movement_problem() {
        for strategy in JoinStrategy::ALL {
            for kind in [
                ViolationKind::Divergence,
                ViolationKind::Ring,
                ViolationKind::Movement,
                ViolationKind::View,
                ViolationKind::Admitted,
            ] {
                let problem = Violation { kind, line: "a problem".into(), late_coordinator: false };
                let all = [StaleRead, LostWrite, Unavailable];
                let v = judge(strategy, &report(&all), late, vec![problem]);
                assert!(kinds(&v).contains(&kind), "{strategy} excused {kind:?}: {v:?}");
            }
        }
    }
}
