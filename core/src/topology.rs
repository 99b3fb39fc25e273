//! What a node knows of the cluster's shape: the ring (read placement), the pending replicas
//! (extra write placement while ranges move) and the members it talks to.

use crate::id::NodeId;
use crate::ring::Ring;
use crate::token::{Token, TokenRange};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
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
}

impl Topology {
    /// A topology with no range movement; members are the ring's nodes.
    pub fn new(ring: Ring) -> Self {
        let members = ring.nodes().into_iter().collect();
        Topology { ring: Arc::new(ring), pending: Vec::new(), members }
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
