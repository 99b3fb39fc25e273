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

use crate::alloc::{Allocation, build_ring};
use crate::checker::{AnomalyKind, CheckConfig, CheckReport, check};
use crate::consistency::ConsistencyLevel;
use crate::gossip::Status;
use crate::history::{OpFunction, OpType};
use crate::id::NodeId;
use crate::membership::JoinStrategy;
use crate::node::{JoinRequest, NodeConfig, Reply, RequestError};
use crate::ring::Ring;
use crate::sim::network::NetworkConfig;
use crate::sim::workload::WorkloadConfig;
use crate::sim::{SimConfig, SimError, Simulation};
use crate::status::NodeStatus;
use crate::time::Instant;
use crate::token::{Token, token_for};
use crate::version::{CausalContext, ConflictMode};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use toml::Spanned;

/// A scenario file that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScenarioError {
    /// TOML syntax or a field of the wrong shape (the message names line and field).
    #[error("{0}")]
    Parse(String),
    /// A well-formed file that describes something impossible, or something that would be
    /// silently ignored.
    #[error("line {line}, column {column}: {message}")]
    Invalid {
        /// 1-based line of the offending key or value.
        line: usize,
        /// 1-based column (in characters) of the offending key or value.
        column: usize,
        /// What is wrong and what to do.
        message: String,
    },
    /// Like `Invalid`, for values without a position.
    #[error("{0}")]
    Semantic(String),
}

/// A whole scenario.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name.
    pub name: String,
    /// What it shows.
    #[serde(default)]
    pub description: String,
    /// Seed of every random choice.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Virtual time to run before the final phase.
    #[serde(with = "humantime_serde", default = "default_duration")]
    pub duration: Duration,
    /// The cluster.
    pub cluster: ClusterSpec,
    /// Node tunables.
    #[serde(default)]
    pub node: NodeOverrides,
    /// Network behaviour.
    #[serde(default)]
    pub network: NetworkConfig,
    /// Client workload.
    #[serde(default)]
    pub workload: WorkloadConfig,
    /// Timeline.
    #[serde(default)]
    pub events: Vec<EventSpec>,
    /// What happens after `duration`.
    #[serde(default, rename = "final")]
    pub final_phase: FinalPhase,
    /// Expectations on the whole run.
    #[serde(default)]
    pub expect: RunExpect,
}

fn default_seed() -> u64 {
    1
}

fn default_duration() -> Duration {
    Duration::from_secs(60)
}

/// The cluster's shape.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    /// Node names, in id order.
    pub nodes: Vec<Spanned<String>>,
    /// Replication factor.
    pub rf: usize,
    /// Vnodes per node when tokens are allocated.
    #[serde(default = "default_num_tokens")]
    pub num_tokens: usize,
    /// Token allocation for nodes without explicit tokens.
    #[serde(default)]
    pub allocation: Allocation,
    /// How concurrent writes are resolved.
    #[serde(default)]
    pub conflict: ConflictMode,
    /// Explicit tokens per node: integers, or `"key:NAME+N"` / `"key:NAME-N"` (the token of key
    /// NAME plus or minus N), which lets a scenario place a key's replicas exactly.
    #[serde(default)]
    pub tokens: BTreeMap<String, Vec<TokenSpec>>,
    /// Rack of each node (rack-aware placement when given).
    #[serde(default)]
    pub racks: BTreeMap<String, String>,
    /// How nodes join (`ringside sim compare` runs every strategy instead).
    #[serde(default)]
    pub strategy: JoinStrategy,
}

fn default_num_tokens() -> usize {
    16
}

/// A token in a scenario file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TokenSpec {
    /// A literal token.
    Literal(u64),
    /// `key:NAME+N` or `key:NAME-N`, or `ring:N/D` (the fraction N/D of the ring) or a decimal
    /// string (tokens above 2^63 do not fit a TOML integer).
    Relative(String),
}

impl TokenSpec {
    /// The token this spec denotes.
    pub fn resolve(&self) -> Result<Token, String> {
        match self {
            TokenSpec::Literal(t) => Ok(*t),
            TokenSpec::Relative(s) => {
                if let Ok(t) = s.parse::<u64>() {
                    return Ok(t);
                }
                if let Some(frac) = s.strip_prefix("ring:") {
                    let bad = || format!("token {s:?}: expected ring:N/D with 0 <= N < D");
                    let (n, d) = frac.split_once('/').ok_or_else(bad)?;
                    let (n, d): (u128, u128) = (
                        n.trim().parse().map_err(|_| bad())?,
                        d.trim().parse().map_err(|_| bad())?,
                    );
                    if d == 0 || n >= d {
                        return Err(bad());
                    }
                    return Ok(((n << 64) / d) as u64);
                }
                let rest = s.strip_prefix("key:").ok_or_else(|| {
                    format!(
                        "token {s:?} must be an integer, \"ring:N/D\", or \"key:NAME+N\" / \"key:NAME-N\""
                    )
                })?;
                let (name, sign, offset) = match rest.rfind(['+', '-']) {
                    Some(i) => {
                        let n: u64 = rest[i + 1..]
                            .parse()
                            .map_err(|_| format!("token {s:?}: offset is not an integer"))?;
                        (&rest[..i], &rest[i..i + 1], n)
                    }
                    None => (rest, "+", 0),
                };
                let base = token_for(name.as_bytes());
                Ok(if sign == "+" { base.wrapping_add(offset) } else { base.wrapping_sub(offset) })
            }
        }
    }
}

/// Node settings a scenario may change; unset fields keep [`NodeConfig`]'s defaults.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeOverrides {
    /// Write timeout; must be positive (zero fails every write needing a remote replica).
    #[serde(default, with = "humantime_serde")]
    pub write_timeout: Option<Duration>,
    /// Read timeout; must be positive (zero fails every read needing a remote replica).
    #[serde(default, with = "humantime_serde")]
    pub read_timeout: Option<Duration>,
    /// Heartbeat period; must be positive (zero re-arms the timer at one instant forever).
    #[serde(default, with = "humantime_serde")]
    pub heartbeat_interval: Option<Duration>,
    /// Phi threshold.
    pub phi_threshold: Option<f64>,
    /// Whether hints are stored at all.
    pub hinted_handoff: Option<bool>,
    /// Maximum hint window; zero is allowed (no hints for a convicted target).
    #[serde(default, with = "humantime_serde")]
    pub max_hint_window: Option<Duration>,
    /// Hint replay period; must be positive (zero re-arms the timer at one instant forever).
    #[serde(default, with = "humantime_serde")]
    pub hint_replay_interval: Option<Duration>,
    /// Tombstone grace period; zero is allowed (hints and tombstones expire at once).
    #[serde(default, with = "humantime_serde")]
    pub gc_grace: Option<Duration>,
    /// Cassandra's RING_DELAY (default 30 s); zero is allowed (no wait, to show the race).
    #[serde(default, with = "humantime_serde")]
    pub ring_delay: Option<Duration>,
    /// Outbound streaming throughput in MiB/s (default 24, Cassandra's); 0 is unthrottled.
    pub stream_mib_per_sec: Option<f64>,
}

/// What happens after the timeline: heal, let hints drain, read everything at ALL (read repair),
/// then record the final state.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FinalPhase {
    /// Heal partitions and stop message loss.
    pub heal: bool,
    /// Restart crashed nodes.
    pub restart: bool,
    /// Time given to hints and in-flight requests.
    #[serde(with = "humantime_serde")]
    pub settle: Duration,
    /// Read every key at ALL afterwards so read repair converges replicas.
    pub repair_reads: bool,
}

impl Default for FinalPhase {
    fn default() -> Self {
        FinalPhase {
            heal: true,
            restart: true,
            settle: Duration::from_secs(30),
            repair_reads: true,
        }
    }
}

/// A client operation in the timeline.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpSpec {
    /// Coordinator.
    pub node: Spanned<String>,
    /// Key.
    pub key: String,
    /// Value (writes only).
    #[serde(default)]
    pub value: Option<String>,
    /// Consistency level.
    pub cl: Spanned<String>,
    /// Send the context of the last scripted read of this key (read-modify-write).
    #[serde(default)]
    pub with_context: bool,
}

