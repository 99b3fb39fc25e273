//! Anti-entropy: Merkle trees over one token range, their comparison, and a reference repair.
//!
//! # Model
//! A [`MerkleTree`] summarises every key a replica stores in one [`TokenRange`]. The range is cut
//! by token into `2^depth` leaf sub-ranges of (almost) equal width; a leaf's hash covers the keys
//! in it, and each inner node hashes its two children. Two replicas that build trees over the same
//! range at the same depth can find the leaves they disagree on by descending only into subtrees
//! whose hashes differ ([`diff`]), and then stream just those leaf ranges (docs/semantics.md §1
//! "Anti-entropy", after Dynamo §4.7 and Cassandra's `nodetool repair`).
//!
//! # Agreeing on a depth
//! The rule is `depth = min(ceil(log2(keys in range)), 20)` ([`depth_for`]), but two replicas that
//! need repair by definition may hold different numbers of keys, and trees of different depths
//! cannot be compared leaf by leaf. So the *initiator* counts its own keys in the range
//! ([`count_keys`]), picks the depth from that count and sends it in the [`MerkleRequest`]; the
//! peer builds its tree at exactly that depth and answers with a [`MerkleResponse`]. The depth is
//! further capped so that no leaf is empty of tokens (a range of width `w` has at most
//! `floor(log2(w))` levels); both sides apply the same cap, so they always agree.
//!
//! # What a leaf hash covers
//! A leaf hash is XXH3-64 (seed 0) over the canonical encoding of the leaf's entries, in clockwise
//! `(token, key)` order from the leaf's start, which is plain `(token, key)` order except inside
//! the single leaf that straddles token 0 of a wrapping range. Per entry, with integers
//! little-endian and byte strings prefixed by their length as `u64`:
//!
//! ```text
//! token u64 | key | number of versions u64 | per version, sorted by dot:
//!     dot.node u32 | dot.counter u64 | timestamp u64 | tombstone u8 (1 = tombstone)
//!     | value (absent for a tombstone) | number of context entries u64
//!     | per context entry, by actor: actor u32 | counter u64
//! ```
//!
//! A context entry's update time (`ClockEntry::at`) is deliberately left out: it only drives
//! pruning, and a merge never rewrites a version it already holds (a dot names exactly one
//! version), so a difference there could never be repaired and the trees would disagree forever.
//! An inner node hashes the 16 bytes `left u64 | right u64`.
//!
//! # Over-streaming
//! Repair streams whole leaves, so it also sends the unchanged keys that happen to share a leaf
//! with a divergent one. [`RepairPlan::over_streaming_factor`] reports keys streamed per key that
//! actually differed: 1.0 is perfect, and the depth rule keeps it near 1–2 (about one key per
//! leaf).

use crate::storage::{Entry, Storage, StorageError};
use crate::token::{Token, TokenRange};
use crate::version::{ConflictMode, Siblings, Version};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use xxhash_rust::xxh3::{Xxh3, xxh3_64};

/// Deepest tree built: 2^20 leaves, 8 MiB of leaf hashes (the cap of Cassandra's repair trees).
pub const MAX_DEPTH: u32 = 20;

/// Entries fetched per [`Storage::scan`] call while building trees or repairing.
const SCAN_PAGE: usize = 1024;

/// The depth for a range holding `keys` keys: `min(ceil(log2(keys)), 20)`, and 0 for at most one
/// key. This aims at one key per leaf, which keeps over-streaming low; Cassandra's `Validator`
/// sizes its repair trees with the same formula.
pub fn depth_for(keys: u64) -> u32 {
    if keys <= 1 { 0 } else { (u64::BITS - (keys - 1).leading_zeros()).min(MAX_DEPTH) }
}

/// A Merkle tree comparison or message that does not fit the tree it is used with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MerkleError {
    /// The number of leaf hashes is not `2^depth`.
    #[error("expected {expected} leaf hashes, got {got}")]
    LeafCount {
        /// `2^depth` for the (capped) depth.
        expected: usize,
        /// Hashes received.
        got: usize,
    },
    /// A response answers another session than the request it is matched with.
    #[error("response for session {got} does not answer session {expected}")]
    Session {
        /// The request's session.
        expected: u64,
        /// The response's session.
        got: u64,
    },
    /// A response covers another range or depth than requested.
    #[error("response covers {got_range} at depth {got_depth}, requested {range} at depth {depth}")]
    Shape {
        /// The requested range.
        range: TokenRange,
        /// The depth the requested depth caps to.
        depth: u32,
        /// The range of the response.
        got_range: TokenRange,
        /// The depth of the response.
        got_depth: u32,
    },
}

/// How a range is cut into leaves: leaf `i` of `n = 2^depth` covers the offsets
/// `(floor(i·w/n), floor((i+1)·w/n)]` clockwise from `range.start`, where `w` is the range width.
/// Widths are `u128` because the whole ring is 2^64 tokens wide.
#[derive(Clone, Copy, Debug)]
struct Layout {
    range: TokenRange,
    depth: u32,
}

impl Layout {
    /// Caps `depth` at [`MAX_DEPTH`] and at `floor(log2(width))` so that every leaf holds at least
    /// one token (an empty leaf would read as `start == end`, the whole ring).
    fn new(range: TokenRange, depth: u32) -> Self {
        let width_levels = u128::BITS - 1 - range.width().leading_zeros();
        Layout { range, depth: depth.min(MAX_DEPTH).min(width_levels) }
    }

    fn leaf_count(&self) -> usize {
        1 << self.depth
    }

