//! The driver: one thread owns the engine's [`Node`] and is the only place that calls it.
//!
//! gRPC handlers and peer streams send [`Input`]s through a channel. The driver takes whatever
//! is queued (up to [`BATCH`] inputs), feeds each to the engine with the real clock, drains the
//! engine's outputs into a holding area, fires due timers, then calls `Storage::sync` **once**
//! for the whole batch before releasing any transmit, acknowledgement or client reply: that is
//! group commit. While one fsync runs, new requests queue up and form the next batch, so the
//! fsync rate does not cap the write rate.

use crate::convert;
use crate::proto::v1 as pb;
use crate::server::clock::Clock;
use crate::server::inbox::{
    AdminCommand, AdminFailure, AdminOutcome, AdminResult, ClientError, ClientResult, Input, Peers,
    TraceSender,
};
use crate::server::metrics::{EngineFigures, Metrics};
use crate::server::storage::DiskStorage;
use ringside_core::gossip::{StateKey, Status};
use ringside_core::id::{NodeId, RequestId};
use ringside_core::message::Transmit;
use ringside_core::node::{
    AdminError, Event, InvalidRequest, JoinPhase, Lifecycle, Node, NodeTrace, RepairReport,
};
use ringside_core::storage::Storage;
use ringside_core::time::Instant;
use ringside_core::version::CausalContext;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;
use tokio::sync::oneshot;

/// Most inputs taken into one group commit.
pub const BATCH: usize = 4096;
/// How often the node republishes its load in gossip and refreshes addresses from gossip.
const HOUSEKEEPING: Duration = Duration::from_secs(2);

/// The engine's owner, sending its transmits through `P` (the transport, in a running node).
pub struct Driver<P> {
    node: Node<DiskStorage>,
    clock: Clock,
    transport: Arc<P>,
    metrics: Arc<Metrics>,
    traces: TraceSender,
    rx: Receiver<Input>,
    pending: HashMap<RequestId, oneshot::Sender<ClientResult>>,
    /// Outputs held until the batch is durable.
    held_transmits: Vec<Transmit>,
    held_replies: Vec<(oneshot::Sender<ClientResult>, ClientResult)>,
    held_admin: Vec<(oneshot::Sender<AdminResult>, AdminResult)>,
    next_housekeeping: Instant,
    fatal: Option<String>,
    /// Keys and bytes of the last finished movement (the lifecycle forgets them at NORMAL/LEFT).
    finished: Option<(u64, u64)>,
    /// A join or decommission waiting for the cluster to admit it before it is answered.
    admission: Option<Admission>,
    /// The reason of the last `JoinFailed`/`DecommissionFailed` trace (a leaver that gave way
    /// is NORMAL again, and only the trace says why).
    movement_failure: Option<String>,
    /// Repair runs started since the node started; the run in progress and the last completed.
    repair_runs: u64,
    repair: Option<RepairRun>,
    last_repair: Option<(RepairRun, RepairReport, u64)>,
}

/// A join or decommission the engine accepted, whose answer waits until the cluster admitted
/// it: under `staged` until its first barrier took the range lock, otherwise until it announced.
/// Until then it may still be refused (another movement holds a range it would change), fail (a
/// streaming source down) or be aborted, and the operator gets that reason instead.
struct Admission {
    join: bool,
    resume: bool,
    reply: oneshot::Sender<AdminResult>,
}

/// A repair run as the driver saw it start: which one, how many comparisons, since when.
#[derive(Clone, Copy, Debug)]
struct RepairRun {
    run: u64,
    comparisons: u64,
    started_micros: u64,
}

impl RepairRun {
    /// The run for the Progress reply, with the engine's report and when it completed.
    fn to_proto(self, report: &RepairReport, completed_micros: u64) -> pb::RepairRun {
        convert::repair_run(
            self.run,
            self.comparisons,
            self.started_micros,
            report,
            completed_micros,
        )
    }
}

impl<P: Peers> Driver<P> {
    /// A driver for `node`, reading `rx`.
    pub fn new(
        mut node: Node<DiskStorage>,
        clock: Clock,
        transport: Arc<P>,
        metrics: Arc<Metrics>,
        traces: TraceSender,
        rx: Receiver<Input>,
    ) -> Driver<P> {
        node.set_gossip_state(StateKey::Address, transport.advertised_address().to_string());
        Driver {
            node,
            next_housekeeping: clock.now(),
            clock,
            transport,
            metrics,
            traces,
            rx,
            pending: HashMap::new(),
            held_transmits: Vec::new(),
            held_replies: Vec::new(),
            held_admin: Vec::new(),
            fatal: None,
            finished: None,
            admission: None,
            movement_failure: None,
            repair_runs: 0,
            repair: None,
            last_repair: None,
        }
    }

