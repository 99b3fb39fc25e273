//! Expectations: what a scenario says should happen, per operation, per moment and for the whole
//! run, the [`Count`] syntax they share, and the checks that compare them with what happened.

use super::playback::Applied;
use super::report::{OpOutcome, ScenarioReport, node_status, ownership};
use crate::checker::AnomalyKind;
use crate::sim::Simulation;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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

    pub(super) fn describe(&self) -> String {
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
    /// What the scenario file expected, as written there.
    pub expected: String,
    /// What happened.
    pub actual: String,
    /// Whether it held.
    pub passed: bool,
}
/// A node's status, its ownership and a count are compared the same way wherever an expectation
/// names them (at an `inspect` event or at the end of the run).
impl ExpectationResult {
    fn status(what: String, want: &str, actual: String) -> ExpectationResult {
        let passed = actual.eq_ignore_ascii_case(want.trim());
        ExpectationResult { what, expected: want.to_string(), actual, passed }
    }

    /// `actual` is the node's share of the ring (0 to 1), or what is shown without one: `?` for
    /// a joining node, `absent`. A percentage matches within half a point.
    fn ownership(what: String, want: &str, actual: Result<f64, String>) -> ExpectationResult {
        let text = match &actual {
            Ok(share) => format!("{:.1}%", share * 100.0),
            Err(text) => text.clone(),
        };
        let passed = match (want.trim().trim_end_matches('%').parse::<f64>(), actual) {
            (Ok(w), Ok(share)) => (w - share * 100.0).abs() <= 0.5,
            _ => want.trim() == text,
        };
        ExpectationResult { what, expected: want.to_string(), actual: text, passed }
    }

    /// A count against `c`; a comparison that cannot be read says why in `expected`.
    fn count(what: String, c: &Count, actual: u64) -> ExpectationResult {
        let (expected, passed) = match c.matches(actual) {
            Ok(passed) => (c.describe(), passed),
            Err(why) => (why, false),
        };
        ExpectationResult { what, expected, actual: actual.to_string(), passed }
    }
}

/// How `ringside status` can print a node, as an expectation may name it.
pub(super) fn valid_status(s: &str) -> bool {
    let s = s.trim().to_ascii_uppercase();
    s == "LEFT"
        || s == "OUT"
        || (s.len() == 2 && matches!(&s[..1], "U" | "D") && matches!(&s[1..], "N" | "J" | "L"))
}

/// An ownership expectation: `"75%"`, `"75"` or `"?"` (a joining node).
pub(super) fn valid_ownership(s: &str) -> bool {
    let s = s.trim();
    s == "?"
        || s.trim_end_matches('%')
            .trim()
            .parse::<f64>()
            .is_ok_and(|f| f.is_finite() && (0.0..=100.0).contains(&f))
}

/// What [`super::OpOutcome::outcome`] can be besides "ok", as `expect.error` may name it.
pub(super) const OP_ERRORS: [&str; 5] =
    ["unavailable", "timeout", "coordinator down", "coordinator crashed", "pending"];
pub(super) fn check_cluster(
    sim: &Simulation,
    label: &str,
    x: &ClusterExpect,
    applied: &Applied,
) -> Vec<ExpectationResult> {
    let mut out = Vec::new();
    let id = |name: &str| sim.node_id(name).ok();
    for (name, want) in x.status.iter().flatten() {
        let actual = id(name).map_or("absent".to_string(), |n| node_status(sim, n).code());
        out.push(ExpectationResult::status(format!("{label}: status of {name}"), want, actual));
    }
    for (name, want) in x.ownership.iter().flatten() {
        let actual = match id(name) {
            Some(n) => ownership(sim, n).ok_or_else(|| "?".to_string()),
            None => Err("absent".to_string()),
        };
        out.push(ExpectationResult::ownership(
            format!("{label}: ownership of {name}"),
            want,
            actual,
        ));
    }
    if let Some(c) = &x.ghost_keys {
        let actual: u64 = sim.ghost_keys().values().sum();
        out.push(ExpectationResult::count(format!("{label}: ghost keys"), c, actual));
    }
    if let Some(want) = &x.error_contains {
        let actual = applied.error.as_ref().map_or_else(|| "no error".into(), |e| e.to_string());
        out.push(ExpectationResult {
            what: format!("{label}: refused"),
            passed: actual.contains(want.as_str()),
            expected: format!("an error containing {want:?}"),
            actual,
        });
    }
    out
}

