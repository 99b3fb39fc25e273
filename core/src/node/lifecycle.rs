//! A node's membership side: gossip, topology barriers and range locks, its own lifecycle
//! (the types, their persistence, the timer that drives them). Same calling contract as the
//! rest of [`Node`]. The movements themselves are in sibling modules: `join` (discovery and the
//! joiner's side), `leave` (decommission, hint hand-over), `transfer` (range streams, both
//! sides) and `repair` (cleanup, Merkle repair).
//!
//! ```text
//! join:   Fresh ─▶ Discovering ─▶ announce BOOT ─▶ wait ─▶ Streaming ─▶ [MID_JOIN ─▶] NORMAL
//!                                                  │ staged: barrier acknowledged by every live node
//!                                                  │ pending-ranges: RING_DELAY
//!                                                  └ others: no wait (immediate announces NORMAL)
//! leave:  NORMAL ─▶ LEAVING ─▶ wait ─▶ stream out ─▶ hand hints over ─▶ LEFT
//! ```
//!
//! Progress that must survive a crash is in storage metadata: the view, the lifecycle, the
//! joiner's tokens and the ranges it finished. A joiner restarted mid-join stays `Interrupted`
//! until the operator resumes it; it then streams only the ranges not finished.

use super::{Node, NodeTrace, Timer};
use crate::gossip::{GossipMessage, StateKey, Status};
use crate::id::NodeId;
use crate::membership::{ClusterView, JoinStrategy, Member};
use crate::message::Message;
use crate::placement::RangeMovement;
use crate::storage::{Storage, StorageError};
use crate::streaming::MovementProgress;
use crate::time::Instant;
use crate::token::{Token, TokenRange};
use crate::topology::Topology;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub(super) const VIEW_KEY: &str = "view";
const LIFECYCLE_KEY: &str = "lifecycle";
pub(super) const JOIN_TOKENS_KEY: &str = "join-tokens";
pub(super) const JOIN_DONE_KEY: &str = "join-done";

/// Resend period of barriers and catch-up requests, and the lifecycle's polling period.
pub(super) const RETRY: Duration = Duration::from_secs(1);
/// How long a join's first barrier waits for a streaming source it has never heard from (or
/// convicted) before the join fails with what to do: a live source answers the barrier, which
/// is resent every RETRY, well within it.
const SOURCE_GRACE: Duration = Duration::from_secs(5);

/// A node's own place in the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Lifecycle {
    /// Not a member: started without a place in the cluster; [`Node::join`] makes it one.
    Fresh,
    /// Joining the ring: discovery, BOOT, streaming, MID_JOIN (or failed, or interrupted).
    Joining(Box<JoinState>),
    /// A member owning its tokens.
    Normal,
    /// Decommissioning: LEAVING, streaming out, handing hints over, MID_LEAVE.
    Leaving(Box<LeaveState>),
    /// Left the cluster.
    Left,
}

impl Lifecycle {
    /// Operator-facing description.
    pub fn describe(&self) -> String {
        match self {
            Lifecycle::Fresh => "not a member (not joined)".into(),
            Lifecycle::Joining(j) => format!("joining ({})", j.phase.describe()),
            Lifecycle::Normal => "normal".into(),
            Lifecycle::Leaving(l) => format!("leaving ({})", l.phase.describe()),
            Lifecycle::Left => "left".into(),
        }
    }
}

/// Where a join or decommission stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "kebab-case")]
pub enum JoinPhase {
    /// Learning the ring from the seeds.
    Discovering {
        /// Since when.
        since: Instant,
    },
    /// Waiting RING_DELAY for an announcement to spread.
    RingDelay {
        /// Until when.
        until: Instant,
        /// The status announced.
        status: Status,
    },
    /// Waiting for every live member to acknowledge a status.
    Barrier {
        /// The status announced.
        status: Status,
    },
    /// Moving data.
    Streaming,
    /// Handing hints over to a live peer (decommission).
    Handoff,
    /// Restarted in the middle: waiting for the operator to resume.
    Interrupted,
    /// Stopped; the reason says what to do.
    Failed {
        /// Why, and what to do.
        reason: String,
    },
}

impl JoinPhase {
    fn describe(&self) -> String {
        match self {
            JoinPhase::Discovering { .. } => "discovering the ring".into(),
            JoinPhase::RingDelay { status, .. } => format!("waiting RING_DELAY after {status}"),
            JoinPhase::Barrier { status } => format!("waiting for every node to see {status}"),
            JoinPhase::Streaming => "streaming".into(),
            JoinPhase::Handoff => "handing hints over".into(),
            JoinPhase::Interrupted => "interrupted: resume to continue".into(),
            JoinPhase::Failed { reason } => format!("failed: {reason}"),
        }
    }
}

/// A join in progress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinState {
    /// Where it stands.
    pub phase: JoinPhase,
    /// Tokens (empty until announced).
    pub tokens: Vec<Token>,
    /// Tokens the operator asked for.
    pub requested: Option<Vec<Token>>,
    /// Stream from another replica when the one losing a range is down.
    pub allow_inconsistent_source: bool,
    /// When the join started.
    pub started: Instant,
    /// Ranges finished (persisted).
    pub done: Vec<TokenRange>,
    /// Ranges left, each with its source.
    pub todo: VecDeque<(TokenRange, NodeId)>,
    /// The range streaming now: session, range, source, last activity.
    pub current: Option<(u64, TokenRange, NodeId, Instant)>,
    /// Ranges and bytes streamed so far.
    pub progress: MovementProgress,
    /// When a seed answered the joiner's request for its whole view (discovery needs one).
    #[serde(default)]
    pub seed_view_at: Option<Instant>,
}

