//! Course exercises: predict what the cluster does, run the engine, compare.
//!
//! An exercise is a scenario file (see [`crate::scenario`]) with three more tables:
//!
//! ```toml
//! [exercise]
//! module = "02 Quorums"
//! title = "A write at QUORUM with a replica down"
//! prompt = "RF {{rf}}: node {{down}} is down when A writes k at QUORUM."
//!
//! [params]                 # a variant picks one value of each
//! rf = [3, 5]
//! down = ["B", "C"]
//!
//! [[questions]]
//! id = "ok"
//! ask = "Does the write succeed?"
//! answer = { op = "w", field = "ok" }   # or { at = "LABEL", field = "status", node = "D" },
//!                                       # or { run = "stale_reads" }
//! explanation = "QUORUM of {{rf}} needs …"
//! ```
//!
//! `{{name}}` anywhere in the file is replaced by the variant's value of parameter `name`
//! (strings as written, so a string parameter goes between quotes: `crash = "{{down}}"`). The
//! answers are never written in the file: [`Instance::solve`] runs the engine and reads them from
//! the report, so an exercise cannot carry a wrong answer. [`check`] is the authors' checker.

mod answer;
mod catalog;
mod spec;

pub use answer::{AT_FIELDS, Answer, OP_FIELDS, RUN_FIELDS, Unanswerable, Verdict, read};
pub use catalog::{CATALOG, Entry, by_id};
pub use spec::{AnswerRef, ExerciseSpec, QuestionSpec};

use crate::scenario::{Prepared, RunOptions, ScenarioError, ScenarioReport, parse, prepare, run};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Why an exercise cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExerciseError {
    /// The file is not a valid exercise (or, once its parameters are filled in, scenario).
    Invalid(String),
    /// A question has no determined answer.
    Question {
        /// The question's id.
        id: String,
        /// Why.
        why: String,
    },
}

impl fmt::Display for ExerciseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExerciseError::Invalid(why) => f.write_str(why),
            ExerciseError::Question { id, why } => write!(f, "question {id:?}: {why}"),
        }
    }
}

impl std::error::Error for ExerciseError {}

impl From<ScenarioError> for ExerciseError {
    fn from(e: ScenarioError) -> Self {
        ExerciseError::Invalid(e.to_string())
    }
}

/// A parameter value, as `[params]` lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    /// An integer (`rf = [3, 5]`).
    Int(i64),
    /// A text, substituted as written (`down = ["B", "C"]`).
    Text(String),
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Int(i) => write!(f, "{i}"),
            ParamValue::Text(t) => f.write_str(t),
        }
    }
}

/// Only `[params]`, read before the parameters are filled in.
#[derive(Deserialize)]
struct ParamsOnly {
    #[serde(default)]
    params: BTreeMap<String, Vec<ParamValue>>,
}

/// An exercise file, parameters not yet chosen.
#[derive(Clone, Debug)]
pub struct Exercise {
    /// Its id (the file name without `.toml`).
    pub id: String,
    /// The file as written.
    pub text: String,
    /// Each parameter with its values, by name.
    pub params: BTreeMap<String, Vec<ParamValue>>,
}

/// The placeholders `{{name}}` in `text`, in order.
fn placeholders(text: &str) -> Vec<(usize, usize, &str)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(start) = text[from..].find("{{").map(|i| i + from) {
        let Some(end) = text[start..].find("}}").map(|i| i + start + 2) else { break };
        out.push((start, end, text[start + 2..end - 2].trim()));
        from = end;
    }
    out
}

