//! Linearizability as a negative control (docs/semantics.md §2, invariant 5).
//!
//! Ringside does not promise linearizability; under partitions a correct cluster *must* show
//! violations, and this check proves the checker is not blind to them. Each key is an independent
//! read/write register (linearizability is compositional, so keys are checked one by one):
//!
//! - a write stores its value and a delete stores "absent"; the register starts absent;
//! - an `ok` read returning no value reads "absent", one value reads that value, and more than one
//!   (siblings) is a violation by itself: a register holds one value;
//! - `ok` writes must take effect between their invoke and their completion; `info` writes (and
//!   invokes never completed) may take effect at any time after their invoke, or never;
//! - `fail` ops, and reads that did not complete `ok`, are ignored (they had no visible effect).
//!
//! The search is Wing & Gong's, with Lowe's memoisation ("Testing for linearizability", 2017):
//! events sit in a linked list in history order; the search repeatedly linearizes the first
//! pending call the register accepts, lifting it out of the list, and backtracks when it reaches
//! the completion of an operation it has not linearized. A configuration (set of linearized
//! operations, register value) already explored is never explored again. Indeterminate writes get
//! their completion at the end of the history; once every `ok` operation is linearized the rest can
//! be placed at the end, so the search stops there.
//!
//! Indeterminate writes are what makes the search explode (each may or may not be linearized at
//! every point), so two exact reductions come first:
//!
//! - an indeterminate write whose value no `ok` read of the key returned is dropped: wherever it
//!   is placed, the next state-dependent operation is another write, so omitting it never loses a
//!   linearization;
//! - an indeterminate write that is the only write of a value some `ok` read returned certainly
//!   happened, before the first such read completed: it becomes required, with that completion as
//!   its deadline (workloads write unique values, so this covers most of them).
//!
//! The search is also capped at a budget of explored configurations per key, beyond which the key
//! is reported `Unknown` instead of hanging.

use super::ops::{self, Operation, Outcome};
use crate::history::History;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Explored configurations per key before [`check_linearizable`] gives up on that key, for keys
/// with few operations (see [`STATES_PER_OPERATION`] for the others).
pub const DEFAULT_STATE_BUDGET: usize = 1_000_000;

/// [`check_linearizable`] allows a key at least this many configurations per operation. A
/// linearizable history with ten concurrent clients needs about 16 (measured), and each costs
/// under 100 bytes, so a 50 000-operation key is given 1.6 M configurations, about 150 MB at most.
pub const STATES_PER_OPERATION: usize = 32;

/// The verdict for one key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum LinearizabilityResult {
    /// Some order of the operations, consistent with real time, explains every read.
    Linearizable,
    /// No such order exists.
    Violation {
        /// Index of the completion op of the operation that could not be linearized: the one at
        /// which the longest partial linearization got stuck. When that is an indeterminate
        /// write some read proved happened, the index is that read's; for siblings, it is the
        /// first read that returned several values.
        op_index: u64,
    },
    /// The search exceeded its budget before reaching a verdict.
    Unknown,
}

/// The result for one key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyLinearizability {
    /// The key.
    pub key: String,
    /// The verdict.
    pub result: LinearizabilityResult,
    /// Operations of the key the search took into account (failed and unobservable ones dropped;
    /// 0 when a read returning siblings decided the verdict).
    pub operations: usize,
    /// Configurations explored by the search.
    pub states: usize,
    /// For a violation, one sentence naming the operation that could not be linearized.
    pub explanation: Option<String>,
}

/// The result for a whole history.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinearizabilityReport {
    /// One entry per key, ordered by key.
    pub keys: Vec<KeyLinearizability>,
    /// Keys found linearizable.
    pub linearizable: usize,
    /// Keys with a violation.
    pub violations: usize,
    /// Keys whose search exceeded the budget.
    pub unknown: usize,
}

impl LinearizabilityReport {
    /// Whether every key was proven linearizable.
    pub fn is_linearizable(&self) -> bool {
        self.violations == 0 && self.unknown == 0
    }

