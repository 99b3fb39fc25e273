//! The `Node` facade: one replica and coordinator of the cluster, as a sans-IO state machine.

mod barrier;
mod client;
mod fencing;
mod join;
mod leave;
mod lifecycle;
mod repair;
mod transfer;

pub use barrier::RangeLocks;
pub use client::Plan;
pub use lifecycle::{AdminError, JoinPhase, JoinRequest, Lifecycle, TopologyCache};

use crate::alloc::Allocation;
use crate::coordinator::{ReadOp, WriteOp};
pub use crate::coordinator::{Reply, RequestError};
use crate::detector::{DEFAULT_PHI_THRESHOLD, PhiDetector};
use crate::gossip::{Gossiper, StateKey, Status};
use crate::id::{NodeId, RequestId};
use crate::membership::{ClusterView, JoinStrategy};
use crate::message::{Message, RejectReason, Rejectable, Transmit};
use crate::storage::{Storage, StorageError};
use crate::streaming::{OutStream, StreamPurpose};
use crate::time::Instant;
use crate::token::{Token, TokenRange};
use crate::topology::Topology;
use crate::version::{ConflictMode, Siblings, Version};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

/// Tunables of a node. Defaults follow Cassandra 4.x where Cassandra has the setting.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// How concurrent writes are resolved.
    pub conflict_mode: ConflictMode,
    /// Coordinator wait for write acks (Cassandra `write_request_timeout`: 2 s).
    #[serde(with = "humantime_serde")]
    pub write_timeout: Duration,
    /// Coordinator wait for read replies (Cassandra `read_request_timeout`: 5 s).
    #[serde(with = "humantime_serde")]
    pub read_timeout: Duration,
    /// Heartbeat period; `None` disables failure detection (every peer presumed up).
    #[serde(with = "humantime_serde")]
    pub heartbeat_interval: Option<Duration>,
    /// Phi conviction threshold (Cassandra `phi_convict_threshold`: 8).
    pub phi_threshold: f64,
    /// Whether coordinators store hints at all (Cassandra `hinted_handoff_enabled`).
    pub hinted_handoff: bool,
    /// No hints are stored for a target down longer than this (Cassandra
    /// `max_hint_window`: 3 h), measured from when it was convicted.
    #[serde(with = "humantime_serde")]
    pub max_hint_window: Duration,
    /// Period of hint replay (Cassandra: 10 s).
    #[serde(with = "humantime_serde")]
    pub hint_replay_interval: Duration,
    /// Hints sent per target per replay round.
    pub hint_batch: usize,
    /// Tombstone grace period; hints older than this expire (Cassandra `gc_grace_seconds`: 10 days).
    #[serde(with = "humantime_serde")]
    pub gc_grace: Duration,
    /// Largest key accepted, in bytes (Cassandra: 64 KiB).
    pub max_key_bytes: usize,
    /// Largest value accepted, in bytes.
    pub max_value_bytes: usize,
    /// The cluster identity: peers announcing another one are refused on every path.
    pub cluster_name: String,
    /// Seed nodes (gossip contact points; seeds do not bootstrap).
    pub seeds: Vec<NodeId>,
    /// How nodes join (and how coordinators place writes during a join).
    pub join_strategy: JoinStrategy,
    /// Cassandra's RING_DELAY: how long `pending-ranges` (and every decommission outside
    /// `staged`) waits for its announcement to spread before streaming.
    #[serde(with = "humantime_serde")]
    pub ring_delay: Duration,
    /// Outbound streaming throughput per node in bytes per second (Cassandra
    /// `stream_throughput_outbound`: 24 MiB/s); `None` streams unthrottled.
    pub stream_throughput: Option<u64>,
    /// Bytes per streaming chunk.
    pub stream_chunk_bytes: usize,
    /// Tokens a joining node allocates when none are given.
    pub num_tokens: usize,
    /// How a joining node allocates its tokens.
    pub allocation: Allocation,
    /// Seed of the node's own random choices (gossip peers, token allocation).
    pub rng_seed: u64,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            conflict_mode: ConflictMode::VectorClock,
            write_timeout: Duration::from_secs(2),
            read_timeout: Duration::from_secs(5),
            heartbeat_interval: Some(Duration::from_secs(1)),
            phi_threshold: DEFAULT_PHI_THRESHOLD,
            hinted_handoff: true,
            max_hint_window: Duration::from_secs(3 * 3600),
            hint_replay_interval: Duration::from_secs(10),
            hint_batch: 128,
            gc_grace: Duration::from_secs(10 * 24 * 3600),
            max_key_bytes: 64 * 1024,
            max_value_bytes: 1024 * 1024,
            cluster_name: "ringside".into(),
            seeds: Vec::new(),
            join_strategy: JoinStrategy::Staged,
            ring_delay: Duration::from_secs(30),
            stream_throughput: Some(24 * 1024 * 1024),
            stream_chunk_bytes: 64 * 1024,
            num_tokens: 16,
            allocation: Allocation::Balanced,
            rng_seed: 0,
        }
    }
}

