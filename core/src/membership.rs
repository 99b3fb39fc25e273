//! Membership: what one node believes about every member — its lifecycle status and tokens — and
//! the read and write placement that belief implies under each join strategy.
//!
//! Every node holds a [`ClusterView`], fed by gossip (`STATUS` and `TOKENS` application states),
//! by topology barriers (the `staged` strategy) and by its own lifecycle. [`ClusterView::topology`]
//! is a pure function of the view and the [`JoinStrategy`]: every node applies the same rule to
//! what it knows, so two nodes disagree on placement exactly when they disagree on the view —
//! which is the window the strategies handle differently.
//!
//! | status of X | `pending-ranges`, `staged` | `sync-dual-write` | `dual-write-cutover` | `stream-then-cutover` |
//! |---|---|---|---|---|
//! | `BOOT` | X pending, counted (+1 ack) | X pending, required | X shadow copy | not written |
//! | `MID_JOIN` (`staged`, `pending-ranges`) | X in the read ring; the replicas it replaces still written, counted | — | — | — |
//! | `NORMAL` | X in the ring | X in the ring | X in the ring | X in the ring |
//!
//! `immediate` announces `NORMAL` at once; `pending-ranges` passes through `MID_JOIN` too, for one
//! RING_DELAY. A `LEAVING` node stays in the ring while the nodes that gain its ranges are pending
//! (counted), under every strategy; then `MID_LEAVE` switches reads to them while it still takes
//! writes, and `LEFT` removes it.

use crate::gossip::Status;
use crate::id::NodeId;
use crate::placement::{RangeMovement, plan_join, plan_leave};
use crate::ring::{Ring, RingError};
use crate::token::Token;
use crate::topology::{PendingRange, Topology, WriteRole};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// How a node joins a live cluster (docs/semantics.md, "Join strategies").
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum JoinStrategy {
    /// Cassandra's gossip era: announce BOOT, sleep RING_DELAY, stream, announce NORMAL.
    PendingRanges,
    /// Explicit epochs acknowledged by every live node before streaming, before the read switch
    /// and before the old replicas stop taking writes.
    #[default]
    Staged,
    /// The joiner enters the ring at once and streams in the background.
    Immediate,
    /// Old replicas count for the level; the joiner gets a best-effort copy; then cutover.
    DualWriteCutover,
    /// Writes go to the old replicas only; stream; then cutover.
    StreamThenCutover,
    /// Writes must succeed on the old replicas and on the joiner, under `staged`'s epochs,
    /// barriers and fencing: a slow or down joiner makes writes unavailable, never stale.
    SyncDualWrite,
}

impl JoinStrategy {
    /// Every strategy, in the order the comparison prints them.
    pub const ALL: [JoinStrategy; 6] = [
        JoinStrategy::Staged,
        JoinStrategy::PendingRanges,
        JoinStrategy::Immediate,
        JoinStrategy::DualWriteCutover,
        JoinStrategy::StreamThenCutover,
        JoinStrategy::SyncDualWrite,
    ];

    /// The name used in scenario files and on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            JoinStrategy::PendingRanges => "pending-ranges",
            JoinStrategy::Staged => "staged",
            JoinStrategy::Immediate => "immediate",
            JoinStrategy::DualWriteCutover => "dual-write-cutover",
            JoinStrategy::StreamThenCutover => "stream-then-cutover",
            JoinStrategy::SyncDualWrite => "sync-dual-write",
        }
    }

    /// Whether every live node must acknowledge each topology change before the next step,
    /// replicas fence requests planned under an older epoch, and one movement holds a range at
    /// a time (`staged`, and `sync-dual-write`, which adds its required joiner to the same steps).
    pub const fn uses_barriers(self) -> bool {
        matches!(self, JoinStrategy::Staged | JoinStrategy::SyncDualWrite)
    }

    /// Whether a join waits after BOOT and passes through MID_JOIN (reads switch before the
    /// losers stop taking writes), each step known everywhere before the next: by a barrier
    /// under the fenced strategies, by RING_DELAY under `pending-ranges`.
    pub const fn steps_through_mid_join(self) -> bool {
        self.uses_barriers() || matches!(self, JoinStrategy::PendingRanges)
    }
}

