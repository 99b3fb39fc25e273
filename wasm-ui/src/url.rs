//! The whole state of a run in the page URL, so that a link replays it exactly:
//! `?preset=join-staged&seed=7&strategy=staged&compare=staged,immediate&do=…&t=…&msg=…`, or
//! `?scenario=<base64url TOML>` for a scenario file the user loaded.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ringside_core::explore::{Intervention, format_interventions};
use ringside_core::membership::JoinStrategy;
use std::time::Duration;

/// Where the scenario comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// A preset of the gallery, by id.
    Preset(String),
    /// A scenario file's text.
    Custom(String),
    /// A course exercise, by id, and which variant of it.
    Exercise {
        /// The exercise's id.
        id: String,
        /// The variant.
        variant: u64,
    },
}

/// Everything that determines what the explorer shows.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSpec {
    /// The scenario.
    pub source: Source,
    /// Replaces the scenario's seed.
    pub seed: Option<u64>,
    /// Replaces the scenario's join strategy (the animated run's).
    pub strategy: Option<JoinStrategy>,
    /// Strategies of the comparison lanes (empty: the preset's default).
    pub compare: Vec<JoinStrategy>,
    /// The user's interventions.
    pub interventions: Vec<Intervention>,
    /// The time cursor.
    pub at: Option<Duration>,
    /// The selected message, by id (selected on load when it is in flight at `at`).
    pub message: Option<u64>,
    /// Lesson mode: playing pauses at each labelled event and shows its caption.
    pub lesson: bool,
}

impl RunSpec {
    /// A preset with its own settings.
    pub fn preset(id: &str) -> RunSpec {
        RunSpec {
            source: Source::Preset(id.to_string()),
            seed: None,
            strategy: None,
            compare: Vec::new(),
            interventions: Vec::new(),
            at: None,
            message: None,
            lesson: false,
        }
    }

    /// The query string (with its `?`).
    pub fn to_query(&self) -> String {
        let mut parts = Vec::new();
        match &self.source {
            Source::Preset(id) => parts.push(format!("preset={id}")),
            Source::Custom(text) => {
                parts.push(format!("scenario={}", URL_SAFE_NO_PAD.encode(text.as_bytes())))
            }
            Source::Exercise { id, variant } => {
                parts.push(format!("exercise={id}"));
                parts.push(format!("variant={variant}"));
            }
        }
        if let Some(seed) = self.seed {
            parts.push(format!("seed={seed}"));
        }
        if let Some(s) = self.strategy {
            parts.push(format!("strategy={s}"));
        }
        if !self.compare.is_empty() {
            let names: Vec<&str> = self.compare.iter().map(|s| s.name()).collect();
            parts.push(format!("compare={}", names.join(",")));
        }
        if !self.interventions.is_empty() {
            parts.push(format!("do={}", format_interventions(&self.interventions)));
        }
        if let Some(at) = self.at {
            parts.push(format!("t={}", at.as_micros()));
        }
        if let Some(id) = self.message {
            parts.push(format!("msg={id}"));
        }
        if self.lesson {
            parts.push("lesson=1".into());
        }
        format!("?{}", parts.join("&"))
    }

