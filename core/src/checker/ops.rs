//! Pairs each invoke with its completion, giving the checkers whole operations.
//!
//! Histories are Jepsen-shaped: every process is sequential, so a completion belongs to the
//! pending invoke of the same process. Positions (indices into `History::ops`) are the real-time
//! order: the history lists events in the order they happened, so "a completed before b was
//! invoked" is `a.completion_pos < b.invoke_pos`. Times are kept for display only; this also
//! breaks ties between events recorded at the same engine instant exactly as the recorder
//! ordered them.

use crate::history::{History, Op, OpFunction, OpType, Pairing};

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Completed `ok`.
    Ok,
    /// Completed `fail`: it certainly did not take effect.
    Fail,
    /// Completed `info`: indeterminate.
    Info,
    /// Never completed (the history was cut short): indeterminate as well.
    Pending,
}

/// One client operation: its invoke and, when recorded, its completion.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Operation<'h> {
    /// The invoke event.
    pub invoke: &'h Op,
    /// Position of the invoke in `History::ops`.
    pub invoke_pos: usize,
    /// The completion event and its position, if any.
    pub completion: Option<(&'h Op, usize)>,
}

impl<'h> Operation<'h> {
    /// How the operation ended.
    pub fn outcome(&self) -> Outcome {
        match self.completion {
            None => Outcome::Pending,
            Some((op, _)) => match op.op_type {
                OpType::Ok => Outcome::Ok,
                OpType::Fail => Outcome::Fail,
                // An `invoke` can never be stored as a completion (see `pair`).
                OpType::Info | OpType::Invoke => Outcome::Info,
            },
        }
    }

    /// Whether this is a read.
    pub fn is_read(&self) -> bool {
        self.invoke.f == OpFunction::Read
    }

    /// Whether this is a write or a delete (a tombstone write).
    pub fn is_write(&self) -> bool {
        !self.is_read()
    }

    /// The completion event, if any.
    pub fn done(&self) -> Option<&'h Op> {
        self.completion.map(|(op, _)| op)
    }

    /// Position of the completion, or `usize::MAX` when it never completed.
    pub fn completion_pos(&self) -> usize {
        self.completion.map_or(usize::MAX, |(_, pos)| pos)
    }

    /// The op index reported for this operation: its completion's, else its invoke's.
    pub fn report_index(&self) -> u64 {
        self.done().unwrap_or(self.invoke).index
    }

    /// The value this write stores: `None` for a delete.
    pub fn written_value(&self) -> Option<&'h str> {
        match self.invoke.f {
            OpFunction::Delete | OpFunction::Read => None,
            OpFunction::Write => self
                .invoke
                .value
                .as_deref()
                .or_else(|| self.done().and_then(|d| d.value.as_deref())),
        }
    }

    /// A short description such as `write v5`, `delete` or `read`.
    pub fn describe(&self) -> String {
        match self.invoke.f {
            OpFunction::Read => "read".to_string(),
            OpFunction::Delete => "delete".to_string(),
            OpFunction::Write => format!("write {}", self.written_value().unwrap_or("?")),
        }
    }
}

/// The operations of a history plus any well-formedness problems met while pairing.
#[derive(Debug, Default)]
pub(crate) struct Paired<'h> {
    /// Operations in invoke order.
    pub ops: Vec<Operation<'h>>,
    /// Human-readable problems (completion without invoke, process reused while busy...).
    pub problems: Vec<String>,
}

/// Pairs invokes with completions. Malformed events are reported in `problems` and otherwise
/// handled conservatively: a completion without a pending invoke is ignored, and an invoke left
/// pending when its process invokes again is treated as never completed (indeterminate).
pub(crate) fn pair(history: &History) -> Paired<'_> {
    let pairing = Pairing::of(&history.ops);
    let ops = history
        .ops
        .iter()
        .enumerate()
        .filter(|(_, op)| op.op_type == OpType::Invoke)
        .map(|(pos, invoke)| Operation {
            invoke,
            invoke_pos: pos,
            completion: pairing.completion_of(pos).map(|c| (&history.ops[c], c)),
        })
        .collect();
    Paired { ops, problems: pairing.problems }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::testkit::{Builder, tag, vc};
    use crate::consistency::ConsistencyLevel::Quorum;

    #[test]
    fn pairs_interleaved_processes_and_reports_problems() {
        let mut b = Builder::new();
        b.invoke_write(0, "k", "a", Quorum, 0);
        b.invoke_read(1, "k", Quorum, 1);
        b.ok_read(1, 2, &[], vc(&[]));
        b.ok_write(0, 3, tag(3, 0, 1));
        b.invoke_read(2, "k", Quorum, 4);
        b.invoke_read(2, "k", Quorum, 5); // process 2 reused while busy
        let mut h = b.build();
        let mut stray = h.ops[2].clone();
        stray.process = 9;
        h.push(stray); // completion without invoke
        let paired = pair(&h);
        assert_eq!(paired.ops.len(), 4);
        assert_eq!(paired.ops[0].completion_pos(), 3);
        assert_eq!(paired.ops[1].completion_pos(), 2);
        assert_eq!(paired.ops[2].outcome(), Outcome::Pending);
        assert_eq!(paired.ops[3].outcome(), Outcome::Pending);
        assert_eq!(paired.problems.len(), 2, "{:?}", paired.problems);
    }
}