    /// The keys with a violation.
    pub fn violating_keys(&self) -> impl Iterator<Item = &KeyLinearizability> + '_ {
        self.keys.iter().filter(|k| matches!(k.result, LinearizabilityResult::Violation { .. }))
    }
}

/// Checks each key of `history` as a linearizable register. A key with `n` operations may explore
/// `max(DEFAULT_STATE_BUDGET, STATES_PER_OPERATION × n)` configurations before it is reported
/// [`LinearizabilityResult::Unknown`].
pub fn check_linearizable(history: &History) -> LinearizabilityReport {
    check_with(history, |operations| {
        DEFAULT_STATE_BUDGET.max(STATES_PER_OPERATION.saturating_mul(operations))
    })
}

/// Like [`check_linearizable`], exploring at most `max_states` configurations per key whatever
/// its size.
pub fn check_linearizable_with_budget(
    history: &History,
    max_states: usize,
) -> LinearizabilityReport {
    check_with(history, |_| max_states)
}

fn check_with(history: &History, budget: impl Fn(usize) -> usize) -> LinearizabilityReport {
    let paired = ops::pair(history);
    let mut by_key: BTreeMap<&str, Vec<Operation<'_>>> = BTreeMap::new();
    for op in paired.ops {
        by_key.entry(op.invoke.key.as_str()).or_default().push(op);
    }
    let mut report = LinearizabilityReport::default();
    for (key, ops) in by_key {
        let result = check_key(key, &ops, &budget);
        match result.result {
            LinearizabilityResult::Linearizable => report.linearizable += 1,
            LinearizabilityResult::Violation { .. } => report.violations += 1,
            LinearizabilityResult::Unknown => report.unknown += 1,
        }
        report.keys.push(result);
    }
    report
}

/// Register value: 0 is "absent", `n > 0` the n-th distinct value of the key.
type Value = u32;
const ABSENT: Value = 0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Read(Value),
    Write(Value),
}

/// One operation as the search sees it.
#[derive(Clone, Copy, Debug)]
struct RegisterOp<'a, 'h> {
    source: &'a Operation<'h>,
    action: Action,
    /// Whether it must be linearized (`ok`), or may be omitted (indeterminate write).
    required: bool,
    /// History position before which it must be linearized (`usize::MAX` when optional).
    deadline: usize,
    /// The `ok` operation to name if the search gets stuck on this one: itself, or for an
    /// indeterminate write that a read proves happened, that read.
    blame: &'a Operation<'h>,
}

