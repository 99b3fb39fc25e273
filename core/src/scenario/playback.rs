//! Running a prepared scenario: the simulation built from it, its timeline events applied as
//! time reaches them ([`Playback`]), and the final phase that lets the cluster settle before the
//! run is checked.

use super::event::{ClientOp, Event, Target, TimelineEvent};
use super::expect::{ExpectationResult, check_cluster};
use super::prepare::Prepared;
use super::report::{Moment, ScenarioReport, report};
use crate::gossip::Status;
use crate::history::OpFunction;
use crate::id::NodeId;
use crate::membership::JoinStrategy;
use crate::node::{JoinRequest, Reply};
use crate::sim::{SimConfig, SimError, Simulation};
use crate::time::Instant;
use crate::version::CausalContext;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// What happens after the timeline: heal, let hints drain, read everything at ALL (read repair),
/// then record the final state.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FinalPhase {
    /// Heal partitions and stop message loss.
    pub heal: bool,
    /// Restart crashed nodes.
    pub restart: bool,
    /// Time given to hints and in-flight requests.
    #[serde(with = "humantime_serde")]
    pub settle: Duration,
    /// Read every key at ALL afterwards so read repair converges replicas.
    pub repair_reads: bool,
}

impl Default for FinalPhase {
    fn default() -> Self {
        FinalPhase {
            heal: true,
            restart: true,
            settle: Duration::from_secs(30),
            repair_reads: true,
        }
    }
}
/// Options of a run.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Replace the scenario's seed.
    pub seed: Option<u64>,
    /// Keep every trace record.
    pub keep_trace: bool,
    /// The file the scenario came from, for the replay command.
    pub file: Option<String>,
    /// Replace the scenario's join strategy.
    pub strategy: Option<JoinStrategy>,
}

/// Builds the simulation of a prepared scenario at time zero.
pub fn build_simulation(p: &Prepared, options: &RunOptions) -> Simulation {
    let seed = options.seed.unwrap_or(p.scenario.seed);
    let mut node = p.node.clone();
    if let Some(s) = options.strategy {
        node.join_strategy = s;
    }
    Simulation::new(SimConfig {
        seed,
        names: p.names.clone(),
        ring: p.ring.clone(),
        node,
        network: p.scenario.network.clone(),
        workload: p.scenario.workload.clone(),
        keep_trace: options.keep_trace,
        record_history: true,
    })
}

/// What applying one timeline event did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// The invoke index of a client operation.
    pub invoke: Option<u64>,
    /// The error an operator command or fault was refused with.
    pub error: Option<SimError>,
}

/// Applies one timeline event.
pub fn apply_event(
    sim: &mut Simulation,
    e: &TimelineEvent,
    last_read: &BTreeMap<String, CausalContext>,
) -> Applied {
    let id = |sim: &Simulation, name: &str| {
        sim.node_id(name)
            .map_err(|_| SimError::UnknownNode(format!("{name} (not added yet at {:?})", e.at)))
    };
    let each_normal = |sim: &Simulation, t: &Target| -> Result<Vec<NodeId>, SimError> {
        match t {
            Target::AllNormal => Ok((0..sim.names().len() as u32)
                .map(NodeId)
                .filter(|n| sim.is_up(*n) && sim.announced_status(*n) == Some(Status::Normal))
                .collect()),
            Target::Node(n) => Ok(vec![id(sim, n)?]),
        }
    };
    let issue = |sim: &mut Simulation,
                 f: OpFunction,
                 op: &ClientOp,
                 value: Option<&str>,
                 with_context: bool|
     -> Result<Option<u64>, SimError> {
        let context = if with_context { last_read.get(&op.key).cloned() } else { None };
        let coordinator = id(sim, &op.node)?;
        Ok(sim.client_op(coordinator, f, &op.key, value, op.cl, context).ok())
    };
    let result: Result<Option<u64>, SimError> = (|| {
        match &e.event {
            Event::Crash(n) => {
                sim.crash(id(sim, n)?)?;
            }
            Event::Restart(n) => {
                sim.restart(id(sim, n)?)?;
            }
            Event::Partition(groups) => {
                let mut ids = Vec::new();
                for g in groups {
                    ids.push(g.iter().map(|s| id(sim, s)).collect::<Result<Vec<_>, _>>()?);
                }
                sim.partition(ids);
            }
            Event::Pause { node, duration } => {
                sim.pause(id(sim, node)?, *duration)?;
            }
            Event::SlowGossip { node, duration } => {
                sim.slow_gossip(id(sim, node)?, *duration)?;
            }
            Event::Heal => sim.heal(),
            Event::Loss(p) => sim.set_loss(*p),
            Event::AddNode { name, tokens } => {
                sim.add_node(
                    name,
                    JoinRequest { tokens: tokens.clone(), ..JoinRequest::default() },
                )?;
            }
            Event::ResumeJoin { node, allow_inconsistent_source } => {
                sim.resume_join(id(sim, node)?, *allow_inconsistent_source)?;
            }
            Event::Decommission(n) => {
                sim.decommission(id(sim, n)?)?;
            }
            Event::Abort(n) => {
                sim.abort_movement(id(sim, n)?)?;
            }
            Event::Cleanup(t) => {
                for node in each_normal(sim, t)? {
                    sim.cleanup(node)?;
                }
            }
            Event::Repair(t) => {
                for node in each_normal(sim, t)? {
                    sim.repair(node)?;
                }
            }
            Event::Inspect => {}
            Event::Write { op, value, with_context } => {
                return issue(sim, OpFunction::Write, op, Some(value), *with_context);
            }
            Event::Delete { op, with_context } => {
                return issue(sim, OpFunction::Delete, op, None, *with_context);
            }
            Event::Read(op) => return issue(sim, OpFunction::Read, op, None, false),
        }
        Ok(None)
    })();
    match result {
        Ok(invoke) => Applied { invoke, error: None },
        Err(err) => Applied { invoke: None, error: Some(err) },
    }
}