/// A decommission in progress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaveState {
    /// Where it stands.
    pub phase: JoinPhase,
    /// Ranges left to push, each with the node gaining it.
    pub todo: VecDeque<(TokenRange, NodeId)>,
    /// The range being pushed: session, range, gainer.
    pub current: Option<(u64, TokenRange, NodeId)>,
    /// Ranges and bytes streamed out so far.
    pub progress: MovementProgress,
}

/// What the operator asks of a joining node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    /// Tokens to take; allocated (see [`super::NodeConfig::allocation`]) when `None`.
    pub tokens: Option<Vec<Token>>,
    /// When the replica losing a range is down, stream it from another replica instead of
    /// failing (that replica may lack writes only the down one has).
    pub allow_inconsistent_source: bool,
    /// Continue an interrupted or failed join, streaming only the ranges not finished.
    pub resume: bool,
}

/// An operator command the node refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// The node stopped after a storage failure.
    #[error("node stopped after a storage failure; restart it")]
    Stopped,
    /// Already a member.
    #[error("node is already a member ({0}); nothing to join")]
    AlreadyMember(String),
    /// Resume asked but there is nothing to resume.
    #[error("nothing to resume: node is {0}")]
    NothingToResume(String),
    /// A join is in progress and was interrupted: resume it explicitly.
    #[error(
        "a join was interrupted on this node; resume it (join --resume) to stream the ranges not finished"
    )]
    MustResume,
    /// Another node is joining or leaving.
    #[error("{node} is {status}: one range movement at a time; wait until it is NORMAL or gone")]
    MovementInProgress {
        /// The node moving.
        node: NodeId,
        /// Its status.
        status: Status,
    },
    /// Decommission would leave fewer nodes than the replication factor.
    #[error("decommission would leave {remaining} nodes, fewer than RF={rf}; add a node first")]
    TooFewNodes {
        /// Nodes left after the decommission.
        remaining: usize,
        /// Replication factor.
        rf: usize,
    },
    /// The command needs a NORMAL node.
    #[error("node is {0}; this needs a NORMAL member")]
    NotNormal(String),
    /// Cleanup while ranges move: what looks like ghost data may still be streaming out.
    #[error(
        "{node} is {status}: not safe to run cleanup while ranges move (this node may still stream them out or be written as their old owner); run it once the movement is over"
    )]
    CleanupDuringMovement {
        /// The node moving.
        node: NodeId,
        /// Its status.
        status: Status,
    },
    /// The movement has handed reads over: it cannot be reversed, only finished.
    #[error(
        "too late to abort: node is {0} and reads already moved; let it finish (then decommission a joined node)"
    )]
    TooLateToAbort(String),
}

/// Range locks as one node knows them ([`Node::range_locks`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeLocks {
    /// Movements this node granted the range lock (it acknowledged their first barrier and
    /// refuses overlapping movements), with the epoch of the movement.
    pub granted: BTreeMap<NodeId, u64>,
    /// While this node's own movement asks for the lock: the members that refused it, each with
    /// the node whose movement it named as holding an overlapping range.
    pub refused_by: BTreeMap<NodeId, NodeId>,
    /// The epoch of this node's own movement once it holds the range lock (its first barrier
    /// completed) and until the movement ends or gives way, a failed or interrupted one
    /// included: the members keep the lock granted while it stays announced.
    pub holding: Option<u64>,
}

/// A shared memo of topologies by view, so nodes with the same view share one ring.
#[derive(Clone, Default)]
pub struct TopologyCache(Arc<Mutex<BTreeMap<u64, Topology>>>);

impl std::fmt::Debug for TopologyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TopologyCache")
    }
}

impl TopologyCache {
    const CAPACITY: usize = 32;

    /// `encoded` is `view.encode()`, which the caller also persists: encoded once per change.
    fn get_or_compute(
        &self,
        view: &ClusterView,
        encoded: &[u8],
        strategy: JoinStrategy,
    ) -> Result<Option<Topology>, crate::ring::RingError> {
        let key = xxhash_rust::xxh3::xxh3_64(encoded) ^ strategy as u64;
        if let Some(t) = self.0.lock().expect("cache lock").get(&key) {
            return Ok(Some(t.clone()));
        }
        let topology = view.topology(strategy)?;
        if let Some(t) = &topology {
            let mut map = self.0.lock().expect("cache lock");
            if map.len() >= Self::CAPACITY {
                map.pop_first();
            }
            map.insert(key, t.clone());
        }
        Ok(topology)
    }
}

/// A topology barrier waiting for acknowledgements.
#[derive(Clone, Debug)]
pub(super) struct Barrier {
    status: Status,
    epoch: u64,
    waiting: BTreeSet<NodeId>,
    /// Members whose placement the movement changes (the replicas losing ranges, the nodes
    /// gaining them): they must acknowledge even when convicted down, because a partitioned one
    /// would go on serving the old placement. Others convicted down are skipped; they catch up
    /// before they serve again.
    involved: BTreeSet<NodeId>,
    acked: usize,
    acked_by: BTreeSet<NodeId>,
    sent_at: Instant,
    /// When the barrier started.
    started: Instant,
    /// The first barrier of a movement under a fenced strategy (BOOT, LEAVING) takes the range lock: it
    /// needs, besides every live member, a majority of the owners, and a member holding a
    /// conflicting movement refuses it. Two overlapping movements can then never both hold it.
    lock: bool,
    /// The owners (members with tokens, this node excluded) of whom a majority must acknowledge
    /// a locking barrier.
    owners: BTreeSet<NodeId>,
    /// Members that refused the lock, with the movement they named: this node waits for that
    /// movement to finish or give way.
    refused_by: BTreeMap<NodeId, NodeId>,
}

