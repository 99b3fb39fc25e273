//! What the explorer needs from the engine, kept here so that it is tested natively and the
//! browser app never re-implements a rule: a [`Player`] that plays a scenario a frame at a time
//! with checkpoints, seeking and forking; [`Intervention`]s (the user's clicks, in a compact
//! text form for shareable URLs); a [`Snapshot`] of everything drawn in one frame; and
//! [`op_messages`], the messages of one client operation and the replicas that answered it.

use crate::consistency::ConsistencyLevel;
use crate::gossip::Status;
use crate::history::Op;
use crate::id::NodeId;
use crate::message::{Message, MessageKind, RejectReason, Rejectable};
use crate::node::Lifecycle;
use crate::scenario::{
    self, Applied, ClientOp, Event, Playback, Prepared, RunOptions, ScenarioReport, Target,
    TimelineEvent,
};
use crate::sim::{Fate, SimError, Simulation};
use crate::storage::Storage;
use crate::time::Instant;
use crate::token::{RING_SIZE, Token, TokenRange};
use crate::topology::WriteRole;
use crate::trace::DropReason;
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Something the user does to a running cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Kill a node (its storage is kept).
    Crash(String),
    /// Restart a crashed node.
    Restart(String),
    /// Split the network into these groups (unlisted nodes form one more group).
    Partition(Vec<Vec<String>>),
    /// Heal every partition.
    Heal,
    /// Start a new node and join it (tokens allocated by the cluster's allocator).
    AddNode(String),
    /// Resume an interrupted or failed join.
    ResumeJoin(String),
    /// Decommission a node.
    Decommission(String),
    /// Merkle repair from a node.
    Repair(String),
    /// Remove ghost data from a node.
    Cleanup(String),
    /// A client read through `node`.
    Read {
        /// The node that coordinates the read.
        node: String,
        /// The key read.
        key: String,
        /// Consistency level.
        cl: ConsistencyLevel,
    },
    /// A client write through `node`.
    Write {
        /// The node that coordinates the write.
        node: String,
        /// The key written.
        key: String,
        /// The value written (a blind write: no read context).
        value: String,
        /// Consistency level.
        cl: ConsistencyLevel,
    },
}

/// An action at a moment of simulated time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Intervention {
    /// Simulated time since the start.
    pub at: Duration,
    /// The action applied at that moment.
    pub action: Action,
}

impl Action {
    /// The timeline event that does the same.
    pub fn to_event(&self) -> Event {
        let op = |node: &str, key: &str, cl: ConsistencyLevel| ClientOp {
            node: node.to_string(),
            key: key.to_string(),
            cl,
        };
        match self {
            Action::Crash(n) => Event::Crash(n.clone()),
            Action::Restart(n) => Event::Restart(n.clone()),
            Action::Partition(groups) => Event::Partition(groups.clone()),
            Action::Heal => Event::Heal,
            Action::AddNode(n) => Event::AddNode { name: n.clone(), tokens: None },
            Action::ResumeJoin(n) => {
                Event::ResumeJoin { node: n.clone(), allow_inconsistent_source: false }
            }
            Action::Decommission(n) => Event::Decommission(n.clone()),
            Action::Repair(n) => Event::Repair(Target::named(n)),
            Action::Cleanup(n) => Event::Cleanup(Target::named(n)),
            Action::Read { node, key, cl } => Event::Read(op(node, key, *cl)),
            Action::Write { node, key, value, cl } => {
                Event::Write { op: op(node, key, *cl), value: value.clone(), with_context: false }
            }
        }
    }
}

impl Intervention {
    /// The timeline event that does the same, at the intervention's moment.
    pub fn to_event(&self) -> TimelineEvent {
        TimelineEvent::new(self.at, self.action.to_event())
    }

    /// Parses a comma-separated list, as [`format_interventions`] writes it.
    pub fn parse_list(text: &str) -> Result<Vec<Intervention>, String> {
        if text.trim().is_empty() {
            return Ok(Vec::new());
        }
        text.split(',').map(str::parse).collect()
    }
}

/// Writes interventions as one URL-safe string: `at_micros:verb:arg…` joined by `,`.
pub fn format_interventions(list: &[Intervention]) -> String {
    list.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}

/// Escapes everything but `[A-Za-z0-9_-]` as `%XX` (UTF-8 bytes), so names and values can hold
/// the separators.
fn escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn unescape(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or_else(|| format!("truncated escape in {s:?}"))?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("bad escape %{hex}"))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8 once unescaped"))
}

impl fmt::Display for Intervention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.at.as_micros())?;
        match &self.action {
            Action::Crash(n) => write!(f, "crash:{}", escape(n)),
            Action::Restart(n) => write!(f, "restart:{}", escape(n)),
            Action::Partition(groups) => {
                let groups: Vec<String> = groups
                    .iter()
                    .map(|g| g.iter().map(|n| escape(n)).collect::<Vec<_>>().join("+"))
                    .collect();
                write!(f, "partition:{}", groups.join("/"))
            }
            Action::Heal => write!(f, "heal"),
            Action::AddNode(n) => write!(f, "add:{}", escape(n)),
            Action::ResumeJoin(n) => write!(f, "resume:{}", escape(n)),
            Action::Decommission(n) => write!(f, "decommission:{}", escape(n)),
            Action::Repair(n) => write!(f, "repair:{}", escape(n)),
            Action::Cleanup(n) => write!(f, "cleanup:{}", escape(n)),
            Action::Read { node, key, cl } => {
                write!(f, "read:{}:{}:{}", escape(node), escape(key), cl)
            }
            Action::Write { node, key, value, cl } => {
                write!(f, "write:{}:{}:{}:{}", escape(node), escape(key), escape(value), cl)
            }
        }
    }
}

impl FromStr for Intervention {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split(':').collect();
        let at: u64 = parts[0].parse().map_err(|_| {
            format!("intervention {text:?}: {:?} is not a time in microseconds", parts[0])
        })?;
        let verb = parts.get(1).copied().unwrap_or("");
        let args = &parts[parts.len().min(2)..];
        let want = |n: usize| -> Result<Vec<String>, String> {
            if args.len() != n {
                return Err(format!(
                    "intervention {text:?}: {verb} takes {n} argument(s), found {}",
                    args.len()
                ));
            }
            args.iter().map(|a| unescape(a)).collect()
        };
        let cl = |s: &str| -> Result<ConsistencyLevel, String> {
            s.parse().map_err(|e| format!("intervention {text:?}: {e}"))
        };
        let one = || want(1).map(|mut v| v.remove(0));
        let action = match verb {
            "crash" => Action::Crash(one()?),
            "restart" => Action::Restart(one()?),
            "add" => Action::AddNode(one()?),
            "resume" => Action::ResumeJoin(one()?),
            "decommission" => Action::Decommission(one()?),
            "repair" => Action::Repair(one()?),
            "cleanup" => Action::Cleanup(one()?),
            "heal" => {
                want(0)?;
                Action::Heal
            }
            "partition" => {
                want(1)?;
                let groups = args[0]
                    .split('/')
                    .map(|g| g.split('+').map(unescape).collect::<Result<Vec<_>, _>>())
                    .collect::<Result<Vec<_>, _>>()?;
                if groups.iter().flatten().any(String::is_empty) {
                    return Err(format!("intervention {text:?}: an empty node name"));
                }
                Action::Partition(groups)
            }
            "read" => {
                let v = want(3)?;
                Action::Read { node: v[0].clone(), key: v[1].clone(), cl: cl(&v[2])? }
            }
            "write" => {
                let v = want(4)?;
                Action::Write {
                    node: v[0].clone(),
                    key: v[1].clone(),
                    value: v[2].clone(),
                    cl: cl(&v[3])?,
                }
            }
            other => {
                return Err(format!(
                    "intervention {text:?}: unknown action {other:?} (crash, restart, partition, \
                     heal, add, resume, decommission, repair, cleanup, read, write)"
                ));
            }
        };
        Ok(Intervention { at: Duration::from_micros(at), action })
    }
}

