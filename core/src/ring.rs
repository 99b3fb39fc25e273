//! The token ring: which vnode owns which range, and which nodes replicate it.
//!
//! A [`Ring`] is an immutable snapshot of the NORMAL members' tokens. It is built once per topology
//! change and then answers lookups with one binary search: the natural replicas of every range are
//! precomputed when the ring is built, so [`Ring::replicas`] is a `partition_point` over the sorted
//! tokens followed by a slice of a flat table. Pending ranges during a join or a leave are computed
//! by comparing two rings ([`Ring::with_tokens`], [`Ring::without_node`]), never by mutating one.
//!
//! # Placement
//! Vnode `i` owns `(tokens[i - 1], tokens[i]]`; vnode 0 owns the wrapping range
//! `(tokens[len - 1], tokens[0]]`. The natural replicas of a range are found by walking the ring
//! clockwise from the range's end token:
//! - [`Ring::new`] is Cassandra's `SimpleStrategy`: the first RF *distinct physical* nodes met.
//! - [`Ring::with_racks`] is Cassandra's `NetworkTopologyStrategy` within one data centre: nodes on
//!   racks not yet used are taken first; when every rack is used, the nodes skipped on the way are
//!   taken in the order they were met, then any further node.
//!
//! With fewer distinct nodes than RF every range is replicated by all of them, so replica lists are
//! shorter than RF (Cassandra does the same rather than failing).

use crate::id::NodeId;
use crate::token::{Token, TokenRange, fraction_of_ring, token_for};
use std::collections::{BTreeMap, BTreeSet};

/// Why a ring could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    /// Two vnodes claim the same token; every token must have exactly one owner.
    #[error("duplicate token {token}: claimed by {first} and by {second}")]
    DuplicateToken {
        /// The contested token.
        token: Token,
        /// The owner listed first.
        first: NodeId,
        /// The owner listed second.
        second: NodeId,
    },
    /// The ring would hold no token, so no range has an owner.
    #[error("empty ring: at least one token is needed")]
    EmptyRing,
    /// A replication factor of zero would store nothing.
    #[error("replication factor must be at least 1")]
    ZeroReplicationFactor,
}

/// An immutable token ring with its precomputed replica table.
///
/// Invariants: `tokens` is sorted and free of duplicates; `owners[i]` owns `tokens[i]`; the
/// replicas of range `i` are `table[i * stride..(i + 1) * stride]` where
/// `stride = min(rf, number of distinct nodes)`, all distinct, primary first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ring {
    tokens: Vec<Token>,
    owners: Vec<NodeId>,
    rf: usize,
    racks: Option<BTreeMap<NodeId, String>>,
    /// Distinct nodes, sorted.
    nodes: Vec<NodeId>,
    /// Replicas per range; the same for every range, see the type invariants.
    stride: usize,
    /// Natural replicas of every range, `stride` entries per vnode.
    table: Vec<NodeId>,
}

/// The rack of nodes that are missing from the map given to [`Ring::with_racks`].
pub const DEFAULT_RACK: &str = "";

impl Ring {
    /// A ring with `SimpleStrategy` placement.
    pub fn new(
        assignments: impl IntoIterator<Item = (Token, NodeId)>,
        rf: usize,
    ) -> Result<Ring, RingError> {
        Self::build(assignments, rf, None)
    }

    /// A ring with rack-aware placement (`NetworkTopologyStrategy` within one data centre).
    ///
    /// Nodes missing from `racks` share the rack [`DEFAULT_RACK`]. Entries for nodes that are not in
    /// the ring are kept, so that [`Ring::with_tokens`] can later add such a node on its rack.
    pub fn with_racks(
        assignments: impl IntoIterator<Item = (Token, NodeId)>,
        rf: usize,
        racks: &BTreeMap<NodeId, String>,
    ) -> Result<Ring, RingError> {
        Self::build(assignments, rf, Some(racks.clone()))
    }

