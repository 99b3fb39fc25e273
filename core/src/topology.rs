//! What a node knows of the cluster's shape: the ring (read placement), the pending replicas
//! (extra write placement while ranges move) and the members it talks to.

use crate::id::NodeId;
use crate::ring::Ring;
use crate::token::{Token, TokenRange};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Arc;

/// A node gaining a range: it receives writes for the range (and counts toward acks) before it
/// serves reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PendingRange {
    /// The range being gained.
    pub range: TokenRange,
    /// The node gaining it.
    pub node: NodeId,
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

    /// Nodes gaining `token`'s range (write-only replicas), deduplicated, in node order.
    pub fn pending_replicas(&self, token: Token) -> Vec<NodeId> {
        let set: BTreeSet<NodeId> =
            self.pending.iter().filter(|p| p.range.contains(token)).map(|p| p.node).collect();
        set.into_iter().collect()
    }

    /// Every member (nodes in the ring and pending nodes).
    pub fn members(&self) -> &BTreeSet<NodeId> {
        &self.members
    }
}
