//! The history checker: finds the anomalies of docs/semantics.md §2 in a Jepsen-style [`History`].
//!
//! # What is checked
//! [`check`] pairs every invoke with its completion (processes are sequential) and looks for:
//!
//! - [`AnomalyKind::StaleRead`] — invariants 1 and 4 (`R + W > RF` gives read-your-writes).
//!   An `ok`, non-final read `r` at level `R` of key `k` is stale when some `ok` write or delete
//!   `w` of `k` at level `W` with [`ConsistencyLevel::overlaps`]`(R, W, rf)` *completed before
//!   `r` was invoked* and `r`'s context does not
//!   [`cover`](crate::version::CausalContext::covers) `w`'s version. One anomaly per read;
//!   `related` lists every missed write. Reads at levels that do not overlap the write's (say
//!   `ONE`/`ONE` at RF=3) may legitimately be stale and are not flagged; a write still in flight
//!   when the read started is concurrent with it and not required either.
//! - [`AnomalyKind::LostWrite`] — invariant 1, "no acknowledged write is lost". Let `f` be the
//!   last `ok` final read of key `k` (the one completed last); keys without one are not judged.
//!   Every `ok` write or delete `w` of `k` at a level with `overlaps(ALL, W, rf)` (every level
//!   but `ANY`, whose ack may rest on a hint alone) that completed before `f` was invoked and
//!   that `f`'s context does not cover is a lost write (`related` = `[f]`). A lost delete shows up
//!   here too: the deleted data came back, or the tombstone vanished.
//! - [`AnomalyKind::LostUpdate`] — only in [`ConflictMode::Lww`]: the silent loss of
//!   last-write-wins. An `ok` write `w` (any level) that the last final read of its key covers,
//!   that is not the final winner, whose version no read ever returned (no `ok` read's LWW
//!   context, nor any write's `write_context`, names its tag), and such that some acknowledged
//!   write of the key with a later tag was *invoked before `w` completed*: concurrent with `w`
//!   (the Jepsen/Riak case), or entirely before it yet carrying a later timestamp (clock skew).
//!   Either way `w` may never have been the key's newest value. A later-tagged write invoked only
//!   after `w` completed is an ordinary overwrite and is not counted, even if nobody read `w` in
//!   between. `related` holds the earliest-invoked such write. In vector-clock mode a dropped
//!   concurrent write is not covered by the final state and is reported as a `LostWrite` instead
//!   (invariant 2: concurrent writes must surface as siblings).
//! - [`AnomalyKind::Unavailable`] and [`AnomalyKind::Timeout`] — not correctness violations but
//!   counted so reports show them: one per completed op (`fail` or `info`) whose error is
//!   `Unavailable`, respectively `Timeout`. `NodeDown` errors only appear in the op counts.
//!
//! Real time is the order of the history (`History::ops` lists events as they happened), which
//! also orders events recorded at the same engine instant. `ok` reads without a context are
//! treated as having seen nothing; `ok` writes without a version cannot be tracked and are
//! skipped. The checker assumes final reads run within the tombstone grace period: a purged
//! tombstone no longer covers the writes it deleted.
//!
//! # Cost
//! Acknowledged writes are indexed per key and consistency level, per actor by dot counter and by
//! LWW tag, with rank counts, so a read counts the writes its context does not cover in
//! `O(actors · log n)` and lists at most [`MAX_RELATED`] of them; writes it covers are never
//! visited. The whole check is `O(ops · log ops)`, even for a history where every read is stale;
//! 100k ops take a few tens of milliseconds in release.
//!
//! # Causality
//! [`check_causal`] is a separate pass (its findings are not [`AnomalyKind`]s): dot reuse and
//! write contexts that claim versions their client never read. See its module for the rules.
//!
//! # Negative control and export
//! [`check_linearizable`] runs a Wing–Gong–Lowe search per key (invariant 5: it must find
//! violations under partitions); [`to_jepsen_edn`] and [`to_json`] export histories for
//! Jepsen-family tools.

mod anomalies;
mod causal;
mod export;
mod linearizability;
mod ops;
#[cfg(test)]
mod testkit;

pub use anomalies::MAX_RELATED;
pub use causal::{CausalKind, CausalViolation, check_causal};
pub use export::{to_jepsen_edn, to_json};
pub use linearizability::{
    DEFAULT_STATE_BUDGET, KeyLinearizability, LinearizabilityReport, LinearizabilityResult,
    STATES_PER_OPERATION, check_linearizable, check_linearizable_with_budget,
};

use crate::history::History;
use crate::time::Instant;
use crate::version::ConflictMode;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[cfg(doc)]
use crate::consistency::ConsistencyLevel;

/// What the checker needs to know about the cluster that produced a history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckConfig {
    /// Replication factor, for the `R + W > RF` arithmetic.
    pub rf: usize,
    /// Conflict resolution mode; [`AnomalyKind::LostUpdate`] is only looked for under LWW.
    pub mode: ConflictMode,
}

impl Default for CheckConfig {
    /// RF = 3 with vector clocks, the engine's defaults.
    fn default() -> Self {
        CheckConfig { rf: 3, mode: ConflictMode::VectorClock }
    }
}

