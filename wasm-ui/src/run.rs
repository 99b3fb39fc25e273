//! The run being explored: the engine's [`Player`] and everything derived from it. The player is
//! the single source of truth: the UI changes the cluster only through [`Run`]'s operations,
//! which keep the signals below in step with it — one [`Snapshot`] published per frame, the
//! checked full run, the strategy lanes and the timeline markers.

use crate::url::{RunSpec, Source};
use leptos::prelude::*;
use ringside_core::Instant;
use ringside_core::checker::AnomalyKind;
use ringside_core::compare::{Comparison, compare_with};
use ringside_core::course::{CATALOG, Exercise, Instance, by_id};
use ringside_core::explore::{Action, Intervention, OpMessages, Player, Snapshot, op_messages};
use ringside_core::history::{Op, OpType, Pairing};
use ringside_core::membership::JoinStrategy;
use ringside_core::presets::{PRESETS, default_lanes, preset};
use ringside_core::scenario::{
    Event, Prepared, RunOptions, ScenarioReport, TimelineEvent, parse, prepare,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The completed, checked run with the current interventions: the history pane and the
/// anomaly markers read it.
#[derive(Debug)]
pub struct FullRun {
    /// The scenario report (anomalies, counters, replay command).
    pub report: ScenarioReport,
    /// The whole history (final convergence reads included).
    pub history: Vec<Op>,
    /// Anomalies by the index of the completion op they concern.
    pub flags: BTreeMap<u64, Vec<AnomalyKind>>,
    /// Which completion answers which invoke.
    pub pairing: Pairing,
}

impl FullRun {
    fn new(report: ScenarioReport, history: Vec<Op>) -> FullRun {
        let mut flags: BTreeMap<u64, Vec<AnomalyKind>> = BTreeMap::new();
        for a in &report.check.anomalies {
            flags.entry(a.op_index).or_default().push(a.kind);
        }
        let pairing = Pairing::of(&history);
        FullRun { report, history, flags, pairing }
    }

    /// The history index of the operation on `key` invoked at `at` (a scripted operation or a
    /// lesson's), if there is one.
    pub fn invoke_at(&self, at: Instant, key: &str) -> Option<usize> {
        self.history
            .iter()
            .position(|o| o.op_type == OpType::Invoke && o.time == at && o.key == key)
    }
}

/// The scenario a run plays, as the page shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct ScenarioText {
    /// The preset's title, or the file's `name`.
    pub title: String,
    /// The file's description, trimmed.
    pub description: String,
    /// The file itself.
    pub text: String,
    /// Loaded from a file or pasted, not a preset.
    pub custom: bool,
}

/// The strategy lanes of the run.
#[derive(Clone, Debug)]
pub enum LaneState {
    /// Being computed (after the next paint).
    Computing,
    /// Computed.
    Ready {
        /// The lanes.
        comparison: Arc<Comparison>,
        /// How long computing them took, in wall-clock milliseconds.
        took_ms: f64,
    },
}

impl LaneState {
    /// The lanes, once computed.
    pub fn comparison(&self) -> Option<&Arc<Comparison>> {
        match self {
            LaneState::Computing => None,
            LaneState::Ready { comparison, .. } => Some(comparison),
        }
    }
}

/// The course exercise a run plays, when it plays one.
#[derive(Debug)]
pub struct ExerciseRun {
    /// The exercise (all its variants).
    pub exercise: Exercise,
    /// The variant played.
    pub instance: Instance,
}

/// A moment on the timeline worth a marker.
#[derive(Clone, Debug, PartialEq)]
pub struct Marker {
    /// Where on the timeline it sits.
    pub at: Instant,
    /// What, in words.
    pub label: String,
    /// `event` (the scenario's), `user` (an intervention), or an anomaly kind.
    pub class: &'static str,
}

/// What an accepted intervention did to the run.
pub struct Intervened {
    /// Later interventions dropped because the run forked at this one.
    pub dropped: usize,
}

/// The run (cheap to copy: every field is a handle).
#[derive(Clone, Copy)]
pub struct Run {
    player: StoredValue<Option<Player>, LocalStorage>,
    /// The run as the URL states it (its `at` and `message` are written by
    /// [`crate::state::Explorer::sync_url`]).
    pub spec: RwSignal<RunSpec>,
    /// The scenario played.
    pub scenario: RwSignal<Option<ScenarioText>>,
    /// The frame being shown.
    pub snapshot: RwSignal<Option<Arc<Snapshot>>>,
    /// End of the timeline.
    pub end: RwSignal<Instant>,
    /// The checked full run; `None` while it is being computed.
    pub full: RwSignal<Option<Arc<FullRun>>>,
    /// The strategy lanes.
    pub lanes: RwSignal<LaneState>,
    /// Timeline markers: scenario events, interventions, anomalies.
    pub markers: RwSignal<Vec<Marker>>,
    /// The exercise played, if the run is one.
    pub exercise: RwSignal<Option<Arc<ExerciseRun>>>,
}