/// Why a [`Player`] could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlayerError {
    /// An intervention is scheduled after the end of the scenario's timeline.
    #[error("intervention at {at:?} is after the end of the scenario ({end:?})")]
    InterventionAfterEnd {
        /// When the intervention is scheduled.
        at: Duration,
        /// The scenario's duration.
        end: Duration,
    },
}

/// Why [`Player::intervene`] changed nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InterveneError {
    /// The engine refused the action (an unknown node, a node already down…), in its own words.
    #[error("{0}")]
    Refused(#[from] SimError),
}

/// A scenario played a frame at a time: checkpoints every `interval` of simulated time make
/// seeking backwards cheap (restore, replay — determinism makes the replay identical), and an
/// intervention in the past forks the run (later interventions and checkpoints are dropped).
#[derive(Clone, Debug)]
pub struct Player {
    prepared: Prepared,
    options: RunOptions,
    interventions: Vec<Intervention>,
    /// The id each intervention was inserted into the playbacks with.
    ids: Vec<u64>,
    next_id: u64,
    current: Playback,
    checkpoints: Vec<Playback>,
    interval: Duration,
}

impl Player {
    /// Checkpoint interval.
    pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(5);

    /// A player at time zero with `interventions` scheduled (as a shared URL lists them).
    pub fn new(
        prepared: Prepared,
        options: RunOptions,
        interventions: Vec<Intervention>,
    ) -> Result<Player, PlayerError> {
        let end = prepared.scenario.duration;
        if let Some(late) = interventions.iter().find(|i| i.at > end) {
            return Err(PlayerError::InterventionAfterEnd { at: late.at, end });
        }
        let mut current = Playback::new(&prepared, &options);
        let mut sorted = interventions;
        sorted.sort_by_key(|i| i.at);
        let ids: Vec<u64> = (0..sorted.len() as u64).collect();
        for (i, id) in sorted.iter().zip(&ids) {
            current.insert(*id, i.to_event());
        }
        Ok(Player {
            prepared,
            options,
            next_id: ids.len() as u64,
            ids,
            interventions: sorted,
            checkpoints: vec![current.clone()],
            current,
            interval: Self::CHECKPOINT_INTERVAL,
        })
    }

    /// The scenario.
    pub fn prepared(&self) -> &Prepared {
        &self.prepared
    }

    /// The run options (seed, strategy).
    pub fn options(&self) -> &RunOptions {
        &self.options
    }

    /// The simulation now.
    pub fn sim(&self) -> &Simulation {
        self.current.sim()
    }

    /// The playback now (events applied so far, with their errors).
    pub fn playback(&self) -> &Playback {
        &self.current
    }

    /// Simulated time now.
    pub fn now(&self) -> Instant {
        self.current.now()
    }

    /// The end of the scenario's timeline.
    pub fn end(&self) -> Instant {
        Instant::ZERO + self.prepared.scenario.duration
    }

    /// The user's interventions, in time order.
    pub fn interventions(&self) -> &[Intervention] {
        &self.interventions
    }

    /// Runs forward to `t` (at most the end), checkpointing on the way.
    pub fn advance_to(&mut self, t: Instant) {
        let t = t.min(self.end());
        while self.current.now() < t {
            let last = self.checkpoints.last().map_or(Instant::ZERO, Playback::now);
            let next_checkpoint = last + self.interval;
            self.current.advance_to(next_checkpoint.min(t));
            if self.current.now() >= next_checkpoint {
                self.checkpoints.push(self.current.clone());
            }
        }
    }

    /// Moves to `t`, backwards (restore the latest checkpoint before it and replay) or forwards.
    pub fn seek(&mut self, t: Instant) {
        let t = t.min(self.end());
        if t < self.current.now() {
            let base = self.checkpoints.iter().rev().find(|c| c.now() <= t);
            self.current = base.unwrap_or(&self.checkpoints[0]).clone();
        }
        self.advance_to(t);
    }

    /// One step: to the next thing that happens (a delivery, a timer, a client request or a
    /// timeline event), at most the end. Returns the new time.
    pub fn step(&mut self) -> Instant {
        // Whatever is due right now first (at the very start: everything due at 0).
        self.current.advance_to(self.now());
        let sim_next = self.sim().next_event_time();
        let event_next = self.current.next_event_at();
        let next = match (sim_next, event_next) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or(self.end()),
        };
        self.advance_to(next);
        self.now()
    }

    /// Applies `action` now. Interventions scheduled later are dropped first (the run forks
    /// here). A refused action changes nothing and returns the engine's reason.
    pub fn intervene(&mut self, action: Action) -> Result<Applied, InterveneError> {
        let now = self.now();
        let at = now.saturating_duration_since(Instant::ZERO);
        // Fork: forget the future.
        while self.interventions.last().is_some_and(|i| i.at > at) {
            self.interventions.pop();
            let id = self.ids.pop().expect("parallel to interventions");
            self.current.cancel(id);
            for c in &mut self.checkpoints {
                c.cancel(id);
            }
        }
        self.checkpoints.retain(|c| c.now() <= now);
        let intervention = Intervention { at, action };
        let id = self.next_id;
        self.next_id += 1;
        let before = self.current.clone();
        self.current.insert(id, intervention.to_event());
        let applied = self.current.applied().last().map(|a| a.applied.clone()).unwrap_or_default();
        if let Some(err) = applied.error {
            self.current = before;
            return Err(err.into());
        }
        for c in &mut self.checkpoints {
            c.insert(id, intervention.to_event());
        }
        self.interventions.push(intervention);
        self.ids.push(id);
        Ok(applied)
    }

    /// The whole run with the current interventions, to its end and final phase, checked: the
    /// history, anomalies and counters the explorer shows beside the animation.
    pub fn full_run(&self) -> (ScenarioReport, Simulation) {
        let extra: Vec<TimelineEvent> =
            self.interventions.iter().map(Intervention::to_event).collect();
        scenario::run_with(&self.prepared, &self.options, &extra)
    }
}

/// A node as the explorer draws it.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeView {
    /// The node's id in the simulation.
    pub id: NodeId,
    /// The scenario's name for it (`n1`…).
    pub name: String,
    /// `status` code: UN, UJ, UL, DN, DJ, DL, LEFT, OUT (a withdrawn joiner), `?` before it
    /// announced anything.
    pub status: String,
    /// Running (not crashed).
    pub up: bool,
    /// Frozen by a process pause.
    pub paused: bool,
    /// Keys held (ghost data included).
    pub keys: u64,
    /// Bytes held.
    pub bytes: u64,
    /// Keys held that the node no longer replicates (left over after ranges moved away).
    pub ghost_keys: u64,
    /// Hints held, per target (running nodes only).
    pub hints: Vec<(NodeId, usize)>,
    /// Tokens the node announced (a joining node's too, before they are in the read ring).
    pub tokens: usize,
    /// Where a joining node's announced tokens sit (fractions of the ring), before they are
    /// part of the ring: the explorer marks them. Empty for other nodes.
    pub joining_tokens: Vec<f64>,
    /// Effective ownership (0..=RF as a fraction of the ring; `None` while joining, as `status`
    /// prints `?`).
    pub ownership: Option<f64>,
    /// The node's own lifecycle, in words.
    pub lifecycle: String,
    /// A join or decommission in progress.
    pub movement: Option<MovementView>,
}