    /// Reads a query string (`?` optional). With no scenario named, `default_preset` is used.
    pub fn from_query(query: &str, default_preset: &str) -> Result<RunSpec, String> {
        let mut spec = RunSpec::preset(default_preset);
        let mut variant = 0;
        for pair in query.trim_start_matches('?').split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match name {
                "preset" => spec.source = Source::Preset(value.to_string()),
                "exercise" => spec.source = Source::Exercise { id: value.to_string(), variant: 0 },
                "variant" => {
                    variant = value.parse().map_err(|_| {
                        format!("variant={value:?} in the link is not a whole number")
                    })?
                }
                "scenario" => {
                    let bytes = URL_SAFE_NO_PAD
                        .decode(value.trim_end_matches('='))
                        .map_err(|e| format!("the scenario in the link is damaged ({e})"))?;
                    let text = String::from_utf8(bytes)
                        .map_err(|_| "the scenario in the link is not UTF-8 text".to_string())?;
                    spec.source = Source::Custom(text);
                }
                "seed" => {
                    spec.seed = Some(value.parse().map_err(|_| {
                        format!(
                            "seed {value:?} in the link is not a whole number from 0 to {}",
                            u64::MAX
                        )
                    })?)
                }
                "strategy" => spec.strategy = Some(value.parse().map_err(|e| format!("{e}"))?),
                "compare" => {
                    spec.compare = value
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(|s| s.parse::<JoinStrategy>().map_err(|e| format!("{e}")))
                        .collect::<Result<_, _>>()?
                }
                "do" => spec.interventions = Intervention::parse_list(value)?,
                "t" => {
                    let micros: u64 = value
                        .parse()
                        .map_err(|_| format!("t={value:?} in the link is not a time"))?;
                    spec.at = Some(Duration::from_micros(micros));
                }
                "msg" => {
                    spec.message = Some(value.parse().map_err(|_| {
                        format!("msg={value:?} in the link is not a message number")
                    })?)
                }
                "lesson" => spec.lesson = value != "0",
                // Unknown parameters (e.g. from a newer version) are ignored.
                _ => {}
            }
        }
        if let Source::Exercise { variant: v, .. } = &mut spec.source {
            *v = variant;
        }
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringside_core::ConsistencyLevel;
    use ringside_core::explore::Action;

    #[test]
    fn a_full_spec_round_trips() {
        let spec = RunSpec {
            source: Source::Custom("name = \"x\"\n[cluster]\nnodes = [\"A\"]\n".into()),
            seed: Some(u64::MAX),
            strategy: Some(JoinStrategy::Immediate),
            compare: vec![JoinStrategy::Staged, JoinStrategy::DualWriteCutover],
            interventions: vec![
                Intervention { at: Duration::from_secs(3), action: Action::Crash("B".into()) },
                Intervention {
                    at: Duration::from_micros(4_000_001),
                    action: Action::Write {
                        node: "A".into(),
                        key: "k 1".into(),
                        value: "v&=?".into(),
                        cl: ConsistencyLevel::All,
                    },
                },
            ],
            at: Some(Duration::from_micros(12_345_678)),
            message: Some(8708),
            lesson: true,
        };
        let query = spec.to_query();
        assert!(!query[1..].contains(['?', '#', ' ']), "{query}");
        assert_eq!(query[1..].matches('&').count(), 7, "{query}");
        assert_eq!(RunSpec::from_query(&query, "steady-quorum").unwrap(), spec);
    }

    #[test]
    fn an_exercise_link_names_the_exercise_and_its_variant() {
        let spec = RunSpec::from_query("?variant=3&exercise=fourth-node-ownership", "x").unwrap();
        let exercise = Source::Exercise { id: "fourth-node-ownership".into(), variant: 3 };
        assert_eq!(spec.source, exercise);
        assert_eq!(spec.to_query(), "?exercise=fourth-node-ownership&variant=3");
        assert!(RunSpec::from_query("?exercise=a&variant=x", "x").unwrap_err().contains("variant"));
    }

    #[test]
    fn an_empty_query_is_the_default_preset() {
        assert_eq!(RunSpec::from_query("", "join-staged").unwrap(), RunSpec::preset("join-staged"));
        let spec = RunSpec::from_query("?preset=hints&seed=9", "join-staged").unwrap();
        assert_eq!((spec.source, spec.seed), (Source::Preset("hints".into()), Some(9)));
    }

    #[test]
    fn a_damaged_link_says_what_is_wrong() {
        let err = |q: &str| RunSpec::from_query(q, "x").unwrap_err();
        assert!(err("?seed=-1").contains("seed"));
        assert!(err("?strategy=fastest").contains("fastest"));
        assert!(err("?scenario=***").contains("damaged"));
        assert!(err("?do=1:explode").contains("explode"));
        assert!(err("?t=soon").contains("soon"));
        assert!(err("?msg=first").contains("first"));
    }
}