/// Runs a prepared scenario to the end and checks it.
pub fn run(p: &Prepared, options: &RunOptions) -> (ScenarioReport, Simulation) {
    run_with(p, options, &[])
}

/// [`run`] with `extra` events added to the scenario's timeline (the explorer's interventions).
/// An event at the same time as one of the scenario's is applied after it.
pub fn run_with(
    p: &Prepared,
    options: &RunOptions,
    extra: &[TimelineEvent],
) -> (ScenarioReport, Simulation) {
    let mut playback = Playback::new(p, options);
    for (id, e) in extra.iter().enumerate() {
        playback.insert(id as u64, e.clone());
    }
    playback.advance_to(Instant::ZERO + p.scenario.duration);
    playback.finish(p, options)
}

/// One event of a [`Playback`] that was applied, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedEvent {
    /// The simulated time it was applied at.
    pub at: Instant,
    /// The event's index in [`Playback::events`].
    pub index: usize,
    /// What applying it did.
    pub applied: Applied,
}

/// A scenario being played: the simulation plus its timeline events, applied as time reaches
/// them. [`run`] plays a scenario to its end in one go; the explorer plays it a frame at a time
/// and inserts the user's interventions. Cloning it is a checkpoint.
#[derive(Clone, Debug)]
pub struct Playback {
    sim: Simulation,
    /// The scenario's events, then inserted ones (append only: indices are stable).
    events: Vec<TimelineEvent>,
    /// For each event, the id it was inserted with (`None`: the scenario's own).
    inserted: Vec<Option<u64>>,
    /// Indices into `events` in application order (by time; ties keep insertion order).
    order: Vec<usize>,
    /// Position in `order` of the next event to apply.
    next: usize,
    scripted: Vec<(usize, Option<u64>)>,
    moments: Vec<ExpectationResult>,
    /// The cluster after each labelled event that is not a client operation.
    observed: Vec<Moment>,
    last_read: BTreeMap<String, CausalContext>,
    applied: Vec<AppliedEvent>,
}

impl Playback {
    /// The scenario at time zero, nothing applied yet.
    pub fn new(p: &Prepared, options: &RunOptions) -> Playback {
        let events = p.events.clone();
        let mut order: Vec<usize> = (0..events.len()).collect();
        order.sort_by_key(|i| events[*i].at);
        Playback {
            sim: build_simulation(p, options),
            inserted: vec![None; events.len()],
            events,
            order,
            next: 0,
            scripted: Vec::new(),
            moments: Vec::new(),
            observed: Vec::new(),
            last_read: BTreeMap::new(),
            applied: Vec::new(),
        }
    }

    /// The simulation.
    pub fn sim(&self) -> &Simulation {
        &self.sim
    }

    /// Simulated time.
    pub fn now(&self) -> Instant {
        self.sim.now()
    }

    /// Every event, the scenario's first, then the inserted ones.
    pub fn events(&self) -> &[TimelineEvent] {
        &self.events
    }

    /// When the next event not yet applied is due.
    pub fn next_event_at(&self) -> Option<Instant> {
        self.order.get(self.next).map(|i| Instant::ZERO + self.events[*i].at)
    }

    /// The events applied so far, in order.
    pub fn applied(&self) -> &[AppliedEvent] {
        &self.applied
    }