/// A join or decommission in progress on one node.
#[derive(Clone, Debug, PartialEq)]
pub struct MovementView {
    /// Joining (`true`) or leaving.
    pub joining: bool,
    /// Ranges finished.
    pub ranges_done: usize,
    /// Ranges in all (0 before they are known).
    pub ranges_total: usize,
    /// Keys moved so far.
    pub keys: u64,
    /// Bytes moved so far.
    pub bytes: u64,
    /// The range streaming now and the node on the other end.
    pub current: Option<(TokenRange, NodeId)>,
}

/// One arc of the read ring.
#[derive(Clone, Debug, PartialEq)]
pub struct ArcView {
    /// Start of the arc as a fraction of the ring (0..1, clockwise from token 0).
    pub start: f64,
    /// Length as a fraction of the ring (0..=1).
    pub width: f64,
    /// The vnode's token (the arc's inclusive end).
    pub token: Token,
    /// The arc as a token range (`TokenRange::contains` says which tokens it holds).
    pub range: TokenRange,
    /// Its owner (the primary replica of the arc).
    pub owner: NodeId,
    /// Every replica of the arc, in ring-walk order.
    pub replicas: Vec<NodeId>,
}

/// A range with an extra write target (a joiner, or a replica being replaced).
#[derive(Clone, Debug, PartialEq)]
pub struct PendingView {
    /// Start as a fraction of the ring.
    pub start: f64,
    /// Length as a fraction of the ring.
    pub width: f64,
    /// The extra target.
    pub node: NodeId,
    /// How writes treat it.
    pub role: WriteRole,
}

/// Why a message will not arrive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropCause {
    /// Random loss.
    Loss,
    /// A partition separates the ends.
    Partition,
    /// The receiver is down.
    NodeDown,
}

/// A message in flight.
#[derive(Clone, Debug, PartialEq)]
pub struct MessageView {
    /// Unique id in the run.
    pub id: u64,
    /// The node that sent it.
    pub from: NodeId,
    /// The node it is addressed to.
    pub to: NodeId,
    /// Coarse kind (filters, colours).
    pub kind: MessageKind,
    /// Exact message type, e.g. `MutationAck`.
    pub name: &'static str,
    /// The key concerned.
    pub key: Option<String>,
    /// The coordinator's operation id, for client-request traffic.
    pub op: Option<u64>,
    /// Sent at.
    pub sent_at: Instant,
    /// Arrives (or is dropped) at.
    pub deliver_at: Instant,
    /// How far along it is now, 0..=1.
    pub progress: f64,
    /// Set when it will not arrive, as things stand now.
    pub dropped: Option<DropCause>,
    /// The topology epoch a request carries ([`Message::epoch`]: Mutation, Mint, Read, Hint,
    /// StreamRequest, MerkleRequest).
    pub epoch: Option<u64>,
    /// Whether the receiver checks that epoch: only the `staged` and `sync-dual-write` join
    /// strategies fence ([`crate::membership::JoinStrategy::uses_barriers`]).
    pub receiver_fences: bool,
    /// What a `Rejected` says.
    pub rejection: Option<Rejection>,
    /// What became of it once it left the network (`None` while in flight): for a request
    /// that carries an epoch, its receiver's verdict. See [`MessageView::settled`].
    pub fate: Option<Fate>,
}

/// The content of a `Rejected`: which request was refused and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The request refused.
    pub request: Rejectable,
    /// The refusing replica's placement epoch for it.
    pub epoch: u64,
    /// Why the replica refused it.
    pub reason: RejectReason,
}

impl MessageView {
    /// This message as it is once it left the network: its [`Fate`] in `sim` (the simulation
    /// it was seen in flight in, later). `None` while it is still in flight or not sent yet.
    pub fn settled(&self, sim: &Simulation) -> Option<MessageView> {
        let fate = sim.fate(self.id)?;
        Some(MessageView { progress: 1.0, dropped: None, fate: Some(fate), ..self.clone() })
    }
}

/// Everything one frame of the explorer shows.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// Simulated time.
    pub now: Instant,
    /// Replication factor.
    pub rf: usize,
    /// Every node ever started, by id.
    pub nodes: Vec<NodeView>,
    /// The read ring.
    pub arcs: Vec<ArcView>,
    /// Pending ranges (extra write targets).
    pub pending: Vec<PendingView>,
    /// Messages in flight, oldest first.
    pub messages: Vec<MessageView>,
    /// Whether a partition is in force.
    pub partitioned: bool,
    /// Pairs of nodes the partition separates (lower id first).
    pub cut: Vec<(NodeId, NodeId)>,
}

/// A token's position on the ring as a fraction (0..1, clockwise from token 0).
pub fn fraction(t: Token) -> f64 {
    t as f64 / RING_SIZE as f64
}

/// A range's start and length as fractions of the ring.
pub fn range_view(r: TokenRange) -> (f64, f64) {
    (fraction(r.start), r.width() as f64 / RING_SIZE as f64)
}

/// The status code as the explorer shows it: `status`'s, and `?` alone before a node announced
/// anything (`U?`, `D?`).
fn status_code(shown: crate::status::NodeStatus) -> String {
    let code = shown.code();
    if code.ends_with('?') { "?".into() } else { code }
}

