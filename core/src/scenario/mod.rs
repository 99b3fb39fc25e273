//! Scenario files: a cluster, a workload, a timeline of events and expectations, in TOML.
//!
//! ```toml
//! name = "quorum-write-with-hint"
//! seed = 1
//! duration = "60s"
//!
//! [cluster]
//! nodes = ["A", "B", "C", "D", "E", "F"]
//! rf = 3
//! num_tokens = 1
//! conflict = "lww"
//! tokens = { A = ["key:K-1000"], B = ["key:K+1"], C = ["key:K+2"] }  # or plain integers
//!
//! [workload]
//! clients = 0
//!
//! [[events]]
//! at = "1s"
//! crash = "C"
//!
//! [[events]]
//! at = "40s"
//! label = "w1"
//! write = { node = "A", key = "K", value = "v1", cl = "QUORUM" }
//! expect = { ok = true, acks = ["B", "D"], hinted = ["C"] }
//!
//! [expect]
//! lost_writes = 0
//! hints_stored = { A = 1 }
//! ```
//!
//! Counts in expectations are an integer (exact) or a comparison string: `">=1"`, `"<3"`, `">0"`.
//!
//! [`prepare`] refuses anything that could not run or would be silently ignored (an expectation
//! on the wrong kind of event, an event after `duration`, a read at ANY, RF above the node count,
//! a zero period…), naming the line and column of the offending key or value.
//!
//! The module is split by what each part owns: `spec` the TOML-facing types and [`parse`],
//! `event` the timeline's [`Event`]s as playback and the explorer use them, `prepare` the
//! validation that turns a file into a runnable [`Prepared`] (parsing each event once),
//! `playback` the run itself, `expect` the expectations and their checks, and `report` what a
//! run reports. Callers use the re-exports below, so the split is invisible outside this module.

mod event;
mod expect;
mod playback;
mod prepare;
mod report;
mod sketch;
mod spec;

pub use event::{ClientOp, Event, Target, TimelineEvent};
pub use expect::{ClusterExpect, Count, ExpectationResult, OpExpect, RunExpect};
pub use playback::{
    Applied, AppliedEvent, FinalPhase, Playback, RunOptions, apply_event, build_simulation, finish,
    run, run_with,
};
pub use prepare::{Prepared, prepare};
pub use report::{
    Moment, MomentNode, OpCounts, OpOutcome, ScenarioReport, node_status, ownership,
    ownership_text, status_code,
};
pub use sketch::{OP_AT_SECS, Sketch, SketchOp, node_name};
pub use spec::{
    AddNodeSpec, ClusterSpec, EventSpec, NodeOverrides, OpSpec, PauseSpec, ResumeSpec, Scenario,
    ScenarioError, TokenError, TokenSpec, parse,
};