/// One timeline entry: a time and exactly one action.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSpec {
    /// When.
    #[serde(with = "humantime_serde")]
    pub at: Duration,
    /// A name to refer to this operation in reports.
    #[serde(default)]
    pub label: Option<String>,
    /// Kill a node (storage kept).
    #[serde(default)]
    pub crash: Option<Spanned<String>>,
    /// Restart a crashed node.
    #[serde(default)]
    pub restart: Option<Spanned<String>>,
    /// Partition the network into these groups (unlisted nodes form another group).
    #[serde(default)]
    pub partition: Option<Vec<Vec<Spanned<String>>>>,
    /// Freeze a node's process (GC or VM pause): `{ node = "B", for = "30s" }`.
    #[serde(default)]
    pub pause: Option<PauseSpec>,
    /// Heal partitions.
    #[serde(default)]
    pub heal: Option<bool>,
    /// Set the message loss probability.
    #[serde(default)]
    pub loss: Option<f64>,
    /// A write.
    #[serde(default)]
    pub write: Option<OpSpec>,
    /// A delete.
    #[serde(default)]
    pub delete: Option<OpSpec>,
    /// A read.
    #[serde(default)]
    pub read: Option<OpSpec>,
    /// Start a new node and join it: `{ name = "D" }`, optionally with `tokens = [...]`.
    #[serde(default)]
    pub add_node: Option<AddNodeSpec>,
    /// Resume an interrupted or failed join: `{ node = "D" }`, optionally with
    /// `allow_inconsistent_source = true`.
    #[serde(default)]
    pub resume_join: Option<ResumeSpec>,
    /// Decommission a node.
    #[serde(default)]
    pub decommission: Option<Spanned<String>>,
    /// Abort a node's join (before reads move to it) or decommission (before MID_LEAVE): its
    /// placement is reversed. Idempotent.
    #[serde(default)]
    pub abort: Option<Spanned<String>>,
    /// Remove ghost data from a node (`"all"`: every NORMAL node).
    #[serde(default)]
    pub cleanup: Option<Spanned<String>>,
    /// Merkle repair from a node (`"all"`: every NORMAL node).
    #[serde(default)]
    pub repair: Option<Spanned<String>>,
    /// Slow gossip on a node: membership changes reach it late, `{ node = "C", for = "60s" }`.
    #[serde(default)]
    pub slow_gossip: Option<PauseSpec>,
    /// Check the cluster at this moment (with `expect_cluster`); changes nothing.
    #[serde(default)]
    pub inspect: Option<bool>,
    /// Expectations about this operation.
    #[serde(default)]
    pub expect: Option<OpExpect>,
    /// Expectations about the cluster at this moment (for `inspect` and operator events).
    #[serde(default)]
    pub expect_cluster: Option<ClusterExpect>,
}

/// A node to add.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddNodeSpec {
    /// Its name (new).
    pub name: Spanned<String>,
    /// Tokens to take; allocated by the cluster's allocator when absent.
    #[serde(default)]
    pub tokens: Option<Vec<TokenSpec>>,
}

/// A join to resume.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResumeSpec {
    /// The joining node.
    pub node: Spanned<String>,
    /// Stream from another replica when the one losing a range is down.
    #[serde(default)]
    pub allow_inconsistent_source: bool,
}

/// Expectations about the cluster at one moment.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterExpect {
    /// Status per node as `status` prints it: UN, UJ, UL, DN, DJ, LEFT.
    pub status: Option<BTreeMap<String, String>>,
    /// Effective ownership per node: `"75%"` (±0.5 points) or `"?"` for a joining node.
    pub ownership: Option<BTreeMap<String, String>>,
    /// The operator command was refused with an error containing this text.
    pub error_contains: Option<String>,
    /// Keys held by nodes that no longer replicate them (ghost data), all nodes.
    pub ghost_keys: Option<Count>,
}

/// A process pause.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PauseSpec {
    /// The node.
    pub node: Spanned<String>,
    /// How long.
    #[serde(rename = "for", with = "humantime_serde")]
    pub duration: Duration,
}

/// Expectations about one scripted operation.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpExpect {
    /// Whether it succeeds.
    pub ok: Option<bool>,
    /// The error: "unavailable" or "timeout".
    pub error: Option<String>,
    /// Exactly these replicas had acknowledged when the client was answered.
    pub acks: Option<Vec<String>>,
    /// Exactly these targets got a hint stored by then.
    pub hinted: Option<Vec<String>>,
    /// A read returns exactly these values (siblings in order).
    pub values: Option<Vec<String>>,
    /// Exactly these replicas answered a read before the client was answered.
    pub replied: Option<Vec<String>>,
}

/// A count in an expectation: exact, or a comparison.
///
/// Deserializing checks a comparison's syntax, so a malformed count is a parse error with its
/// line and column rather than a failed expectation at the end of the run.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum Count {
    /// Exactly this many.
    Exact(u64),
    /// `">=1"`, `">0"`, `"<=3"`, `"<2"`, `"==0"`.
    Compare(String),
}

/// Splits a comparison count into its operator and bound.
fn parse_comparison(s: &str) -> Result<(&'static str, u64), String> {
    let s = s.trim();
    let (op, rest) = ["<=", ">=", "==", "<", ">"]
        .iter()
        .find_map(|op| s.strip_prefix(op).map(|r| (*op, r)))
        .ok_or_else(|| {
            format!(
                "count {s:?} must be an integer or a comparison starting with <, <=, >, >=, == (e.g. \">=1\")"
            )
        })?;
    let n: u64 = rest.trim().parse().map_err(|_| {
        format!("count {s:?}: {:?} is not a non-negative integer (e.g. \">=1\")", rest.trim())
    })?;
    Ok((op, n))
}

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct CountVisitor;
        impl serde::de::Visitor<'_> for CountVisitor {
            type Value = Count;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a count: an integer such as 0, or a comparison such as \">=1\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Count, E> {
                Ok(Count::Exact(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Count, E> {
                u64::try_from(v).map(Count::Exact).map_err(|_| {
                    E::custom(format!("count {v} is negative: use 0 or more, or \"==0\""))
                })
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Count, E> {
                parse_comparison(v).map_err(E::custom)?;
                Ok(Count::Compare(v.to_string()))
            }
        }
        d.deserialize_any(CountVisitor)
    }
}

impl Count {
    /// Whether `actual` satisfies this count.
    pub fn matches(&self, actual: u64) -> Result<bool, String> {
        match self {
            Count::Exact(n) => Ok(actual == *n),
            Count::Compare(s) => {
                let (op, n) = parse_comparison(s)?;
                Ok(match op {
                    "<=" => actual <= n,
                    ">=" => actual >= n,
                    "==" => actual == n,
                    "<" => actual < n,
                    _ => actual > n,
                })
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Count::Exact(n) => n.to_string(),
            Count::Compare(s) => s.clone(),
        }
    }
}

/// Expectations about the whole run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunExpect {
    /// Stale reads (R + W > RF reads that missed an acknowledged write).
    pub stale_reads: Option<Count>,
    /// Acknowledged writes missing from the final state.
    pub lost_writes: Option<Count>,
    /// Concurrent updates dropped by last-write-wins.
    pub lost_updates: Option<Count>,
    /// Requests refused with Unavailable.
    pub unavailable: Option<Count>,
    /// Requests that timed out.
    pub timeouts: Option<Count>,
    /// Read repairs sent, cluster-wide.
    pub read_repairs: Option<Count>,
    /// Hints stored, per coordinator name.
    pub hints_stored: Option<BTreeMap<String, Count>>,
    /// Hints stored in total.
    pub hints_total: Option<Count>,
    /// Hints delivered in total.
    pub hints_delivered: Option<Count>,
    /// Effective ownership per node, e.g. `"75%"` (±0.5 percentage points) or `"?"`.
    pub ownership: Option<BTreeMap<String, String>>,
    /// Whether every key's running replicas hold identical versions at the end.
    pub converged: Option<bool>,
    /// Status per node at the end (UN, UJ, UL, DN, LEFT…).
    pub status: Option<BTreeMap<String, String>>,
    /// Joins and decommissions that failed.
    pub movement_failures: Option<Count>,
    /// Some failed movement's reason contains this text.
    pub failure_contains: Option<String>,
    /// Keys held by nodes that no longer replicate them (ghost data) at the end.
    pub ghost_keys: Option<Count>,
    /// Joins that completed.
    pub joins_completed: Option<Count>,
}

/// One checked expectation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectationResult {
    /// What was checked.
    pub what: String,
    /// Expected.
    pub expected: String,
    /// What happened.
    pub actual: String,
    /// Whether it held.
    pub passed: bool,
}

/// What one scripted operation did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpOutcome {
    /// Its label, or a description.
    pub label: String,
    /// When it was issued.
    pub at: Instant,
    /// "ok", "unavailable", "timeout", "coordinator crashed" or "pending".
    pub outcome: String,
    /// Replicas that acknowledged (writes) or answered (reads) when the client was answered.
    pub replicas: Vec<String>,
    /// Targets hinted (writes).
    pub hinted: Vec<String>,
    /// Values returned (reads).
    pub values: Vec<String>,
    /// The error's own words, if any.
    pub detail: Option<String>,
}

/// Counts of operations.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpCounts {
    /// Reads invoked (final reads excluded).
    pub reads: u64,
    /// Writes and deletes invoked.
    pub writes: u64,
    /// Completed `ok`.
    pub ok: u64,
    /// Completed `fail`.
    pub fail: u64,
    /// Completed `info`.
    pub info: u64,
}