impl fmt::Display for JoinStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown strategy name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown join strategy {0:?}; expected one of: {names}", names = JoinStrategy::ALL.map(JoinStrategy::name).join(", "))]
pub struct UnknownStrategy(pub String);

impl FromStr for JoinStrategy {
    type Err = UnknownStrategy;
    fn from_str(s: &str) -> Result<Self, UnknownStrategy> {
        JoinStrategy::ALL
            .into_iter()
            .find(|j| j.name() == s)
            .ok_or_else(|| UnknownStrategy(s.to_string()))
    }
}

/// What a node believes about one member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Lifecycle status.
    pub status: Status,
    /// Its tokens (bootstrap tokens while it joins), sorted.
    pub tokens: Vec<Token>,
    /// Its rack, when the cluster is rack-aware.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<String>,
    /// The topology epoch of its latest status change (a Lamport number: one more than the
    /// highest epoch its announcer knew), 0 for the members a cluster was formed with.
    #[serde(default)]
    pub epoch: u64,
}

/// One node's belief about the whole cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterView {
    /// Replication factor (the keyspace's, shared by every node).
    pub rf: usize,
    /// Every member known, `LEFT` ones included (so a late message cannot resurrect them).
    pub members: BTreeMap<NodeId, Member>,
}

impl ClusterView {
    /// A view that knows no member yet (a joining node before it has gossiped).
    pub fn empty(rf: usize) -> Self {
        ClusterView { rf, members: BTreeMap::new() }
    }

    /// The view of a formed cluster: every node of `ring` is `NORMAL`.
    pub fn from_ring(ring: &Ring) -> Self {
        let mut members = BTreeMap::new();
        for node in ring.nodes() {
            members.insert(
                node,
                Member {
                    status: Status::Normal,
                    tokens: ring.tokens_of(node),
                    rack: ring.racks().and_then(|r| r.get(&node).cloned()),
                    epoch: 0,
                },
            );
        }
        ClusterView { rf: ring.rf(), members }
    }

    /// What is known of `node`.
    pub fn member(&self, node: NodeId) -> Option<&Member> {
        self.members.get(&node)
    }

    /// `node`'s status.
    pub fn status(&self, node: NodeId) -> Option<Status> {
        self.members.get(&node).map(|m| m.status)
    }

    /// Whether `node` is a member that has not left.
    pub fn is_member(&self, node: NodeId) -> bool {
        self.status(node).is_some_and(|s| s != Status::Left)
    }

    /// The highest topology epoch this view knows; a node announcing a change takes the next.
    pub fn epoch(&self) -> u64 {
        self.members.values().map(|m| m.epoch).max().unwrap_or(0)
    }

    /// Members that have not left, in id order.
    pub fn live_members(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.members.iter().filter(|(_, m)| m.status != Status::Left).map(|(n, _)| *n)
    }

    /// The first member in a range movement (joining or leaving), if any.
    pub fn movement_in_progress(&self) -> Option<(NodeId, Status)> {
        self.members
            .iter()
            .find(|(_, m)| {
                matches!(
                    m.status,
                    Status::Boot | Status::MidJoin | Status::Leaving | Status::MidLeave
                )
            })
            .map(|(n, m)| (*n, m.status))
    }

    /// The ranges `node` would hand over if it left now.
    pub fn movements_if_leaving(&self, node: NodeId) -> Result<Vec<RangeMovement>, RingError> {
        match self.ring()? {
            Some(ring) if ring.contains_node(node) => plan_leave(&ring, node),
            _ => Ok(Vec::new()),
        }
    }

