//! The anomaly detectors behind [`check`](super::check): stale reads, lost writes, lost updates
//! and availability errors. The rules are stated in the [module documentation](super).

use super::ops::{Operation, Outcome};
use super::{Anomaly, AnomalyKind, CheckConfig};
use crate::consistency::ConsistencyLevel;
use crate::history::{Op, OpError, OpType};
use crate::id::NodeId;
use crate::version::{CausalContext, ConflictMode, VersionTag};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

/// A stale-read explanation names at most this many missed writes, then "and N more".
const MAX_NAMED_WRITES: usize = 3;

/// A stale read's `related` lists at most this many missed writes (the explanation gives the
/// total), so a badly broken history cannot make the report quadratic in size.
pub const MAX_RELATED: usize = 64;

/// Runs every detector over the paired operations.
pub(crate) fn find(ops: &[Operation<'_>], config: &CheckConfig) -> Vec<Anomaly> {
    let keys = KeyTable::new(ops);
    let mut out = Vec::new();
    stale_reads(ops, &keys, config, &mut out);
    let finals = last_final_reads(ops, &keys);
    lost_writes(ops, &keys, &finals, config, &mut out);
    if config.mode == ConflictMode::Lww {
        lost_updates(ops, &keys, &finals, &mut out);
    }
    availability(ops, &mut out);
    out
}

/// Dense ids for the keys of a history, so per-key tables are vectors.
struct KeyTable {
    /// Key id of each operation, parallel to the operation slice.
    of_op: Vec<usize>,
    /// Number of distinct keys.
    len: usize,
}

impl KeyTable {
    fn new(ops: &[Operation<'_>]) -> Self {
        let mut ids: BTreeMap<&str, usize> = BTreeMap::new();
        let of_op = ops
            .iter()
            .map(|op| {
                let next = ids.len();
                *ids.entry(op.invoke.key.as_str()).or_insert(next)
            })
            .collect();
        KeyTable { of_op, len: ids.len() }
    }
}

/// The version of an acknowledged write or delete, if it is one.
fn acked_version(op: &Operation<'_>) -> Option<VersionTag> {
    if op.is_write() && op.outcome() == Outcome::Ok { op.done()?.version } else { None }
}

/// The context of an `ok` read, if it is one (`None` for other ops; an `ok` read recorded without
/// a context yields `Some(None)`: it saw nothing).
fn read_context<'h>(op: &Operation<'h>) -> Option<Option<&'h CausalContext>> {
    if op.is_read() && op.outcome() == Outcome::Ok {
        Some(op.done().and_then(|d| d.context.as_ref()))
    } else {
        None
    }
}

fn covers(context: Option<&CausalContext>, tag: &VersionTag) -> bool {
    context.is_some_and(|c| c.covers(tag))
}

fn format_values(values: &[String]) -> String {
    format!("[{}]", values.join(", "))
}

/// Counts of inserted items by rank, with prefix sums in `O(log n)` (a Fenwick tree).
struct RankCounts {
    tree: Vec<u32>,
    inserted: usize,
}

impl RankCounts {
    fn new(len: usize) -> Self {
        RankCounts { tree: vec![0; len + 1], inserted: 0 }
    }

    fn insert(&mut self, rank: usize) {
        self.inserted += 1;
        let mut i = rank + 1;
        while i < self.tree.len() {
            self.tree[i] += 1;
            i += i & i.wrapping_neg();
        }
    }

    /// How many inserted items have a rank of at least `rank`.
    fn at_or_above(&self, rank: usize) -> usize {
        let mut below = 0;
        let mut i = rank;
        while i > 0 {
            below += self.tree[i] as usize;
            i -= i & i.wrapping_neg();
        }
        self.inserted - below
    }
}

/// Writes of one key and level, ordered by some sort key (a dot counter, or an LWW tag): all of
/// them are known up front (ranks), and they are inserted as the sweep reaches their ack.
struct Ranked<K> {
    /// Every write of the group, `(sort key, op id)`, sorted.
    all: Vec<(K, usize)>,
    counts: RankCounts,
    /// The inserted ones, for listing the first few above a threshold.
    present: BTreeSet<(K, usize)>,
}

impl<K: Ord + Copy> Ranked<K> {
    fn new(mut all: Vec<(K, usize)>) -> Self {
        all.sort_unstable();
        let counts = RankCounts::new(all.len());
        Ranked { all, counts, present: BTreeSet::new() }
    }

    fn insert(&mut self, key: K, op_id: usize) {
        let rank = self.all.partition_point(|entry| *entry < (key, op_id));
        debug_assert!(self.all.get(rank) == Some(&(key, op_id)), "inserted an unknown write");
        self.counts.insert(rank);
        self.present.insert((key, op_id));
    }

    /// The number of inserted writes whose sort key is above `covered` (all when `None`), and
    /// the op ids of up to `limit` of them, lowest sort keys first.
    fn above(&self, covered: Option<K>, limit: usize, out: &mut Vec<usize>) -> usize {
        let Some(covered) = covered else {
            out.extend(self.present.iter().take(limit).map(|(_, id)| *id));
            return self.counts.inserted;
        };
        let first = self.all.partition_point(|(k, _)| *k <= covered);
        let count = self.counts.at_or_above(first);
        if count > 0 {
            let after = (Bound::Excluded((covered, usize::MAX)), Bound::Unbounded);
            out.extend(self.present.range(after).take(limit.min(count)).map(|(_, id)| *id));
        }
        count
    }
}

/// Acknowledged writes of one key at one consistency level, indexed so that a read counts the
/// writes its context does *not* cover in `O(actors · log n)` and lists a few of them, without
/// visiting those it covers.
struct AckedWrites {
    /// Vector-clock view, per actor by dot counter: a clock covers a dot exactly when its entry
    /// for the actor is at least the counter, so the uncovered writes of an actor are a range.
    by_actor: BTreeMap<NodeId, Ranked<u64>>,
    /// LWW view, by tag: an LWW context covers exactly the tags up to its winner.
    by_tag: Ranked<VersionTag>,
}