    fn build(
        assignments: impl IntoIterator<Item = (Token, NodeId)>,
        rf: usize,
        racks: Option<BTreeMap<NodeId, String>>,
    ) -> Result<Ring, RingError> {
        if rf == 0 {
            return Err(RingError::ZeroReplicationFactor);
        }
        let mut pairs: Vec<(Token, NodeId)> = assignments.into_iter().collect();
        if pairs.is_empty() {
            return Err(RingError::EmptyRing);
        }
        // A stable sort keeps equal tokens in input order, so the error names the owner given
        // first as `first`.
        pairs.sort_by_key(|&(token, _)| token);
        if let Some(w) = pairs.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(RingError::DuplicateToken { token: w[0].0, first: w[0].1, second: w[1].1 });
        }
        let (tokens, owners): (Vec<Token>, Vec<NodeId>) = pairs.into_iter().unzip();
        let nodes: Vec<NodeId> =
            owners.iter().copied().collect::<BTreeSet<_>>().into_iter().collect();
        let stride = rf.min(nodes.len());
        let table = match &racks {
            None => simple_table(&owners, stride),
            Some(racks) => rack_aware_table(&owners, &nodes, racks, rf, stride),
        };
        debug_assert_eq!(table.len(), owners.len() * stride);
        Ok(Ring { tokens, owners, rf, racks, nodes, stride, table })
    }

    /// The replication factor the ring was built with (replica lists may be shorter, see
    /// [`Ring::replicas`]).
    pub fn rf(&self) -> usize {
        self.rf
    }

    /// The sorted vnode tokens.
    pub fn tokens(&self) -> &[Token] {
        &self.tokens
    }

    /// The owner of each token, parallel to [`Ring::tokens`].
    pub fn owners(&self) -> &[NodeId] {
        &self.owners
    }

    /// The rack map given to [`Ring::with_racks`], or `None` for `SimpleStrategy`.
    pub fn racks(&self) -> Option<&BTreeMap<NodeId, String>> {
        self.racks.as_ref()
    }

    /// Number of vnodes (tokens).
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Always false: a ring has at least one token. Provided for API symmetry with [`Ring::len`].
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The distinct nodes owning tokens, sorted.
    pub fn nodes(&self) -> Vec<NodeId> {
        self.nodes.clone()
    }

    /// Whether `node` owns at least one token.
    pub fn contains_node(&self, node: NodeId) -> bool {
        self.nodes.binary_search(&node).is_ok()
    }

    /// The tokens of `node`, sorted (empty when it is not in the ring).
    pub fn tokens_of(&self, node: NodeId) -> Vec<Token> {
        self.tokens.iter().zip(&self.owners).filter(|(_, o)| **o == node).map(|(t, _)| *t).collect()
    }

    /// Index of the vnode whose range `(tokens[i - 1], tokens[i]]` contains `token`: the first
    /// token at or after `token`, wrapping to vnode 0 past the last token.
    pub fn range_index(&self, token: Token) -> usize {
        let i = self.tokens.partition_point(|&t| t < token);
        if i == self.tokens.len() { 0 } else { i }
    }

    /// The natural replicas of `token`, primary first. Holds `min(rf, distinct nodes)` nodes.
    pub fn replicas(&self, token: Token) -> &[NodeId] {
        self.replicas_at(self.range_index(token))
    }

    /// The natural replicas of `key`'s token.
    pub fn replicas_for_key(&self, key: &[u8]) -> &[NodeId] {
        self.replicas(token_for(key))
    }

    /// The range owned by vnode `i`.
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn range_at(&self, i: usize) -> TokenRange {
        let previous = if i == 0 { self.tokens.len() - 1 } else { i - 1 };
        TokenRange::new(self.tokens[previous], self.tokens[i])
    }

    /// The natural replicas of the range owned by vnode `i`, primary first.
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn replicas_at(&self, i: usize) -> &[NodeId] {
        &self.table[i * self.stride..(i + 1) * self.stride]
    }

    /// Every range in token order with its natural replicas.
    pub fn ranges(&self) -> impl Iterator<Item = (TokenRange, &[NodeId])> {
        (0..self.len()).map(|i| (self.range_at(i), self.replicas_at(i)))
    }

    /// The ranges `node` holds as a natural replica (primary or not), in token order.
    pub fn ranges_replicated_by(&self, node: NodeId) -> Vec<TokenRange> {
        self.ranges().filter(|(_, replicas)| replicas.contains(&node)).map(|(r, _)| r).collect()
    }

    /// "Owns (effective)" of `nodetool status`: for each node, the share of the ring it holds as a
    /// natural replica. The values sum to `min(rf, nodes)`.
    pub fn effective_ownership(&self) -> BTreeMap<NodeId, f64> {
        let mut widths: BTreeMap<NodeId, u128> = self.nodes.iter().map(|n| (*n, 0)).collect();
        for (range, replicas) in self.ranges() {
            for node in replicas {
                *widths.get_mut(node).expect("replicas are ring nodes") += range.width();
            }
        }
        // Sums are exact in u128 (at most rf * 2^64); rounding happens once per node here.
        widths.into_iter().map(|(n, w)| (n, fraction_of_ring(w))).collect()
    }

    /// The share of the ring each node owns as primary (no replication). Sums to 1.
    pub fn primary_ownership(&self) -> BTreeMap<NodeId, f64> {
        let mut widths: BTreeMap<NodeId, u128> = self.nodes.iter().map(|n| (*n, 0)).collect();
        for (i, owner) in self.owners.iter().enumerate() {
            *widths.get_mut(owner).expect("owners are ring nodes") += self.range_at(i).width();
        }
        widths.into_iter().map(|(n, w)| (n, fraction_of_ring(w))).collect()
    }

    /// A new ring where `node` also owns `tokens` (the ring after a join, or after a node gains
    /// tokens), with the same replication factor and racks.
    pub fn with_tokens(&self, node: NodeId, tokens: &[Token]) -> Result<Ring, RingError> {
        let existing = self.tokens.iter().copied().zip(self.owners.iter().copied());
        let added = tokens.iter().map(|t| (*t, node));
        Self::build(existing.chain(added), self.rf, self.racks.clone())
    }

    /// A new ring without `node`'s tokens (the ring after a leave), with the same replication
    /// factor and racks. Fails with [`RingError::EmptyRing`] if `node` owned every token.
    pub fn without_node(&self, node: NodeId) -> Result<Ring, RingError> {
        let kept = self.tokens.iter().copied().zip(self.owners.iter().copied());
        Self::build(kept.filter(|(_, o)| *o != node), self.rf, self.racks.clone())
    }
}