/// A barrier this node applied and will acknowledge once the requests it had in flight then
/// (planned under the older placement) have finished or timed out (Scylla's
/// `barrier_and_drain`).
#[derive(Clone, Debug)]
pub(super) struct PendingBarrierAck {
    pub(super) from: NodeId,
    pub(super) epoch: u64,
    pub(super) waiting: BTreeSet<crate::id::RequestId>,
}

/// The wait before re-sending an unanswered request for the `attempts`-th time: RETRY,
/// doubling, at most 16 s.
pub(super) fn backoff(attempts: u32) -> Duration {
    RETRY * 2u32.pow(attempts.min(4))
}

/// What a node persists of its lifecycle (one byte under `LIFECYCLE_KEY`; the tokens and ranges
/// done of a join are kept beside it). The byte values are the on-disk format: never renumber.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Persisted {
    /// Settled: the persisted view says what it is (normal, left, or not a member yet).
    Settled = 0,
    /// A join under way: resumed as interrupted after a restart.
    Joining = 1,
    /// A decommission under way: resumed as interrupted after a restart.
    Leaving = 2,
    /// Left the cluster.
    Left = 3,
}

impl Persisted {
    fn from_byte(b: u8) -> Option<Persisted> {
        [Persisted::Settled, Persisted::Joining, Persisted::Leaving, Persisted::Left]
            .into_iter()
            .find(|p| *p as u8 == b)
    }
}

/// Loads the persisted lifecycle.
pub(super) fn load<S: Storage>(
    storage: &S,
    view: &ClusterView,
    me: NodeId,
) -> Result<Lifecycle, StorageError> {
    let code = storage.get_meta(LIFECYCLE_KEY)?.and_then(|b| b.first().copied());
    Ok(match code.and_then(Persisted::from_byte) {
        Some(Persisted::Joining) => {
            let tokens = decode_u64s(&storage.get_meta(JOIN_TOKENS_KEY)?.unwrap_or_default());
            let done = decode_u64s(&storage.get_meta(JOIN_DONE_KEY)?.unwrap_or_default())
                .chunks_exact(2)
                .map(|c| TokenRange { start: c[0], end: c[1] })
                .collect();
            Lifecycle::Joining(Box::new(JoinState {
                phase: JoinPhase::Interrupted,
                tokens,
                requested: None,
                allow_inconsistent_source: false,
                started: Instant::ZERO,
                done,
                todo: VecDeque::new(),
                current: None,
                progress: MovementProgress::default(),
                seed_view_at: None,
            }))
        }
        Some(Persisted::Leaving) => Lifecycle::Leaving(Box::new(LeaveState {
            phase: JoinPhase::Interrupted,
            todo: VecDeque::new(),
            current: None,
            progress: MovementProgress::default(),
        })),
        Some(Persisted::Left) => Lifecycle::Left,
        Some(Persisted::Settled) | None => match view.status(me) {
            Some(Status::Normal) => Lifecycle::Normal,
            Some(Status::Left) => Lifecycle::Left,
            _ => Lifecycle::Fresh,
        },
    })
}

/// Why a join cannot stream `m` from its source `s`, and what the operator can do.
pub(super) fn source_down(m: &RangeMovement, s: NodeId) -> String {
    format!(
        "streaming source {s} for {} is down: it is the replica losing that range, the only one guaranteed to hold every acknowledged write. Bring it back and resume the join, or resume with allow_inconsistent_source to stream from {}",
        m.range,
        m.alternative_sources().iter().map(|n| n.to_string()).collect::<Vec<_>>().join(" or ")
    )
}

pub(super) fn encode_u64s(values: impl IntoIterator<Item = u64>) -> Vec<u8> {
    values.into_iter().flat_map(u64::to_le_bytes).collect()
}

fn decode_u64s(bytes: &[u8]) -> Vec<u64> {
    bytes.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))).collect()
}

impl<S: Storage> Node<S> {
    // ---------------------------------------------------------------------------------------------
    // Admission and serving
    // ---------------------------------------------------------------------------------------------

    /// Whether a non-gossip message from `from` is accepted: it must be a member this node knows,
    /// from its view or from gossip that carried our cluster identity.
    pub fn admits(&self, from: NodeId) -> bool {
        from == self.id
            || self.view.members.contains_key(&from)
            || self.gossiper.endpoint(from).is_some_and(|e| {
                e.states
                    .get(&StateKey::ClusterId)
                    .is_some_and(|v| v.value == self.config.cluster_name)
            })
    }

    /// Whether this node coordinates client requests now.
    pub fn accepts_clients(&self) -> bool {
        self.serving
    }

    fn refresh_serving(&mut self) {
        self.serving = self.check_serving().is_ok();
    }

    pub(super) fn check_serving(&self) -> Result<(), super::InvalidRequest> {
        if self.stopped {
            return Err(super::InvalidRequest::Stopped);
        }
        if self.catching_up {
            return Err(super::InvalidRequest::CatchingUp);
        }
        match self.view.status(self.id) {
            Some(Status::Normal | Status::Leaving | Status::MidLeave)
                if self.topology.is_some() =>
            {
                Ok(())
            }
            _ => Err(super::InvalidRequest::NotServing { state: self.lifecycle.describe() }),
        }
    }