    /// Runs until [`Input::Shutdown`], every handle dropped, or a storage failure. Returns the
    /// failure, if any.
    pub fn run(mut self) -> Result<(), String> {
        // Whatever Node::new produced (first gossip round, catch-up request).
        self.drain();
        self.commit();
        loop {
            let wait = self.node.poll_timeout().map(|t| self.clock.until(t));
            let first = match wait {
                Some(d) => match self.rx.recv_timeout(d) {
                    Ok(i) => Some(i),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                },
                None => match self.rx.recv() {
                    Ok(i) => Some(i),
                    Err(_) => break,
                },
            };
            let mut stop = false;
            let mut inputs = 0u64;
            if let Some(input) = first {
                stop |= self.feed(input);
                inputs += 1;
                while inputs < BATCH as u64 && !stop {
                    match self.rx.try_recv() {
                        Ok(input) => {
                            stop |= self.feed(input);
                            inputs += 1;
                        }
                        Err(_) => break,
                    }
                }
            }
            let now = self.clock.now();
            if self.node.poll_timeout().is_some_and(|t| t <= now) {
                self.node.handle_timeout(now);
                self.drain();
            }
            if now >= self.next_housekeeping {
                self.housekeeping(now);
            }
            self.metrics.synced_inputs.add(inputs);
            self.check_admission();
            self.commit();
            if let Some(reason) = self.fatal.take() {
                return Err(reason);
            }
            if stop {
                break;
            }
        }
        self.commit();
        Ok(())
    }

