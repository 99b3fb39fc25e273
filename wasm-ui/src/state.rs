//! The explorer's state: the engine's [`Player`] in a local stored value (the single source of
//! truth: the UI changes the cluster only through it), and signals the components read — one
//! [`Snapshot`] published per animation frame, the selection, the checked full run and the
//! strategy comparison. [`provide_explorer`] / [`use_explorer`] share it.

use crate::url::{RunSpec, Source};
use leptos::prelude::*;
use ringside_core::checker::AnomalyKind;
use ringside_core::compare::{Comparison, compare_with};
use ringside_core::explore::{
    Action, Intervention, MessageView, OpMessages, Player, Snapshot, op_messages,
};
use ringside_core::history::{Op, Pairing};
use ringside_core::membership::JoinStrategy;
use ringside_core::message::MessageKind;
use ringside_core::presets::{PRESETS, default_lanes, preset};
use ringside_core::scenario::{
    Event, Prepared, RunOptions, ScenarioReport, TimelineEvent, parse, prepare,
};
use ringside_core::{Instant, NodeId};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The preset shown when the URL names none.
pub const DEFAULT_PRESET: &str = "join-staged";

/// Speeds offered, as simulated seconds per wall-clock second.
pub const SPEEDS: &[f64] = &[0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0];
/// The speed a run starts at: slow enough to follow messages 20–60 ms in flight.
pub const DEFAULT_SPEED: f64 = 0.1;

/// What the user clicked.
#[derive(Clone, Debug, PartialEq)]
pub enum Selection {
    /// Nothing is selected.
    None,
    /// A node.
    Node(NodeId),
    /// A message (by id), clicked while in flight; it stays selected once it left the network,
    /// so that its fate (a request's verdict) is explained.
    Message(u64),
    /// A client operation (index of its invoke in the history).
    Op(usize),
}

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

/// Shared explorer state (cheap to copy: every field is a handle).
#[derive(Clone, Copy)]
pub struct Explorer {
    player: StoredValue<Option<Player>, LocalStorage>,
    /// The selected message as last seen in flight (see [`Explorer::selected_message`]).
    last_message: StoredValue<Option<MessageView>>,
    /// The run being shown, as the URL states it.
    pub spec: RwSignal<RunSpec>,
    /// Title and description of the scenario.
    pub scenario: RwSignal<Option<(String, String, String)>>,
    /// The frame being shown.
    pub snapshot: RwSignal<Option<Arc<Snapshot>>>,
    /// End of the timeline.
    pub end: RwSignal<Instant>,
    /// Playing or paused.
    pub playing: RwSignal<bool>,
    /// Simulated seconds per second.
    pub speed: RwSignal<f64>,
    /// What is selected.
    pub selection: RwSignal<Selection>,
    /// Message kinds not drawn.
    pub hidden: RwSignal<Vec<MessageKind>>,
    /// The checked full run.
    pub full: RwSignal<Option<Arc<FullRun>>>,
    /// The strategy lanes, and how long they took to compute (ms).
    pub comparison: RwSignal<Option<(Arc<Comparison>, f64)>>,
    /// Set while the lanes are being computed.
    pub comparing: RwSignal<bool>,
    /// A scenario or link that could not be loaded.
    pub error: RwSignal<Option<String>>,
    /// The outcome of the last intervention.
    pub notice: RwSignal<Option<(bool, String)>>,
    /// Messages and replicas of the selected operation.
    pub highlight: RwSignal<Option<Arc<OpMessages>>>,
    /// The token under the pointer on the ring.
    pub hover_token: RwSignal<Option<u64>>,
    /// Timeline markers: scenario events, interventions, anomalies.
    pub markers: RwSignal<Vec<Marker>>,
    /// The help overlay (legend and shortcuts) is open.
    pub help: RwSignal<bool>,
    /// The preset gallery is open.
    pub gallery: RwSignal<bool>,
}

