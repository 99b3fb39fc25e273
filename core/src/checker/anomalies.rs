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

/// Acknowledged writes of one key at one consistency level, indexed so that a read can list the
/// writes its context does *not* cover without visiting those it does.
#[derive(Default)]
struct AckedWrites {
    /// Vector-clock view: per actor, `(dot counter, op id)`. A clock covers a dot exactly when
    /// its entry for the actor is at least the counter, so the uncovered writes of an actor are
    /// a range.
    by_actor: BTreeMap<NodeId, BTreeSet<(u64, usize)>>,
    /// LWW view: `(tag, op id)`. An LWW context covers exactly the tags up to its winner.
    by_tag: BTreeSet<(VersionTag, usize)>,
}

impl AckedWrites {
    fn insert(&mut self, tag: VersionTag, op_id: usize) {
        self.by_actor.entry(tag.dot.node).or_default().insert((tag.dot.counter, op_id));
        self.by_tag.insert((tag, op_id));
    }

    /// Pushes the op ids of every indexed write that `context` does not cover.
    fn uncovered(&self, context: Option<&CausalContext>, out: &mut Vec<usize>) {
        match context {
            Some(CausalContext::Vector(clock)) => {
                for (actor, writes) in &self.by_actor {
                    let Some(first_missed) = clock.get(*actor).checked_add(1) else { continue };
                    out.extend(writes.range((first_missed, 0)..).map(|(_, id)| *id));
                }
            }
            Some(CausalContext::Lww(Some(winner))) => {
                let after = (Bound::Excluded((*winner, usize::MAX)), Bound::Unbounded);
                out.extend(self.by_tag.range(after).map(|(_, id)| *id));
            }
            Some(CausalContext::Lww(None)) | None => {
                out.extend(self.by_tag.iter().map(|(_, id)| *id));
            }
        }
    }
}

/// Stale reads: a single sweep in history order. A write enters the index of its key when its
/// `ok` is recorded; a read is judged when its `ok` is recorded, against the indexed writes it
/// does not cover, keeping those acknowledged before the read was invoked.
fn stale_reads(
    ops: &[Operation<'_>],
    keys: &KeyTable,
    config: &CheckConfig,
    out: &mut Vec<Anomaly>,
) {
    let mut events: Vec<(usize, usize)> = ops
        .iter()
        .enumerate()
        .filter(|(_, op)| {
            acked_version(op).is_some() || (read_context(op).is_some() && !op.invoke.final_read)
        })
        .map(|(id, op)| (op.completion_pos(), id))
        .collect();
    events.sort_unstable();

    let mut index: Vec<BTreeMap<ConsistencyLevel, AckedWrites>> =
        (0..keys.len).map(|_| BTreeMap::new()).collect();
    let mut candidates = Vec::new();
    for (_, id) in events {
        let op = &ops[id];
        let key = keys.of_op[id];
        if let Some(tag) = acked_version(op) {
            index[key].entry(op.invoke.cl).or_default().insert(tag, id);
            continue;
        }
        let Some(context) = read_context(op) else { continue };
        candidates.clear();
        for (write_cl, writes) in &index[key] {
            if ConsistencyLevel::overlaps(op.invoke.cl, *write_cl, config.rf) {
                writes.uncovered(context, &mut candidates);
            }
        }
        // Writes acknowledged while the read was in flight are concurrent with it: not required.
        candidates.retain(|w| ops[*w].completion_pos() < op.invoke_pos);
        if candidates.is_empty() {
            continue;
        }
        candidates.sort_unstable_by_key(|w| ops[*w].completion_pos());
        debug_assert!(
            candidates.iter().all(|w| !covers(context, &acked_version(&ops[*w]).expect("acked"))),
            "the write index disagrees with CausalContext::covers"
        );
        out.push(stale_read_anomaly(op, candidates.iter().map(|w| &ops[*w])));
    }
}

fn stale_read_anomaly<'a, 'h: 'a>(
    read: &Operation<'h>,
    missed: impl ExactSizeIterator<Item = &'a Operation<'h>>,
) -> Anomaly {
    let done = read.done().expect("ok read has a completion");
    let total = missed.len();
    let mut related = Vec::with_capacity(total);
    let mut named = Vec::new();
    for write in missed {
        related.push(write.report_index());
        if named.len() < MAX_NAMED_WRITES {
            let acked = write.done().expect("acked write has a completion").time;
            named.push(format!("{} ({}, acked at {acked})", write.describe(), write.invoke.cl));
        }
    }
    let mut missed_text = if total == 1 {
        named.remove(0)
    } else {
        format!("{total} writes: {}", named.join(", "))
    };
    if total > MAX_NAMED_WRITES {
        missed_text.push_str(&format!(" and {} more", total - MAX_NAMED_WRITES));
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
        let Some(tag) = acked_version(write) else { continue };
        let Some(final_id) = finals[keys.of_op[id]] else { continue };
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
        let Some(final_id) = finals[key] else { continue };
        let last = &ops[final_id];
        let Some(CausalContext::Lww(Some(winner))) = last.done().and_then(|d| d.context.as_ref())
        else {
            continue;
        };
        writes.sort_unstable();
        for pair in writes.windows(2) {
            let ((tag, id), (next_tag, next_id)) = (pair[0], pair[1]);
            let (lost, successor) = (&ops[id], &ops[next_id]);
            if tag >= *winner
                || next_tag == tag
                || observed[key].contains(&tag)
                || lost.completion_pos() >= last.invoke_pos
                || successor.invoke_pos >= lost.completion_pos()
            {
                continue;
            }
            out.push(lost_update_anomaly(lost, tag, successor, next_tag));
        }
    }
}

