//! Jepsen-style operation history, recorded by the simulator's clients (and by native test
//! clients) and read by the checker.
//!
//! Every client operation is an `invoke` followed by exactly one completion: `ok`, `fail` (it
//! certainly did not happen) or `info` (indeterminate: it may or may not have taken effect).

use crate::consistency::ConsistencyLevel;
use crate::id::NodeId;
use crate::time::Instant;
use crate::version::{CausalContext, VersionTag};
use serde::{Deserialize, Serialize};

/// Jepsen's operation types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpType {
    /// The client sent the request.
    Invoke,
    /// It succeeded.
    Ok,
    /// It definitely did not take effect (e.g. `Unavailable` before any replica was written).
    Fail,
    /// Its outcome is unknown (e.g. a timeout after some replicas may have been written).
    Info,
}

/// The operation's function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpFunction {
    /// Read one key.
    Read,
    /// Write a value to one key.
    Write,
    /// Delete one key (a tombstone write).
    Delete,
}

/// Why an operation failed or is indeterminate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OpError {
    /// Too few live replicas: refused up front, nothing written.
    Unavailable,
    /// Too few replies in time: some replicas may hold the write.
    Timeout,
    /// The coordinator was not running (crashed) when the client called it.
    NodeDown,
}

/// One history entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// Position in the history (0-based, strictly increasing).
    pub index: u64,
    /// The client ("process" in Jepsen) that issued it. Completions repeat the invoke's process.
    pub process: u32,
    /// Invoke or completion.
    #[serde(rename = "type")]
    pub op_type: OpType,
    /// Read, write or delete.
    pub f: OpFunction,
    /// The key.
    pub key: String,
    /// For writes: the value written (on invoke and completion). For reads: `None`.
    pub value: Option<String>,
    /// For `ok` reads: the live sibling values returned (empty when absent or deleted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    /// Consistency level requested.
    pub cl: ConsistencyLevel,
    /// Engine time of the event.
    pub time: Instant,
    /// The coordinator the client talked to.
    pub node: NodeId,
    /// For `ok` writes and deletes: the version the cluster assigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<VersionTag>,
    /// For `ok` reads: the causal context returned (what the read saw).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<CausalContext>,
    /// For writes: the context the client sent (what it had read before writing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_context: Option<CausalContext>,
    /// For `fail` and `info`: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<OpError>,
    /// Whether this op is one of the final convergence reads issued after the workload stopped.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub final_read: bool,
}

/// A whole history, in index order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// Operations in the order they happened.
    pub ops: Vec<Op>,
}

impl History {
    /// Appends an op, assigning its index.
    pub fn push(&mut self, mut op: Op) -> u64 {
        op.index = self.ops.len() as u64;
        self.ops.push(op);
        self.ops.len() as u64 - 1
    }
}

/// Which completion answers which invoke in a history: the one pairing rule the checker, the
/// explorer and its history panel share. A completion answers the pending invoke of its process;
/// an invoke still pending when its process invokes again is left unanswered (indeterminate), and
/// a completion with no pending invoke answers nothing. Each oddity is reported in `problems`.
#[derive(Clone, Debug, Default)]
pub struct Pairing {
    /// By position in the history: for an invoke, the position of its completion.
    completion: Vec<Option<usize>>,
    /// By position in the history: for a completion, the position of its invoke.
    invoke: Vec<Option<usize>>,
    /// Malformed events met while pairing, in words.
    pub problems: Vec<String>,
}

impl Pairing {
    /// Pairs the operations of `ops` (a history's `ops`, in order).
    pub fn of(ops: &[Op]) -> Pairing {
        let mut out = Pairing {
            completion: vec![None; ops.len()],
            invoke: vec![None; ops.len()],
            problems: Vec::new(),
        };
        let mut pending: std::collections::BTreeMap<u32, usize> = Default::default();
        for (pos, op) in ops.iter().enumerate() {
            if op.op_type == OpType::Invoke {
                if let Some(prev) = pending.insert(op.process, pos) {
                    out.problems.push(format!(
                        "process {} invoked op {} while op {} was still pending; the earlier op is \
                         treated as indeterminate",
                        op.process, op.index, ops[prev].index
                    ));
                }
                continue;
            }
            let Some(invoke) = pending.remove(&op.process) else {
                out.problems.push(format!(
                    "op {} completes process {} which has no pending invoke; ignored",
                    op.index, op.process
                ));
                continue;
            };
            if ops[invoke].f != op.f || ops[invoke].key != op.key {
                out.problems.push(format!(
                    "op {} completes op {} of process {} with a different function or key; the \
                     invoke's is used",
                    op.index, ops[invoke].index, op.process
                ));
            }
            out.completion[invoke] = Some(pos);
            out.invoke[pos] = Some(invoke);
        }
        out
    }

    /// The position of the completion of the invoke at `pos`, if it completed.
    pub fn completion_of(&self, pos: usize) -> Option<usize> {
        self.completion.get(pos).copied().flatten()
    }

    /// The position of the invoke the completion at `pos` answers.
    pub fn invoke_of(&self, pos: usize) -> Option<usize> {
        self.invoke.get(pos).copied().flatten()
    }
}
