//! The deterministic simulator: a seeded, single-threaded pump that drives [`Node`]s over a
//! virtual network on a virtual clock.
//!
//! Everything that happens is an item in one priority queue ordered by `(time, sequence)`: message
//! deliveries (each keeps its `sent_at` and `deliver_at`, so a view can interpolate positions),
//! node wake-ups and client actions. Faults — latency, loss, partitions, crashes with durable state
//! kept and volatile state lost — are applied by the simulator, never by the nodes. The same
//! configuration and seed always produce the same trace hash.

pub mod network;
mod preload;
pub mod workload;

use crate::consistency::ConsistencyLevel;
use crate::gossip::Status;
use crate::history::{History, Op, OpError, OpFunction, OpType};
use crate::id::{NodeId, RequestId};
use crate::membership::ClusterView;
use crate::message::{Message, RejectReason, Rejectable, Transmit};
use crate::node::{
    AdminError, Event, InvalidRequest, JoinRequest, Node, NodeConfig, NodeTrace, Reply,
    RequestError, TopologyCache,
};
use crate::ring::Ring;
use crate::storage::{MemStorage, Storage};
use crate::time::Instant;
use crate::token::token_for;
use crate::topology::Topology;
use crate::trace::{DropReason, Trace, TraceEvent};
use crate::version::{CausalContext, ConflictMode, Siblings};
use network::{Network, NetworkConfig, draw, probability_threshold};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::time::Duration;
use workload::WorkloadConfig;

/// Process numbers of scripted client operations start here (workload clients are `0..clients`).
pub const SCRIPTED_PROCESS_BASE: u32 = 10_000;
/// Process number of the final convergence reads.
pub const FINAL_PROCESS: u32 = 20_000;

/// Who issued an operation of the history, decoded from its process number (the one place that
/// knows the numbering).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Issuer {
    /// A workload client (`0..clients`).
    Client(u32),
    /// A scripted operation: a scenario's `op` event, or the explorer's user.
    Scripted,
    /// The final phase's read of the state.
    Final,
}

impl Issuer {
    /// The issuer of the operations of `process`.
    pub fn of(process: u32) -> Issuer {
        if process >= FINAL_PROCESS {
            Issuer::Final
        } else if process >= SCRIPTED_PROCESS_BASE {
            Issuer::Scripted
        } else {
            Issuer::Client(process)
        }
    }
}

/// Everything a simulation needs.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Seed of every random choice.
    pub seed: u64,
    /// Node names, indexed by `NodeId`.
    pub names: Vec<String>,
    /// The initial ring.
    pub ring: Ring,
    /// Node tunables (shared by all nodes).
    pub node: NodeConfig,
    /// Network behaviour.
    pub network: NetworkConfig,
    /// Client workload.
    pub workload: WorkloadConfig,
    /// Keep every trace record (the hash is always computed).
    pub keep_trace: bool,
    /// Record the client history (switch off only for load generation in benchmarks).
    pub record_history: bool,
}

/// A message between two nodes, in flight.
#[derive(Clone, Debug, PartialEq)]
pub struct InFlight {
    /// Message id, unique in the run.
    pub id: u64,
    /// The node that sent it.
    pub from: NodeId,
    /// The node it is addressed to.
    pub to: NodeId,
    /// The message itself.
    pub message: Message,
    /// When it was sent.
    pub sent_at: Instant,
    /// When it arrives (unless dropped then).
    pub deliver_at: Instant,
    /// Lost by the network (decided at send, applied at delivery time).
    pub lost: bool,
    /// The receiver's incarnation when it was sent: a message to a process that crashed since
    /// is dropped, not handed to the process restarted in its place.
    pub incarnation: u64,
}

/// What became of a message once it left the network ([`Simulation::fate`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Delivered to its running receiver, which handled it: a request that carries an epoch
    /// ([`Message::rejectable`]) was accepted, neither fenced nor refused.
    Delivered,
    /// A request the receiver refused with [`Message::Rejected`] (its `NodeTrace::Fenced`).
    Rejected {
        /// The receiver's placement epoch for the request.
        epoch: u64,
        /// Why the replica refused it.
        reason: RejectReason,
    },
    /// A request the receiver refused without handling it, from a peer it does not admit (its
    /// `NodeTrace::Refused`).
    Refused {
        /// Why, with node names.
        reason: String,
    },
    /// Not delivered.
    Dropped(DropReason),
}

/// The request being delivered, while its receiver handles it: its `Fenced` or `Refused` trace,
/// if any, comes out of that one input (the single-mutation invariant) and decides its [`Fate`].
#[derive(Clone, Copy, Debug)]
struct Delivering {
    id: u64,
    from: NodeId,
    request: Rejectable,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Item {
    Deliver(u64),
    Wake(NodeId),
    Client(u32),
}

#[derive(Clone, Debug)]
struct SimNode {
    node: Option<Node<MemStorage>>,
    parked: Option<MemStorage>,
    wake: Option<Instant>,
    /// A process pause (GC, VM stall): nothing is processed before this time.
    paused_until: Option<Instant>,
    /// Crashes so far: messages carry their receiver's, and die with the process they were for.
    incarnation: u64,
    /// The node's own configuration when it differs from the cluster's (kept across restarts).
    config: Option<Box<NodeConfig>>,
}

#[derive(Clone, Debug)]
struct PendingOp {
    process: u32,
    invoke: u64,
    f: OpFunction,
    key: String,
    value: Option<String>,
    cl: ConsistencyLevel,
    write_context: Option<CausalContext>,
    /// What the harness needs to judge how the request ended (see [`RequestRecord`]).
    record: RequestRecord,
}

/// How one client request went, from the simulator's god's-eye view: what the randomized runs
/// need to assert that `Unavailable` is raised up front and that no request times out while
/// enough replicas were up and known up. Kept for every recorded request, by invoke index.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestRecord {
    /// Messages the coordinator sent while handling the request's invoke (the single-mutation
    /// invariant makes these exactly the request's first messages).
    pub sent_at_invoke: u64,
    /// The request was answered while its invoke was handled, before any message went out.
    pub answered_at_invoke: bool,
    /// Natural replicas of the key (the cluster's announced ring).
    pub replicas: Vec<NodeId>,
    /// Replicas that were, at some moment of the request, crashed, paused, cut off from the
    /// coordinator (partition or hold on either direction), or not believed alive by the
    /// coordinator (at invoke or completion). The others were up and known up throughout.
    pub tainted: BTreeSet<NodeId>,
    /// Something other than a replica's state could explain a timeout: message loss was on, a
    /// message's worst-case delay is too long for the request's round trips, a range movement
    /// was under way, or the coordinator itself was paused.
    pub excused: Option<&'static str>,
}

impl RequestRecord {
    /// Replicas up, reachable and known up for the whole request.
    pub fn good_replicas(&self) -> usize {
        self.replicas.iter().filter(|r| !self.tainted.contains(r)).count()
    }
}

#[derive(Clone, Debug, Default)]
struct ClientState {
    seq: u64,
    /// Last context read per workload key (`k{index}`), by index.
    contexts: BTreeMap<u64, CausalContext>,
}

/// The result of a client operation, kept for scripted operations.
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    /// Index of the completion op in the history.
    pub op_index: u64,
    /// What the coordinator answered (`None` when the coordinator crashed first).
    pub result: Option<Result<Reply, RequestError>>,
}

/// Counters of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SimStats {
    /// Status changes as each node learned them, in order: (when, observer, member, status);
    /// a node's own announcements are listed with itself as the observer. Lets a checker tell
    /// a coordinator that had not learned a movement's latest step yet.
    pub status_learned: Vec<(Instant, NodeId, NodeId, Status)>,
    /// Messages sent.
    pub sent: u64,
    /// Messages delivered.
    pub delivered: u64,
    /// Messages dropped (loss, partition, receiver down).
    pub dropped: u64,
    /// Node wake-ups processed.
    pub wakeups: u64,
    /// Hints stored, per coordinator.
    pub hints_stored: BTreeMap<NodeId, u64>,
    /// Hints delivered (acknowledged by their target).
    pub hints_delivered: u64,
    /// Hints expired.
    pub hints_expired: u64,
    /// Read repairs sent.
    pub read_repairs: u64,
    /// Bytes received by streaming (joins, decommissions, repairs), all nodes.
    pub bytes_streamed: u64,
    /// Keys received by streaming, all nodes.
    pub keys_streamed: u64,
    /// When each node was asked to join.
    pub join_started: BTreeMap<NodeId, Instant>,
    /// When each join completed (the node became NORMAL and owns its ranges).
    pub join_completed: BTreeMap<NodeId, Instant>,
    /// Joins and decommissions that failed, with the reason.
    pub movement_failures: Vec<(NodeId, String)>,
    /// When each decommission completed.
    pub decommissioned: BTreeMap<NodeId, Instant>,
    /// Extra acknowledgements demanded by nodes that have since crashed.
    pub extra_acks_before_crashes: u64,
}