    /// The nodetool-style state of this node as it sees itself: UN, UJ, UL.
    pub fn own_status(&self) -> Option<Status> {
        self.view.status(self.id)
    }

    // ---------------------------------------------------------------------------------------------
    // View and topology
    // ---------------------------------------------------------------------------------------------

    pub(super) fn recompute_topology(&mut self) {
        let encoded = self.view.encode();
        self.recompute_topology_from(&encoded);
    }

    pub(super) fn recompute_topology_from(&mut self, encoded: &[u8]) {
        match self.topology_cache.get_or_compute(&self.view, encoded, self.config.join_strategy) {
            Ok(t) => self.topology = t,
            // Cannot happen with tokens that came through the allocator or a validated scenario;
            // keep the previous placement rather than serve from a broken one.
            Err(e) => self.trace(NodeTrace::Refused { from: self.id, reason: format!("{e}") }),
        }
        self.refresh_serving();
    }

    /// After the view changed: persist it and recompute placement, from one encoding.
    fn view_changed(&mut self) {
        let encoded = self.view.encode();
        if let Err(e) = self.storage.put_meta(VIEW_KEY, &encoded) {
            return self.fatal(e);
        }
        self.recompute_topology_from(&encoded);
    }

    /// Sets this node's own status (and tokens) in its view and in gossip.
    pub(super) fn announce(&mut self, status: Status, tokens: &[Token]) {
        let rack = self.view.member(self.id).and_then(|m| m.rack.clone());
        // Every change takes a higher epoch than any this node knows (a Lamport number).
        let epoch = self.view.epoch() + 1;
        self.view.members.insert(self.id, Member { status, tokens: tokens.to_vec(), rack, epoch });
        self.gossiper.set_tokens(tokens);
        self.gossiper.set_status(status, epoch);
        self.view_changed();
        if !self.stopped {
            self.trace(NodeTrace::StatusChanged { status });
        }
    }

    /// A fault for demonstrations: until `until`, membership changes that arrive by gossip are
    /// not applied (heartbeats still are, so the node looks healthy). Barriers and catch-up
    /// replies are explicit pushes and still apply at once.
    pub fn delay_gossip_state(&mut self, until: Instant) {
        self.view_delay = Some(until);
    }

    /// Takes what gossip taught into the view.
    fn absorb_gossip(&mut self, now: Instant) {
        self.absorb(now, false);
    }

    /// Takes what gossip, a barrier or a catch-up reply taught into the view; `forced` for the
    /// explicit pushes, which slow gossip does not delay.
    fn absorb(&mut self, now: Instant, forced: bool) {
        while let Some(peer) = self.gossiper.poll_alive() {
            // A state learned second-hand proves nothing about the peer being alive now: a peer
            // this node did not start with counts only after it answered an echo (Cassandra
            // marks a new endpoint alive only after its echo round trip).
            if !self.presumed_alive.contains(&peer) && !self.echoed.contains(&peer) {
                let due = self
                    .echo_sent
                    .get(&peer)
                    .is_none_or(|t| now.saturating_duration_since(*t) >= RETRY);
                if due {
                    self.echo_sent.insert(peer, now);
                    self.send(peer, Message::Echo);
                }
                continue;
            }
            if let Some(crate::detector::Liveness::Up(peer)) = self.detector.report(now, peer) {
                self.trace(NodeTrace::PeerUp { peer });
            }
        }
        let mut touched = std::mem::take(&mut self.deferred_members);
        while let Some((node, key, _)) = self.gossiper.poll_change() {
            if matches!(key, StateKey::Status | StateKey::Tokens | StateKey::Rack) {
                touched.insert(node);
            }
        }
        if !forced && self.view_delay.is_some_and(|until| now < until) {
            self.deferred_members = touched;
            return;
        }
        let mut changed = false;
        for node in touched {
            if node == self.id {
                continue;
            }
            let Some((status, epoch)) = self.gossiper.status_and_epoch_of(node) else { continue };
            let tokens = self.gossiper.tokens_of(node).unwrap_or_default();
            let rack = self
                .gossiper
                .endpoint(node)
                .and_then(|e| e.states.get(&StateKey::Rack))
                .map(|v| v.value.clone());
            // A member's epochs only grow: a state carrying an older one (a peer's saved state
            // from before a change this node already knows) never moves it back.
            if self.view.members.get(&node).is_some_and(|m| m.epoch > epoch) {
                continue;
            }
            let member = Member { status, tokens, rack, epoch };
            if self.view.members.get(&node) != Some(&member) {
                let old = self.view.members.insert(node, member);
                changed = true;
                if old.map(|m| m.status) != Some(status) {
                    self.trace(NodeTrace::MemberChanged { member: node, status });
                }
            }
        }
        if changed {
            self.view_changed();
        }
    }

    pub(super) fn on_echo_reply(&mut self, now: Instant, from: NodeId) {
        if self.echo_sent.remove(&from).is_some() {
            self.answered(now, from);
        }
    }

    /// `from` answered a request of this node directly (an echo, a barrier): it is alive now,
    /// as surely as after an echo round trip.
    fn answered(&mut self, now: Instant, from: NodeId) {
        self.echoed.insert(from);
        if let Some(crate::detector::Liveness::Up(peer)) = self.detector.report(now, from) {
            self.trace(NodeTrace::PeerUp { peer });
        }
    }