    /// Clockwise distance from the range start to `token`, in `1..=width`.
    fn offset(&self, token: Token) -> u128 {
        match u128::from(token.wrapping_sub(self.range.start)) {
            // Only the whole ring contains its own start, as its last token.
            0 => self.range.width(),
            off => off,
        }
    }

    /// The leaf holding `offset`: the `i` with `i·w/n < offset <= (i+1)·w/n`.
    fn leaf_of_offset(&self, offset: u128) -> usize {
        let width = self.range.width();
        ((offset << self.depth).div_ceil(width) - 1) as usize
    }

    fn boundary(&self, i: usize) -> Token {
        let offset = (i as u128 * self.range.width()) >> self.depth;
        // Truncation is the ring's wrap-around: an offset of 2^64 lands back on the start.
        self.range.start.wrapping_add(offset as u64)
    }

    fn leaf_range(&self, i: usize) -> TokenRange {
        TokenRange::new(self.boundary(i), self.boundary(i + 1))
    }
}

/// A Merkle tree over one token range of one replica.
///
/// Build it from entries ([`MerkleTree::build`]) or a store ([`MerkleTree::from_storage`]), or
/// rebuild a peer's tree from the leaf hashes it sent ([`MerkleTree::from_leaves`]); compare two
/// trees with [`diff`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MerkleTree {
    range: TokenRange,
    depth: u32,
    /// Heap layout: node 1 is the root, node `i` has children `2i` and `2i + 1`, the leaves are
    /// nodes `2^depth .. 2^(depth+1)`. Node 0 is unused.
    nodes: Vec<u64>,
}

impl MerkleTree {
    /// Builds the tree of `range` at `depth` (capped as the module documentation says) from
    /// `entries`, in any order. Entries outside the range and entries with no version (which a
    /// store does not keep) are ignored.
    pub fn build<'a>(
        range: TokenRange,
        depth: u32,
        entries: impl IntoIterator<Item = &'a Entry>,
    ) -> Self {
        let layout = Layout::new(range, depth);
        let mut inside: Vec<(u128, &Entry)> = entries
            .into_iter()
            .filter(|e| range.contains(e.token) && !e.value.is_empty())
            .map(|e| (layout.offset(e.token), e))
            .collect();
        fn order<'e>((offset, e): &(u128, &'e Entry)) -> (u128, &'e [u8]) {
            (*offset, e.key.as_slice())
        }
        if !inside.is_sorted_by(|x, y| order(x) <= order(y)) {
            inside.sort_by(|x, y| order(x).cmp(&order(y)));
        }
        let mut hasher = LeafHasher::new(layout);
        for (offset, e) in inside {
            hasher.add(offset, e);
        }
        hasher.finish()
    }

    /// Builds the tree of `range` at `depth` from a store, scanning it page by page.
    pub fn from_storage<S: Storage + ?Sized>(
        storage: &S,
        range: TokenRange,
        depth: u32,
    ) -> Result<Self, StorageError> {
        let layout = Layout::new(range, depth);
        let mut hasher = LeafHasher::new(layout);
        for_each_clockwise(storage, range, |e| {
            if !e.value.is_empty() {
                hasher.add(layout.offset(e.token), &e);
            }
        })?;
        Ok(hasher.finish())
    }

    /// Rebuilds a tree from its leaf hashes (what a [`MerkleResponse`] carries).
    pub fn from_leaves(range: TokenRange, depth: u32, leaves: &[u64]) -> Result<Self, MerkleError> {
        let layout = Layout::new(range, depth);
        let expected = layout.leaf_count();
        if leaves.len() != expected {
            return Err(MerkleError::LeafCount { expected, got: leaves.len() });
        }
        let mut nodes = vec![0; 2 * expected];
        nodes[expected..].copy_from_slice(leaves);
        Ok(Self::from_nodes(layout, nodes))
    }

    /// Rebuilds the peer's tree from its answer to `request`, checking that it answers it.
    pub fn from_response(
        request: &MerkleRequest,
        response: &MerkleResponse,
    ) -> Result<Self, MerkleError> {
        if response.session != request.session {
            return Err(MerkleError::Session { expected: request.session, got: response.session });
        }
        let layout = Layout::new(request.range, request.depth);
        if response.range != layout.range || response.depth != layout.depth {
            return Err(MerkleError::Shape {
                range: layout.range,
                depth: layout.depth,
                got_range: response.range,
                got_depth: response.depth,
            });
        }
        Self::from_leaves(response.range, response.depth, &response.leaves)
    }

    /// Fills the inner nodes from the leaves.
    fn from_nodes(layout: Layout, mut nodes: Vec<u64>) -> Self {
        for i in (1..layout.leaf_count()).rev() {
            nodes[i] = combine(nodes[2 * i], nodes[2 * i + 1]);
        }
        MerkleTree { range: layout.range, depth: layout.depth, nodes }
    }

    /// The range the tree covers.
    pub fn range(&self) -> TokenRange {
        self.range
    }

    /// The depth after capping: the tree has `2^depth` leaves.
    pub fn depth(&self) -> u32 {
        self.depth
    }

    /// The root hash.
    pub fn root(&self) -> u64 {
        self.nodes[1]
    }

    /// The leaf hashes, clockwise from the range start.
    pub fn leaves(&self) -> &[u64] {
        &self.nodes[self.layout().leaf_count()..]
    }

    /// The sub-range covered by leaf `i` (`i < 2^depth`).
    pub fn leaf_range(&self, i: usize) -> TokenRange {
        assert!(i < self.layout().leaf_count(), "leaf {i} of a tree of depth {}", self.depth);
        self.layout().leaf_range(i)
    }

    /// The leaf whose sub-range holds `token`, if the tree's range does.
    pub fn leaf_of(&self, token: Token) -> Option<usize> {
        let layout = self.layout();
        self.range.contains(token).then(|| layout.leaf_of_offset(layout.offset(token)))
    }

    /// Answers `session` with this tree's leaf hashes.
    pub fn to_response(&self, session: u64) -> MerkleResponse {
        MerkleResponse {
            session,
            range: self.range,
            depth: self.depth,
            leaves: self.leaves().to_vec(),
        }
    }

    fn layout(&self) -> Layout {
        Layout { range: self.range, depth: self.depth }
    }
}

