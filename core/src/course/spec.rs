//! What an exercise file adds to a scenario file: `[exercise]` (title, module, prompt),
//! `[params]` (the values a variant picks from) and `[[questions]]` (what to predict, where the
//! engine's answer is read, and the explanation shown after answering).

use serde::{Deserialize, Serialize};
use std::fmt;

/// `[exercise]`: how the exercise is presented.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExerciseSpec {
    /// The module it belongs to, e.g. `"02 Quorums"` (modules sort by this text).
    pub module: String,
    /// Its title.
    pub title: String,
    /// The situation, told to the learner before the questions (`{{param}}` is replaced).
    pub prompt: String,
}

/// `[[questions]]`: one prediction asked of the learner.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuestionSpec {
    /// Its id, unique in the exercise (answer files use it).
    pub id: String,
    /// The question as the learner reads it (`{{param}}` is replaced).
    pub ask: String,
    /// Where the engine's answer is read.
    pub answer: AnswerRef,
    /// Shown after answering, right or wrong: why the cluster did what it did.
    pub explanation: String,
}

/// Where a question's answer is read in the run. Exactly one of `op`, `at` and `run` is given.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerRef {
    /// The label of a scripted client operation.
    pub op: Option<String>,
    /// The label of another event (an `inspect`, a crash, a join…): the cluster right after it.
    pub at: Option<String>,
    /// A figure of the whole run, e.g. `stale_reads` (`field` is then not given).
    pub run: Option<String>,
    /// For `op`: `ok`, `error`, `acks`, `replied`, `hinted` or `values`. For `at`: `status`,
    /// `ownership`, `keys`, `ghost_keys` or `hints`.
    pub field: Option<String>,
    /// The node asked about (`at` fields, and the per-node `run` figures).
    pub node: Option<String>,
}

impl AnswerRef {
    /// What kind of answer the question takes, known before the run: what a learner types.
    pub fn form(&self) -> &'static str {
        let field = self.field.as_deref().unwrap_or_default();
        let kind = match (&self.op, &self.at, self.run.as_deref()) {
            (Some(_), _, _) => field,
            (_, Some(_), _) => field,
            (_, _, Some(run)) => run,
            _ => "",
        };
        match kind {
            "ok" | "converged" => "yes or no",
            "error" => "none, unavailable or timeout",
            "acks" | "replied" | "hinted" => "nodes, e.g. B, C (or none)",
            "values" => "values, e.g. v1, v2 (or none)",
            "status" => "a status such as UN, UJ, DN",
            "ownership" => "a percentage such as 75%, or ?",
            _ => "a whole number",
        }
    }

    /// Whether the answer is a set of nodes (the explorer lets the learner click them).
    pub fn expects_nodes(&self) -> bool {
        self.op.is_some() && matches!(self.field.as_deref(), Some("acks" | "replied" | "hinted"))
    }
}

impl fmt::Display for AnswerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field = self.field.as_deref().unwrap_or("?");
        let node = self.node.as_deref().map(|n| format!(" of {n}")).unwrap_or_default();
        match (&self.op, &self.at, &self.run) {
            (Some(op), _, _) => write!(f, "{field} of operation {op:?}"),
            (_, Some(at), _) => write!(f, "{field}{node} after {at:?}"),
            (_, _, Some(run)) => write!(f, "{run}{node} over the whole run"),
            _ => f.write_str("nothing"),
        }
    }
}