    pub(super) fn request_view(&mut self) {
        let peers: Vec<NodeId> =
            self.view.live_members().filter(|p| *p != self.id && self.is_alive(*p)).collect();
        // Only a node with no other member is caught up by default. One whose peers are all
        // down (or convicted while it restarted) stays catching up until one answers: serving
        // from the view it had before the restart could miss every change made meanwhile.
        if !self.view.live_members().any(|p| p != self.id) {
            self.catching_up = false;
            self.refresh_serving();
        }
        for p in peers {
            self.send(p, Message::ViewRequest);
        }
    }

    /// Applies states pushed by `from` (a barrier or a view reply) at once, slow gossip or not;
    /// refuses them whole when they carry another cluster's identity. Returns whether applied.
    pub(super) fn apply_pushed(
        &mut self,
        now: Instant,
        from: NodeId,
        states: BTreeMap<NodeId, crate::gossip::EndpointState>,
    ) -> bool {
        match self.gossiper.apply_pushed(now, states) {
            Ok(()) => {
                self.absorb(now, true);
                true
            }
            Err(e) => {
                self.refuse(from, e.to_string());
                false
            }
        }
    }

    pub(super) fn on_view_reply(
        &mut self,
        now: Instant,
        from: NodeId,
        states: BTreeMap<NodeId, crate::gossip::EndpointState>,
    ) {
        if !self.apply_pushed(now, from, states) {
            return;
        }
        self.catching_up = false;
        self.refresh_serving();
        if let Lifecycle::Joining(j) = &mut self.lifecycle
            && matches!(j.phase, JoinPhase::Discovering { .. })
            && j.seed_view_at.is_none()
        {
            j.seed_view_at = Some(now);
        }
    }

    pub(super) fn refuse(&mut self, from: NodeId, reason: String) {
        self.stats.refused += 1;
        self.trace(NodeTrace::Refused { from, reason: reason.clone() });
        self.send(from, Message::Refused { reason });
    }

    // ---------------------------------------------------------------------------------------------
    // Gossip
    // ---------------------------------------------------------------------------------------------

    pub(super) fn on_gossip_message(&mut self, now: Instant, from: NodeId, msg: GossipMessage) {
        match self.gossiper.handle(now, from, msg) {
            Ok(replies) => {
                for (to, m) in replies {
                    self.send(to, Message::Gossip(Box::new(m)));
                }
                self.absorb_gossip(now);
            }
            Err(e) => self.refuse(from, e.to_string()),
        }
    }

    pub(super) fn on_gossip_tick(&mut self, now: Instant) {
        let Some(interval) = self.config.heartbeat_interval else { return };
        self.timers.insert((now + interval, Timer::Gossip));
        let live_set: BTreeSet<NodeId> = self
            .gossiper
            .known_nodes()
            .filter(|n| self.is_alive(*n) && self.view.status(*n) != Some(Status::Left))
            .collect();
        let live = |n: NodeId| live_set.contains(&n);
        let out = self.gossiper.tick(now, &live);
        for (to, m) in out {
            self.send(to, Message::Gossip(Box::new(m)));
        }
        for change in self.detector.interpret(now) {
            match change {
                crate::detector::Liveness::Down(peer) => {
                    self.trace(NodeTrace::PeerDown { peer });
                    self.on_peer_down(peer);
                }
                crate::detector::Liveness::Up(peer) => self.trace(NodeTrace::PeerUp { peer }),
            }
        }
        if self.catching_up {
            self.request_view();
        }
        if !self.deferred_members.is_empty() {
            self.absorb_gossip(now);
        }
        self.on_lifecycle_tick(now);
    }

    fn on_peer_down(&mut self, peer: NodeId) {
        self.out_streams.retain(|(to, _), _| *to != peer);
        let reason = match &self.lifecycle {
            Lifecycle::Joining(j) => match (&j.phase, j.current) {
                (JoinPhase::Streaming, Some((_, range, source, _))) if source == peer => {
                    Some(format!(
                        "streaming source {peer} went down while streaming {range} ({} of {} ranges done); restart it and resume the join, or resume with allow_inconsistent_source to stream from another replica",
                        j.progress.ranges_done, j.progress.ranges_total
                    ))
                }
                _ => None,
            },
            Lifecycle::Leaving(l) => match (&l.phase, l.current) {
                (JoinPhase::Streaming, Some((_, range, gainer))) if gainer == peer => {
                    Some(format!(
                        "{peer}, which gains {range}, went down while it was streamed; bring it back and run decommission again"
                    ))
                }
                _ => None,
            },
            _ => None,
        };
        if let Some(reason) = reason {
            self.fail_movement(reason);
        }
    }

