//! What a run reports: the [`ScenarioReport`] with its counters, outcomes and expectation
//! results, its text rendering, and how a simulated node's status reads as `ringside status`
//! prints it.

use super::event::TimelineEvent;
use super::expect::{ExpectationResult, check_op, check_run};
use super::playback::RunOptions;
use super::prepare::Prepared;
use crate::checker::{AnomalyKind, CheckConfig, CheckReport, check};
use crate::history::{OpFunction, OpType};
use crate::id::NodeId;
use crate::node::{Reply, RequestError};
use crate::sim::Simulation;
use crate::status::NodeStatus;
use crate::time::Instant;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What one scripted operation did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpOutcome {
    /// Its label, or a description.
    pub label: String,
    /// When it was issued.
    pub at: Instant,
    /// "ok", "unavailable", "timeout", "coordinator crashed" or "pending".
    pub outcome: String,
    /// Replicas that acknowledged (writes) or answered (reads) when the client was answered.
    pub replicas: Vec<String>,
    /// Targets hinted (writes).
    pub hinted: Vec<String>,
    /// Values returned (reads).
    pub values: Vec<String>,
    /// The error's own words, if any.
    pub detail: Option<String>,
    /// A read (otherwise a write or a delete).
    #[serde(default)]
    pub read: bool,
}

/// Counts of operations.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpCounts {
    /// Reads invoked (final reads excluded).
    pub reads: u64,
    /// Writes and deletes invoked.
    pub writes: u64,
    /// Completed `ok`.
    pub ok: u64,
    /// Completed `fail`.
    pub fail: u64,
    /// Completed `info`.
    pub info: u64,
}

/// The result of running a scenario.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScenarioReport {
    /// Scenario name.
    pub name: String,
    /// Seed used.
    pub seed: u64,
    /// Virtual time at the end.
    pub end_time: Instant,
    /// Operation counts.
    pub ops: OpCounts,
    /// Anomaly counts by kind.
    pub anomalies: BTreeMap<AnomalyKind, usize>,
    /// The checker's full report.
    pub check: CheckReport,
    /// Hints stored per coordinator.
    pub hints_stored: BTreeMap<String, u64>,
    /// Hints delivered in total.
    pub hints_delivered: u64,
    /// Hints still stored at the end, per holder.
    pub hints_remaining: BTreeMap<String, u64>,
    /// Read repairs sent in total.
    pub read_repairs: u64,
    /// Messages sent / delivered / dropped.
    pub messages: crate::sim::SimStats,
    /// Effective ownership (0..=1) per node, as `status` shows it: a joining node has none.
    pub ownership: BTreeMap<String, f64>,
    /// Keys whose running replicas disagree at the end.
    pub divergent_keys: Vec<String>,
    /// Status per node at the end, as `status` prints it (UN, UJ, DN, LEFT…).
    pub status: BTreeMap<String, String>,
    /// Seconds from each join's start to NORMAL.
    pub time_to_normal: BTreeMap<String, f64>,
    /// Joins and decommissions that failed, with the reason.
    pub movement_failures: Vec<String>,
    /// Keys held by nodes that no longer replicate them, at the end.
    pub ghost_keys: u64,
    /// Bytes streamed (joins, decommissions, repairs).
    pub bytes_streamed: u64,
    /// Acknowledgements demanded beyond the level because of pending replicas.
    pub extra_acks: u64,
    /// Scripted operations and what they did.
    pub operations: Vec<OpOutcome>,
    /// Expectation results.
    pub expectations: Vec<ExpectationResult>,
    /// Whether every expectation held.
    pub passed: bool,
    /// Trace hash, hex.
    pub trace_hash: String,
    /// Trace events recorded.
    pub trace_events: u64,
    /// The command that replays this run.
    pub replay: String,
    /// The cluster as it was right after each labelled event other than a client operation
    /// (an `inspect` event, a crash, a join…), in the order they were applied.
    #[serde(default)]
    pub moments: Vec<Moment>,
}

/// The cluster right after a labelled event: what `status` showed of each node, and what it held.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Moment {
    /// The event's label.
    pub label: String,
    /// When it was applied.
    pub at: Instant,
    /// Why the event was refused, if it was (an operator command).
    pub error: Option<String>,
    /// Each node, in id order.
    pub nodes: Vec<MomentNode>,
}

