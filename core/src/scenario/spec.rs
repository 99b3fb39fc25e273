//! The scenario file's TOML-facing types, as serde reads them, and [`parse`].
//!
//! These types mirror the file: nothing here checks that a scenario makes sense, which is
//! [`super::prepare`]'s job, so that every refusal can point at a line and column of the text.

use super::expect::{ClusterExpect, OpExpect, RunExpect};
use super::playback::FinalPhase;
use crate::alloc::Allocation;
use crate::membership::JoinStrategy;
use crate::sim::network::NetworkConfig;
use crate::sim::workload::WorkloadConfig;
use crate::token::{Token, token_for};
use crate::version::ConflictMode;
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
    /// The timeline: what happens when, in file order (times need not be sorted).
    #[serde(default)]
    pub events: Vec<EventSpec>,
    /// What happens after `duration`.
    #[serde(default, rename = "final")]
    pub final_phase: FinalPhase,
    /// Expectations on the whole run.
    #[serde(default)]
    pub expect: RunExpect,
    /// Set when the file is a course exercise (see [`crate::course`]).
    #[serde(default)]
    pub exercise: Option<crate::course::ExerciseSpec>,
    /// An exercise's parameters (see [`crate::course`]).
    #[serde(default)]
    pub params: BTreeMap<String, Vec<crate::course::ParamValue>>,
    /// An exercise's questions (see [`crate::course`]).
    #[serde(default)]
    pub questions: Vec<crate::course::QuestionSpec>,
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

/// Why a [`TokenSpec`] denotes no token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// A `ring:N/D` fraction that is malformed, has D = 0 or is not below 1.
    #[error("token {0:?}: expected ring:N/D with 0 <= N < D")]
    BadFraction(String),
    /// A `key:NAME+N` or `key:NAME-N` whose offset N is not an integer.
    #[error("token {0:?}: offset is not an integer")]
    BadOffset(String),
    /// Text in none of the accepted forms.
    #[error("token {0:?} must be an integer, \"ring:N/D\", or \"key:NAME+N\" / \"key:NAME-N\"")]
    Unrecognised(String),
}

impl TokenSpec {
    /// The token this spec denotes.
    pub fn resolve(&self) -> Result<Token, TokenError> {
        match self {
            TokenSpec::Literal(t) => Ok(*t),
            TokenSpec::Relative(s) => {
                if let Ok(t) = s.parse::<u64>() {
                    return Ok(t);
                }
                if let Some(frac) = s.strip_prefix("ring:") {
                    let bad = || TokenError::BadFraction(s.clone());
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
                let rest =
                    s.strip_prefix("key:").ok_or_else(|| TokenError::Unrecognised(s.clone()))?;
                let (name, sign, offset) = match rest.rfind(['+', '-']) {
                    Some(i) => {
                        let n: u64 =
                            rest[i + 1..].parse().map_err(|_| TokenError::BadOffset(s.clone()))?;
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

/// Node settings a scenario may change; unset fields keep [`crate::node::NodeConfig`]'s defaults.
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
/// A client operation in the timeline.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpSpec {
    /// The node the client sends the request to (its coordinator).
    pub node: Spanned<String>,
    /// The key read or written.
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

/// One timeline entry as the file writes it: a time and exactly one action among optional
/// fields. [`super::prepare`] parses each into a [`super::TimelineEvent`], whose
/// [`super::Event`] is what playback and the explorer use.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSpec {
    /// Simulated time since the start, e.g. `2.5s`.
    #[serde(with = "humantime_serde")]
    pub at: Duration,
    /// A name to refer to this operation in reports.
    #[serde(default)]
    pub label: Option<String>,
    /// What the event shows, in a sentence or two: the explorer's lesson mode pauses here and
    /// shows it as a caption.
    #[serde(default)]
    pub note: Option<String>,
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
/// Parses a scenario from TOML text.
pub fn parse(text: &str) -> Result<Scenario, ScenarioError> {
    toml::from_str(text).map_err(|e| ScenarioError::Parse(e.to_string()))
}