/// A running simulation. Cloning it is a checkpoint.
#[derive(Clone, Debug)]
pub struct Simulation {
    config: SimConfig,
    now: Instant,
    rng: ChaCha8Rng,
    seq: u64,
    queue: BinaryHeap<Reverse<(Instant, u64, Item)>>,
    /// Messages in flight, indexed by `id - in_flight_base`; delivered slots become `None` and
    /// are trimmed from the front (ids are sequential and latencies bounded, so this stays small).
    in_flight: VecDeque<Option<InFlight>>,
    in_flight_base: u64,
    in_flight_count: usize,
    next_message: u64,
    link_clock: Vec<u64>,
    nodes: Vec<SimNode>,
    network: Network,
    /// Every node's own announced state: the ground truth the views converge to.
    truth: ClusterView,
    topology: Topology,
    topology_cache: TopologyCache,
    clients: Vec<ClientState>,
    pending: BTreeMap<(NodeId, RequestId), PendingOp>,
    completions: BTreeMap<u64, Completion>,
    next_scripted: u32,
    history: History,
    unrecorded_ops: u64,
    trace: Trace,
    stats: SimStats,
    read_threshold: u64,
    delete_threshold: u64,
    /// [`RequestRecord`]s of completed requests, by invoke index.
    requests: BTreeMap<u64, RequestRecord>,
    /// The fates of the messages that left the network other than [`Fate::Delivered`], by
    /// message id: drops, fenced and refused requests. Only these exceptions are remembered, so
    /// an ordinary delivery costs no more than before.
    fates: BTreeMap<u64, Fate>,
    /// The request being delivered (see [`Delivering`]).
    delivering: Option<Delivering>,
    /// Whether the driver syncs storage before releasing an input's outputs (always, except in
    /// the negative control that shows the harness would see a driver that does not).
    sync_before_release: bool,
}