fn lost_update_anomaly(
    lost: &Operation<'_>,
    tag: VersionTag,
    successor: &Operation<'_>,
    next_tag: VersionTag,
) -> Anomaly {
    let done = lost.done().expect("acked write has a completion");
    let how = if successor.completion_pos() > lost.invoke_pos {
        "concurrent"
    } else {
        "earlier (completed before it was invoked, timestamp skew)"
    };
    Anomaly {
        kind: AnomalyKind::LostUpdate,
        key: lost.invoke.key.clone(),
        op_index: done.index,
        time: done.time,
        related: vec![successor.report_index()],
        explanation: format!(
            "{} of {} by client {}, acked at {}, was never read: last-write-wins dropped it for \
             the {how} {} by client {} (timestamp {} > {})",
            lost.describe(),
            lost.invoke.key,
            lost.invoke.process,
            done.time,
            successor.describe(),
            successor.invoke.process,
            next_tag.timestamp,
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
    fn perfect_history(
        steps: &[(u32, u8, u8, u8)],
        mode: ConflictMode,
    ) -> History {
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
                    let values: Vec<&str> = state.and_then(|s| s.1.as_deref()).into_iter().collect();
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
        fn a_perfect_lww_store_shows_no_stale_read_or_lost_write(steps in arb_steps()) {
            let history = perfect_history(&steps, ConflictMode::Lww);
            let report = check(&history, &LWW3);
            prop_assert_eq!(report.count(AnomalyKind::StaleRead), 0, "{:?}", report.anomalies);
            prop_assert_eq!(report.count(AnomalyKind::LostWrite), 0, "{:?}", report.anomalies);
        }
    }

    /// 100k+ ops: a perfect store plus one stale read at the very end.
    #[test]
    fn large_histories_are_checked_quickly() {
        let history = large_history(25_000, 5);
        let start = std::time::Instant::now();
        let report = check(&history, &VC3);
        let elapsed = start.elapsed();
        assert!(history.ops.len() > 100_000);
        assert_eq!(report.count(AnomalyKind::StaleRead), 1);
        assert_eq!(report.reads.ok + report.writes.ok, history.ops.len() / 2);
        eprintln!("checked {} ops in {elapsed:?}", history.ops.len());
    }

    /// `rounds` rounds of `processes` concurrent writes followed by as many reads, over 100 keys.
    pub(crate) fn large_history(rounds: u64, processes: u32) -> History {
        let mut b = Builder::new();
        let mut counters: BTreeMap<String, u64> = BTreeMap::new();
        let mut t = 0;
        for round in 0..rounds {
            let keys: Vec<String> =
                (0..processes).map(|p| format!("k{}", (round * 7 + u64::from(p) * 13) % 100)).collect();
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