impl AckedWrites {
    fn new(writes: &[(VersionTag, usize)]) -> Self {
        let mut per_actor: BTreeMap<NodeId, Vec<(u64, usize)>> = BTreeMap::new();
        for (tag, id) in writes {
            per_actor.entry(tag.dot.node).or_default().push((tag.dot.counter, *id));
        }
        AckedWrites {
            by_actor: per_actor.into_iter().map(|(n, w)| (n, Ranked::new(w))).collect(),
            by_tag: Ranked::new(writes.to_vec()),
        }
    }

    fn insert(&mut self, tag: VersionTag, op_id: usize) {
        if let Some(actor) = self.by_actor.get_mut(&tag.dot.node) {
            actor.insert(tag.dot.counter, op_id);
        }
        self.by_tag.insert(tag, op_id);
    }

    /// Counts the inserted writes that `context` does not cover, pushing up to `limit` of them
    /// (per actor for vector clocks) onto `out`.
    fn uncovered(
        &self,
        context: Option<&CausalContext>,
        limit: usize,
        out: &mut Vec<usize>,
    ) -> usize {
        match context {
            Some(CausalContext::Vector(clock)) => self
                .by_actor
                .iter()
                .map(|(actor, writes)| writes.above(Some(clock.get(*actor)), limit, out))
                .sum(),
            Some(CausalContext::Lww(winner)) => self.by_tag.above(*winner, limit, out),
            None => self.by_tag.above(None, limit, out),
        }
    }
}

/// Stale reads, in one sweep over the history. A write enters the index of its key and level
/// when its `ok` is recorded; a read is judged at its *invoke*, so the index then holds exactly
/// the writes acknowledged before it started (its context is read from its completion).
fn stale_reads(
    ops: &[Operation<'_>],
    keys: &KeyTable,
    config: &CheckConfig,
    out: &mut Vec<Anomaly>,
) {
    let mut groups: Vec<BTreeMap<ConsistencyLevel, Vec<(VersionTag, usize)>>> =
        (0..keys.len).map(|_| BTreeMap::new()).collect();
    // (position, op id): acks of writes, invokes of judged reads.
    let mut events: Vec<(usize, usize)> = Vec::new();
    for (id, op) in ops.iter().enumerate() {
        if let Some(tag) = acked_version(op) {
            groups[keys.of_op[id]].entry(op.invoke.cl).or_default().push((tag, id));
            events.push((op.completion_pos(), id));
        } else if read_context(op).is_some() && !op.invoke.final_read {
            events.push((op.invoke_pos, id));
        }
    }
    events.sort_unstable();
    let mut index: Vec<BTreeMap<ConsistencyLevel, AckedWrites>> = groups
        .into_iter()
        .map(|levels| levels.into_iter().map(|(cl, w)| (cl, AckedWrites::new(&w))).collect())
        .collect();

    let mut listed = Vec::new();
    for (_, id) in events {
        let op = &ops[id];
        let key = keys.of_op[id];
        if let Some(tag) = acked_version(op) {
            index[key].get_mut(&op.invoke.cl).expect("grouped above").insert(tag, id);
            continue;
        }
        let Some(context) = read_context(op) else {
            continue;
        };
        listed.clear();
        let mut missed = 0;
        for (write_cl, writes) in &index[key] {
            if ConsistencyLevel::overlaps(op.invoke.cl, *write_cl, config.rf) {
                missed += writes.uncovered(context, MAX_RELATED, &mut listed);
            }
        }
        if missed == 0 {
            continue;
        }
        debug_assert!(
            listed.iter().all(|w| !covers(context, &acked_version(&ops[*w]).expect("acked"))),
            "the write index disagrees with CausalContext::covers"
        );
        listed.sort_unstable_by_key(|w| ops[*w].completion_pos());
        listed.truncate(MAX_RELATED);
        out.push(stale_read_anomaly(op, missed, listed.iter().map(|w| &ops[*w])));
    }
}

fn stale_read_anomaly<'a, 'h: 'a>(
    read: &Operation<'h>,
    missed: usize,
    listed: impl Iterator<Item = &'a Operation<'h>>,
) -> Anomaly {
    let done = read.done().expect("ok read has a completion");
    let mut related = Vec::new();
    let mut named = Vec::new();
    for write in listed {
        related.push(write.report_index());
        if named.len() < MAX_NAMED_WRITES {
            let acked = write.done().expect("acked write has a completion").time;
            named.push(format!("{} ({}, acked at {acked})", write.describe(), write.invoke.cl));
        }
    }
    let unnamed = missed - named.len();
    let mut missed_text = if missed == 1 {
        named.remove(0)
    } else {
        format!("{missed} writes: {}", named.join(", "))
    };
    if unnamed > 0 {
        missed_text.push_str(&format!(" and {unnamed} more"));
    }
    Anomaly {
        kind: AnomalyKind::StaleRead,
        key: read.invoke.key.clone(),
        op_index: done.index,
        time: done.time,
        related,
        explanation: format!(
            "read of {} at {} by client {} invoked at {} returned {} but missed {missed_text}",
            read.invoke.key,
            read.invoke.cl,
            read.invoke.process,
            read.invoke.time,
            format_values(&done.values),
        ),
    }
}

