//! docs/semantics.md §2 during range movements (joins and decommissions): randomized runs of the
//! two strategies that must keep every invariant (`staged`, and `pending-ranges` with settled
//! gossip), negative controls proving the checker sees the anomalies the flawed strategies are
//! expected to have, and invariant 9 (a node of another cluster is never admitted).
//!
//! A failure prints the seed and the one-line command that replays it.

use ringside_core::checker::{AnomalyKind, CheckConfig, check};
use ringside_core::gossip::Status;
use ringside_core::history::OpFunction;
use ringside_core::membership::JoinStrategy;
use ringside_core::node::{JoinRequest, NodeConfig, NodeTrace};
use ringside_core::scenario::{FinalPhase, finish};
use ringside_core::sim::Simulation;
use ringside_core::sim::workload::WorkloadConfig;
use ringside_core::trace::TraceEvent;
use ringside_core::{ConflictMode, ConsistencyLevel, Instant, NodeId};
use ringside_tests::movements::{
    MovementOutcome, MovementRun, announced, run_until_joined, small_cluster,
};
use ringside_tests::seeds;
use std::time::Duration;

const SEEDS_PER_STRATEGY: u64 = 1_000;

/// What a sweep of seeds found.
#[derive(Default)]
struct Sweep {
    failures: Vec<String>,
    runs: u64,
    ok_ops: u64,
    joins: u64,
    decommissions: u64,
    recovered: u64,
    keys_streamed: u64,
}

fn sweep(strategy: JoinStrategy, count: u64, all_seeds: bool, test: &str) -> Sweep {
    let mut s = Sweep::default();
    for seed in seeds(count) {
        let mut run = MovementRun::from_seed(seed, strategy);
        run.all_seeds = all_seeds;
        let out = run.execute();
        s.runs += 1;
        s.ok_ops += (out.check.reads.ok + out.check.writes.ok) as u64;
        s.joins += out.sim.stats().join_completed.len() as u64;
        s.decommissions += out.sim.stats().decommissioned.len() as u64;
        s.recovered += out.recovered.len() as u64;
        s.keys_streamed += out.sim.stats().keys_streamed;
        let broken = out.violations();
        if !broken.is_empty() {
            s.failures.push(describe_failure(&out, &broken, test));
        }
    }
    s
}

fn describe_failure(out: &MovementOutcome, broken: &[String], test: &str) -> String {
    format!(
        "seed {} ({}; {:?}):\n    {}\n  replay: {}",
        out.run.seed,
        out.run.strategy,
        out.run,
        broken.join("\n    "),
        out.run.replay_command(test)
    )
}

/// `sync-dual-write` runs `staged`'s fenced steps with a joiner every write must reach
/// (docs/semantics.md §1): over the same randomized movements it may be unavailable, never
/// stale or lossy. Before it was fenced, 18 of the soak's seeds 0–299 read stale.
#[test]
fn sync_dual_write_is_only_ever_unavailable() {
    const TEST: &str = "sync_dual_write_is_only_ever_unavailable";
    let s = sweep(JoinStrategy::SyncDualWrite, SEEDS_PER_STRATEGY, false, TEST);
    eprintln!(
        "sync-dual-write: {} runs, ok ops {}, joins {}, decommissions {}, failed movements resumed {}, keys streamed {}",
        s.runs, s.ok_ops, s.joins, s.decommissions, s.recovered, s.keys_streamed
    );
    if std::env::var("RINGSIDE_SEED").is_err() {
        assert!(s.joins > 0 && s.decommissions > 0, "no movement ever completed");
    }
    assert!(
        s.failures.is_empty(),
        "{} runs broke invariants:\n{}",
        s.failures.len(),
        s.failures.join("\n")
    );
}