    /// Adds an event under `id` (the caller's handle to [`Playback::cancel`] it). An event not
    /// later than now is applied at once, at now; a later one when time reaches it.
    pub fn insert(&mut self, id: u64, event: TimelineEvent) {
        let index = self.events.len();
        let at = event.at;
        self.events.push(event);
        self.inserted.push(Some(id));
        let after = self.order[self.next..].partition_point(|i| self.events[*i].at <= at);
        self.order.insert(self.next + after, index);
        if Instant::ZERO + at <= self.sim.now() {
            self.apply_due(self.sim.now());
        }
    }

    /// Removes the inserted event `id` if it has not been applied yet; says whether it was
    /// pending.
    pub fn cancel(&mut self, id: u64) -> bool {
        let pending = self.order[self.next..].iter().position(|i| self.inserted[*i] == Some(id));
        if let Some(k) = pending {
            self.order.remove(self.next + k);
        }
        pending.is_some()
    }

    /// Runs to `t`, applying every event due by then (an event due at `t` included).
    pub fn advance_to(&mut self, t: Instant) {
        self.apply_due(t);
        if self.sim.now() <= t {
            // Also processes what is due exactly at `t` (at the start, everything due at 0).
            self.sim.run_until(t);
        }
    }

    fn apply_due(&mut self, t: Instant) {
        while let Some(&i) = self.order.get(self.next) {
            let at = (Instant::ZERO + self.events[i].at).max(self.sim.now());
            if at > t {
                break;
            }
            self.next += 1;
            self.sim.run_until(at);
            self.apply(i);
        }
    }

    fn apply(&mut self, i: usize) {
        let sim = &self.sim;
        // Scripted reads feed the context of later `with_context` writes.
        for (_, invoke) in &self.scripted {
            if let Some(c) = invoke.and_then(|i| sim.completion(i))
                && let Some(Ok(Reply::Read { context, .. })) = &c.result
            {
                let key = sim.history().ops[c.op_index as usize].key.clone();
                self.last_read.insert(key, context.clone());
            }
        }
        let e = &self.events[i];
        let applied = apply_event(&mut self.sim, e, &self.last_read);
        if e.event.client_op().is_none()
            && let Some(label) = &e.label
        {
            let error = applied.error.as_ref().map(ToString::to_string);
            self.observed.push(Moment::of(&self.sim, label, error));
        }
        if e.event.client_op().is_some() {
            self.scripted.push((i, applied.invoke));
        } else if let Some(x) = &e.expect_cluster {
            let label = e.label.clone().unwrap_or_else(|| format!("at {:?}", e.at));
            self.moments.extend(check_cluster(&self.sim, &label, x, &applied));
        } else if let Some(err) = &applied.error
            && self.inserted[i].is_none()
        {
            self.moments.push(ExpectationResult {
                what: format!("events[{i}] at {:?} applies", e.at),
                expected: "accepted".into(),
                actual: err.to_string(),
                passed: false,
            });
        }
        self.applied.push(AppliedEvent { at: self.sim.now(), index: i, applied });
    }

    /// Runs the final phase and checks the run: what [`run`] returns.
    pub fn finish(mut self, p: &Prepared, options: &RunOptions) -> (ScenarioReport, Simulation) {
        let end = Instant::ZERO + p.scenario.duration;
        self.advance_to(end.max(self.sim.now()));
        finish(&mut self.sim, &p.scenario.final_phase);
        let mut report = report(p, options, &self.sim, &self.events, &self.scripted);
        report.moments = self.observed;
        if !self.moments.is_empty() {
            let passed = self.moments.iter().all(|m| m.passed);
            self.moments.append(&mut report.expectations);
            report.expectations = self.moments;
            report.passed &= passed;
        }
        (report, self.sim)
    }
}

/// The final phase: heal, restart, settle, repair reads, final state.
pub fn finish(sim: &mut Simulation, f: &FinalPhase) {
    if f.heal {
        if sim.network().is_partitioned() {
            sim.heal();
        }
        sim.set_loss(0.0);
    }
    if f.restart {
        for i in 0..sim.names().len() {
            let id = NodeId(i as u32);
            if !sim.is_up(id) {
                let _ = sim.restart(id);
            }
        }
    }
    sim.run_for(f.settle);
    sim.quiesce(Duration::from_secs(60));
    let all_up = (0..sim.names().len()).all(|i| sim.is_up(NodeId(i as u32)));
    if f.repair_reads && all_up {
        sim.repair_reads();
        sim.quiesce(Duration::from_secs(60));
    }
    sim.record_final_reads();
}
