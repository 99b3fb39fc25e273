//! Helpers that build small histories by hand for the checker's tests.
//!
//! Completions copy function, key, value and consistency level from the process's pending
//! invoke, so a test only states what differs: the time and the outcome.

use crate::consistency::ConsistencyLevel;
use crate::history::{History, Op, OpError, OpFunction, OpType};
use crate::id::NodeId;
use crate::time::Instant;
use crate::version::{CausalContext, ClockEntry, Dot, VClock, VersionTag};
use std::collections::BTreeMap;

/// A version tag `(timestamp, node:counter)`.
pub(crate) fn tag(timestamp: u64, node: u32, counter: u64) -> VersionTag {
    VersionTag { timestamp, dot: Dot { node: NodeId(node), counter } }
}

/// A vector-clock context from `(node, counter)` pairs.
pub(crate) fn vc(entries: &[(u32, u64)]) -> CausalContext {
    let mut clock = VClock::new();
    for (node, counter) in entries {
        clock.0.insert(NodeId(*node), ClockEntry { counter: *counter, at: 0 });
    }
    CausalContext::Vector(clock)
}

/// An LWW context whose winner is `tag`.
pub(crate) fn lww(tag: VersionTag) -> CausalContext {
    CausalContext::Lww(Some(tag))
}

/// Builds a history event by event.
#[derive(Debug, Default)]
pub(crate) struct Builder {
    history: History,
    pending: BTreeMap<u32, Op>,
}

impl Builder {
    /// An empty history.
    pub fn new() -> Self {
        Builder::default()
    }

    fn invoke(
        &mut self,
        process: u32,
        f: OpFunction,
        key: &str,
        cl: ConsistencyLevel,
        ms: u64,
    ) -> u64 {
        let op = Op {
            index: 0,
            process,
            op_type: OpType::Invoke,
            f,
            key: key.to_string(),
            value: None,
            values: Vec::new(),
            cl,
            time: Instant::from_millis(ms),
            node: NodeId(process % 3),
            version: None,
            context: None,
            write_context: None,
            error: None,
            final_read: false,
        };
        self.push_invoke(op)
    }

    fn push_invoke(&mut self, op: Op) -> u64 {
        let process = op.process;
        let index = self.history.push(op);
        self.pending.insert(process, self.history.ops[index as usize].clone());
        index
    }

    fn complete(
        &mut self,
        process: u32,
        op_type: OpType,
        ms: u64,
        fill: impl FnOnce(&mut Op),
    ) -> u64 {
        let mut op = self.pending.remove(&process).expect("completion without a pending invoke");
        op.op_type = op_type;
        op.time = Instant::from_millis(ms);
        op.write_context = None;
        fill(&mut op);
        self.history.push(op)
    }

    /// Invokes a blind write.
    pub fn invoke_write(
        &mut self,
        process: u32,
        key: &str,
        value: &str,
        cl: ConsistencyLevel,
        ms: u64,
    ) -> u64 {
        let index = self.invoke(process, OpFunction::Write, key, cl, ms);
        self.history.ops[index as usize].value = Some(value.to_string());
        self.pending.get_mut(&process).expect("just invoked").value = Some(value.to_string());
        index
    }

    /// Invokes a read-modify-write: a write carrying the context read before.
    pub fn invoke_rmw(
        &mut self,
        process: u32,
        key: &str,
        value: &str,
        cl: ConsistencyLevel,
        ms: u64,
        context: CausalContext,
    ) -> u64 {
        let index = self.invoke_write(process, key, value, cl, ms);
        self.history.ops[index as usize].write_context = Some(context);
        index
    }

    /// Invokes a delete.
    pub fn invoke_delete(&mut self, process: u32, key: &str, cl: ConsistencyLevel, ms: u64) -> u64 {
        self.invoke(process, OpFunction::Delete, key, cl, ms)
    }

    /// Invokes a read.
    pub fn invoke_read(&mut self, process: u32, key: &str, cl: ConsistencyLevel, ms: u64) -> u64 {
        self.invoke(process, OpFunction::Read, key, cl, ms)
    }

    /// Completes the pending write or delete of `process` with `ok` and the version `tag`.
    pub fn ok_write(&mut self, process: u32, ms: u64, tag: VersionTag) -> u64 {
        self.complete(process, OpType::Ok, ms, |op| op.version = Some(tag))
    }

    /// Completes the pending read of `process` with `ok`.
    pub fn ok_read(
        &mut self,
        process: u32,
        ms: u64,
        values: &[&str],
        context: CausalContext,
    ) -> u64 {
        self.complete(process, OpType::Ok, ms, |op| {
            op.values = values.iter().map(|v| v.to_string()).collect();
            op.context = Some(context);
        })
    }

    /// Completes the pending op of `process` with `fail`.
    pub fn fail(&mut self, process: u32, ms: u64, error: OpError) -> u64 {
        self.complete(process, OpType::Fail, ms, |op| op.error = Some(error))
    }

    /// Completes the pending op of `process` with `info`.
    pub fn info(&mut self, process: u32, ms: u64, error: OpError) -> u64 {
        self.complete(process, OpType::Info, ms, |op| op.error = Some(error))
    }

    /// A whole sequential write: invoke at `from`, ok at `to`. Returns the completion index.
    #[allow(clippy::too_many_arguments)]
    pub fn write(
        &mut self,
        process: u32,
        key: &str,
        value: &str,
        cl: ConsistencyLevel,
        from: u64,
        to: u64,
        tag: VersionTag,
    ) -> u64 {
        self.invoke_write(process, key, value, cl, from);
        self.ok_write(process, to, tag)
    }

    /// A whole sequential read: invoke at `from`, ok at `to`. Returns the completion index.
    #[allow(clippy::too_many_arguments)]
    pub fn read(
        &mut self,
        process: u32,
        key: &str,
        cl: ConsistencyLevel,
        from: u64,
        to: u64,
        values: &[&str],
        context: CausalContext,
    ) -> u64 {
        self.invoke_read(process, key, cl, from);
        self.ok_read(process, to, values, context)
    }

    /// A convergence read at `ALL` marked `final_read`. Returns the completion index.
    pub fn final_read(
        &mut self,
        process: u32,
        key: &str,
        from: u64,
        to: u64,
        values: &[&str],
        context: CausalContext,
    ) -> u64 {
        let index = self.invoke_read(process, key, ConsistencyLevel::All, from);
        self.history.ops[index as usize].final_read = true;
        self.pending.get_mut(&process).expect("just invoked").final_read = true;
        self.ok_read(process, to, values, context)
    }

    /// The pending invoke of `process`.
    pub fn pending_op(&self, process: u32) -> &Op {
        self.pending.get(&process).expect("no pending invoke")
    }

    /// The finished history.
    pub fn build(self) -> History {
        self.history
    }
}
