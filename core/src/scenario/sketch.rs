//! A situation sketched from a few choices — how many nodes, RF, which are down, one client
//! request, maybe a node joining — written out as a scenario file. The explorer's scenario
//! builder fills a [`Sketch`] from its form; the text it writes is an ordinary scenario file, so
//! it goes into a link and opens anywhere a file does.

use crate::consistency::ConsistencyLevel;
use crate::membership::JoinStrategy;
use crate::version::ConflictMode;
use std::fmt::Write as _;

/// A client request in a sketch.
#[derive(Clone, Debug, PartialEq)]
pub struct SketchOp {
    /// A write (otherwise a read).
    pub write: bool,
    /// The coordinator's name.
    pub node: String,
    /// The key.
    pub key: String,
    /// The level.
    pub cl: ConsistencyLevel,
}

/// The choices of the scenario builder.
#[derive(Clone, Debug, PartialEq)]
pub struct Sketch {
    /// Nodes, named A, B, C… (2 to 12).
    pub nodes: usize,
    /// Replication factor.
    pub rf: usize,
    /// Tokens per node; with 1, the nodes sit evenly round the ring (A at 1/n, B at 2/n…).
    pub vnodes: usize,
    /// How concurrent writes are resolved.
    pub conflict: ConflictMode,
    /// How a node joins.
    pub strategy: JoinStrategy,
    /// Nodes that crash at 1 s.
    pub down: Vec<String>,
    /// A client request, sent once the crashes are known everywhere.
    pub op: Option<SketchOp>,
    /// A node that joins, with its token as a fraction of the ring (`None`: the allocator's).
    pub join: Option<Option<(u32, u32)>>,
    /// Workload clients (0: only the scripted request).
    pub clients: usize,
}

impl Default for Sketch {
    fn default() -> Sketch {
        Sketch {
            nodes: 3,
            rf: 3,
            vnodes: 1,
            conflict: ConflictMode::Lww,
            strategy: JoinStrategy::default(),
            down: Vec::new(),
            op: Some(SketchOp {
                write: true,
                node: "A".into(),
                key: "k1".into(),
                cl: ConsistencyLevel::Quorum,
            }),
            join: None,
            clients: 0,
        }
    }
}

/// The name of node `i`: A, B, … L.
pub fn node_name(i: usize) -> String {
    char::from(b'A' + (i % 26) as u8).to_string()
}

/// When a sketch's request is sent: long enough after the crashes at 1 s for every failure
/// detector to have convicted them (tens of seconds), so the request meets a cluster that knows.
pub const OP_AT_SECS: u64 = 70;

impl Sketch {
    /// The nodes' names.
    pub fn names(&self) -> Vec<String> {
        (0..self.nodes).map(node_name).collect()
    }