fn check_key(
    key: &str,
    ops: &[Operation<'_>],
    budget: &impl Fn(usize) -> usize,
) -> KeyLinearizability {
    let verdict = |result, operations, states, explanation| KeyLinearizability {
        key: key.to_string(),
        result,
        operations,
        states,
        explanation,
    };

    // A read returning siblings cannot be a register read, whatever else happened.
    let siblings = ops
        .iter()
        .filter(|op| op.is_read() && op.outcome() == Outcome::Ok)
        .filter(|op| op.done().is_some_and(|d| d.values.len() > 1))
        .min_by_key(|op| op.completion_pos());
    if let Some(read) = siblings {
        let done = read.done().expect("ok read has a completion");
        let explanation = format!(
            "read of {key} by client {} at {} returned {} siblings [{}]: a register holds one \
             value",
            read.invoke.process,
            done.time,
            done.values.len(),
            done.values.join(", "),
        );
        return verdict(
            LinearizabilityResult::Violation { op_index: done.index },
            0,
            0,
            Some(explanation),
        );
    }

    let register = register_ops(ops, true);
    if register.iter().all(|op| !op.required) {
        return verdict(LinearizabilityResult::Linearizable, register.len(), 0, None);
    }
    let mut search = Search::new(&register);
    let outcome = search.run(budget(register.len()));
    let states = search.states;
    match outcome {
        SearchOutcome::Linearizable => {
            verdict(LinearizabilityResult::Linearizable, register.len(), states, None)
        }
        SearchOutcome::OverBudget => {
            verdict(LinearizabilityResult::Unknown, register.len(), states, None)
        }
        SearchOutcome::Violation(stuck) => {
            let op = register[stuck].blame;
            let explanation = explain_stuck(key, op);
            verdict(
                LinearizabilityResult::Violation { op_index: op.report_index() },
                register.len(),
                states,
                Some(explanation),
            )
        }
    }
}

fn explain_stuck(key: &str, op: &Operation<'_>) -> String {
    let done = op.done().expect("only ok operations can block the search");
    let what = if op.is_read() {
        format!("read of {key} returning [{}]", done.values.join(", "))
    } else {
        format!("{} of {key}", op.describe())
    };
    format!(
        "{what} by client {} (invoked at {}, ok at {}) fits no order of the operations before \
         its completion that respects real time",
        op.invoke.process, op.invoke.time, done.time,
    )
}

/// Translates the key's operations into register actions, interning values. With `reduce`,
/// applies the two reductions of the module documentation to indeterminate writes:
///
/// - one whose value no `ok` read returned is dropped;
/// - one that is the only write of a value some `ok` read returned certainly happened, before the
///   first such read completed: it becomes required, with that completion as its deadline.
fn register_ops<'a, 'h>(ops: &'a [Operation<'h>], reduce: bool) -> Vec<RegisterOp<'a, 'h>> {
    let mut values: BTreeMap<&str, Value> = BTreeMap::new();
    let mut intern = |v: Option<&'h str>| match v {
        None => ABSENT,
        Some(v) => {
            let next = values.len() as Value + 1;
            *values.entry(v).or_insert(next)
        }
    };
    let mut out = Vec::new();
    // Per value: the first read returning it to complete, and how many writes wrote it.
    let mut first_read: BTreeMap<Value, &'a Operation<'h>> = BTreeMap::new();
    let mut writers: BTreeMap<Value, usize> = BTreeMap::new();
    for op in ops {
        match (op.is_read(), op.outcome()) {
            (true, Outcome::Ok) => {
                let done = op.done().expect("ok read has a completion");
                let value = intern(done.values.first().map(String::as_str));
                let first = first_read.entry(value).or_insert(op);
                if op.completion_pos() < first.completion_pos() {
                    *first = op;
                }
                out.push(RegisterOp {
                    source: op,
                    action: Action::Read(value),
                    required: true,
                    deadline: op.completion_pos(),
                    blame: op,
                });
            }
            (false, Outcome::Ok | Outcome::Info | Outcome::Pending) => {
                let value = intern(op.written_value());
                *writers.entry(value).or_insert(0) += 1;
                let required = op.outcome() == Outcome::Ok;
                out.push(RegisterOp {
                    source: op,
                    action: Action::Write(value),
                    required,
                    deadline: if required { op.completion_pos() } else { usize::MAX },
                    blame: op,
                });
            }
            (true, _) | (false, Outcome::Fail) => {}
        }
    }
    if !reduce {
        return out;
    }
    out.retain_mut(|op| {
        let Action::Write(value) = op.action else {
            return true;
        };
        if op.required {
            return true;
        }
        let Some(read) = first_read.get(&value) else {
            return false;
        };
        if value != ABSENT && writers[&value] == 1 {
            op.required = true;
            op.deadline = read.completion_pos();
            op.blame = read;
        }
        true
    });
    out
}

const NIL: usize = usize::MAX;

/// One entry of the event list: the call or the return of an operation.
#[derive(Clone, Copy, Debug)]
struct Entry {
    op: usize,
    is_call: bool,
    prev: usize,
    next: usize,
}

enum SearchOutcome {
    Linearizable,
    /// Index (into the register ops) of the operation the deepest attempt got stuck on.
    Violation(usize),
    OverBudget,
}

/// A configuration already explored: register value and canonical form of the linearized set.
type CacheKey = (Value, u32, Vec<u64>);

struct Search<'r, 'a, 'h> {
    ops: &'r [RegisterOp<'a, 'h>],
    /// Entry 0 is the list head (a sentinel); then calls and returns in history order.
    entries: Vec<Entry>,
    call_entry: Vec<usize>,
    return_entry: Vec<usize>,
    /// Position of each operation's return in history order (`usize::MAX` for indeterminate).
    return_pos: Vec<usize>,
    linearized: Vec<u64>,
    /// Every word below this index is all ones (used to canonicalise `linearized`).
    full_words: usize,
    states: usize,
}