/// The result of running a scenario.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScenarioReport {
    /// Scenario name.
    pub name: String,
    /// Seed used.
    pub seed: u64,
    /// Virtual time at the end.
    pub end_time: Instant,
    /// Operation counts.
    pub ops: OpCounts,
    /// Anomaly counts by kind.
    pub anomalies: BTreeMap<AnomalyKind, usize>,
    /// The checker's full report.
    pub check: CheckReport,
    /// Hints stored per coordinator.
    pub hints_stored: BTreeMap<String, u64>,
    /// Hints delivered in total.
    pub hints_delivered: u64,
    /// Hints still stored at the end, per holder.
    pub hints_remaining: BTreeMap<String, u64>,
    /// Read repairs sent in total.
    pub read_repairs: u64,
    /// Messages sent / delivered / dropped.
    pub messages: crate::sim::SimStats,
    /// Effective ownership (0..=1) per node.
    pub ownership: BTreeMap<String, f64>,
    /// Keys whose running replicas disagree at the end.
    pub divergent_keys: Vec<String>,
    /// Status per node at the end, as `status` prints it (UN, UJ, DN, LEFT…).
    pub status: BTreeMap<String, String>,
    /// Seconds from each join's start to NORMAL.
    pub time_to_normal: BTreeMap<String, f64>,
    /// Joins and decommissions that failed, with the reason.
    pub movement_failures: Vec<String>,
    /// Keys held by nodes that no longer replicate them, at the end.
    pub ghost_keys: u64,
    /// Bytes streamed (joins, decommissions, repairs).
    pub bytes_streamed: u64,
    /// Acknowledgements demanded beyond the level because of pending replicas.
    pub extra_acks: u64,
    /// Scripted operations and what they did.
    pub operations: Vec<OpOutcome>,
    /// Expectation results.
    pub expectations: Vec<ExpectationResult>,
    /// Whether every expectation held.
    pub passed: bool,
    /// Trace hash, hex.
    pub trace_hash: String,
    /// Trace events recorded.
    pub trace_events: u64,
    /// The command that replays this run.
    pub replay: String,
}

/// Parses a scenario from TOML text.
pub fn parse(text: &str) -> Result<Scenario, ScenarioError> {
    toml::from_str(text).map_err(|e| ScenarioError::Parse(e.to_string()))
}

/// One step of a path into the scenario's TOML document.
#[derive(Clone, Copy, Debug)]
enum Seg<'s> {
    /// A table key.
    K(&'s str),
    /// An array element.
    I(usize),
}
use Seg::{I, K};

/// Where keys and values are in a scenario's text. The typed [`Scenario`] keeps spans only for
/// node names, so validation looks the rest up here by path (`events[3].expect`) to name the
/// line and column of what it refuses.
struct Spans<'a> {
    text: &'a str,
    /// `None` when `text` is not valid TOML (then errors carry no position).
    root: Option<Spanned<toml::de::DeTable<'a>>>,
}

type Span = std::ops::Range<usize>;