/// A request the node refused before starting it: the input itself is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRequest {
    /// The key is empty.
    #[error("empty key: keys must be 1 to {max} bytes")]
    EmptyKey {
        /// Largest key accepted.
        max: usize,
    },
    /// The key is too long.
    #[error("key of {len} bytes exceeds the limit of {max} bytes")]
    KeyTooLarge {
        /// Key length.
        len: usize,
        /// Largest key accepted.
        max: usize,
    },
    /// The value is too long.
    #[error("value of {len} bytes exceeds the limit of {max} bytes")]
    ValueTooLarge {
        /// Value length.
        len: usize,
        /// Largest value accepted.
        max: usize,
    },
    /// `ANY` is only meaningful for writes (Cassandra rejects it for reads too).
    #[error("consistency level ANY is only supported for writes; read at ONE or higher")]
    AnyForRead,
    /// The context is of the other conflict mode.
    #[error("causal context does not match the cluster's conflict mode ({0:?})")]
    ContextMismatch(ConflictMode),
    /// A counter of the context is beyond any counter a node can have minted: the context was
    /// not returned by a read (a node's counters never come near this bound).
    #[error(
        "causal context entry {node}:{counter} exceeds the largest counter a node mints ({max}); send the context a read returned"
    )]
    ContextCounterTooLarge {
        /// The actor of the entry.
        node: NodeId,
        /// Its counter.
        counter: u64,
        /// The largest counter accepted.
        max: u64,
    },
    /// The node stopped after a storage failure.
    #[error("node stopped after a storage failure")]
    Stopped,
    /// The node is not serving clients in its current state.
    #[error(
        "node is {state}: it coordinates requests only when it is a NORMAL member; send the request to a NORMAL node"
    )]
    NotServing {
        /// Its state, e.g. "joining (BOOT)".
        state: String,
    },
    /// The node restarted and has not caught up on the topology yet.
    #[error(
        "node restarted and is catching up on the cluster topology; retry in a moment or use another node"
    )]
    CatchingUp,
}

/// Something that happened inside a node, for traces, views and tests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum NodeTrace {
    /// A hint was stored for `target`.
    HintStored {
        /// Replica the write is for.
        target: NodeId,
        /// Hint id.
        id: u64,
        /// The key, as text (keys in traces are shown, not parsed).
        key: String,
    },
    /// No hint was stored: the target has been down longer than the hint window.
    HintWindowExceeded {
        /// Replica the write was for.
        target: NodeId,
        /// The key whose write no replica will replay to the target.
        key: String,
    },
    /// A hint was acknowledged by its target and removed.
    HintDelivered {
        /// The replica that applied the hint.
        target: NodeId,
        /// Hint id.
        id: u64,
    },
    /// A hint outlived the grace period and was dropped.
    HintExpired {
        /// The replica that never acknowledged the hint in time.
        target: NodeId,
        /// Hint id.
        id: u64,
    },
    /// A stale replica was sent the merged versions after a read.
    ReadRepair {
        /// Stale replica.
        replica: NodeId,
        /// The key whose replicas disagreed.
        key: String,
    },
    /// The failure detector convicted a peer.
    PeerDown {
        /// The peer whose phi crossed the threshold.
        peer: NodeId,
    },
    /// A convicted peer was heard from again.
    PeerUp {
        /// The peer heard from again (gossip or a message).
        peer: NodeId,
    },
    /// This node announced a new lifecycle status.
    StatusChanged {
        /// The status.
        status: Status,
    },
    /// This node learned that a member's status changed.
    MemberChanged {
        /// The member.
        member: NodeId,
        /// Its new status.
        status: Status,
    },
    /// Every live member acknowledged this node's topology change.
    BarrierComplete {
        /// The status acknowledged.
        status: Status,
        /// Members that acknowledged.
        acked: usize,
    },
    /// A stream of one range started (on the receiver of the data).
    StreamStarted {
        /// The other end.
        peer: NodeId,
        /// The range.
        range: TokenRange,
        /// What the stream is for: a join, a decommission or a repair.
        purpose: StreamPurpose,
    },
    /// A range finished streaming (on the receiver of the data).
    RangeStreamed {
        /// The other end.
        peer: NodeId,
        /// The range.
        range: TokenRange,
        /// What the stream was for: a join, a decommission or a repair.
        purpose: StreamPurpose,
        /// Keys received so far by this movement (a join: all its ranges since it started or
        /// resumed; otherwise this range's last chunk).
        keys: u64,
        /// Bytes received, counted like `keys`.
        bytes: u64,
    },
    /// This node's join finished: it is NORMAL and owns its ranges.
    JoinCompleted {
        /// Keys streamed in.
        keys: u64,
        /// Bytes streamed in.
        bytes: u64,
    },
    /// This node's join stopped; the reason says what to do.
    JoinFailed {
        /// Why, and what to do.
        reason: String,
    },
    /// This node left the cluster (decommission finished).
    Decommissioned,
    /// This node's decommission stopped; the reason says what to do.
    DecommissionFailed {
        /// Why, and what to do.
        reason: String,
    },
    /// Cleanup removed data this node no longer replicates (ghost data).
    Cleanup {
        /// Keys removed.
        keys: u64,
        /// Bytes removed.
        bytes: u64,
    },
    /// A Merkle comparison with a peer finished.
    RepairCompared {
        /// The peer.
        peer: NodeId,
        /// The range compared.
        range: TokenRange,
        /// Differing leaf ranges.
        differing: u64,
    },
    /// A repair run finished: every comparison answered (or given up) and every differing
    /// range streamed both ways.
    RepairCompleted {
        /// What it did.
        report: RepairReport,
    },
    /// A request was refused as planned under an older placement epoch, or a mint asked of a
    /// node that does not mint the key.
    Fenced {
        /// The sender of the request.
        from: NodeId,
        /// The request.
        request: Rejectable,
        /// This node's placement epoch for it.
        epoch: u64,
        /// Why it was refused (a stale epoch, a node not serving, …).
        reason: RejectReason,
    },
    /// A message was refused.
    Refused {
        /// Its sender.
        from: NodeId,
        /// The refusal as the sender will read it (cluster mismatch, unknown sender, …).
        reason: String,
    },
}