impl<'r, 'a, 'h> Search<'r, 'a, 'h> {
    fn new(ops: &'r [RegisterOp<'a, 'h>]) -> Self {
        let return_pos: Vec<usize> = ops.iter().map(|op| op.deadline).collect();
        // (position, op, is_call); indeterminate returns all land at the end, ordered by op.
        let mut events: Vec<(usize, usize, bool)> = Vec::with_capacity(ops.len() * 2);
        for (id, op) in ops.iter().enumerate() {
            events.push((op.source.invoke_pos, id, true));
            events.push((return_pos[id], id, false));
        }
        events.sort_unstable_by_key(|(pos, id, is_call)| (*pos, *id, !*is_call));

        let mut entries = Vec::with_capacity(events.len() + 1);
        entries.push(Entry { op: NIL, is_call: false, prev: NIL, next: NIL });
        let mut call_entry = vec![NIL; ops.len()];
        let mut return_entry = vec![NIL; ops.len()];
        for (_, id, is_call) in events {
            let this = entries.len();
            entries[this - 1].next = this;
            entries.push(Entry { op: id, is_call, prev: this - 1, next: NIL });
            if is_call {
                call_entry[id] = this;
            } else {
                return_entry[id] = this;
            }
        }
        Search {
            ops,
            entries,
            call_entry,
            return_entry,
            return_pos,
            linearized: vec![0; ops.len().div_ceil(64)],
            full_words: 0,
            states: 0,
        }
    }

    fn unlink(&mut self, e: usize) {
        let Entry { prev, next, .. } = self.entries[e];
        self.entries[prev].next = next;
        if next != NIL {
            self.entries[next].prev = prev;
        }
    }

    fn relink(&mut self, e: usize) {
        let Entry { prev, next, .. } = self.entries[e];
        self.entries[prev].next = e;
        if next != NIL {
            self.entries[next].prev = e;
        }
    }

    /// Takes an operation's call and return out of the list.
    fn lift(&mut self, op: usize) {
        self.unlink(self.call_entry[op]);
        self.unlink(self.return_entry[op]);
    }

    /// Undoes `lift` (in reverse order, so the entries' own links are still right).
    fn unlift(&mut self, op: usize) {
        self.relink(self.return_entry[op]);
        self.relink(self.call_entry[op]);
    }

    fn set(&mut self, op: usize) {
        self.linearized[op / 64] |= 1 << (op % 64);
        while self.linearized.get(self.full_words) == Some(&u64::MAX) {
            self.full_words += 1;
        }
    }

    fn clear(&mut self, op: usize) {
        self.linearized[op / 64] &= !(1 << (op % 64));
        self.full_words = self.full_words.min(op / 64);
    }

    /// The linearized set as (first word not full, the words from there to the one holding the
    /// highest linearized op): equal sets give equal keys, and keys stay short because the search
    /// linearizes roughly in history order.
    fn cache_key(&self, value: Value, highest: usize) -> CacheKey {
        let end = highest / 64 + 1;
        let words = if self.full_words < end {
            self.linearized[self.full_words..end].to_vec()
        } else {
            Vec::new()
        };
        (value, self.full_words as u32, words)
    }

    fn step(value: Value, action: Action) -> Option<Value> {
        match action {
            Action::Write(v) => Some(v),
            Action::Read(v) => (v == value).then_some(value),
        }
    }