/// Hashes leaves from entries arriving in clockwise `(token, key)` order.
struct LeafHasher {
    layout: Layout,
    nodes: Vec<u64>,
    current: Option<(usize, Xxh3)>,
    buf: Vec<u8>,
}

impl LeafHasher {
    fn new(layout: Layout) -> Self {
        let n = layout.leaf_count();
        let mut nodes = vec![0; 2 * n];
        nodes[n..].fill(xxh3_64(&[]));
        LeafHasher { layout, nodes, current: None, buf: Vec::new() }
    }

    fn add(&mut self, offset: u128, entry: &Entry) {
        let leaf = self.layout.leaf_of_offset(offset);
        if self.current.as_ref().is_none_or(|(at, _)| *at != leaf) {
            debug_assert!(self.current.as_ref().is_none_or(|(at, _)| *at < leaf), "out of order");
            self.flush();
            self.current = Some((leaf, Xxh3::new()));
        }
        self.buf.clear();
        encode_entry(entry.token, &entry.key, &entry.value, &mut self.buf);
        self.current.as_mut().expect("set above").1.update(&self.buf);
    }

    fn flush(&mut self) {
        if let Some((leaf, hasher)) = self.current.take() {
            self.nodes[self.layout.leaf_count() + leaf] = hasher.digest();
        }
    }

    fn finish(mut self) -> MerkleTree {
        self.flush();
        MerkleTree::from_nodes(self.layout, self.nodes)
    }
}

fn combine(left: u64, right: u64) -> u64 {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&left.to_le_bytes());
    bytes[8..].copy_from_slice(&right.to_le_bytes());
    xxh3_64(&bytes)
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Appends the canonical encoding of one entry (see the module documentation).
fn encode_entry(token: Token, key: &[u8], value: &Siblings, out: &mut Vec<u8>) {
    out.extend_from_slice(&token.to_le_bytes());
    put_bytes(out, key);
    out.extend_from_slice(&(value.0.len() as u64).to_le_bytes());
    // Merges keep versions sorted by dot, but `put` accepts any order: sort so the encoding
    // depends on the set only.
    let mut versions: Vec<&Version> = value.0.iter().collect();
    versions.sort_by_key(|v| v.dot);
    for v in versions {
        out.extend_from_slice(&v.dot.node.0.to_le_bytes());
        out.extend_from_slice(&v.dot.counter.to_le_bytes());
        out.extend_from_slice(&v.timestamp.to_le_bytes());
        match &v.value {
            None => out.push(1),
            Some(bytes) => {
                out.push(0);
                put_bytes(out, bytes);
            }
        }
        out.extend_from_slice(&(v.context.len() as u64).to_le_bytes());
        for (actor, entry) in &v.context.0 {
            out.extend_from_slice(&actor.0.to_le_bytes());
            out.extend_from_slice(&entry.counter.to_le_bytes());
        }
    }
}

/// The leaf sub-ranges where `a` and `b` differ, clockwise from the range start, with adjacent
/// differing leaves coalesced into one range. Only subtrees whose hashes differ are visited. On
/// the whole ring, differing leaves on both sides of the start are joined into one wrapping range.
///
/// # Panics
/// When the trees cover different ranges or depths: that is a caller bug, since a peer's tree is
/// only ever rebuilt through [`MerkleTree::from_response`], which checks its shape.
pub fn diff(a: &MerkleTree, b: &MerkleTree) -> Vec<TokenRange> {
    assert!(
        a.range == b.range && a.depth == b.depth,
        "comparing a tree of {} at depth {} with one of {} at depth {}",
        a.range,
        a.depth,
        b.range,
        b.depth
    );
    let first_leaf = a.layout().leaf_count();
    let mut out: Vec<TokenRange> = Vec::new();
    let mut last_leaf: Option<usize> = None;
    // Depth-first, left child first, so leaves come out in clockwise order.
    let mut stack = vec![1usize];
    while let Some(node) = stack.pop() {
        if a.nodes[node] == b.nodes[node] {
            continue;
        }
        if node < first_leaf {
            stack.push(2 * node + 1);
            stack.push(2 * node);
            continue;
        }
        let leaf = node - first_leaf;
        let sub = a.layout().leaf_range(leaf);
        match out.last_mut() {
            Some(prev) if last_leaf.is_some_and(|l| l + 1 == leaf) => prev.end = sub.end,
            _ => out.push(sub),
        }
        last_leaf = Some(leaf);
    }
    if a.range.is_whole_ring() && out.len() >= 2 {
        let (first, last) = (out[0], out[out.len() - 1]);
        if first.start == a.range.start && last.end == a.range.end {
            out.pop();
            out[0] = TokenRange::new(last.start, first.end);
        }
    }
    out
}

/// The keys a replica stores in `range` (the initiator's input to [`depth_for`]).
pub fn count_keys<S: Storage + ?Sized>(
    storage: &S,
    range: TokenRange,
) -> Result<u64, StorageError> {
    let mut count = 0;
    for_each_clockwise(storage, range, |_| count += 1)?;
    Ok(count)
}