/// Creates the explorer state and provides it to the components below.
pub fn provide_explorer() -> Explorer {
    let ex = Explorer {
        player: StoredValue::new_local(None),
        last_message: StoredValue::new(None),
        spec: RwSignal::new(RunSpec::preset(DEFAULT_PRESET)),
        scenario: RwSignal::new(None),
        snapshot: RwSignal::new(None),
        end: RwSignal::new(Instant::ZERO),
        playing: RwSignal::new(false),
        speed: RwSignal::new(DEFAULT_SPEED),
        selection: RwSignal::new(Selection::None),
        hidden: RwSignal::new(vec![MessageKind::Gossip]),
        full: RwSignal::new(None),
        comparison: RwSignal::new(None),
        comparing: RwSignal::new(false),
        error: RwSignal::new(None),
        notice: RwSignal::new(None),
        highlight: RwSignal::new(None),
        hover_token: RwSignal::new(None),
        markers: RwSignal::new(Vec::new()),
        help: RwSignal::new(false),
        gallery: RwSignal::new(false),
    };
    provide_context(ex);
    ex
}

/// The explorer state provided by [`provide_explorer`].
pub fn use_explorer() -> Explorer {
    expect_context::<Explorer>()
}

fn scenario_text(source: &Source) -> Result<String, String> {
    match source {
        Source::Preset(id) => preset(id).map(|p| p.text.to_string()).ok_or_else(|| {
            let ids: Vec<&str> = PRESETS.iter().map(|p| p.id).collect();
            format!("there is no preset {id:?}; the presets are {}", ids.join(", "))
        }),
        Source::Custom(text) => Ok(text.clone()),
    }
}

/// Parses and validates a scenario's text, with the line of the problem when there is one.
pub fn prepare_text(text: &str) -> Result<Prepared, String> {
    let scenario = parse(text).map_err(|e| e.to_string())?;
    prepare(scenario, text).map_err(|e| e.to_string())
}

fn options(spec: &RunSpec) -> RunOptions {
    RunOptions { seed: spec.seed, strategy: spec.strategy, ..RunOptions::default() }
}

/// `performance.now()` in milliseconds.
pub fn now_ms() -> f64 {
    window().performance().map_or(0.0, |p| p.now())
}

/// How an action reads in notices and markers.
pub fn describe_action(a: &Action) -> String {
    a.to_event().to_string()
}

impl Explorer {
    /// Loads a run: parses its scenario, replays its interventions, seeks to its cursor. On
    /// failure the current run stays and the error is shown.
    pub fn load(&self, spec: RunSpec) {
        if let Err(e) = self.try_load(spec) {
            self.error.set(Some(e));
        }
    }

