//! Versions: dotted vector clocks with siblings (the default) and last-write-wins timestamps.
//!
//! # Model
//! Every write creates one [`Version`]: a unique [`Dot`] `(actor, counter)`, the causal context the
//! client supplied (what it had read), a coordinator timestamp and the value (`None` is a
//! tombstone). A key's stored state is a [`Siblings`] set.
//!
//! In [`ConflictMode::VectorClock`] mode (Dynamo, Riak's dotted version vectors) the dot is minted by
//! a *natural replica* of the key as `local maximum for that actor on this key + 1`, so an actor's
//! dots for a key form a chain it has stored itself. A version is obsolete when another version's
//! context covers its dot; versions that do not cover each other are concurrent and are all kept as
//! siblings. Merging sibling sets is a join: commutative, associative and idempotent (property
//! tested), which makes replays of hints, read repair and streaming idempotent.
//!
//! A context is a vector-clock *summary*: it covers every dot of an actor up to its entry. If a
//! reader saw an actor's later dot but not an earlier concurrent one, the summary over-claims the
//! earlier one, and a write carrying it supersedes that version unseen. This can only happen to a
//! version no read quorum observed — one not acknowledged at `W` with `R + W > RF` — so it never
//! loses an acknowledged write at overlapping levels (Riak's DVVSet summaries behave the same).
//!
//! In [`ConflictMode::Lww`] mode (Cassandra) the set holds at most one version, the greatest by
//! `(timestamp, dot)`; concurrent writes are silently dropped, which the checker counts.
//!
//! # Clock pruning
//! Rule: when a context holds more than [`MAX_CLOCK_ENTRIES`] actors, the entries with the oldest
//! update time (ties: smallest actor id) are dropped until it fits (Dynamo prunes at about ten
//! entries). Pruning only removes knowledge from a *context*, never a dot, so a pruned version can
//! only fail to supersede something: pruning may create spurious siblings but never hides a write.

use crate::id::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Contexts are pruned above this many actors (Dynamo's figure).
pub const MAX_CLOCK_ENTRIES: usize = 10;

/// How concurrent versions of a key are resolved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConflictMode {
    /// Dotted vector clocks; concurrent writes are kept as siblings (Dynamo, Riak).
    #[default]
    VectorClock,
    /// Last write wins by coordinator timestamp (Cassandra); concurrent writes are dropped.
    Lww,
}

/// The identity of one write: the actor that minted it and its counter.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Dot {
    /// The node that minted the dot.
    pub node: NodeId,
    /// Per-key (vector clock mode) or per-node (LWW mode) counter, starting at 1.
    pub counter: u64,
}

impl std::fmt::Display for Dot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.node, self.counter)
    }
}

/// One entry of a vector clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockEntry {
    /// Highest counter of this actor covered.
    pub counter: u64,
    /// Engine time (µs) of the write that last raised this entry; used only by pruning.
    pub at: u64,
}

/// A vector clock: per actor, the highest counter covered.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VClock(pub BTreeMap<NodeId, ClockEntry>);

impl VClock {
    /// The empty clock (a blind write).
    pub fn new() -> Self {
        VClock(BTreeMap::new())
    }

    /// The counter covered for `node` (0 when absent).
    pub fn get(&self, node: NodeId) -> u64 {
        self.0.get(&node).map_or(0, |e| e.counter)
    }

    /// Whether this clock covers `dot`.
    pub fn covers(&self, dot: Dot) -> bool {
        self.get(dot.node) >= dot.counter
    }

    /// Raises the entry of `dot.node` to at least `dot.counter`.
    pub fn add_dot(&mut self, dot: Dot, at: u64) {
        let e = self.0.entry(dot.node).or_insert(ClockEntry { counter: 0, at });
        if dot.counter > e.counter {
            e.counter = dot.counter;
            e.at = e.at.max(at);
        }
    }

    /// Pointwise maximum.
    pub fn join(&mut self, other: &VClock) {
        for (node, theirs) in &other.0 {
            let e = self.0.entry(*node).or_insert(*theirs);
            if theirs.counter > e.counter {
                e.counter = theirs.counter;
            }
            e.at = e.at.max(theirs.at);
        }
    }

    /// Whether every entry of `self` is ≤ the matching entry of `other`.
    pub fn descends_from(&self, other: &VClock) -> bool {
        other.0.iter().all(|(n, e)| self.get(*n) >= e.counter)
    }