/// An output of the node other than a message.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum Event {
    /// The outcome of a client request.
    Reply {
        /// The request.
        request: RequestId,
        /// Its outcome.
        result: Result<Reply, RequestError>,
    },
    /// A traceable internal event.
    Trace(NodeTrace),
    /// Storage failed: the node stopped and must be restarted by its operator.
    Fatal(StorageError),
}

/// Counters a node keeps about itself (volatile).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStats {
    /// Writes coordinated.
    pub writes: u64,
    /// Reads coordinated.
    pub reads: u64,
    /// Read repairs sent.
    pub read_repairs: u64,
    /// Hints stored.
    pub hints_stored: u64,
    /// Hints delivered.
    pub hints_delivered: u64,
    /// Hints expired.
    pub hints_expired: u64,
    /// Writes refused with `Unavailable`.
    pub unavailable: u64,
    /// Requests timed out.
    pub timeouts: u64,
    /// Acknowledgements demanded beyond the level because of pending replicas (Cassandra #833).
    pub extra_acks: u64,
    /// Keys received by streaming.
    pub keys_streamed_in: u64,
    /// Bytes received by streaming.
    pub bytes_streamed_in: u64,
    /// Bytes sent by streaming.
    pub bytes_streamed_out: u64,
    /// Messages refused (unknown peer or foreign cluster).
    pub refused: u64,
}

/// Mints remembered for repeated Mint requests.
const MINTED_MEMORY: usize = 4096;

/// Timers of a node: an enum plus a table, as in quinn-proto.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Gossip,
    HintReplay,
    Request(RequestId),
    /// A write still waiting for its version asks the next live natural replica to mint it.
    MintRetry(RequestId),
    /// Lifecycle steps that wait for time: RING_DELAY, throttled stream chunks.
    Lifecycle,
    /// A repair run re-sends what was not answered and checks whether it is complete.
    Repair,
}

/// What a completed repair run did, as `nodetool repair` reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairReport {
    /// Range comparisons answered.
    pub compared: u64,
    /// Comparisons given up after every retry (the peer never answered).
    pub unanswered: u64,
    /// Leaf ranges that differed, each streamed both ways.
    pub differing: u64,
    /// Keys this node received in the differing ranges.
    pub keys_received: u64,
    /// Of those, keys that changed a version here: the rest were streamed for nothing.
    pub keys_changed: u64,
    /// Bytes streamed both ways.
    pub bytes_streamed: u64,
}

impl RepairReport {
    /// Keys received per key that changed something (1.0 is no over-streaming; a Merkle leaf
    /// covers many keys, so one differing key brings its whole leaf).
    pub fn over_streaming(&self) -> f64 {
        self.keys_received as f64 / self.keys_changed.max(1) as f64
    }
}

/// Monotonic counters that survive restarts without a write per use: blocks are reserved in
/// storage ahead of use, so after a crash numbering resumes past anything handed out.
#[derive(Clone, Debug)]
struct DurableCounter {
    name: &'static str,
    next: u64,
    reserved: u64,
}

const COUNTER_BLOCK: u64 = 1024;

impl DurableCounter {
    fn load(name: &'static str, storage: &dyn Storage) -> Result<Self, StorageError> {
        let reserved = storage
            .get_meta(name)?
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
            .unwrap_or(0);
        Ok(DurableCounter { name, next: reserved.max(1), reserved })
    }

