//! Answers: what the engine computed for a question ([`Answer`]), read from a run's report, and
//! how a learner's typed answer is compared with it ([`Answer::grade`]). The comparisons are the
//! scenario expectations' own: node sets in any order, status codes in any case, ownership within
//! half a point.

use super::spec::AnswerRef;
use crate::scenario::ScenarioReport;
use std::collections::BTreeSet;
use std::fmt;

/// The engine's answer to a question.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    /// Yes or no (`ok`: the operation succeeded; `converged`).
    Bool(bool),
    /// One word: an error (`none`, `unavailable`, `timeout`, …) or a status code (`UN`, `UJ`…).
    Word(String),
    /// A set of nodes (acknowledged, answered, hinted).
    Nodes(BTreeSet<String>),
    /// The values a read returned (siblings), as a set.
    Values(BTreeSet<String>),
    /// Effective ownership (0 to 1), `None` while a node joins (`?`).
    Share(Option<f64>),
    /// A count.
    Count(u64),
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |set: &BTreeSet<String>| {
            if set.is_empty() {
                "none".to_string()
            } else {
                set.iter().cloned().collect::<Vec<_>>().join(", ")
            }
        };
        match self {
            Answer::Bool(b) => f.write_str(if *b { "yes" } else { "no" }),
            Answer::Word(w) => f.write_str(w),
            Answer::Nodes(n) | Answer::Values(n) => f.write_str(&list(n)),
            Answer::Share(Some(s)) => write!(f, "{:.1}%", s * 100.0),
            Answer::Share(None) => f.write_str("?"),
            Answer::Count(c) => write!(f, "{c}"),
        }
    }
}

/// A learner's answer compared with the engine's.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    /// Whether it matches.
    pub right: bool,
    /// What the learner gave, as read.
    pub given: String,
    /// The engine's answer.
    pub expected: String,
    /// Set when the answer could not be read (and so is wrong): what form it should take.
    pub unreadable: Option<String>,
}

/// The items of a typed list. Node names never hold spaces, so `B C` and `B, C` are both read;
/// values may (`Alice (old)`), so they are separated by commas only.
fn words(text: &str, nodes: bool) -> BTreeSet<String> {
    let set: BTreeSet<String> = text
        .split(|c: char| c == ',' || (nodes && c.is_whitespace()))
        .map(|w| w.trim().trim_matches(|c| c == '[' || c == ']' || c == '"').trim())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect();
    let none =
        set.len() == 1 && set.iter().any(|w| matches!(w.to_lowercase().as_str(), "none" | "-"));
    if none { BTreeSet::new() } else { set }
}

impl Answer {
    /// What a learner should type for this kind of answer.
    pub fn form(&self) -> &'static str {
        match self {
            Answer::Bool(_) => "yes or no",
            Answer::Word(_) => {
                "one word, e.g. unavailable, timeout or none; or a status such as UN"
            }
            Answer::Nodes(_) => "node names separated by commas, or none",
            Answer::Values(_) => "values separated by commas, or none",
            Answer::Share(_) => "a percentage such as 75%, or ? for a joining node",
            Answer::Count(_) => "a whole number",
        }
    }

    /// Compares a learner's answer, if they gave one, with this one: a missing or blank answer
    /// is wrong and shown as "(no answer)".
    pub fn verdict(&self, given: Option<&str>) -> Verdict {
        match given.filter(|g| !g.trim().is_empty()) {
            Some(g) => self.grade(g),
            None => Verdict {
                right: false,
                given: "(no answer)".into(),
                expected: self.to_string(),
                unreadable: None,
            },
        }
    }

    /// Compares a learner's typed answer with this one.
    pub fn grade(&self, given: &str) -> Verdict {
        let text = given.trim();
        let verdict = |right: bool, unreadable: Option<String>| Verdict {
            right,
            given: text.to_string(),
            expected: self.to_string(),
            unreadable,
        };
        let unreadable = || verdict(false, Some(format!("expected {}", self.form())));
        match self {
            Answer::Bool(b) => match text.to_lowercase().as_str() {
                "yes" | "y" | "true" | "ok" | "succeeds" | "success" => verdict(*b, None),
                "no" | "n" | "false" | "fails" | "fail" | "error" => verdict(!*b, None),
                _ => unreadable(),
            },
            Answer::Word(_) if text.is_empty() => unreadable(),
            Answer::Word(w) => {
                let t = text.to_lowercase();
                let given = if t == "ok" { "none".to_string() } else { t };
                verdict(given == w.to_lowercase(), None)
            }
            Answer::Nodes(set) | Answer::Values(set) => {
                let lower = |s: &BTreeSet<String>| -> BTreeSet<String> {
                    s.iter().map(|w| w.to_lowercase()).collect()
                };
                let is_nodes = matches!(self, Answer::Nodes(_));
                let given = words(text, is_nodes);
                let right = if is_nodes { lower(&given) == lower(set) } else { given == *set };
                verdict(right, None)
            }
            Answer::Share(share) => {
                if text == "?" {
                    return verdict(share.is_none(), None);
                }
                match (text.trim_end_matches('%').trim().parse::<f64>(), share) {
                    (Ok(p), Some(s)) => verdict((p - s * 100.0).abs() <= 0.5, None),
                    (Ok(_), None) => verdict(false, None),
                    (Err(_), _) => unreadable(),
                }
            }
            Answer::Count(c) => match text.parse::<u64>() {
                Ok(n) => verdict(n == *c, None),
                Err(_) => unreadable(),
            },
        }
    }
}