    /// The scenario file.
    pub fn to_toml(&self) -> String {
        let names = self.names();
        let quoted =
            |v: &[String]| v.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ");
        let mut out = String::new();
        let _ = writeln!(out, "name = \"built-situation\"");
        let mut what = format!("{} nodes, RF {}", self.nodes, self.rf);
        if !self.down.is_empty() {
            let _ = write!(what, ", {} down", self.down.join(" and "));
        }
        if let Some(op) = &self.op {
            let _ = write!(
                what,
                ", a {} of {} at {} via {}",
                if op.write { "write" } else { "read" },
                op.key,
                op.cl,
                op.node
            );
        }
        if self.join.is_some() {
            let _ = write!(what, ", a node joining ({})", self.strategy);
        }
        let _ = writeln!(out, "description = \"Built in the explorer: {what}.\"");
        let _ = writeln!(out, "seed = 1");
        let _ = writeln!(out, "duration = \"{}s\"", OP_AT_SECS + 30);
        let _ = writeln!(out, "\n[cluster]\nnodes = [{}]", quoted(&names));
        let _ = writeln!(out, "rf = {}", self.rf);
        let _ = writeln!(out, "num_tokens = {}", self.vnodes.max(1));
        let conflict = match self.conflict {
            ConflictMode::Lww => "lww",
            ConflictMode::VectorClock => "vector-clock",
        };
        let _ = writeln!(out, "conflict = \"{conflict}\"");
        let _ = writeln!(out, "strategy = \"{}\"", self.strategy);
        if self.vnodes <= 1 {
            let tokens: Vec<String> = names
                .iter()
                .enumerate()
                .map(|(i, n)| format!("{n} = [\"ring:{}/{}\"]", i + 1, self.nodes + 1))
                .collect();
            let _ = writeln!(out, "tokens = {{ {} }}", tokens.join(", "));
        }
        let _ = writeln!(out, "\n[workload]\nclients = {}", self.clients);
        for n in &self.down {
            let _ = writeln!(
                out,
                "\n[[events]]\nat = \"1s\"\nlabel = \"{n} crashes\"\ncrash = \"{n}\""
            );
        }
        if let Some(token) = &self.join {
            let name = node_name(self.nodes);
            let tokens = match token {
                Some((n, d)) => format!(", tokens = [\"ring:{n}/{d}\"]"),
                None => String::new(),
            };
            let _ = writeln!(
                out,
                "\n[[events]]\nat = \"10s\"\nlabel = \"{name} joins\"\nadd_node = {{ name = \"{name}\"{tokens} }}"
            );
        }
        if let Some(op) = &self.op {
            let body = if op.write {
                format!(
                    "write = {{ node = {:?}, key = {:?}, value = \"v1\", cl = \"{}\" }}",
                    op.node, op.key, op.cl
                )
            } else {
                format!("read = {{ node = {:?}, key = {:?}, cl = \"{}\" }}", op.node, op.key, op.cl)
            };
            let _ = writeln!(
                out,
                "\n[[events]]\nat = \"{OP_AT_SECS}s\"\nlabel = \"the request\"\n{body}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{RunOptions, parse, prepare, run};

    fn outcome(s: &Sketch) -> String {
        let text = s.to_toml();
        let p = prepare(parse(&text).unwrap(), &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let (report, _) = run(&p, &RunOptions::default());
        report.operations[0].outcome.clone()
    }

    #[test]
    fn a_sketch_is_a_scenario_that_runs_what_was_chosen() {
        let mut s = Sketch::default();
        assert_eq!(outcome(&s), "ok");
        s.down = vec!["B".into()];
        s.op.as_mut().unwrap().cl = ConsistencyLevel::All;
        assert_eq!(outcome(&s), "unavailable", "ALL with a replica down is refused up front");
        s.op.as_mut().unwrap().cl = ConsistencyLevel::Quorum;
        assert_eq!(outcome(&s), "ok");
        let text = s.to_toml();
        assert!(
            text.contains(
                "tokens = { A = [\"ring:1/4\"], B = [\"ring:2/4\"], C = [\"ring:3/4\"] }"
            ),
            "{text}"
        );
        assert!(text.contains("description = \"Built in the explorer: 3 nodes, RF 3, B down, a write of k1 at QUORUM via A.\""), "{text}");
    }

    #[test]
    fn a_sketch_with_a_joining_node_and_vnodes_prepares() {
        let s = Sketch {
            nodes: 4,
            vnodes: 4,
            join: Some(None),
            op: None,
            clients: 2,
            strategy: JoinStrategy::Immediate,
            ..Sketch::default()
        };
        let text = s.to_toml();
        assert!(
            text.contains("add_node = { name = \"E\" }") && !text.contains("\ntokens ="),
            "{text}"
        );
        prepare(parse(&text).unwrap(), &text).unwrap();
        let with_token = Sketch { join: Some(Some((1, 8))), ..s };
        assert!(with_token.to_toml().contains("tokens = [\"ring:1/8\"]"));
    }
}