impl Snapshot {
    /// The snapshot of `sim` now.
    pub fn of(sim: &Simulation) -> Snapshot {
        let topology = sim.topology();
        let ring = topology.ring();
        let ghosts = sim.ghost_keys();
        let own = ring.effective_ownership();
        let nodes = (0..sim.names().len() as u32)
            .map(NodeId)
            .map(|id| {
                let node = sim.node(id);
                let storage = sim.storage(id);
                // What `status` shows of it, worked out once per node and frame.
                let shown = scenario::node_status(sim, id);
                let status = status_code(shown);
                let member = sim.cluster_view().member(id);
                // A joiner that withdrew has no movement left to show until it joins again.
                let withdrawn = shown.withdrawn;
                let movement = node.filter(|_| !withdrawn).and_then(|n| match n.lifecycle() {
                    Lifecycle::Joining(j) => Some(MovementView {
                        joining: true,
                        ranges_done: j.progress.ranges_done,
                        ranges_total: j.progress.ranges_total,
                        keys: j.progress.moved.keys,
                        bytes: j.progress.moved.bytes,
                        current: j.current.map(|(_, r, from, _)| (r, from)),
                    }),
                    Lifecycle::Leaving(l) => Some(MovementView {
                        joining: false,
                        ranges_done: l.progress.ranges_done,
                        ranges_total: l.progress.ranges_total,
                        keys: l.progress.moved.keys,
                        bytes: l.progress.moved.bytes,
                        current: l.current.map(|(_, r, to)| (r, to)),
                    }),
                    _ => None,
                });
                NodeView {
                    id,
                    name: sim.name(id).to_string(),
                    up: sim.is_up(id),
                    paused: sim.is_paused(id),
                    keys: storage.map_or(0, |s| s.key_count()),
                    bytes: storage.map_or(0, |s| s.load_bytes()),
                    ghost_keys: ghosts.get(&id).copied().unwrap_or(0),
                    hints: node
                        .map(|n| n.hints_by_target().into_iter().collect())
                        .unwrap_or_default(),
                    tokens: member.map_or_else(|| ring.tokens_of(id).len(), |m| m.tokens.len()),
                    joining_tokens: member
                        .filter(|m| matches!(m.status, Status::Boot | Status::MidJoin))
                        .map(|m| m.tokens.iter().map(|t| fraction(*t)).collect())
                        .unwrap_or_default(),
                    ownership: shown.owns(own.get(&id).copied().unwrap_or(0.0)),
                    lifecycle: node
                        .map_or_else(|| "down".to_string(), |n| n.lifecycle().describe()),
                    movement,
                    status,
                }
            })
            .collect();
        let arcs = ring
            .ranges()
            .enumerate()
            .map(|(i, (range, replicas))| {
                let (start, width) = range_view(range);
                ArcView {
                    start,
                    width,
                    token: range.end,
                    range,
                    owner: ring.owners()[i],
                    replicas: replicas.to_vec(),
                }
            })
            .collect();
        let pending = topology
            .pending()
            .iter()
            .map(|p| {
                let (start, width) = range_view(p.range);
                PendingView { start, width, node: p.node, role: p.role }
            })
            .collect();
        let now = sim.now();
        // A node's own configuration decides whether it fences (a crashed node: the cluster's).
        let fences: Vec<bool> = (0..sim.names().len() as u32)
            .map(|id| {
                let strategy = sim
                    .node(NodeId(id))
                    .map_or(sim.config().node.join_strategy, |n| n.config().join_strategy);
                strategy.uses_barriers()
            })
            .collect();
        let messages = sim
            .in_flight()
            .map(|m| {
                let total = m.deliver_at.saturating_duration_since(m.sent_at).as_secs_f64();
                let done = now.saturating_duration_since(m.sent_at).as_secs_f64();
                let dropped = if m.lost {
                    Some(DropCause::Loss)
                } else if !sim.network().connected(m.from, m.to) {
                    Some(DropCause::Partition)
                } else if !sim.is_up(m.to) {
                    Some(DropCause::NodeDown)
                } else {
                    None
                };
                MessageView {
                    id: m.id,
                    from: m.from,
                    to: m.to,
                    kind: m.message.kind(),
                    name: m.message.name(),
                    key: m.message.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    op: m.message.op(),
                    sent_at: m.sent_at,
                    deliver_at: m.deliver_at,
                    progress: if total > 0.0 { (done / total).clamp(0.0, 1.0) } else { 1.0 },
                    dropped,
                    epoch: m.message.epoch(),
                    receiver_fences: fences.get(m.to.0 as usize).copied().unwrap_or(false),
                    rejection: match &m.message {
                        Message::Rejected { request, epoch, reason, .. } => {
                            Some(Rejection { request: *request, epoch: *epoch, reason: *reason })
                        }
                        _ => None,
                    },
                    fate: None,
                }
            })
            .collect();
        let count = sim.names().len() as u32;
        let cut = (0..count)
            .flat_map(|a| (a + 1..count).map(move |b| (NodeId(a), NodeId(b))))
            .filter(|(a, b)| !sim.network().connected(*a, *b))
            .collect();
        Snapshot {
            now,
            rf: ring.rf(),
            nodes,
            arcs,
            pending,
            messages,
            partitioned: sim.network().is_partitioned(),
            cut,
        }
    }
}

/// The traffic of one client operation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpMessages {
    /// How the coordinator planned it (`None` when it could not: no topology yet).
    pub plan: Option<crate::node::Plan>,
    /// Ids of the messages it caused: requests to replicas and their answers.
    pub messages: BTreeSet<u64>,
    /// Replicas sent a request.
    pub asked: BTreeSet<NodeId>,
    /// Replicas that answered before the client was answered.
    pub answered: BTreeSet<NodeId>,
}

/// The consistency arithmetic of an operation, in words: what its level needs of how many
/// replicas, whom the coordinator asked, who answered in time, and whether that met the level.
/// For example "RF 3 → QUORUM needs 2 acks of B, C, D · asked B, C, D · acknowledged in time: B,
/// D ✓".
pub fn explain_arithmetic(
    m: &OpMessages,
    cl: crate::consistency::ConsistencyLevel,
    write: bool,
    names: &[String],
) -> Option<String> {
    let plan = m.plan.as_ref()?;
    let name = |n: &NodeId| names.get(n.0 as usize).cloned().unwrap_or_else(|| n.to_string());
    let list = |set: &mut dyn Iterator<Item = &NodeId>| {
        let v: Vec<String> = set.map(name).collect();
        if v.is_empty() { "nobody".to_string() } else { v.join(", ") }
    };
    let what = if write { "acks" } else { "replies" };
    let pending = if plan.pending.is_empty() {
        String::new()
    } else if write {
        format!(" (+{} for pending {})", plan.pending.len(), list(&mut plan.pending.iter()))
    } else {
        format!(" (also asks {}, not counted)", list(&mut plan.pending.iter()))
    };
    let got = m.answered.len();
    let verdict = if got >= plan.required { "✓" } else { "✗" };
    let answered = if write { "acknowledged in time" } else { "answered in time" };
    Some(format!(
        "RF {} → {cl} needs {} {what} of {}{pending} · asked {} · {answered}: {} {verdict}",
        plan.rf,
        plan.required,
        list(&mut plan.natural.iter()),
        list(&mut m.asked.iter()),
        list(&mut m.answered.iter()),
    ))
}

/// Finds the messages of the operation invoked by `invoke` (an invoke op of `sim`'s history,
/// completed at `completed`): replays a copy of `sim`, positioned at the invoke, one step at a
/// time until the completion, watching the coordinator's requests for the key and the answers
/// carrying the same operation ids. A coordinator that is a replica counts as asked and
/// answered (it reads or writes locally).
pub fn op_messages(sim: &Simulation, invoke: &Op, completed: Instant) -> OpMessages {
    let mut sim = sim.clone();
    let coordinator = invoke.node;
    let mut out = OpMessages::default();
    let write = invoke.f != crate::history::OpFunction::Read;
    out.plan = sim.node(coordinator).and_then(|n| n.plan(invoke.key.as_bytes(), invoke.cl, write));
    // A coordinator that is itself a replica answers locally, without a message.
    let local =
        sim.topology().ring().replicas_for_key(invoke.key.as_bytes()).contains(&coordinator)
            && sim.is_up(coordinator);
    if local {
        out.asked.insert(coordinator);
        out.answered.insert(coordinator);
    }
    let mut ops: BTreeSet<u64> = BTreeSet::new();
    // Message ids are sequential: one is new when it is past the last one looked at.
    let mut seen: Option<u64> = None;
    loop {
        for m in sim.in_flight() {
            if seen.is_some_and(|last| m.id <= last) {
                continue;
            }
            seen = Some(m.id);
            let ours = m.from == coordinator
                && m.message.key() == Some(invoke.key.as_bytes())
                && matches!(
                    m.message,
                    Message::Mint { .. } | Message::Mutation { .. } | Message::Read { .. }
                );
            if ours {
                ops.extend(m.message.op());
                out.messages.insert(m.id);
                out.asked.insert(m.to);
            } else if m.to == coordinator
                && m.message.op().is_some_and(|op| ops.contains(&op))
                && m.sent_at <= completed
            {
                out.messages.insert(m.id);
                if m.deliver_at <= completed && !m.lost {
                    out.answered.insert(m.from);
                }
            }
        }
        if sim.now() > completed || !sim.step() {
            break;
        }
    }
    out
}