/// The kinds of anomaly the checker reports (see the [module documentation](self) for exactly
/// what each one counts).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AnomalyKind {
    /// A read at an overlapping level missed a write acknowledged before it started.
    StaleRead,
    /// An acknowledged write is absent from the converged final state.
    LostWrite,
    /// Last-write-wins silently dropped a write that nobody ever read.
    LostUpdate,
    /// A request refused up front for lack of live replicas.
    Unavailable,
    /// A request that timed out (its outcome is unknown).
    Timeout,
}

impl AnomalyKind {
    /// Every kind, in report order.
    pub const ALL: [AnomalyKind; 5] = [
        AnomalyKind::StaleRead,
        AnomalyKind::LostWrite,
        AnomalyKind::LostUpdate,
        AnomalyKind::Unavailable,
        AnomalyKind::Timeout,
    ];

    /// Whether this kind breaks a correctness invariant (as opposed to reporting availability).
    pub fn is_correctness(self) -> bool {
        matches!(self, AnomalyKind::StaleRead | AnomalyKind::LostWrite | AnomalyKind::LostUpdate)
    }

    /// The kebab-case name used in serialized reports.
    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyKind::StaleRead => "stale-read",
            AnomalyKind::LostWrite => "lost-write",
            AnomalyKind::LostUpdate => "lost-update",
            AnomalyKind::Unavailable => "unavailable",
            AnomalyKind::Timeout => "timeout",
        }
    }
}

impl std::fmt::Display for AnomalyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One anomaly, pointing at the operation that exhibits it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anomaly {
    /// What went wrong.
    pub kind: AnomalyKind,
    /// The key concerned.
    pub key: String,
    /// Index of the completion op of the read (stale read) or write (lost write, lost update),
    /// or of the failed / timed-out op.
    pub op_index: u64,
    /// Engine time of that completion op.
    pub time: Instant,
    /// Indices (completion ops) of the other operations involved, in history order: the missed
    /// writes of a stale read (at most [`MAX_RELATED`], the oldest versions first when more were
    /// missed; the explanation gives the total), the final read of a lost write, the shadowing
    /// write of a lost update; empty for `Unavailable` and `Timeout`.
    pub related: Vec<u64>,
    /// One human sentence, e.g. `read of k7 at QUORUM by client 2 invoked at 12.300000s returned
    /// [v3] but missed write v5 (QUORUM, acked at 11.900000s)`.
    pub explanation: String,
}

/// How many operations of one family were invoked and how they ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpCounts {
    /// Operations invoked by clients.
    pub invoked: usize,
    /// `ok` completions.
    pub ok: usize,
    /// `fail` completions.
    pub fail: usize,
    /// `info` (indeterminate) completions.
    pub info: usize,
    /// Invokes with no completion in the history.
    pub pending: usize,
}

/// The checker's findings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReport {
    /// Every anomaly, ordered by `(op_index, kind)`.
    pub anomalies: Vec<Anomaly>,
    /// Number of anomalies per kind; every kind is present, with 0 when none was found.
    pub counts: BTreeMap<AnomalyKind, usize>,
    /// Reads (final reads included).
    pub reads: OpCounts,
    /// Writes and deletes.
    pub writes: OpCounts,
    /// Well-formedness problems of the history (a completion without an invoke, a process that
    /// invoked twice); the events concerned were handled conservatively, see the docs of `check`.
    pub problems: Vec<String>,
}

impl CheckReport {
    /// Number of anomalies of `kind`.
    pub fn count(&self, kind: AnomalyKind) -> usize {
        self.counts.get(&kind).copied().unwrap_or(0)
    }

    /// Number of anomalies that break a correctness invariant (stale reads, lost writes, lost
    /// updates).
    pub fn correctness_anomalies(&self) -> usize {
        AnomalyKind::ALL.iter().filter(|k| k.is_correctness()).map(|k| self.count(*k)).sum()
    }

    /// The anomalies of one kind, in report order.
    pub fn of_kind(&self, kind: AnomalyKind) -> impl Iterator<Item = &Anomaly> + '_ {
        self.anomalies.iter().filter(move |a| a.kind == kind)
    }
}

/// Checks `history` for the anomalies described in the [module documentation](self).
///
/// Malformed histories are not rejected: a completion without a pending invoke is ignored, and an
/// invoke left pending when its process invokes again is treated as never completed; both are
/// listed in [`CheckReport::problems`].
pub fn check(history: &History, config: &CheckConfig) -> CheckReport {
    let paired = ops::pair(history);
    let mut anomalies = anomalies::find(&paired.ops, config);
    anomalies.sort_by_key(|a| (a.op_index, a.kind));

    let mut counts: BTreeMap<AnomalyKind, usize> =
        AnomalyKind::ALL.iter().map(|k| (*k, 0)).collect();
    for anomaly in &anomalies {
        *counts.entry(anomaly.kind).or_insert(0) += 1;
    }

    let mut reads = OpCounts::default();
    let mut writes = OpCounts::default();
    for op in &paired.ops {
        let family = if op.is_read() { &mut reads } else { &mut writes };
        family.invoked += 1;
        match op.outcome() {
            ops::Outcome::Ok => family.ok += 1,
            ops::Outcome::Fail => family.fail += 1,
            ops::Outcome::Info => family.info += 1,
            ops::Outcome::Pending => family.pending += 1,
        }
    }

    CheckReport { anomalies, counts, reads, writes, problems: paired.problems }
}