/// Splits `range` into at most two ranges whose clockwise and absolute token orders agree, so
/// that scanning them in turn yields entries clockwise whatever order a store uses inside one
/// wrapping range.
fn clockwise_pieces(range: TokenRange) -> Vec<TokenRange> {
    if range.start < range.end || range.start == Token::MAX {
        vec![range]
    } else {
        // (start, MAX] then (MAX, end], which is [0, end].
        vec![TokenRange::new(range.start, Token::MAX), TokenRange::new(Token::MAX, range.end)]
    }
}

/// Calls `f` on every entry of `range`, clockwise from its start, scanning in pages.
fn for_each_clockwise<S: Storage + ?Sized>(
    storage: &S,
    range: TokenRange,
    mut f: impl FnMut(Entry),
) -> Result<(), StorageError> {
    for piece in clockwise_pieces(range) {
        let mut after: Option<(Token, Vec<u8>)> = None;
        loop {
            let page =
                storage.scan(piece, after.as_ref().map(|(t, k)| (*t, k.as_slice())), SCAN_PAGE)?;
            let full = page.len() >= SCAN_PAGE;
            if let Some(last) = page.last() {
                after = Some((last.token, last.key.clone()));
            }
            page.into_iter().for_each(&mut f);
            if !full {
                break;
            }
        }
    }
    Ok(())
}

/// Asks a peer for its Merkle tree of `range` at `depth` (the initiator's depth, see the module
/// documentation).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MerkleRequest {
    /// Chosen by the initiator to match the answer to its request.
    pub session: u64,
    /// The range to summarise.
    pub range: TokenRange,
    /// The depth to build at, before capping.
    pub depth: u32,
    /// The initiator's topology epoch (see `Message::Rejected`).
    #[serde(default)]
    pub epoch: u64,
}

impl MerkleRequest {
    /// The responder's side: builds the requested tree from `storage` and answers with its leaves.
    pub fn answer<S: Storage + ?Sized>(&self, storage: &S) -> Result<MerkleResponse, StorageError> {
        Ok(MerkleTree::from_storage(storage, self.range, self.depth)?.to_response(self.session))
    }
}

/// A peer's Merkle tree, as leaf hashes only: the inner nodes follow from them
/// ([`MerkleTree::from_response`]). At depth 20 that is 2^20 hashes, 8 MiB.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MerkleResponse {
    /// The request's session.
    pub session: u64,
    /// The range summarised.
    pub range: TokenRange,
    /// The depth built at, after capping.
    pub depth: u32,
    /// The `2^depth` leaf hashes, clockwise from the range start.
    pub leaves: Vec<u64>,
}

/// What one repair of a range found and streamed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairPlan {
    /// The range compared.
    pub range: TokenRange,
    /// The depth both trees were built at (after capping).
    pub depth: u32,
    /// The differing leaf ranges, coalesced (what [`diff`] returned).
    pub differing: Vec<TokenRange>,
    /// Distinct keys held by either replica in the differing ranges: every one of them is
    /// streamed, whether it differs or not.
    pub keys_in_differing: u64,
    /// Keys whose versions differ between the replicas (or that one replica lacks).
    pub keys_actually_different: u64,
}

impl RepairPlan {
    /// Keys streamed per key that actually differed, at least 1. Streaming whole leaves also sends
    /// the unchanged keys sharing a leaf with a divergent one; this measures that waste. It is 1.0
    /// when nothing differed, and infinite if leaves differed without any key differing (a hash
    /// collision cannot cause that: colliding leaves compare equal and hide their difference).
    pub fn over_streaming_factor(&self) -> f64 {
        match (self.keys_in_differing, self.keys_actually_different) {
            (0, 0) => 1.0,
            (_, 0) => f64::INFINITY,
            (streamed, different) => streamed as f64 / different as f64,
        }
    }
}