/// Parses and validates a scenario's text, with the line of the problem when there is one.
pub fn prepare_text(text: &str) -> Result<Prepared, String> {
    let scenario = parse(text).map_err(|e| e.to_string())?;
    prepare(scenario, text).map_err(|e| e.to_string())
}

fn scenario_text(source: &Source) -> Result<String, String> {
    match source {
        Source::Preset(id) => preset(id).map(|p| p.text.to_string()).ok_or_else(|| {
            let ids: Vec<&str> = PRESETS.iter().map(|p| p.id).collect();
            format!("there is no preset {id:?}; the presets are {}", ids.join(", "))
        }),
        Source::Custom(text) => Ok(text.clone()),
        Source::Exercise { id, variant } => Ok(exercise_run(id, *variant)?.instance.text),
    }
}

/// Variant `variant` of the shipped exercise `id`.
pub fn exercise_run(id: &str, variant: u64) -> Result<ExerciseRun, String> {
    let entry = by_id(id).ok_or_else(|| {
        let ids: Vec<&str> = CATALOG.iter().map(|e| e.id).collect();
        format!("there is no exercise {id:?}; the exercises are {}", ids.join(", "))
    })?;
    let exercise = Exercise::parse(entry.id, entry.text).map_err(|e| e.to_string())?;
    let instance = exercise.instance(variant).map_err(|e| e.to_string())?;
    Ok(ExerciseRun { exercise, instance })
}

/// `performance.now()` in milliseconds.
pub fn now_ms() -> f64 {
    window().performance().map_or(0.0, |p| p.now())
}

/// How an action reads in notices and markers.
pub fn describe_action(a: &Action) -> String {
    a.to_event().to_string()
}

impl Run {
    /// An empty run; [`Run::load`] gives it a scenario.
    pub fn new(spec: RunSpec) -> Run {
        Run {
            player: StoredValue::new_local(None),
            spec: RwSignal::new(spec),
            scenario: RwSignal::new(None),
            snapshot: RwSignal::new(None),
            end: RwSignal::new(Instant::ZERO),
            full: RwSignal::new(None),
            lanes: RwSignal::new(LaneState::Computing),
            markers: RwSignal::new(Vec::new()),
            exercise: RwSignal::new(None),
        }
    }

    /// Loads a run: parses its scenario, replays its interventions, seeks to its cursor and
    /// publishes the frame. On failure nothing changes.
    pub fn load(&self, spec: RunSpec) -> Result<(), String> {
        let exercise = match &spec.source {
            Source::Exercise { id, variant } => Some(Arc::new(exercise_run(id, *variant)?)),
            _ => None,
        };
        let text = match &exercise {
            Some(e) => e.instance.text.clone(),
            None => scenario_text(&spec.source)?,
        };
        let p = prepare_text(&text)?;
        let scenario = ScenarioText {
            title: match &spec.source {
                Source::Preset(id) => preset(id).map_or(id.clone(), |p| p.title.to_string()),
                Source::Custom(_) => p.scenario.name.clone(),
                Source::Exercise { .. } => {
                    exercise.as_ref().map_or(String::new(), |e| e.instance.exercise.title.clone())
                }
            },
            description: p.scenario.description.trim().to_string(),
            text,
            custom: matches!(spec.source, Source::Custom(_)),
        };
        let options =
            RunOptions { seed: spec.seed, strategy: spec.strategy, ..RunOptions::default() };
        let mut player =
            Player::new(p, options, spec.interventions.clone()).map_err(|e| e.to_string())?;
        if let Some(at) = spec.at {
            player.seek(Instant::ZERO + at);
        }
        self.end.set(player.end());
        self.player.set_value(Some(player));
        self.scenario.set(Some(scenario));
        self.exercise.set(exercise);
        self.spec.set(RunSpec { message: None, ..spec });
        self.publish();
        self.recompute();
        Ok(())
    }

    /// Publishes the player's current state as the frame to draw.
    fn publish(&self) {
        let snapshot = self.player.with_value(|p| p.as_ref().map(|p| Snapshot::of(p.sim())));
        if let Some(snapshot) = snapshot {
            self.snapshot.set(Some(Arc::new(snapshot)));
        }
    }

    /// Reads the player (`None` before the first load).
    pub fn with_player<T>(&self, f: impl FnOnce(&Player) -> T) -> Option<T> {
        self.player.with_value(|p| p.as_ref().map(f))
    }

    /// The simulated time shown.
    pub fn now(&self) -> Instant {
        self.snapshot.with(|s| s.as_ref().map_or(Instant::ZERO, |s| s.now))
    }

    /// Node names, by id.
    pub fn names(&self) -> Vec<String> {
        self.snapshot
            .with(|s| s.as_ref().map(|s| s.nodes.iter().map(|n| n.name.clone()).collect()))
            .unwrap_or_default()
    }

    /// Moves the simulation forward by `dt`; returns whether it reached the end.
    pub fn advance(&self, dt: Duration) -> bool {
        let mut at_end = false;
        self.player.update_value(|p| {
            if let Some(p) = p {
                p.advance_to(p.now() + dt);
                at_end = p.now() >= p.end();
            }
        });
        self.publish();
        at_end
    }