    pub(super) fn fail_movement(&mut self, reason: String) {
        match &mut self.lifecycle {
            Lifecycle::Joining(j) => {
                j.phase = JoinPhase::Failed { reason: reason.clone() };
                j.current = None;
                self.trace(NodeTrace::JoinFailed { reason });
            }
            Lifecycle::Leaving(l) => {
                l.phase = JoinPhase::Failed { reason: reason.clone() };
                l.current = None;
                self.trace(NodeTrace::DecommissionFailed { reason });
            }
            _ => {}
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Barriers (staged)
    // ---------------------------------------------------------------------------------------------

    pub(super) fn start_barrier(&mut self, now: Instant, status: Status) {
        let epoch = self.gossiper.local().max_version();
        let involved = self.involved_in_movement();
        let waiting: BTreeSet<NodeId> = self
            .view
            .live_members()
            .filter(|p| *p != self.id && (self.is_alive(*p) || involved.contains(p)))
            .collect();
        self.set_phase(JoinPhase::Barrier { status });
        let lock = self.config.join_strategy.uses_barriers()
            && matches!(status, Status::Boot | Status::Leaving);
        let owners = self
            .view
            .members
            .iter()
            .filter(|(n, m)| {
                **n != self.id
                    && matches!(m.status, Status::Normal | Status::Leaving | Status::MidLeave)
            })
            .map(|(n, _)| *n)
            .collect();
        self.barrier = Some(Barrier {
            status,
            epoch,
            waiting,
            involved,
            acked: 0,
            acked_by: BTreeSet::new(),
            sent_at: now,
            started: now,
            lock,
            owners,
            refused_by: BTreeMap::new(),
        });
        self.send_barrier();
        // Resent every RETRY to members that have not acknowledged (gossip may be off).
        self.schedule_lifecycle(now + RETRY);
        self.check_barrier(now);
    }

    /// The members whose placement this node's movement changes: the replicas losing the ranges
    /// a join gains, or the nodes gaining a leaver's ranges. Kept from the first barrier of the
    /// movement, whose plan the later ones share.
    fn involved_in_movement(&mut self) -> BTreeSet<NodeId> {
        match self.view.movements(self.id) {
            Ok(moves) if !moves.is_empty() => {
                let involved: BTreeSet<NodeId> = moves
                    .iter()
                    .flat_map(|m| [m.source, Some(m.gainer)])
                    .flatten()
                    .filter(|n| *n != self.id)
                    .collect();
                self.movement_involved = involved.clone();
                involved
            }
            _ => self.movement_involved.clone(),
        }
    }

    fn send_barrier(&mut self) {
        let Some(b) = &self.barrier else { return };
        // Everything this node knows, not only its own state: a member that missed earlier
        // changes (skipped while it was down) learns them with this one.
        let states = self.gossiper.snapshot();
        let (epoch, targets): (u64, Vec<NodeId>) = (b.epoch, b.waiting.iter().copied().collect());
        for t in targets {
            self.send(t, Message::Barrier { epoch, states: states.clone() });
        }
    }

    pub(super) fn on_barrier(
        &mut self,
        now: Instant,
        from: NodeId,
        epoch: u64,
        states: BTreeMap<NodeId, crate::gossip::EndpointState>,
    ) {
        if !self.apply_pushed(now, from, states) {
            return;
        }
        if let Some((holder, status, holder_epoch)) = self.lock_conflict(from) {
            self.send(from, Message::BarrierRefused { epoch, holder, status, holder_epoch });
            return;
        }
        // Drain: requests planned before this change must finish (or time out) before the
        // sender may act on the new placement.
        let waiting: BTreeSet<crate::id::RequestId> =
            self.writes.keys().chain(self.reads.keys()).copied().collect();
        if waiting.is_empty() {
            self.send(from, Message::BarrierAck { epoch });
        } else if !self.pending_barrier_acks.iter().any(|p| p.from == from && p.epoch == epoch) {
            self.pending_barrier_acks.push(PendingBarrierAck { from, epoch, waiting });
        }
    }

    /// For the first barrier of `from`'s movement (BOOT, LEAVING) under a fenced strategy: the movement
    /// holding ranges that one would change, unless this node already granted `from` the lock
    /// (a resent barrier). Grants the lock when there is none.
    fn lock_conflict(&mut self, from: NodeId) -> Option<(NodeId, Status, u64)> {
        if !self.config.join_strategy.uses_barriers() {
            return None;
        }
        let view = &self.view;
        self.lock_granted.retain(|n, e| {
            view.member(*n).is_some_and(|m| {
                m.epoch == *e && matches!(m.status, Status::Boot | Status::Leaving)
            })
        });
        let member = self.view.member(from)?;
        if !matches!(member.status, Status::Boot | Status::Leaving) {
            return None;
        }
        let epoch = member.epoch;
        if self.lock_granted.get(&from) == Some(&epoch) {
            return None;
        }
        let moves = self.view.movements(from).unwrap_or_default();
        if let Some(conflict) = self.view.conflicting_movement(from, &moves) {
            return Some(conflict);
        }
        self.lock_granted.insert(from, epoch);
        None
    }

    pub(super) fn on_barrier_ack(&mut self, now: Instant, from: NodeId, epoch: u64) {
        if let Some(b) = &mut self.barrier
            && b.epoch == epoch
            && b.waiting.remove(&from)
        {
            b.acked += 1;
            b.acked_by.insert(from);
            b.refused_by.remove(&from);
            self.answered(now, from);
        }
        self.check_barrier(now);
    }

    /// A member refused this node's movement the range lock, naming the movement that holds it.
    /// Of two overlapping movements the earlier one (lower epoch, then lower node id) goes on:
    /// this one gives way (its placement is reversed and the movement fails with the holder's
    /// name) when the holder is earlier, and otherwise keeps asking until the holder gives way.
    pub(super) fn on_barrier_refused(
        &mut self,
        now: Instant,
        from: NodeId,
        epoch: u64,
        holder: NodeId,
        status: Status,
        holder_epoch: u64,
    ) {
        let Some(b) = &mut self.barrier else { return };
        if b.epoch != epoch || !b.lock {
            return;
        }
        self.answered(now, from);
        let mine = self.view.member(self.id).map_or(0, |m| m.epoch);
        let Some(b) = &mut self.barrier else { return };
        if (holder_epoch, holder) < (mine, self.id) {
            let what = if b.status == Status::Boot { "join" } else { "decommission" };
            self.give_way(format!(
                "{from} refused the range lock: {holder} is {status} over ranges this {what} would change (one movement per range at a time); {what} again when it is NORMAL or gone"
            ));
        } else {
            b.refused_by.insert(from, holder);
        }
    }

    /// Reverses a movement that has not taken its range lock yet: a joiner withdraws (LEFT
    /// without tokens: no member keeps it as a pending replica, and it may join again later);
    /// a leaver is NORMAL again. The movement fails with `reason`.
    fn give_way(&mut self, reason: String) {
        self.barrier = None;
        match &mut self.lifecycle {
            Lifecycle::Joining(j) => {
                j.tokens.clear();
                j.done.clear();
                j.todo.clear();
                j.current = None;
                j.seed_view_at = None;
                if let Err(e) = self
                    .storage
                    .put_meta(JOIN_TOKENS_KEY, &[])
                    .and_then(|()| self.storage.put_meta(JOIN_DONE_KEY, &[]))
                {
                    return self.fatal(e);
                }
                if self.view.member(self.id).is_some() {
                    self.announce(Status::Left, &[]);
                }
                self.fail_movement(reason);
            }
            Lifecycle::Leaving(_) => {
                let tokens = self.own_tokens();
                self.announce(Status::Normal, &tokens);
                self.trace(NodeTrace::DecommissionFailed { reason });
                self.lifecycle = Lifecycle::Normal;
                self.persist_lifecycle(Persisted::Settled);
            }
            _ => {}
        }
    }

    /// The range locks this node knows of, for operators: the movements it granted the lock to
    /// that still ask for or hold it (BOOT or LEAVING at the epoch it granted), and, while this
    /// node's own first barrier asks for the lock, who refused it and which movement each named;
    /// and whether this node's own movement holds it. Empty outside the fenced strategies.
    pub fn range_locks(&self) -> RangeLocks {
        let granted = self
            .lock_granted
            .iter()
            .filter(|(n, e)| {
                self.view.member(**n).is_some_and(|m| {
                    m.epoch == **e && matches!(m.status, Status::Boot | Status::Leaving)
                })
            })
            .map(|(n, e)| (*n, *e))
            .collect();
        let refused_by = self
            .barrier
            .as_ref()
            .filter(|b| b.lock)
            .map(|b| b.refused_by.clone())
            .unwrap_or_default();
        let asking = self.barrier.as_ref().is_some_and(|b| b.lock);
        let moving = matches!(self.lifecycle, Lifecycle::Joining(_) | Lifecycle::Leaving(_));
        let holding = self
            .view
            .member(self.id)
            .filter(|m| {
                self.config.join_strategy.uses_barriers()
                    && moving
                    && !asking
                    && matches!(
                        m.status,
                        Status::Boot | Status::MidJoin | Status::Leaving | Status::MidLeave
                    )
            })
            .map(|m| m.epoch);
        RangeLocks { granted, refused_by, holding }
    }

    /// An operator's abort of this node's movement, idempotent. A join is withdrawn while no
    /// read has moved to it yet (BOOT or earlier); a decommission while it still owns its ranges
    /// (LEAVING). Later, the movement has handed reads over and must finish instead.
    pub fn abort_movement(&mut self, _now: Instant) -> Result<String, AdminError> {
        if self.stopped {
            return Err(AdminError::Stopped);
        }
        let status = self.view.status(self.id);
        match &self.lifecycle {
            Lifecycle::Joining(j) => {
                if matches!(status, Some(Status::MidJoin | Status::Normal)) {
                    return Err(AdminError::TooLateToAbort(self.lifecycle.describe()));
                }
                if j.tokens.is_empty() && matches!(j.phase, JoinPhase::Failed { .. }) {
                    return Ok("nothing to abort: the join already stopped".into());
                }
                self.give_way("aborted by the operator; join again to start over".into());
                Ok("join aborted: the node withdrew its tokens and may join again".into())
            }
            Lifecycle::Leaving(_) => {
                if status == Some(Status::MidLeave) {
                    return Err(AdminError::TooLateToAbort(self.lifecycle.describe()));
                }
                self.give_way("aborted by the operator".into());
                Ok("decommission aborted: the node is NORMAL again".into())
            }
            other => Ok(format!("nothing to abort: node is {}", other.describe())),
        }
    }

    fn check_barrier(&mut self, now: Instant) {
        if self.catching_up {
            // The view may lack members: wait for it before deciding who must acknowledge.
            return;
        }
        // Members learned since the barrier started (a restarted joiner catching up) must
        // acknowledge too.
        let involved = self.involved_in_movement();
        let members: Vec<NodeId> = self.view.live_members().filter(|p| *p != self.id).collect();
        if let Some(b) = &mut self.barrier {
            b.involved.extend(involved);
            for m in members {
                if !b.acked_by.contains(&m) && !b.waiting.contains(&m) {
                    b.waiting.insert(m);
                }
            }
        }
        if let Err(reason) = self.check_sources_at_boot(now) {
            self.barrier = None;
            return self.fail_movement(reason);
        }
        let Some(b) = &self.barrier else { return };
        // A member convicted down need not acknowledge, unless the movement changes its
        // placement: it catches up before it serves again.
        let dead: Vec<NodeId> = b
            .waiting
            .iter()
            .copied()
            .filter(|p| !self.is_alive(*p) && !b.involved.contains(p))
            .collect();
        let Some(b) = &mut self.barrier else { return };
        for p in dead {
            b.waiting.remove(&p);
        }
        let majority = if b.owners.is_empty() { 0 } else { b.owners.len() / 2 + 1 };
        let short_of_majority = b.lock && b.acked_by.intersection(&b.owners).count() < majority;
        if !b.waiting.is_empty() || short_of_majority || !b.refused_by.is_empty() {
            if now.saturating_duration_since(b.sent_at) >= RETRY {
                b.sent_at = now;
                self.send_barrier();
            }
            return;
        }
        let b = self.barrier.take().expect("barrier");
        self.trace(NodeTrace::BarrierComplete { status: b.status, acked: b.acked });
        self.after_wait(now, b.status);
    }

    /// At a join's first barrier, the replicas that must stream its ranges (the ones losing
    /// them): one that stays silent past [`SOURCE_GRACE`] fails the join with what to do, rather
    /// than the barrier waiting for it with no word. When the operator allowed another source,
    /// the barrier does not wait for it either (that replica, if only partitioned, may serve
    /// the old placement: the consistency the operator gave up).
    fn check_sources_at_boot(&mut self, now: Instant) -> Result<(), String> {
        let Some(b) = &self.barrier else { return Ok(()) };
        let Lifecycle::Joining(j) = &self.lifecycle else { return Ok(()) };
        if b.status != Status::Boot || now.saturating_duration_since(b.started) < SOURCE_GRACE {
            return Ok(());
        }
        let allow = j.allow_inconsistent_source;
        let moves = self.view.movements(self.id).unwrap_or_default();
        let down: Vec<(&RangeMovement, NodeId)> = moves
            .iter()
            .filter(|m| !j.done.contains(&m.range))
            .filter_map(|m| m.source.filter(|s| !self.is_alive(*s)).map(|s| (m, s)))
            .collect();
        if let Some((m, s)) = down.first().filter(|_| !allow) {
            return Err(source_down(m, *s));
        }
        let down: Vec<NodeId> = down.into_iter().map(|(_, s)| s).collect();
        if let Some(b) = &mut self.barrier {
            for s in down {
                b.involved.remove(&s);
            }
        }
        Ok(())
    }

    /// Waits until `status` (just announced) is known everywhere: a barrier under the fenced strategies,
    /// RING_DELAY otherwise.
    pub(super) fn wait_for(&mut self, now: Instant, status: Status) {
        if self.config.join_strategy.uses_barriers() {
            self.start_barrier(now, status);
        } else {
            let until = now + self.config.ring_delay;
            self.set_phase(JoinPhase::RingDelay { until, status });
            self.schedule_lifecycle(until);
        }
    }

    /// The next step once `status` is known everywhere.
    fn after_wait(&mut self, now: Instant, status: Status) {
        let tokens = self.own_tokens();
        match status {
            Status::Boot => self.start_join_streaming(now),
            Status::MidJoin => {
                self.announce(Status::Normal, &tokens);
                if self.config.join_strategy.uses_barriers() {
                    self.start_barrier(now, Status::Normal);
                } else {
                    self.complete_join(now);
                }
            }
            Status::Normal => self.complete_join(now),
            Status::Leaving => self.start_leave_streaming(now),
            Status::MidLeave => {
                self.announce(Status::Left, &tokens);
                if self.config.join_strategy.uses_barriers() {
                    self.start_barrier(now, Status::Left);
                } else {
                    self.complete_leave();
                }
            }
            Status::Left => self.complete_leave(),
        }
    }

    pub(super) fn own_tokens(&self) -> Vec<Token> {
        self.view.member(self.id).map(|m| m.tokens.clone()).unwrap_or_default()
    }

    fn set_phase(&mut self, phase: JoinPhase) {
        match &mut self.lifecycle {
            Lifecycle::Joining(j) => j.phase = phase,
            Lifecycle::Leaving(l) => l.phase = phase,
            _ => {}
        }
    }

    pub(super) fn persist_lifecycle(&mut self, state: Persisted) {
        if let Err(e) = self.storage.put_meta(LIFECYCLE_KEY, &[state as u8]) {
            self.fatal(e);
        }
    }

    pub(super) fn schedule_lifecycle(&mut self, at: Instant) {
        self.timers.insert((at, Timer::Lifecycle));
    }

    pub(super) fn on_lifecycle_tick(&mut self, now: Instant) {
        if self.stopped {
            return;
        }
        let mut next = None;
        let phase = match &self.lifecycle {
            Lifecycle::Joining(j) => Some(j.phase.clone()),
            Lifecycle::Leaving(l) => Some(l.phase.clone()),
            _ => None,
        };
        match phase {
            Some(JoinPhase::Discovering { since }) => {
                next = self.discover(now, since);
            }
            Some(JoinPhase::RingDelay { until, status }) => {
                if now >= until {
                    self.after_wait(now, status);
                } else {
                    next = Some(until);
                }
            }
            Some(JoinPhase::Barrier { .. }) => {
                self.check_barrier(now);
                next = Some(now + RETRY);
            }
            Some(JoinPhase::Streaming) => {
                self.check_stalled_join_stream(now);
                next = Some(now + RETRY);
            }
            Some(JoinPhase::Handoff) => {
                self.hand_off_hints(now);
                next = Some(now + RETRY);
            }
            _ => {}
        }
        if let Some(t) = self.pump_out_streams(now) {
            next = Some(next.map_or(t, |n: Instant| n.min(t)));
        }
        if let Some(t) = next
            && !self.stopped
        {
            self.schedule_lifecycle(t);
        }
    }
}
