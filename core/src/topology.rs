//! What a node knows of the cluster's shape: the ring (read placement), the pending replicas
//! (extra write placement while ranges move) and the members it talks to.

use crate::id::NodeId;
use crate::ring::Ring;
use crate::token::{Token, TokenRange};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// How a coordinator treats an extra write target of a range.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum WriteRole {
    /// Written to, and raises the acknowledgements required by one (Cassandra #833); hinted
    /// when down.
    #[default]
    Counted,
    /// Must acknowledge for the write to succeed, on top of the level (`sync-dual-write`).
    Required,
    /// Sent a best-effort copy that is neither counted nor hinted (`dual-write-cutover`).
    Shadow,
}

/// An extra write target of a range: a node gaining it (receives writes before it serves
/// reads), or, in the `staged` strategy's middle epoch, the node losing it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PendingRange {
    /// The range.
    pub range: TokenRange,
    /// The extra target.
    pub node: NodeId,
    /// How writes treat it.
    #[serde(default)]
    pub role: WriteRole,
}

/// Read placement (the ring), write placement (ring ∪ pending) and membership.
#[derive(Clone, Debug, PartialEq)]
pub struct Topology {
    // Shared: every node of a simulation holds the same ring, and a 1,000-node ring with 16
    // vnodes each is ~400 KB with its replica table.
    ring: Arc<Ring>,
    pending: Vec<PendingRange>,
    members: BTreeSet<NodeId>,
    /// The topology epoch of each member's latest status change.
    epochs: BTreeMap<NodeId, u64>,
    /// The highest epoch of a member that left (its ranges moved to others).
    left_epoch: u64,
}

impl Topology {
    /// A topology with no range movement; members are the ring's nodes.
    pub fn new(ring: Ring) -> Self {
        let members = ring.nodes().into_iter().collect();
        Topology {
            ring: Arc::new(ring),
            pending: Vec::new(),
            members,
            epochs: BTreeMap::new(),
            left_epoch: 0,
        }
    }

    /// The same topology with the members' epochs (see [`Topology::epoch_for`]).
    pub fn with_epochs(mut self, epochs: BTreeMap<NodeId, u64>, left_epoch: u64) -> Self {
        self.epochs = epochs;
        self.left_epoch = left_epoch;
        self
    }

    /// The placement epoch of `token`: the highest epoch among the members that read or write
    /// it (natural and pending replicas) and the members that left. Requests carry it; a replica
    /// whose own placement epoch for the token is higher refuses them (the coordinator planned
    /// with a placement that misses a change, see `docs/semantics.md`, "Epochs and fencing").
    ///
    /// Changes that touch a token are serialised (one movement at a time per range) and each
    /// takes a higher epoch than the last, so a coordinator that misses a change of this token's
    /// placement carries a lower number than a replica that knows it. Missing only the last step
    /// of a movement (NORMAL after MID_JOIN, LEFT after MID_LEAVE) is safe: the step before it
    /// writes a superset and reads the same replicas.
    pub fn epoch_for(&self, token: Token) -> u64 {
        let epoch = |n: &NodeId| self.epochs.get(n).copied().unwrap_or(0);
        let natural = self.ring.replicas(token).iter().map(epoch).max().unwrap_or(0);
        let pending = self
            .pending
            .iter()
            .filter(|p| p.range.contains(token))
            .map(|p| epoch(&p.node))
            .max()
            .unwrap_or(0);
        natural.max(pending).max(self.left_epoch)
    }

    /// The highest epoch of any member: what streams and repairs carry (they cover ranges,
    /// not one token).
    pub fn max_epoch(&self) -> u64 {
        self.epochs.values().copied().max().unwrap_or(0).max(self.left_epoch)
    }

    /// The same topology with pending ranges (and their nodes as members).
    pub fn with_pending(mut self, pending: Vec<PendingRange>) -> Self {
        self.members.extend(pending.iter().map(|p| p.node));
        self.pending = pending;
        self
    }

    /// The ring: natural replicas, read placement.
    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    /// Replication factor.
    pub fn rf(&self) -> usize {
        self.ring.rf()
    }

    /// Pending ranges.
    pub fn pending(&self) -> &[PendingRange] {
        &self.pending
    }

    /// Whether `node` should hold data of `token`: it is a natural replica of it, or gaining it
    /// (a pending range). Data a node holds outside this is ghost data, which cleanup removes.
    pub fn holds(&self, node: NodeId, token: Token) -> bool {
        self.ring().replicas(token).contains(&node)
            || self.pending.iter().any(|p| p.node == node && p.range.contains(token))
    }

    /// Extra write targets of `token`'s range that count toward acks (gaining nodes),
    /// deduplicated, in node order.
    pub fn pending_replicas(&self, token: Token) -> Vec<NodeId> {
        self.pending_with_role(token, WriteRole::Counted)
    }

    /// Extra write targets of `token`'s range with `role`, deduplicated, in node order.
    pub fn pending_with_role(&self, token: Token, role: WriteRole) -> Vec<NodeId> {
        if self.pending.is_empty() {
            return Vec::new();
        }
        let set: BTreeSet<NodeId> = self
            .pending
            .iter()
            .filter(|p| p.role == role && p.range.contains(token))
            .map(|p| p.node)
            .collect();
        set.into_iter().collect()
    }

    /// Every member (nodes in the ring and pending nodes).
    pub fn members(&self) -> &BTreeSet<NodeId> {
        &self.members
    }
}