/// Checks one scripted operation's expectations against what it did (`label` names it).
pub(super) fn check_op(x: &OpExpect, label: &str, outcome: &OpOutcome) -> Vec<ExpectationResult> {
    let mut expectations = Vec::new();
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
    expectations
}

/// Checks the whole run's expectations against its report; the report's own expectation results
/// are not read, so the caller may append these to them.
pub(super) fn check_run(x: &RunExpect, r: &ScenarioReport) -> Vec<ExpectationResult> {
    let mut expectations = Vec::new();
    let mut count = |what: &str, c: &Option<Count>, actual: u64| {
        if let Some(c) = c {
            expectations.push(ExpectationResult::count(what.to_string(), c, actual));
        }
    };
    count("stale reads", &x.stale_reads, r.check.count(AnomalyKind::StaleRead) as u64);
    count("lost writes", &x.lost_writes, r.check.count(AnomalyKind::LostWrite) as u64);
    count("lost updates", &x.lost_updates, r.check.count(AnomalyKind::LostUpdate) as u64);
    count("unavailable", &x.unavailable, r.check.count(AnomalyKind::Unavailable) as u64);
    count("timeouts", &x.timeouts, r.check.count(AnomalyKind::Timeout) as u64);
    count("read repairs", &x.read_repairs, r.read_repairs);
    count("hints stored (total)", &x.hints_total, r.hints_stored.values().sum());
    count("hints delivered", &x.hints_delivered, r.hints_delivered);
    count("movement failures", &x.movement_failures, r.movement_failures.len() as u64);
    count("ghost keys", &x.ghost_keys, r.ghost_keys);
    count("joins completed", &x.joins_completed, r.time_to_normal.len() as u64);
    if let Some(per) = &x.hints_stored {
        for (name, c) in per {
            let actual = r.hints_stored.get(name).copied().unwrap_or(0);
            count(&format!("hints stored on {name}"), &Some(c.clone()), actual);
        }
    }
    for (name, want) in x.ownership.iter().flatten() {
        let actual = r.ownership.get(name).copied().ok_or_else(|| "?".to_string());
        expectations.push(ExpectationResult::ownership(
            format!("ownership of {name}"),
            want,
            actual,
        ));
    }
    if let Some(c) = x.converged {
        let actual = r.divergent_keys.is_empty();
        expectations.push(ExpectationResult {
            what: "converged".into(),
            expected: c.to_string(),
            actual: if actual {
                "true".into()
            } else {
                format!(
                    "false ({} divergent keys, e.g. {})",
                    r.divergent_keys.len(),
                    r.divergent_keys[0]
                )
            },
            passed: c == actual,
        });
    }

    for (name, want) in x.status.iter().flatten() {
        let actual = r.status.get(name).cloned().unwrap_or_else(|| "absent".into());
        expectations.push(ExpectationResult::status(format!("status of {name}"), want, actual));
    }
    if let Some(want) = &x.failure_contains {
        expectations.push(ExpectationResult {
            what: "a movement failure".into(),
            expected: format!("a reason containing {want:?}"),
            actual: if r.movement_failures.is_empty() {
                "no failure".into()
            } else {
                r.movement_failures.join("; ")
            },
            passed: r.movement_failures.iter().any(|f| f.contains(want.as_str())),
        });
    }

    expectations
}