impl Exercise {
    /// Reads an exercise file's parameters; the rest is read per variant by
    /// [`Exercise::instance`].
    pub fn parse(id: &str, text: &str) -> Result<Exercise, ExerciseError> {
        // Placeholders become 0 (valid TOML wherever a value goes) just to read `[params]`.
        let mut blank = String::with_capacity(text.len());
        let mut last = 0;
        for (start, end, _) in placeholders(text) {
            blank.push_str(&text[last..start]);
            blank.push('0');
            last = end;
        }
        blank.push_str(&text[last..]);
        let only: ParamsOnly = toml::from_str(&blank).map_err(|e| {
            ExerciseError::Invalid(format!("{id}: {}", ScenarioError::Parse(e.to_string())))
        })?;
        for (name, values) in &only.params {
            if values.is_empty() {
                return Err(ExerciseError::Invalid(format!(
                    "params.{name} lists no value: give at least two, or write the value into \
                     the file and drop the parameter"
                )));
            }
        }
        for (_, _, name) in placeholders(text) {
            if !only.params.contains_key(name) {
                return Err(ExerciseError::Invalid(format!(
                    "{{{{{name}}}}} is used but [params] does not list {name:?}"
                )));
            }
        }
        let used: Vec<&str> = placeholders(text).into_iter().map(|(_, _, n)| n).collect();
        if let Some(unused) = only.params.keys().find(|p| !used.contains(&p.as_str())) {
            return Err(ExerciseError::Invalid(format!(
                "params.{unused} is never used: write {{{{{unused}}}}} where it goes, or drop it"
            )));
        }
        Ok(Exercise { id: id.to_string(), text: text.to_string(), params: only.params })
    }

    /// How many distinct variants the parameters give (1 without parameters).
    pub fn variants(&self) -> u64 {
        self.params.values().map(|v| v.len() as u64).product()
    }

    /// The parameter values of variant `n` (any number: it wraps around [`Exercise::variants`]).
    pub fn choice(&self, n: u64) -> BTreeMap<String, ParamValue> {
        let mut rest = n % self.variants();
        self.params
            .iter()
            .map(|(name, values)| {
                let k = values.len() as u64;
                let v = values[(rest % k) as usize].clone();
                rest /= k;
                (name.clone(), v)
            })
            .collect()
    }

    /// `text` with variant `n`'s values in place of the placeholders.
    pub fn fill(&self, text: &str, n: u64) -> String {
        let choice = self.choice(n);
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for (start, end, name) in placeholders(text) {
            out.push_str(&text[last..start]);
            match choice.get(name) {
                Some(v) => out.push_str(&v.to_string()),
                None => out.push_str(&text[start..end]),
            }
            last = end;
        }
        out.push_str(&text[last..]);
        out
    }

    /// Variant `n`, ready to run.
    pub fn instance(&self, n: u64) -> Result<Instance, ExerciseError> {
        let variant = n % self.variants();
        let text = self.fill(&self.text, variant);
        let scenario = parse(&text)?;
        let Some(exercise) = scenario.exercise.clone() else {
            return Err(ExerciseError::Invalid(format!(
                "{}: an exercise file has an [exercise] table (module, title, prompt)",
                self.id
            )));
        };
        let questions = scenario.questions.clone();
        if questions.is_empty() {
            return Err(ExerciseError::Invalid(format!(
                "{}: no [[questions]]: an exercise asks at least one",
                self.id
            )));
        }
        let mut ids = std::collections::BTreeSet::new();
        for q in &questions {
            if !ids.insert(q.id.clone()) {
                return Err(ExerciseError::Invalid(format!(
                    "two questions have the id {:?}",
                    q.id
                )));
            }
        }
        let prepared = prepare(scenario, &text)?;
        Ok(Instance {
            id: self.id.clone(),
            variant,
            choice: self.choice(variant),
            exercise,
            questions,
            prepared,
            text,
        })
    }
}

/// One variant of an exercise, parameters filled in.
#[derive(Clone, Debug)]
pub struct Instance {
    /// The exercise's id.
    pub id: String,
    /// Which variant.
    pub variant: u64,
    /// The values its parameters took.
    pub choice: BTreeMap<String, ParamValue>,
    /// Title, module and prompt.
    pub exercise: ExerciseSpec,
    /// The questions.
    pub questions: Vec<QuestionSpec>,
    /// The scenario, validated.
    pub prepared: Prepared,
    /// The scenario file of this variant (what `ringside sim run` replays).
    pub text: String,
}