impl<'a> Spans<'a> {
    fn new(text: &'a str) -> Spans<'a> {
        Spans { text, root: toml::de::DeTable::parse(text).ok() }
    }

    /// The key's span (for the last segment when it is a key) and the value at `path`.
    fn find(&self, path: &[Seg]) -> Option<(Option<Span>, &Spanned<toml::de::DeValue<'a>>)> {
        let root = self.root.as_ref()?;
        let (first, rest) = path.split_first()?;
        let K(k) = first else { return None };
        let (mut key, mut value) =
            root.get_ref().iter().find(|(n, _)| n.get_ref() == k).map(|(n, v)| (n.span(), v))?;
        for seg in rest {
            match (seg, value.get_ref()) {
                (K(k), toml::de::DeValue::Table(t)) => {
                    let (n, v) = t.iter().find(|(n, _)| n.get_ref() == k)?;
                    (key, value) = (n.span(), v);
                }
                (I(i), toml::de::DeValue::Array(a)) => {
                    value = a.get(*i)?;
                    key = value.span();
                }
                _ => return None,
            }
        }
        Some((Some(key), value))
    }

    /// The span of the value at `path`.
    fn value(&self, path: &[Seg]) -> Option<Span> {
        self.find(path).map(|(_, v)| v.span())
    }

    /// The span of the key at `path` (of the element, for an array index).
    fn key(&self, path: &[Seg]) -> Option<Span> {
        self.find(path).and_then(|(k, _)| k)
    }

    /// An error at `span`, or without a position when the span is unknown.
    fn error(&self, span: Option<Span>, message: String) -> ScenarioError {
        match span {
            Some(span) => {
                let (line, column) = line_column(self.text, span.start);
                ScenarioError::Invalid { line, column, message }
            }
            None => ScenarioError::Semantic(message),
        }
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (before.matches('\n').count() + 1, before[line_start..].chars().count() + 1)
}

/// How `ringside status` can print a node, as an expectation may name it.
fn valid_status(s: &str) -> bool {
    let s = s.trim().to_ascii_uppercase();
    s == "LEFT"
        || (s.len() == 2 && matches!(&s[..1], "U" | "D") && matches!(&s[1..], "N" | "J" | "L"))
}

/// An ownership expectation: `"75%"`, `"75"` or `"?"` (a joining node).
fn valid_ownership(s: &str) -> bool {
    let s = s.trim();
    s == "?"
        || s.trim_end_matches('%')
            .trim()
            .parse::<f64>()
            .is_ok_and(|f| f.is_finite() && (0.0..=100.0).contains(&f))
}

/// What [`OpOutcome::outcome`] can be besides "ok", as `expect.error` may name it.
const OP_ERRORS: [&str; 5] =
    ["unavailable", "timeout", "coordinator down", "coordinator crashed", "pending"];

/// Checks everything in a scenario that the types alone do not, so that nothing in the file is
/// silently ignored and nothing runs that could not work; errors point into `text`.
fn validate(scenario: &Scenario, sp: &Spans) -> Result<(), ScenarioError> {
    let names: Vec<String> = scenario.cluster.nodes.iter().map(|s| s.get_ref().clone()).collect();
    let at_span = |s: &Spanned<String>, message: String| sp.error(Some(s.span()), message);
    if names.is_empty() {
        return Err(sp.error(
            sp.value(&[K("cluster"), K("nodes")]),
            "cluster.nodes is empty: list at least one node".into(),
        ));
    }
    for (i, n) in scenario.cluster.nodes.iter().enumerate() {
        if names[..i].contains(n.get_ref()) {
            return Err(at_span(
                n,
                format!(
                    "node {:?} is listed twice in cluster.nodes: give each node one name",
                    n.get_ref()
                ),
            ));
        }
    }
    let rf = scenario.cluster.rf;
    let rf_span = || sp.value(&[K("cluster"), K("rf")]);
    if rf == 0 {
        return Err(sp.error(rf_span(), "cluster.rf must be at least 1".into()));
    }
    // More replicas than nodes would make a node count twice: ALL would succeed with fewer acks
    // than RF and ownership would sum past 100% per replica. Nodes added later do not count:
    // the initial ring must hold RF replicas from the start.
    if rf > names.len() {
        return Err(sp.error(
            rf_span(),
            format!(
                "cluster.rf {rf} is larger than the {} nodes of cluster.nodes: lower rf or list more nodes",
                names.len()
            ),
        ));
    }
    if scenario.cluster.num_tokens == 0 {
        return Err(sp.error(
            sp.value(&[K("cluster"), K("num_tokens")]),
            "cluster.num_tokens must be at least 1 (vnodes per node)".into(),
        ));
    }
    for (map, what) in [("tokens", "explicit tokens"), ("racks", "a rack")] {
        let keys: Vec<&String> = if map == "tokens" {
            scenario.cluster.tokens.keys().collect()
        } else {
            scenario.cluster.racks.keys().collect()
        };
        for name in keys {
            if !names.contains(name) {
                return Err(sp.error(
                    sp.key(&[K("cluster"), K(map), K(name)]),
                    format!(
                        "cluster.{map} gives {what} to unknown node {name:?}: the cluster's nodes are {}",
                        names.join(", ")
                    ),
                ));
            }
        }
    }
    for (name, specs) in &scenario.cluster.tokens {
        let path = [K("cluster"), K("tokens"), K(name)];
        if specs.is_empty() {
            return Err(sp.error(
                sp.value(&path),
                format!("cluster.tokens gives node {name:?} no tokens: list at least one, or leave the node out to allocate its tokens"),
            ));
        }
        for (j, t) in specs.iter().enumerate() {
            t.resolve().map_err(|m| sp.error(sp.value(&[path[0], path[1], path[2], I(j)]), m))?;
        }
    }

    // Nodes added by the timeline are valid names for every event (a too-early reference fails
    // at run time with a clear error).
    let mut all_names = names.clone();
    for e in &scenario.events {
        if let Some(a) = &e.add_node {
            if all_names.contains(a.name.get_ref()) {
                return Err(at_span(
                    &a.name,
                    format!(
                        "add_node: a node named {:?} already exists: pick a new name",
                        a.name.get_ref()
                    ),
                ));
            }
            all_names.push(a.name.get_ref().clone());
        }
    }
    let unknown =
        |n: &str| format!("unknown node {n:?}: the cluster's nodes are {}", all_names.join(", "));
    let check_name = |s: &Spanned<String>| -> Result<(), ScenarioError> {
        if all_names.contains(s.get_ref()) { Ok(()) } else { Err(at_span(s, unknown(s.get_ref()))) }
    };
    // Names in expectations are plain strings: their spans come from the text.
    let check_names_at = |path: &[Seg], names: &[String]| -> Result<(), ScenarioError> {
        for (j, n) in names.iter().enumerate() {
            if !all_names.contains(n) {
                let mut p = path.to_vec();
                p.push(I(j));
                return Err(sp.error(sp.value(&p), unknown(n)));
            }
        }
        Ok(())
    };
    let check_node_map = |path: &[Seg], keys: Vec<&String>| -> Result<(), ScenarioError> {
        for n in keys {
            if !all_names.contains(n) {
                let mut p = path.to_vec();
                p.push(K(n));
                return Err(sp.error(sp.key(&p).or_else(|| sp.key(path)), unknown(n)));
            }
        }
        Ok(())
    };
    let check_status_map = |path: &[Seg],
                            m: &Option<BTreeMap<String, String>>|
     -> Result<(), ScenarioError> {
        check_node_map(path, m.iter().flat_map(|m| m.keys()).collect())?;
        for (n, want) in m.iter().flatten() {
            if !valid_status(want) {
                let mut p = path.to_vec();
                p.push(K(n));
                return Err(sp.error(
                        sp.value(&p),
                        format!("status {want:?} of {n} is not one `status` prints: use UN, UJ, UL, DN, DJ, DL or LEFT"),
                    ));
            }
        }
        Ok(())
    };
    let check_ownership_map = |path: &[Seg],
                               m: &Option<BTreeMap<String, String>>|
     -> Result<(), ScenarioError> {
        check_node_map(path, m.iter().flat_map(|m| m.keys()).collect())?;
        for (n, want) in m.iter().flatten() {
            if !valid_ownership(want) {
                let mut p = path.to_vec();
                p.push(K(n));
                return Err(sp.error(
                        sp.value(&p),
                        format!("ownership {want:?} of {n} must be a percentage such as \"75%\", or \"?\" for a joining node"),
                    ));
            }
        }
        Ok(())
    };

    let end = scenario.duration;
    for (i, e) in scenario.events.iter().enumerate() {
        let ev = |rest: &[Seg<'static>]| {
            let mut p = vec![K("events"), I(i)];
            p.extend_from_slice(rest);
            p
        };
        let is_op = e.write.is_some() || e.delete.is_some() || e.read.is_some();
        let actions = [
            e.crash.is_some(),
            e.restart.is_some(),
            e.partition.is_some(),
            e.pause.is_some(),
            e.heal.is_some(),
            e.loss.is_some(),
            e.write.is_some(),
            e.delete.is_some(),
            e.read.is_some(),
            e.add_node.is_some(),
            e.resume_join.is_some(),
            e.decommission.is_some(),
            e.abort.is_some(),
            e.cleanup.is_some(),
            e.repair.is_some(),
            e.slow_gossip.is_some(),
            e.inspect.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if actions != 1 {
            return Err(sp.error(
                sp.value(&ev(&[])),
                format!(
                    "events[{i}] (at {:?}) must have exactly one action (crash, restart, pause, partition, heal, loss, write, delete, read, add_node, resume_join, decommission, abort, cleanup, repair, slow_gossip or inspect), found {actions}: split it into one event per action",
                    e.at
                ),
            ));
        }
        // `run` stops applying events at `duration`: a later one would never happen.
        if e.at > end {
            return Err(sp.error(
                sp.value(&ev(&[K("at")])),
                format!(
                    "events[{i}] at {:?} is after the scenario's duration ({end:?}), so it would never run: move it earlier or raise duration",
                    e.at
                ),
            ));
        }
        // The flags are actions by presence: `heal = false` used to heal.
        if e.heal == Some(false) {
            return Err(sp.error(
                sp.value(&ev(&[K("heal")])),
                "heal = false does nothing: write heal = true, or remove the event".into(),
            ));
        }
        if e.inspect == Some(false) {
            return Err(sp.error(
                sp.value(&ev(&[K("inspect")])),
                "inspect = false does nothing: write inspect = true, or remove the event".into(),
            ));
        }
        for s in e
            .crash
            .iter()
            .chain(e.restart.iter())
            .chain(e.pause.iter().map(|p| &p.node))
            .chain(e.slow_gossip.iter().map(|p| &p.node))
            .chain(e.resume_join.iter().map(|r| &r.node))
            .chain(e.decommission.iter())
            .chain(e.abort.iter())
            .chain(e.cleanup.iter().filter(|s| s.get_ref() != "all"))
            .chain(e.repair.iter().filter(|s| s.get_ref() != "all"))
        {
            check_name(s)?;
        }
        for (field, p) in [("pause", &e.pause), ("slow_gossip", &e.slow_gossip)] {
            if let Some(p) = p
                && p.duration.is_zero()
            {
                return Err(sp.error(
                    sp.value(&ev(&[K(field), K("for")])),
                    format!("{field} for = \"0s\" is zero and would do nothing: give a positive length such as \"10s\""),
                ));
            }
        }
        if let Some(a) = &e.add_node {
            for (j, t) in a.tokens.iter().flatten().enumerate() {
                t.resolve()
                    .map_err(|m| sp.error(sp.value(&ev(&[K("add_node"), K("tokens"), I(j)])), m))?;
            }
        }
        if let Some(groups) = &e.partition {
            if groups.is_empty() {
                return Err(sp.error(
                    sp.value(&ev(&[K("partition")])),
                    "partition has no groups: list groups such as [[\"A\"], [\"B\", \"C\"]], or use heal = true".into(),
                ));
            }
            let mut seen: Vec<&str> = Vec::new();
            for (j, g) in groups.iter().enumerate() {
                if g.is_empty() {
                    return Err(sp.error(
                        sp.value(&ev(&[K("partition"), I(j)])),
                        "partition has an empty group: remove it (unlisted nodes already form a group of their own)".into(),
                    ));
                }
                for s in g {
                    check_name(s)?;
                    if seen.contains(&s.get_ref().as_str()) {
                        return Err(at_span(
                            s,
                            format!(
                                "partition names node {:?} twice: a node is in one group only",
                                s.get_ref()
                            ),
                        ));
                    }
                    seen.push(s.get_ref());
                }
            }
        }
        for (kind, op) in [("write", &e.write), ("delete", &e.delete), ("read", &e.read)] {
            let Some(op) = op else { continue };
            check_name(&op.node)?;
            let cl = op
                .cl
                .get_ref()
                .parse::<ConsistencyLevel>()
                .map_err(|err| at_span(&op.cl, err.to_string()))?;
            if kind == "read" && cl == ConsistencyLevel::Any {
                return Err(at_span(
                    &op.cl,
                    "ANY is a write-only level (a hint cannot answer a read): read at ONE or higher".into(),
                ));
            }
            if op.key.is_empty() {
                return Err(sp.error(
                    sp.value(&ev(&[K(kind), K("key")])),
                    format!("events[{i}]: key is empty: give the {kind} a key"),
                ));
            }
            match (kind, &op.value) {
                ("write", None) => {
                    return Err(sp.error(
                        sp.value(&ev(&[K(kind)])),
                        format!("events[{i}]: a write needs a value: add value = \"...\" (or use delete)"),
                    ));
                }
                ("read" | "delete", Some(_)) => {
                    return Err(sp.error(
                        sp.key(&ev(&[K(kind), K("value")])),
                        format!("a {kind} takes no value: remove it (only a write stores one)"),
                    ));
                }
                _ => {}
            }
            if kind == "read" && op.with_context {
                return Err(sp.error(
                    sp.key(&ev(&[K(kind), K("with_context")])),
                    "with_context applies to writes and deletes (they send the last read's context): remove it from the read".into(),
                ));
            }
        }
        if let Some(p) = e.loss
            && !(0.0..=1.0).contains(&p)
        {
            return Err(sp.error(
                sp.value(&ev(&[K("loss")])),
                format!("events[{i}]: loss {p} must be between 0 and 1"),
            ));
        }
        // Expectations are checked only on the kind of event they describe; anywhere else they
        // were ignored and the run passed.
        if let Some(x) = &e.expect {
            if !is_op {
                return Err(sp.error(
                    sp.key(&ev(&[K("expect")])),
                    "`expect` applies to write, delete and read events: on this event it would never be checked, use expect_cluster instead".into(),
                ));
            }
            let kind = if e.read.is_some() {
                "read"
            } else if e.write.is_some() {
                "write"
            } else {
                "delete"
            };
            let wrong: &[(&str, bool, &str)] = &[
                ("acks", x.acks.is_some() && kind == "read", "a read: use expect.replied"),
                ("hinted", x.hinted.is_some() && kind == "read", "a read: reads store no hints"),
                (
                    "values",
                    x.values.is_some() && kind != "read",
                    "a write or delete: only a read returns values",
                ),
                (
                    "replied",
                    x.replied.is_some() && kind != "read",
                    "a write or delete: use expect.acks",
                ),
            ];
            if let Some((field, _, why)) = wrong.iter().find(|w| w.1) {
                return Err(sp.error(
                    sp.key(&ev(&[K("expect"), K(field)])),
                    format!("expect.{field} is never true of {why}"),
                ));
            }
            if let Some(err) = &x.error {
                if x.ok == Some(true) {
                    return Err(sp.error(
                        sp.key(&ev(&[K("expect"), K("error")])),
                        "expect.error contradicts ok = true: remove one of them".into(),
                    ));
                }
                if !OP_ERRORS.contains(&err.to_lowercase().as_str()) {
                    return Err(sp.error(
                        sp.value(&ev(&[K("expect"), K("error")])),
                        format!(
                            "expect.error {err:?} is not an outcome: use one of {}",
                            OP_ERRORS.join(", ")
                        ),
                    ));
                }
            }
            for (field, list) in [("acks", &x.acks), ("hinted", &x.hinted), ("replied", &x.replied)]
            {
                if let Some(list) = list {
                    check_names_at(&ev(&[K("expect"), K(field)]), list)?;
                }
            }
        }
        if let Some(x) = &e.expect_cluster {
            if is_op {
                let kind = if e.read.is_some() {
                    "read"
                } else if e.write.is_some() {
                    "write"
                } else {
                    "delete"
                };
                return Err(sp.error(
                    sp.key(&ev(&[K("expect_cluster")])),
                    format!("`expect_cluster` is not checked on {kind} events: put it on an inspect event at the same time (at = \"{:?}\", inspect = true)", e.at),
                ));
            }
            check_status_map(&ev(&[K("expect_cluster"), K("status")]), &x.status)?;
            check_ownership_map(&ev(&[K("expect_cluster"), K("ownership")]), &x.ownership)?;
        }
    }

    let x = &scenario.expect;
    check_node_map(
        &[K("expect"), K("hints_stored")],
        x.hints_stored.iter().flat_map(|m| m.keys()).collect(),
    )?;
    check_status_map(&[K("expect"), K("status")], &x.status)?;
    check_ownership_map(&[K("expect"), K("ownership")], &x.ownership)?;

    let probabilities = [
        (
            "workload.read_fraction",
            [K("workload"), K("read_fraction")].as_slice(),
            scenario.workload.read_fraction,
        ),
        (
            "workload.delete_fraction",
            &[K("workload"), K("delete_fraction")],
            scenario.workload.delete_fraction,
        ),
        ("network.loss", &[K("network"), K("loss")], scenario.network.loss),
        (
            "network.latency.tail_probability",
            &[K("network"), K("latency"), K("tail_probability")],
            scenario.network.latency.tail_probability,
        ),
    ];
    for (name, path, p) in probabilities {
        if !(0.0..=1.0).contains(&p) {
            return Err(
                sp.error(sp.value(path), format!("{name} must be between 0 and 1, found {p}"))
            );
        }
    }
    let w = &scenario.workload;
    if w.read_fraction + w.delete_fraction > 1.0 {
        return Err(sp.error(
            sp.value(&[K("workload"), K("delete_fraction")]),
            "workload.read_fraction + workload.delete_fraction must not exceed 1".into(),
        ));
    }
    if w.read_cl == ConsistencyLevel::Any {
        return Err(sp.error(
            sp.value(&[K("workload"), K("read_cl")]),
            "workload.read_cl: ANY is a write-only level (a hint cannot answer a read): read at ONE or higher".into(),
        ));
    }
    if w.clients > 0 && w.keys == 0 {
        return Err(sp.error(
            sp.value(&[K("workload"), K("keys")]),
            "workload.keys must be at least 1 when there are clients (or set clients = 0)".into(),
        ));
    }

    // Zero durations: a zero period re-arms its timer at the same instant forever (the run never
    // advances and memory grows), and a zero timeout fails every request that needs a remote
    // replica. max_hint_window, gc_grace and ring_delay may be zero: they are waits or windows,
    // and zero is a meaningful setting (no hints past conviction, immediate expiry, no wait).
    let o = &scenario.node;
    let zero_refused = [
        (
            "heartbeat_interval",
            o.heartbeat_interval,
            "makes every node re-arm its heartbeat timer at the same instant forever",
            "1s",
        ),
        (
            "hint_replay_interval",
            o.hint_replay_interval,
            "makes every node re-arm its hint replay timer at the same instant forever",
            "10s",
        ),
        ("write_timeout", o.write_timeout, "fails every write that needs a remote replica", "2s"),
        ("read_timeout", o.read_timeout, "fails every read that needs a remote replica", "5s"),
    ];
    for (key, value, why, example) in zero_refused {
        if value.is_some_and(|d| d.is_zero()) {
            return Err(sp.error(
                sp.value(&[K("node"), K(key)]),
                format!(
                    "node.{key} is zero, which {why}: use a positive duration such as \"{example}\""
                ),
            ));
        }
    }
    if let Some(phi) = o.phi_threshold
        && !(phi.is_finite() && phi > 0.0)
    {
        return Err(sp.error(
            sp.value(&[K("node"), K("phi_threshold")]),
            format!(
                "node.phi_threshold {phi} must be a positive number (Cassandra's default is 8)"
            ),
        ));
    }
    if let Some(m) = o.stream_mib_per_sec
        && !(m.is_finite() && m >= 0.0)
    {
        return Err(sp.error(
            sp.value(&[K("node"), K("stream_mib_per_sec")]),
            format!(
                "node.stream_mib_per_sec {m} must be 0 (unthrottled) or a positive number of MiB/s"
            ),
        ));
    }
    Ok(())
}

/// A scenario checked against its own text, ready to run.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The scenario.
    pub scenario: Scenario,
    /// Node names.
    pub names: Vec<String>,
    /// The initial ring.
    pub ring: Ring,
    /// Node configuration.
    pub node: NodeConfig,
}

/// Validates a parsed scenario (`text` is its source, for line numbers).
pub fn prepare(scenario: Scenario, text: &str) -> Result<Prepared, ScenarioError> {
    validate(&scenario, &Spans::new(text))?;
    let names: Vec<String> = scenario.cluster.nodes.iter().map(|s| s.get_ref().clone()).collect();
    let ids: Vec<NodeId> = (0..names.len() as u32).map(NodeId).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(scenario.seed ^ 0x5eed_0f7a_110c);
    let allocated = build_ring(
        &ids,
        scenario.cluster.num_tokens.max(1),
        scenario.cluster.rf,
        scenario.cluster.allocation,
        &mut rng,
    )
    .map_err(|e| ScenarioError::Semantic(format!("cannot build the ring: {e}")))?;
    let ring = if scenario.cluster.tokens.is_empty() {
        allocated
    } else {
        let mut assignments = Vec::new();
        for (i, name) in names.iter().enumerate() {
            match scenario.cluster.tokens.get(name) {
                Some(specs) => {
                    for s in specs {
                        let t = s.resolve().map_err(ScenarioError::Semantic)?;
                        assignments.push((t, NodeId(i as u32)));
                    }
                }
                None => {
                    for t in allocated.tokens_of(NodeId(i as u32)) {
                        assignments.push((t, NodeId(i as u32)));
                    }
                }
            }
        }
        build_placement(assignments, &scenario, &names)?
    };
    let ring = if scenario.cluster.racks.is_empty() || !scenario.cluster.tokens.is_empty() {
        ring
    } else {
        let assignments: Vec<(Token, NodeId)> =
            ring.tokens().iter().copied().zip(ring.owners().iter().copied()).collect();
        build_placement(assignments, &scenario, &names)?
    };

    let d = NodeConfig::default();
    let o = &scenario.node;
    let node = NodeConfig {
        conflict_mode: scenario.cluster.conflict,
        write_timeout: o.write_timeout.unwrap_or(d.write_timeout),
        read_timeout: o.read_timeout.unwrap_or(d.read_timeout),
        heartbeat_interval: o.heartbeat_interval.or(d.heartbeat_interval),
        phi_threshold: o.phi_threshold.unwrap_or(d.phi_threshold),
        hinted_handoff: o.hinted_handoff.unwrap_or(d.hinted_handoff),
        max_hint_window: o.max_hint_window.unwrap_or(d.max_hint_window),
        hint_replay_interval: o.hint_replay_interval.unwrap_or(d.hint_replay_interval),
        gc_grace: o.gc_grace.unwrap_or(d.gc_grace),
        ring_delay: o.ring_delay.unwrap_or(d.ring_delay),
        stream_throughput: match o.stream_mib_per_sec {
            None => d.stream_throughput,
            Some(m) if m <= 0.0 => None,
            Some(m) => Some((m * 1024.0 * 1024.0) as u64),
        },
        num_tokens: scenario.cluster.num_tokens.max(1),
        allocation: scenario.cluster.allocation,
        join_strategy: scenario.cluster.strategy,
        ..d
    };
    Ok(Prepared { scenario, names, ring, node })
}

fn build_placement(
    assignments: Vec<(Token, NodeId)>,
    scenario: &Scenario,
    names: &[String],
) -> Result<Ring, ScenarioError> {
    let result = if scenario.cluster.racks.is_empty() {
        Ring::new(assignments, scenario.cluster.rf)
    } else {
        let racks: BTreeMap<NodeId, String> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let rack = scenario.cluster.racks.get(n).cloned().unwrap_or_else(|| "rack1".into());
                (NodeId(i as u32), rack)
            })
            .collect();
        Ring::with_racks(assignments, scenario.cluster.rf, &racks)
    };
    result.map_err(|e| ScenarioError::Semantic(format!("invalid tokens: {e}")))
}