/// One node at a [`Moment`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MomentNode {
    /// Its name.
    pub name: String,
    /// Its status code (UN, UJ, DN, LEFT, OUT…).
    pub status: String,
    /// Its effective ownership (0 to 1); `None` while it joins.
    pub ownership: Option<f64>,
    /// Keys it holds.
    pub keys: u64,
    /// Keys it holds but no longer replicates (ghost data).
    pub ghost_keys: u64,
    /// Hints it holds for other nodes.
    pub hints: u64,
}

impl Moment {
    /// The cluster of `sim` now, after the event labelled `label`.
    pub fn of(sim: &Simulation, label: &str, error: Option<String>) -> Moment {
        let ghosts = sim.ghost_keys();
        let nodes = (0..sim.names().len() as u32)
            .map(NodeId)
            .map(|id| {
                let storage = sim.storage(id);
                MomentNode {
                    name: sim.name(id).to_string(),
                    status: status_code(sim, id),
                    ownership: ownership(sim, id),
                    keys: storage.map_or(0, crate::storage::Storage::key_count),
                    ghost_keys: ghosts.get(&id).copied().unwrap_or(0),
                    hints: storage
                        .and_then(|st| crate::storage::Storage::hints(st).ok())
                        .map_or(0, |h| h.len() as u64),
                }
            })
            .collect();
        Moment { label: label.to_string(), at: sim.now(), error, nodes }
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&MomentNode> {
        self.nodes.iter().find(|n| n.name == name)
    }
}
/// The status column of `ringside status` for a node of a simulation: `U`/`D` (up or down)
/// then `N`/`J`/`L` (normal, joining, leaving), or `LEFT`.
pub fn status_code(sim: &Simulation, id: NodeId) -> String {
    node_status(sim, id).code()
}

/// A simulated node as `status` shows it: up or down as the other nodes' failure detectors see
/// it ([`Simulation::seen_up`]), not as its process is.
pub fn node_status(sim: &Simulation, id: NodeId) -> NodeStatus {
    NodeStatus::of(sim.seen_up(id), sim.cluster_view().member(id))
}

/// Effective ownership as `status` shows it: the node's share of the ring (0 to 1), `None` for
/// a joining node (printed `?`).
pub fn ownership(sim: &Simulation, id: NodeId) -> Option<f64> {
    let share = sim.topology().ring().effective_ownership().get(&id).copied().unwrap_or(0.0);
    node_status(sim, id).owns(share)
}

/// [`ownership`] as `status` prints it: a percentage, or `?` for a joining node.
pub fn ownership_text(sim: &Simulation, id: NodeId) -> String {
    ownership(sim, id).map_or_else(|| "?".into(), |share| format!("{:.1}%", share * 100.0))
}

/// The names of `ids`, as reports show nodes.
fn names_of(sim: &Simulation, ids: &[NodeId]) -> Vec<String> {
    ids.iter().map(|n| sim.name(*n).to_string()).collect()
}

/// The report of a finished run: counters from the simulation, the checker's verdict, what each
/// scripted operation did (`scripted` pairs an index into `events` with its invoke, `None` when
/// the coordinator was down), and every expectation of the file checked.
pub(super) fn report(
    p: &Prepared,
    options: &RunOptions,
    sim: &Simulation,
    events: &[TimelineEvent],
    scripted: &[(usize, Option<u64>)],
) -> ScenarioReport {
    let s = &p.scenario;
    let seed = options.seed.unwrap_or(s.seed);
    let check = check(sim.history(), &CheckConfig { rf: s.cluster.rf, mode: s.cluster.conflict });
    let mut ops = OpCounts::default();
    for op in &sim.history().ops {
        if op.final_read {
            continue;
        }
        match op.op_type {
            OpType::Invoke if op.f == OpFunction::Read => ops.reads += 1,
            OpType::Invoke => ops.writes += 1,
            OpType::Ok => ops.ok += 1,
            OpType::Fail => ops.fail += 1,
            OpType::Info => ops.info += 1,
        }
    }
    // Counted by the simulator from node traces, so crashes do not reset them.
    let stats = sim.stats();
    let mut hints_stored: BTreeMap<String, u64> =
        stats.hints_stored.iter().map(|(n, c)| (sim.name(*n).to_string(), *c)).collect();
    let hints_delivered = stats.hints_delivered;
    let read_repairs = stats.read_repairs;
    hints_stored.retain(|_, v| *v > 0);
    let mut hints_remaining = BTreeMap::new();
    for (i, name) in sim.names().iter().enumerate() {
        if let Some(st) = sim.storage(NodeId(i as u32)) {
            let n = crate::storage::Storage::hints(st).map(|h| h.len()).unwrap_or(0) as u64;
            if n > 0 {
                hints_remaining.insert(name.clone(), n);
            }
        }
    }
    // As `status` shows it: joining nodes have none (`?`), nodes that left own 0.
    let ownership: BTreeMap<String, f64> = (0..sim.names().len() as u32)
        .filter_map(|i| ownership(sim, NodeId(i)).map(|f| (sim.name(NodeId(i)).to_string(), f)))
        .collect();
    let divergent_keys = sim.divergent_keys();
    let status: BTreeMap<String, String> = (0..sim.names().len() as u32)
        .map(|i| (sim.name(NodeId(i)).to_string(), status_code(sim, NodeId(i))))
        .collect();
    let time_to_normal: BTreeMap<String, f64> = stats
        .join_completed
        .iter()
        .filter_map(|(n, done)| {
            let start = stats.join_started.get(n)?;
            Some((sim.name(*n).to_string(), done.saturating_duration_since(*start).as_secs_f64()))
        })
        .collect();
    let movement_failures: Vec<String> =
        stats.movement_failures.iter().map(|(n, r)| format!("{}: {r}", sim.name(*n))).collect();
    let ghost_keys: u64 = sim.ghost_keys().values().sum();

    let mut operations = Vec::new();
    let mut expectations = Vec::new();
    for (i, invoke) in scripted {
        let e = &events[*i];
        let (f, op) = e.event.client_op().expect("only client operations are scripted");
        let label = e.label.clone().unwrap_or_else(|| e.event.to_string());
        let mut outcome = OpOutcome {
            label: label.clone(),
            at: Instant::ZERO + e.at,
            outcome: "pending".into(),
            replicas: vec![],
            hinted: vec![],
            values: vec![],
            detail: None,
            read: f == OpFunction::Read,
        };
        match invoke.and_then(|i| sim.completion(i)) {
            None if invoke.is_none() => {
                outcome.outcome = "coordinator down".into();
                outcome.detail = Some(format!("node {} was not running", op.node));
            }
            None => {}
            Some(c) => match &c.result {
                Some(Ok(Reply::Written { acks, hinted, .. })) => {
                    outcome.outcome = "ok".into();
                    outcome.replicas = names_of(sim, acks);
                    outcome.hinted = names_of(sim, hinted);
                }
                Some(Ok(Reply::Read { value, replied, .. })) => {
                    outcome.outcome = "ok".into();
                    outcome.replicas = names_of(sim, replied);
                    outcome.values = value
                        .values()
                        .into_iter()
                        .map(|v| String::from_utf8_lossy(&v).into_owned())
                        .collect();
                }
                Some(Err(err)) => {
                    outcome.outcome = match err {
                        RequestError::Unavailable { .. } => "unavailable".into(),
                        RequestError::Timeout { .. } => "timeout".into(),
                    };
                    outcome.detail = Some(err.to_string());
                }
                None => outcome.outcome = "coordinator crashed".into(),
            },
        }
        if let Some(x) = &e.expect {
            expectations.extend(check_op(x, &label, &outcome));
        }
        operations.push(outcome);
    }

    let file = options.file.clone().unwrap_or_else(|| format!("<{}>", s.name));
    let mut report = ScenarioReport {
        name: s.name.clone(),
        seed,
        end_time: sim.now(),
        ops,
        anomalies: check.counts.clone(),
        check,
        hints_stored,
        hints_delivered,
        hints_remaining,
        read_repairs,
        messages: sim.stats().clone(),
        ownership,
        divergent_keys,
        status,
        time_to_normal,
        movement_failures,
        ghost_keys,
        bytes_streamed: stats.bytes_streamed,
        extra_acks: sim.extra_acks(),
        operations,
        expectations,
        passed: false,
        trace_hash: format!("{:016x}", sim.trace().hash()),
        trace_events: sim.trace().len(),
        replay: format!("ringside sim run {file} --seed {seed}"),
        moments: Vec::new(),
    };
    let run_checks = check_run(&s.expect, &report);
    report.expectations.extend(run_checks);
    report.passed = report.expectations.iter().all(|e| e.passed);
    report
}

impl std::fmt::Display for ScenarioReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "scenario {}  (seed {}, ended at {})", self.name, self.seed, self.end_time)?;
        writeln!(
            f,
            "operations: {} reads, {} writes -> {} ok, {} fail, {} info",
            self.ops.reads, self.ops.writes, self.ops.ok, self.ops.fail, self.ops.info
        )?;
        if !self.ownership.is_empty() {
            let own: Vec<String> =
                self.ownership.iter().map(|(n, o)| format!("{n} {:.1}%", o * 100.0)).collect();
            writeln!(f, "owns (effective): {}", own.join(", "))?;
        }
        let status: Vec<String> = self.status.iter().map(|(n, s)| format!("{n} {s}")).collect();
        writeln!(f, "status: {}", status.join(", "))?;
        for (n, t) in &self.time_to_normal {
            writeln!(f, "join of {n}: NORMAL after {t:.1}s")?;
        }
        for m in &self.movement_failures {
            writeln!(f, "movement failed: {m}")?;
        }
        if self.bytes_streamed > 0 || self.ghost_keys > 0 {
            writeln!(
                f,
                "streamed {} bytes; extra acks demanded {}; ghost keys {}",
                self.bytes_streamed, self.extra_acks, self.ghost_keys
            )?;
        }
        if !self.operations.is_empty() {
            writeln!(f, "scripted operations:")?;
            for o in &self.operations {
                write!(f, "  {:>10}  {:<32} {}", o.at.to_string(), o.label, o.outcome)?;
                if !o.replicas.is_empty() {
                    write!(f, "  replicas [{}]", o.replicas.join(", "))?;
                }
                if !o.hinted.is_empty() {
                    write!(f, "  hinted [{}]", o.hinted.join(", "))?;
                }
                if !o.values.is_empty() {
                    write!(f, "  values {:?}", o.values)?;
                }
                if let Some(d) = &o.detail {
                    write!(f, "  ({d})")?;
                }
                writeln!(f)?;
            }
        }
        let anomalies: Vec<String> =
            self.anomalies.iter().map(|(k, v)| format!("{k} {v}")).collect();
        writeln!(
            f,
            "anomalies: {}",
            if anomalies.is_empty() { "none".to_string() } else { anomalies.join(", ") }
        )?;
        for a in self.check.anomalies.iter().filter(|a| a.kind.is_correctness()).take(5) {
            writeln!(f, "  - {}", a.explanation)?;
        }
        let hints: Vec<String> =
            self.hints_stored.iter().map(|(n, c)| format!("{n} {c}")).collect();
        writeln!(
            f,
            "hints: stored {} ({}), delivered {}, remaining {}",
            self.hints_stored.values().sum::<u64>(),
            if hints.is_empty() { "none".into() } else { hints.join(", ") },
            self.hints_delivered,
            self.hints_remaining.values().sum::<u64>()
        )?;
        writeln!(f, "read repairs: {}", self.read_repairs)?;
        writeln!(
            f,
            "messages: {} sent, {} delivered, {} dropped",
            self.messages.sent, self.messages.delivered, self.messages.dropped
        )?;
        if !self.divergent_keys.is_empty() {
            writeln!(f, "divergent keys at the end: {}", self.divergent_keys.len())?;
        }
        writeln!(f, "trace: {} events, hash {}", self.trace_events, self.trace_hash)?;
        if !self.expectations.is_empty() {
            writeln!(f, "expectations:")?;
            for e in &self.expectations {
                let mark = if e.passed { "ok  " } else { "FAIL" };
                write!(f, "  {mark} {}: expected {}", e.what, e.expected)?;
                if !e.passed {
                    write!(f, ", got {}", e.actual)?;
                }
                writeln!(f)?;
            }
        }
        if self.passed {
            writeln!(f, "result: PASS")
        } else {
            writeln!(f, "result: FAIL — replay with: {}", self.replay)
        }
    }
}