/// An instance run: the report and each question's answer.
#[derive(Clone, Debug)]
pub struct Solved {
    /// The run's report.
    pub report: ScenarioReport,
    /// Each question's answer, in order.
    pub answers: Vec<Result<Answer, Unanswerable>>,
}

impl Instance {
    /// When question `q`'s moment comes: the time of the operation or event it names (`None`
    /// for a figure of the whole run).
    pub fn moment_of(&self, q: &QuestionSpec) -> Option<std::time::Duration> {
        let label = q.answer.op.as_ref().or(q.answer.at.as_ref())?;
        self.prepared.events.iter().find(|e| e.label.as_ref() == Some(label)).map(|e| e.at)
    }

    /// Runs the engine (at the scenario's seed, or `seed`) and reads every question's answer.
    pub fn solve(&self, seed: Option<u64>) -> Solved {
        let options = RunOptions { seed, ..RunOptions::default() };
        let (report, _) = run(&self.prepared, &options);
        let answers = self.questions.iter().map(|q| read(&q.answer, &report)).collect();
        Solved { report, answers }
    }
}

/// What the authors' checker found for one variant.
#[derive(Clone, Debug)]
pub struct Checked {
    /// The variant.
    pub variant: u64,
    /// Its parameter values.
    pub choice: BTreeMap<String, ParamValue>,
    /// Each question's answer.
    pub answers: Vec<(String, Answer)>,
}

/// Other seeds a checked answer must not depend on.
pub const CHECK_SEEDS: u64 = 3;

/// Checks an exercise for authors: every variant prepares and runs, every question has an answer
/// in every variant, and that answer does not change with the seed (so it is determined by the
/// situation, not by message timing). Variants beyond the first 64 are not run.
pub fn check(ex: &Exercise) -> Result<Vec<Checked>, ExerciseError> {
    let mut out = Vec::new();
    for v in 0..ex.variants().min(64) {
        let inst = ex.instance(v).map_err(|e| {
            ExerciseError::Invalid(format!("variant {v} ({}): {e}", describe_choice(&ex.choice(v))))
        })?;
        let base = inst.prepared.scenario.seed;
        let solved = inst.solve(None);
        let mut answers = Vec::new();
        for (q, a) in inst.questions.iter().zip(&solved.answers) {
            let a = a.clone().map_err(|e| ExerciseError::Question {
                id: q.id.clone(),
                why: format!("variant {v}: {e}"),
            })?;
            answers.push((q.id.clone(), a));
        }
        for k in 1..=CHECK_SEEDS {
            let other = inst.solve(Some(base.wrapping_add(k)));
            for ((id, a), b) in answers.iter().zip(&other.answers) {
                match b {
                    Ok(b) if b == a => {}
                    _ => {
                        let b = b.as_ref().map_or_else(ToString::to_string, ToString::to_string);
                        return Err(ExerciseError::Question {
                            id: id.clone(),
                            why: format!(
                                "variant {v}: the answer is not determined by the situation: seed \
                                 {base} gives {a}, seed {} gives {b}. Remove what it depends on \
                                 (message timing, a random workload) or ask something else",
                                base.wrapping_add(k)
                            ),
                        });
                    }
                }
            }
        }
        out.push(Checked { variant: v, choice: inst.choice.clone(), answers });
    }
    if ex.variants() > 1 && out.windows(2).all(|w| w[0].answers == w[1].answers) {
        return Err(ExerciseError::Invalid(
            "every variant has the same answers: the parameters change nothing a question asks, \
             so a learner could copy another's answers"
                .into(),
        ));
    }
    Ok(out)
}

/// `rf=3, down=B`.
pub fn describe_choice(choice: &BTreeMap<String, ParamValue>) -> String {
    choice.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
}