/// Options of a run.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Replace the scenario's seed.
    pub seed: Option<u64>,
    /// Keep every trace record.
    pub keep_trace: bool,
    /// The file the scenario came from, for the replay command.
    pub file: Option<String>,
    /// Replace the scenario's join strategy.
    pub strategy: Option<JoinStrategy>,
}

/// Builds the simulation of a prepared scenario at time zero.
pub fn build_simulation(p: &Prepared, options: &RunOptions) -> Simulation {
    let seed = options.seed.unwrap_or(p.scenario.seed);
    let mut node = p.node.clone();
    if let Some(s) = options.strategy {
        node.join_strategy = s;
    }
    Simulation::new(SimConfig {
        seed,
        names: p.names.clone(),
        ring: p.ring.clone(),
        node,
        network: p.scenario.network.clone(),
        workload: p.scenario.workload.clone(),
        keep_trace: options.keep_trace,
        record_history: true,
    })
}

/// What applying one timeline event did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// The invoke index of a client operation.
    pub invoke: Option<u64>,
    /// The error an operator command or fault was refused with.
    pub error: Option<String>,
}

/// Applies one timeline event.
pub fn apply_event(
    sim: &mut Simulation,
    e: &EventSpec,
    last_read: &BTreeMap<String, CausalContext>,
) -> Applied {
    let id = |sim: &Simulation, s: &Spanned<String>| {
        sim.node_id(s.get_ref()).map_err(|_| {
            SimError::UnknownNode(format!("{} (not added yet at {:?})", s.get_ref(), e.at))
        })
    };
    let each_normal = |sim: &Simulation, s: &Spanned<String>| -> Result<Vec<NodeId>, SimError> {
        if s.get_ref() == "all" {
            Ok((0..sim.names().len() as u32)
                .map(NodeId)
                .filter(|n| sim.is_up(*n) && sim.announced_status(*n) == Some(Status::Normal))
                .collect())
        } else {
            Ok(vec![id(sim, s)?])
        }
    };
    let result: Result<Option<u64>, SimError> = (|| {
        if let Some(n) = &e.crash {
            sim.crash(id(sim, n)?)?;
        } else if let Some(n) = &e.restart {
            sim.restart(id(sim, n)?)?;
        } else if let Some(groups) = &e.partition {
            let mut ids = Vec::new();
            for g in groups {
                ids.push(g.iter().map(|s| id(sim, s)).collect::<Result<Vec<_>, _>>()?);
            }
            sim.partition(ids);
        } else if let Some(p) = &e.pause {
            sim.pause(id(sim, &p.node)?, p.duration)?;
        } else if let Some(p) = &e.slow_gossip {
            sim.slow_gossip(id(sim, &p.node)?, p.duration)?;
        } else if e.heal.is_some() {
            sim.heal();
        } else if let Some(p) = e.loss {
            sim.set_loss(p);
        } else if let Some(a) = &e.add_node {
            let tokens = a.tokens.as_ref().map(|specs| {
                specs.iter().map(|t| t.resolve().expect("validated")).collect::<Vec<Token>>()
            });
            sim.add_node(a.name.get_ref(), JoinRequest { tokens, ..JoinRequest::default() })?;
        } else if let Some(r) = &e.resume_join {
            sim.resume_join(id(sim, &r.node)?, r.allow_inconsistent_source)?;
        } else if let Some(n) = &e.decommission {
            sim.decommission(id(sim, n)?)?;
        } else if let Some(n) = &e.abort {
            sim.abort_movement(id(sim, n)?)?;
        } else if let Some(n) = &e.cleanup {
            for node in each_normal(sim, n)? {
                sim.cleanup(node)?;
            }
        } else if let Some(n) = &e.repair {
            for node in each_normal(sim, n)? {
                sim.repair(node)?;
            }
        } else if e.inspect.is_some() {
        } else {
            let (f, op) = if let Some(op) = &e.write {
                (OpFunction::Write, op)
            } else if let Some(op) = &e.delete {
                (OpFunction::Delete, op)
            } else {
                (OpFunction::Read, e.read.as_ref().expect("validated: one action"))
            };
            let cl: ConsistencyLevel = op.cl.get_ref().parse().expect("validated");
            let context = if op.with_context { last_read.get(&op.key).cloned() } else { None };
            let coordinator = id(sim, &op.node)?;
            return Ok(sim
                .client_op(coordinator, f, &op.key, op.value.as_deref(), cl, context)
                .ok());
        }
        Ok(None)
    })();
    match result {
        Ok(invoke) => Applied { invoke, error: None },
        Err(err) => Applied { invoke: None, error: Some(err.to_string()) },
    }
}