/// Invariants 1, 2, 3, 4 and 6 while a node joins (and, in half the runs, an original node is
/// decommissioned after it), with crashes and restarts of nodes that are not moving, process
/// pauses, partitions and 0–5 % loss overlapping slow streaming; then the final phase. Asserted:
/// no stale read, no lost write, convergence, exactly RF distinct natural replicas per range, the
/// expected ring, views agreeing with what every node announced, and every movement completed —
/// resumed after a failure only when the failure had a documented reason (a streaming source or
/// gainer down).
///
/// The joiner learns the ring from three seeds (it asks one for its whole view before it picks
/// tokens), and every stale read fails the run, including reads whose coordinator had not yet
/// learned that a movement completed: `MID_JOIN` / `MID_LEAVE` keep the replica losing a range
/// written until every coordinator reads the new placement.
#[test]
fn staged_and_pending_ranges_keep_every_invariant() {
    const TEST: &str = "staged_and_pending_ranges_keep_every_invariant";
    let (staged, pending) = std::thread::scope(|scope| {
        let staged = scope.spawn(|| sweep(JoinStrategy::Staged, SEEDS_PER_STRATEGY, false, TEST));
        let pending =
            scope.spawn(|| sweep(JoinStrategy::PendingRanges, SEEDS_PER_STRATEGY, false, TEST));
        (staged.join().expect("staged sweep"), pending.join().expect("pending sweep"))
    });
    let mut failures = Vec::new();
    for (strategy, s) in [(JoinStrategy::Staged, &staged), (JoinStrategy::PendingRanges, &pending)]
    {
        eprintln!(
            "{strategy}: {} runs, ok ops {}, joins {}, decommissions {}, failed movements resumed {}, keys streamed {}",
            s.runs, s.ok_ops, s.joins, s.decommissions, s.recovered, s.keys_streamed
        );
        if std::env::var("RINGSIDE_SEED").is_err() {
            // The whole sweep ran: the faults must have exercised what this test is about.
            assert!(s.decommissions > 0, "{strategy}: no decommission ever completed");
            assert!(s.recovered > 0, "{strategy}: no movement failed and was resumed");
            assert!(s.keys_streamed > 0, "{strategy}: nothing was ever streamed");
        }
        failures.extend(s.failures.iter().cloned());
    }
    assert!(
        failures.is_empty(),
        "{} runs broke invariants:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// With the simulator's default seed list (the first three nodes), a joiner learns only the
/// members named in its own gossip digests — its seeds — until a node that knows the others opens
/// a round towards it. `Node::discover` waits a fixed three heartbeat intervals and then picks
/// tokens, announces `BOOT` and, under `staged`, starts a barrier that waits only for the members
/// *it* knows (`Node::start_barrier`). Members it has not learned never acknowledge an epoch (the
/// race of scylladb#2308 the barriers exist to exclude) and its streaming plan is computed from a
/// partial ring, so it becomes `NORMAL` without the data of ranges whose real losing replica it
/// did not know and serves empty reads. Fault-free, 6 nodes: 9 of 20 seeds complete the BOOT
/// barrier with 3 of 6 acknowledgements; seed 3 then returns `[]` to a QUORUM read of k14 after
/// 6 acknowledged writes. Randomized with faults: 7 of 1,000 seeds (38, 93, 150, 155, 247, 612,
/// 837) read stale data.
#[test]
fn staged_joiner_learns_the_whole_ring_before_announcing() {
    const TEST: &str = "staged_joiner_learns_the_whole_ring_before_announcing";
    // Fault-free and deterministic first: six nodes, three seeds, a joiner at 5 s. Every original
    // node must have seen the joiner as BOOT before it saw it NORMAL.
    let mut failures = Vec::new();
    for seed in seeds(20) {
        let mut sim = small_cluster(
            seed,
            6,
            3,
            NodeConfig {
                join_strategy: JoinStrategy::Staged,
                stream_throughput: Some(2_000),
                ..NodeConfig::default()
            },
            quiet_workload(ConsistencyLevel::Quorum, ConsistencyLevel::Quorum, 40),
        );
        sim.run_until(Instant::from_secs(5));
        let joiner = sim.add_node("joiner", JoinRequest::default()).expect("add");
        run_until_joined(&mut sim, joiner, Instant::from_secs(60));
        let Some(boot_acks) = sim.trace().records().iter().find_map(|r| match &r.event {
            TraceEvent::Node {
                node,
                event: NodeTrace::BarrierComplete { status: Status::Boot, acked },
            } if *node == joiner => Some(*acked),
            _ => None,
        }) else {
            failures.push(format!("seed {seed}: the BOOT barrier never completed"));
            continue;
        };
        sim.run_until(Instant::from_secs(61));
        finish(&mut sim, &FinalPhase::default());
        let report = counts(&sim, 3, ConflictMode::VectorClock);
        if boot_acks != 6 || report.correctness_anomalies() > 0 {
            failures.push(format!(
                "seed {seed}: the joiner's BOOT barrier completed with {boot_acks} of 6 members acknowledging; {} stale reads, {} lost writes{}\n  replay: RINGSIDE_SEED={seed} cargo test -p ringside-tests --test join_invariants {TEST} -- --nocapture",
                report.count(AnomalyKind::StaleRead),
                report.count(AnomalyKind::LostWrite),
                report.anomalies.first().map(|a| format!(" ({})", a.explanation)).unwrap_or_default()
            ));
        }
    }
    // Then the randomized runs with faults.
    let s = sweep(JoinStrategy::Staged, SEEDS_PER_STRATEGY, false, TEST);
    failures.extend(s.failures);
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn same_seed_same_movement_trace() {
    // Invariant 10 with movements, resumes and the switch sampling in the loop.
    for seed in seeds(12).into_iter().step_by(3) {
        for strategy in [JoinStrategy::Staged, JoinStrategy::PendingRanges] {
            let a = MovementRun::from_seed(seed, strategy).execute();
            let b = MovementRun::from_seed(seed, strategy).execute();
            assert_eq!(
                a.sim.trace().hash(),
                b.sim.trace().hash(),
                "seed {seed} ({strategy}) is not deterministic; replay: {}",
                a.run.replay_command("same_seed_same_movement_trace")
            );
        }
    }
}

// -------------------------------------------------------------------------------------------------
// Negative controls: the flawed strategies show the anomalies docs/semantics.md expects of them.
// -------------------------------------------------------------------------------------------------

/// A closed-loop workload of 3 clients over `keys` keys, from 1 s to 60 s.
fn quiet_workload(read: ConsistencyLevel, write: ConsistencyLevel, keys: usize) -> WorkloadConfig {
    WorkloadConfig {
        clients: 3,
        keys,
        read_fraction: 0.5,
        delete_fraction: 0.0,
        read_cl: read,
        write_cl: write,
        think_time: Duration::from_millis(30),
        start: Duration::from_secs(1),
        stop: Duration::from_secs(60),
        use_context: true,
    }
}

fn counts(sim: &Simulation, rf: usize, mode: ConflictMode) -> ringside_core::checker::CheckReport {
    check(sim.history(), &CheckConfig { rf, mode })
}

fn replay(test: &str, seed: u64) -> String {
    format!(
        "RINGSIDE_SEED={seed} cargo test -p ringside-tests --test join_invariants {test} -- --nocapture"
    )
}

/// Keys the scripted negative controls write.
const SCRIPT_KEYS: u64 = 32;

/// Writes every key once through `via` (blind writes: each is concurrent with the others and
/// must survive, as a sibling or the last value), then lets them complete.
fn write_every_key(sim: &mut Simulation, via: NodeId, cl: ConsistencyLevel, tag: &str) {
    for k in 0..SCRIPT_KEYS {
        let value = format!("{tag}-{k}");
        let _ = sim.client_op(via, OpFunction::Write, &format!("k{k}"), Some(&value), cl, None);
        sim.run_for(Duration::from_millis(20));
    }
    sim.run_for(Duration::from_millis(500));
}

/// Reads every key once through `via`.
fn read_every_key(sim: &mut Simulation, via: NodeId, cl: ConsistencyLevel) {
    for k in 0..SCRIPT_KEYS {
        let _ = sim.client_op(via, OpFunction::Read, &format!("k{k}"), None, cl, None);
        sim.run_for(Duration::from_millis(20));
    }
    sim.run_for(Duration::from_millis(500));
}

/// Runs until every running node's view shows `node` as `status`, at most `limit` more.
fn run_until_everyone_sees(sim: &mut Simulation, node: NodeId, status: Status, limit: Duration) {
    let until = sim.now() + limit;
    while sim.now() < until {
        let everyone = (0..sim.names().len() as u32)
            .filter_map(|i| sim.node(NodeId(i)))
            .all(|n| n.view().status(node) == Some(status));
        if everyone {
            return;
        }
        sim.run_for(Duration::from_millis(100));
    }
}

fn no_workload() -> WorkloadConfig {
    WorkloadConfig { clients: 0, ..WorkloadConfig::default() }
}

/// `immediate` (reference doc 000, approach 3): the joiner is a read replica at once, empty. One
/// old replica, `n2`, missed the writes (it was down; hints are off, so it stays behind until read
/// repair). A QUORUM read coordinated by the joiner counts its own empty answer and the first
/// remote one: whenever that is `n2`'s, the read misses the acknowledged QUORUM write.
#[test]
fn immediate_joiner_gives_stale_reads_at_quorum() {
    let mut stale = 0;
    for seed in seeds(4) {
        let mut sim = small_cluster(
            seed,
            3,
            3,
            NodeConfig {
                join_strategy: JoinStrategy::Immediate,
                hinted_handoff: false,
                // Slow enough that the joiner is still empty when it is read.
                stream_throughput: Some(20),
                ..NodeConfig::default()
            },
            no_workload(),
        );
        sim.run_until(Instant::from_secs(1));
        sim.crash(NodeId(2)).expect("crash");
        write_every_key(&mut sim, NodeId(0), ConsistencyLevel::Quorum, "v1");
        sim.restart(NodeId(2)).expect("restart");
        sim.run_for(Duration::from_secs(3));
        let joiner = sim.add_node("joiner", JoinRequest::default()).expect("add");
        run_until_everyone_sees(&mut sim, joiner, Status::Normal, Duration::from_secs(20));
        sim.run_for(Duration::from_secs(2));
        read_every_key(&mut sim, joiner, ConsistencyLevel::Quorum);
        finish(&mut sim, &FinalPhase::default());
        let report = counts(&sim, 3, ConflictMode::VectorClock);
        eprintln!("immediate, seed {seed}: {} stale reads", report.count(AnomalyKind::StaleRead));
        stale += report.count(AnomalyKind::StaleRead);
    }
    assert!(stale > 0, "immediate never served a stale QUORUM read from its empty joiner");
}

/// `stream-then-cutover` (reference doc 000, approach 2): writes go to the old replicas only, so
/// a write made after its range was streamed is missing on the joiner after the cutover. Writes at
/// ALL, reads at ONE (R + W > RF) coordinated by the joiner, which answers from its own storage,
/// once every node knows the cutover (so this is not the switch window of `pending-ranges`).
#[test]
fn stream_then_cutover_gives_stale_reads() {
    let mut stale = 0;
    for seed in seeds(4) {
        let mut sim = small_cluster(
            seed,
            3,
            3,
            NodeConfig {
                join_strategy: JoinStrategy::StreamThenCutover,
                stream_throughput: Some(100),
                ..NodeConfig::default()
            },
            no_workload(),
        );
        sim.run_until(Instant::from_secs(1));
        write_every_key(&mut sim, NodeId(0), ConsistencyLevel::All, "v1");
        let joiner = sim.add_node("joiner", JoinRequest::default()).expect("add");
        // Once some range was streamed, every key is written again.
        while sim.now() < Instant::from_secs(60) && sim.stats().keys_streamed == 0 {
            sim.run_for(Duration::from_millis(100));
        }
        assert!(announced(&sim, joiner, Status::Boot), "seed {seed}: the joiner is not streaming");
        write_every_key(&mut sim, NodeId(0), ConsistencyLevel::All, "v2");
        assert!(
            run_until_joined(&mut sim, joiner, Instant::from_secs(120)),
            "seed {seed}: no cutover"
        );
        run_until_everyone_sees(&mut sim, joiner, Status::Normal, Duration::from_secs(20));
        read_every_key(&mut sim, joiner, ConsistencyLevel::One);
        finish(&mut sim, &FinalPhase::default());
        let report = counts(&sim, 3, ConflictMode::VectorClock);
        eprintln!(
            "stream-then-cutover, seed {seed}: {} stale reads",
            report.count(AnomalyKind::StaleRead)
        );
        stale += report.count(AnomalyKind::StaleRead);
    }
    assert!(stale > 0, "stream-then-cutover never served a stale read after the cutover");
}

/// `dual-write-cutover` (reference doc 001): only the old replicas count; the copy to the joiner is
/// best effort and a failed copy is only logged. With the joiner cut off from the others while
/// every key is written during the copy, the writes to ranges it had already streamed are missing
/// on it after the cutover: with RF=1 (ONE/ONE) they are acknowledged writes lost for good, and
/// reads of them are stale. `staged`, under the same script, loses nothing (its writes to the
/// joiner count, so they time out instead of being acknowledged).
#[test]
fn dual_write_cutover_loses_writes_when_the_copy_fails() {
    for seed in seeds(4) {
        let mut found = Vec::new();
        for strategy in [JoinStrategy::DualWriteCutover, JoinStrategy::Staged] {
            let mut sim = small_cluster(
                seed,
                3,
                1,
                NodeConfig {
                    join_strategy: strategy,
                    stream_throughput: Some(100),
                    ..NodeConfig::default()
                },
                no_workload(),
            );
            sim.run_until(Instant::from_secs(1));
            write_every_key(&mut sim, NodeId(0), ConsistencyLevel::One, "v1");
            let joiner = sim.add_node("joiner", JoinRequest::default()).expect("add");
            while sim.now() < Instant::from_secs(60) && sim.stats().keys_streamed == 0 {
                sim.run_for(Duration::from_millis(100));
            }
            sim.partition(vec![vec![joiner]]);
            for (i, via) in [NodeId(0), NodeId(1), NodeId(2)].into_iter().enumerate() {
                write_every_key(&mut sim, via, ConsistencyLevel::One, &format!("v{}", i + 2));
            }
            sim.heal();
            assert!(
                run_until_joined(&mut sim, joiner, Instant::from_secs(180)),
                "seed {seed} {strategy}: the join did not complete"
            );
            run_until_everyone_sees(&mut sim, joiner, Status::Normal, Duration::from_secs(20));
            read_every_key(&mut sim, NodeId(0), ConsistencyLevel::One);
            finish(&mut sim, &FinalPhase::default());
            let report = counts(&sim, 1, ConflictMode::VectorClock);
            eprintln!(
                "seed {seed} {strategy}: {} lost writes, {} stale reads, {} timeouts",
                report.count(AnomalyKind::LostWrite),
                report.count(AnomalyKind::StaleRead),
                report.count(AnomalyKind::Timeout)
            );
            found.push(report);
        }
        let test = "dual_write_cutover_loses_writes_when_the_copy_fails";
        assert!(
            found[0].count(AnomalyKind::LostWrite) > 0
                && found[0].count(AnomalyKind::StaleRead) > 0,
            "seed {seed}: dual-write-cutover lost no acknowledged write (or served no stale read) although the copies were dropped; replay: {}",
            replay(test, seed)
        );
        assert_eq!(
            found[1].correctness_anomalies(),
            0,
            "seed {seed}: staged had anomalies under the same script: {:?}; replay: {}",
            found[1].anomalies.first(),
            replay(test, seed)
        );
    }
}

/// `sync-dual-write` (reference doc 000's DynamoDB description): every write must succeed on the
/// joiner too, so a joiner partitioned away makes writes time out, then fail as unavailable once
/// it is convicted. `staged`, under the same partition, needs no ack from the joiner beyond the
/// level plus one and stays available.
#[test]
fn sync_dual_write_is_unavailable_while_the_joiner_is_cut_off() {
    for seed in seeds(2) {
        let mut errors = Vec::new();
        for strategy in [JoinStrategy::SyncDualWrite, JoinStrategy::Staged] {
            let mut sim = small_cluster(
                seed,
                3,
                3,
                NodeConfig {
                    join_strategy: strategy,
                    stream_throughput: Some(200),
                    ..NodeConfig::default()
                },
                quiet_workload(ConsistencyLevel::Quorum, ConsistencyLevel::Quorum, 16),
            );
            sim.run_until(Instant::from_secs(5));
            let joiner = sim.add_node("joiner", JoinRequest::default()).expect("add");
            while sim.now() < Instant::from_secs(30) && !announced(&sim, joiner, Status::Boot) {
                sim.run_for(Duration::from_millis(100));
            }
            sim.run_for(Duration::from_secs(1));
            sim.partition(vec![vec![joiner]]);
            sim.run_for(Duration::from_secs(25));
            sim.heal();
            sim.run_for(Duration::from_secs(5));
            // The joiner convicted its streaming source during the partition: resume it.
            let _ = sim.resume_join(joiner, false);
            sim.run_until(Instant::from_secs(61));
            finish(&mut sim, &FinalPhase::default());
            let report = counts(&sim, 3, ConflictMode::VectorClock);
            let e = report.count(AnomalyKind::Unavailable) + report.count(AnomalyKind::Timeout);
            eprintln!(
                "seed {seed} {strategy}: {} unavailable, {} timeouts, {} stale reads, {} lost writes",
                report.count(AnomalyKind::Unavailable),
                report.count(AnomalyKind::Timeout),
                report.count(AnomalyKind::StaleRead),
                report.count(AnomalyKind::LostWrite),
            );
            errors.push(e);
        }
        assert!(
            errors[0] > 0,
            "seed {seed}: sync-dual-write stayed available with its joiner cut off; replay: {}",
            replay("sync_dual_write_is_unavailable_while_the_joiner_is_cut_off", seed)
        );
        assert_eq!(
            errors[1],
            0,
            "seed {seed}: staged had errors with only the joiner cut off; replay: {}",
            replay("sync_dual_write_is_unavailable_while_the_joiner_is_cut_off", seed)
        );
    }
}

/// RF=1, ONE/ONE, one client writing through `n0`, whose gossip is slow for longer than
/// RING_DELAY plus the whole join. Under `pending-ranges` n0 never hears of the joiner's BOOT
/// (nor its NORMAL) in time, keeps writing only to the old owner after the range was streamed,
/// and those acknowledged writes never reach the new owner: lost (docs/semantics.md: "lost writes if
/// [gossip] did not [settle]"; scylladb#2308). Under `staged` the barriers push every epoch to n0
/// and nothing is lost.
fn slow_coordinator_run(strategy: JoinStrategy, seed: u64) -> ringside_core::checker::CheckReport {
    let mut sim = small_cluster(
        seed,
        3,
        1,
        NodeConfig {
            join_strategy: strategy,
            ring_delay: Duration::from_secs(10),
            stream_throughput: Some(2_000),
            ..NodeConfig::default()
        },
        WorkloadConfig { clients: 0, ..WorkloadConfig::default() },
    );
    let slow = NodeId(0);
    sim.run_until(Instant::from_secs(2));
    sim.slow_gossip(slow, Duration::from_secs(50)).expect("slow gossip");
    sim.run_until(Instant::from_secs(3));
    let joiner = sim.add_node("joiner", JoinRequest::default()).expect("add");
    // One client, through the slow node only: each operation completes before the next.
    let mut last: Option<u64> = None;
    for i in 0u64.. {
        if sim.now() >= Instant::from_secs(45) {
            break;
        }
        if last.is_none_or(|invoke| sim.completion(invoke).is_some()) {
            let key = format!("k{}", i % 24);
            let value = format!("v{i}");
            let (f, v) = match i % 3 {
                2 => (OpFunction::Read, None),
                _ => (OpFunction::Write, Some(value.as_str())),
            };
            last = sim.client_op(slow, f, &key, v, ConsistencyLevel::One, None).ok();
        }
        sim.run_for(Duration::from_millis(50));
    }
    assert!(
        run_until_joined(&mut sim, joiner, Instant::from_secs(120)),
        "seed {seed} {strategy}: the join did not complete"
    );
    finish(&mut sim, &FinalPhase::default());
    counts(&sim, 1, ConflictMode::VectorClock)
}

#[test]
fn pending_ranges_with_a_late_coordinator_loses_writes_and_staged_does_not() {
    for seed in seeds(2) {
        let pending = slow_coordinator_run(JoinStrategy::PendingRanges, seed);
        let staged = slow_coordinator_run(JoinStrategy::Staged, seed);
        eprintln!(
            "seed {seed}: pending-ranges {} lost writes, {} stale reads; staged {} lost, {} stale",
            pending.count(AnomalyKind::LostWrite),
            pending.count(AnomalyKind::StaleRead),
            staged.count(AnomalyKind::LostWrite),
            staged.count(AnomalyKind::StaleRead)
        );
        let test = "pending_ranges_with_a_late_coordinator_loses_writes_and_staged_does_not";
        assert!(
            pending.count(AnomalyKind::LostWrite) > 0,
            "seed {seed}: pending-ranges lost nothing through a coordinator that learned of the joiner late; replay: {}",
            replay(test, seed)
        );
        assert_eq!(
            staged.correctness_anomalies(),
            0,
            "seed {seed}: staged had anomalies with a slow-gossip coordinator: {:?}; replay: {}",
            staged.anomalies.first(),
            replay(test, seed)
        );
    }
}

// -------------------------------------------------------------------------------------------------
// Invariant 9: a node of another cluster is never admitted.
// -------------------------------------------------------------------------------------------------

/// The simulator gives every node the same configuration, so the foreign nodes are built here from
/// bare `Node`s driven by a small pump: `n0`–`n2` form cluster "ringside"; `n3` runs cluster
/// "other" and tries to join through `n0` and `n1` as seeds; `n4` is a formed one-node cluster
/// "other" whose seed list names `n0`. Then both send `n1` a message on every non-gossip path
/// (a barrier and a view reply carrying their state, stream data, hints, mutations, repairs, mint
/// and read requests, stream and Merkle requests). Checked after every step: no node ever has a
/// node of the other cluster in its view, its gossip endpoints or its ring; no data from the
/// foreign nodes reaches a member's storage; the foreign joiner's join fails with the cluster
/// mismatch, and the cluster itself is unaffected.
#[test]
fn a_node_of_another_cluster_never_enters_any_view() {
    use rand::SeedableRng;
    use ringside_core::alloc::{Allocation, build_ring};
    use ringside_core::membership::ClusterView;
    use ringside_core::merkle::MerkleRequest;
    use ringside_core::message::Message;
    use ringside_core::node::Node;
    use ringside_core::storage::{Entry, Hint, MemStorage};
    use ringside_core::streaming::StreamPurpose;
    use ringside_core::token::{TokenRange, token_for};
    use ringside_core::version::{Dot, Siblings, VClock, Version};
    use ringside_tests::movements::Pump;
    use std::collections::BTreeMap;

    for seed in seeds(3) {
        let ours: Vec<NodeId> = (0..3).map(NodeId).collect();
        let (joiner, formed) = (NodeId(3), NodeId(4));
        let cluster_of = |n: NodeId| if n.0 < 3 { "ringside" } else { "other" };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let ring = build_ring(&ours, 8, 3, Allocation::Random, &mut rng).expect("ring");
        let base = NodeConfig { rng_seed: seed, ..NodeConfig::default() };
        let mut nodes = Vec::new();
        for id in &ours {
            let config = NodeConfig { seeds: ours.clone(), ..base.clone() };
            let view = ClusterView::from_ring(&ring);
            nodes.push(Node::new(*id, config, view, MemStorage::new(), Instant::ZERO).unwrap());
        }
        let other =
            |seeds: Vec<NodeId>| NodeConfig { cluster_name: "other".into(), seeds, ..base.clone() };
        nodes.push(
            Node::new(
                joiner,
                other(vec![NodeId(0), NodeId(1)]),
                ClusterView::empty(3),
                MemStorage::new(),
                Instant::ZERO,
            )
            .unwrap(),
        );
        let own_ring = ringside_core::ring::Ring::new([(42, formed)], 1).expect("ring");
        nodes.push(
            Node::new(
                formed,
                other(vec![NodeId(0), formed]),
                ClusterView::from_ring(&own_ring),
                MemStorage::new(),
                Instant::ZERO,
            )
            .unwrap(),
        );
        let mut pump = Pump::new(nodes);
        pump.nodes[joiner.0 as usize]
            .join(Instant::ZERO, JoinRequest::default())
            .expect("the foreign node starts joining");
        pump.drain(joiner);

        let mut seen = Vec::new();
        let mut check = |p: &Pump| {
            for node in &p.nodes {
                let me = node.id();
                // A seed it was configured with is known to its gossiper with an empty state;
                // what counts is a state learned from the stranger, or a place in the view.
                let learned = node.gossiper().known_nodes().filter(|n| {
                    node.gossiper()
                        .endpoint(*n)
                        .is_some_and(|e| e.heartbeat.generation > 0 || !e.states.is_empty())
                });
                let strangers = node
                    .view()
                    .members
                    .keys()
                    .copied()
                    .chain(learned)
                    .chain(node.topology().map(|t| t.ring().nodes()).unwrap_or_default())
                    .filter(|n| cluster_of(*n) != cluster_of(me))
                    .collect::<std::collections::BTreeSet<_>>();
                if !strangers.is_empty() && seen.len() < 5 {
                    seen.push(format!("{me} at {:?} knows {strangers:?}", p.now()));
                }
            }
        };
        pump.run_until(Instant::from_secs(10), &mut check);

        // Every other inbound path, from both foreign nodes to n1.
        let key = b"foreign".to_vec();
        let token = token_for(&key);
        for from in [joiner, formed] {
            let states: BTreeMap<NodeId, _> =
                [(from, pump.nodes[from.0 as usize].gossiper().local().clone())]
                    .into_iter()
                    .collect();
            let value = Siblings::one(Version {
                dot: Dot { node: from, counter: 1 },
                context: VClock::new(),
                timestamp: 1,
                value: Some(b"from another cluster".to_vec()),
            });
            let whole = TokenRange { start: 0, end: 0 };
            let messages = vec![
                Message::Barrier { epoch: 1, states: states.clone() },
                Message::ViewReply { states: states.clone() },
                Message::Gossip(Box::new(ringside_core::gossip::GossipMessage::Ack2 {
                    states: states.clone(),
                    since: Default::default(),
                })),
                Message::Gossip(Box::new(ringside_core::gossip::GossipMessage::Ack {
                    digests: Vec::new(),
                    states,
                    since: Default::default(),
                })),
                Message::StreamData {
                    session: 1,
                    seq: 1,
                    range: whole,
                    purpose: StreamPurpose::Repair,
                    entries: vec![Entry { token, key: key.clone(), value: value.clone() }],
                    last: true,
                },
                Message::HandoffHint {
                    hint: Hint {
                        id: 1,
                        target: NodeId(2),
                        token,
                        key: key.clone(),
                        value: value.clone(),
                        created: Instant::from_secs(10),
                        epoch: 0,
                    },
                },
                Message::Hint { id: 2, epoch: 0, token, key: key.clone(), value: value.clone() },
                Message::Mutation {
                    op: 3,
                    epoch: 0,
                    token,
                    key: key.clone(),
                    value: std::sync::Arc::new(value.clone()),
                },
                Message::Repair { token, key: key.clone(), value },
                Message::Mint {
                    op: 4,
                    epoch: 0,
                    token,
                    key: key.clone(),
                    value: Some(b"minted".to_vec()),
                    context: VClock::new(),
                    timestamp: 2,
                },
                Message::Read { op: 5, epoch: 0, token, key: key.clone() },
                Message::StreamRequest {
                    session: 6,
                    epoch: 0,
                    range: whole,
                    purpose: StreamPurpose::Join,
                },
                Message::MerkleRequest(MerkleRequest {
                    session: 7,
                    range: whole,
                    depth: 2,
                    epoch: 0,
                }),
                Message::ViewRequest,
            ];
            for m in messages {
                pump.inject(from, NodeId(1), m);
            }
        }
        pump.run_until(Instant::from_secs(70), &mut check);

        assert!(seen.is_empty(), "seed {seed}: a node of another cluster was admitted: {seen:?}");
        for id in &ours {
            let node = &pump.nodes[id.0 as usize];
            assert!(
                node.storage().iter().all(|(_, k, _)| k != key.as_slice()),
                "seed {seed}: {id} stored data sent by a node of another cluster"
            );
            assert!(
                node.stats().refused > 0 || *id == NodeId(2),
                "seed {seed}: {id} refused nothing"
            );
            let members: Vec<NodeId> = node.view().members.keys().copied().collect();
            assert_eq!(members, ours, "seed {seed}: {id}'s view changed");
            assert!(
                node.view().members.values().all(|m| m.status == Status::Normal),
                "seed {seed}: {id}'s view changed: {:?}",
                node.view()
            );
        }
        // What the foreign nodes sent to n1 was answered by refusals only: nothing n1 holds
        // (its data or the cluster's states) went to them.
        let leaked = pump.nodes[joiner.0 as usize].storage().iter().count()
            + pump.nodes[formed.0 as usize].storage().iter().count();
        assert_eq!(leaked, 0, "seed {seed}: data of cluster ringside reached a foreign node");
        // The foreign joiner never got anywhere: its join failed (how soon and why is
        // `a_joiner_refused_by_its_seeds_fails_on_the_cluster_mismatch`).
        let failed = join_failure(&pump, joiner);
        assert!(failed.is_some(), "seed {seed}: the foreign joiner's join did not fail");
    }
}

fn join_failure(pump: &ringside_tests::movements::Pump, node: NodeId) -> Option<(Instant, String)> {
    pump.events[node.0 as usize].iter().find_map(|(t, e)| match e {
        ringside_core::node::Event::Trace(NodeTrace::JoinFailed { reason }) => {
            Some((*t, reason.clone()))
        }
        _ => None,
    })
}

/// A joiner whose seeds run another cluster stops within seconds with the seeds' "cluster
/// mismatch" refusal, not after the 60 s discovery timeout. (Found while writing these tests: the
/// seeds' `Refused` replies used to be dropped as messages from non-members, so `Node::on_refused`
/// never fired; `Node::handle_message` now lets `Refused` through, commit 381ae31.)
#[test]
fn a_joiner_refused_by_its_seeds_fails_on_the_cluster_mismatch() {
    use rand::SeedableRng;
    use ringside_core::alloc::{Allocation, build_ring};
    use ringside_core::membership::ClusterView;
    use ringside_core::node::Node;
    use ringside_core::storage::MemStorage;
    use ringside_tests::movements::Pump;

    let ours: Vec<NodeId> = (0..3).map(NodeId).collect();
    let joiner = NodeId(3);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let ring = build_ring(&ours, 8, 3, Allocation::Random, &mut rng).expect("ring");
    let mut nodes: Vec<Node<MemStorage>> = ours
        .iter()
        .map(|id| {
            let config = NodeConfig { seeds: ours.clone(), ..NodeConfig::default() };
            let view = ClusterView::from_ring(&ring);
            Node::new(*id, config, view, MemStorage::new(), Instant::ZERO).unwrap()
        })
        .collect();
    let config = NodeConfig {
        cluster_name: "other".into(),
        seeds: vec![NodeId(0), NodeId(1)],
        ..NodeConfig::default()
    };
    nodes.push(
        Node::new(joiner, config, ClusterView::empty(3), MemStorage::new(), Instant::ZERO).unwrap(),
    );
    let mut pump = Pump::new(nodes);
    pump.nodes[3].join(Instant::ZERO, JoinRequest::default()).expect("join");
    pump.drain(joiner);
    pump.run_until(Instant::from_secs(70), |_| {});
    let failed = join_failure(&pump, joiner);
    assert!(
        failed
            .as_ref()
            .is_some_and(|(t, r)| r.contains("cluster mismatch") && *t < Instant::from_secs(10)),
        "the join should fail within seconds on the seeds' cluster mismatch; it failed with {failed:?}"
    );
}

/// Invariant 9 in the randomized movement runs: a node of cluster "other" is started right after
/// the joiner, with the same seeds, and lives through the same pauses, partitions and loss (it is
/// not crashed: see `a_restarted_foreign_node_stays_foreign`). Sampled every 50 ms of the run: no member ever has it in its view, its ring or its
/// gossip state, or admits its messages; its join fails on the cluster mismatch; and every other
/// invariant of the main test still holds for the real joiner and leaver.
#[test]
fn a_node_of_another_cluster_never_enters_any_view_under_faults() {
    const TEST: &str = "a_node_of_another_cluster_never_enters_any_view_under_faults";
    let mut failures = Vec::new();
    for seed in seeds(100) {
        for strategy in [JoinStrategy::Staged, JoinStrategy::PendingRanges] {
            let mut run = MovementRun::from_seed(seed, strategy);
            run.foreign_node = true;
            let out = run.execute();
            let broken = out.violations();
            if !broken.is_empty() {
                failures.push(describe_failure(&out, &broken, TEST));
            }
        }
    }
    assert!(failures.is_empty(), "{} runs failed:\n{}", failures.len(), failures.join("\n"));
}

/// A node started with another cluster name and restarted after a crash must still be refused:
/// the simulator restarts each added node with its own configuration.
#[test]
fn a_restarted_foreign_node_stays_foreign() {
    for seed in seeds(3) {
        let mut sim = small_cluster(
            seed,
            3,
            3,
            NodeConfig::default(),
            quiet_workload(ConsistencyLevel::Quorum, ConsistencyLevel::Quorum, 8),
        );
        sim.run_until(Instant::from_secs(2));
        let foreign = sim
            .add_node_configured("foreign", JoinRequest::default(), |c| {
                c.cluster_name = "other".into();
            })
            .expect("add");
        sim.run_until(Instant::from_secs(10));
        sim.crash(foreign).expect("crash");
        sim.run_until(Instant::from_secs(12));
        sim.restart(foreign).expect("restart");
        sim.run_until(Instant::from_secs(40));
        for i in 0..3 {
            let n = sim.node(NodeId(i)).expect("up");
            assert!(
                !n.admits(foreign) && n.view().member(foreign).is_none(),
                "seed {seed}: n{i} admits the restarted foreign node"
            );
        }
        assert_eq!(
            sim.node(foreign).map(|n| n.config().cluster_name.clone()).as_deref(),
            Some("other"),
            "seed {seed}: the foreign node restarted with another cluster name"
        );
    }
}
