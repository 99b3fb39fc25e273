//! Range movements: which ranges change hands when a node joins or leaves, who gains each one,
//! and which replica it must be streamed from.
//!
//! The rule is Cassandra's *consistent range movement*: a node gaining a range streams it from
//! the replica that is losing it, so the data it starts from is exactly what the replica it
//! replaces held — never from an arbitrary other replica that may have missed writes. When no
//! replica loses the range (fewer nodes than RF before the change), any old replica may serve it.
//!
//! Pending ranges follow: while a movement is in progress the gaining node is a *pending*
//! replica of its ranges — it receives writes (and raises the number of acks required, Cassandra
//! #833) but serves no reads until it becomes a natural replica.

use crate::id::NodeId;
use crate::ring::{Ring, RingError};
use crate::token::{Token, TokenRange};
use crate::topology::{PendingRange, WriteRole};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// One range gained by one node.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RangeMovement {
    /// The range.
    pub range: TokenRange,
    /// The node gaining it.
    pub gainer: NodeId,
    /// The replica losing it, which must stream it (consistent range movement); `None` when no
    /// replica loses it.
    pub source: Option<NodeId>,
    /// Natural replicas before the change, in preference order.
    pub old: Vec<NodeId>,
    /// Natural replicas after the change, in preference order.
    pub new: Vec<NodeId>,
}

impl RangeMovement {
    /// Replicas that may serve this range when the strict source is down and the operator
    /// explicitly accepts an inconsistent source: the old replicas that keep the range.
    pub fn alternative_sources(&self) -> Vec<NodeId> {
        self.old
            .iter()
            .copied()
            .filter(|n| Some(*n) != self.source && self.new.contains(n))
            .collect()
    }
}

/// Every range movement that turns `old` into `new`, coalesced into maximal contiguous ranges
/// per (gainer, source), ordered by gainer then range.
pub fn plan(old: &Ring, new: &Ring) -> Vec<RangeMovement> {
    // Each boundary of either ring ends a sub-range that maps to one range in both rings.
    let boundaries: BTreeSet<Token> =
        old.tokens().iter().chain(new.tokens().iter()).copied().collect();
    let boundaries: Vec<Token> = boundaries.into_iter().collect();
    let mut pieces: Vec<RangeMovement> = Vec::new();
    for (i, end) in boundaries.iter().enumerate() {
        let start = if i == 0 { *boundaries.last().expect("non-empty") } else { boundaries[i - 1] };
        let range = TokenRange { start, end: *end };
        let before = old.replicas(*end);
        let after = new.replicas(*end);
        let gained: Vec<NodeId> = after.iter().copied().filter(|n| !before.contains(n)).collect();
        let lost: Vec<NodeId> = before.iter().copied().filter(|n| !after.contains(n)).collect();
        // Pair gainers with losers in preference order (one each for a single join or leave).
        for (k, gainer) in gained.iter().enumerate() {
            pieces.push(RangeMovement {
                range,
                gainer: *gainer,
                source: lost.get(k).copied(),
                old: before.to_vec(),
                new: after.to_vec(),
            });
        }
    }
    coalesce(pieces)
}

fn coalesce(mut pieces: Vec<RangeMovement>) -> Vec<RangeMovement> {
    pieces.sort_by_key(|p| (p.gainer, p.source, p.range.end));
    let mut out: Vec<RangeMovement> = Vec::new();
    for p in pieces {
        match out.last_mut() {
            Some(last)
                if last.gainer == p.gainer
                    && last.source == p.source
                    && last.range.end == p.range.start
                    && last.old == p.old
                    && last.new == p.new =>
            {
                last.range.end = p.range.end;
            }
            _ => out.push(p),
        }
    }
    // A run that wrapped past the top of the ring may continue the first one of its group.
    let mut merged: Vec<RangeMovement> = Vec::new();
    for p in out {
        if let Some(first) = merged.iter_mut().find(|m| {
            m.gainer == p.gainer
                && m.source == p.source
                && p.range.end == m.range.start
                && m.old == p.old
                && m.new == p.new
        }) {
            first.range.start = p.range.start;
        } else {
            merged.push(p);
        }
    }
    merged.sort_by_key(|p| (p.gainer, p.range.start));
    merged
}

/// Movements for `node` joining with `tokens`.
pub fn plan_join(
    ring: &Ring,
    node: NodeId,
    tokens: &[Token],
) -> Result<Vec<RangeMovement>, RingError> {
    Ok(plan(ring, &ring.with_tokens(node, tokens)?))
}

/// Movements for `node` leaving (decommission): every range it held goes to a new replica and
/// is streamed from it.
pub fn plan_leave(ring: &Ring, node: NodeId) -> Result<Vec<RangeMovement>, RingError> {
    Ok(plan(ring, &ring.without_node(node)?))
}