    /// The movement holding a range that `movements` (of `node`) would change: another member
    /// joining or leaving whose own ranges overlap them, with its status and epoch. Under
    /// `staged` one movement per range runs at a time (a range lock); movements of disjoint
    /// ranges may run together.
    pub fn conflicting_movement(
        &self,
        node: NodeId,
        movements: &[RangeMovement],
    ) -> Option<(NodeId, Status, u64)> {
        self.members
            .iter()
            .filter(|(n, m)| {
                **n != node
                    && matches!(
                        m.status,
                        Status::Boot | Status::MidJoin | Status::Leaving | Status::MidLeave
                    )
            })
            .find(|(n, _)| {
                // A movement that cannot be planned is taken to hold everything.
                self.movements(**n).map_or(true, |theirs| {
                    theirs.iter().any(|t| movements.iter().any(|m| m.range.overlaps(&t.range)))
                })
            })
            .map(|(n, m)| (*n, m.status, m.epoch))
    }

    fn ring_of(&self, include: impl Fn(Status) -> bool) -> Result<Option<Ring>, RingError> {
        let mut assignments = Vec::new();
        let mut racks = BTreeMap::new();
        for (node, m) in &self.members {
            if include(m.status) {
                assignments.extend(m.tokens.iter().map(|t| (*t, *node)));
                if let Some(r) = &m.rack {
                    racks.insert(*node, r.clone());
                }
            }
        }
        if assignments.is_empty() {
            return Ok(None);
        }
        let ring = if racks.is_empty() {
            Ring::new(assignments, self.rf)?
        } else {
            Ring::with_racks(assignments, self.rf, &racks)?
        };
        Ok(Some(ring))
    }

    /// The settled ring: members that own their tokens (`NORMAL`, `LEAVING`, `MID_LEAVE`).
    pub fn ring(&self) -> Result<Option<Ring>, RingError> {
        self.ring_of(|s| matches!(s, Status::Normal | Status::Leaving | Status::MidLeave))
    }

    /// The movements of the member in progress: `node` joining (from the settled ring) or leaving.
    pub fn movements(&self, node: NodeId) -> Result<Vec<RangeMovement>, RingError> {
        let Some(m) = self.members.get(&node) else { return Ok(Vec::new()) };
        let Some(ring) = self.ring()? else { return Ok(Vec::new()) };
        match m.status {
            Status::Boot | Status::MidJoin => plan_join(&ring, node, &m.tokens),
            Status::Leaving | Status::MidLeave => plan_leave(&ring, node),
            Status::Normal | Status::Left => Ok(Vec::new()),
        }
    }

    /// Read and write placement under `strategy`. `None` when no member owns tokens yet.
    pub fn topology(&self, strategy: JoinStrategy) -> Result<Option<Topology>, RingError> {
        let Some(settled) = self.ring()? else { return Ok(None) };
        let mut read_ring = settled.clone();
        let mut pending = Vec::new();
        for (node, m) in &self.members {
            match m.status {
                Status::Boot => {
                    let role = match strategy {
                        JoinStrategy::PendingRanges
                        | JoinStrategy::Staged
                        | JoinStrategy::Immediate => Some(WriteRole::Counted),
                        JoinStrategy::SyncDualWrite => Some(WriteRole::Required),
                        JoinStrategy::DualWriteCutover => Some(WriteRole::Shadow),
                        JoinStrategy::StreamThenCutover => None,
                    };
                    if let Some(role) = role {
                        for mv in plan_join(&settled, *node, &m.tokens)? {
                            pending.push(PendingRange { range: mv.range, node: *node, role });
                        }
                    }
                }
                Status::MidJoin => {
                    // Reads switch to the joiner; the replicas it replaces keep taking writes
                    // until the last epoch, so a coordinator still reading the old placement
                    // sees every write.
                    let moves = plan_join(&settled, *node, &m.tokens)?;
                    read_ring = read_ring.with_tokens(*node, &m.tokens)?;
                    for mv in moves {
                        if let Some(source) = mv.source {
                            pending.push(PendingRange {
                                range: mv.range,
                                node: source,
                                role: WriteRole::Counted,
                            });
                        }
                    }
                }
                Status::Leaving => {
                    for mv in plan_leave(&settled, *node)? {
                        pending.push(PendingRange {
                            range: mv.range,
                            node: mv.gainer,
                            role: WriteRole::Counted,
                        });
                    }
                }
                Status::MidLeave => {
                    // Reads switch to the gainers; the leaver keeps taking writes until every
                    // coordinator reads the new placement.
                    for mv in plan_leave(&settled, *node)? {
                        pending.push(PendingRange {
                            range: mv.range,
                            node: *node,
                            role: WriteRole::Counted,
                        });
                    }
                    read_ring = read_ring.without_node(*node)?;
                }
                Status::Normal | Status::Left => {}
            }
        }
        let epochs = self.members.iter().map(|(n, m)| (*n, m.epoch)).collect();
        let left_epoch = self
            .members
            .values()
            .filter(|m| m.status == Status::Left)
            .map(|m| m.epoch)
            .max()
            .unwrap_or(0);
        Ok(Some(Topology::new(read_ring).with_pending(pending).with_epochs(epochs, left_epoch)))
    }