/// Per key id, the op id of the last `ok` final read (the one completed last).
fn last_final_reads(ops: &[Operation<'_>], keys: &KeyTable) -> Vec<Option<usize>> {
    let mut finals: Vec<Option<usize>> = vec![None; keys.len];
    for (id, op) in ops.iter().enumerate() {
        if !op.invoke.final_read || read_context(op).is_none() {
            continue;
        }
        let slot = &mut finals[keys.of_op[id]];
        if slot.is_none_or(|prev| ops[prev].completion_pos() < op.completion_pos()) {
            *slot = Some(id);
        }
    }
    finals
}

/// Lost writes: acknowledged (non-`ANY`) writes the last final read of their key does not cover.
fn lost_writes(
    ops: &[Operation<'_>],
    keys: &KeyTable,
    finals: &[Option<usize>],
    config: &CheckConfig,
    out: &mut Vec<Anomaly>,
) {
    for (id, write) in ops.iter().enumerate() {
        let Some(tag) = acked_version(write) else {
            continue;
        };
        let Some(final_id) = finals[keys.of_op[id]] else {
            continue;
        };
        let last = &ops[final_id];
        if !ConsistencyLevel::overlaps(ConsistencyLevel::All, write.invoke.cl, config.rf)
            || write.completion_pos() >= last.invoke_pos
        {
            continue;
        }
        let final_done: &Op = last.done().expect("ok final read has a completion");
        if covers(final_done.context.as_ref(), &tag) {
            continue;
        }
        let done = write.done().expect("acked write has a completion");
        out.push(Anomaly {
            kind: AnomalyKind::LostWrite,
            key: write.invoke.key.clone(),
            op_index: done.index,
            time: done.time,
            related: vec![final_done.index],
            explanation: format!(
                "{} of {} at {} by client {}, acked at {}, is missing from the final read at {}, \
                 which returned {}",
                write.describe(),
                write.invoke.key,
                write.invoke.cl,
                write.invoke.process,
                done.time,
                final_done.time,
                format_values(&final_done.values),
            ),
        });
    }
}

/// Lost updates under last-write-wins (see the module documentation for the exact rule).
fn lost_updates(
    ops: &[Operation<'_>],
    keys: &KeyTable,
    finals: &[Option<usize>],
    out: &mut Vec<Anomaly>,
) {
    // Per key: the acknowledged writes by tag, and every tag some client is known to have read.
    let mut writes: Vec<Vec<(VersionTag, usize)>> = vec![Vec::new(); keys.len];
    let mut observed: Vec<BTreeSet<VersionTag>> = vec![BTreeSet::new(); keys.len];
    for (id, op) in ops.iter().enumerate() {
        let key = keys.of_op[id];
        if let Some(tag) = acked_version(op) {
            writes[key].push((tag, id));
        }
        if let Some(Some(CausalContext::Lww(Some(seen)))) = read_context(op) {
            observed[key].insert(*seen);
        }
        if let Some(CausalContext::Lww(Some(seen))) = &op.invoke.write_context {
            observed[key].insert(*seen);
        }
    }
    for (key, mut writes) in writes.into_iter().enumerate() {
        let Some(final_id) = finals[key] else {
            continue;
        };
        let last = &ops[final_id];
        let Some(CausalContext::Lww(Some(winner))) = last.done().and_then(|d| d.context.as_ref())
        else {
            continue;
        };
        writes.sort_unstable();
        // shadow[i]: among the writes with a strictly later tag than writes[i], the one invoked
        // first, as (invoke position, index into `writes`). One backward pass, so a key costs
        // O(n log n) however skewed the clocks.
        let mut shadow: Vec<Option<(usize, usize)>> = vec![None; writes.len()];
        let mut earliest_later: Option<(usize, usize)> = None;
        let mut end = writes.len();
        while end > 0 {
            let group_tag = writes[end - 1].0;
            let start = writes[..end].partition_point(|(t, _)| *t < group_tag);
            for slot in &mut shadow[start..end] {
                *slot = earliest_later;
            }
            for (i, (_, id)) in writes.iter().enumerate().take(end).skip(start) {
                let candidate = (ops[*id].invoke_pos, i);
                earliest_later = Some(earliest_later.map_or(candidate, |e| e.min(candidate)));
            }
            end = start;
        }
        for (i, &(tag, id)) in writes.iter().enumerate() {
            let lost = &ops[id];
            let Some((shadow_invoke, shadow_index)) = shadow[i] else {
                continue;
            };
            if tag >= *winner
                || observed[key].contains(&tag)
                || lost.completion_pos() >= last.invoke_pos
                || shadow_invoke >= lost.completion_pos()
            {
                continue;
            }
            let (shadow_tag, shadow_id) = writes[shadow_index];
            out.push(lost_update_anomaly(lost, tag, &ops[shadow_id], shadow_tag));
        }
    }
}

fn lost_update_anomaly(
    lost: &Operation<'_>,
    tag: VersionTag,
    shadowing: &Operation<'_>,
    shadowing_tag: VersionTag,
) -> Anomaly {
    let done = lost.done().expect("acked write has a completion");
    let how = if shadowing.completion_pos() > lost.invoke_pos {
        "concurrent"
    } else {
        "earlier (completed before it was invoked, timestamp skew)"
    };
    Anomaly {
        kind: AnomalyKind::LostUpdate,
        key: lost.invoke.key.clone(),
        op_index: done.index,
        time: done.time,
        related: vec![shadowing.report_index()],
        explanation: format!(
            "{} of {} by client {}, acked at {}, was never read: last-write-wins dropped it for \
             the {how} {} by client {} (timestamp {} > {})",
            lost.describe(),
            lost.invoke.key,
            lost.invoke.process,
            done.time,
            shadowing.describe(),
            shadowing.invoke.process,
            shadowing_tag.timestamp,
            tag.timestamp,
        ),
    }
}

/// One `Unavailable` per completion with that error, one `Timeout` per completion with that
/// error, whatever the completion type.
fn availability(ops: &[Operation<'_>], out: &mut Vec<Anomaly>) {
    for op in ops {
        let Some(done) = op.done() else { continue };
        let (kind, what) = match done.error {
            Some(OpError::Unavailable) => (
                AnomalyKind::Unavailable,
                format!("was refused at {}: too few live replicas", done.time),
            ),
            Some(OpError::Timeout) => {
                let effect = if op.is_write() && done.op_type != OpType::Fail {
                    " (it may or may not have taken effect)"
                } else {
                    ""
                };
                (AnomalyKind::Timeout, format!("timed out at {}{effect}", done.time))
            }
            Some(OpError::NodeDown) | None => continue,
        };
        out.push(Anomaly {
            kind,
            key: op.invoke.key.clone(),
            op_index: done.index,
            time: done.time,
            related: Vec::new(),
            explanation: format!(
                "{} of {} at {} by client {} {what}",
                op.describe(),
                op.invoke.key,
                op.invoke.cl,
                op.invoke.process,
            ),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::{CheckReport, OpCounts, check};
    use super::*;
    use crate::checker::testkit::{Builder, lww, tag, vc};
    use crate::consistency::ConsistencyLevel::{All, Any, One, Quorum};
    use crate::history::History;
    use proptest::prelude::*;

    const VC3: CheckConfig = CheckConfig { rf: 3, mode: ConflictMode::VectorClock };
    const LWW3: CheckConfig = CheckConfig { rf: 3, mode: ConflictMode::Lww };

    fn kinds(report: &CheckReport) -> Vec<(AnomalyKind, u64, Vec<u64>)> {
        report.anomalies.iter().map(|a| (a.kind, a.op_index, a.related.clone())).collect()
    }

    #[test]
    fn stale_read_at_quorum_is_flagged() {
        let mut b = Builder::new();
        let w1 = b.write(0, "k7", "v3", Quorum, 10_000, 10_100, tag(10_000_000, 0, 1));
        let w2 = b.write(0, "k7", "v5", Quorum, 11_800, 11_900, tag(11_800_000, 0, 2));
        let r = b.read(2, "k7", Quorum, 12_300, 12_400, &["v3"], vc(&[(0, 1)]));
        let report = check(&b.build(), &VC3);
        assert_eq!(kinds(&report), [(AnomalyKind::StaleRead, r, vec![w2])]);
        let a = &report.anomalies[0];
        assert_eq!(a.key, "k7");
        assert_eq!(a.time, crate::time::Instant::from_millis(12_400));
        assert_eq!(
            a.explanation,
            "read of k7 at QUORUM by client 2 invoked at 12.300000s returned [v3] but missed \
             write v5 (QUORUM, acked at 11.900000s)"
        );
        assert_eq!(report.count(AnomalyKind::StaleRead), 1);
        assert_eq!(report.correctness_anomalies(), 1);
        let _ = w1;
    }

    #[test]
    fn non_overlapping_levels_may_be_stale() {
        for (read_cl, write_cl, stale) in [
            (One, One, false),
            (Quorum, One, false),
            (One, Quorum, false),
            (All, One, true),
            (One, All, true),
            (All, Any, false),
            (Quorum, Quorum, true),
        ] {
            let mut b = Builder::new();
            b.write(0, "k", "a", write_cl, 0, 1, tag(0, 0, 1));
            b.read(1, "k", read_cl, 2, 3, &[], vc(&[]));
            let report = check(&b.build(), &VC3);
            assert_eq!(
                report.count(AnomalyKind::StaleRead),
                usize::from(stale),
                "read {read_cl}, write {write_cl}"
            );
        }
    }

    #[test]
    fn read_concurrent_with_write_is_not_stale() {
        let mut b = Builder::new();
        b.invoke_write(0, "k", "a", Quorum, 0);
        b.invoke_read(1, "k", Quorum, 1);
        let ack = b.ok_write(0, 2, tag(0, 0, 1));
        b.ok_read(1, 3, &[], vc(&[]));
        // Invoked at the same instant as the ack but recorded after it: the ack came first.
        b.invoke_read(1, "k", Quorum, 2);
        let stale = b.ok_read(1, 4, &[], vc(&[]));
        let report = check(&b.build(), &VC3);
        assert_eq!(kinds(&report), [(AnomalyKind::StaleRead, stale, vec![ack])]);
    }

    #[test]
    fn a_causal_successor_covers_the_write() {
        // Vector clocks: the read saw b, whose context covers a.
        let mut b = Builder::new();
        b.write(0, "k", "a", Quorum, 0, 1, tag(0, 0, 1));
        b.invoke_rmw(0, "k", "b", Quorum, 2, vc(&[(0, 1)]));
        b.ok_write(0, 3, tag(2, 1, 1));
        b.read(1, "k", Quorum, 4, 5, &["b"], vc(&[(0, 1), (1, 1)]));
        assert!(check(&b.build(), &VC3).anomalies.is_empty());

        // LWW: the winner's timestamp covers every older tag.
        let mut b = Builder::new();
        b.write(0, "k", "a", Quorum, 0, 1, tag(10, 0, 1));
        let newer = b.write(0, "k", "b", Quorum, 2, 3, tag(20, 0, 2));
        b.read(1, "k", Quorum, 4, 5, &["b"], lww(tag(20, 0, 2)));
        let stale = b.read(1, "k", Quorum, 6, 7, &["a"], lww(tag(10, 0, 1)));
        let report = check(&b.build(), &LWW3);
        assert_eq!(kinds(&report), [(AnomalyKind::StaleRead, stale, vec![newer])]);
    }

    #[test]
    fn one_anomaly_per_stale_read_listing_every_missed_write() {
        let mut b = Builder::new();
        let mut acks = Vec::new();
        for i in 1..=5 {
            acks.push(b.write(0, "k", &format!("v{i}"), Quorum, 2 * i, 2 * i + 1, tag(i, 0, i)));
        }
        // Also missed: an ALL write from another actor. Not missed: an ONE write.
        acks.push(b.write(3, "k", "w", All, 20, 21, tag(20, 3, 1)));
        b.write(4, "k", "x", One, 22, 23, tag(22, 4, 1));
        let r = b.read(1, "k", Quorum, 30, 31, &[], vc(&[]));
        let report = check(&b.build(), &VC3);
        assert_eq!(kinds(&report), [(AnomalyKind::StaleRead, r, acks)]);
        assert!(
            report.anomalies[0].explanation.ends_with(
                "missed 6 writes: write v1 (QUORUM, acked at 0.003000s), write v2 (QUORUM, acked \
                 at 0.005000s), write v3 (QUORUM, acked at 0.007000s) and 3 more"
            ),
            "{}",
            report.anomalies[0].explanation
        );
    }

    #[test]
    fn related_writes_are_capped() {
        let mut b = Builder::new();
        let mut acks = Vec::new();
        for i in 1..=100 {
            acks.push(b.write(0, "k", &format!("v{i}"), Quorum, 2 * i, 2 * i + 1, tag(i, 0, i)));
        }
        let r = b.read(1, "k", Quorum, 300, 301, &["v1"], vc(&[(0, 1)]));
        let report = check(&b.build(), &VC3);
        assert_eq!(report.anomalies.len(), 1);
        let a = &report.anomalies[0];
        assert_eq!(a.op_index, r);
        assert_eq!(a.related, acks[1..=MAX_RELATED]);
        assert!(a.explanation.contains("missed 99 writes: write v2"), "{}", a.explanation);
        assert!(a.explanation.ends_with("and 96 more"), "{}", a.explanation);
    }

    #[test]
    fn final_reads_are_not_checked_for_staleness() {
        let mut b = Builder::new();
        b.write(0, "k", "a", One, 0, 1, tag(0, 0, 1));
        b.final_read(9, "k", 10, 11, &["a"], vc(&[(0, 1)]));
        b.invoke_read(9, "k", All, 12);
        assert!(check(&b.build(), &VC3).anomalies.is_empty());
    }

    #[test]
    fn write_missing_from_the_final_read_is_lost() {
        let mut b = Builder::new();
        let kept = b.write(0, "k", "a", Quorum, 0, 1, tag(0, 0, 1));
        let lost = b.write(1, "k", "b", Quorum, 0, 2, tag(0, 1, 1));
        b.write(2, "k", "c", Any, 0, 3, tag(0, 2, 1)); // ANY: a hint may be all it had
        b.write(3, "other", "d", Quorum, 0, 4, tag(0, 3, 1)); // no final read of "other"
        // An earlier final read is superseded by the last one.
        b.final_read(9, "k", 10, 11, &[], vc(&[]));
        let last = b.final_read(9, "k", 12, 13, &["a"], vc(&[(0, 1)]));
        let report = check(&b.build(), &VC3);
        assert_eq!(kinds(&report), [(AnomalyKind::LostWrite, lost, vec![last])]);
        assert_eq!(
            report.anomalies[0].explanation,
            "write b of k at QUORUM by client 1, acked at 0.002000s, is missing from the final \
             read at 0.013000s, which returned [a]"
        );
        let _ = kept;
    }

    #[test]
    fn lost_delete_is_a_lost_write() {
        let mut b = Builder::new();
        b.write(0, "k", "a", Quorum, 0, 1, tag(0, 0, 1));
        b.invoke_delete(0, "k", Quorum, 2);
        let delete = b.ok_write(0, 3, tag(2, 0, 2));
        // A ghost replica resurrected "a" and the tombstone is gone.
        let last = b.final_read(9, "k", 10, 11, &["a"], vc(&[(0, 1)]));
        let report = check(&b.build(), &VC3);
        assert_eq!(kinds(&report), [(AnomalyKind::LostWrite, delete, vec![last])]);
        assert!(report.anomalies[0].explanation.starts_with("delete of k at QUORUM"));
    }

    #[test]
    fn vector_clocks_dropping_a_concurrent_write_is_a_lost_write() {
        // Two concurrent blind writes must both survive as siblings; here one vanished.
        let mut b = Builder::new();
        b.invoke_write(0, "k", "a", Quorum, 0);
        b.invoke_write(1, "k", "b", Quorum, 1);
        let a = b.ok_write(0, 2, tag(0, 0, 1));
        b.ok_write(1, 3, tag(1, 1, 1));
        let last = b.final_read(9, "k", 10, 11, &["b"], vc(&[(1, 1)]));
        let report = check(&b.build(), &VC3);
        assert_eq!(kinds(&report), [(AnomalyKind::LostWrite, a, vec![last])]);

        // Kept as siblings: fine.
        let mut b = Builder::new();
        b.write(0, "k", "a", Quorum, 0, 2, tag(0, 0, 1));
        b.write(1, "k", "b", Quorum, 1, 3, tag(1, 1, 1));
        b.final_read(9, "k", 10, 11, &["a", "b"], vc(&[(0, 1), (1, 1)]));
        assert!(check(&b.build(), &VC3).anomalies.is_empty());
    }

    #[test]
    fn lww_concurrent_overwrite_is_a_lost_update() {
        let mut b = Builder::new();
        b.invoke_write(0, "k", "a", Quorum, 0);
        b.invoke_write(1, "k", "b", Quorum, 1);
        let a = b.ok_write(0, 2, tag(1_000, 0, 1));
        let winner = b.ok_write(1, 3, tag(1_500, 1, 1));
        b.final_read(9, "k", 10, 11, &["b"], lww(tag(1_500, 1, 1)));
        let history = b.build();
        let report = check(&history, &LWW3);
        assert_eq!(kinds(&report), [(AnomalyKind::LostUpdate, a, vec![winner])]);
        assert_eq!(
            report.anomalies[0].explanation,
            "write a of k by client 0, acked at 0.002000s, was never read: last-write-wins \
             dropped it for the concurrent write b by client 1 (timestamp 1500 > 1000)"
        );
        // The same history judged as vector clocks: LostUpdate is an LWW-only notion.
        assert!(check(&history, &VC3).anomalies.is_empty());
    }

    #[test]
    fn lww_rules_out_observed_and_sequential_overwrites() {
        let mut b = Builder::new();
        // Sequential overwrite of a value nobody read: an ordinary overwrite.
        b.write(0, "k", "a", Quorum, 0, 1, tag(0, 0, 1));
        b.write(1, "k", "b", Quorum, 2, 3, tag(2, 1, 1));
        // Concurrent overwrite of a value that was read: not silent.
        b.invoke_write(0, "k", "c", Quorum, 4);
        b.invoke_write(1, "k", "d", Quorum, 5);
        b.ok_write(0, 6, tag(4, 0, 2));
        b.read(2, "k", One, 7, 8, &["c"], lww(tag(4, 0, 2)));
        b.ok_write(1, 9, tag(5, 1, 2));
        // Concurrent overwrite of a value a read-modify-write had seen.
        b.invoke_write(0, "k", "e", Quorum, 10);
        b.invoke_rmw(1, "k", "f", Quorum, 11, lww(tag(10, 0, 3)));
        b.ok_write(0, 12, tag(10, 0, 3));
        b.ok_write(1, 13, tag(11, 1, 3));
        b.final_read(9, "k", 20, 21, &["f"], lww(tag(11, 1, 3)));
        assert!(check(&b.build(), &LWW3).anomalies.is_empty());
    }

    #[test]
    fn lww_shadowing_write_need_not_be_the_next_timestamp() {
        // a is shadowed by the concurrent c (ts 30) although its timestamp successor b (ts 20)
        // started only after a completed.
        let mut b = Builder::new();
        b.invoke_write(0, "k", "a", Quorum, 0);
        b.invoke_write(1, "k", "c", Quorum, 1);
        let a = b.ok_write(0, 2, tag(10, 0, 1));
        let c = b.ok_write(1, 3, tag(30, 1, 1));
        let skewed = b.write(0, "k", "b", Quorum, 4, 5, tag(20, 0, 2));
        b.final_read(9, "k", 10, 11, &["c"], lww(tag(30, 1, 1)));
        let report = check(&b.build(), &LWW3);
        // b, acked after c with an older timestamp, is lost too (skew).
        assert_eq!(
            kinds(&report),
            [(AnomalyKind::LostUpdate, a, vec![c]), (AnomalyKind::LostUpdate, skewed, vec![c])]
        );
    }

    #[test]
    fn lww_clock_skew_loses_a_later_write() {
        // b starts after a completed but its coordinator's clock is behind: a wins for ever.
        let mut b = Builder::new();
        let a = b.write(0, "k", "a", Quorum, 0, 1, tag(5_000, 0, 1));
        let lost = b.write(1, "k", "b", Quorum, 2, 3, tag(3_000, 1, 1));
        b.final_read(9, "k", 10, 11, &["a"], lww(tag(5_000, 0, 1)));
        let report = check(&b.build(), &LWW3);
        assert_eq!(kinds(&report), [(AnomalyKind::LostUpdate, lost, vec![a])]);
        assert!(report.anomalies[0].explanation.contains("timestamp skew"));
    }

    #[test]
    fn unavailable_and_timeouts_are_counted() {
        let mut b = Builder::new();
        b.invoke_write(0, "k", "a", Quorum, 0);
        let refused = b.fail(0, 1, OpError::Unavailable);
        b.invoke_read(1, "k", All, 0);
        let refused_read = b.fail(1, 2, OpError::Unavailable);
        b.invoke_write(0, "k", "b", Quorum, 3);
        let timed_out = b.info(0, 4, OpError::Timeout);
        b.invoke_read(1, "k", Quorum, 5);
        b.fail(1, 6, OpError::NodeDown);
        b.invoke_read(2, "k", Quorum, 7); // never completes
        let report = check(&b.build(), &VC3);
        assert_eq!(
            kinds(&report),
            [
                (AnomalyKind::Unavailable, refused, vec![]),
                (AnomalyKind::Unavailable, refused_read, vec![]),
                (AnomalyKind::Timeout, timed_out, vec![]),
            ]
        );
        assert_eq!(report.count(AnomalyKind::Unavailable), 2);
        assert_eq!(report.count(AnomalyKind::Timeout), 1);
        assert_eq!(report.count(AnomalyKind::StaleRead), 0);
        assert_eq!(report.correctness_anomalies(), 0);
        assert_eq!(report.writes, OpCounts { invoked: 2, ok: 0, fail: 1, info: 1, pending: 0 });
        assert_eq!(report.reads, OpCounts { invoked: 3, ok: 0, fail: 2, info: 0, pending: 1 });
        assert_eq!(
            report.anomalies[0].explanation,
            "write a of k at QUORUM by client 0 was refused at 0.001000s: too few live replicas"
        );
        assert_eq!(
            report.anomalies[2].explanation,
            "write b of k at QUORUM by client 0 timed out at 0.004000s (it may or may not have \
             taken effect)"
        );
    }

    #[test]
    fn report_serializes_with_kebab_case_kinds() {
        let mut b = Builder::new();
        b.write(0, "k", "a", Quorum, 0, 1, tag(0, 0, 1));
        b.read(1, "k", Quorum, 2, 3, &[], vc(&[]));
        let report = check(&b.build(), &VC3);
        let json = serde_json::to_string(&report).unwrap();
        assert!(json.contains(r#""kind":"stale-read""#), "{json}");
        assert!(json.contains(r#""counts":{"stale-read":1,"lost-write":0"#), "{json}");
        let back: CheckReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back, report);
    }

    /// A random workload against a perfect store: every read's context covers every write
    /// acknowledged so far (and the ones in flight), final reads cover everything.
    fn perfect_history(steps: &[(u32, u8, u8, u8)], mode: ConflictMode) -> History {
        let levels = [Any, One, Quorum, All];
        let mut b = Builder::new();
        let mut busy: BTreeMap<u32, bool> = BTreeMap::new();
        // Per key: versions minted so far, and the value of the latest.
        let mut minted: BTreeMap<String, (u64, Option<String>)> = BTreeMap::new();
        let context = |mode, key_state: Option<&(u64, Option<String>)>| {
            let counter = key_state.map_or(0, |s| s.0);
            match mode {
                ConflictMode::VectorClock => vc(&[(0, counter)]),
                ConflictMode::Lww => {
                    CausalContext::Lww((counter > 0).then(|| tag(counter, 0, counter)))
                }
            }
        };
        let mut t = 0;
        for (process, action, key, level) in steps {
            t += 1;
            let key = format!("k{}", key % 4);
            let cl = levels[usize::from(*level) % levels.len()];
            match busy.remove(process) {
                None => {
                    match action % 3 {
                        0 => b.invoke_read(*process, &key, cl, t),
                        1 => b.invoke_write(*process, &key, &format!("v{t}"), cl, t),
                        _ => b.invoke_delete(*process, &key, cl, t),
                    };
                    busy.insert(*process, action % 3 == 0);
                }
                Some(true) => {
                    let state = minted.get(&b_key(&b, *process));
                    let values: Vec<&str> =
                        state.and_then(|s| s.1.as_deref()).into_iter().collect();
                    let ctx = context(mode, state);
                    b.ok_read(*process, t, &values, ctx);
                }
                Some(false) => {
                    let key = b_key(&b, *process);
                    let value = b_value(&b, *process);
                    let entry = minted.entry(key).or_insert((0, None));
                    entry.0 += 1;
                    entry.1 = value;
                    let counter = entry.0;
                    b.ok_write(*process, t, tag(counter, 0, counter));
                }
            }
        }
        // Everyone finishes; then convergence reads of every key.
        for (process, is_read) in std::mem::take(&mut busy) {
            t += 1;
            if is_read {
                let state = minted.get(&b_key(&b, process));
                let values: Vec<&str> = state.and_then(|s| s.1.as_deref()).into_iter().collect();
                let ctx = context(mode, state);
                b.ok_read(process, t, &values, ctx);
            } else {
                b.fail(process, t, OpError::NodeDown);
            }
        }
        for key in (0..4).map(|k| format!("k{k}")) {
            t += 2;
            let state = minted.get(&key);
            let values: Vec<&str> = state.and_then(|s| s.1.as_deref()).into_iter().collect();
            let ctx = context(mode, state);
            b.final_read(100, &key, t - 1, t, &values, ctx);
        }
        b.build()
    }

    fn b_key(b: &Builder, process: u32) -> String {
        b.pending_op(process).key.clone()
    }

    fn b_value(b: &Builder, process: u32) -> Option<String> {
        b.pending_op(process).value.clone()
    }

    fn arb_steps() -> impl Strategy<Value = Vec<(u32, u8, u8, u8)>> {
        proptest::collection::vec((0u32..5, any::<u8>(), any::<u8>(), any::<u8>()), 0..300)
    }

    /// The definition of a stale read, applied naively: every read against every write.
    fn naive_stale_reads(history: &History, rf: usize) -> Vec<(u64, Vec<u64>)> {
        let paired = crate::checker::ops::pair(history);
        let ops = &paired.ops;
        let mut out = Vec::new();
        for read in ops {
            let Some(context) = read_context(read) else {
                continue;
            };
            if read.invoke.final_read {
                continue;
            }
            let mut missed: Vec<u64> = ops
                .iter()
                .filter(|w| w.invoke.key == read.invoke.key)
                .filter(|w| ConsistencyLevel::overlaps(read.invoke.cl, w.invoke.cl, rf))
                .filter(|w| w.completion_pos() < read.invoke_pos)
                .filter_map(|w| acked_version(w).map(|tag| (w, tag)))
                .filter(|(_, tag)| !covers(context, tag))
                .map(|(w, _)| w.report_index())
                .collect();
            missed.sort_unstable(); // history order, as `related` is
            if !missed.is_empty() {
                out.push((read.report_index(), missed));
            }
        }
        out.sort();
        out
    }

    /// Random concurrent histories with arbitrary versions and contexts.
    fn arb_messy_history() -> impl Strategy<Value = History> {
        let step = (
            0u32..4,
            any::<bool>(),
            0u8..2,
            0u8..4,
            proptest::collection::vec(0u64..5, 4),
            any::<u8>(),
        );
        let finals = proptest::collection::vec(proptest::collection::vec(0u64..5, 4), 2);
        let all = (proptest::collection::vec(step, 0..80), any::<bool>(), finals);
        all.prop_map(|(steps, lww_mode, finals)| {
            let levels = [One, Quorum, All, Any];
            let mut b = Builder::new();
            let mut busy: BTreeMap<u32, bool> = BTreeMap::new();
            for (t, (process, read, key, level, clock, extra)) in steps.into_iter().enumerate() {
                let t = t as u64;
                let key = format!("k{key}");
                let cl = levels[usize::from(level)];
                match busy.remove(&process) {
                    None => {
                        if read {
                            b.invoke_read(process, &key, cl, t);
                        } else if lww_mode && extra % 3 == 0 {
                            let seen = tag(clock[0], (clock[1] % 3) as u32, clock[2]);
                            b.invoke_rmw(process, &key, "v", cl, t, lww(seen));
                        } else {
                            b.invoke_write(process, &key, "v", cl, t);
                        }
                        busy.insert(process, read);
                    }
                    Some(true) => {
                        let context = if lww_mode {
                            CausalContext::Lww(
                                (extra % 4 != 0)
                                    .then(|| tag(clock[0], (clock[1] % 3) as u32, clock[2])),
                            )
                        } else {
                            let entries: Vec<(u32, u64)> =
                                clock.iter().enumerate().map(|(n, c)| (n as u32, *c)).collect();
                            vc(&entries)
                        };
                        b.ok_read(process, t, &[], context);
                    }
                    Some(false) => {
                        let node = u32::from(extra % 4);
                        b.ok_write(process, t, tag(clock[0], node, clock[1] + 1));
                    }
                }
            }
            for (k, clock) in finals.iter().enumerate() {
                let t = 1_000 + 2 * k as u64;
                let context = if lww_mode {
                    lww(tag(clock[0], (clock[1] % 3) as u32, clock[2]))
                } else {
                    let entries: Vec<(u32, u64)> =
                        clock.iter().enumerate().map(|(n, c)| (n as u32, *c)).collect();
                    vc(&entries)
                };
                b.final_read(100, &format!("k{k}"), t, t + 1, &[], context);
            }
            b.build()
        })
    }

    /// The definitions of lost writes and lost updates, applied naively.
    fn naive_lost(
        history: &History,
        rf: usize,
        mode: ConflictMode,
    ) -> Vec<(AnomalyKind, u64, Vec<u64>)> {
        let paired = crate::checker::ops::pair(history);
        let ops = &paired.ops;
        let mut out = Vec::new();
        for w in ops {
            let Some(tag) = acked_version(w) else {
                continue;
            };
            let same_key = |o: &&Operation<'_>| o.invoke.key == w.invoke.key;
            let Some(last) = ops
                .iter()
                .filter(same_key)
                .filter(|o| o.invoke.final_read && read_context(o).is_some())
                .max_by_key(|o| o.completion_pos())
            else {
                continue;
            };
            if w.completion_pos() >= last.invoke_pos {
                continue;
            }
            let final_context = last.done().unwrap().context.as_ref();
            if !covers(final_context, &tag) {
                if ConsistencyLevel::overlaps(ConsistencyLevel::All, w.invoke.cl, rf) {
                    out.push((AnomalyKind::LostWrite, w.report_index(), vec![last.report_index()]));
                }
                continue;
            }
            let Some(CausalContext::Lww(Some(winner))) = final_context else {
                continue;
            };
            if mode != ConflictMode::Lww || tag == *winner {
                continue;
            }
            let observed = ops.iter().filter(same_key).any(|o| {
                let read = read_context(o).flatten();
                let written = o.invoke.write_context.as_ref();
                [read, written].into_iter().flatten().any(|c| *c == CausalContext::Lww(Some(tag)))
            });
            if observed {
                continue;
            }
            let shadow = ops
                .iter()
                .filter(same_key)
                .filter(|s| acked_version(s).is_some_and(|t| t > tag))
                .min_by_key(|s| s.invoke_pos);
            if let Some(s) = shadow.filter(|s| s.invoke_pos < w.completion_pos()) {
                out.push((AnomalyKind::LostUpdate, w.report_index(), vec![s.report_index()]));
            }
        }
        out.sort();
        out
    }

    proptest! {
        #[test]
        fn a_perfect_store_shows_no_anomaly(steps in arb_steps()) {
            let history = perfect_history(&steps, ConflictMode::VectorClock);
            let report = check(&history, &VC3);
            prop_assert!(report.anomalies.is_empty(), "{:?}", report.anomalies);
            prop_assert!(report.problems.is_empty(), "{:?}", report.problems);
            let report = check(&history, &CheckConfig { rf: 5, mode: ConflictMode::VectorClock });
            prop_assert!(report.anomalies.is_empty(), "{:?}", report.anomalies);
        }

        #[test]
        fn stale_reads_match_the_naive_definition(history in arb_messy_history()) {
            for rf in [1, 3, 5] {
                let report = check(&history, &CheckConfig { rf, mode: ConflictMode::VectorClock });
                let found: Vec<(u64, Vec<u64>)> = report
                    .of_kind(AnomalyKind::StaleRead)
                    .map(|a| (a.op_index, a.related.clone()))
                    .collect();
                prop_assert_eq!(found, naive_stale_reads(&history, rf));
            }
        }

        #[test]
        fn lost_writes_and_updates_match_the_naive_definitions(history in arb_messy_history()) {
            for mode in [ConflictMode::VectorClock, ConflictMode::Lww] {
                for rf in [1, 3] {
                    let report = check(&history, &CheckConfig { rf, mode });
                    let lost = |a: &&Anomaly| {
                        matches!(a.kind, AnomalyKind::LostWrite | AnomalyKind::LostUpdate)
                    };
                    let mut found: Vec<(AnomalyKind, u64, Vec<u64>)> = report
                        .anomalies
                        .iter()
                        .filter(lost)
                        .map(|a| (a.kind, a.op_index, a.related.clone()))
                        .collect();
                    found.sort();
                    prop_assert_eq!(found, naive_lost(&history, rf, mode));
                }
            }
        }

        #[test]
        fn a_perfect_lww_store_shows_no_stale_read_or_lost_write(steps in arb_steps()) {
            let history = perfect_history(&steps, ConflictMode::Lww);
            let report = check(&history, &LWW3);
            prop_assert_eq!(report.count(AnomalyKind::StaleRead), 0, "{:?}", report.anomalies);
            prop_assert_eq!(report.count(AnomalyKind::LostWrite), 0, "{:?}", report.anomalies);
        }
    }

    /// 100k ops: a perfect store plus one stale read at the very end. (Timing is not asserted —
    /// the engine reads no clock — but this runs in about 40 ms in release.)
    #[test]
    fn large_histories_are_checked() {
        let history = large_history(5_000, 5);
        let report = check(&history, &VC3);
        assert!(history.ops.len() >= 100_000);
        assert_eq!(report.count(AnomalyKind::StaleRead), 1);
        assert_eq!(report.anomalies.len(), 1);
        assert_eq!(report.reads.ok + report.writes.ok, history.ops.len() / 2);
    }

    /// `rounds` rounds of `processes` concurrent writes followed by as many reads, over 100 keys.
    pub(crate) fn large_history(rounds: u64, processes: u32) -> History {
        let mut b = Builder::new();
        let mut counters: BTreeMap<String, u64> = BTreeMap::new();
        let mut t = 0;
        for round in 0..rounds {
            let keys: Vec<String> = (0..processes)
                .map(|p| format!("k{}", (round * 7 + u64::from(p) * 13) % 100))
                .collect();
            for (p, key) in (0..processes).zip(&keys) {
                t += 1;
                b.invoke_write(p, key, &format!("v{t}"), Quorum, t);
            }
            for (p, key) in (0..processes).zip(&keys) {
                t += 1;
                let c = counters.entry(key.clone()).or_insert(0);
                *c += 1;
                b.ok_write(p, t, tag(t, 0, *c));
            }
            for (p, key) in (0..processes).zip(&keys) {
                t += 1;
                b.invoke_read(p, key, Quorum, t);
            }
            for (p, key) in (0..processes).zip(&keys) {
                t += 1;
                let c = counters[key];
                let stale = round == rounds - 1 && p == 0;
                b.ok_read(p, t, &["x"], vc(&[(0, if stale { c - 1 } else { c })]));
            }
        }
        b.build()
    }
}