/// A paragraph for the learner about a message type.
pub fn explain_message(m: &MessageView, names: &[String]) -> String {
    let name = |id: NodeId| names.get(id.0 as usize).map_or("?", String::as_str);
    let (from, to) = (name(m.from), name(m.to));
    let key = m.key.as_deref().map(|k| format!(" for key {k}")).unwrap_or_default();
    let what = match m.name {
        "Gossip" => format!(
            "{from} gossips with {to}: one message of a SYN/ACK/ACK2 round. It carries \
             heartbeats (whose arrival times feed {to}'s phi-accrual failure detector) and \
             endpoint states such as STATUS and TOKENS, which is how ring changes spread."
        ),
        "Echo" | "EchoReply" => format!(
            "{from} and {to} check that a peer learned about second-hand really is alive before \
             believing it up (Cassandra's echo)."
        ),
        "Barrier" | "BarrierAck" => format!(
            "A topology barrier of the staged join: {from} pushes its new state to {to} and \
             waits until every live node, and a majority of the ranges' owners, has \
             acknowledged it before moving to the next phase. The first barrier of a join or a \
             decommission also takes the range lock: one movement per range at a time."
        ),
        "BarrierRefused" => format!(
            "{from} refuses {to}'s barrier: another join or decommission over an overlapping \
             range holds the range lock. Of two movements that ask at once the older one goes \
             on and the other gives way (a joiner withdraws and may join again later)."
        ),
        "ViewRequest" | "ViewReply" => format!(
            "{from} asks for (or sends) the whole cluster view: a joiner or a restarted node \
             catches up before it acts."
        ),
        "StreamRequest" => format!(
            "{from} asks {to} to stream a token range to it: the data it is gaining by joining."
        ),
        "StreamData" => format!(
            "A chunk of streamed data from {from} to {to}, in token order; the receiver merges \
             it with what it already holds, so a resent chunk does no harm."
        ),
        "StreamAck" => format!("{from} applied a stream chunk; {to} may send the next one."),
        "HandoffHint" | "HandoffAck" => format!(
            "A leaving node hands its stored hints over to a peer that will keep delivering \
             them ({from} → {to})."
        ),
        "MerkleRequest" | "MerkleResponse" => format!(
            "Anti-entropy repair: {from} and {to} compare Merkle trees of a range, so that only \
             the leaves that differ are streamed."
        ),
        "Refused" => format!("{from} refused a message from {to} (unknown peer or other cluster)."),
        "Rejected" => match &m.rejection {
            Some(r) => explain_rejection(r, from, to),
            None => format!("{from} refused a request of {to}."),
        },
        "Mint" => format!(
            "{from} coordinates a write{key} but is not a replica: it asks replica {to} to \
             mint the new version (its vector-clock entry), apply it and return it."
        ),
        "MintAck" => format!(
            "{from} minted and applied the version{key}; {to} now sends it to the other replicas."
        ),
        "Mutation" => format!(
            "The coordinator {from} sends a write{key} to replica {to}. The write succeeds once \
             as many replicas as the consistency level asks for have acknowledged."
        ),
        "MutationAck" => {
            format!("Replica {from} applied a write and acknowledges it to coordinator {to}.")
        }
        "Read" => format!(
            "Coordinator {from} asks replica {to} for its versions{key}. It answers \
             the client once enough replicas (the consistency level) have replied."
        ),
        "ReadReply" => format!(
            "Replica {from} answers a read with what it holds; the coordinator {to} merges the \
             replies and repairs replicas that were behind."
        ),
        "Repair" => format!(
            "Read repair: coordinator {from} noticed that replica {to} was missing a version \
             during a read and sends it the merged value{key}. A coordinator also sends one \
             when a replica it had given up on minted a version of its write after all, so \
             that version does not stay on one replica."
        ),
        "Hint" => format!(
            "Hinted handoff: {from} stored this write while {to} was unreachable and replays it \
             now that {to} is back."
        ),
        "HintAck" => format!("{from} applied a replayed hint; {to} deletes it."),
        other => format!("{other} from {from} to {to}."),
    };
    let mut text = what;
    if let Some(epoch) = m.epoch {
        // The fence (`docs/semantics.md`, "Fencing"): key requests carry their token's
        // placement epoch, stream and Merkle requests the sender's highest.
        let which = if matches!(m.name, "StreamRequest" | "MerkleRequest") {
            format!("the newest {from} knows")
        } else {
            "the placement it was planned under".to_string()
        };
        text.push_str(&format!(" It carries topology epoch {epoch}, {which}"));
        if m.receiver_fences {
            text.push_str(&format!(": {to} refuses it if it knows a newer one."));
        } else {
            text.push_str(&format!(
                "; {to} does not check it: only the staged and sync-dual-write join \
                 strategies fence requests on their epoch."
            ));
        }
    }
    match &m.fate {
        Some(fate) => text.push_str(&explain_fate(fate, m, from, to)),
        None => match m.dropped {
            Some(DropCause::Loss) => text.push_str(" This one is lost by the network."),
            Some(DropCause::Partition) => text
                .push_str(&format!(" A partition separates {from} and {to}: it will be dropped.")),
            Some(DropCause::NodeDown) => {
                text.push_str(&format!(" {to} is down: it will be dropped."))
            }
            None => {}
        },
    }
    text
}

/// The sentence on what became of a message that left the network: for a request that carries
/// an epoch, its receiver's verdict.
fn explain_fate(fate: &Fate, m: &MessageView, from: &str, to: &str) -> String {
    match fate {
        Fate::Delivered if m.epoch.is_some() => format!(" {to} accepted it."),
        Fate::Delivered => " It has arrived.".to_string(),
        Fate::Rejected { epoch, reason: RejectReason::StaleEpoch { .. } } => format!(
            " {to} refused it: it knows epoch {epoch} (stale epoch) — {from} catches up from the \
             refusal and {}.",
            replan(m.name)
        ),
        Fate::Rejected { reason: RejectReason::NotMintReplica, .. } => format!(
            " {to} refused it: it is not a NORMAL natural replica of the key, so it does not \
             mint — {from} asks the next replica."
        ),
        Fate::Refused { reason } => format!(" {to} refused it: {reason}."),
        Fate::Dropped(reason) => {
            let why = match reason {
                DropReason::Loss => "lost by the network",
                DropReason::Partition => "cut off by a partition",
                DropReason::NodeDown => "its receiver was down, or crashed after it was sent",
            };
            if m.epoch.is_some() {
                format!(" It was dropped ({why}): {to} never decided on it.")
            } else {
                format!(" It was dropped ({why}).")
            }
        }
    }
}

/// The message type of a request a `Rejected` names.
fn request_name(request: Rejectable) -> &'static str {
    match request {
        Rejectable::Mutation(_) => "Mutation",
        Rejectable::Mint(_) => "Mint",
        Rejectable::Read(_) => "Read",
        Rejectable::Hint(_) => "Hint",
        Rejectable::Stream(_) => "StreamRequest",
        Rejectable::Merkle(_) => "MerkleRequest",
    }
}

/// What the sender of a request (by message type) refused as stale does next, once it caught
/// up (`Node::on_rejected`).
fn replan(request: &str) -> &'static str {
    match request {
        "Mutation" => {
            "re-plans the write: it keeps the acknowledgements of replicas that are still \
             targets and sends the version to the new ones"
        }
        "Mint" => "asks for the mint again on the epoch just learned",
        "Read" => "re-plans the read on the replicas of the epoch just learned",
        "Hint" => "hands the hinted versions to the key's current replicas instead",
        "StreamRequest" => "asks again for the range if its join is waiting for it",
        "MerkleRequest" => "drops this comparison: the repair of that range stops",
        _ => "re-plans",
    }
}