    /// Applies the pruning rule of the module documentation.
    pub fn prune(&mut self, max_entries: usize) {
        while self.0.len() > max_entries {
            let oldest = self
                .0
                .iter()
                .min_by_key(|(n, e)| (e.at, **n))
                .map(|(n, _)| *n)
                .expect("non-empty clock");
            self.0.remove(&oldest);
        }
    }

    /// Number of actors.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the clock has no entry.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Display for VClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("{")?;
        for (i, (n, e)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{n}:{}", e.counter)?;
        }
        f.write_str("}")
    }
}

/// What a client learns about a write once it is acknowledged: enough for the checker to decide
/// whether a later read saw it.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct VersionTag {
    /// Coordinator timestamp in µs (LWW order, tombstone grace).
    pub timestamp: u64,
    /// The write's dot.
    pub dot: Dot,
}

/// One stored version of a key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// Unique identity of the write.
    pub dot: Dot,
    /// What the writer had seen (vector clock mode; empty under LWW).
    pub context: VClock,
    /// Coordinator timestamp in µs.
    pub timestamp: u64,
    /// The value, or `None` for a tombstone.
    #[serde(with = "serde_bytes")]
    pub value: Option<Vec<u8>>,
}

impl Version {
    /// The tag a client receives for this version.
    pub fn tag(&self) -> VersionTag {
        VersionTag { timestamp: self.timestamp, dot: self.dot }
    }

    /// Whether this version is a tombstone.
    pub fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }

    fn lww_key(&self) -> (u64, Dot) {
        (self.timestamp, self.dot)
    }

    /// Approximate size in bytes, for load accounting and streaming figures.
    pub fn approx_bytes(&self) -> usize {
        32 + self.context.len() * 24 + self.value.as_ref().map_or(0, Vec::len)
    }
}

/// The causal context a read returns and a write carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CausalContext {
    /// Vector clock mode: the join of every returned sibling's context and dot.
    Vector(VClock),
    /// LWW mode: the winning version, if any.
    Lww(Option<VersionTag>),
}

impl Default for CausalContext {
    fn default() -> Self {
        CausalContext::Vector(VClock::new())
    }
}

impl CausalContext {
    /// The context of a blind write (one without a read before it) under `mode`: the empty
    /// clock, or no LWW winner. Every host sends this when the client gives no context.
    pub fn blind(mode: ConflictMode) -> CausalContext {
        match mode {
            ConflictMode::VectorClock => CausalContext::Vector(VClock::new()),
            ConflictMode::Lww => CausalContext::Lww(None),
        }
    }

    /// Whether the context claims nothing: a blind write's, in either mode.
    pub fn is_blind(&self) -> bool {
        match self {
            CausalContext::Vector(c) => c.is_empty(),
            CausalContext::Lww(best) => best.is_none(),
        }
    }

    /// Whether a read that returned this context saw the write `tag` or a successor of it.
    pub fn covers(&self, tag: &VersionTag) -> bool {
        match self {
            CausalContext::Vector(clock) => clock.covers(tag.dot),
            CausalContext::Lww(best) => best.is_some_and(|b| b >= *tag),
        }
    }

    /// The vector clock carried (empty for LWW).
    pub fn clock(&self) -> VClock {
        match self {
            CausalContext::Vector(c) => c.clone(),
            CausalContext::Lww(_) => VClock::new(),
        }
    }
}

/// The stored state of one key: every version not yet superseded.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Siblings(pub Vec<Version>);

impl Siblings {
    /// An empty set.
    pub fn new() -> Self {
        Siblings(Vec::new())
    }

    /// A set holding one version.
    pub fn one(v: Version) -> Self {
        Siblings(vec![v])
    }

    /// Whether no version is held.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The live (non-tombstone) values, in dot order.
    pub fn values(&self) -> Vec<Vec<u8>> {
        self.0.iter().filter_map(|v| v.value.clone()).collect()
    }

    /// The highest counter any version of this key holds for `node` (dots and contexts).
    pub fn max_counter(&self, node: NodeId) -> u64 {
        self.0
            .iter()
            .map(|v| {
                let own = if v.dot.node == node { v.dot.counter } else { 0 };
                own.max(v.context.get(node))
            })
            .max()
            .unwrap_or(0)
    }

    /// The context a read returns.
    pub fn context(&self, mode: ConflictMode) -> CausalContext {
        match mode {
            ConflictMode::VectorClock => {
                let mut clock = VClock::new();
                for v in &self.0 {
                    clock.join(&v.context);
                    clock.add_dot(v.dot, v.timestamp);
                }
                CausalContext::Vector(clock)
            }
            ConflictMode::Lww => {
                CausalContext::Lww(self.0.iter().max_by_key(|v| v.lww_key()).map(Version::tag))
            }
        }
    }