/// Why a question has no answer in a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unanswerable(pub String);

impl fmt::Display for Unanswerable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The `run` figures a question may ask for, with whether they need a `node`.
pub const RUN_FIELDS: &[(&str, bool)] = &[
    ("stale_reads", false),
    ("lost_writes", false),
    ("lost_updates", false),
    ("unavailable", false),
    ("timeouts", false),
    ("read_repairs", false),
    ("hints_total", false),
    ("hints_delivered", false),
    ("bytes_streamed", false),
    ("extra_acks", false),
    ("ghost_keys", false),
    ("joins_completed", false),
    ("movement_failures", false),
    ("converged", false),
    ("hints_stored", true),
    ("status", true),
    ("ownership", true),
];

/// The `op` fields a question may ask for.
pub const OP_FIELDS: &[&str] = &["ok", "error", "acks", "replied", "hinted", "values"];

/// The `at` fields a question may ask for (all about one `node`).
pub const AT_FIELDS: &[&str] = &["status", "ownership", "keys", "ghost_keys", "hints"];

fn nodes(list: &[String]) -> Answer {
    Answer::Nodes(list.iter().cloned().collect())
}

/// Reads the answer `r` names in a run's report.
pub fn read(r: &AnswerRef, report: &ScenarioReport) -> Result<Answer, Unanswerable> {
    let field = r.field.as_deref().unwrap_or_default();
    let no = |why: String| Err(Unanswerable(why));
    if let Some(label) = &r.op {
        let Some(op) = report.operations.iter().find(|o| &o.label == label) else {
            return no(format!("no client operation is labelled {label:?}"));
        };
        if op.outcome == "pending" {
            return no(format!(
                "operation {label:?} has not completed by the end of the run: its outcome is not \
                 determined (lengthen `duration` or move the operation earlier)"
            ));
        }
        let is_read = op.read;
        return match field {
            "ok" => Ok(Answer::Bool(op.outcome == "ok")),
            "error" => Ok(Answer::Word(if op.outcome == "ok" {
                "none".into()
            } else {
                op.outcome.clone()
            })),
            "acks" | "hinted" if is_read => {
                no(format!("{field} is asked of operation {label:?}, which is a read"))
            }
            "replied" | "values" if !is_read => {
                no(format!("{field} is asked of operation {label:?}, which is a write"))
            }
            "acks" | "replied" => Ok(nodes(&op.replicas)),
            "hinted" => Ok(nodes(&op.hinted)),
            "values" => Ok(Answer::Values(op.values.iter().cloned().collect())),
            other => no(format!(
                "an operation has no field {other:?}; ask one of {}",
                OP_FIELDS.join(", ")
            )),
        };
    }
    if let Some(label) = &r.at {
        let Some(m) = report.moments.iter().find(|m| &m.label == label) else {
            return no(format!(
                "no event labelled {label:?} was applied before the end of the run (a client \
                 operation is asked with `op`, not `at`)"
            ));
        };
        let Some(name) = &r.node else {
            return no(format!("`at` questions name a `node` (asked: {field})"));
        };
        let Some(n) = m.node(name) else {
            return no(format!("there is no node {name:?} at {label:?}"));
        };
        return match field {
            "status" => Ok(Answer::Word(n.status.clone())),
            "ownership" => Ok(Answer::Share(n.ownership)),
            "keys" => Ok(Answer::Count(n.keys)),
            "ghost_keys" => Ok(Answer::Count(n.ghost_keys)),
            "hints" => Ok(Answer::Count(n.hints)),
            other => {
                no(format!("a moment has no field {other:?}; ask one of {}", AT_FIELDS.join(", ")))
            }
        };
    }
    let Some(run) = &r.run else {
        return no("an answer names exactly one of `op`, `at` and `run`".into());
    };
    let node =
        || r.node.clone().ok_or_else(|| Unanswerable(format!("run figure {run:?} needs a `node`")));
    use crate::checker::AnomalyKind as K;
    let count = |k: K| Answer::Count(report.check.count(k) as u64);
    Ok(match run.as_str() {
        "stale_reads" => count(K::StaleRead),
        "lost_writes" => count(K::LostWrite),
        "lost_updates" => count(K::LostUpdate),
        "unavailable" => count(K::Unavailable),
        "timeouts" => count(K::Timeout),
        "read_repairs" => Answer::Count(report.read_repairs),
        "hints_total" => Answer::Count(report.hints_stored.values().sum()),
        "hints_delivered" => Answer::Count(report.hints_delivered),
        "bytes_streamed" => Answer::Count(report.bytes_streamed),
        "extra_acks" => Answer::Count(report.extra_acks),
        "ghost_keys" => Answer::Count(report.ghost_keys),
        "joins_completed" => Answer::Count(report.time_to_normal.len() as u64),
        "movement_failures" => Answer::Count(report.movement_failures.len() as u64),
        "converged" => Answer::Bool(report.divergent_keys.is_empty()),
        "hints_stored" => Answer::Count(report.hints_stored.get(&node()?).copied().unwrap_or(0)),
        "status" => {
            let n = node()?;
            match report.status.get(&n) {
                Some(s) => Answer::Word(s.clone()),
                None => return no(format!("there is no node {n:?}")),
            }
        }
        "ownership" => {
            let n = node()?;
            if !report.status.contains_key(&n) {
                return no(format!("there is no node {n:?}"));
            }
            Answer::Share(report.ownership.get(&n).copied())
        }
        other => {
            let names: Vec<&str> = RUN_FIELDS.iter().map(|(n, _)| *n).collect();
            return no(format!("the run has no figure {other:?}; ask one of {}", names.join(", ")));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_answers_are_read_the_way_expectations_compare() {
        let set = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        assert!(Answer::Nodes(set(&["B", "D"])).grade("d, b").right);
        assert!(!Answer::Nodes(set(&["B", "D"])).grade("B").right);
        assert!(Answer::Nodes(set(&[])).grade("none").right);
        assert!(Answer::Nodes(set(&["B", "D"])).grade("B D").right);
        assert!(Answer::Values(set(&["Alice (old)", "v2"])).grade("v2, Alice (old)").right);
        assert!(!Answer::Values(set(&["Alice (old)"])).grade("Alice").right);
        assert!(Answer::Share(Some(0.75)).grade("75%").right);
        assert!(Answer::Share(Some(0.75)).grade("75.4").right);
        assert!(!Answer::Share(Some(0.75)).grade("66.7%").right);
        assert!(Answer::Share(None).grade("?").right);
        assert!(Answer::Word("UJ".into()).grade("uj").right);
        assert!(Answer::Word("none".into()).grade("ok").right);
        assert!(Answer::Bool(false).grade("no").right);
        assert!(!Answer::Bool(false).grade("yes").right);
        let v = Answer::Count(3).grade("three");
        assert!(!v.right && v.unreadable.is_some(), "{v:?}");
    }
}