    /// [`Explorer::load`], returning the error instead of showing it.
    pub fn try_load(&self, spec: RunSpec) -> Result<(), String> {
        let result = scenario_text(&spec.source).and_then(|text| {
            let p = prepare_text(&text)?;
            let title = match &spec.source {
                Source::Preset(id) => preset(id).map_or(id.clone(), |p| p.title.to_string()),
                Source::Custom(_) => p.scenario.name.clone(),
            };
            let description = p.scenario.description.trim().to_string();
            let player = Player::new(p, options(&spec), spec.interventions.clone())
                .map_err(|e| e.to_string())?;
            Ok((player, (title, description, text)))
        });
        match result {
            Ok((mut player, scenario)) => {
                if let Some(at) = spec.at {
                    player.seek(Instant::ZERO + at);
                }
                self.end.set(player.end());
                self.player.set_value(Some(player));
                self.scenario.set(Some(scenario));
                self.error.set(None);
                self.notice.set(None);
                self.last_message.set_value(None);
                // The link's message, if it is in flight at the link's time; from here on the
                // selection is the state and `sync_url` writes it back.
                let selection = spec.message.map_or(Selection::None, Selection::Message);
                self.selection.set(selection);
                self.highlight.set(None);
                self.spec.set(RunSpec { message: None, ..spec });
                self.publish();
                self.recompute();
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Publishes the player's current state as the frame to draw.
    pub fn publish(&self) {
        self.player.with_value(|p| {
            if let Some(p) = p {
                let snapshot = Snapshot::of(p.sim());
                self.remember_selected_message(&snapshot);
                self.snapshot.set(Some(Arc::new(snapshot)));
            }
        });
    }

    /// Keeps the selected message's latest view while it is in flight.
    fn remember_selected_message(&self, snapshot: &Snapshot) {
        if let Selection::Message(id) = self.selection.get_untracked()
            && let Some(m) = snapshot.messages.iter().find(|m| m.id == id)
        {
            self.last_message.set_value(Some(m.clone()));
        }
    }

    /// The selected message `id`: as drawn now while it is in flight; once it left the
    /// network, as last seen with its fate (for a request, the replica's verdict). `None` when
    /// it is not sent yet at this time (after seeking back) or was never seen.
    pub fn selected_message(&self, id: u64) -> Option<MessageView> {
        let now = self
            .snapshot
            .with(|s| s.as_ref().and_then(|s| s.messages.iter().find(|m| m.id == id).cloned()));
        now.or_else(|| {
            let last = self.last_message.get_value().filter(|m| m.id == id)?;
            self.player.with_value(|p| p.as_ref().and_then(|p| last.settled(p.sim())))
        })
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

    /// One animation frame of `dt_ms` wall-clock milliseconds.
    pub fn tick(&self, dt_ms: f64) {
        if !self.playing.get_untracked() {
            return;
        }
        let dt = Duration::from_secs_f64((dt_ms.min(100.0) / 1000.0) * self.speed.get_untracked());
        let mut at_end = false;
        self.player.update_value(|p| {
            if let Some(p) = p {
                p.advance_to(p.now() + dt);
                at_end = p.now() >= p.end();
            }
        });
        self.publish();
        if at_end {
            self.pause();
        }
    }

    /// Starts or stops playing (from the start again once at the end).
    pub fn toggle_play(&self) {
        if self.playing.get_untracked() {
            self.pause();
        } else {
            if self.now() >= self.end.get_untracked() {
                self.seek(Instant::ZERO);
            }
            self.playing.set(true);
        }
    }

    /// Stops playing and records the cursor in the URL.
    pub fn pause(&self) {
        self.playing.set(false);
        self.sync_url();
    }

    /// Moves the cursor.
    pub fn seek(&self, t: Instant) {
        self.player.update_value(|p| {
            if let Some(p) = p {
                p.seek(t);
            }
        });
        self.publish();
        if !self.playing.get_untracked() {
            self.sync_url();
        }
    }

    /// One step to the next thing that happens.
    pub fn step(&self) {
        self.playing.set(false);
        self.player.update_value(|p| {
            if let Some(p) = p {
                p.step();
            }
        });
        self.publish();
        self.sync_url();
    }

    /// Applies an action now; refused actions leave a notice and change nothing.
    pub fn intervene(&self, action: Action) {
        let text = describe_action(&action);
        let mut outcome = None;
        let before = self.spec.get_untracked().interventions.len();
        self.player.update_value(|p| {
            if let Some(p) = p {
                outcome = Some(p.intervene(action).map(|_| p.interventions().to_vec()));
            }
        });
        match outcome {
            Some(Ok(list)) => {
                // A message remembered from the future the intervention forked away is gone.
                if let Selection::Message(id) = self.selection.get_untracked()
                    && self.last_message.with_value(|m| {
                        m.as_ref().is_some_and(|m| m.id == id && m.sent_at > self.now())
                    })
                {
                    self.last_message.set_value(None);
                    self.selection.set(Selection::None);
                }
                let dropped = (before + 1).saturating_sub(list.len());
                let fork = if dropped > 0 {
                    format!(" — the run forked here: {dropped} later intervention(s) were dropped")
                } else {
                    String::new()
                };
                self.notice.set(Some((true, format!("{text}: done{fork}"))));
                self.spec.update(|s| s.interventions = list);
                self.publish();
                self.sync_url();
                self.recompute();
            }
            Some(Err(e)) => self.notice.set(Some((false, format!("{text}: refused — {e}")))),
            None => {}
        }
    }

    /// Replays the run under another strategy, keeping the cursor and the interventions.
    pub fn set_strategy(&self, strategy: JoinStrategy) {
        let mut spec = self.spec.get_untracked();
        spec.strategy = Some(strategy);
        spec.at = Some(self.now().saturating_duration_since(Instant::ZERO));
        self.load(spec);
    }

    /// Replays the run with another seed (interventions kept, cursor at the start).
    pub fn set_seed(&self, seed: u64) {
        let mut spec = self.spec.get_untracked();
        spec.seed = Some(seed);
        spec.at = None;
        self.load(spec);
    }

    /// Sets the strategies of the comparison lanes and recomputes them.
    pub fn set_lanes(&self, lanes: Vec<JoinStrategy>) {
        self.spec.update(|s| s.compare = lanes);
        self.sync_url();
        self.recompute_lanes();
    }

    /// The strategy the animated run uses (reactive: it changes only when the run is loaded).
    pub fn strategy(&self) -> Option<JoinStrategy> {
        self.spec.track();
        self.player.with_value(|p| {
            p.as_ref().map(|p| p.options().strategy.unwrap_or(p.prepared().node.join_strategy))
        })
    }

    /// The seed of the run (reactive like [`Explorer::strategy`]).
    pub fn seed(&self) -> Option<u64> {
        self.spec.track();
        self.player.with_value(|p| {
            p.as_ref().map(|p| p.options().seed.unwrap_or(p.prepared().scenario.seed))
        })
    }

    /// The lanes' strategies (the URL's, or the default for the scenario).
    pub fn lanes(&self) -> Vec<JoinStrategy> {
        let spec = self.spec.get();
        if !spec.compare.is_empty() {
            return spec.compare;
        }
        self.player
            .with_value(|p| {
                p.as_ref().map(|p| {
                    let id = match &spec.source {
                        Source::Preset(id) => Some(id.as_str()),
                        Source::Custom(_) => None,
                    };
                    default_lanes(id, p.prepared())
                })
            })
            .unwrap_or_default()
    }

    /// Writes the run into the address bar (without adding a history entry).
    pub fn sync_url(&self) {
        let mut spec = self.spec.get_untracked();
        spec.at =
            Some(self.now().saturating_duration_since(Instant::ZERO)).filter(|d| !d.is_zero());
        spec.message = match self.selection.get_untracked() {
            Selection::Message(id) => Some(id),
            _ => None,
        };
        let query = spec.to_query();
        if let Ok(history) = window().history() {
            let _ = history.replace_state_with_url(
                &wasm_bindgen::JsValue::NULL,
                "",
                Some(&format!("{}{query}", window().location().pathname().unwrap_or_default())),
            );
        }
    }

    /// Recomputes the checked full run and the lanes, after the next paint.
    fn recompute(&self) {
        let this = *self;
        this.full.set(None);
        set_timeout(
            move || {
                let computed = this.player.with_value(|p| {
                    p.as_ref().map(|p| {
                        let (report, sim) = p.full_run();
                        FullRun::new(report, sim.history().ops.clone())
                    })
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
    pub fn recompute_lanes(&self) {
        let this = *self;
        this.comparing.set(true);
        set_timeout(
            move || {
                let lanes = this.lanes();
                let computed = this.player.with_value(|p| {
                    p.as_ref().map(|p| {
                        let extra: Vec<TimelineEvent> =
                            p.interventions().iter().map(Intervention::to_event).collect();
                        let start = now_ms();
                        let c = compare_with(p.prepared(), &lanes, p.options(), &extra);
                        (Arc::new(c), now_ms() - start)
                    })
                });
                this.comparison.set(computed);
                this.comparing.set(false);
            },
            Duration::from_millis(20),
        );
    }

    fn markers_of(&self, full: &FullRun) -> Vec<Marker> {
        let mut out = Vec::new();
        self.player.with_value(|p| {
            if let Some(p) = p {
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
            }
        });
        for a in &full.report.check.anomalies {
            let class = match a.kind {
                AnomalyKind::StaleRead => "stale",
                AnomalyKind::LostWrite | AnomalyKind::LostUpdate => "lost",
                _ => "error",
            };
            out.push(Marker { at: a.time, label: a.explanation.clone(), class });
        }
        out
    }

    /// Selects a client operation: pauses, seeks to its invoke, and highlights its messages
    /// and the replicas that answered.
    pub fn select_op(&self, invoke: usize) {
        let Some(full) = self.full.get_untracked() else { return };
        let Some(op) = full.history.get(invoke).cloned() else { return };
        self.playing.set(false);
        let completed =
            full.pairing.completion_of(invoke).map_or(op.time, |c| full.history[c].time);
        self.seek(op.time);
        let found =
            self.player.with_value(|p| p.as_ref().map(|p| op_messages(p.sim(), &op, completed)));
        self.highlight.set(found.map(Arc::new));
        self.selection.set(Selection::Op(invoke));
    }

    /// Selects something other than an operation (clears the operation's highlight).
    pub fn select(&self, s: Selection) {
        self.highlight.set(None);
        self.selection.set(s);
        self.snapshot.with_untracked(|snap| {
            if let Some(snap) = snap {
                self.remember_selected_message(snap);
            }
        });
        if !self.playing.get_untracked() {
            self.sync_url();
        }
    }

    /// Loads a scenario file's text as a custom run.
    pub fn load_text(&self, text: String) -> Result<(), String> {
        self.try_load(RunSpec { source: Source::Custom(text), ..RunSpec::preset("") })
    }
}