/// Repairs `range` between two stores: builds both trees at the depth `a` (the initiator) picks
/// from its own key count, diffs them, and exchanges every entry of the differing leaf ranges in
/// both directions with [`Siblings::merge`] (through [`Storage::merge`]). Afterwards both stores
/// hold identical versions for every key in the range.
///
/// This is the reference behaviour of the node-level protocol: [`MerkleRequest`] and
/// [`MerkleResponse`] carry the tree exchange, streaming carries the entries. Both differing sets
/// are read before either store is written, so each side receives the other's *original* state
/// and the join makes them equal.
pub fn sync_ranges(
    a: &mut impl Storage,
    b: &mut impl Storage,
    range: TokenRange,
    mode: ConflictMode,
) -> Result<RepairPlan, StorageError> {
    let depth = depth_for(count_keys(a, range)?);
    let tree_a = MerkleTree::from_storage(a, range, depth)?;
    let tree_b = MerkleTree::from_storage(b, range, depth)?;
    let differing = diff(&tree_a, &tree_b);

    let mut from_a = Vec::new();
    let mut from_b = Vec::new();
    for sub in &differing {
        for_each_clockwise(a, *sub, |e| from_a.push(e))?;
        for_each_clockwise(b, *sub, |e| from_b.push(e))?;
    }

    // Pair both sides' versions of each key to measure what actually differed.
    let mut paired: BTreeMap<(Token, &[u8]), [Option<&Siblings>; 2]> = BTreeMap::new();
    for (side, entries) in [&from_a, &from_b].into_iter().enumerate() {
        for e in entries {
            paired.entry((e.token, e.key.as_slice())).or_default()[side] = Some(&e.value);
        }
    }
    let (mut buf_a, mut buf_b) = (Vec::new(), Vec::new());
    let keys_actually_different = paired
        .iter()
        .filter(|((token, key), [va, vb])| {
            let empty = Siblings::new();
            buf_a.clear();
            buf_b.clear();
            encode_entry(*token, key, va.unwrap_or(&empty), &mut buf_a);
            encode_entry(*token, key, vb.unwrap_or(&empty), &mut buf_b);
            buf_a != buf_b
        })
        .count() as u64;
    let keys_in_differing = paired.len() as u64;
    drop(paired);

    for e in &from_a {
        b.merge(e.token, &e.key, &e.value, mode)?;
    }
    for e in &from_b {
        a.merge(e.token, &e.key, &e.value, mode)?;
    }
    Ok(RepairPlan {
        range,
        depth: tree_a.depth,
        differing,
        keys_in_differing,
        keys_actually_different,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::NodeId;
    use crate::storage::MemStorage;
    use crate::token::{RING_SIZE, token_for};
    use crate::version::{Dot, VClock};
    use proptest::prelude::*;

    const MAX: Token = Token::MAX;

    fn version(node: u32, counter: u64, value: &str) -> Version {
        Version {
            dot: Dot { node: NodeId(node), counter },
            context: VClock::new(),
            timestamp: counter,
            value: Some(value.as_bytes().to_vec()),
        }
    }

    fn entry(token: Token, key: &str, value: &str) -> Entry {
        Entry { token, key: key.as_bytes().to_vec(), value: Siblings::one(version(0, 1, value)) }
    }

    fn store(entries: &[Entry]) -> MemStorage {
        let mut s = MemStorage::new();
        for e in entries {
            s.put(e.token, &e.key, e.value.clone()).unwrap();
        }
        s
    }

    fn range_entries(s: &MemStorage, range: TokenRange) -> Vec<Entry> {
        let mut out = Vec::new();
        for_each_clockwise(s, range, |e| out.push(e)).unwrap();
        out
    }

    /// Tabular rule of docs/semantics.md §1: `min(ceil(log2(keys)), 20)`, 0 for at most one key.
    #[test]
    fn depth_rule_table() {
        let table: [(u64, u32); 12] = [
            (0, 0),
            (1, 0),
            (2, 1),
            (3, 2),
            (4, 2),
            (5, 3),
            (1000, 10),
            (1024, 10),
            (1025, 11),
            (1_000_000, 20),
            (10_000_000, 20),
            (u64::MAX, 20),
        ];
        for (keys, depth) in table {
            assert_eq!(depth_for(keys), depth, "{keys} keys");
        }
    }

    #[test]
    fn plain_range_splits_evenly() {
        let tree = MerkleTree::build(TokenRange::new(0, 1024), 3, []);
        let leaves: Vec<TokenRange> = (0..8).map(|i| tree.leaf_range(i)).collect();
        let expected: Vec<TokenRange> =
            (0..8).map(|i| TokenRange::new(128 * i, 128 * (i + 1))).collect();
        assert_eq!(leaves, expected);
        assert_eq!(tree.leaf_of(0), None);
        assert_eq!(tree.leaf_of(1), Some(0));
        assert_eq!(tree.leaf_of(128), Some(0));
        assert_eq!(tree.leaf_of(129), Some(1));
        assert_eq!(tree.leaf_of(1024), Some(7));
        assert_eq!(tree.leaf_of(1025), None);
    }

    #[test]
    fn wrapping_range_splits_across_zero() {
        // 15 tokens: MAX-8..=MAX and 0..=5; boundaries at offsets 0, 3, 7, 11, 15.
        let range = TokenRange::new(MAX - 9, 5);
        let tree = MerkleTree::build(range, 2, []);
        let leaves: Vec<TokenRange> = (0..4).map(|i| tree.leaf_range(i)).collect();
        assert_eq!(
            leaves,
            [
                TokenRange::new(MAX - 9, MAX - 6),
                TokenRange::new(MAX - 6, MAX - 2),
                TokenRange::new(MAX - 2, 1),
                TokenRange::new(1, 5),
            ]
        );
        // Every token of the range lies in exactly one leaf, the one `leaf_of` names.
        for t in (MAX - 8..=MAX).chain(0..=5) {
            let holders: Vec<usize> = (0..4).filter(|i| leaves[*i].contains(t)).collect();
            assert_eq!(holders, [tree.leaf_of(t).unwrap()], "token {t}");
        }
        assert_eq!(leaves.iter().map(TokenRange::width).sum::<u128>(), 15);
    }

    #[test]
    fn whole_ring_splits_into_quarters() {
        let q = 1u64 << 62;
        let tree = MerkleTree::build(TokenRange::new(7, 7), 2, []);
        let leaves: Vec<TokenRange> = (0..4).map(|i| tree.leaf_range(i)).collect();
        assert_eq!(
            leaves,
            [
                TokenRange::new(7, 7 + q),
                TokenRange::new(7 + q, 7 + 2 * q),
                TokenRange::new(7 + 2 * q, 7 + 3 * q),
                TokenRange::new(7 + 3 * q, 7),
            ]
        );
        assert_eq!(tree.leaf_of(7), Some(3));
        assert_eq!(tree.leaf_of(8), Some(0));
        assert_eq!(tree.leaf_of(6), Some(3));
        assert_eq!(leaves.iter().map(TokenRange::width).sum::<u128>(), RING_SIZE);
        // Depth 0 on the whole ring is the whole ring again.
        assert_eq!(
            MerkleTree::build(TokenRange::new(7, 7), 0, []).leaf_range(0).width(),
            RING_SIZE
        );
    }

    #[test]
    fn depth_is_capped_by_width_and_maximum() {
        assert_eq!(MerkleTree::build(TokenRange::new(10, 13), 5, []).depth(), 1);
        assert_eq!(MerkleTree::build(TokenRange::new(MAX, 0), 5, []).depth(), 0);
        assert_eq!(MerkleTree::build(TokenRange::new(0, 0), 64, []).depth(), MAX_DEPTH);
    }

    #[test]
    fn identical_stores_have_no_differing_ranges() {
        let entries: Vec<Entry> = (0..500)
            .map(|i| {
                let key = format!("key{i}");
                entry(token_for(key.as_bytes()), &key, "v")
            })
            .collect();
        let (a, b) = (store(&entries), store(&entries));
        for range in [TokenRange::new(0, 0), TokenRange::new(1 << 63, 1 << 60)] {
            let depth = depth_for(count_keys(&a, range).unwrap());
            let ta = MerkleTree::from_storage(&a, range, depth).unwrap();
            let tb = MerkleTree::from_storage(&b, range, depth).unwrap();
            assert_eq!(ta.root(), tb.root());
            assert_eq!(diff(&ta, &tb), []);
        }
    }

    #[test]
    fn one_changed_key_yields_exactly_its_leaf() {
        let range = TokenRange::new(0, 1024);
        let entries: Vec<Entry> =
            (1..=1024).step_by(3).map(|t| entry(t, &format!("k{t}"), "v")).collect();
        let a = store(&entries);
        let mut b = a.clone();
        b.put(301, b"k301", Siblings::one(version(1, 2, "changed"))).unwrap();
        let ta = MerkleTree::from_storage(&a, range, 3).unwrap();
        let tb = MerkleTree::from_storage(&b, range, 3).unwrap();
        assert_eq!(diff(&ta, &tb), [TokenRange::new(256, 384)]);

        // A key present on one side only is found the same way.
        b = a.clone();
        b.put(1000, b"extra", Siblings::one(version(1, 1, "x"))).unwrap();
        let tb = MerkleTree::from_storage(&b, range, 3).unwrap();
        assert_eq!(diff(&ta, &tb), [TokenRange::new(896, 1024)]);
    }

    #[test]
    fn adjacent_differing_leaves_are_coalesced() {
        let range = TokenRange::new(0, 1024);
        let a = store(&(0..8).map(|i| entry(128 * i + 5, "k", "v")).collect::<Vec<_>>());
        let mut b = a.clone();
        for t in [2 * 128 + 5, 3 * 128 + 5, 5 * 128 + 5] {
            b.put(t, b"k", Siblings::one(version(1, 1, "other"))).unwrap();
        }
        let ta = MerkleTree::from_storage(&a, range, 3).unwrap();
        let tb = MerkleTree::from_storage(&b, range, 3).unwrap();
        assert_eq!(diff(&ta, &tb), [TokenRange::new(256, 512), TokenRange::new(640, 768)]);
    }

    #[test]
    fn whole_ring_joins_differences_across_its_start() {
        let q = 1u64 << 62;
        let range = TokenRange::new(0, 0);
        let a = store(&[entry(5, "a", "v"), entry(q + 5, "b", "v"), entry(3 * q + 5, "c", "v")]);
        let mut b = a.clone();
        b.put(5, b"a", Siblings::one(version(1, 1, "x"))).unwrap();
        b.put(3 * q + 5, b"c", Siblings::one(version(1, 1, "x"))).unwrap();
        let ta = MerkleTree::from_storage(&a, range, 2).unwrap();
        let tb = MerkleTree::from_storage(&b, range, 2).unwrap();
        assert_eq!(diff(&ta, &tb), [TokenRange::new(3 * q, q)]);
    }

    #[test]
    fn build_from_entries_matches_build_from_storage() {
        // More than one scan page, on a wrapping range, given to `build` out of order.
        let mut entries: Vec<Entry> = (0..3000)
            .map(|i| {
                let key = format!("key{i}");
                entry(token_for(key.as_bytes()), &key, &format!("value{i}"))
            })
            .collect();
        let s = store(&entries);
        entries.reverse();
        let range = TokenRange::new(3 << 62, 1 << 62);
        let depth = depth_for(count_keys(&s, range).unwrap());
        assert_eq!(depth, 11);
        let from_storage = MerkleTree::from_storage(&s, range, depth).unwrap();
        assert_eq!(MerkleTree::build(range, depth, &entries), from_storage);
    }

    #[test]
    fn version_order_and_clock_update_times_do_not_change_the_hash() {
        let mut v1 = version(1, 1, "a");
        v1.context.add_dot(Dot { node: NodeId(2), counter: 3 }, 100);
        let v2 = version(2, 1, "b");
        let sorted = Entry { token: 1, key: b"k".to_vec(), value: Siblings(vec![v1.clone(), v2]) };
        let mut reversed = sorted.clone();
        reversed.value.0.reverse();
        let mut later = sorted.clone();
        later.value.0[0].context.0.get_mut(&NodeId(2)).unwrap().at = 999;
        let range = TokenRange::new(0, 10);
        let root = |e: &Entry| MerkleTree::build(range, 0, [e]).root();
        assert_eq!(root(&sorted), root(&reversed));
        assert_eq!(root(&sorted), root(&later));
        let mut tombstone = sorted.clone();
        tombstone.value.0[1].value = None;
        assert_ne!(root(&sorted), root(&tombstone));
    }

    #[test]
    fn messages_round_trip_and_rebuild_the_tree() {
        let entries: Vec<Entry> = (1..100).map(|t| entry(t * 10, "k", "v")).collect();
        let s = store(&entries);
        let request =
            MerkleRequest { session: 9, range: TokenRange::new(0, 1000), depth: 4, epoch: 0 };
        assert_eq!(
            serde_json::to_string(&request).unwrap(),
            r#"{"session":9,"range":{"start":0,"end":1000},"depth":4,"epoch":0}"#
        );
        let response = request.answer(&s).unwrap();
        assert_eq!(response.leaves.len(), 16);
        let json = serde_json::to_string(&response).unwrap();
        let response: MerkleResponse = serde_json::from_str(&json).unwrap();
        let rebuilt = MerkleTree::from_response(&request, &response).unwrap();
        assert_eq!(rebuilt, MerkleTree::build(request.range, 4, &entries));

        let mut wrong = response.clone();
        wrong.session = 8;
        assert_eq!(
            MerkleTree::from_response(&request, &wrong),
            Err(MerkleError::Session { expected: 9, got: 8 })
        );
        wrong = response.clone();
        wrong.depth = 3;
        wrong.leaves.truncate(8);
        assert!(matches!(
            MerkleTree::from_response(&request, &wrong),
            Err(MerkleError::Shape { depth: 4, got_depth: 3, .. })
        ));
        assert_eq!(
            MerkleTree::from_leaves(request.range, 4, &[0; 15]),
            Err(MerkleError::LeafCount { expected: 16, got: 15 })
        );
    }

    #[test]
    fn over_streaming_is_one_when_every_leaf_holds_one_key() {
        // 8 keys in 8 leaves of (0, 1024]; three non-adjacent keys diverge, one only on b.
        let range = TokenRange::new(0, 1024);
        let mut a = store(&(0..8).map(|i| entry(128 * i + 5, "k", "v")).collect::<Vec<_>>());
        let mut b = a.clone();
        b.put(5, b"k", Siblings::one(version(1, 1, "x"))).unwrap();
        b.put(2 * 128 + 5, b"k", Siblings::one(version(1, 1, "x"))).unwrap();
        a.put(6 * 128 + 5, b"k", Siblings::new()).unwrap();
        let plan = sync_ranges(&mut a, &mut b, range, ConflictMode::VectorClock).unwrap();
        assert_eq!(
            plan,
            RepairPlan {
                range,
                depth: 3,
                differing: vec![
                    TokenRange::new(0, 128),
                    TokenRange::new(256, 384),
                    TokenRange::new(768, 896),
                ],
                keys_in_differing: 3,
                keys_actually_different: 3,
            }
        );
        assert_eq!(plan.over_streaming_factor(), 1.0);
        assert_eq!(range_entries(&a, range), range_entries(&b, range));
    }

    #[test]
    fn over_streaming_counts_unchanged_neighbours() {
        // Two keys share each leaf; one of a pair diverges, so its neighbour is streamed too.
        let range = TokenRange::new(0, 1024);
        let mut a = store(&(0..16).map(|i| entry(64 * i + 5, "k", "v")).collect::<Vec<_>>());
        let mut b = a.clone();
        b.put(5, b"k", Siblings::one(version(1, 1, "x"))).unwrap();
        let plan = sync_ranges(&mut a, &mut b, range, ConflictMode::Lww).unwrap();
        // 16 keys give depth 4, 16 leaves of width 64: one key per leaf again.
        assert_eq!((plan.depth, plan.keys_in_differing, plan.keys_actually_different), (4, 1, 1));

        // Build at depth 3 by hand: the leaf (0, 128] holds tokens 5 and 69.
        b.put(5, b"k", Siblings::one(version(1, 2, "y"))).unwrap();
        let ta = MerkleTree::from_storage(&a, range, 3).unwrap();
        let tb = MerkleTree::from_storage(&b, range, 3).unwrap();
        assert_eq!(diff(&ta, &tb), [TokenRange::new(0, 128)]);
        let plan = RepairPlan {
            range,
            depth: 3,
            differing: diff(&ta, &tb),
            keys_in_differing: 2,
            keys_actually_different: 1,
        };
        assert_eq!(plan.over_streaming_factor(), 2.0);
    }

    /// 10k keys on the whole ring, 1% of them divergent. Prints the figures for the report
    /// (`cargo test over_streaming_at_scale -- --nocapture`).
    #[test]
    fn over_streaming_at_scale() {
        for (keys, divergent_every) in [(10_000u64, 100u64), (10_000, 10), (100_000, 100)] {
            let entries: Vec<Entry> = (0..keys)
                .map(|i| {
                    let key = format!("key{i}");
                    entry(token_for(key.as_bytes()), &key, "v")
                })
                .collect();
            let mut a = store(&entries);
            let mut b = a.clone();
            for e in entries.iter().step_by(divergent_every as usize) {
                b.put(e.token, &e.key, Siblings::one(version(1, 2, "new"))).unwrap();
            }
            let range = TokenRange::new(0, 0);
            let plan = sync_ranges(&mut a, &mut b, range, ConflictMode::VectorClock).unwrap();
            let factor = plan.over_streaming_factor();
            println!(
                "{keys} keys, {} divergent: depth {}, {} ranges, {} keys streamed, factor {factor:.3}",
                plan.keys_actually_different,
                plan.depth,
                plan.differing.len(),
                plan.keys_in_differing
            );
            assert_eq!(plan.keys_actually_different, keys.div_ceil(divergent_every));
            assert!((1.0..2.0).contains(&factor), "factor {factor}");
            assert_eq!(range_entries(&a, range), range_entries(&b, range));
        }
    }

    /// One key's version pool: `(node, timestamp, tombstone, context mask over earlier versions)`.
    type VersionSpec = (u32, u64, bool, u8);
    /// One key: token, its version pool, and which versions replicas a and b have seen.
    type KeySpec = (Token, Vec<VersionSpec>, u8, u8);

    fn token_strategy() -> impl Strategy<Value = Token> {
        prop_oneof![any::<u64>(), 0..16u64, MAX - 16..=MAX]
    }

    fn key_strategy() -> impl Strategy<Value = KeySpec> {
        (
            token_strategy(),
            prop::collection::vec((0..3u32, 0..4u64, any::<bool>(), any::<u8>()), 1..5),
            any::<u8>(),
            any::<u8>(),
        )
    }

    /// Replica states as joins of subsets of a per-key version pool, so that a dot always names
    /// the same version on both replicas (the invariant writes guarantee).
    fn stores(keys: &[KeySpec], mode: ConflictMode) -> (MemStorage, MemStorage) {
        let (mut a, mut b) = (MemStorage::new(), MemStorage::new());
        for (i, (token, pool, seen_a, seen_b)) in keys.iter().enumerate() {
            let versions: Vec<Version> = pool
                .iter()
                .enumerate()
                .map(|(j, (node, timestamp, tombstone, ctx_mask))| {
                    let mut context = VClock::new();
                    for (k, (earlier_node, ..)) in pool[..j].iter().enumerate() {
                        if mode == ConflictMode::VectorClock && ctx_mask & (1 << k) != 0 {
                            let dot = Dot { node: NodeId(*earlier_node), counter: k as u64 + 1 };
                            context.add_dot(dot, 0);
                        }
                    }
                    Version {
                        dot: Dot { node: NodeId(*node), counter: j as u64 + 1 },
                        context,
                        timestamp: *timestamp,
                        value: (!tombstone).then(|| format!("v{i}.{j}").into_bytes()),
                    }
                })
                .collect();
            let key = format!("key{i}").into_bytes();
            for (s, seen) in [(&mut a, seen_a), (&mut b, seen_b)] {
                for (j, v) in versions.iter().enumerate() {
                    if seen & (1 << j) != 0 {
                        s.merge(*token, &key, &Siblings::one(v.clone()), mode).unwrap();
                    }
                }
            }
        }
        (a, b)
    }

    proptest! {
        /// After one repair both replicas hold identical versions in the range, keys outside it
        /// are untouched, a second repair finds nothing, and the plan's counts are exact.
        #[test]
        fn sync_ranges_converges(
            keys in prop::collection::vec(key_strategy(), 0..60),
            start in token_strategy(),
            end in token_strategy(),
            lww: bool,
        ) {
            let mode = if lww { ConflictMode::Lww } else { ConflictMode::VectorClock };
            let range = TokenRange::new(start, end);
            let (mut a, mut b) = stores(&keys, mode);
            let outside = TokenRange::new(end, start);
            let (a_outside, b_outside) = if range.is_whole_ring() {
                (Vec::new(), Vec::new())
            } else {
                (range_entries(&a, outside), range_entries(&b, outside))
            };
            let before_a = range_entries(&a, range);
            let before_b = range_entries(&b, range);
            let mut union: BTreeMap<(Token, Vec<u8>), [Option<Siblings>; 2]> = BTreeMap::new();
            for (side, entries) in [before_a, before_b].into_iter().enumerate() {
                for e in entries {
                    union.entry((e.token, e.key)).or_default()[side] = Some(e.value);
                }
            }
            let expected_different = union.values().filter(|[x, y]| x != y).count() as u64;
            let different_tokens: Vec<Token> =
                union.iter().filter(|(_, [x, y])| x != y).map(|((t, _), _)| *t).collect();

            let plan = sync_ranges(&mut a, &mut b, range, mode).unwrap();
            prop_assert_eq!(range_entries(&a, range), range_entries(&b, range));
            prop_assert_eq!(plan.keys_actually_different, expected_different);
            prop_assert!(plan.keys_in_differing >= plan.keys_actually_different);
            prop_assert!(plan.over_streaming_factor() >= 1.0);
            prop_assert_eq!(plan.differing.is_empty(), expected_different == 0);
            // Every divergent key is covered, and coalescing left no two ranges touching.
            for t in different_tokens {
                prop_assert!(plan.differing.iter().any(|r| r.contains(t)), "token {}", t);
            }
            for pair in plan.differing.windows(2) {
                prop_assert!(pair[0].end != pair[1].start, "{:?}", plan.differing);
            }
            if let [first, .., last] = plan.differing.as_slice() {
                prop_assert!(!range.is_whole_ring() || last.end != first.start);
            }
            if !range.is_whole_ring() {
                prop_assert_eq!(range_entries(&a, outside), a_outside);
                prop_assert_eq!(range_entries(&b, outside), b_outside);
            }
            let again = sync_ranges(&mut a, &mut b, range, mode).unwrap();
            prop_assert_eq!(again.differing, vec![]);
        }

        /// `leaf_of` and `leaf_range` agree, and the leaves tile the range in clockwise order.
        #[test]
        fn leaves_tile_the_range(start: u64, end: u64, depth in 0..8u32, probe: u64) {
            let range = TokenRange::new(start, end);
            let tree = MerkleTree::build(range, depth, []);
            let n = 1usize << tree.depth();
            prop_assert_eq!(tree.leaf_range(0).start, range.start);
            prop_assert_eq!(tree.leaf_range(n - 1).end, range.end);
            for i in 1..n {
                prop_assert_eq!(tree.leaf_range(i - 1).end, tree.leaf_range(i).start);
                prop_assert!(tree.leaf_range(i).width() < RING_SIZE || n == 1);
            }
            let width: u128 = (0..n).map(|i| tree.leaf_range(i).width()).sum();
            prop_assert_eq!(width, range.width());
            match tree.leaf_of(probe) {
                None => prop_assert!(!range.contains(probe)),
                Some(i) => prop_assert!(tree.leaf_range(i).contains(probe)),
            }
        }
    }
}