/// The status column of `ringside status` for a node of a simulation: `U`/`D` (up or down)
/// then `N`/`J`/`L` (normal, joining, leaving), or `LEFT`.
pub fn status_code(sim: &Simulation, id: NodeId) -> String {
    node_status(sim, id).code()
}

/// A simulated node as `status` shows it.
pub fn node_status(sim: &Simulation, id: NodeId) -> NodeStatus {
    NodeStatus { up: sim.is_up(id), status: sim.announced_status(id) }
}

/// Effective ownership as `status` prints it: a percentage, or `?` for a joining node.
pub fn ownership_text(sim: &Simulation, id: NodeId) -> String {
    let share = sim.topology().ring().effective_ownership().get(&id).copied().unwrap_or(0.0);
    match node_status(sim, id).owns(share) {
        Some(share) => format!("{:.1}%", share * 100.0),
        None => "?".into(),
    }
}

fn check_cluster(
    sim: &Simulation,
    label: &str,
    x: &ClusterExpect,
    applied: &Applied,
) -> Vec<ExpectationResult> {
    let mut out = Vec::new();
    let id = |name: &str| sim.node_id(name).ok();
    for (name, want) in x.status.iter().flatten() {
        let actual = id(name).map_or("absent".to_string(), |n| status_code(sim, n));
        out.push(ExpectationResult {
            what: format!("{label}: status of {name}"),
            passed: actual.eq_ignore_ascii_case(want.trim()),
            expected: want.clone(),
            actual,
        });
    }
    for (name, want) in x.ownership.iter().flatten() {
        let actual = id(name).map_or("absent".to_string(), |n| ownership_text(sim, n));
        let passed = match (
            want.trim().trim_end_matches('%').parse::<f64>(),
            actual.trim_end_matches('%').parse::<f64>(),
        ) {
            (Ok(w), Ok(a)) => (w - a).abs() <= 0.5,
            _ => want.trim() == actual,
        };
        out.push(ExpectationResult {
            what: format!("{label}: ownership of {name}"),
            expected: want.clone(),
            actual,
            passed,
        });
    }
    if let Some(c) = &x.ghost_keys {
        let actual: u64 = sim.ghost_keys().values().sum();
        out.push(ExpectationResult {
            what: format!("{label}: ghost keys"),
            passed: c.matches(actual).unwrap_or(false),
            expected: c.describe(),
            actual: actual.to_string(),
        });
    }
    if let Some(want) = &x.error_contains {
        let actual = applied.error.clone().unwrap_or_else(|| "no error".into());
        out.push(ExpectationResult {
            what: format!("{label}: refused"),
            passed: actual.contains(want.as_str()),
            expected: format!("an error containing {want:?}"),
            actual,
        });
    }
    out
}

/// Runs a prepared scenario to the end and checks it.
pub fn run(p: &Prepared, options: &RunOptions) -> (ScenarioReport, Simulation) {
    run_with(p, options, &[])
}

/// [`run`] with `extra` events added to the scenario's timeline (the explorer's interventions).
/// An event at the same time as one of the scenario's is applied after it.
pub fn run_with(
    p: &Prepared,
    options: &RunOptions,
    extra: &[EventSpec],
) -> (ScenarioReport, Simulation) {
    let mut playback = Playback::new(p, options);
    for (id, e) in extra.iter().enumerate() {
        playback.insert(id as u64, e.clone());
    }
    playback.advance_to(Instant::ZERO + p.scenario.duration);
    playback.finish(p, options)
}

/// One event of a [`Playback`] that was applied, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedEvent {
    /// When.
    pub at: Instant,
    /// The event's index in [`Playback::events`].
    pub index: usize,
    /// What applying it did.
    pub applied: Applied,
}

/// A scenario being played: the simulation plus its timeline events, applied as time reaches
/// them. [`run`] plays a scenario to its end in one go; the explorer plays it a frame at a time
/// and inserts the user's interventions. Cloning it is a checkpoint.
#[derive(Clone, Debug)]
pub struct Playback {
    sim: Simulation,
    /// The scenario's events, then inserted ones (append only: indices are stable).
    events: Vec<EventSpec>,
    /// For each event, the id it was inserted with (`None`: the scenario's own).
    inserted: Vec<Option<u64>>,
    /// Indices into `events` in application order (by time; ties keep insertion order).
    order: Vec<usize>,
    /// Position in `order` of the next event to apply.
    next: usize,
    scripted: Vec<(usize, Option<u64>)>,
    moments: Vec<ExpectationResult>,
    last_read: BTreeMap<String, CausalContext>,
    applied: Vec<AppliedEvent>,
}

impl Playback {
    /// The scenario at time zero, nothing applied yet.
    pub fn new(p: &Prepared, options: &RunOptions) -> Playback {
        let events = p.scenario.events.clone();
        let mut order: Vec<usize> = (0..events.len()).collect();
        order.sort_by_key(|i| events[*i].at);
        Playback {
            sim: build_simulation(p, options),
            inserted: vec![None; events.len()],
            events,
            order,
            next: 0,
            scripted: Vec::new(),
            moments: Vec::new(),
            last_read: BTreeMap::new(),
            applied: Vec::new(),
        }
    }

    /// The simulation.
    pub fn sim(&self) -> &Simulation {
        &self.sim
    }

    /// Simulated time.
    pub fn now(&self) -> Instant {
        self.sim.now()
    }