    /// A compact binary encoding, for persisting the view in storage metadata.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(self.rf as u64).to_le_bytes());
        out.extend_from_slice(&(self.members.len() as u64).to_le_bytes());
        for (node, m) in &self.members {
            out.extend_from_slice(&node.0.to_le_bytes());
            out.push(status_code(m.status));
            out.extend_from_slice(&(m.tokens.len() as u64).to_le_bytes());
            for t in &m.tokens {
                out.extend_from_slice(&t.to_le_bytes());
            }
            let rack = m.rack.as_deref().unwrap_or("");
            out.extend_from_slice(&(rack.len() as u64).to_le_bytes());
            out.extend_from_slice(rack.as_bytes());
            out.extend_from_slice(&m.epoch.to_le_bytes());
        }
        out
    }

    /// Decodes [`ClusterView::encode`]'s output; `None` when it is malformed.
    pub fn decode(bytes: &[u8]) -> Option<ClusterView> {
        let mut r = Reader(bytes);
        let rf = r.u64()? as usize;
        let n = r.u64()?;
        let mut members = BTreeMap::new();
        for _ in 0..n {
            let node = NodeId(u32::from_le_bytes(r.take(4)?.try_into().ok()?));
            let status = status_from_code(r.take(1)?[0])?;
            let count = r.u64()?;
            let mut tokens = Vec::with_capacity(count.min(4096) as usize);
            for _ in 0..count {
                tokens.push(r.u64()?);
            }
            let len = r.u64()? as usize;
            let rack = String::from_utf8(r.take(len)?.to_vec()).ok()?;
            let rack = (!rack.is_empty()).then_some(rack);
            let epoch = r.u64()?;
            members.insert(node, Member { status, tokens, rack, epoch });
        }
        r.0.is_empty().then_some(ClusterView { rf, members })
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

fn status_code(s: Status) -> u8 {
    match s {
        Status::Boot => 0,
        Status::MidJoin => 1,
        Status::Normal => 2,
        Status::Leaving => 3,
        Status::Left => 4,
        Status::MidLeave => 5,
    }
}

fn status_from_code(c: u8) -> Option<Status> {
    Some(match c {
        0 => Status::Boot,
        1 => Status::MidJoin,
        2 => Status::Normal,
        3 => Status::Leaving,
        4 => Status::Left,
        5 => Status::MidLeave,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::TokenRange;

    const A: NodeId = NodeId(0);
    const B: NodeId = NodeId(1);
    const C: NodeId = NodeId(2);
    const X: NodeId = NodeId(3);

    fn view_with_joiner(status: Status) -> ClusterView {
        let ring = Ring::new([(100, A), (200, B), (300, C)], 2).unwrap();
        let mut v = ClusterView::from_ring(&ring);
        v.members.insert(X, Member { status, tokens: vec![150], rack: None, epoch: 1 });
        v
    }

    #[test]
    fn strategies_round_trip_their_names() {
        for s in JoinStrategy::ALL {
            assert_eq!(s.name().parse::<JoinStrategy>().unwrap(), s);
        }
        let err = "eventual".parse::<JoinStrategy>().unwrap_err().to_string();
        assert!(err.contains("staged") && err.contains("sync-dual-write"), "{err}");
    }

    #[test]
    fn boot_makes_the_joiner_pending_with_the_strategys_role() {
        let v = view_with_joiner(Status::Boot);
        let cases = [
            (JoinStrategy::PendingRanges, Some(WriteRole::Counted)),
            (JoinStrategy::Staged, Some(WriteRole::Counted)),
            (JoinStrategy::SyncDualWrite, Some(WriteRole::Required)),
            (JoinStrategy::DualWriteCutover, Some(WriteRole::Shadow)),
            (JoinStrategy::StreamThenCutover, None),
        ];
        for (strategy, role) in cases {
            let t = v.topology(strategy).unwrap().unwrap();
            // Reads are unchanged: X is not in the ring.
            assert!(!t.ring().contains_node(X), "{strategy}");
            match role {
                // Cassandra's PrepareJoin example: X gains (100,150] and (300,100].
                Some(role) => {
                    assert_eq!(t.pending_with_role(125, role), vec![X], "{strategy}");
                    assert_eq!(t.pending_with_role(50, role), vec![X], "{strategy}");
                    assert!(t.pending_with_role(250, role).is_empty(), "{strategy}");
                }
                None => assert!(t.pending().is_empty(), "{strategy}"),
            }
        }
    }

    #[test]
    fn mid_join_switches_reads_and_keeps_the_losing_replicas_written() {
        let v = view_with_joiner(Status::MidJoin);
        let t = v.topology(JoinStrategy::Staged).unwrap().unwrap();
        assert_eq!(t.ring().replicas(125), &[X, B]);
        // C loses (100,150]; B loses (300,100]: both still take writes.
        assert_eq!(t.pending_replicas(125), vec![C]);
        assert_eq!(t.pending_replicas(50), vec![B]);
        assert!(
            t.pending().iter().all(|p| p.range != TokenRange { start: 150, end: 200 }),
            "(150,200] does not move"
        );
    }

    #[test]
    fn leaving_node_stays_in_the_ring_and_gainers_are_pending() {
        let ring = Ring::new([(100, A), (200, B), (300, C), (400, X)], 2).unwrap();
        let mut v = ClusterView::from_ring(&ring);
        v.members.get_mut(&X).unwrap().status = Status::Leaving;
        let t = v.topology(JoinStrategy::Staged).unwrap().unwrap();
        assert!(t.ring().contains_node(X));
        assert!(!t.pending().is_empty());
        assert!(t.pending().iter().all(|p| p.node != X));
        v.members.get_mut(&X).unwrap().status = Status::MidLeave;
        let t = v.topology(JoinStrategy::Staged).unwrap().unwrap();
        assert!(!t.ring().contains_node(X), "reads have switched");
        assert!(!t.pending().is_empty() && t.pending().iter().all(|p| p.node == X));
        v.members.get_mut(&X).unwrap().status = Status::Left;
        let t = v.topology(JoinStrategy::Staged).unwrap().unwrap();
        assert!(!t.ring().contains_node(X) && t.pending().is_empty());
    }

    #[test]
    fn encoding_round_trips_and_rejects_garbage() {
        let mut v = view_with_joiner(Status::Boot);
        v.members.get_mut(&A).unwrap().rack = Some("r1".into());
        assert_eq!(ClusterView::decode(&v.encode()), Some(v.clone()));
        let bytes = v.encode();
        assert_eq!(ClusterView::decode(&bytes[..bytes.len() - 1]), None);
        assert_eq!(ClusterView::decode(b"nonsense"), None);
    }

    #[test]
    fn movement_in_progress_names_the_joiner() {
        assert_eq!(view_with_joiner(Status::Boot).movement_in_progress(), Some((X, Status::Boot)));
        assert_eq!(view_with_joiner(Status::Normal).movement_in_progress(), None);
    }
}