/// A `Rejected`: what was refused, and why.
fn explain_rejection(r: &Rejection, from: &str, to: &str) -> String {
    let request = request_name(r.request);
    match r.reason {
        RejectReason::StaleEpoch { carried } => format!(
            "{from} refuses {to}'s {request}: it was planned under topology epoch {carried}, but \
             {from} knows epoch {} (stale epoch). The refusal carries {from}'s endpoint states, \
             so {to} catches up and {}.",
            r.epoch,
            replan(request)
        ),
        RejectReason::NotMintReplica => format!(
            "{from} refuses {to}'s {request}: it is not a NORMAL natural replica of the key, so \
             it does not mint versions. {to} catches up from the refusal and asks the next \
             replica."
        ),
    }
}

/// A paragraph for the learner about a node's state.
pub fn explain_node(n: &NodeView, names: &[String]) -> String {
    let name = |id: NodeId| names.get(id.0 as usize).map_or("?", String::as_str);
    let status = match n.status.as_str() {
        "UN" => "Up and Normal: it owns its tokens and serves reads and writes.".to_string(),
        "UJ" => "Up and Joining: it announced its tokens and receives writes for the ranges it \
                 is gaining (a pending replica) while it streams their data; it does not serve \
                 reads for them yet, so its ownership shows ?."
            .to_string(),
        "UL" => "Up and Leaving: it is streaming its ranges to the nodes that will own them \
                 (decommission)."
            .to_string(),
        "DN" => "Down and Normal: the other nodes' failure detectors convicted it. Writes meant \
                 for it are stored as hints on coordinators and replayed when it comes back."
            .to_string(),
        "DJ" | "DL" => "Down in the middle of a movement: the join or decommission stops until \
                        it is restarted (and resumed)."
            .to_string(),
        "LEFT" => "It decommissioned and left the ring; its data now lives on other nodes.".into(),
        "OUT" => "It withdrew its join before it took over any range (the operator aborted it, or \
                  it gave way to an overlapping movement): it owns nothing and may join again."
            .into(),
        _ => "It has not announced any state yet.".into(),
    };
    let mut text = format!("{}: {status} Its own view: {}.", n.name, n.lifecycle);
    if n.ghost_keys > 0 {
        text.push_str(&format!(
            " It still holds {} keys of ranges it no longer replicates (ghost data) until a \
             cleanup removes them.",
            n.ghost_keys
        ));
    }
    let hints: usize = n.hints.iter().map(|(_, c)| c).sum();
    if hints > 0 {
        let per: Vec<String> =
            n.hints.iter().map(|(t, c)| format!("{c} for {}", name(*t))).collect();
        text.push_str(&format!(" It holds {hints} hints ({}).", per.join(", ")));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::OpType;
    use crate::scenario::{parse, prepare};
    use std::collections::BTreeMap;

    /// Every message the engine sends has its own explanation, not the generic fallback.
    #[test]
    fn every_message_kind_is_explained() {
        let names = ["A".to_string(), "B".to_string()];
        for name in [
            "Gossip",
            "Echo",
            "EchoReply",
            "Barrier",
            "BarrierAck",
            "BarrierRefused",
            "ViewRequest",
            "ViewReply",
            "StreamRequest",
            "StreamData",
            "StreamAck",
            "HandoffHint",
            "HandoffAck",
            "MerkleRequest",
            "MerkleResponse",
            "Refused",
            "Rejected",
            "Mint",
            "MintAck",
            "Mutation",
            "MutationAck",
            "Read",
            "ReadReply",
            "Repair",
            "Hint",
            "HintAck",
        ] {
            let m = MessageView {
                id: 1,
                from: NodeId(0),
                to: NodeId(1),
                kind: MessageKind::Topology,
                name,
                key: None,
                op: None,
                sent_at: Instant::ZERO,
                deliver_at: Instant::ZERO,
                progress: 0.0,
                dropped: None,
                epoch: None,
                receiver_fences: false,
                rejection: None,
                fate: None,
            };
            let text = explain_message(&m, &names);
            assert_ne!(text, format!("{name} from A to B."), "{name} is not explained");
        }
    }

    const SCENARIO: &str = r#"
name = "explore-test"
seed = 5
duration = "30s"

[cluster]
nodes = ["A", "B", "C"]
rf = 3
num_tokens = 4

[network]
latency = { min = "20ms", jitter = "20ms" }

[workload]
clients = 3
keys = 30
start = "1s"
stop = "28s"

[[events]]
at = "8s"
add_node = { name = "D" }
"#;

    fn prepared() -> Prepared {
        prepare(parse(SCENARIO).unwrap(), SCENARIO).unwrap()
    }

    #[test]
    fn interventions_round_trip_through_text() {
        let list = vec![
            Intervention {
                at: Duration::from_micros(1_500_000),
                action: Action::Crash("B".into()),
            },
            Intervention {
                at: Duration::from_secs(2),
                action: Action::Partition(vec![vec!["A".into(), "B b".into()], vec!["C".into()]]),
            },
            Intervention { at: Duration::from_secs(3), action: Action::Heal },
            Intervention {
                at: Duration::from_secs(4),
                action: Action::Write {
                    node: "A".into(),
                    key: "k:1,2".into(),
                    value: "v%é".into(),
                    cl: ConsistencyLevel::Quorum,
                },
            },
            Intervention {
                at: Duration::from_secs(5),
                action: Action::Read {
                    node: "C".into(),
                    key: "k1".into(),
                    cl: ConsistencyLevel::One,
                },
            },
        ];
        let text = format_interventions(&list);
        assert!(text.bytes().all(|b| b.is_ascii_graphic() && b != b'&' && b != b'#'), "{text}");
        assert_eq!(Intervention::parse_list(&text).unwrap(), list);
        assert_eq!(Intervention::parse_list("").unwrap(), vec![]);
    }

    #[test]
    fn bad_intervention_text_says_what_is_wrong() {
        let err = |t: &str| Intervention::parse_list(t).unwrap_err();
        assert!(err("x:crash:A").contains("not a time"));
        assert!(err("5:explode:A").contains("unknown action \"explode\""));
        assert!(err("5:crash").contains("takes 1 argument"));
        assert!(err("5:read:A:k:MOST").contains("MOST"));
        assert!(err("5:crash:%G1").contains("bad escape"));
    }

    #[test]
    fn playing_frame_by_frame_matches_the_batch_run() {
        let p = prepared();
        let (batch, _) = scenario::run(&p, &RunOptions::default());
        let mut player = Player::new(p.clone(), RunOptions::default(), vec![]).unwrap();
        let mut t = Instant::ZERO;
        while t < player.end() {
            t += Duration::from_millis(16_667);
            player.advance_to(t);
        }
        let (full, _) = player.full_run();
        assert_eq!(full.trace_hash, batch.trace_hash);
        assert_eq!(player.now(), player.end());
        assert!(player.sim().node_id("D").is_ok(), "the scenario's add_node was applied");
    }

    #[test]
    fn seeking_back_and_forth_reproduces_the_same_state() {
        let mut player = Player::new(prepared(), RunOptions::default(), vec![]).unwrap();
        player.advance_to(Instant::from_secs(20));
        let at_20 = Snapshot::of(player.sim());
        player.seek(Instant::from_secs(3));
        assert_eq!(player.now(), Instant::from_secs(3));
        assert!(player.sim().node_id("D").is_err(), "before the join");
        player.seek(Instant::from_secs(20));
        assert_eq!(Snapshot::of(player.sim()), at_20);
    }

    #[test]
    fn an_intervention_replays_exactly_from_its_url_text() {
        let p = prepared();
        let mut live = Player::new(p.clone(), RunOptions::default(), vec![]).unwrap();
        live.advance_to(Instant::ZERO + Duration::from_micros(4_123_456));
        live.intervene(Action::Crash("C".into())).unwrap();
        live.advance_to(Instant::from_secs(6));
        live.intervene(Action::Write {
            node: "A".into(),
            key: "mine".into(),
            value: "x".into(),
            cl: ConsistencyLevel::Quorum,
        })
        .unwrap();
        live.advance_to(Instant::from_secs(12));
        let text = format_interventions(live.interventions());
        let mut replay =
            Player::new(p, RunOptions::default(), Intervention::parse_list(&text).unwrap())
                .unwrap();
        replay.advance_to(Instant::from_secs(12));
        assert_eq!(Snapshot::of(replay.sim()), Snapshot::of(live.sim()));
        assert_eq!(replay.sim().trace().hash(), live.sim().trace().hash());
        assert!(!replay.sim().is_up(replay.sim().node_id("C").unwrap()));
        assert_eq!(live.full_run().0.trace_hash, replay.full_run().0.trace_hash);
    }

    #[test]
    fn intervening_in_the_past_forks_and_seeking_keeps_interventions() {
        let mut player = Player::new(prepared(), RunOptions::default(), vec![]).unwrap();
        player.advance_to(Instant::from_secs(10));
        player.intervene(Action::Crash("B".into())).unwrap();
        player.advance_to(Instant::from_secs(15));
        // Seeking back before the crash and forward again keeps it.
        player.seek(Instant::from_secs(2));
        assert!(player.sim().is_up(NodeId(1)));
        player.seek(Instant::from_secs(14));
        assert!(!player.sim().is_up(NodeId(1)), "the crash is replayed");
        // Intervening before it forks: the crash at 10 s is gone.
        player.seek(Instant::from_secs(6));
        player.intervene(Action::Crash("C".into())).unwrap();
        assert_eq!(player.interventions().len(), 1);
        player.advance_to(Instant::from_secs(14));
        assert!(player.sim().is_up(NodeId(1)));
        assert!(!player.sim().is_up(NodeId(2)));
    }

    #[test]
    fn a_refused_intervention_changes_nothing() {
        let mut player = Player::new(prepared(), RunOptions::default(), vec![]).unwrap();
        player.advance_to(Instant::from_secs(2));
        let before = player.sim().trace().hash();
        let err = player.intervene(Action::Restart("A".into())).unwrap_err();
        assert!(err.to_string().contains("A"), "{err}");
        let err = player.intervene(Action::Crash("Z".into())).unwrap_err();
        assert!(err.to_string().contains("Z"), "{err}");
        assert!(player.interventions().is_empty());
        assert_eq!(player.sim().trace().hash(), before);
    }

    #[test]
    fn snapshot_shows_a_join_in_progress() {
        let mut player = Player::new(prepared(), RunOptions::default(), vec![]).unwrap();
        player.advance_to(Instant::from_secs(7));
        let before = Snapshot::of(player.sim());
        assert_eq!(before.arcs.len(), 12);
        let total: f64 = before.arcs.iter().map(|a| a.width).sum();
        assert!((total - 1.0).abs() < 1e-9, "arcs cover the ring once: {total}");
        assert!(before.nodes.iter().all(|n| n.status == "UN" && n.ownership.is_some()));
        // Find a moment while D streams.
        let mut seen_pending = false;
        for s in 9..25 {
            player.advance_to(Instant::from_secs(s));
            let snap = Snapshot::of(player.sim());
            let d = &snap.nodes[3];
            if d.status == "UJ" && !snap.pending.is_empty() {
                assert!(d.ownership.is_none());
                assert!(snap.pending.iter().all(|p| p.node == NodeId(3)));
                seen_pending = true;
                break;
            }
        }
        assert!(seen_pending, "D was never seen joining with pending ranges");
        player.advance_to(Instant::from_secs(29));
        let after = Snapshot::of(player.sim());
        assert_eq!(after.nodes[3].status, "UN");
        assert_eq!(after.arcs.len(), 16);
        assert!(after.nodes.iter().map(|n| n.ghost_keys).sum::<u64>() > 0, "ghost data");
        assert!(!after.messages.is_empty());
        assert!(after.messages.iter().all(|m| (0.0..=1.0).contains(&m.progress)));
    }

    #[test]
    fn messages_to_a_crashed_node_are_shown_as_dropped() {
        let mut player = Player::new(prepared(), RunOptions::default(), vec![]).unwrap();
        player.advance_to(Instant::from_secs(5));
        player.intervene(Action::Crash("B".into())).unwrap();
        player.advance_to(Instant::ZERO + Duration::from_micros(5_030_000));
        let snap = Snapshot::of(player.sim());
        let to_b: Vec<_> = snap.messages.iter().filter(|m| m.to == NodeId(1)).collect();
        assert!(!to_b.is_empty());
        assert!(to_b.iter().all(|m| m.dropped == Some(DropCause::NodeDown)));
        // The crash shows at once (the process is down), the status only once the others'
        // failure detectors convict B, as `status` would print it.
        assert!(!snap.nodes[1].up);
        assert_eq!(snap.nodes[1].status, "UN", "not convicted 30 ms after the crash");
        assert!(snap.cut.is_empty() && !snap.partitioned);
        let text = explain_message(to_b[0], player.sim().names());
        assert!(text.contains("B is down"), "{text}");
    }

    fn refuses_a_client_request(m: &MessageView) -> bool {
        m.rejection.is_some_and(|r| {
            matches!(r.request, Rejectable::Read(_) | Rejectable::Mint(_) | Rejectable::Mutation(_))
        })
    }

    /// Plays `player` a frame (1 ms) at a time as the explorer does, from its join until a
    /// `Rejected` is in flight and the request it refuses has left the network. Returns the
    /// requests that carried an epoch as last seen in flight, settled (by message id), and the
    /// `Rejected` messages seen in flight.
    fn play_until_a_refusal(
        player: &mut Player,
        until: Instant,
    ) -> (BTreeMap<u64, MessageView>, Vec<MessageView>) {
        let join =
            player.prepared().events.iter().find(|e| matches!(e.event, Event::AddNode { .. }));
        player.advance_to(Instant::ZERO + join.expect("the preset adds a node").at);
        let mut in_flight: BTreeMap<u64, MessageView> = BTreeMap::new();
        let mut settled = BTreeMap::new();
        let mut rejections: Vec<MessageView> = Vec::new();
        while player.now() < until {
            player.advance_to(player.now() + Duration::from_millis(1));
            let snap = Snapshot::of(player.sim());
            let now: BTreeMap<u64, MessageView> = snap
                .messages
                .into_iter()
                .filter(|m| m.epoch.is_some() || m.rejection.is_some())
                .map(|m| (m.id, m))
                .collect();
            for (id, last) in &in_flight {
                if !now.contains_key(id) && last.epoch.is_some() {
                    settled.insert(*id, last.settled(player.sim()).expect("it left the network"));
                }
            }
            rejections.extend(
                now.values()
                    .filter(|m| m.rejection.is_some() && !rejections.iter().any(|r| r.id == m.id))
                    .cloned()
                    .collect::<Vec<_>>(),
            );
            in_flight = now;
            if rejections.iter().any(refuses_a_client_request)
                && settled.values().any(|m| m.fate == Some(Fate::Delivered))
            {
                break;
            }
        }
        (settled, rejections)
    }

    #[test]
    fn a_withdrawn_joiner_shows_no_movement() {
        // F gives way to E's overlapping join at once and withdraws its tokens.
        let text = include_str!("../../tests/scenarios/concurrent-joins-staged.toml");
        let prepared = prepare(parse(text).unwrap(), text).unwrap();
        let mut player = Player::new(prepared, RunOptions::default(), vec![]).unwrap();
        player.advance_to(Instant::from_secs(30));
        let snap = Snapshot::of(player.sim());
        let f = snap.nodes.iter().find(|n| n.name == "F").expect("F");
        assert_eq!(f.status, "OUT");
        assert_eq!(f.movement, None, "{f:?}");
    }

    #[test]
    fn a_fenced_request_is_explained_with_its_epoch_and_the_refusal() {
        // The default preset: E joins a staged cluster at 22 s, and coordinators that have not
        // heard of it yet are fenced by replicas that have.
        let text = crate::presets::preset("join-staged").unwrap().text;
        let prepared = prepare(parse(text).unwrap(), text).unwrap();
        assert!(prepared.node.join_strategy.uses_barriers());
        let mut player = Player::new(prepared, RunOptions::default(), vec![]).unwrap();
        let names = player.sim().names().to_vec();
        let (settled, rejections) = play_until_a_refusal(&mut player, Instant::from_secs(30));

        // Ground truth, independent of how the simulator links verdicts to deliveries: the
        // `Rejected` a replica sent names the request it refused, which its sender had sent it.
        let rejected = rejections
            .iter()
            .find(|r| refuses_a_client_request(r))
            .expect("a client request was fenced after the join started");
        let rejection = rejected.rejection.unwrap();
        let RejectReason::StaleEpoch { carried } = rejection.reason else {
            panic!("refused as stale: {rejection:?}")
        };
        let (Rejectable::Read(op) | Rejectable::Mint(op) | Rejectable::Mutation(op)) =
            rejection.request
        else {
            unreachable!()
        };
        let request = settled
            .values()
            .filter(|m| {
                m.from == rejected.to
                    && m.to == rejected.from
                    && m.op == Some(op)
                    && m.name == request_name(rejection.request)
                    && m.sent_at <= rejected.sent_at
            })
            .max_by_key(|m| m.sent_at)
            .expect("the refused request was seen in flight");
        let (replica, coordinator) =
            (&names[request.to.0 as usize], &names[request.from.0 as usize]);

        let text = explain_message(request, &names);
        assert!(text.contains(&format!("It carries topology epoch {carried}")), "{text}");
        assert!(
            text.contains(&format!(
                "{replica} refused it: it knows epoch {} (stale epoch) — {coordinator} catches up",
                rejection.epoch
            )),
            "{text}"
        );
        assert!(!text.contains("accepted"), "{text}");
        // Before it arrived, only the epoch and the rule.
        let in_flight = MessageView { fate: None, ..request.clone() };
        let text = explain_message(&in_flight, &names);
        assert!(text.contains(&format!("It carries topology epoch {carried}")), "{text}");
        assert!(text.contains(&format!("{replica} refuses it if it knows a newer one")), "{text}");
        assert!(!text.contains("refused it"), "{text}");

        // The refusal itself says what was refused and why.
        let text = explain_message(rejected, &names);
        assert!(
            text.contains(&format!(
                "{replica} refuses {coordinator}'s {}: it was planned under topology epoch \
                 {carried}, but {replica} knows epoch {} (stale epoch)",
                request.name, rejection.epoch
            )),
            "{text}"
        );

        // A request that was not fenced was accepted.
        let accepted = settled
            .values()
            .find(|m| m.fate == Some(Fate::Delivered))
            .expect("a request was delivered and accepted");
        let text = explain_message(accepted, &names);
        let epoch = accepted.epoch.unwrap();
        assert!(text.contains(&format!("It carries topology epoch {epoch}")), "{text}");
        assert!(
            text.ends_with(&format!("{} accepted it.", names[accepted.to.0 as usize])),
            "{text}"
        );
    }

    #[test]
    fn epochs_are_explained_only_where_they_are_carried_and_checked() {
        let text = crate::presets::preset("join-staged").unwrap().text;
        let prepared = prepare(parse(text).unwrap(), text).unwrap();
        let options = RunOptions {
            strategy: Some(crate::membership::JoinStrategy::Immediate),
            ..RunOptions::default()
        };
        let mut player = Player::new(prepared, options, vec![]).unwrap();
        player.advance_to(Instant::from_secs(23));
        let names = player.sim().names().to_vec();
        let snap = Snapshot::of(player.sim());
        let request = snap.messages.iter().find(|m| m.epoch.is_some()).expect("a request");
        assert!(!request.receiver_fences);
        let text = explain_message(request, &names);
        assert!(text.contains("does not check it: only the staged and sync-dual-write"), "{text}");
        let gossip = snap.messages.iter().find(|m| m.kind == MessageKind::Gossip).unwrap();
        assert_eq!(gossip.epoch, None);
        assert!(!explain_message(gossip, &names).contains("epoch"));
    }

    #[test]
    fn stepping_moves_time_forward_from_the_very_start() {
        let mut player = Player::new(prepared(), RunOptions::default(), vec![]).unwrap();
        let mut last = player.now();
        for _ in 0..5 {
            let now = player.step();
            assert!(now > last, "a step from {last:?} stayed at {now:?}");
            last = now;
        }
        assert!(last < Instant::from_secs(2), "steps are small: {last:?}");
    }

    #[test]
    fn a_partition_shows_which_pairs_it_cuts() {
        let mut player = Player::new(prepared(), RunOptions::default(), vec![]).unwrap();
        player.advance_to(Instant::from_secs(2));
        player.intervene(Action::Partition(vec![vec!["A".into()]])).unwrap();
        let snap = Snapshot::of(player.sim());
        assert!(snap.partitioned);
        assert_eq!(snap.cut, vec![(NodeId(0), NodeId(1)), (NodeId(0), NodeId(2))]);
        player.intervene(Action::Heal).unwrap();
        assert!(Snapshot::of(player.sim()).cut.is_empty());
    }

    #[test]
    fn op_messages_finds_the_replicas_that_answered() {
        let mut player = Player::new(prepared(), RunOptions::default(), vec![]).unwrap();
        player.advance_to(Instant::from_secs(3));
        player
            .intervene(Action::Read {
                node: "A".into(),
                key: "k3".into(),
                cl: ConsistencyLevel::Quorum,
            })
            .unwrap();
        let at_invoke = player.sim().clone();
        let ops = &at_invoke.history().ops;
        let index = ops.iter().rposition(|o| o.key == "k3" && o.op_type == OpType::Invoke).unwrap();
        player.advance_to(Instant::from_secs(4));
        let ops_after = &player.sim().history().ops;
        let done = crate::history::Pairing::of(ops_after)
            .completion_of(index)
            .map(|c| &ops_after[c])
            .expect("completed within a second");
        assert_eq!(done.op_type, OpType::Ok);
        let found = op_messages(&at_invoke, &ops[index], done.time);
        // A is one of the three replicas: it reads locally and asks B and C.
        assert_eq!(found.asked.len(), 3, "{found:?}");
        assert!(found.answered.contains(&NodeId(0)));
        assert!(found.answered.len() >= 2, "QUORUM needs two answers: {found:?}");
        assert!(found.answered.is_subset(&found.asked));
        assert!(found.messages.len() >= 3, "two reads and at least one reply: {found:?}");
        // The arithmetic on screen, from the coordinator's own plan.
        let names: Vec<String> = ["A", "B", "C"].iter().map(|s| s.to_string()).collect();
        let text = explain_arithmetic(&found, ConsistencyLevel::Quorum, false, &names).unwrap();
        assert!(
            text.starts_with("RF 3 → QUORUM needs 2 replies of A, B, C · asked A, B, C"),
            "{text}"
        );
        assert!(text.ends_with('✓'), "{text}");
    }
}