/// The pending ranges a set of movements creates (write-only replicas until they complete).
pub fn pending_ranges(movements: &[RangeMovement]) -> Vec<PendingRange> {
    movements
        .iter()
        .map(|m| PendingRange { range: m.range, node: m.gainer, role: WriteRole::Counted })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: NodeId = NodeId(0);
    const B: NodeId = NodeId(1);
    const C: NodeId = NodeId(2);
    const X: NodeId = NodeId(9);

    #[test]
    fn cassandra_prepare_join_example() {
        // RF=2, A=100, B=200, C=300; X joins at 150.
        let ring = Ring::new([(100, A), (200, B), (300, C)], 2).unwrap();
        let moves = plan_join(&ring, X, &[150]).unwrap();
        assert_eq!(
            moves,
            vec![
                // X becomes primary of (100,150]: C drops out of [B, C] → [X, B].
                RangeMovement {
                    range: TokenRange { start: 100, end: 150 },
                    gainer: X,
                    source: Some(C),
                    old: vec![B, C],
                    new: vec![X, B],
                },
                // X becomes second replica of (300,100]: B drops out of [A, B] → [A, X].
                RangeMovement {
                    range: TokenRange { start: 300, end: 100 },
                    gainer: X,
                    source: Some(B),
                    old: vec![A, B],
                    new: vec![A, X],
                },
            ]
        );
        let pending = pending_ranges(&moves);
        assert_eq!(pending.len(), 2);
        assert!(pending.iter().all(|p| p.node == X));
    }

    #[test]
    fn fourth_node_into_rf3_three_node_cluster() {
        let ring = Ring::new([(100, A), (200, B), (300, C)], 3).unwrap();
        let moves = plan_join(&ring, X, &[250]).unwrap();
        // Before: everyone replicates everything, so no one *loses* without X taking over: each
        // range gained by X is lost by exactly one old replica.
        assert!(moves.iter().all(|m| m.gainer == X && m.source.is_some()));
        let gained: u128 = moves.iter().map(|m| m.range.width()).sum();
        // X ends up replicating 3 of the 4 ranges' worth of ring.
        let after = ring.with_tokens(X, &[250]).unwrap().effective_ownership();
        let expected = (after[&X] * 2f64.powi(64)) as u128;
        assert!((gained as i128 - expected as i128).abs() < 1 << 20, "{gained} vs {expected}");
    }

    #[test]
    fn leave_streams_from_the_leaving_node() {
        let ring = Ring::new([(100, A), (200, B), (300, C), (400, X)], 2).unwrap();
        let moves = plan_leave(&ring, X).unwrap();
        assert!(!moves.is_empty());
        assert!(moves.iter().all(|m| m.source == Some(X) && m.gainer != X));
    }

    #[test]
    fn no_source_when_nobody_loses_the_range() {
        // Two nodes, RF=3: a third node gains everything and nobody loses anything.
        let ring = Ring::new([(100, A), (200, B)], 3).unwrap();
        let moves = plan_join(&ring, C, &[300]).unwrap();
        assert!(moves.iter().all(|m| m.source.is_none()));
        assert_eq!(moves.iter().map(|m| m.range.width()).sum::<u128>(), 1u128 << 64);
        // The first range, (100, 200], is replicated by B then A.
        assert_eq!(moves[0].range.start, 100);
        assert_eq!(moves[0].alternative_sources(), vec![B, A]);
    }

    proptest! {
        #[test]
        fn movements_explain_every_change(
            tokens in proptest::collection::btree_set(any::<u64>(), 4..24),
            joiner_tokens in proptest::collection::btree_set(any::<u64>(), 1..4),
            rf in 1usize..4,
        ) {
            let tokens: Vec<u64> = tokens.into_iter().collect();
            let ring = Ring::new(tokens.iter().enumerate().map(|(i, t)| (*t, NodeId(i as u32 % 4))), rf).unwrap();
            let joiner: Vec<u64> = joiner_tokens.into_iter().filter(|t| !tokens.contains(t)).collect();
            prop_assume!(!joiner.is_empty());
            let new = ring.with_tokens(X, &joiner).unwrap();
            let moves = plan(&ring, &new);
            // Streaming moves exactly the ranges gained: X's gain equals its new ownership.
            let gained: u128 = moves.iter().filter(|m| m.gainer == X).map(|m| m.range.width()).sum();
            let owned: u128 = new.ranges_replicated_by(X).iter().map(|r| r.width()).sum();
            prop_assert_eq!(gained, owned);
            // Every movement's source was a replica before and is not one after.
            for m in &moves {
                if let Some(s) = m.source {
                    prop_assert!(m.old.contains(&s) && !m.new.contains(&s));
                }
                prop_assert!(m.new.contains(&m.gainer) && !m.old.contains(&m.gainer));
                // Sample a token inside: the rings agree with the movement.
                let t = m.range.end;
                prop_assert_eq!(ring.replicas(t), &m.old[..]);
                prop_assert_eq!(new.replicas(t), &m.new[..]);
            }
        }
    }
}