/// `SimpleStrategy`: for each range, the first `stride` distinct owners met walking clockwise from
/// its end token.
fn simple_table(owners: &[NodeId], stride: usize) -> Vec<NodeId> {
    let len = owners.len();
    let mut table = Vec::with_capacity(len * stride);
    for start in 0..len {
        let first = table.len();
        // `stride` is at most the number of distinct nodes, so the walk ends within one lap.
        for step in 0..len {
            let owner = owners[(start + step) % len];
            if !table[first..].contains(&owner) {
                table.push(owner);
                if table.len() - first == stride {
                    break;
                }
            }
        }
    }
    table
}

/// Rack-aware placement, after Cassandra's `NetworkTopologyStrategy.calculateNaturalReplicas` for
/// one data centre: take nodes on racks not yet used; skip nodes on used racks; once every rack
/// is used, take the skipped nodes in the order they were met, then any further node.
fn rack_aware_table(
    owners: &[NodeId],
    nodes: &[NodeId],
    racks: &BTreeMap<NodeId, String>,
    rf: usize,
    stride: usize,
) -> Vec<NodeId> {
    // Rack names become small integers once, so the walk below compares integers. Only racks of
    // nodes in the ring count: a rack with no member can never be used.
    let rack_name = |n: &NodeId| racks.get(n).map_or(DEFAULT_RACK, String::as_str);
    let rack_ids: BTreeMap<&str, usize> = nodes
        .iter()
        .map(rack_name)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .enumerate()
        .map(|(i, name)| (name, i))
        .collect();
    let total_racks = rack_ids.len();
    let vnode_rack: Vec<usize> = owners.iter().map(|o| rack_ids[rack_name(o)]).collect();

    let len = owners.len();
    let mut table = Vec::with_capacity(len * stride);
    let mut seen_racks: Vec<usize> = Vec::with_capacity(total_racks.min(rf));
    let mut skipped: Vec<NodeId> = Vec::new();
    for start in 0..len {
        let first = table.len();
        seen_racks.clear();
        skipped.clear();
        for step in 0..len {
            if table.len() - first == stride {
                break;
            }
            let i = (start + step) % len;
            let owner = owners[i];
            if table[first..].contains(&owner) {
                continue;
            }
            if seen_racks.len() == total_racks {
                table.push(owner);
            } else if seen_racks.contains(&vnode_rack[i]) {
                if !skipped.contains(&owner) {
                    skipped.push(owner);
                }
            } else {
                table.push(owner);
                seen_racks.push(vnode_rack[i]);
                if seen_racks.len() == total_racks {
                    // Fewer racks than RF: the remaining slots go to the nodes skipped so far,
                    // nearest first.
                    for &node in &skipped {
                        if table.len() - first == stride {
                            break;
                        }
                        table.push(node);
                    }
                }
            }
        }
        // Within one lap every rack is seen, so every distinct node is either taken directly or
        // skipped and then taken: the list always reaches `stride`.
        debug_assert_eq!(table.len() - first, stride);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: NodeId = NodeId(1);
    const B: NodeId = NodeId(2);
    const C: NodeId = NodeId(3);
    const D: NodeId = NodeId(4);

    fn abc(rf: usize) -> Ring {
        Ring::new([(300, C), (100, A), (200, B)], rf).unwrap()
    }

    fn racks(entries: &[(NodeId, &str)]) -> BTreeMap<NodeId, String> {
        entries.iter().map(|(n, r)| (*n, r.to_string())).collect()
    }

    #[test]
    fn three_nodes_rf2_ranges_and_replicas() {
        let ring = abc(2);
        assert_eq!(ring.tokens(), &[100, 200, 300]);
        assert_eq!(ring.owners(), &[A, B, C]);
        let ranges: Vec<(TokenRange, Vec<NodeId>)> =
            ring.ranges().map(|(r, rep)| (r, rep.to_vec())).collect();
        assert_eq!(
            ranges,
            vec![
                (TokenRange::new(300, 100), vec![A, B]),
                (TokenRange::new(100, 200), vec![B, C]),
                (TokenRange::new(200, 300), vec![C, A]),
            ]
        );
    }

    #[test]
    fn lookups_wrap_around_and_include_the_end_token() {
        let ring = abc(2);
        for (token, index, replicas) in [
            (0, 0, [A, B]),
            (1, 0, [A, B]),
            (100, 0, [A, B]),
            (101, 1, [B, C]),
            (200, 1, [B, C]),
            (201, 2, [C, A]),
            (300, 2, [C, A]),
            (301, 0, [A, B]),
            (u64::MAX, 0, [A, B]),
        ] {
            assert_eq!(ring.range_index(token), index, "token {token}");
            assert_eq!(ring.replicas(token), &replicas, "token {token}");
        }
    }

    #[test]
    fn replicas_skip_further_vnodes_of_the_same_node() {
        // A owns two consecutive vnodes: the second copy must come from the next distinct node.
        let ring = Ring::new([(10, A), (20, A), (30, B), (40, C)], 2).unwrap();
        assert_eq!(ring.replicas(5), &[A, B]);
        assert_eq!(ring.replicas(15), &[A, B]);
        assert_eq!(ring.replicas(25), &[B, C]);
        assert_eq!(ring.replicas(35), &[C, A]);
        assert_eq!(ring.replicas(45), &[A, B]);
        assert_eq!(ring.tokens_of(A), vec![10, 20]);
        assert_eq!(ring.nodes(), vec![A, B, C]);
    }

    #[test]
    fn fewer_nodes_than_rf_replicates_everywhere() {
        let ring = Ring::new([(10, A), (20, B), (30, A)], 3).unwrap();
        assert_eq!(ring.rf(), 3);
        assert_eq!(ring.replicas(15), &[B, A]);
        assert_eq!(ring.replicas(25), &[A, B]);
        assert_eq!(ring.effective_ownership(), BTreeMap::from([(A, 1.0), (B, 1.0)]));
    }

    #[test]
    fn single_token_owns_the_whole_ring() {
        let ring = Ring::new([(42, A)], 3).unwrap();
        assert_eq!(ring.range_at(0), TokenRange::new(42, 42));
        assert_eq!(ring.range_at(0).fraction(), 1.0);
        for t in [0, 41, 42, 43, u64::MAX] {
            assert_eq!(ring.replicas(t), &[A]);
        }
        assert_eq!(ring.primary_ownership(), BTreeMap::from([(A, 1.0)]));
        assert_eq!(ring.effective_ownership(), BTreeMap::from([(A, 1.0)]));
    }

    #[test]
    fn errors_name_what_is_wrong() {
        let duplicate = Ring::new([(7, A), (5, C), (7, B)], 1).unwrap_err();
        assert_eq!(duplicate, RingError::DuplicateToken { token: 7, first: A, second: B });
        assert_eq!(duplicate.to_string(), "duplicate token 7: claimed by n1 and by n2");
        assert_eq!(Ring::new([], 3).unwrap_err(), RingError::EmptyRing);
        assert_eq!(Ring::new([(1, A)], 0).unwrap_err(), RingError::ZeroReplicationFactor);
        assert_eq!(RingError::EmptyRing.to_string(), "empty ring: at least one token is needed");
    }

    #[test]
    fn replicas_for_key_uses_the_key_token() {
        let ring = abc(3);
        let token = token_for(b"user:100");
        assert_eq!(ring.replicas_for_key(b"user:100"), ring.replicas(token));
        assert_eq!(ring.replicas_for_key(b"user:100").len(), 3);
    }

    #[test]
    fn four_evenly_spaced_nodes_rf3_own_three_quarters_each() {
        let quarter = 1u64 << 62;
        let ring = Ring::new(
            [(quarter - 1, A), (2 * quarter - 1, B), (3 * quarter - 1, C), (u64::MAX, D)],
            3,
        )
        .unwrap();
        let expected: BTreeMap<NodeId, f64> = [(A, 0.75), (B, 0.75), (C, 0.75), (D, 0.75)].into();
        assert_eq!(ring.effective_ownership(), expected);
        let primary: BTreeMap<NodeId, f64> = [(A, 0.25), (B, 0.25), (C, 0.25), (D, 0.25)].into();
        assert_eq!(ring.primary_ownership(), primary);
    }

    #[test]
    fn three_nodes_rf3_own_everything() {
        let ring = abc(3);
        let expected: BTreeMap<NodeId, f64> = [(A, 1.0), (B, 1.0), (C, 1.0)].into();
        assert_eq!(ring.effective_ownership(), expected);
    }

    #[test]
    fn ranges_replicated_by_lists_primary_and_secondary_ranges() {
        let ring = abc(2);
        assert_eq!(
            ring.ranges_replicated_by(A),
            vec![TokenRange::new(300, 100), TokenRange::new(200, 300)]
        );
        assert_eq!(ring.ranges_replicated_by(D), vec![]);
    }

    #[test]
    fn with_tokens_and_without_node_round_trip() {
        let ring = abc(2);
        let joined = ring.with_tokens(D, &[150]).unwrap();
        assert_eq!(joined.tokens(), &[100, 150, 200, 300]);
        // D takes (100, 150] as primary and becomes the second replica of (300, 100].
        assert_eq!(joined.replicas(120), &[D, B]);
        assert_eq!(joined.replicas(50), &[A, D]);
        assert_eq!(joined.replicas(170), &[B, C]);
        assert!(joined.contains_node(D) && !ring.contains_node(D));
        assert_eq!(joined.without_node(D).unwrap(), ring);
        assert_eq!(
            ring.with_tokens(D, &[200]).unwrap_err(),
            RingError::DuplicateToken { token: 200, first: B, second: D }
        );
        let lonely = Ring::new([(1, A)], 1).unwrap();
        assert_eq!(lonely.without_node(A).unwrap_err(), RingError::EmptyRing);
    }

    #[test]
    fn racks_are_spread_before_nodes_are_reused() {
        // Clockwise: A(r1) B(r1) C(r2) D(r3). SimpleStrategy would give A, B, C for the range
        // ending at A; rack-aware skips B (rack r1 already used) and takes C and D.
        let rack_map = racks(&[(A, "r1"), (B, "r1"), (C, "r2"), (D, "r3")]);
        let assignments = [(10, A), (20, B), (30, C), (40, D)];
        let simple = Ring::new(assignments, 3).unwrap();
        assert_eq!(simple.replicas(10), &[A, B, C]);
        let aware = Ring::with_racks(assignments, 3, &rack_map).unwrap();
        assert_eq!(aware.replicas(10), &[A, C, D]);
        assert_eq!(aware.replicas(20), &[B, C, D]);
        assert_eq!(aware.replicas(30), &[C, D, A]);
        assert_eq!(aware.replicas(40), &[D, A, C]);
        assert_eq!(aware.racks(), Some(&rack_map));
    }

    #[test]
    fn fewer_racks_than_rf_fill_with_skipped_nodes_in_walk_order() {
        // Two racks, RF 3. From A: A(r1) taken, B(r1) skipped, C(r1) skipped, D(r2) taken; every
        // rack is now used so the first skipped node, B, fills the last slot.
        let rack_map = racks(&[(A, "r1"), (B, "r1"), (C, "r1"), (D, "r2")]);
        let ring = Ring::with_racks([(10, A), (20, B), (30, C), (40, D)], 3, &rack_map).unwrap();
        assert_eq!(ring.replicas(10), &[A, D, B]);
        assert_eq!(ring.replicas(20), &[B, D, C]);
        assert_eq!(ring.replicas(30), &[C, D, A]);
        assert_eq!(ring.replicas(40), &[D, A, B]);
    }

    #[test]
    fn nodes_without_a_rack_share_the_default_rack() {
        // C and D are missing from the map: they are on one (default) rack together.
        let rack_map = racks(&[(A, "r1"), (B, "r1")]);
        let ring = Ring::with_racks([(10, A), (20, B), (30, C), (40, D)], 2, &rack_map).unwrap();
        assert_eq!(ring.replicas(10), &[A, C]);
        assert_eq!(ring.replicas(30), &[C, A]);
        // A rack-aware ring keeps its racks when a node joins on a known rack.
        let rack_map = racks(&[(A, "r1"), (B, "r1"), (C, "r2")]);
        let ring = Ring::with_racks([(10, A), (20, B)], 2, &rack_map).unwrap();
        assert_eq!(ring.replicas(10), &[A, B]);
        let joined = ring.with_tokens(C, &[30]).unwrap();
        assert_eq!(joined.replicas(10), &[A, C]);
        assert_eq!(joined.replicas(20), &[B, C]);
    }

    // ----- Properties against naive references -----

    /// Linear-scan reference for `range_index`: the first token at or after `t`, else vnode 0.
    fn naive_range_index(sorted: &[(Token, NodeId)], t: Token) -> usize {
        sorted.iter().position(|(token, _)| *token >= t).unwrap_or(0)
    }

    /// Linear-scan reference for SimpleStrategy.
    fn naive_replicas(sorted: &[(Token, NodeId)], rf: usize, t: Token) -> Vec<NodeId> {
        let start = naive_range_index(sorted, t);
        let mut out = Vec::new();
        for step in 0..sorted.len() {
            let node = sorted[(start + step) % sorted.len()].1;
            if out.len() < rf && !out.contains(&node) {
                out.push(node);
            }
        }
        out
    }

    /// Tokens biased towards the ends of the ring and small clusters, where off-by-one and
    /// wrap-around mistakes live.
    fn token() -> impl Strategy<Value = Token> {
        prop_oneof![any::<u64>(), 0u64..16, (u64::MAX - 16)..=u64::MAX]
    }

    fn ring_input() -> impl Strategy<Value = (BTreeMap<Token, NodeId>, usize)> {
        (prop::collection::btree_map(token(), (0u32..8).prop_map(NodeId), 1..48), 1usize..6)
    }

    fn probes(map: &BTreeMap<Token, NodeId>, extra: &[Token]) -> Vec<Token> {
        let mut out = vec![0, u64::MAX];
        out.extend_from_slice(extra);
        for t in map.keys() {
            out.extend([t.wrapping_sub(1), *t, t.wrapping_add(1)]);
        }
        out
    }

    proptest! {
        #[test]
        fn every_range_has_min_rf_nodes_distinct_replicas((map, rf) in ring_input()) {
            let ring = Ring::new(map.iter().map(|(t, n)| (*t, *n)), rf).unwrap();
            let distinct = map.values().collect::<BTreeSet<_>>().len();
            for (range, replicas) in ring.ranges() {
                prop_assert_eq!(replicas.len(), rf.min(distinct), "range {}", range);
                let set: BTreeSet<_> = replicas.iter().collect();
                prop_assert_eq!(set.len(), replicas.len());
                // The primary replica is the owner of the range's end token.
                prop_assert_eq!(replicas[0], map[&range.end]);
            }
        }

        #[test]
        fn lookups_match_linear_scan(
            (map, rf) in ring_input(),
            extra in prop::collection::vec(any::<u64>(), 0..16),
        ) {
            let sorted: Vec<(Token, NodeId)> = map.iter().map(|(t, n)| (*t, *n)).collect();
            let ring = Ring::new(sorted.iter().copied(), rf).unwrap();
            for t in probes(&map, &extra) {
                let i = ring.range_index(t);
                prop_assert_eq!(i, naive_range_index(&sorted, t));
                prop_assert!(ring.range_at(i).contains(t));
                prop_assert_eq!(ring.replicas(t).to_vec(), naive_replicas(&sorted, rf, t));
            }
        }

        #[test]
        fn ranges_tile_the_ring((map, rf) in ring_input()) {
            let ring = Ring::new(map.iter().map(|(t, n)| (*t, *n)), rf).unwrap();
            let total: u128 = ring.ranges().map(|(r, _)| r.width()).sum();
            prop_assert_eq!(total, crate::token::RING_SIZE);
        }

        #[test]
        fn ownership_sums_to_min_rf_nodes((map, rf) in ring_input()) {
            let ring = Ring::new(map.iter().map(|(t, n)| (*t, *n)), rf).unwrap();
            let n = ring.nodes().len();
            let effective: f64 = ring.effective_ownership().values().sum();
            prop_assert!((effective - rf.min(n) as f64).abs() < 1e-9, "{effective}");
            let primary: f64 = ring.primary_ownership().values().sum();
            prop_assert!((primary - 1.0).abs() < 1e-9, "{primary}");
            // Effective ownership is the width of the ranges a node replicates.
            for (node, share) in ring.effective_ownership() {
                let width: u128 =
                    ring.ranges_replicated_by(node).iter().map(TokenRange::width).sum();
                prop_assert_eq!(share, fraction_of_ring(width));
            }
        }

        #[test]
        fn rack_aware_replicas_cover_as_many_racks_as_possible(
            (map, rf) in ring_input(),
            rack_of in prop::collection::vec(0u8..4, 8),
        ) {
            let rack_map: BTreeMap<NodeId, String> =
                (0..8u32).map(|n| (NodeId(n), format!("r{}", rack_of[n as usize]))).collect();
            let ring = Ring::with_racks(map.iter().map(|(t, n)| (*t, *n)), rf, &rack_map).unwrap();
            let nodes = ring.nodes();
            let ring_racks: BTreeSet<&String> = nodes.iter().map(|n| &rack_map[n]).collect();
            for (range, replicas) in ring.ranges() {
                prop_assert_eq!(replicas.len(), rf.min(nodes.len()));
                prop_assert_eq!(replicas.iter().collect::<BTreeSet<_>>().len(), replicas.len());
                prop_assert_eq!(replicas[0], map[&range.end]);
                let used: BTreeSet<&String> = replicas.iter().map(|n| &rack_map[n]).collect();
                prop_assert_eq!(used.len(), rf.min(ring_racks.len()));
            }
            // With one node per rack, rack-aware placement is SimpleStrategy.
            let one_per_rack: BTreeMap<NodeId, String> =
                (0..8u32).map(|n| (NodeId(n), format!("r{n}"))).collect();
            let aware = Ring::with_racks(map.iter().map(|(t, n)| (*t, *n)), rf, &one_per_rack)
                .unwrap();
            let simple = Ring::new(map.iter().map(|(t, n)| (*t, *n)), rf).unwrap();
            prop_assert!(aware.ranges().map(|(_, r)| r).eq(simple.ranges().map(|(_, r)| r)));
        }

        #[test]
        fn join_then_leave_restores_the_ring(
            (map, rf) in ring_input(),
            new_tokens in prop::collection::btree_set(token(), 1..8),
        ) {
            let ring = Ring::new(map.iter().map(|(t, n)| (*t, *n)), rf).unwrap();
            let joiner = NodeId(100);
            let fresh: Vec<Token> =
                new_tokens.into_iter().filter(|t| !map.contains_key(t)).collect();
            prop_assume!(!fresh.is_empty());
            let joined = ring.with_tokens(joiner, &fresh).unwrap();
            prop_assert_eq!(joined.tokens_of(joiner), fresh);
            prop_assert_eq!(joined.len(), ring.len() + joined.tokens_of(joiner).len());
            prop_assert_eq!(joined.without_node(joiner).unwrap(), ring);
        }
    }
}
