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
pub(super) const SOURCE_GRACE: Duration = Duration::from_secs(5);

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
    pub(super) fn answered(&mut self, now: Instant, from: NodeId) {
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
    pub(super) fn after_wait(&mut self, now: Instant, status: Status) {
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

    pub(super) fn set_phase(&mut self, phase: JoinPhase) {
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