    /// Every event, the scenario's first, then the inserted ones.
    pub fn events(&self) -> &[EventSpec] {
        &self.events
    }

    /// When the next event not yet applied is due.
    pub fn next_event_at(&self) -> Option<Instant> {
        self.order.get(self.next).map(|i| Instant::ZERO + self.events[*i].at)
    }

    /// The events applied so far, in order.
    pub fn applied(&self) -> &[AppliedEvent] {
        &self.applied
    }

    /// Adds an event under `id` (the caller's handle to [`Playback::cancel`] it). An event not
    /// later than now is applied at once, at now; a later one when time reaches it.
    pub fn insert(&mut self, id: u64, event: EventSpec) {
        let index = self.events.len();
        let at = event.at;
        self.events.push(event);
        self.inserted.push(Some(id));
        let after = self.order[self.next..].partition_point(|i| self.events[*i].at <= at);
        self.order.insert(self.next + after, index);
        if Instant::ZERO + at <= self.sim.now() {
            self.apply_due(self.sim.now());
        }
    }

    /// Removes the inserted event `id` if it has not been applied yet; says whether it was
    /// pending.
    pub fn cancel(&mut self, id: u64) -> bool {
        let pending = self.order[self.next..].iter().position(|i| self.inserted[*i] == Some(id));
        if let Some(k) = pending {
            self.order.remove(self.next + k);
        }
        pending.is_some()
    }

    /// Runs to `t`, applying every event due by then (an event due at `t` included).
    pub fn advance_to(&mut self, t: Instant) {
        self.apply_due(t);
        if self.sim.now() <= t {
            // Also processes what is due exactly at `t` (at the start, everything due at 0).
            self.sim.run_until(t);
        }
    }

    fn apply_due(&mut self, t: Instant) {
        while let Some(&i) = self.order.get(self.next) {
            let at = (Instant::ZERO + self.events[i].at).max(self.sim.now());
            if at > t {
                break;
            }
            self.next += 1;
            self.sim.run_until(at);
            self.apply(i);
        }
    }

    fn apply(&mut self, i: usize) {
        let sim = &self.sim;
        // Scripted reads feed the context of later `with_context` writes.
        for (_, invoke) in &self.scripted {
            if let Some(c) = invoke.and_then(|i| sim.completion(i))
                && let Some(Ok(Reply::Read { context, .. })) = &c.result
            {
                let key = sim.history().ops[c.op_index as usize].key.clone();
                self.last_read.insert(key, context.clone());
            }
        }
        let e = &self.events[i];
        let applied = apply_event(&mut self.sim, e, &self.last_read);
        if e.write.is_some() || e.read.is_some() || e.delete.is_some() {
            self.scripted.push((i, applied.invoke));
        } else if let Some(x) = &e.expect_cluster {
            let label = e.label.clone().unwrap_or_else(|| format!("at {:?}", e.at));
            self.moments.extend(check_cluster(&self.sim, &label, x, &applied));
        } else if let Some(err) = &applied.error
            && self.inserted[i].is_none()
        {
            self.moments.push(ExpectationResult {
                what: format!("events[{i}] at {:?} applies", e.at),
                expected: "accepted".into(),
                actual: err.clone(),
                passed: false,
            });
        }
        self.applied.push(AppliedEvent { at: self.sim.now(), index: i, applied });
    }

    /// Runs the final phase and checks the run: what [`run`] returns.
    pub fn finish(mut self, p: &Prepared, options: &RunOptions) -> (ScenarioReport, Simulation) {
        let end = Instant::ZERO + p.scenario.duration;
        self.advance_to(end.max(self.sim.now()));
        finish(&mut self.sim, &p.scenario.final_phase);
        let mut report = report(p, options, &self.sim, &self.events, &self.scripted);
        if !self.moments.is_empty() {
            let passed = self.moments.iter().all(|m| m.passed);
            self.moments.append(&mut report.expectations);
            report.expectations = self.moments;
            report.passed &= passed;
        }
        (report, self.sim)
    }
}

/// The final phase: heal, restart, settle, repair reads, final state.
pub fn finish(sim: &mut Simulation, f: &FinalPhase) {
    if f.heal {
        if sim.network().is_partitioned() {
            sim.heal();
        }
        sim.set_loss(0.0);
    }
    if f.restart {
        for i in 0..sim.names().len() {
            let id = NodeId(i as u32);
            if !sim.is_up(id) {
                let _ = sim.restart(id);
            }
        }
    }
    sim.run_for(f.settle);
    sim.quiesce(Duration::from_secs(60));
    let all_up = (0..sim.names().len()).all(|i| sim.is_up(NodeId(i as u32)));
    if f.repair_reads && all_up {
        sim.repair_reads();
        sim.quiesce(Duration::from_secs(60));
    }
    sim.record_final_reads();
}

fn names_of(sim: &Simulation, ids: &[NodeId]) -> Vec<String> {
    ids.iter().map(|n| sim.name(*n).to_string()).collect()
}