    fn next(&mut self, storage: &mut dyn Storage) -> Result<u64, StorageError> {
        self.claim(0, storage)
    }

    /// Hands out a number at least `at_least` and above every number handed out before.
    fn claim(&mut self, at_least: u64, storage: &mut dyn Storage) -> Result<u64, StorageError> {
        let n = self.next.max(at_least);
        if n >= self.reserved {
            self.reserved = n.saturating_add(COUNTER_BLOCK);
            storage.put_meta(self.name, &self.reserved.to_le_bytes())?;
        }
        self.next = n.saturating_add(1);
        Ok(n)
    }
}

/// One node of the cluster: a replica of the ranges the ring gives it and a coordinator of the
/// client requests sent to it.
///
/// # Calling contract
/// `Node` performs no I/O and never reads a clock; its driver (the simulator, the browser, or the
/// native node's driver task) owns it and is the only caller.
///
/// * **Inputs** — [`Node::handle_message`] for a message from a peer, [`Node::handle_timeout`] when
///   the instant last returned by [`Node::poll_timeout`] has passed (spurious or late calls are
///   harmless), and the client commands [`Node::put`], [`Node::delete`] and [`Node::get`], which
///   return a [`RequestId`] whose outcome arrives later as [`Event::Reply`]. Every input takes
///   `now`, which must never go backwards.
/// * **Outputs** — after *every* input, drain [`Node::poll_transmit`] and [`Node::poll_event`]
///   until they return `None`, then ask [`Node::poll_timeout`] for the next wake-up
///   (single-mutation invariant: never feed an input while outputs are pending).
/// * **Durability** — before releasing the transmits and events of a batch of inputs, the driver
///   calls `Storage::sync` (see [`crate::storage`]); that is what makes an acknowledgement mean
///   "durable".
///
/// A crash is modelled by dropping the `Node` and keeping its storage; [`Node::new`] on that
/// storage restarts it with a higher generation, with all volatile state (in-flight requests,
/// failure-detector windows) lost.
#[derive(Clone, Debug)]
pub struct Node<S: Storage> {
    id: NodeId,
    config: NodeConfig,
    view: ClusterView,
    topology: Option<Topology>,
    topology_cache: TopologyCache,
    lifecycle: Lifecycle,
    gossiper: Gossiper,
    barrier: Option<barrier::Barrier>,
    /// The members this node's movement changes (see `Barrier::involved`).
    movement_involved: BTreeSet<NodeId>,
    catching_up: bool,
    out_streams: BTreeMap<(NodeId, u64), OutStream>,
    next_session: u64,
    repairs: BTreeMap<u64, repair::RepairTask>,
    /// The repair run in progress, if any, and the last one completed.
    repair_run: Option<repair::RepairRun>,
    last_repair: Option<RepairReport>,
    handoffs: BTreeMap<u64, leave::Handoff>,
    /// Slow gossip (a fault): membership changes learned by gossip are applied only then.
    view_delay: Option<Instant>,
    deferred_members: BTreeSet<NodeId>,
    /// Outbound streaming throttle, node-wide: no chunk leaves before this.
    stream_throttle: Instant,
    /// Whether it coordinates client requests now (`check_serving` is Ok), kept up to date
    /// because drivers ask for every request they route.
    serving: bool,
    /// Members when this node started: presumed alive until the detector says otherwise.
    presumed_alive: BTreeSet<NodeId>,
    /// Peers that answered an echo: their heartbeats count as arrivals.
    echoed: BTreeSet<NodeId>,
    /// When an echo was last sent to a peer that has not answered yet.
    echo_sent: BTreeMap<NodeId, Instant>,
    rng: rand_chacha::ChaCha8Rng,
    storage: S,
    generation: u64,
    detector: PhiDetector,
    timers: BTreeSet<(Instant, Timer)>,
    next_request: u64,
    writes: BTreeMap<RequestId, WriteOp>,
    reads: BTreeMap<RequestId, ReadOp>,
    hint_ids: DurableCounter,
    lww_counter: DurableCounter,
    /// Node-wide floor of the dot counters this node mints: never handed out twice, even after
    /// a tombstone holding the key's last dot was purged or the disk was wiped (it also starts
    /// at the clock, in µs). Per-key counters alone restarted below a purged dot.
    dot_counter: DurableCounter,
    /// Versions minted for remote coordinators, by (coordinator, operation): a repeated Mint
    /// gets the same version back (volatile; bounded by `MINTED_MEMORY`).
    minted: BTreeMap<(NodeId, u64), (Version, std::sync::Arc<Siblings>)>,
    /// Barriers applied but not acknowledged yet: the requests in flight when each arrived must
    /// finish first (Scylla's barrier_and_drain).
    pending_barrier_acks: Vec<barrier::PendingBarrierAck>,
    /// Range locks this node granted: the mover and the epoch of its movement (it acknowledged
    /// that movement's first barrier and refuses overlapping ones until it ends).
    lock_granted: BTreeMap<NodeId, u64>,
    /// Per incoming stream session, the last chunk applied: a chunk sent again is acknowledged
    /// without being counted twice.
    stream_seen: BTreeMap<(NodeId, u64), u64>,
    /// The join stream session whose source accepted the request (or sent data), if the
    /// current one: until then a lost request is asked again with backoff;
    /// `stream_request_attempts` counts the asks. One session, not a set: the streams this node
    /// serves or receives for others never need it, so nothing accumulates.
    stream_accepted: Option<u64>,
    stream_request_attempts: u32,
    hints_in_flight: BTreeMap<u64, (Instant, NodeId)>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    stats: NodeStats,
    stopped: bool,
}