    /// Adds one version; returns whether the stored state changed.
    pub fn apply(&mut self, v: Version, mode: ConflictMode) -> bool {
        self.merge(&Siblings::one(v), mode)
    }

    /// Merges another set into this one (a join); returns whether this set changed.
    ///
    /// Vector-clock mode keeps every version of either set whose dot no *other* version of
    /// either set covers, deduplicated by dot (a dot names exactly one version) and sorted by dot.
    pub fn merge(&mut self, other: &Siblings, mode: ConflictMode) -> bool {
        match mode {
            ConflictMode::Lww => {
                let mut changed = false;
                if self.0.len() > 1 {
                    let best = self.0.iter().max_by_key(|v| v.lww_key()).cloned();
                    self.0 = best.into_iter().collect();
                    changed = true;
                }
                if let Some(theirs) = other.0.iter().max_by_key(|v| v.lww_key())
                    && self.0.first().is_none_or(|ours| theirs.lww_key() > ours.lww_key())
                {
                    self.0 = vec![theirs.clone()];
                    changed = true;
                }
                changed
            }
            ConflictMode::VectorClock => {
                let covered = |dot: Dot, ours: &[Version]| {
                    ours.iter().chain(other.0.iter()).any(|w| w.dot != dot && w.context.covers(dot))
                };
                let mut changed = false;
                for v in &other.0 {
                    if !self.0.iter().any(|w| w.dot == v.dot) && !covered(v.dot, &self.0) {
                        // Exact growth: stored sets are long-lived and almost always hold one
                        // version, so amortised doubling would waste memory on every key.
                        self.0.reserve_exact(1);
                        self.0.push(v.clone());
                        changed = true;
                    }
                }
                let keep: Vec<bool> = self.0.iter().map(|v| !covered(v.dot, &self.0)).collect();
                if keep.iter().any(|k| !k) {
                    let mut flags = keep.into_iter();
                    self.0.retain(|_| flags.next().unwrap_or(true));
                    changed = true;
                }
                if changed {
                    self.0.sort_by_key(|v| v.dot);
                }
                changed
            }
        }
    }

    /// Drops tombstones whose timestamp is older than `horizon` when they are the only version
    /// left (a tombstone still shadowing a sibling is kept).
    pub fn purge_tombstones(&mut self, horizon: u64) -> bool {
        if !self.0.is_empty() && self.0.iter().all(|v| v.is_tombstone() && v.timestamp < horizon) {
            self.0.clear();
            true
        } else {
            false
        }
    }