/// A request the simulation could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// No node has this name.
    #[error("unknown node {0:?}")]
    UnknownNode(String),
    /// The node is crashed.
    #[error("node {0} is down: restart it first")]
    NodeDown(String),
    /// The node is paused.
    #[error("node {0} is paused: its process handles nothing until the pause ends")]
    NodePaused(String),
    /// The node is already running.
    #[error("node {0} is already running")]
    NodeRunning(String),
    /// The node refused the request.
    #[error("{0}")]
    Invalid(#[from] InvalidRequest),
    /// The node refused the operator command.
    #[error("{0}")]
    Admin(#[from] AdminError),
    /// A node with this name already exists.
    #[error("a node named {0:?} already exists")]
    DuplicateName(String),
}

impl Simulation {
    /// Builds a cluster with every node up at time zero.
    pub fn new(config: SimConfig) -> Self {
        let n = config.names.len();
        let topology = Topology::new(config.ring.clone());
        let truth = ClusterView::from_ring(&config.ring);
        let mut config = config;
        if config.node.seeds.is_empty() {
            config.node.seeds = (0..n.min(3) as u32).map(NodeId).collect();
        }
        config.node.rng_seed = config.seed;
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let clients = (0..config.workload.clients).map(|_| ClientState::default()).collect();
        let read_threshold = probability_threshold(config.workload.read_fraction);
        let delete_threshold = probability_threshold(
            config.workload.delete_fraction / (1.0 - config.workload.read_fraction).max(1e-9),
        );
        let mut sim = Simulation {
            now: Instant::ZERO,
            seq: 0,
            queue: BinaryHeap::new(),
            in_flight: VecDeque::new(),
            in_flight_base: 0,
            in_flight_count: 0,
            next_message: 0,
            link_clock: vec![0; n * n],
            nodes: Vec::with_capacity(n),
            network: Network::new(config.network.clone()),
            truth,
            topology,
            topology_cache: TopologyCache::default(),
            clients,
            pending: BTreeMap::new(),
            completions: BTreeMap::new(),
            next_scripted: 0,
            history: History::default(),
            unrecorded_ops: 0,
            trace: Trace::new(config.keep_trace),
            stats: SimStats::default(),
            read_threshold,
            delete_threshold,
            sync_before_release: true,
            requests: BTreeMap::new(),
            fates: BTreeMap::new(),
            delivering: None,
            rng: ChaCha8Rng::seed_from_u64(rng.next_u64()),
            config,
        };
        for i in 0..n {
            let node = Node::new(
                NodeId(i as u32),
                sim.config.node.clone(),
                sim.truth.clone(),
                MemStorage::new(),
                Instant::ZERO,
            )
            .expect("in-memory storage cannot fail")
            .with_topology_cache(sim.topology_cache.clone());
            sim.nodes.push(SimNode {
                node: Some(node),
                parked: None,
                wake: None,
                paused_until: None,
                incarnation: 0,
                config: None,
            });
        }
        for i in 0..n {
            sim.drain(NodeId(i as u32));
        }
        let start = Instant::ZERO + sim.config.workload.start;
        for c in 0..sim.config.workload.clients {
            // Stagger client starts by a few ms so they do not move in lock step.
            let offset = Duration::from_micros(sim.rng.random_range(0..5_000u64));
            sim.schedule(start + offset, Item::Client(c as u32));
        }
        sim
    }

    // ---------------------------------------------------------------------------------------------
    // Accessors
    // ---------------------------------------------------------------------------------------------

    /// Current virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The configuration this simulation was built from.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// Node names, indexed by id.
    pub fn names(&self) -> &[String] {
        &self.config.names
    }

    /// The id of a named node.
    pub fn node_id(&self, name: &str) -> Result<NodeId, SimError> {
        self.config
            .names
            .iter()
            .position(|n| n == name)
            .map(|i| NodeId(i as u32))
            .ok_or_else(|| SimError::UnknownNode(name.to_string()))
    }

    /// The name of a node.
    pub fn name(&self, id: NodeId) -> &str {
        self.config.names.get(id.0 as usize).map_or("?", String::as_str)
    }

    /// The running node, if up.
    pub fn node(&self, id: NodeId) -> Option<&Node<MemStorage>> {
        self.nodes.get(id.0 as usize).and_then(|n| n.node.as_ref())
    }

    /// Whether a node is running.
    pub fn is_up(&self, id: NodeId) -> bool {
        self.node(id).is_some()
    }

    /// Whether the cluster sees `id` up, as `status` reports it: up until a majority of the other
    /// running nodes that know it have convicted it in their failure detectors (half of them
    /// believing it alive keeps it up, as in a partition). A crash shows only once they convict
    /// it, and a restart once they hear from it again. With no such observer, whether its process
    /// runs.
    pub fn seen_up(&self, id: NodeId) -> bool {
        let mut alive = 0;
        let mut observers = 0;
        for (i, n) in self.nodes.iter().enumerate() {
            let Some(node) = n.node.as_ref() else { continue };
            if i == id.0 as usize || node.view().member(id).is_none() {
                continue;
            }
            observers += 1;
            alive += usize::from(node.is_alive(id));
        }
        if observers == 0 { self.is_up(id) } else { alive * 2 >= observers }
    }

    /// A node's storage, whether it is running or crashed.
    pub fn storage(&self, id: NodeId) -> Option<&MemStorage> {
        let n = self.nodes.get(id.0 as usize)?;
        n.node.as_ref().map(|node| node.storage()).or(n.parked.as_ref())
    }

    /// The cluster's placement as every node's own announcement implies it (the state views
    /// converge to): its ring gives the natural replicas used by final reads.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Every node's own announced state.
    pub fn cluster_view(&self) -> &ClusterView {
        &self.truth
    }

    /// The network.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// Messages in flight, by id.
    pub fn in_flight(&self) -> impl Iterator<Item = &InFlight> {
        self.in_flight.iter().flatten()
    }

    /// What became of message `id` once it left the network; `None` while it is in flight or
    /// before it is sent. A request's verdict is its receiver's at delivery: the simulator links
    /// a `Fenced` (or `Refused`) trace to the delivery that caused it, without touching the trace.
    pub fn fate(&self, id: u64) -> Option<Fate> {
        let in_flight = id
            .checked_sub(self.in_flight_base)
            .and_then(|i| self.in_flight.get(usize::try_from(i).ok()?))
            .is_some_and(Option::is_some);
        if id >= self.next_message || in_flight {
            return None;
        }
        Some(self.fates.get(&id).cloned().unwrap_or(Fate::Delivered))
    }

    /// The history so far.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// The trace so far.
    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    /// What the simulation counted so far (messages, movements, status learned by each node).
    pub fn stats(&self) -> &SimStats {
        &self.stats
    }

    /// The outcome of a scripted or intervention operation, by its invoke index.
    pub fn completion(&self, invoke: u64) -> Option<&Completion> {
        self.completions.get(&invoke)
    }

    /// How each completed request went (see [`RequestRecord`]), by invoke index.
    pub fn requests(&self) -> &BTreeMap<u64, RequestRecord> {
        &self.requests
    }

    /// When the next queued item happens.
    pub fn next_event_time(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse((t, _, _))| *t)
    }

    // ---------------------------------------------------------------------------------------------
    // Pump
    // ---------------------------------------------------------------------------------------------

    fn schedule(&mut self, at: Instant, item: Item) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, item)));
    }

    /// Processes the next queued item. Returns `false` when nothing is queued.
    pub fn step(&mut self) -> bool {
        let Some(Reverse((at, _, item))) = self.queue.pop() else { return false };
        debug_assert!(at >= self.now, "time went backwards");
        self.now = at;
        match item {
            Item::Deliver(id) => self.deliver(id),
            Item::Wake(node) => {
                let slot = &mut self.nodes[node.0 as usize];
                if slot.wake == Some(at)
                    && let Some(until) = slot.paused_until.filter(|u| *u > at)
                {
                    // Paused: timers fire late, all at once, when the pause ends.
                    slot.wake = Some(until);
                    self.schedule(until, Item::Wake(node));
                } else if slot.wake == Some(at) {
                    slot.wake = None;
                    if let Some(n) = slot.node.as_mut() {
                        self.stats.wakeups += 1;
                        n.handle_timeout(at);
                        self.drain(node);
                    }
                }
            }
            Item::Client(c) => self.client_tick(c),
        }
        true
    }

    /// Processes every item up to and including `until`, then sets the clock to `until`.
    pub fn run_until(&mut self, until: Instant) {
        while let Some(t) = self.next_event_time() {
            if t > until {
                break;
            }
            self.step();
        }
        if until > self.now {
            self.now = until;
        }
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    fn deliver(&mut self, id: u64) {
        // A paused receiver reads its socket only when it resumes.
        let slot = id.checked_sub(self.in_flight_base).map(|i| i as usize);
        if let Some(m) = slot.and_then(|i| self.in_flight.get_mut(i)).and_then(Option::as_mut) {
            let until = self.nodes[m.to.0 as usize].paused_until.filter(|u| *u > self.now);
            if let Some(until) = until {
                m.deliver_at = until;
                self.schedule(until, Item::Deliver(id));
                return;
            }
            // A held link delivers at its release (held messages keep their relative order:
            // they are rescheduled in delivery order and ties break on sequence numbers).
            let kind = m.message.kind();
            if let Some(until) = self.network.held_until(m.from, m.to, kind, self.now) {
                m.deliver_at = until;
                self.schedule(until, Item::Deliver(id));
                return;
            }
        }
        let Some(m) = self.take_in_flight(id) else { return };
        let reason = if m.lost {
            Some(DropReason::Loss)
        } else if !self.network.connected(m.from, m.to) {
            Some(DropReason::Partition)
        } else if !self.is_up(m.to) || self.nodes[m.to.0 as usize].incarnation != m.incarnation {
            Some(DropReason::NodeDown)
        } else {
            None
        };
        if let Some(reason) = reason {
            self.stats.dropped += 1;
            self.trace.record(self.now, TraceEvent::Drop { id, reason });
            self.fates.insert(id, Fate::Dropped(reason));
            return;
        }
        self.stats.delivered += 1;
        if let Message::StreamData { entries, .. } = &m.message {
            self.stats.keys_streamed += entries.len() as u64;
            self.stats.bytes_streamed +=
                entries.iter().map(crate::streaming::entry_bytes).sum::<u64>();
        }
        self.trace.record(self.now, TraceEvent::Deliver { id });
        let now = self.now;
        self.delivering =
            m.message.rejectable().map(|(request, _)| Delivering { id, from: m.from, request });
        if let Some(node) = self.nodes[m.to.0 as usize].node.as_mut() {
            node.handle_message(now, m.from, m.message);
        }
        self.drain(m.to);
        self.delivering = None;
    }

    fn take_in_flight(&mut self, id: u64) -> Option<InFlight> {
        let slot = self.in_flight.get_mut(id.checked_sub(self.in_flight_base)? as usize)?;
        let m = slot.take()?;
        self.in_flight_count -= 1;
        while matches!(self.in_flight.front(), Some(None)) {
            self.in_flight.pop_front();
            self.in_flight_base += 1;
        }
        Some(m)
    }

    fn send(&mut self, from: NodeId, t: Transmit) {
        let n = self.config.names.len();
        let id = self.next_message;
        self.next_message += 1;
        let sampled = self.network.sample(&mut self.rng);
        let lost = self.network.lose(&mut self.rng);
        // Links are FIFO, like the long-lived TCP connections native nodes use; a reordered
        // message (a nemesis) neither waits for nor holds back the others.
        let link = from.0 as usize * n + t.to.0 as usize;
        let deliver_at = if sampled.fifo {
            let at = Instant((self.now.0 + sampled.latency).max(self.link_clock[link]));
            self.link_clock[link] = at.0;
            at
        } else {
            Instant(self.now.0 + sampled.latency)
        };
        self.stats.sent += 1;
        self.trace.record_send(self.now, id, from, t.to, &t.message, deliver_at);
        debug_assert_eq!(id, self.in_flight_base + self.in_flight.len() as u64);
        self.in_flight_count += 1;
        self.in_flight.push_back(Some(InFlight {
            id,
            from,
            to: t.to,
            message: t.message,
            sent_at: self.now,
            deliver_at,
            lost,
            incarnation: self.nodes.get(t.to.0 as usize).map_or(0, |n| n.incarnation),
        }));
        self.schedule(deliver_at, Item::Deliver(id));
    }

    /// Drains a node's outputs after an input (the single-mutation invariant), after making the
    /// input's writes durable: ARCHITECTURE.md's invariant that `Storage::sync` runs before the
    /// outputs of an input are released, so no acknowledgement leaves for a write a crash could
    /// still lose. (`MemStorage` really loses unsynced writes on a crash, so skipping this is
    /// visible: see [`Simulation::set_sync_before_release`].)
    fn drain(&mut self, id: NodeId) {
        let idx = id.0 as usize;
        if self.sync_before_release
            && let Some(node) = self.nodes[idx].node.as_mut()
            && let Err(e) = node.storage_mut().sync()
        {
            // The storage failure policy: a node whose sync fails stops, outputs unreleased.
            self.trace.record(self.now, TraceEvent::Fatal { node: id, error: e.to_string() });
            self.crash_node(id);
            return;
        }
        loop {
            let Some(node) = self.nodes[idx].node.as_mut() else { return };
            if let Some(t) = node.poll_transmit() {
                self.send(id, t);
                continue;
            }
            if let Some(e) = node.poll_event() {
                self.on_event(id, e);
                continue;
            }
            break;
        }
        let Some(node) = self.nodes[idx].node.as_ref() else { return };
        // A deadline already past fires now; clamping before comparing avoids rescheduling it
        // on every drain until it fires.
        let wake = node.poll_timeout().map(|t| t.max(self.now));
        if wake != self.nodes[idx].wake {
            self.nodes[idx].wake = wake;
            if let Some(t) = wake {
                self.schedule(t, Item::Wake(id));
            }
        }
    }

    fn on_event(&mut self, node: NodeId, e: Event) {
        match e {
            Event::Reply { request, result } => {
                if let Some(p) = self.pending.remove(&(node, request)) {
                    self.complete(node, p, Some(result));
                }
            }
            Event::Trace(event) => {
                match &event {
                    NodeTrace::HintStored { .. } => {
                        *self.stats.hints_stored.entry(node).or_insert(0) += 1
                    }
                    NodeTrace::HintDelivered { .. } => self.stats.hints_delivered += 1,
                    NodeTrace::HintExpired { .. } => self.stats.hints_expired += 1,
                    NodeTrace::ReadRepair { .. } => self.stats.read_repairs += 1,
                    NodeTrace::StatusChanged { status } => {
                        self.stats.status_learned.push((self.now, node, node, *status));
                        self.refresh_truth(node)
                    }
                    NodeTrace::MemberChanged { member, status } => {
                        self.stats.status_learned.push((self.now, node, *member, *status));
                    }
                    NodeTrace::RangeStreamed { .. } => {}
                    NodeTrace::JoinCompleted { .. } => {
                        self.stats.join_completed.insert(node, self.now);
                    }
                    NodeTrace::Decommissioned => {
                        self.stats.decommissioned.insert(node, self.now);
                    }
                    NodeTrace::JoinFailed { reason } | NodeTrace::DecommissionFailed { reason } => {
                        let named = self.with_names(reason);
                        self.stats.movement_failures.push((node, named));
                    }
                    NodeTrace::Fenced { from, request, epoch, reason } => {
                        if let Some(d) = self.delivering
                            && d.from == *from
                            && d.request == *request
                        {
                            self.fates
                                .insert(d.id, Fate::Rejected { epoch: *epoch, reason: *reason });
                        }
                    }
                    NodeTrace::Refused { from, reason } => {
                        if let Some(d) = self.delivering
                            && d.from == *from
                        {
                            let reason = self.with_names(reason);
                            self.fates.insert(d.id, Fate::Refused { reason });
                        }
                    }
                    _ => {}
                }
                self.trace.record(self.now, TraceEvent::Node { node, event })
            }
            Event::Fatal(err) => {
                self.trace.record(self.now, TraceEvent::Fatal { node, error: err.to_string() });
                self.crash_node(node);
            }
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Clients
    // ---------------------------------------------------------------------------------------------

    fn complete(
        &mut self,
        node: NodeId,
        p: PendingOp,
        result: Option<Result<Reply, RequestError>>,
    ) {
        let mut op = Op {
            index: 0,
            process: p.process,
            op_type: OpType::Ok,
            f: p.f,
            key: p.key.clone(),
            value: p.value.clone(),
            values: Vec::new(),
            cl: p.cl,
            time: self.now,
            node,
            version: None,
            context: None,
            write_context: p.write_context.clone(),
            error: None,
            final_read: false,
        };
        match &result {
            Some(Ok(Reply::Written { tag, .. })) => op.version = Some(*tag),
            Some(Ok(Reply::Read { value, context, .. })) => {
                op.values = value
                    .values()
                    .into_iter()
                    .map(|v| String::from_utf8_lossy(&v).into_owned())
                    .collect();
                op.context = Some(context.clone());
                if let Some(c) = self.clients.get_mut(p.process as usize)
                    && let Some(i) = p.key.strip_prefix('k').and_then(|i| i.parse().ok())
                {
                    c.contexts.insert(i, context.clone());
                }
            }
            Some(Err(RequestError::Unavailable { .. })) => {
                op.op_type = OpType::Fail;
                op.error = Some(OpError::Unavailable);
            }
            Some(Err(RequestError::Timeout { .. })) => {
                // A timed-out read changed nothing; a timed-out write may have been applied.
                op.op_type = if p.f == OpFunction::Read { OpType::Fail } else { OpType::Info };
                op.error = Some(OpError::Timeout);
            }
            None => {
                op.op_type = if p.f == OpFunction::Read { OpType::Fail } else { OpType::Info };
                op.error = Some(OpError::NodeDown);
            }
        }
        let mut record = p.record;
        if let Some(n) = self.node(node) {
            for r in &record.replicas {
                if *r != node && !n.is_alive(*r) {
                    record.tainted.insert(*r);
                }
            }
        }
        let index = self.record(op);
        if self.config.record_history {
            self.requests.insert(p.invoke, record);
        }
        if !matches!(Issuer::of(p.process), Issuer::Client(_)) {
            self.completions.insert(p.invoke, Completion { op_index: index, result });
        } else {
            let next = self.now + self.config.workload.think_time;
            self.schedule(next, Item::Client(p.process));
        }
    }

    /// Appends an op to the history (when recorded) and the trace; returns its index.
    fn record(&mut self, op: Op) -> u64 {
        let index = if self.config.record_history {
            self.history.push(op)
        } else {
            self.unrecorded_ops += 1;
            self.unrecorded_ops - 1
        };
        self.trace.record(self.now, TraceEvent::Client { op: index });
        index
    }

    fn client_tick(&mut self, c: u32) {
        let w = &self.config.workload;
        if self.now >= Instant::ZERO + w.stop {
            return;
        }
        let now = self.now;
        let usable = |n: &SimNode| {
            n.node.as_ref().is_some_and(|n| n.accepts_clients())
                && n.paused_until.is_none_or(|u| u <= now)
        };
        let up = self.nodes.iter().filter(|n| usable(n)).count();
        if up == 0 {
            let next = self.now + w.think_time.max(Duration::from_millis(100));
            self.schedule(next, Item::Client(c));
            return;
        }
        // Draws are u64 so 32-bit (wasm) and 64-bit targets consume the generator identically.
        let pick = self.rng.random_range(0..up as u64) as usize;
        let coordinator = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| usable(n))
            .nth(pick)
            .map(|(i, _)| NodeId(i as u32))
            .expect("pick < up");
        let key_index = self.rng.random_range(0..w.keys.max(1) as u64);
        let key = format!("k{key_index}");
        let (read_cl, write_cl, use_context) = (w.read_cl, w.write_cl, w.use_context);
        let f = if draw(&mut self.rng, self.read_threshold) {
            OpFunction::Read
        } else if draw(&mut self.rng, self.delete_threshold) {
            OpFunction::Delete
        } else {
            OpFunction::Write
        };
        let state = &mut self.clients[c as usize];
        state.seq += 1;
        let value = format!("c{c}-{}", state.seq);
        let context = if use_context {
            state.contexts.get(&key_index).cloned().unwrap_or_default()
        } else {
            CausalContext::default()
        };
        let result = match f {
            OpFunction::Read => self.invoke(c, coordinator, f, key, None, read_cl, None),
            OpFunction::Write => {
                self.invoke(c, coordinator, f, key, Some(value), write_cl, Some(context))
            }
            OpFunction::Delete => {
                self.invoke(c, coordinator, f, key, None, write_cl, Some(context))
            }
        };
        if result.is_err() {
            let next = self.now + self.config.workload.think_time;
            self.schedule(next, Item::Client(c));
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn invoke(
        &mut self,
        process: u32,
        node: NodeId,
        f: OpFunction,
        key: String,
        value: Option<String>,
        cl: ConsistencyLevel,
        write_context: Option<CausalContext>,
    ) -> Result<u64, SimError> {
        let mode = self.config.node.conflict_mode;
        // LWW ignores contexts: every write is sent blind.
        let write_context = write_context.map(|c| match mode {
            ConflictMode::Lww => CausalContext::blind(mode),
            ConflictMode::VectorClock => c,
        });
        let now = self.now;
        if self.is_paused(node) {
            return Err(SimError::NodePaused(self.name(node).to_string()));
        }
        let Some(n) = self.nodes[node.0 as usize].node.as_mut() else {
            return Err(SimError::NodeDown(self.name(node).to_string()));
        };
        let request = match f {
            OpFunction::Read => n.get(now, key.clone().into_bytes(), cl)?,
            OpFunction::Write => n.put(
                now,
                key.clone().into_bytes(),
                value.clone().unwrap_or_default().into_bytes(),
                cl,
                write_context.clone().unwrap_or_default(),
            )?,
            OpFunction::Delete => n.delete(
                now,
                key.clone().into_bytes(),
                cl,
                write_context.clone().unwrap_or_default(),
            )?,
        };
        let invoke = self.record(Op {
            index: 0,
            process,
            op_type: OpType::Invoke,
            f,
            key: key.clone(),
            value: value.clone(),
            values: Vec::new(),
            cl,
            time: now,
            node,
            version: None,
            context: None,
            write_context: write_context.clone(),
            error: None,
            final_read: false,
        });
        let record = self.request_record(node, &key, f);
        self.pending.insert(
            (node, request),
            PendingOp { process, invoke, f, key, value, cl, write_context, record },
        );
        let sent = self.stats.sent;
        self.drain(node);
        let sent = self.stats.sent - sent;
        match self.pending.get_mut(&(node, request)) {
            Some(p) => p.record.sent_at_invoke = sent,
            None => {
                if let Some(r) = self.requests.get_mut(&invoke) {
                    r.sent_at_invoke = sent;
                    r.answered_at_invoke = true;
                }
            }
        }
        Ok(invoke)
    }

    /// The record of a request just invoked at `coordinator`: replicas already down, paused,
    /// cut off or believed dead are tainted from the start.
    fn request_record(&self, coordinator: NodeId, key: &str, f: OpFunction) -> RequestRecord {
        let replicas = self.topology.ring().replicas(token_for(key.as_bytes())).to_vec();
        let mut record = RequestRecord { replicas, ..RequestRecord::default() };
        let coord = self.node(coordinator);
        for r in record.replicas.clone() {
            let bad = !self.is_up(r)
                || self.is_paused(r)
                || self.cut_off(coordinator, r)
                || (r != coordinator && coord.is_some_and(|n| !n.is_alive(r)));
            if bad {
                record.tainted.insert(r);
            }
        }
        let timeout = match f {
            OpFunction::Read => self.config.node.read_timeout,
            _ => self.config.node.write_timeout,
        };
        record.excused = self.timeout_excuse(timeout);
        record
    }

    /// Whether `a` and `b` cannot exchange messages promptly now: a partition, or a hold on
    /// either direction of their link.
    fn cut_off(&self, a: NodeId, b: NodeId) -> bool {
        a != b
            && (!self.network.connected(a, b)
                || self.network.holds().iter().any(|h| {
                    h.until > self.now && ((h.from == a && h.to == b) || (h.from == b && h.to == a))
                }))
    }

    /// Why a request started now could time out with every replica healthy, if it could.
    fn timeout_excuse(&self, timeout: Duration) -> Option<&'static str> {
        let c = self.network.config();
        let l = &c.latency;
        // A request takes at most four one-way hops (coordinator → minting replica → replicas →
        // minting replica → coordinator); if four worst-case hops fit in the timeout, only a
        // replica problem or an engine bug can make it time out.
        let tail = if l.tail_probability > 0.0 { l.tail } else { Duration::ZERO };
        let pareto = if l.pareto_scale > Duration::ZERO { l.pareto_cap } else { Duration::ZERO };
        let reorder = if c.reorder > 0.0 { c.reorder_delay } else { Duration::ZERO };
        let hop = l.min + l.jitter + tail + pareto + reorder;
        if c.loss > 0.0 {
            Some("message loss")
        } else if hop * 4 >= timeout {
            Some("worst-case latency")
        } else if self.movement_in_progress() {
            Some("range movement")
        } else {
            None
        }
    }

    /// Marks, in every request in flight, the replicas a fault now affects.
    fn taint_pending(&mut self) {
        let keys: Vec<(NodeId, RequestId)> = self.pending.keys().copied().collect();
        for k in keys {
            let (coordinator, _) = k;
            let p = &self.pending[&k];
            let timeout = match p.f {
                OpFunction::Read => self.config.node.read_timeout,
                _ => self.config.node.write_timeout,
            };
            let bad: Vec<NodeId> = p
                .record
                .replicas
                .iter()
                .copied()
                .filter(|r| !self.is_up(*r) || self.is_paused(*r) || self.cut_off(coordinator, *r))
                .collect();
            let excuse = if self.is_paused(coordinator) {
                Some("coordinator paused")
            } else {
                self.timeout_excuse(timeout)
            };
            let p = self.pending.get_mut(&k).expect("listed");
            p.record.tainted.extend(bad);
            if p.record.excused.is_none() {
                p.record.excused = excuse;
            }
        }
    }

    /// Issues a client operation outside the workload (a scenario step or a user intervention).
    /// Returns the invoke's history index; its outcome is [`Simulation::completion`].
    pub fn client_op(
        &mut self,
        coordinator: NodeId,
        f: OpFunction,
        key: &str,
        value: Option<&str>,
        cl: ConsistencyLevel,
        context: Option<CausalContext>,
    ) -> Result<u64, SimError> {
        let process = SCRIPTED_PROCESS_BASE + self.next_scripted;
        self.next_scripted += 1;
        let mode = self.config.node.conflict_mode;
        let context = match f {
            OpFunction::Read => None,
            _ => Some(context.unwrap_or_else(|| CausalContext::blind(mode))),
        };
        self.invoke(
            process,
            coordinator,
            f,
            key.to_string(),
            value.map(str::to_string),
            cl,
            context,
        )
    }

    // ---------------------------------------------------------------------------------------------
    // Operator commands
    // ---------------------------------------------------------------------------------------------

    /// Replaces node ids (`n3`) in an engine message with the simulation's node names.
    pub fn with_names(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(i) = rest.find('n') {
            out.push_str(&rest[..i]);
            let tail = &rest[i + 1..];
            let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
            let boundary_before = out.chars().last().is_none_or(|c| !c.is_alphanumeric());
            let boundary_after = tail[digits..].chars().next().is_none_or(|c| !c.is_alphanumeric());
            match tail[..digits].parse::<usize>() {
                Ok(id)
                    if digits > 0
                        && boundary_before
                        && boundary_after
                        && id < self.config.names.len() =>
                {
                    out.push_str(&self.config.names[id]);
                }
                _ => {
                    out.push('n');
                    out.push_str(&tail[..digits]);
                }
            }
            rest = &tail[digits..];
        }
        out.push_str(rest);
        out
    }

    fn refresh_truth(&mut self, id: NodeId) {
        let Some(member) = self.node(id).and_then(|n| n.view().member(id).cloned()) else { return };
        self.truth.members.insert(id, member);
        if let Ok(Some(t)) = self.truth.topology(self.config.node.join_strategy) {
            self.topology = t;
        }
    }

    fn running(&mut self, id: NodeId) -> Result<&mut Node<MemStorage>, SimError> {
        if id.0 as usize >= self.nodes.len() {
            return Err(SimError::UnknownNode(id.to_string()));
        }
        if self.is_paused(id) {
            return Err(SimError::NodePaused(self.name(id).to_string()));
        }
        let name = self.config.names[id.0 as usize].clone();
        self.nodes[id.0 as usize].node.as_mut().ok_or(SimError::NodeDown(name))
    }

    /// Starts a new, empty node named `name` and asks it to join; returns its id. It learns the
    /// ring from the seeds by gossip; in a cluster without gossip (`heartbeat_interval` unset)
    /// it is handed the cluster's current view instead, and only the fenced strategies, whose barriers push
    /// state directly, can complete a join.
    pub fn add_node(&mut self, name: &str, request: JoinRequest) -> Result<NodeId, SimError> {
        self.add_node_configured(name, request, |_| {})
    }

    /// [`Simulation::add_node`] with the new node's configuration adjusted by `configure` (for
    /// example another `cluster_name`, to check that the cluster refuses it).
    pub fn add_node_configured(
        &mut self,
        name: &str,
        request: JoinRequest,
        configure: impl FnOnce(&mut NodeConfig),
    ) -> Result<NodeId, SimError> {
        if self.config.names.iter().any(|n| n == name) {
            return Err(SimError::DuplicateName(name.to_string()));
        }
        let old = self.config.names.len();
        let id = NodeId(old as u32);
        self.config.names.push(name.to_string());
        let n = old + 1;
        let mut links = vec![0; n * n];
        for from in 0..old {
            links[from * n..from * n + old]
                .copy_from_slice(&self.link_clock[from * old..(from + 1) * old]);
        }
        self.link_clock = links;
        let view = if self.config.node.heartbeat_interval.is_some() {
            ClusterView::empty(self.truth.rf)
        } else {
            self.truth.clone()
        };
        let mut config = self.config.node.clone();
        configure(&mut config);
        let own = (config != self.config.node).then(|| Box::new(config.clone()));
        let node = Node::new(id, config, view, MemStorage::new(), self.now)
            .expect("in-memory storage cannot fail")
            .with_topology_cache(self.topology_cache.clone());
        self.nodes.push(SimNode {
            node: Some(node),
            parked: None,
            wake: None,
            paused_until: None,
            incarnation: 0,
            config: own,
        });
        self.trace.record(self.now, TraceEvent::Restart { node: id, generation: 1 });
        self.stats.join_started.insert(id, self.now);
        let now = self.now;
        let result = self.running(id)?.join(now, request);
        self.drain(id);
        result?;
        Ok(id)
    }

    /// Resumes an interrupted or failed join.
    pub fn resume_join(
        &mut self,
        id: NodeId,
        allow_inconsistent_source: bool,
    ) -> Result<(), SimError> {
        let now = self.now;
        let request = JoinRequest { resume: true, allow_inconsistent_source, tokens: None };
        let result = self.running(id)?.join(now, request);
        self.drain(id);
        Ok(result?)
    }

    /// Starts decommissioning a node.
    pub fn decommission(&mut self, id: NodeId) -> Result<(), SimError> {
        let now = self.now;
        let result = self.running(id)?.decommission(now);
        self.drain(id);
        Ok(result?)
    }

    /// Aborts a node's join or decommission (idempotent); returns what the node did.
    pub fn abort_movement(&mut self, id: NodeId) -> Result<String, SimError> {
        let now = self.now;
        let result = self.running(id)?.abort_movement(now);
        self.drain(id);
        Ok(result?)
    }

    /// Runs cleanup on a node; returns the keys it removed.
    pub fn cleanup(&mut self, id: NodeId) -> Result<u64, SimError> {
        let now = self.now;
        let result = self.running(id)?.cleanup(now);
        self.drain(id);
        Ok(result?.keys)
    }

    /// Starts a Merkle repair on a node; returns the comparisons started.
    pub fn repair(&mut self, id: NodeId) -> Result<usize, SimError> {
        let now = self.now;
        let result = self.running(id)?.repair(now);
        self.drain(id);
        Ok(result?)
    }

    /// Slow gossip on a node: membership changes reach its view only after `duration` (its
    /// heartbeats flow normally). Explicit barriers are not delayed.
    pub fn slow_gossip(&mut self, id: NodeId, duration: Duration) -> Result<(), SimError> {
        let until = self.now + duration;
        self.running(id)?.delay_gossip_state(until);
        Ok(())
    }

    /// Keys held by nodes that do not replicate them (ghost data awaiting cleanup), per node.
    pub fn ghost_keys(&self) -> BTreeMap<NodeId, u64> {
        let mut out = BTreeMap::new();
        for (i, slot) in self.nodes.iter().enumerate() {
            let id = NodeId(i as u32);
            let storage = match (&slot.node, &slot.parked) {
                (Some(n), _) => n.storage(),
                (None, Some(s)) => s,
                _ => continue,
            };
            let ghosts =
                storage.iter().filter(|(t, _, _)| !self.topology.holds(id, *t)).count() as u64;
            if ghosts > 0 {
                out.insert(id, ghosts);
            }
        }
        out
    }

    /// Acknowledgements demanded beyond the level because of pending replicas, all nodes.
    pub fn extra_acks(&self) -> u64 {
        self.stats.extra_acks_before_crashes
            + self
                .nodes
                .iter()
                .filter_map(|n| n.node.as_ref())
                .map(|n| n.stats().extra_acks)
                .sum::<u64>()
    }

    /// Whether any node is joining or leaving (by its own announcement).
    pub fn movement_in_progress(&self) -> bool {
        self.truth.movement_in_progress().is_some()
    }

    /// A node's status as it announced it.
    pub fn announced_status(&self, id: NodeId) -> Option<Status> {
        self.truth.status(id)
    }

    // ---------------------------------------------------------------------------------------------
    // Faults
    // ---------------------------------------------------------------------------------------------

    fn crash_node(&mut self, id: NodeId) {
        let slot = &mut self.nodes[id.0 as usize];
        let Some(node) = slot.node.take() else { return };
        self.stats.extra_acks_before_crashes += node.stats().extra_acks;
        let mut storage = node.into_storage();
        // What the process had not synced dies with it.
        storage.crash();
        slot.parked = Some(storage);
        slot.wake = None;
        slot.paused_until = None;
        slot.incarnation += 1;
        self.trace.record(self.now, TraceEvent::Crash { node: id });
        // Clients waiting on this coordinator learn nothing more: indeterminate.
        let lost: Vec<(NodeId, RequestId)> =
            self.pending.keys().filter(|(n, _)| *n == id).copied().collect();
        for k in lost {
            let p = self.pending.remove(&k).expect("pending op");
            self.complete(id, p, None);
        }
    }

    /// Kills a node: volatile state is lost, storage is kept.
    pub fn crash(&mut self, id: NodeId) -> Result<(), SimError> {
        if !self.is_up(id) {
            return Err(SimError::NodeDown(self.name(id).to_string()));
        }
        self.crash_node(id);
        self.taint_pending();
        Ok(())
    }

    /// Kills a node and destroys its disk (a failed drive): it restarts empty. Used to show
    /// what losing every copy of a write looks like.
    pub fn wipe(&mut self, id: NodeId) -> Result<(), SimError> {
        if self.is_up(id) {
            self.crash_node(id);
            self.taint_pending();
        }
        let slot = self
            .nodes
            .get_mut(id.0 as usize)
            .ok_or_else(|| SimError::UnknownNode(id.to_string()))?;
        slot.parked = Some(MemStorage::new());
        Ok(())
    }

    /// Kills a node and replaces its disk with `snapshot`, an earlier copy of its storage (a
    /// disk that lied about fsync, a VM restored from a snapshot). Negative controls use it to
    /// make a replica forget dots it minted, so it mints them again.
    pub fn rollback_disk(&mut self, id: NodeId, snapshot: MemStorage) -> Result<(), SimError> {
        self.wipe(id)?;
        self.nodes[id.0 as usize].parked = Some(snapshot);
        Ok(())
    }

    /// Restarts a crashed node on its storage.
    pub fn restart(&mut self, id: NodeId) -> Result<(), SimError> {
        let idx = id.0 as usize;
        if idx >= self.nodes.len() {
            return Err(SimError::UnknownNode(id.to_string()));
        }
        let Some(storage) = self.nodes[idx].parked.take() else {
            return Err(SimError::NodeRunning(self.name(id).to_string()));
        };
        let config = match &self.nodes[idx].config {
            Some(c) => (**c).clone(),
            None => self.config.node.clone(),
        };
        let node = Node::new(id, config, ClusterView::empty(self.truth.rf), storage, self.now)
            .expect("in-memory storage cannot fail")
            .with_topology_cache(self.topology_cache.clone());
        let generation = node.generation();
        self.nodes[idx].node = Some(node);
        self.trace.record(self.now, TraceEvent::Restart { node: id, generation });
        self.drain(id);
        Ok(())
    }

    /// Freezes a running node's process for `duration` (a GC or VM pause): it handles no
    /// message and no timer until then, and clients do not pick it as coordinator. Its storage
    /// and state are intact afterwards; its timers all fire at once when it resumes.
    pub fn pause(&mut self, id: NodeId, duration: Duration) -> Result<(), SimError> {
        if !self.is_up(id) {
            return Err(SimError::NodeDown(self.name(id).to_string()));
        }
        let until = self.now + duration;
        self.nodes[id.0 as usize].paused_until = Some(until);
        self.trace.record(self.now, TraceEvent::Pause { node: id, until });
        self.taint_pending();
        Ok(())
    }

    /// Whether a node is paused now.
    pub fn is_paused(&self, id: NodeId) -> bool {
        self.nodes.get(id.0 as usize).and_then(|n| n.paused_until).is_some_and(|u| u > self.now)
    }

    /// Partitions the network into groups (unlisted nodes form one more group).
    pub fn partition(&mut self, groups: Vec<Vec<NodeId>>) {
        self.network.partition(&groups);
        self.trace.record(self.now, TraceEvent::Partition { groups });
        self.taint_pending();
    }

    /// Heals every partition.
    pub fn heal(&mut self) {
        self.network.heal();
        self.trace.record(self.now, TraceEvent::Heal);
    }

    /// Negative control only: `false` makes this driver release an input's transmits and events
    /// without syncing storage first, breaking the durability invariant. Crashes then lose
    /// acknowledged writes, which the checker must report.
    pub fn set_sync_before_release(&mut self, sync: bool) {
        self.sync_before_release = sync;
    }

    /// Holds messages on a link until a release time instead of dropping them (a nemesis; see
    /// [`network::Hold`]).
    pub fn hold(&mut self, hold: network::Hold) {
        self.network.hold(hold);
        self.taint_pending();
    }

    /// Releases every hold (held messages still arrive at their scheduled release times).
    pub fn release_holds(&mut self) {
        self.network.release_holds();
    }

    /// Changes message reordering (a nemesis: probability and largest extra delay).
    pub fn set_reorder(&mut self, probability: f64, delay: Duration) {
        self.network.set_reorder(probability, delay);
        self.taint_pending();
    }

    /// Changes the Pareto latency tail (a nemesis; zero scale switches it off).
    pub fn set_pareto(&mut self, scale: Duration, cap: Duration) {
        self.network.set_pareto(scale, cap);
        self.taint_pending();
    }

    /// Changes the message loss probability.
    pub fn set_loss(&mut self, loss: f64) {
        self.network.set_loss(loss);
        self.taint_pending();
    }

    // ---------------------------------------------------------------------------------------------
    // End of run
    // ---------------------------------------------------------------------------------------------

    /// Every key any client wrote or read, sorted.
    pub fn keys(&self) -> Vec<String> {
        let set: BTreeSet<&str> = self.history.ops.iter().map(|o| o.key.as_str()).collect();
        set.into_iter().map(str::to_string).collect()
    }

    /// The merge of what every natural replica of `key` holds on disk, running or crashed: what
    /// the cluster still knows about the key.
    pub fn durable_state(&self, key: &str) -> Siblings {
        let token = token_for(key.as_bytes());
        let mut merged = Siblings::new();
        for r in self.topology.ring().replicas(token) {
            if let Some(s) = self.storage(*r)
                && let Ok(Some(v)) = s.get(token, key.as_bytes())
            {
                merged.merge(&v, self.config.node.conflict_mode);
            }
        }
        merged
    }

    /// Appends one final read per key to the history, from the durable state of its replicas.
    /// These describe the end state for the checker's lost-write detection.
    pub fn record_final_reads(&mut self) {
        let mode = self.config.node.conflict_mode;
        for key in self.keys() {
            let state = self.durable_state(&key);
            let node = self.topology.ring().replicas(token_for(key.as_bytes()))[0];
            let base = Op {
                index: 0,
                process: FINAL_PROCESS,
                op_type: OpType::Invoke,
                f: OpFunction::Read,
                key: key.clone(),
                value: None,
                values: Vec::new(),
                cl: ConsistencyLevel::All,
                time: self.now,
                node,
                version: None,
                context: None,
                write_context: None,
                error: None,
                final_read: true,
            };
            self.history.push(base.clone());
            self.history.push(Op {
                op_type: OpType::Ok,
                values: state
                    .values()
                    .into_iter()
                    .map(|v| String::from_utf8_lossy(&v).into_owned())
                    .collect(),
                context: Some(state.context(mode)),
                ..base
            });
        }
    }

    /// Keys whose running natural replicas hold different versions.
    pub fn divergent_keys(&self) -> Vec<String> {
        let mut out = Vec::new();
        for key in self.keys() {
            let token = token_for(key.as_bytes());
            let mut states =
                self.topology.ring().replicas(token).iter().filter_map(|r| self.node(*r)).map(
                    |n| n.storage().get(token, key.as_bytes()).ok().flatten().unwrap_or_default(),
                );
            if let Some(first) = states.next()
                && states.any(|s| s != first)
            {
                out.push(key);
            }
        }
        out
    }

    /// Reads every key at ALL from a running member (a node that is `Normal` in its own eyes: a
    /// node that left, or never joined, refuses client requests) so read repair brings replicas
    /// together. Returns the invoke indices.
    pub fn repair_reads(&mut self) -> Vec<u64> {
        let Some(coordinator) = (0..self.nodes.len()).map(|i| NodeId(i as u32)).find(|n| {
            self.node(*n).is_some_and(|node| *node.lifecycle() == crate::node::Lifecycle::Normal)
        }) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for key in self.keys() {
            if let Ok(i) = self.client_op(
                coordinator,
                OpFunction::Read,
                &key,
                None,
                ConsistencyLevel::All,
                None,
            ) {
                out.push(i);
            }
        }
        out
    }

    /// Runs until nothing but periodic timers remain, at most `limit` of virtual time: every
    /// client request answered and every message delivered.
    pub fn quiesce(&mut self, limit: Duration) {
        let until = self.now + limit;
        while self.now < until {
            let busy = !self.pending.is_empty() || self.in_flight_count > 0;
            let stop_at = Instant::ZERO + self.config.workload.stop;
            if !busy && self.now >= stop_at {
                break;
            }
            match self.next_event_time() {
                Some(t) if t <= until => {
                    self.step();
                }
                _ => break,
            }
        }
    }
}

/// Runs a small fixed scenario with `seed` and returns its trace hash. Used to check that the
/// same seed gives the same trace natively and in wasm.
pub fn reference_trace_hash(seed: u64) -> u64 {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let names: Vec<String> = ["A", "B", "C", "D", "E"].iter().map(|s| s.to_string()).collect();
    let ids: Vec<NodeId> = (0..names.len() as u32).map(NodeId).collect();
    let ring = crate::alloc::build_ring(&ids, 8, 3, crate::alloc::Allocation::Random, &mut rng)
        .expect("valid ring");
    let config = SimConfig {
        seed,
        names,
        ring,
        node: NodeConfig::default(),
        network: NetworkConfig { loss: 0.01, ..NetworkConfig::default() },
        workload: WorkloadConfig {
            clients: 3,
            keys: 8,
            start: Duration::from_secs(2),
            stop: Duration::from_secs(20),
            ..WorkloadConfig::default()
        },
        keep_trace: false,
        record_history: true,
    };
    let mut sim = Simulation::new(config);
    sim.run_until(Instant::from_secs(6));
    let _ = sim.crash(NodeId(1));
    sim.run_until(Instant::from_secs(12));
    sim.partition(vec![vec![NodeId(0), NodeId(2)]]);
    sim.run_until(Instant::from_secs(15));
    sim.heal();
    let _ = sim.restart(NodeId(1));
    sim.run_until(Instant::from_secs(30));
    sim.trace().hash()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three nodes A, B, C (RF 3, seed 5) and no clients.
    /// A cluster without a workload on `ring` (RF 3, nodes named A, B, C, …).
    fn quiet_cluster(seed: u64, ring: crate::ring::Ring) -> Simulation {
        let names = (0..ring.nodes().len()).map(|i| ((b'A' + i as u8) as char).to_string());
        Simulation::new(SimConfig {
            seed,
            names: names.collect(),
            ring,
            node: NodeConfig::default(),
            network: NetworkConfig::default(),
            workload: WorkloadConfig { clients: 0, ..WorkloadConfig::default() },
            keep_trace: false,
            record_history: true,
        })
    }

    /// `n` nodes, node `i` at token `i * spacing`.
    fn spaced_ring(n: u32, spacing: u64) -> crate::ring::Ring {
        crate::ring::Ring::new((0..n).map(|i| (u64::from(i) * spacing, NodeId(i))), 3)
            .expect("ring")
    }

    fn three_quiet_nodes() -> Simulation {
        three_nodes(5)
    }

    #[test]
    fn a_long_pause_is_convicted_then_forgiven_and_the_paused_node_convicts_nobody() {
        let mut sim = three_quiet_nodes();
        let (a, b, c) = (NodeId(0), NodeId(1), NodeId(2));
        sim.run_until(Instant::from_secs(20));
        sim.pause(b, Duration::from_secs(40)).unwrap();
        assert!(sim.is_paused(b));
        assert!(matches!(
            sim.client_op(b, OpFunction::Read, "k", None, ConsistencyLevel::One, None),
            Err(SimError::NodePaused(_))
        ));
        sim.run_until(Instant::from_secs(59));
        assert!(!sim.node(a).unwrap().is_alive(b), "A should convict B during a 40 s pause");
        sim.run_until(Instant::from_secs(62));
        // B resumed: its detector saw a local pause and convicted nobody; A forgave B.
        assert!(!sim.is_paused(b));
        let bn = sim.node(b).unwrap();
        assert!(bn.is_alive(a) && bn.is_alive(c));
        assert!(sim.node(a).unwrap().is_alive(b));
    }

    #[test]
    fn a_message_has_a_fate_once_it_left_the_network() {
        let mut sim = three_quiet_nodes();
        let c = NodeId(2);
        while !sim.in_flight().any(|m| m.to == c) {
            assert!(sim.step());
        }
        let to_c = sim.in_flight().find(|m| m.to == c).map(|m| m.id).unwrap();
        let other = sim.in_flight().find(|m| m.to != c).map(|m| m.id);
        assert_eq!(sim.fate(to_c), None, "in flight");
        assert_eq!(sim.fate(sim.next_message), None, "not sent yet");
        sim.crash(c).unwrap();
        sim.run_until(sim.now() + Duration::from_secs(1));
        assert_eq!(sim.fate(to_c), Some(Fate::Dropped(DropReason::NodeDown)));
        if let Some(other) = other {
            assert_eq!(sim.fate(other), Some(Fate::Delivered));
        }
    }

    /// Soak seed 7407 (`pending-ranges`): messages that reached a paused node waited for the
    /// pause to end; the node crashed and restarted meanwhile, and the new process was handed
    /// gossip answering its previous incarnation's digests (a heartbeat without the status it
    /// had then known), so it never learned the joiner was NORMAL. A message sent to a process
    /// dies with it, as on a TCP connection.
    #[test]
    fn a_message_to_a_process_that_crashed_is_not_delivered_to_its_successor() {
        let mut sim = three_quiet_nodes();
        let c = NodeId(2);
        sim.run_until(Instant::from_secs(5));
        sim.pause(c, Duration::from_secs(5)).unwrap();
        while !sim.in_flight().any(|m| m.to == c) {
            assert!(sim.step());
        }
        let to_c = sim.in_flight().find(|m| m.to == c).map(|m| m.id).unwrap();
        sim.run_until(sim.now() + Duration::from_secs(1));
        assert_eq!(sim.fate(to_c), None, "waiting for the pause to end");
        sim.crash(c).unwrap();
        sim.restart(c).unwrap();
        sim.run_until(Instant::from_secs(12));
        assert_eq!(sim.fate(to_c), Some(Fate::Dropped(DropReason::NodeDown)));
    }

    #[test]
    fn a_node_of_another_cluster_is_refused_everywhere_and_never_joins() {
        let ids: Vec<NodeId> = (0..3).map(NodeId).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let ring =
            crate::alloc::build_ring(&ids, 4, 3, crate::alloc::Allocation::Balanced, &mut rng)
                .unwrap();
        let mut sim = Simulation::new(SimConfig {
            seed: 1,
            names: vec!["A".into(), "B".into(), "C".into()],
            ring,
            node: NodeConfig::default(),
            network: NetworkConfig::default(),
            workload: WorkloadConfig {
                clients: 2,
                keys: 10,
                stop: Duration::from_secs(60),
                ..WorkloadConfig::default()
            },
            keep_trace: false,
            record_history: true,
        });
        sim.run_for(Duration::from_secs(5));
        let x = sim
            .add_node_configured("X", JoinRequest::default(), |c| c.cluster_name = "other".into())
            .unwrap();
        sim.run_for(Duration::from_secs(90));
        for i in 0..3 {
            let n = sim.node(NodeId(i)).unwrap();
            assert!(n.view().member(x).is_none(), "{:?}", n.view());
            assert!(!n.admits(x));
            assert!(n.stats().refused > 0, "seed {i} refused X's gossip");
        }
        assert!(
            sim.stats()
                .movement_failures
                .iter()
                .any(|(n, r)| *n == x && r.contains("cluster mismatch")),
            "{:?}",
            sim.stats().movement_failures
        );
        assert_eq!(sim.announced_status(x), None, "X never announced a status");
    }

    fn three_nodes(seed: u64) -> Simulation {
        quiet_cluster(seed, spaced_ring(3, 1000))
    }

    #[test]
    fn issuers_decode_the_process_numbering() {
        assert_eq!(Issuer::of(3), Issuer::Client(3));
        assert_eq!(Issuer::of(SCRIPTED_PROCESS_BASE + 7), Issuer::Scripted);
        assert_eq!(Issuer::of(FINAL_PROCESS), Issuer::Final);
    }

    /// The final phase's repair reads go through a member: soak seed 47911 decommissioned A,
    /// the reads were all sent through A, which had left and refused them, and the replicas a
    /// read would have repaired were reported divergent.
    #[test]
    fn repair_reads_go_through_a_member_after_the_first_node_left() {
        let mut sim = quiet_cluster(3, spaced_ring(4, 1 << 62));
        sim.run_until(Instant::from_secs(5));
        let b = NodeId(1);
        let w = sim.client_op(b, OpFunction::Write, "k", Some("v"), ConsistencyLevel::All, None);
        w.unwrap();
        sim.decommission(NodeId(0)).unwrap();
        sim.run_until(Instant::from_secs(120));
        assert!(sim.stats().decommissioned.contains_key(&NodeId(0)), "A left");
        let reads = sim.repair_reads();
        sim.run_until(Instant::from_secs(125));
        assert!(!reads.is_empty(), "no repair read was sent");
        for r in reads {
            let done = sim.completion(r).expect("the repair read completed");
            assert!(matches!(done.result, Some(Ok(Reply::Read { .. }))), "{done:?}");
        }
    }

    #[test]
    fn a_held_link_delivers_late_instead_of_dropping() {
        let mut sim = three_nodes(2);
        let (a, b) = (NodeId(0), NodeId(1));
        sim.run_until(Instant::from_secs(5));
        sim.hold(network::Hold {
            from: a,
            to: b,
            both_directions: false,
            kinds: Some(vec![crate::message::MessageKind::Mutation]),
            until: Instant::from_millis(6_500),
        });
        let w = sim.client_op(a, OpFunction::Write, "k", Some("v"), ConsistencyLevel::All, None);
        let w = w.unwrap();
        sim.run_until(Instant::from_millis(6_400));
        assert!(sim.completion(w).is_none(), "B acknowledged a mutation it cannot have received");
        let dropped = sim.stats().dropped;
        sim.run_until(Instant::from_secs(7));
        let done = sim.completion(w).expect("released after the hold");
        assert!(matches!(done.result, Some(Ok(Reply::Written { .. }))), "{done:?}");
        assert_eq!(sim.stats().dropped, dropped, "a hold drops nothing");
    }

    #[test]
    fn a_crash_after_an_unsynced_ack_loses_the_write_only_without_sync() {
        // The negative control of the driver's sync: the same write at ONE, acknowledged, then
        // every replica crashes. With sync before release the value survives the restart; a
        // driver that releases acknowledgements unsynced loses it.
        for sync in [true, false] {
            let mut sim = three_nodes(4);
            sim.set_sync_before_release(sync);
            sim.run_until(Instant::from_secs(5));
            let w = sim
                .client_op(
                    NodeId(0),
                    OpFunction::Write,
                    "k",
                    Some("v"),
                    ConsistencyLevel::All,
                    None,
                )
                .unwrap();
            sim.run_until(Instant::from_secs(6));
            assert!(matches!(
                sim.completion(w).and_then(|c| c.result.clone()),
                Some(Ok(Reply::Written { .. }))
            ));
            for i in 0..3 {
                sim.crash(NodeId(i)).unwrap();
            }
            for i in 0..3 {
                sim.restart(NodeId(i)).unwrap();
            }
            let kept = !sim.durable_state("k").is_empty();
            assert_eq!(kept, sync, "sync before release = {sync}, value kept = {kept}");
        }
    }

    #[test]
    fn same_seed_same_trace_hash() {
        let a = reference_trace_hash(7);
        let b = reference_trace_hash(7);
        let c = reference_trace_hash(8);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