    /// Moves the cursor.
    pub fn seek(&self, t: Instant) {
        self.player.update_value(|p| {
            if let Some(p) = p {
                p.seek(t);
            }
        });
        self.publish();
    }

    /// One step to the next thing that happens.
    pub fn step(&self) {
        self.player.update_value(|p| {
            if let Some(p) = p {
                p.step();
            }
        });
        self.publish();
    }

    /// Applies an action now. A refused action changes nothing and says why.
    pub fn intervene(&self, action: Action) -> Result<Intervened, String> {
        let before = self.spec.with_untracked(|s| s.interventions.len());
        let mut outcome = Err("no run is loaded".to_string());
        self.player.update_value(|p| {
            if let Some(p) = p {
                outcome = p
                    .intervene(action)
                    .map(|_| p.interventions().to_vec())
                    .map_err(|e| e.to_string());
            }
        });
        let list = outcome?;
        let dropped = (before + 1).saturating_sub(list.len());
        self.spec.update(|s| s.interventions = list);
        self.publish();
        self.recompute();
        Ok(Intervened { dropped })
    }

    /// The strategy the animated run uses (reactive: it changes only when the run is loaded).
    pub fn strategy(&self) -> Option<JoinStrategy> {
        self.spec.track();
        self.with_player(|p| p.options().strategy.unwrap_or(p.prepared().node.join_strategy))
    }

    /// The seed of the run (reactive like [`Run::strategy`]).
    pub fn seed(&self) -> Option<u64> {
        self.spec.track();
        self.with_player(|p| p.options().seed.unwrap_or(p.prepared().scenario.seed))
    }

    /// The lanes' strategies (the URL's, or the default for the scenario).
    pub fn lane_strategies(&self) -> Vec<JoinStrategy> {
        let spec = self.spec.get();
        if !spec.compare.is_empty() {
            return spec.compare;
        }
        let id = match &spec.source {
            Source::Preset(id) => Some(id.as_str()),
            Source::Custom(_) | Source::Exercise { .. } => None,
        };
        self.with_player(|p| default_lanes(id, p.prepared())).unwrap_or_default()
    }

    /// Sets the strategies of the comparison lanes and recomputes them.
    pub fn set_lanes(&self, lanes: Vec<JoinStrategy>) {
        self.spec.update(|s| s.compare = lanes);
        self.recompute_lanes();
    }

    /// The messages and replicas of client operation `op` (an invoke), up to its completion.
    pub fn op_messages(&self, op: &Op, completed: Instant) -> Option<OpMessages> {
        self.with_player(|p| op_messages(p.sim(), op, completed))
    }

    /// Recomputes the checked full run, its markers and the lanes, after the next paint.
    fn recompute(&self) {
        let this = *self;
        this.full.set(None);
        set_timeout(
            move || {
                let computed = this.with_player(|p| {
                    let (report, sim) = p.full_run();
                    FullRun::new(report, sim.history().ops.clone())
                });
                if let Some(full) = computed {
                    this.markers.set(this.markers_of(&full));
                    this.full.set(Some(Arc::new(full)));
                }
                this.recompute_lanes();
            },
            Duration::from_millis(20),
        );
    }

    /// Recomputes the strategy lanes (after the next paint).
    fn recompute_lanes(&self) {
        let this = *self;
        this.lanes.set(LaneState::Computing);
        set_timeout(
            move || {
                let lanes = this.lane_strategies();
                let computed = this.with_player(|p| {
                    let extra: Vec<TimelineEvent> =
                        p.interventions().iter().map(Intervention::to_event).collect();
                    let start = now_ms();
                    let c = compare_with(p.prepared(), &lanes, p.options(), &extra);
                    LaneState::Ready { comparison: Arc::new(c), took_ms: now_ms() - start }
                });
                if let Some(state) = computed {
                    this.lanes.set(state);
                }
            },
            Duration::from_millis(20),
        );
    }

    fn markers_of(&self, full: &FullRun) -> Vec<Marker> {
        use ringside_core::compare::{CountedAt, counted_at};
        let mut out = Vec::new();
        self.with_player(|p| {
            for e in &p.prepared().events {
                if e.event != Event::Inspect {
                    out.push(Marker {
                        at: Instant::ZERO + e.at,
                        label: e.event.to_string(),
                        class: "event",
                    });
                }
            }
            for i in p.interventions() {
                out.push(Marker {
                    at: Instant::ZERO + i.at,
                    label: describe_action(&i.action),
                    class: "user",
                });
            }
        });
        // An anomaly's marker sits where the lanes and the history count it; the final phase's
        // are past the end of the timeline and get none (the history pane lists them apart).
        let end = self.end.get_untracked();
        for a in &full.report.check.anomalies {
            if let CountedAt::During(at) = counted_at(a, end) {
                let (class, _) = crate::history::flag(a.kind);
                out.push(Marker { at, label: a.explanation.clone(), class });
            }
        }
        out
    }
}