const GENERATION_KEY: &str = "generation";

/// The largest dot counter a client context (or a peer's version) may carry. Counters grow by
/// one per write per key and node (from the clock in µs at most), so no real one comes near
/// it; refusing larger ones keeps every `+ 1` on a counter from overflowing.
pub const MAX_CONTEXT_COUNTER: u64 = crate::message::MAX_COUNTER;

impl<S: Storage> Node<S> {
    /// Starts (or restarts) a node on `storage`. The generation stored there is incremented.
    ///
    /// `view` is what the node knows of the cluster when its storage holds nothing better: the
    /// formed cluster's members for a node of the initial cluster, [`ClusterView::empty`] for a
    /// node about to [`Node::join`]. On restart the view persisted in storage wins, and so does
    /// the persisted lifecycle: a node restarted in the middle of a join waits for the operator
    /// to resume it ([`JoinRequest::resume`]).
    pub fn new(
        id: NodeId,
        config: NodeConfig,
        view: ClusterView,
        mut storage: S,
        now: Instant,
    ) -> Result<Self, StorageError> {
        use rand::SeedableRng;
        let generation = storage
            .get_meta(GENERATION_KEY)?
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
            .unwrap_or(0)
            + 1;
        storage.put_meta(GENERATION_KEY, &generation.to_le_bytes())?;
        let hint_ids = DurableCounter::load("hint-id", &storage)?;
        let lww_counter = DurableCounter::load("lww-counter", &storage)?;
        let mut dot_counter = DurableCounter::load("dot-counter", &storage)?;
        dot_counter.next = dot_counter.next.max(now.as_micros());
        let view = match storage.get_meta(lifecycle::VIEW_KEY)? {
            Some(bytes) => ClusterView::decode(&bytes)
                .ok_or_else(|| StorageError("persisted cluster view is corrupt".into()))?,
            None => view,
        };
        let encoded_view = view.encode();
        storage.put_meta(lifecycle::VIEW_KEY, &encoded_view)?;
        let lifecycle = lifecycle::load(&storage, &view, id)?;
        storage.sync()?;
        let mut timers = BTreeSet::new();
        if config.heartbeat_interval.is_some() {
            // Gossip immediately so peers learn of a restart at once.
            timers.insert((now, Timer::Gossip));
        }
        timers.insert((now + config.hint_replay_interval, Timer::HintReplay));
        let mut gossiper = Gossiper::new(
            id,
            config.cluster_name.clone(),
            config.seeds.clone(),
            generation,
            config.rng_seed ^ (u64::from(id.0) << 32) ^ generation,
        );
        for (node, member) in &view.members {
            gossiper.add_saved(*node, member);
        }
        for seed in &config.seeds {
            if *seed != id {
                gossiper.add_known(*seed);
            }
        }
        if let Some(me) = view.member(id) {
            gossiper.set_tokens(&me.tokens);
            gossiper.set_status(me.status, me.epoch);
            if let Some(rack) = &me.rack {
                gossiper.set_local(crate::gossip::StateKey::Rack, rack.clone());
            }
        }
        let rng = rand_chacha::ChaCha8Rng::seed_from_u64(
            config.rng_seed ^ 0x6a6f_696e ^ (u64::from(id.0) << 20) ^ generation,
        );
        // A restarted node of a fenced cluster may have missed a barrier while it was down.
        let catching_up = generation > 1
            && config.join_strategy.uses_barriers()
            && config.heartbeat_interval.is_some()
            && view.live_members().any(|m| m != id);
        let presumed_alive: BTreeSet<NodeId> = view.live_members().collect();
        let mut node = Node {
            id,
            detector: PhiDetector::new(config.phi_threshold),
            view,
            topology: None,
            topology_cache: TopologyCache::default(),
            lifecycle,
            gossiper,
            barrier: None,
            movement_involved: BTreeSet::new(),
            catching_up,
            out_streams: BTreeMap::new(),
            next_session: 0,
            repairs: BTreeMap::new(),
            repair_run: None,
            last_repair: None,
            handoffs: BTreeMap::new(),
            view_delay: None,
            deferred_members: BTreeSet::new(),
            stream_throttle: now,
            serving: false,
            presumed_alive: BTreeSet::new(),
            echoed: BTreeSet::new(),
            echo_sent: BTreeMap::new(),
            rng,
            config,
            storage,
            generation,
            timers,
            next_request: 0,
            writes: BTreeMap::new(),
            reads: BTreeMap::new(),
            hint_ids,
            lww_counter,
            dot_counter,
            pending_barrier_acks: Vec::new(),
            lock_granted: BTreeMap::new(),
            stream_seen: BTreeMap::new(),
            stream_accepted: None,
            stream_request_attempts: 0,
            minted: BTreeMap::new(),
            hints_in_flight: BTreeMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: NodeStats::default(),
            stopped: false,
        };
        if node.config.heartbeat_interval.is_some() {
            // A peer presumed alive is judged from now on like one just heard from: if it never
            // speaks it is convicted after the usual silence (a peer that died while this node
            // was down must not stay "alive" forever).
            for peer in &presumed_alive {
                if *peer != id {
                    node.detector.seed(now, *peer);
                }
            }
        }
        node.presumed_alive = presumed_alive;
        node.recompute_topology_from(&encoded_view);
        if node.catching_up {
            node.request_view();
        }
        Ok(node)
    }