    /// Approximate size in bytes.
    pub fn approx_bytes(&self) -> usize {
        self.0.iter().map(Version::approx_bytes).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dot(n: u32, c: u64) -> Dot {
        Dot { node: NodeId(n), counter: c }
    }

    fn version(n: u32, c: u64, ctx: &[(u32, u64)], val: &str) -> Version {
        let mut context = VClock::new();
        for (cn, cc) in ctx {
            context.add_dot(dot(*cn, *cc), 0);
        }
        Version { dot: dot(n, c), context, timestamp: c, value: Some(val.as_bytes().to_vec()) }
    }

    #[test]
    fn concurrent_blind_writes_become_siblings() {
        let mut s = Siblings::new();
        s.apply(version(1, 1, &[], "a"), ConflictMode::VectorClock);
        s.apply(version(1, 2, &[], "b"), ConflictMode::VectorClock);
        assert_eq!(s.values(), vec![b"a".to_vec(), b"b".to_vec()]);
        let ctx = s.context(ConflictMode::VectorClock);
        assert_eq!(ctx.clock().get(NodeId(1)), 2);
        // A write carrying that context supersedes both.
        s.apply(version(2, 1, &[(1, 2)], "c"), ConflictMode::VectorClock);
        assert_eq!(s.values(), vec![b"c".to_vec()]);
    }

    #[test]
    fn obsolete_version_arriving_late_is_ignored() {
        let mut s = Siblings::one(version(2, 1, &[(1, 1)], "new"));
        let changed = s.apply(version(1, 1, &[], "old"), ConflictMode::VectorClock);
        assert!(!changed);
        assert_eq!(s.values(), vec![b"new".to_vec()]);
    }

    #[test]
    fn lww_keeps_greatest_timestamp() {
        let mut s = Siblings::new();
        s.apply(version(1, 5, &[], "late"), ConflictMode::Lww);
        s.apply(version(2, 3, &[], "early"), ConflictMode::Lww);
        assert_eq!(s.values(), vec![b"late".to_vec()]);
    }

    #[test]
    fn pruning_drops_oldest_entries() {
        let mut c = VClock::new();
        for i in 0..12u32 {
            c.add_dot(dot(i, 1), u64::from(100 - i));
        }
        c.prune(10);
        assert_eq!(c.len(), 10);
        assert_eq!(c.get(NodeId(11)), 0);
        assert_eq!(c.get(NodeId(10)), 0);
        assert_eq!(c.get(NodeId(0)), 1);
    }

    #[test]
    fn tombstone_purged_only_after_horizon() {
        let mut s = Siblings::one(Version {
            dot: dot(1, 1),
            context: VClock::new(),
            timestamp: 10,
            value: None,
        });
        assert!(!s.purge_tombstones(10));
        assert!(s.purge_tombstones(11));
        assert!(s.is_empty());
    }

    /// Versions generated the way replicas generate them: each new version's context is the join of
    /// some earlier versions' contexts and dots, closed under the summary (whatever the clock
    /// covers counts as seen, with its own context). That closure is what makes merge a join: a
    /// context that claims a dot it never saw (possible only for a write no quorum acknowledged,
    /// see the module docs) can break associativity.
    fn arb_history() -> impl Strategy<Value = Vec<Version>> {
        proptest::collection::vec((0u32..3, proptest::collection::vec(any::<bool>(), 0..8)), 1..8)
            .prop_map(|steps| {
                let mut out: Vec<Version> = Vec::new();
                let mut counters = [0u64; 3];
                for (node, seen) in steps {
                    counters[node as usize] += 1;
                    let mut ctx = VClock::new();
                    for (i, s) in seen.iter().enumerate() {
                        if *s && i < out.len() {
                            let v = out[i].clone();
                            ctx.join(&v.context);
                            ctx.add_dot(v.dot, 0);
                        }
                    }
                    loop {
                        let before = ctx.clone();
                        for v in
                            out.iter().filter(|v| ctx.covers(v.dot)).cloned().collect::<Vec<_>>()
                        {
                            ctx.join(&v.context);
                        }
                        if ctx == before {
                            break;
                        }
                    }
                    let c = counters[node as usize];
                    out.push(Version {
                        dot: dot(node, c),
                        context: ctx,
                        timestamp: c,
                        value: Some(vec![node as u8, c as u8]),
                    });
                }
                out
            })
    }

    fn set_of(vs: &[Version], mode: ConflictMode) -> Siblings {
        let mut s = Siblings::new();
        for v in vs {
            s.apply(v.clone(), mode);
        }
        s
    }

    proptest! {
        #[test]
        fn merge_is_a_join(h in arb_history(), split1 in 0usize..8, split2 in 0usize..8) {
            for mode in [ConflictMode::VectorClock, ConflictMode::Lww] {
                let n = h.len();
                let (a, rest) = h.split_at(split1.min(n));
                let (b, c) = rest.split_at(split2.min(rest.len()));
                let (a, b, c) = (set_of(a, mode), set_of(b, mode), set_of(c, mode));
                // commutative
                let mut ab = a.clone(); ab.merge(&b, mode);
                let mut ba = b.clone(); ba.merge(&a, mode);
                prop_assert_eq!(&ab, &ba);
                // associative
                let mut ab_c = ab.clone(); ab_c.merge(&c, mode);
                let mut bc = b.clone(); bc.merge(&c, mode);
                let mut a_bc = a.clone(); a_bc.merge(&bc, mode);
                prop_assert_eq!(&ab_c, &a_bc);
                // idempotent
                let mut aa = a.clone();
                prop_assert!(!aa.merge(&a, mode));
                prop_assert_eq!(&aa, &a);
            }
        }

        #[test]
        fn no_write_is_hidden_without_being_seen(h in arb_history()) {
            // Every version absent from the merged set is covered by the context of a version that
            // saw it: nothing disappears silently.
            let s = set_of(&h, ConflictMode::VectorClock);
            for v in &h {
                let present = s.0.iter().any(|w| w.dot == v.dot);
                let seen = h.iter().any(|w| w.dot != v.dot && w.context.covers(v.dot));
                prop_assert!(present || seen);
            }
        }

        #[test]
        fn pruning_never_adds_coverage(h in arb_history(), max in 1usize..3) {
            for v in &h {
                let mut pruned = v.context.clone();
                pruned.prune(max);
                for w in &h {
                    prop_assert!(!pruned.covers(w.dot) || v.context.covers(w.dot));
                }
            }
        }
    }
}
