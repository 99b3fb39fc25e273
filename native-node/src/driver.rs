//! The driver: one thread owns the engine's [`Node`] and is the only place that calls it.
//!
//! gRPC handlers and peer streams send [`Input`]s through a channel. The driver takes whatever
//! is queued (up to [`BATCH`] inputs), feeds each to the engine with the real clock, drains the
//! engine's outputs into a holding area, fires due timers, then calls `Storage::sync` **once**
//! for the whole batch before releasing any transmit, acknowledgement or client reply: that is
//! group commit. While one fsync runs, new requests queue up and form the next batch, so the
//! fsync rate does not cap the write rate.

use crate::clock::Clock;
use crate::metrics::{self, Metrics};
use crate::proto::v1 as pb;
use crate::storage::DiskStorage;
use crate::transport::Transport;
use ringside_core::consistency::ConsistencyLevel;
use ringside_core::gossip::{StateKey, Status};
use ringside_core::id::{NodeId, RequestId};
use ringside_core::message::{Message, Transmit};
use ringside_core::node::{
    Event, InvalidRequest, JoinPhase, JoinRequest, Lifecycle, Node, NodeTrace, Reply, RequestError,
};
use ringside_core::storage::Storage;
use ringside_core::time::Instant;
use ringside_core::version::CausalContext;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::Duration;
use tokio::sync::{broadcast, oneshot};

/// Most inputs taken into one group commit.
pub const BATCH: usize = 4096;
/// How often the node republishes its load in gossip and refreshes addresses from gossip.
const HOUSEKEEPING: Duration = Duration::from_secs(2);

/// The outcome of a client request.
pub type ClientResult = Result<Reply, ClientError>;

/// Why a client request failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// Refused before it started.
    #[error(transparent)]
    Invalid(#[from] InvalidRequest),
    /// Failed after it started.
    #[error(transparent)]
    Failed(#[from] RequestError),
    /// The node is stopping.
    #[error("node is shutting down; retry on another node")]
    ShuttingDown,
}

/// The outcome of an operator command; the error text says what to do.
pub type AdminResult = Result<AdminOutcome, String>;

/// An operator command.
#[derive(Debug, Clone)]
pub enum AdminCommand {
    /// Join or resume a join.
    Join(JoinRequest),
    /// Decommission (or resume one).
    Decommission,
    /// Merkle repair.
    Repair,
    /// Cleanup.
    Cleanup,
}

/// What an operator command did.
#[derive(Debug, Clone)]
pub enum AdminOutcome {
    /// Started; a message for the operator.
    Started(String),
    /// Repair comparisons started.
    Repair(usize),
    /// Cleanup removed keys and bytes.
    Cleanup {
        /// Keys removed.
        keys: u64,
        /// Bytes removed.
        bytes: u64,
    },
}

/// An input for the driver.
pub enum Input {
    /// A message from a peer.
    Message {
        /// Sender.
        from: NodeId,
        /// The message.
        message: Message,
    },
    /// A put (`Some` value) or delete (`None`).
    Write {
        /// Key.
        key: Vec<u8>,
        /// Value, `None` to delete.
        value: Option<Vec<u8>>,
        /// Level.
        cl: ConsistencyLevel,
        /// Context from a read; `None` for a blind write.
        context: Option<CausalContext>,
        /// Where the outcome goes.
        reply: oneshot::Sender<ClientResult>,
    },
    /// A read.
    Read {
        /// Key.
        key: Vec<u8>,
        /// Level.
        cl: ConsistencyLevel,
        /// Where the outcome goes.
        reply: oneshot::Sender<ClientResult>,
    },
    /// An operator command.
    Admin {
        /// The command.
        command: AdminCommand,
        /// Where the outcome goes (the error text says what to do).
        reply: oneshot::Sender<AdminResult>,
    },
    /// The ring as this node sees it.
    Status(oneshot::Sender<pb::StatusReply>),
    /// Progress of this node's movement.
    Progress(oneshot::Sender<pb::ProgressReply>),
    /// The engine's metrics, in Prometheus text.
    Metrics(oneshot::Sender<String>),
    /// Sync and stop.
    Shutdown,
}

/// A cloneable way to reach the driver.
#[derive(Clone)]
pub struct DriverHandle {
    tx: Sender<Input>,
}

impl DriverHandle {
    /// Sends an input; false when the driver has stopped.
    pub fn send(&self, input: Input) -> bool {
        self.tx.send(input).is_ok()
    }

    /// Sends an input built around a reply channel and waits for the answer.
    pub async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Input) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        if !self.send(make(tx)) {
            return None;
        }
        rx.await.ok()
    }
}

/// A trace event as the Watch API streams it.
pub type TraceSender = broadcast::Sender<pb::TraceEvent>;

/// The engine's owner.
pub struct Driver {
    node: Node<DiskStorage>,
    clock: Clock,
    transport: Arc<Transport>,
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
}

/// Creates the channel the driver reads from.
pub fn channel() -> (DriverHandle, Receiver<Input>) {
    let (tx, rx) = std::sync::mpsc::channel();
    (DriverHandle { tx }, rx)
}