    /// Feeds one input; true when it asks the driver to stop.
    fn feed(&mut self, input: Input) -> bool {
        let now = self.clock.now();
        match input {
            Input::Message { from, message } => self.node.handle_message(now, from, message),
            Input::Write { key, value, cl, context, reply } => {
                let context = context
                    .unwrap_or_else(|| CausalContext::blind(self.node.config().conflict_mode));
                let started = match value {
                    Some(v) => self.node.put(now, key, v, cl, context),
                    None => self.node.delete(now, key, cl, context),
                };
                match started {
                    Ok(id) => {
                        self.pending.insert(id, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e.into()));
                    }
                }
            }
            Input::Read { key, cl, reply } => match self.node.get(now, key, cl) {
                Ok(id) => {
                    self.pending.insert(id, reply);
                }
                Err(e) => {
                    let _ = reply.send(Err(e.into()));
                }
            },
            Input::Admin { command, reply } => self.admin(now, command, reply),
            Input::Status(reply) => {
                let _ = reply.send(self.status(now));
            }
            Input::Progress(reply) => {
                let _ = reply.send(self.progress());
            }
            Input::Metrics(reply) => {
                let _ = reply.send(self.engine_figures(now));
            }
            Input::Shutdown => return true,
        }
        self.drain();
        false
    }

    fn admin(&mut self, now: Instant, command: AdminCommand, reply: oneshot::Sender<AdminResult>) {
        let result = match command {
            AdminCommand::Join(request) => {
                let resume = request.resume;
                match self.node.join(now, request) {
                    Ok(()) => return self.await_admission(true, resume, reply),
                    Err(e) => Err(e),
                }
            }
            AdminCommand::Decommission => match self.node.decommission(now) {
                Ok(()) => return self.await_admission(false, false, reply),
                Err(e) => Err(e),
            },
            AdminCommand::Abort => self.node.abort_movement(now).map(AdminOutcome::Started),
            AdminCommand::Repair => {
                let running = self.node.repair_in_progress().is_some();
                self.node.repair(now).map(|started| AdminOutcome::Repair {
                    started,
                    run: self.repair_started(running, started),
                })
            }
            AdminCommand::Cleanup => self
                .node
                .cleanup(now)
                .map(|c| AdminOutcome::Cleanup { keys: c.keys, bytes: c.bytes }),
        };
        self.held_admin.push((reply, result.map_err(AdminFailure::from)));
    }

    /// Holds the answer to a join or decommission until [`Driver::check_admission`] decides.
    fn await_admission(&mut self, join: bool, resume: bool, reply: oneshot::Sender<AdminResult>) {
        self.movement_failure = None;
        if let Some(earlier) = self.admission.replace(Admission { join, resume, reply }) {
            // The engine accepts one movement at a time: an earlier one still waiting was
            // superseded (a join given up, then asked again).
            let superseded = AdminFailure::NotAdmitted("superseded by a later request".into());
            self.held_admin.push((earlier.reply, Err(superseded)));
        }
        self.check_admission();
    }

    /// Answers the join or decommission waiting for admission once the engine decided: it
    /// passed its first wait (the range lock under `staged`), or stopped with a reason.
    fn check_admission(&mut self) {
        let Some(a) = &self.admission else { return };
        let verdict = match (a.join, self.node.lifecycle()) {
            (true, Lifecycle::Joining(j)) => match &j.phase {
                JoinPhase::Failed { reason } => Some(Err(reason.clone())),
                JoinPhase::Discovering { .. }
                | JoinPhase::Barrier { status: Status::Boot }
                | JoinPhase::Interrupted => None,
                _ => Some(Ok(())),
            },
            (false, Lifecycle::Leaving(l)) => match &l.phase {
                JoinPhase::Failed { reason } => Some(Err(reason.clone())),
                JoinPhase::Barrier { status: Status::Leaving } | JoinPhase::Interrupted => None,
                _ => Some(Ok(())),
            },
            // Joined already (`immediate`), or decommissioned already.
            (true, Lifecycle::Normal) | (false, Lifecycle::Left) => Some(Ok(())),
            (_, other) => Some(Err(self
                .movement_failure
                .clone()
                .unwrap_or_else(|| format!("the movement stopped: node is {}", other.describe())))),
        };
        let Some(verdict) = verdict else { return };
        let a = self.admission.take().expect("admission");
        let result = verdict
            .map(|()| AdminOutcome::Started(self.admitted(a.join, a.resume)))
            .map_err(AdminFailure::NotAdmitted);
        self.held_admin.push((a.reply, result));
    }

    /// What the operator is told once a movement was admitted.
    fn admitted(&self, join: bool, resume: bool) -> String {
        let node = &self.node;
        let verb = match (join, resume) {
            (true, false) => "join started",
            (true, true) => "join resumed",
            (false, _) => "decommission started",
        };
        let status = node.own_status().map_or_else(|| "?".into(), |s| s.to_string());
        let ranges = node.view().movements(node.id()).map_or(0, |m| m.len());
        let tokens = node.view().member(node.id()).map_or(0, |m| m.tokens.len());
        let what = if join { "it gains" } else { "it hands over" };
        let lock = if node.config().join_strategy.uses_barriers() {
            format!("holds the range lock over the {ranges} ranges {what}")
        } else {
            format!("{ranges} ranges {what}")
        };
        format!(
            "{verb}: {status} with {tokens} tokens, {lock}; now {}",
            node.lifecycle().describe()
        )
    }

    /// Numbers the repair run that `started` comparisons (asked while a run was `running` or
    /// not) belong to; 0 when none started.
    fn repair_started(&mut self, running: bool, started: usize) -> u64 {
        if started == 0 {
            return 0;
        }
        match &mut self.repair {
            Some(run) if running => {
                run.comparisons += started as u64;
                run.run
            }
            _ => {
                self.repair_runs += 1;
                let run = RepairRun {
                    run: self.repair_runs,
                    comparisons: started as u64,
                    started_micros: self.clock.now().0,
                };
                self.repair = Some(run);
                run.run
            }
        }
    }

    /// Drains the engine's outputs into the holding area.
    fn drain(&mut self) {
        while let Some(t) = self.node.poll_transmit() {
            if t.message.claims_nothing_durable() {
                self.release(t);
            } else {
                self.held_transmits.push(t);
            }
        }
        while let Some(event) = self.node.poll_event() {
            match event {
                Event::Reply { request, result } => {
                    if let Some(reply) = self.pending.remove(&request) {
                        self.held_replies.push((reply, result.map_err(ClientError::from)));
                    }
                }
                Event::Trace(trace) => {
                    tracing::info!(event = ?trace, "trace");
                    match &trace {
                        NodeTrace::JoinCompleted { keys, bytes } => {
                            self.finished = Some((*keys, *bytes));
                        }
                        NodeTrace::JoinFailed { reason }
                        | NodeTrace::DecommissionFailed { reason } => {
                            self.movement_failure = Some(reason.clone());
                        }
                        NodeTrace::RepairCompleted { report } => {
                            let run = self.repair.take().unwrap_or(RepairRun {
                                run: 0,
                                comparisons: report.compared + report.unanswered,
                                started_micros: 0,
                            });
                            self.last_repair = Some((run, *report, self.clock.now().0));
                        }
                        _ => {}
                    }
                    let event = convert::trace_event(self.clock.now().0, self.node.id(), &trace);
                    let _ = self.traces.send(event);
                }
                Event::Fatal(e) => {
                    tracing::error!(error = %e, "storage failed; stopping the node");
                    self.fatal = Some(e.to_string());
                }
            }
        }
    }

    /// Makes the batch durable, then releases its outputs.
    fn commit(&mut self) {
        if self.fatal.is_none() {
            if self.node.storage().is_dirty() {
                self.metrics.syncs.inc();
            }
            if let Err(e) = self.node.storage_mut().sync() {
                tracing::error!(error = %e, "storage sync failed; stopping the node");
                self.fatal = Some(e.to_string());
            }
        }
        if self.fatal.is_some() {
            // Nothing of this batch is durable: release nothing.
            self.held_transmits.clear();
            for (reply, _) in self.held_replies.drain(..) {
                let _ = reply.send(Err(ClientError::Invalid(InvalidRequest::Stopped)));
            }
            if let Some(a) = self.admission.take() {
                self.held_admin.push((a.reply, Ok(AdminOutcome::Started(String::new()))));
            }
            for (reply, _) in self.held_admin.drain(..) {
                let _ = reply.send(Err(AdminError::Stopped.into()));
            }
            return;
        }
        for t in std::mem::take(&mut self.held_transmits) {
            self.release(t);
        }
        for (reply, result) in self.held_replies.drain(..) {
            let _ = reply.send(result);
        }
        for (reply, result) in self.held_admin.drain(..) {
            let _ = reply.send(result);
        }
    }

    /// Hands a transmit to the transport.
    fn release(&mut self, t: Transmit) {
        if t.to == self.node.id() {
            return;
        }
        if self.transport.address_of(t.to).is_none()
            && let Some(address) = gossiped_address(&self.node, t.to)
        {
            self.transport.learn(t.to, &address);
        }
        self.transport.send(t.to, t.message);
    }

    fn housekeeping(&mut self, now: Instant) {
        self.next_housekeeping = now + HOUSEKEEPING;
        let load = self.node.storage().load_bytes();
        self.node.set_gossip_state(StateKey::Load, load.to_string());
        let known: Vec<NodeId> = self.node.gossiper().known_nodes().collect();
        for peer in known {
            if let Some(address) = gossiped_address(&self.node, peer) {
                self.transport.learn(peer, &address);
            }
        }
        self.drain();
    }

    fn status(&self, now: Instant) -> pb::StatusReply {
        convert::status_reply(&self.node, now, |id| self.transport.address_of(id))
    }

    fn progress(&self) -> pb::ProgressReply {
        let repair = self.repair.map(|run| {
            let report = self.node.repair_in_progress().unwrap_or_default();
            run.to_proto(&report, 0)
        });
        let last_repair = self
            .last_repair
            .as_ref()
            .map(|(run, report, completed)| run.to_proto(report, *completed));
        convert::progress_reply(&self.node, self.finished, repair, last_repair)
    }

    /// The engine's figures for a scrape; [`EngineFigures::render`] formats them off this thread.
    fn engine_figures(&self, now: Instant) -> EngineFigures {
        let node = &self.node;
        EngineFigures {
            stats: node.stats().clone(),
            hints_queued: node.hints_by_target(),
            phi: node
                .view()
                .members
                .keys()
                .filter(|p| **p != node.id())
                .map(|peer| (*peer, node.phi(now, *peer)))
                .collect(),
            load_bytes: node.storage().load_bytes(),
            keys: node.storage().key_count(),
        }
    }
}

/// The address `peer` announces in gossip.
fn gossiped_address(node: &Node<DiskStorage>, peer: NodeId) -> Option<String> {
    node.gossiper().endpoint(peer)?.states.get(&StateKey::Address).map(|v| v.value.clone())
}
