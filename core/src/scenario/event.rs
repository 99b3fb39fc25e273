//! Timeline events as a type: [`Event`] is one action with only its own fields, parsed once from
//! the file's [`super::EventSpec`] by [`super::prepare`] or built directly by the explorer, and
//! [`TimelineEvent`] places it in time with its label and expectations.
//!
//! Playback matches on [`Event`] instead of probing optional fields, and its [`Display`] is the
//! one human description of an event, shared by reports and the explorer.
//!
//! [`Display`]: std::fmt::Display

use super::expect::{ClusterExpect, OpExpect};
use crate::consistency::ConsistencyLevel;
use crate::history::OpFunction;
use crate::token::Token;
use std::fmt;
use std::time::Duration;

/// Which nodes an operator command such as cleanup or repair runs on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Every node that is up and announces NORMAL when the event is applied (`"all"` in a file).
    AllNormal,
    /// One node, by name.
    Node(String),
}

impl Target {
    /// The target a file or an intervention names: `"all"` is every NORMAL node, anything else
    /// one node.
    pub fn named(name: &str) -> Target {
        if name == "all" { Target::AllNormal } else { Target::Node(name.to_string()) }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::AllNormal => f.write_str("all"),
            Target::Node(n) => f.write_str(n),
        }
    }
}

/// The fields every scripted client operation has: where it is sent, on which key, at which
/// consistency level.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientOp {
    /// The coordinator's name.
    pub node: String,
    /// The key read or written.
    pub key: String,
    /// The consistency level the coordinator waits for.
    pub cl: ConsistencyLevel,
}

/// One action of a scenario's timeline, or of the explorer's user.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// Kill a node; its storage is kept for a restart.
    Crash(String),
    /// Restart a crashed node.
    Restart(String),
    /// Split the network into these groups; unlisted nodes form one more group.
    Partition(Vec<Vec<String>>),
    /// Freeze a node's process (a GC or VM pause) for a while.
    Pause {
        /// The paused node.
        node: String,
        /// How long it stays frozen.
        duration: Duration,
    },
    /// Delay membership changes reaching a node for a while.
    SlowGossip {
        /// The node that hears gossip late.
        node: String,
        /// How long its gossip stays slow.
        duration: Duration,
    },
    /// Heal every partition.
    Heal,
    /// Set the probability that a message is lost.
    Loss(f64),
    /// Start a new node and join it.
    AddNode {
        /// The new node's name.
        name: String,
        /// The tokens it takes, or `None` to let the cluster's allocator choose.
        tokens: Option<Vec<Token>>,
    },
    /// Resume an interrupted or failed join.
    ResumeJoin {
        /// The joining node.
        node: String,
        /// Stream from another replica when the one losing a range is down.
        allow_inconsistent_source: bool,
    },
    /// Decommission a node.
    Decommission(String),
    /// Abort a node's join or decommission, reversing its placement (idempotent).
    Abort(String),
    /// Remove data a node holds but no longer replicates.
    Cleanup(Target),
    /// Run a Merkle repair from a node.
    Repair(Target),
    /// Change nothing: a moment at which the timeline's cluster expectations are checked.
    Inspect,
    /// A client write.
    Write {
        /// Coordinator, key and consistency level.
        op: ClientOp,
        /// The value written.
        value: String,
        /// Send the context of the last scripted read of the key (read-modify-write).
        with_context: bool,
    },
    /// A client delete.
    Delete {
        /// Coordinator, key and consistency level.
        op: ClientOp,
        /// Send the context of the last scripted read of the key (read-modify-write).
        with_context: bool,
    },
    /// A client read.
    Read(ClientOp),
}