    fn run(&mut self, max_states: usize) -> SearchOutcome {
        let mut cache: BTreeSet<CacheKey> = BTreeSet::new();
        // Linearized operations, in order: (op, register value before it, highest op so far).
        let mut stack: Vec<(usize, Value, usize)> = Vec::new();
        let mut value = ABSENT;
        let mut required_left = self.ops.iter().filter(|op| op.required).count();
        // The stuck operation whose completion comes latest in the history.
        let mut deepest: Option<(usize, usize)> = None;
        let mut entry = self.entries[0].next;
        loop {
            if required_left == 0 {
                // What is left is indeterminate and can all be placed at the end.
                return SearchOutcome::Linearizable;
            }
            debug_assert!(entry != NIL, "an ok operation's return is still in the list");
            if entry == NIL {
                return SearchOutcome::Linearizable;
            }
            let Entry { op, is_call, next, .. } = self.entries[entry];
            if is_call {
                if let Some(new_value) = Self::step(value, self.ops[op].action) {
                    let highest = stack.last().map_or(op, |&(_, _, h)| h.max(op));
                    self.set(op);
                    if cache.insert(self.cache_key(new_value, highest)) {
                        self.states += 1;
                        if self.states > max_states {
                            return SearchOutcome::OverBudget;
                        }
                        stack.push((op, value, highest));
                        value = new_value;
                        if self.ops[op].required {
                            required_left -= 1;
                        }
                        self.lift(op);
                        entry = self.entries[0].next;
                        continue;
                    }
                    self.clear(op);
                }
                entry = next;
            } else {
                // The completion of an operation not yet linearized: this path is a dead end.
                if deepest.is_none_or(|(pos, _)| self.return_pos[op] > pos) {
                    deepest = Some((self.return_pos[op], op));
                }
                let Some((undone, before, _)) = stack.pop() else {
                    let (_, stuck) = deepest.expect("set just above");
                    return SearchOutcome::Violation(stuck);
                };
                self.clear(undone);
                value = before;
                if self.ops[undone].required {
                    required_left += 1;
                }
                self.unlift(undone);
                entry = self.entries[self.call_entry[undone]].next;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::testkit::{Builder, tag, vc};
    use crate::consistency::ConsistencyLevel::Quorum;
    use crate::history::OpError;
    use proptest::prelude::*;

    fn only(report: &LinearizabilityReport) -> &LinearizabilityResult {
        assert_eq!(report.keys.len(), 1, "{report:?}");
        &report.keys[0].result
    }

    #[test]
    fn sequential_history_is_linearizable() {
        let mut b = Builder::new();
        b.write(0, "k", "a", Quorum, 0, 1, tag(1, 0, 1));
        b.read(1, "k", Quorum, 2, 3, &["a"], vc(&[(0, 1)]));
        b.write(0, "k", "b", Quorum, 4, 5, tag(5, 0, 2));
        b.read(1, "k", Quorum, 6, 7, &["b"], vc(&[(0, 2)]));
        b.invoke_delete(0, "k", Quorum, 8);
        b.ok_write(0, 9, tag(9, 0, 3));
        b.read(1, "k", Quorum, 10, 11, &[], vc(&[(0, 3)]));
        let report = check_linearizable(&b.build());
        assert_eq!(only(&report), &LinearizabilityResult::Linearizable);
        assert!(report.is_linearizable());
        assert_eq!(report.keys[0].operations, 6);
    }

    #[test]
    fn overlapping_operations_may_be_reordered() {
        // Two reads overlap a write: one sees the old value, the other the new one. Fine, as long
        // as the one seeing the old value is not entirely after the one seeing the new value.
        let mut b = Builder::new();
        b.write(0, "k", "a", Quorum, 0, 1, tag(1, 0, 1));
        b.invoke_write(0, "k", "b", Quorum, 2);
        b.invoke_read(1, "k", Quorum, 3);
        b.invoke_read(2, "k", Quorum, 4);
        b.ok_read(2, 5, &["b"], vc(&[(0, 2)]));
        b.ok_read(1, 6, &["a"], vc(&[(0, 1)]));
        b.ok_write(0, 7, tag(7, 0, 2));
        let report = check_linearizable(&b.build());
        assert_eq!(only(&report), &LinearizabilityResult::Linearizable);
    }

    #[test]
    fn old_value_after_completed_write_is_a_violation() {
        let mut b = Builder::new();
        b.write(0, "k", "a", Quorum, 0, 1, tag(1, 0, 1));
        b.write(0, "k", "b", Quorum, 2, 3, tag(3, 0, 2));
        let stale = b.read(1, "k", Quorum, 4, 5, &["a"], vc(&[(0, 1)]));
        let report = check_linearizable(&b.build());
        assert_eq!(only(&report), &LinearizabilityResult::Violation { op_index: stale });
        assert_eq!(report.violations, 1);
        let text = report.keys[0].explanation.as_deref().unwrap();
        assert!(text.starts_with("read of k returning [a] by client 1"), "{text}");
    }

    #[test]
    fn new_then_old_reads_are_a_violation() {
        // The write overlaps both reads, but the first read saw the new value and completed before
        // the second one, which saw the old value, began.
        let mut b = Builder::new();
        b.write(0, "k", "a", Quorum, 0, 1, tag(1, 0, 1));
        b.invoke_write(0, "k", "b", Quorum, 2);
        b.read(1, "k", Quorum, 3, 4, &["b"], vc(&[(0, 2)]));
        let old = b.read(2, "k", Quorum, 5, 6, &["a"], vc(&[(0, 1)]));
        b.ok_write(0, 7, tag(7, 0, 2));
        let report = check_linearizable(&b.build());
        assert_eq!(only(&report), &LinearizabilityResult::Violation { op_index: old });
    }

    #[test]
    fn info_write_may_take_effect_late_or_never() {
        let mut b = Builder::new();
        b.write(0, "k", "a", Quorum, 0, 1, tag(1, 0, 1));
        b.invoke_write(0, "k", "b", Quorum, 2);
        b.info(0, 3, OpError::Timeout);
        b.read(1, "k", Quorum, 4, 5, &["a"], vc(&[(0, 1)]));
        // Seen long after the timeout: the write took effect late.
        b.read(1, "k", Quorum, 6, 7, &["b"], vc(&[(0, 2)]));
        let late = b.build();
        assert_eq!(only(&check_linearizable(&late)), &LinearizabilityResult::Linearizable);

        // Never seen at all: it did not take effect (and is dropped before the search).
        let mut b = Builder::new();
        b.write(0, "k", "a", Quorum, 0, 1, tag(1, 0, 1));
        b.invoke_write(0, "k", "b", Quorum, 2);
        b.info(0, 3, OpError::Timeout);
        b.read(1, "k", Quorum, 4, 5, &["a"], vc(&[(0, 1)]));
        let report = check_linearizable(&b.build());
        assert_eq!(only(&report), &LinearizabilityResult::Linearizable);
        assert_eq!(report.keys[0].operations, 2);

        // But it cannot take effect before it was invoked.
        let mut b = Builder::new();
        let early = b.read(1, "k", Quorum, 0, 1, &["b"], vc(&[(0, 2)]));
        b.invoke_write(0, "k", "b", Quorum, 2);
        b.info(0, 3, OpError::Timeout);
        let report = check_linearizable(&b.build());
        assert_eq!(only(&report), &LinearizabilityResult::Violation { op_index: early });
    }

    #[test]
    fn info_write_seen_then_unseen_is_a_violation() {
        let mut b = Builder::new();
        b.write(0, "k", "a", Quorum, 0, 1, tag(1, 0, 1));
        b.invoke_write(0, "k", "b", Quorum, 2);
        b.info(0, 3, OpError::Timeout);
        b.read(1, "k", Quorum, 4, 5, &["b"], vc(&[(0, 2)]));
        let flip = b.read(1, "k", Quorum, 6, 7, &["a"], vc(&[(0, 1)]));
        let report = check_linearizable(&b.build());
        assert_eq!(only(&report), &LinearizabilityResult::Violation { op_index: flip });
    }

    #[test]
    fn failed_ops_are_ignored() {
        let mut b = Builder::new();
        b.write(0, "k", "a", Quorum, 0, 1, tag(1, 0, 1));
        b.invoke_write(0, "k", "b", Quorum, 2);
        b.fail(0, 3, OpError::Unavailable);
        b.invoke_read(2, "k", Quorum, 4);
        b.fail(2, 5, OpError::Unavailable);
        b.read(1, "k", Quorum, 6, 7, &["a"], vc(&[(0, 1)]));
        let report = check_linearizable(&b.build());
        assert_eq!(only(&report), &LinearizabilityResult::Linearizable);
        assert_eq!(report.keys[0].operations, 2);
    }

    #[test]
    fn siblings_are_a_violation() {
        let mut b = Builder::new();
        b.write(0, "k", "a", Quorum, 0, 1, tag(1, 0, 1));
        b.write(1, "k", "b", Quorum, 0, 1, tag(1, 1, 1));
        let both = b.read(2, "k", Quorum, 2, 3, &["a", "b"], vc(&[(0, 1), (1, 1)]));
        let report = check_linearizable(&b.build());
        assert_eq!(only(&report), &LinearizabilityResult::Violation { op_index: both });
        assert!(report.keys[0].explanation.as_deref().unwrap().contains("2 siblings [a, b]"));
    }

    #[test]
    fn keys_are_independent_and_reported_in_order() {
        let mut b = Builder::new();
        b.write(0, "y", "1", Quorum, 0, 1, tag(1, 0, 1));
        b.write(0, "x", "1", Quorum, 2, 3, tag(3, 0, 1));
        b.write(0, "x", "2", Quorum, 4, 5, tag(5, 0, 2));
        b.read(1, "x", Quorum, 6, 7, &["1"], vc(&[(0, 1)]));
        b.read(1, "y", Quorum, 8, 9, &["1"], vc(&[(0, 1)]));
        let report = check_linearizable(&b.build());
        let keys: Vec<&str> = report.keys.iter().map(|k| k.key.as_str()).collect();
        assert_eq!(keys, ["x", "y"]);
        assert_eq!((report.linearizable, report.violations, report.unknown), (1, 1, 0));
        assert_eq!(report.violating_keys().count(), 1);
    }

    #[test]
    fn budget_exhaustion_reports_unknown() {
        // Many overlapping writes of distinct values, then a read of a value never written:
        // proving the violation needs every subset of the writes, far more than 10 states.
        let mut b = Builder::new();
        for p in 0..12 {
            b.invoke_write(p, "k", &format!("v{p}"), Quorum, p.into());
        }
        for p in 0..12 {
            b.ok_write(p, 100 + u64::from(p), tag(100, p, 1));
        }
        b.read(99, "k", Quorum, 200, 201, &["v0"], vc(&[]));
        b.read(98, "k", Quorum, 202, 203, &["v1"], vc(&[]));
        b.read(97, "k", Quorum, 204, 205, &["v0"], vc(&[]));
        let history = b.build();
        let report = check_linearizable_with_budget(&history, 10);
        assert_eq!(only(&report), &LinearizabilityResult::Unknown);
        assert_eq!(report.unknown, 1);
        assert!(!report.is_linearizable());
        // With the default budget the search finishes.
        let report = check_linearizable(&history);
        assert!(matches!(only(&report), LinearizabilityResult::Violation { .. }));
    }

    /// A small random history for comparing the search with brute force. Each process runs a few
    /// operations; values are drawn from a tiny set so both outcomes are common.
    #[derive(Clone, Debug)]
    struct Step {
        process: u32,
        read: bool,
        value: u8,
        outcome: u8,
    }

    fn arb_steps() -> impl Strategy<Value = Vec<Step>> {
        proptest::collection::vec(
            (0u32..3, any::<bool>(), 0u8..3, 0u8..10)
                .prop_map(|(process, read, value, outcome)| Step { process, read, value, outcome }),
            1..14,
        )
    }

    /// Turns steps into a history: a step on an idle process invokes, on a busy one completes.
    /// Reads return `value` (0 = absent); writes complete ok mostly, sometimes info or fail.
    fn history_of(steps: &[Step]) -> History {
        let mut b = Builder::new();
        let mut busy: BTreeMap<u32, bool> = BTreeMap::new();
        for (t, s) in steps.iter().enumerate() {
            let t = t as u64;
            match busy.remove(&s.process) {
                None => {
                    if s.read {
                        b.invoke_read(s.process, "k", Quorum, t);
                    } else {
                        b.invoke_write(s.process, "k", &format!("v{}", s.value + 1), Quorum, t);
                    }
                    busy.insert(s.process, s.read);
                }
                Some(true) => {
                    let v = format!("v{}", s.value);
                    let values: Vec<&str> = if s.value == 0 { vec![] } else { vec![v.as_str()] };
                    b.ok_read(s.process, t, &values, vc(&[]));
                }
                Some(false) => match s.outcome {
                    0 => drop(b.info(s.process, t, OpError::Timeout)),
                    1 => drop(b.fail(s.process, t, OpError::Unavailable)),
                    _ => drop(b.ok_write(s.process, t, tag(t, 0, t))),
                },
            }
        }
        b.build()
    }

    /// Exhaustive search over orders of the operations (optional ones may be left out).
    fn brute_force(history: &History) -> bool {
        let paired = ops::pair(history);
        let register = register_ops(&paired.ops, false);
        fn go(register: &[RegisterOp<'_, '_>], done: &mut Vec<bool>, value: Value) -> bool {
            if register.iter().zip(done.iter()).all(|(op, d)| *d || !op.required) {
                return true;
            }
            for i in 0..register.len() {
                if done[i] {
                    continue;
                }
                // i may go next only if no pending ok op completed before i was invoked.
                let blocked = (0..register.len()).any(|j| {
                    !done[j]
                        && j != i
                        && register[j].required
                        && register[j].source.completion_pos() < register[i].source.invoke_pos
                });
                if blocked {
                    continue;
                }
                if let Some(next) = Search::step(value, register[i].action) {
                    done[i] = true;
                    let ok = go(register, done, next);
                    done[i] = false;
                    if ok {
                        return true;
                    }
                }
            }
            false
        }
        go(&register, &mut vec![false; register.len()], ABSENT)
    }

    proptest! {
        #[test]
        fn search_agrees_with_brute_force(steps in arb_steps()) {
            let history = history_of(&steps);
            let expected = brute_force(&history);
            let report = check_linearizable(&history);
            let got = report
                .keys
                .first()
                .map_or(LinearizabilityResult::Linearizable, |k| k.result.clone());
            prop_assert_eq!(got == LinearizabilityResult::Linearizable, expected, "{:?}", report);
        }

        #[test]
        fn atomic_register_histories_are_linearizable(
            schedule in proptest::collection::vec((0u32..4, any::<bool>(), 0u8..4), 1..200),
        ) {
            // Each operation takes effect atomically at a random point inside its window on a real
            // register, so the history is linearizable by construction.
            let mut b = Builder::new();
            let mut register: Option<String> = None;
            // Per busy process: (is read, value to write, already applied, observed value).
            let mut busy: BTreeMap<u32, (bool, String, bool, Option<String>)> = BTreeMap::new();
            for (t, (process, read, choice)) in schedule.into_iter().enumerate() {
                let t = t as u64;
                match busy.remove(&process) {
                    None => {
                        let value = format!("v{t}");
                        if read {
                            b.invoke_read(process, "k", Quorum, t);
                        } else {
                            b.invoke_write(process, "k", &value, Quorum, t);
                        }
                        busy.insert(process, (read, value, false, None));
                    }
                    Some((read, value, applied, seen)) => {
                        if !applied && choice % 2 == 0 {
                            // Take effect now, complete later.
                            let seen = if read { register.clone() } else {
                                register = Some(value.clone());
                                None
                            };
                            busy.insert(process, (read, value, true, seen));
                            continue;
                        }
                        let seen = if applied { seen } else if read { register.clone() } else {
                            register = Some(value.clone());
                            None
                        };
                        if read {
                            let values: Vec<&str> = seen.iter().map(String::as_str).collect();
                            b.ok_read(process, t, &values, vc(&[]));
                        } else if choice == 3 {
                            b.info(process, t, OpError::Timeout);
                        } else {
                            b.ok_write(process, t, tag(t, 0, t));
                        }
                    }
                }
            }
            let report = check_linearizable(&b.build());
            prop_assert!(report.is_linearizable(), "{:?}", report);
        }
    }
}