fn report(
    p: &Prepared,
    options: &RunOptions,
    sim: &Simulation,
    events: &[EventSpec],
    scripted: &[(usize, Option<u64>)],
) -> ScenarioReport {
    let s = &p.scenario;
    let seed = options.seed.unwrap_or(s.seed);
    let check = check(sim.history(), &CheckConfig { rf: s.cluster.rf, mode: s.cluster.conflict });
    let mut ops = OpCounts::default();
    for op in &sim.history().ops {
        if op.final_read {
            continue;
        }
        match op.op_type {
            OpType::Invoke if op.f == OpFunction::Read => ops.reads += 1,
            OpType::Invoke => ops.writes += 1,
            OpType::Ok => ops.ok += 1,
            OpType::Fail => ops.fail += 1,
            OpType::Info => ops.info += 1,
        }
    }
    // Counted by the simulator from node traces, so crashes do not reset them.
    let stats = sim.stats();
    let mut hints_stored: BTreeMap<String, u64> =
        stats.hints_stored.iter().map(|(n, c)| (sim.name(*n).to_string(), *c)).collect();
    let hints_delivered = stats.hints_delivered;
    let read_repairs = stats.read_repairs;
    hints_stored.retain(|_, v| *v > 0);
    let mut hints_remaining = BTreeMap::new();
    for (i, name) in sim.names().iter().enumerate() {
        if let Some(st) = sim.storage(NodeId(i as u32)) {
            let n = crate::storage::Storage::hints(st).map(|h| h.len()).unwrap_or(0) as u64;
            if n > 0 {
                hints_remaining.insert(name.clone(), n);
            }
        }
    }
    let ownership: BTreeMap<String, f64> = sim
        .topology()
        .ring()
        .effective_ownership()
        .into_iter()
        .map(|(n, f)| (sim.name(n).to_string(), f))
        .collect();
    let divergent_keys = sim.divergent_keys();
    let status: BTreeMap<String, String> = (0..sim.names().len() as u32)
        .map(|i| (sim.name(NodeId(i)).to_string(), status_code(sim, NodeId(i))))
        .collect();
    let time_to_normal: BTreeMap<String, f64> = stats
        .join_completed
        .iter()
        .filter_map(|(n, done)| {
            let start = stats.join_started.get(n)?;
            Some((sim.name(*n).to_string(), done.saturating_duration_since(*start).as_secs_f64()))
        })
        .collect();
    let movement_failures: Vec<String> =
        stats.movement_failures.iter().map(|(n, r)| format!("{}: {r}", sim.name(*n))).collect();
    let ghost_keys: u64 = sim.ghost_keys().values().sum();

    let mut operations = Vec::new();
    let mut expectations = Vec::new();
    for (i, invoke) in scripted {
        let e = &events[*i];
        let op = e.write.as_ref().or(e.delete.as_ref()).or(e.read.as_ref()).expect("op event");
        let kind = if e.write.is_some() {
            "write"
        } else if e.delete.is_some() {
            "delete"
        } else {
            "read"
        };
        let label = e.label.clone().unwrap_or_else(|| {
            format!("{kind} {} at {} via {}", op.key, op.cl.get_ref(), op.node.get_ref())
        });
        let mut outcome = OpOutcome {
            label: label.clone(),
            at: Instant::ZERO + e.at,
            outcome: "pending".into(),
            replicas: vec![],
            hinted: vec![],
            values: vec![],
            detail: None,
        };
        match invoke.and_then(|i| sim.completion(i)) {
            None if invoke.is_none() => {
                outcome.outcome = "coordinator down".into();
                outcome.detail = Some(format!("node {} was not running", op.node.get_ref()));
            }
            None => {}
            Some(c) => match &c.result {
                Some(Ok(Reply::Written { acks, hinted, .. })) => {
                    outcome.outcome = "ok".into();
                    outcome.replicas = names_of(sim, acks);
                    outcome.hinted = names_of(sim, hinted);
                }
                Some(Ok(Reply::Read { value, replied, .. })) => {
                    outcome.outcome = "ok".into();
                    outcome.replicas = names_of(sim, replied);
                    outcome.values = value
                        .values()
                        .into_iter()
                        .map(|v| String::from_utf8_lossy(&v).into_owned())
                        .collect();
                }
                Some(Err(err)) => {
                    outcome.outcome = match err {
                        RequestError::Unavailable { .. } => "unavailable".into(),
                        RequestError::Timeout { .. } => "timeout".into(),
                    };
                    outcome.detail = Some(err.to_string());
                }
                None => outcome.outcome = "coordinator crashed".into(),
            },
        }
        if let Some(x) = &e.expect {
            let mut push = |what: &str, expected: String, actual: String| {
                expectations.push(ExpectationResult {
                    what: format!("{label}: {what}"),
                    passed: expected == actual,
                    expected,
                    actual,
                });
            };
            if let Some(ok) = x.ok {
                push("ok", ok.to_string(), (outcome.outcome == "ok").to_string());
            }
            if let Some(err) = &x.error {
                push("error", err.to_lowercase(), outcome.outcome.clone());
            }
            let sorted = |mut v: Vec<String>| {
                v.sort();
                format!("[{}]", v.join(", "))
            };
            if let Some(a) = &x.acks {
                push("acks", sorted(a.clone()), sorted(outcome.replicas.clone()));
            }
            if let Some(a) = &x.replied {
                push("replied", sorted(a.clone()), sorted(outcome.replicas.clone()));
            }
            if let Some(h) = &x.hinted {
                push("hinted", sorted(h.clone()), sorted(outcome.hinted.clone()));
            }
            if let Some(v) = &x.values {
                push("values", format!("{v:?}"), format!("{:?}", outcome.values));
            }
        }
        operations.push(outcome);
    }

    let x = &s.expect;
    let mut count = |what: &str, c: &Option<Count>, actual: u64| {
        if let Some(c) = c {
            let passed = c.matches(actual).unwrap_or(false);
            expectations.push(ExpectationResult {
                what: what.to_string(),
                expected: c.matches(actual).map(|_| c.describe()).unwrap_or_else(|e| e),
                actual: actual.to_string(),
                passed,
            });
        }
    };
    count("stale reads", &x.stale_reads, check.count(AnomalyKind::StaleRead) as u64);
    count("lost writes", &x.lost_writes, check.count(AnomalyKind::LostWrite) as u64);
    count("lost updates", &x.lost_updates, check.count(AnomalyKind::LostUpdate) as u64);
    count("unavailable", &x.unavailable, check.count(AnomalyKind::Unavailable) as u64);
    count("timeouts", &x.timeouts, check.count(AnomalyKind::Timeout) as u64);
    count("read repairs", &x.read_repairs, read_repairs);
    count("hints stored (total)", &x.hints_total, hints_stored.values().sum());
    count("hints delivered", &x.hints_delivered, hints_delivered);
    count("movement failures", &x.movement_failures, movement_failures.len() as u64);
    count("ghost keys", &x.ghost_keys, ghost_keys);
    count("joins completed", &x.joins_completed, time_to_normal.len() as u64);
    if let Some(per) = &x.hints_stored {
        for (name, c) in per {
            let actual = hints_stored.get(name).copied().unwrap_or(0);
            count(&format!("hints stored on {name}"), &Some(c.clone()), actual);
        }
    }
    if let Some(own) = &x.ownership {
        for (name, want) in own {
            let actual = ownership.get(name).copied();
            let actual_text = actual.map_or("?".to_string(), |f| format!("{:.1}%", f * 100.0));
            let passed = match (want.trim().trim_end_matches('%').parse::<f64>(), actual) {
                (Ok(w), Some(a)) => (w - a * 100.0).abs() <= 0.5,
                _ => want.trim() == actual_text,
            };
            expectations.push(ExpectationResult {
                what: format!("ownership of {name}"),
                expected: want.clone(),
                actual: actual_text,
                passed,
            });
        }
    }
    if let Some(c) = x.converged {
        let actual = divergent_keys.is_empty();
        expectations.push(ExpectationResult {
            what: "converged".into(),
            expected: c.to_string(),
            actual: if actual {
                "true".into()
            } else {
                format!(
                    "false ({} divergent keys, e.g. {})",
                    divergent_keys.len(),
                    divergent_keys[0]
                )
            },
            passed: c == actual,
        });
    }

    for (name, want) in x.status.iter().flatten() {
        let actual = status.get(name).cloned().unwrap_or_else(|| "absent".into());
        expectations.push(ExpectationResult {
            what: format!("status of {name}"),
            passed: actual.eq_ignore_ascii_case(want.trim()),
            expected: want.clone(),
            actual,
        });
    }
    if let Some(want) = &x.failure_contains {
        expectations.push(ExpectationResult {
            what: "a movement failure".into(),
            expected: format!("a reason containing {want:?}"),
            actual: if movement_failures.is_empty() {
                "no failure".into()
            } else {
                movement_failures.join("; ")
            },
            passed: movement_failures.iter().any(|f| f.contains(want.as_str())),
        });
    }

    let passed = expectations.iter().all(|e| e.passed);
    let file = options.file.clone().unwrap_or_else(|| format!("<{}>", s.name));
    ScenarioReport {
        name: s.name.clone(),
        seed,
        end_time: sim.now(),
        ops,
        anomalies: check.counts.clone(),
        check,
        hints_stored,
        hints_delivered,
        hints_remaining,
        read_repairs,
        messages: sim.stats().clone(),
        ownership,
        divergent_keys,
        status,
        time_to_normal,
        movement_failures,
        ghost_keys,
        bytes_streamed: stats.bytes_streamed,
        extra_acks: sim.extra_acks(),
        operations,
        expectations,
        passed,
        trace_hash: format!("{:016x}", sim.trace().hash()),
        trace_events: sim.trace().len(),
        replay: format!("ringside sim run {file} --seed {seed}"),
    }
}

impl std::fmt::Display for ScenarioReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "scenario {}  (seed {}, ended at {})", self.name, self.seed, self.end_time)?;
        writeln!(
            f,
            "operations: {} reads, {} writes -> {} ok, {} fail, {} info",
            self.ops.reads, self.ops.writes, self.ops.ok, self.ops.fail, self.ops.info
        )?;
        if !self.ownership.is_empty() {
            let own: Vec<String> =
                self.ownership.iter().map(|(n, o)| format!("{n} {:.1}%", o * 100.0)).collect();
            writeln!(f, "owns (effective): {}", own.join(", "))?;
        }
        let status: Vec<String> = self.status.iter().map(|(n, s)| format!("{n} {s}")).collect();
        writeln!(f, "status: {}", status.join(", "))?;
        for (n, t) in &self.time_to_normal {
            writeln!(f, "join of {n}: NORMAL after {t:.1}s")?;
        }
        for m in &self.movement_failures {
            writeln!(f, "movement failed: {m}")?;
        }
        if self.bytes_streamed > 0 || self.ghost_keys > 0 {
            writeln!(
                f,
                "streamed {} bytes; extra acks demanded {}; ghost keys {}",
                self.bytes_streamed, self.extra_acks, self.ghost_keys
            )?;
        }
        if !self.operations.is_empty() {
            writeln!(f, "scripted operations:")?;
            for o in &self.operations {
                write!(f, "  {:>10}  {:<32} {}", o.at.to_string(), o.label, o.outcome)?;
                if !o.replicas.is_empty() {
                    write!(f, "  replicas [{}]", o.replicas.join(", "))?;
                }
                if !o.hinted.is_empty() {
                    write!(f, "  hinted [{}]", o.hinted.join(", "))?;
                }
                if !o.values.is_empty() {
                    write!(f, "  values {:?}", o.values)?;
                }
                if let Some(d) = &o.detail {
                    write!(f, "  ({d})")?;
                }
                writeln!(f)?;
            }
        }
        let anomalies: Vec<String> =
            self.anomalies.iter().map(|(k, v)| format!("{k} {v}")).collect();
        writeln!(
            f,
            "anomalies: {}",
            if anomalies.is_empty() { "none".to_string() } else { anomalies.join(", ") }
        )?;
        for a in self.check.anomalies.iter().filter(|a| a.kind.is_correctness()).take(5) {
            writeln!(f, "  - {}", a.explanation)?;
        }
        let hints: Vec<String> =
            self.hints_stored.iter().map(|(n, c)| format!("{n} {c}")).collect();
        writeln!(
            f,
            "hints: stored {} ({}), delivered {}, remaining {}",
            self.hints_stored.values().sum::<u64>(),
            if hints.is_empty() { "none".into() } else { hints.join(", ") },
            self.hints_delivered,
            self.hints_remaining.values().sum::<u64>()
        )?;
        writeln!(f, "read repairs: {}", self.read_repairs)?;
        writeln!(
            f,
            "messages: {} sent, {} delivered, {} dropped",
            self.messages.sent, self.messages.delivered, self.messages.dropped
        )?;
        if !self.divergent_keys.is_empty() {
            writeln!(f, "divergent keys at the end: {}", self.divergent_keys.len())?;
        }
        writeln!(f, "trace: {} events, hash {}", self.trace_events, self.trace_hash)?;
        if !self.expectations.is_empty() {
            writeln!(f, "expectations:")?;
            for e in &self.expectations {
                let mark = if e.passed { "ok  " } else { "FAIL" };
                write!(f, "  {mark} {}: expected {}", e.what, e.expected)?;
                if !e.passed {
                    write!(f, ", got {}", e.actual)?;
                }
                writeln!(f)?;
            }
        }
        if self.passed {
            writeln!(f, "result: PASS")
        } else {
            writeln!(f, "result: FAIL — replay with: {}", self.replay)
        }
    }
}