impl Event {
    /// The key that introduces this kind of event in a scenario file (`crash`, `add_node`,
    /// `write`…), for messages that name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Crash(_) => "crash",
            Event::Restart(_) => "restart",
            Event::Partition(_) => "partition",
            Event::Pause { .. } => "pause",
            Event::SlowGossip { .. } => "slow_gossip",
            Event::Heal => "heal",
            Event::Loss(_) => "loss",
            Event::AddNode { .. } => "add_node",
            Event::ResumeJoin { .. } => "resume_join",
            Event::Decommission(_) => "decommission",
            Event::Abort(_) => "abort",
            Event::Cleanup(_) => "cleanup",
            Event::Repair(_) => "repair",
            Event::Inspect => "inspect",
            Event::Write { .. } => "write",
            Event::Delete { .. } => "delete",
            Event::Read(_) => "read",
        }
    }

    /// The one node the event concerns (the node crashed, added, decommissioned…, a client
    /// operation's coordinator), for highlighting it; `None` for cluster-wide events.
    pub fn node(&self) -> Option<&str> {
        match self {
            Event::Crash(n) | Event::Restart(n) | Event::Decommission(n) | Event::Abort(n) => {
                Some(n)
            }
            Event::Pause { node, .. }
            | Event::SlowGossip { node, .. }
            | Event::ResumeJoin { node, .. } => Some(node),
            Event::AddNode { name, .. } => Some(name),
            Event::Cleanup(Target::Node(n)) | Event::Repair(Target::Node(n)) => Some(n),
            Event::Write { op, .. } | Event::Delete { op, .. } | Event::Read(op) => Some(&op.node),
            Event::Partition(_)
            | Event::Heal
            | Event::Loss(_)
            | Event::Cleanup(Target::AllNormal)
            | Event::Repair(Target::AllNormal)
            | Event::Inspect => None,
        }
    }

    /// The client operation of a write, delete or read, with the function the history records
    /// it as; `None` for every other event.
    pub fn client_op(&self) -> Option<(OpFunction, &ClientOp)> {
        match self {
            Event::Write { op, .. } => Some((OpFunction::Write, op)),
            Event::Delete { op, .. } => Some((OpFunction::Delete, op)),
            Event::Read(op) => Some((OpFunction::Read, op)),
            _ => None,
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Crash(n) => write!(f, "crash {n}"),
            Event::Restart(n) => write!(f, "restart {n}"),
            Event::Partition(_) => f.write_str("partition"),
            Event::Pause { node, .. } => write!(f, "pause {node}"),
            Event::SlowGossip { node, .. } => write!(f, "slow gossip on {node}"),
            Event::Heal => f.write_str("heal"),
            Event::Loss(p) => write!(f, "loss {:.0}%", p * 100.0),
            Event::AddNode { name, .. } => write!(f, "add node {name}"),
            Event::ResumeJoin { node, .. } => write!(f, "resume join of {node}"),
            Event::Decommission(n) => write!(f, "decommission {n}"),
            Event::Abort(n) => write!(f, "abort {n}"),
            Event::Cleanup(t) => write!(f, "cleanup {t}"),
            Event::Repair(t) => write!(f, "repair {t}"),
            Event::Inspect => f.write_str("inspect"),
            Event::Write { op, .. } | Event::Delete { op, .. } | Event::Read(op) => {
                write!(f, "{} {} at {} via {}", self.kind(), op.key, op.cl, op.node)
            }
        }
    }
}

/// An [`Event`] at its moment of the timeline, with what the file says about it.
#[derive(Clone, Debug)]
pub struct TimelineEvent {
    /// Simulated time since the start.
    pub at: Duration,
    /// The name reports use for it instead of its description.
    pub label: Option<String>,
    /// What it shows, for the explorer's lesson mode.
    pub note: Option<String>,
    /// What happens.
    pub event: Event,
    /// Expectations about a write, delete or read (validation refuses them elsewhere).
    pub expect: Option<OpExpect>,
    /// Expectations about the cluster right after any other event (validation refuses them on
    /// client operations).
    pub expect_cluster: Option<ClusterExpect>,
}

impl TimelineEvent {
    /// `event` at `at`, without a label or expectations, as the explorer inserts the user's.
    pub fn new(at: Duration, event: Event) -> TimelineEvent {
        TimelineEvent { at, label: None, note: None, event, expect: None, expect_cluster: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{parse, prepare};

    #[test]
    fn a_file_s_events_become_their_variants_and_read_as_people_say_them() {
        let text = r#"
name = "events"
duration = "20s"
[cluster]
nodes = ["A", "B", "C"]
rf = 3
[[events]]
at = "1s"
crash = "C"
[[events]]
at = "2s"
partition = [["A"], ["B"]]
[[events]]
at = "3s"
pause = { node = "B", for = "2s" }
[[events]]
at = "4s"
loss = 0.25
[[events]]
at = "5s"
add_node = { name = "D", tokens = ["ring:1/2"] }
[[events]]
at = "6s"
repair = "all"
[[events]]
at = "7s"
write = { node = "A", key = "K", value = "v", cl = "quorum" }
[[events]]
at = "8s"
inspect = true
"#;
        let p = prepare(parse(text).unwrap(), text).unwrap();
        let events: Vec<&Event> = p.events.iter().map(|e| &e.event).collect();
        assert_eq!(events[0], &Event::Crash("C".into()));
        assert_eq!(events[4], &Event::AddNode { name: "D".into(), tokens: Some(vec![1 << 63]) });
        assert_eq!(events[5], &Event::Repair(Target::AllNormal));
        let described: Vec<String> = events.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            described,
            [
                "crash C",
                "partition",
                "pause B",
                "loss 25%",
                "add node D",
                "repair all",
                "write K at QUORUM via A",
                "inspect",
            ]
        );
    }
}