impl Driver {
    /// A driver for `node`, reading `rx`.
    pub fn new(
        mut node: Node<DiskStorage>,
        clock: Clock,
        transport: Arc<Transport>,
        metrics: Arc<Metrics>,
        traces: TraceSender,
        rx: Receiver<Input>,
    ) -> Driver {
        node.set_gossip_state(StateKey::Address, transport.identity().address.clone());
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
                let context = context.unwrap_or_else(|| self.blind_context());
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
            Input::Admin { command, reply } => {
                let outcome = self.admin(now, command);
                self.held_admin.push((reply, outcome));
            }
            Input::Status(reply) => {
                let _ = reply.send(self.status(now));
            }
            Input::Progress(reply) => {
                let _ = reply.send(self.progress());
            }
            Input::Metrics(reply) => {
                let _ = reply.send(self.engine_metrics(now));
            }
            Input::Shutdown => return true,
        }
        self.drain();
        false
    }

    fn blind_context(&self) -> CausalContext {
        match self.node.config().conflict_mode {
            ringside_core::version::ConflictMode::Lww => CausalContext::Lww(None),
            ringside_core::version::ConflictMode::VectorClock => CausalContext::default(),
        }
    }

    fn admin(&mut self, now: Instant, command: AdminCommand) -> AdminResult {
        let result = match command {
            AdminCommand::Join(request) => {
                let resume = request.resume;
                self.node.join(now, request).map(|()| {
                    AdminOutcome::Started(
                        if resume { "join resumed" } else { "join started" }.into(),
                    )
                })
            }
            AdminCommand::Decommission => self
                .node
                .decommission(now)
                .map(|()| AdminOutcome::Started("decommission started".into())),
            AdminCommand::Repair => self.node.repair(now).map(AdminOutcome::Repair),
            AdminCommand::Cleanup => self
                .node
                .cleanup(now)
                .map(|c| AdminOutcome::Cleanup { keys: c.keys, bytes: c.bytes }),
        };
        result.map_err(|e| e.to_string())
    }

    /// Drains the engine's outputs into the holding area.
    fn drain(&mut self) {
        while let Some(t) = self.node.poll_transmit() {
            if claims_nothing_durable(&t.message) {
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
                    if let NodeTrace::JoinCompleted { keys, bytes } = &trace {
                        self.finished = Some((*keys, *bytes));
                    }
                    let json = serde_json::to_string(&trace).unwrap_or_default();
                    let _ = self.traces.send(pb::TraceEvent {
                        time_micros: self.clock.now().0,
                        node: self.node.id().0,
                        json,
                    });
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
            for (reply, _) in self.held_admin.drain(..) {
                let _ = reply.send(Err("node stopped after a storage failure".into()));
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
        let node = &self.node;
        let view = node.view();
        let ownership = node.topology().map(|t| t.ring().effective_ownership()).unwrap_or_default();
        let mut members = Vec::new();
        for (id, member) in &view.members {
            let gossip = node.gossiper().endpoint(*id);
            let load = if *id == node.id() {
                node.storage().load_bytes()
            } else {
                gossip
                    .and_then(|e| e.states.get(&StateKey::Load))
                    .and_then(|v| v.value.parse().ok())
                    .unwrap_or(0)
            };
            let up = *id == node.id() || node.is_alive(*id);
            let mode = match member.status {
                Status::Boot => "J",
                Status::MidJoin => "M",
                Status::Normal => "N",
                Status::Leaving => "L",
                Status::MidLeave => "M",
                Status::Left => "-",
            };
            let owns = match member.status {
                Status::Boot | Status::MidJoin => None,
                Status::Left => Some(0.0),
                _ => Some(ownership.get(id).copied().unwrap_or(0.0) * 100.0),
            };
            members.push(pb::MemberStatus {
                host_id: id.0,
                address: self.transport.address_of(*id).unwrap_or_default(),
                state: if up { "U" } else { "D" }.into(),
                mode: mode.into(),
                status: member.status.to_string(),
                load_bytes: load,
                // Gossiped by the member itself: saturate rather than wrap on absurd counts.
                tokens: u32::try_from(member.tokens.len()).unwrap_or(u32::MAX),
                owns,
                rack: member.rack.clone().unwrap_or_default(),
                phi: if *id == node.id() { 0.0 } else { node.phi(now, *id) },
            });
        }
        pb::StatusReply {
            cluster_name: node.config().cluster_name.clone(),
            rf: view.rf as u32,
            strategy: node.config().join_strategy.to_string(),
            host_id: node.id().0,
            lifecycle: node.lifecycle().describe(),
            members,
            hints: node.hints_by_target().into_iter().map(|(k, v)| (k.0, v as u64)).collect(),
            keys: node.storage().key_count(),
        }
    }

    fn progress(&self) -> pb::ProgressReply {
        let node = &self.node;
        let status = node.own_status().map(|s| s.to_string()).unwrap_or_default();
        let (movement, phase, progress) = match node.lifecycle() {
            Lifecycle::Fresh => ("none", None, None),
            Lifecycle::Normal => ("normal", None, None),
            Lifecycle::Left => ("left", None, None),
            Lifecycle::Joining(j) => ("joining", Some(&j.phase), Some(&j.progress)),
            Lifecycle::Leaving(l) => ("leaving", Some(&l.phase), Some(&l.progress)),
        };
        let error = match phase {
            Some(JoinPhase::Failed { reason }) => reason.clone(),
            _ => String::new(),
        };
        let description = node.lifecycle().describe();
        let (keys, bytes) = match progress {
            Some(p) => (p.moved.keys, p.moved.bytes),
            None => self.finished.unwrap_or((0, 0)),
        };
        pb::ProgressReply {
            movement: movement.into(),
            phase: description,
            ranges_done: progress.map_or(0, |p| p.ranges_done as u64),
            ranges_total: progress.map_or(0, |p| p.ranges_total as u64),
            keys,
            bytes,
            error,
            status,
            bytes_estimate: 0,
        }
    }

    fn engine_metrics(&self, now: Instant) -> String {
        let node = &self.node;
        let s = node.stats();
        let mut out = String::new();
        let c =
            |out: &mut String, name: &str, help: &str, v: u64| metrics::counter(out, name, help, v);
        c(
            &mut out,
            "ringside_writes_coordinated_total",
            "Writes coordinated by this node.",
            s.writes,
        );
        c(&mut out, "ringside_reads_coordinated_total", "Reads coordinated by this node.", s.reads);
        c(
            &mut out,
            "ringside_read_repairs_total",
            "Stale replicas repaired after a read (anomalies seen by read repair).",
            s.read_repairs,
        );
        c(
            &mut out,
            "ringside_hints_stored_total",
            "Hints stored for unreachable replicas.",
            s.hints_stored,
        );
        c(
            &mut out,
            "ringside_hints_delivered_total",
            "Hints delivered to their replica.",
            s.hints_delivered,
        );
        c(
            &mut out,
            "ringside_hints_expired_total",
            "Hints dropped after the grace period.",
            s.hints_expired,
        );
        c(
            &mut out,
            "ringside_unavailable_total",
            "Requests refused up front: too few live replicas.",
            s.unavailable,
        );
        c(&mut out, "ringside_timeouts_total", "Requests that timed out.", s.timeouts);
        c(
            &mut out,
            "ringside_extra_acks_total",
            "Acknowledgements demanded beyond the level for pending replicas.",
            s.extra_acks,
        );
        c(
            &mut out,
            "ringside_stream_bytes_received_total",
            "Bytes received by streaming.",
            s.bytes_streamed_in,
        );
        c(
            &mut out,
            "ringside_stream_keys_received_total",
            "Keys received by streaming.",
            s.keys_streamed_in,
        );
        c(
            &mut out,
            "ringside_stream_bytes_sent_total",
            "Bytes sent by streaming.",
            s.bytes_streamed_out,
        );
        c(
            &mut out,
            "ringside_messages_refused_total",
            "Internode messages refused by the engine (unknown peer or other cluster).",
            s.refused,
        );
        let hints = node.hints_by_target();
        out.push_str("# HELP ringside_hints_queued Hints stored on disk, by target.\n# TYPE ringside_hints_queued gauge\n");
        for (target, n) in &hints {
            out.push_str(&format!("ringside_hints_queued{{target=\"{}\"}} {n}\n", target.0));
        }
        out.push_str("# HELP ringside_phi Failure detector phi, by peer (convicted above 8).\n# TYPE ringside_phi gauge\n");
        for peer in node.view().members.keys().filter(|p| **p != node.id()) {
            let phi = node.phi(now, *peer);
            let phi = if phi.is_finite() { phi } else { 1e9 };
            out.push_str(&format!("ringside_phi{{peer=\"{}\"}} {phi:.3}\n", peer.0));
        }
        metrics::gauge(
            &mut out,
            "ringside_load_bytes",
            "Bytes of data stored.",
            node.storage().load_bytes() as f64,
        );
        metrics::gauge(
            &mut out,
            "ringside_keys",
            "Keys stored.",
            node.storage().key_count() as f64,
        );
        out
    }
}

/// The address `peer` announces in gossip.
fn gossiped_address(node: &Node<DiskStorage>, peer: NodeId) -> Option<String> {
    node.gossiper().endpoint(peer)?.states.get(&StateKey::Address).map(|v| v.value.clone())
}

/// Messages that acknowledge nothing and carry no state of the sender's that a crash before the
/// batch's fsync could take back: requests to other nodes and data read for streaming. They leave
/// at once instead of waiting for the group commit. Acknowledgements, replies, gossip (status),
/// hints and mutations (whose dots may come from a counter not yet durable) wait for it.
fn claims_nothing_durable(message: &Message) -> bool {
    matches!(
        message,
        Message::Read { .. }
            | Message::Mint { .. }
            | Message::StreamRequest { .. }
            | Message::StreamData { .. }
            | Message::Echo
            | Message::MerkleRequest(_)
    )
}