    /// Shares a topology cache with other nodes of the same process (the simulator), so nodes
    /// with the same view share one ring instead of building one each.
    pub fn with_topology_cache(mut self, cache: TopologyCache) -> Self {
        self.topology_cache = cache;
        self.recompute_topology();
        self
    }

    /// Sets one of this node's own gossip application states that the engine does not manage
    /// itself: the native driver publishes [`StateKey::Address`] and [`StateKey::Load`].
    /// Lifecycle states (status, tokens, cluster identity) are refused: they change only through
    /// the lifecycle.
    pub fn set_gossip_state(&mut self, key: StateKey, value: String) {
        if matches!(key, StateKey::Address | StateKey::Load | StateKey::Rack | StateKey::HostId)
            && self.gossiper.local().states.get(&key).is_none_or(|v| v.value != value)
        {
            self.gossiper.set_local(key, value);
        }
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Generation of this incarnation (increases at every restart).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The node's storage (read-only, for views and checks).
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// The node's storage, for the driver's `sync` calls.
    pub fn storage_mut(&mut self) -> &mut S {
        &mut self.storage
    }

    /// Gives the storage back (a crash in the simulator).
    pub fn into_storage(self) -> S {
        self.storage
    }

    /// Current placement, as this node's view implies; `None` before it knows any member.
    pub fn topology(&self) -> Option<&Topology> {
        self.topology.as_ref()
    }

    /// What this node believes about every member.
    pub fn view(&self) -> &ClusterView {
        &self.view
    }

    /// This node's own lifecycle (joining, normal, leaving…).
    pub fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    /// The gossiper (read-only, for views).
    pub fn gossiper(&self) -> &Gossiper {
        &self.gossiper
    }

    /// The configuration this node was started with.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// Counters of what this node did since it started (messages, repairs, hints).
    pub fn stats(&self) -> &NodeStats {
        &self.stats
    }

    /// Whether this node currently believes `peer` is alive.
    ///
    /// A peer heard from is judged by the phi detector. A peer never heard from is presumed
    /// alive only if it was a member when this node started (a formed cluster starts serving at
    /// once); a node that joins learns peers by gossip and believes one alive only once its
    /// heartbeat advances, so a peer that is down when it joins is never taken for alive.
    pub fn is_alive(&self, peer: NodeId) -> bool {
        peer == self.id
            || (self.detector.is_alive(peer)
                && (self.detector.heard_from(peer) || self.presumed_alive.contains(&peer)))
    }

    /// Phi of `peer` at `now`.
    pub fn phi(&self, now: Instant, peer: NodeId) -> f64 {
        self.detector.phi(now, peer)
    }

    /// Requests in flight (writes, reads).
    pub fn in_flight(&self) -> (usize, usize) {
        (self.writes.len(), self.reads.len())
    }

    /// Hints stored on this node, per target.
    pub fn hints_by_target(&self) -> BTreeMap<NodeId, usize> {
        let mut out = BTreeMap::new();
        for h in self.storage.hints().unwrap_or_default() {
            *out.entry(h.target).or_insert(0) += 1;
        }
        out
    }

    /// Next outgoing message.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Node::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.stopped {
            return None;
        }
        self.timers.first().map(|(t, _)| *t)
    }

    fn send(&mut self, to: NodeId, message: Message) {
        self.transmits.push_back(Transmit { to, message });
    }

    fn trace(&mut self, t: NodeTrace) {
        self.events.push_back(Event::Trace(t));
    }

    fn fatal(&mut self, e: StorageError) {
        if !self.stopped {
            self.stopped = true;
            self.serving = false;
            self.timers.clear();
            self.events.push_back(Event::Fatal(e));
        }
    }

    fn new_request(&mut self) -> RequestId {
        self.next_request += 1;
        // The generation in the high bits keeps ids of a restarted node distinct from replies
        // still in flight to its previous incarnation.
        RequestId((self.generation << 40) | self.next_request)
    }

    fn validate_key(&self, key: &[u8]) -> Result<(), InvalidRequest> {
        let max = self.config.max_key_bytes;
        if key.is_empty() {
            return Err(InvalidRequest::EmptyKey { max });
        }
        if key.len() > max {
            return Err(InvalidRequest::KeyTooLarge { len: key.len(), max });
        }
        Ok(())
    }

    // ---------------------------------------------------------------------------------------------
    // Replica side (minting and fencing: fencing.rs)
    // ---------------------------------------------------------------------------------------------

    fn local_read(
        &mut self,
        now: Instant,
        token: Token,
        key: &[u8],
    ) -> Result<Siblings, StorageError> {
        let mut value = self.storage.get(token, key)?.unwrap_or_default();
        let horizon = now.as_micros().saturating_sub(self.config.gc_grace.as_micros() as u64);
        if value.purge_tombstones(horizon) {
            self.storage.put(token, key, value.clone())?;
        }
        Ok(value)
    }

    /// Merges `incoming` into the stored versions; returns whether anything changed.
    fn merge_local(
        &mut self,
        token: Token,
        key: &[u8],
        incoming: &Siblings,
    ) -> Result<bool, StorageError> {
        self.storage.merge(token, key, incoming, self.config.conflict_mode)
    }

    /// Feeds a message from `from`.
    pub fn handle_message(&mut self, now: Instant, from: NodeId, message: Message) {
        if self.stopped {
            return;
        }
        // A version no node could have minted (a corrupt or hostile peer) is refused before it
        // reaches storage: a counter at the top would make the next dot overflow or repeat.
        if let Err(e) = message.check_counters() {
            return self.refuse(from, e.to_string());
        }
        // Gossip and barriers carry the sender's cluster identity and are checked on it instead
        // (a barrier may come from a joiner no gossip has announced yet).
        if !matches!(
            message,
            Message::Gossip(_) | Message::Barrier { .. } | Message::Echo | Message::Refused { .. }
        ) && !self.admits(from)
        {
            let reason = format!(
                "{from} is not a member of cluster {:?} known to {}; it must join through gossip first",
                self.config.cluster_name, self.id
            );
            self.stats.refused += 1;
            self.trace(NodeTrace::Refused { from, reason: reason.clone() });
            if !matches!(message, Message::Refused { .. }) {
                self.send(from, Message::Refused { reason });
            }
            return;
        }
        let result = match message {
            Message::Gossip(m) => {
                self.on_gossip_message(now, from, *m);
                Ok(())
            }
            Message::Echo => {
                self.send(from, Message::EchoReply);
                Ok(())
            }
            Message::EchoReply => {
                self.on_echo_reply(now, from);
                Ok(())
            }
            Message::Barrier { epoch, states } => {
                self.on_barrier(now, from, epoch, states);
                Ok(())
            }
            Message::BarrierAck { epoch } => {
                self.on_barrier_ack(now, from, epoch);
                Ok(())
            }
            Message::BarrierRefused { epoch, holder, status, holder_epoch } => {
                self.on_barrier_refused(now, from, epoch, holder, status, holder_epoch);
                Ok(())
            }
            Message::ViewRequest => {
                let states = self.gossiper.snapshot();
                self.send(from, Message::ViewReply { states });
                Ok(())
            }
            Message::ViewReply { states } => {
                self.on_view_reply(now, from, states);
                Ok(())
            }
            Message::StreamRequest { session, epoch, range, purpose } => {
                self.on_stream_request(now, from, session, epoch, range, purpose)
            }
            Message::StreamData { session, range, purpose, entries, last, seq } => {
                let chunk = transfer::Chunk { session, range, purpose, entries, last, seq };
                self.on_stream_data(now, from, chunk)
            }
            Message::StreamAck { session, seq } => self.on_stream_ack(now, from, session, seq),
            Message::HandoffHint { hint } => self.on_handoff_hint(now, from, hint),
            Message::HandoffAck { id } => self.on_handoff_ack(now, id),
            Message::MerkleRequest(req) => {
                if self.fence(from, Rejectable::Merkle(req.session), req.epoch, None) {
                    return;
                }
                req.answer(&self.storage).map(|resp| {
                    self.send(from, Message::MerkleResponse(resp));
                })
            }
            Message::MerkleResponse(resp) => self.on_merkle_response(now, from, resp),
            Message::Refused { reason } => {
                self.on_refused(now, from, reason);
                Ok(())
            }
            Message::Mint { op, epoch, token, key, value, context, timestamp } => {
                if let Some((version, siblings)) = self.minted.get(&(from, op)).cloned() {
                    // A repeated Mint (its MintAck was lost or is late): the same version, never
                    // a second one, whatever epoch the repeat carries.
                    self.send(from, Message::MintAck { op, version, siblings });
                    return;
                }
                if self.fence(from, Rejectable::Mint(op), epoch, Some(token)) {
                    return;
                }
                if !self.mints(token) {
                    let mine = self.topology.as_ref().map_or(0, |t| t.epoch_for(token));
                    self.reject(from, Rejectable::Mint(op), mine, RejectReason::NotMintReplica);
                    return;
                }
                self.mint(token, &key, value, context, timestamp).map(|(version, siblings)| {
                    let siblings = std::sync::Arc::new(siblings);
                    if self.minted.len() >= MINTED_MEMORY {
                        self.minted.pop_first();
                    }
                    self.minted.insert((from, op), (version.clone(), siblings.clone()));
                    self.send(from, Message::MintAck { op, version, siblings });
                })
            }
            Message::MintAck { op, version, siblings } => {
                let request = RequestId(op);
                let Some(w) = self.writes.get_mut(&request) else { return };
                let mut stored = Ok(());
                if w.minted(from, version, siblings.clone()) {
                    self.fan_out(now, request);
                } else if w.late_minted(from) {
                    // A second version of this write, minted by a replica the write had moved
                    // on from: replicated like a read repair so the replicas converge.
                    let (token, key) = (w.token, w.key.clone());
                    for target in w.late_targets(from) {
                        let value = (*siblings).clone();
                        if target == self.id {
                            stored = stored.and(self.merge_local(token, &key, &value).map(|_| ()));
                        } else {
                            self.send(target, Message::Repair { token, key: key.clone(), value });
                        }
                    }
                }
                self.progress_write(request);
                stored
            }
            Message::Mutation { op, epoch, token, key, value } => {
                if op != 0 && self.fence(from, Rejectable::Mutation(op), epoch, Some(token)) {
                    return;
                }
                self.merge_local(token, &key, &value).map(|_| {
                    self.send(from, Message::MutationAck { op });
                })
            }
            Message::MutationAck { op } => {
                let request = RequestId(op);
                if self.writes.get_mut(&request).is_some_and(|w| w.acked(from)) {
                    self.progress_write(request);
                }
                Ok(())
            }
            Message::Read { op, epoch, token, key } => {
                if self.fence(from, Rejectable::Read(op), epoch, Some(token)) {
                    return;
                }
                self.local_read(now, token, &key).map(|value| {
                    self.send(from, Message::ReadReply { op, value });
                })
            }
            Message::ReadReply { op, value } => {
                let request = RequestId(op);
                if let Some(r) = self.reads.get_mut(&request) {
                    r.reply(from, value);
                    self.progress_read(request);
                }
                Ok(())
            }
            Message::Repair { token, key, value } => {
                self.merge_local(token, &key, &value).map(|_| ())
            }
            Message::Hint { id, epoch, token, key, value } => {
                if self.fence(from, Rejectable::Hint(id), epoch, Some(token)) {
                    return;
                }
                self.merge_local(token, &key, &value).map(|_| {
                    self.send(from, Message::HintAck { id });
                })
            }
            Message::Rejected { request, epoch, reason, states } => {
                self.on_rejected(now, from, request, epoch, reason, states);
                Ok(())
            }
            Message::HintAck { id } => {
                if self.hints_in_flight.remove(&id).is_some() {
                    match self.storage.remove_hint(id) {
                        Ok(()) => {
                            self.stats.hints_delivered += 1;
                            self.trace(NodeTrace::HintDelivered { target: from, id });
                            // Once a batch is fully acknowledged, send the next one at once
                            // rather than waiting for the next replay period.
                            if !self.hints_in_flight.values().any(|(_, t)| *t == from) {
                                self.replay_hints(now, Some(from));
                            }
                        }
                        Err(e) => self.fatal(e),
                    }
                }
                Ok(())
            }
        };
        if let Err(e) = result {
            self.fatal(e);
        }
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(at, timer)) = self.timers.first() {
            if at > now || self.stopped {
                break;
            }
            self.timers.pop_first();
            match timer {
                Timer::Gossip => self.on_gossip_tick(now),
                Timer::Lifecycle => self.on_lifecycle_tick(now),
                Timer::Repair => self.on_repair_tick(now),
                Timer::HintReplay => self.on_hint_replay(now),
                Timer::MintRetry(request) => {
                    if self.writes.get(&request).is_some_and(|w| w.version.is_none()) {
                        self.ask_mint(now, request);
                    }
                }
                Timer::Request(request) => {
                    if self.writes.contains_key(&request) {
                        self.on_write_deadline(now, request);
                    } else if let Some(r) = self.reads.get_mut(&request) {
                        r.expire();
                        self.progress_read(request);
                    }
                }
            }
        }
    }
}
