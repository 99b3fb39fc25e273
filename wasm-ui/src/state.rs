//! The explorer's state: the [`Run`] model (the engine's player and what is derived from it)
//! and a small [`ViewState`] (playing, selection, filters, dialogs, notices). [`Explorer`] holds
//! both and does what touches both (a selection written into the URL, a notice for a refused
//! intervention). [`provide_explorer`] / [`use_explorer`] share it with the page's panels; leaf
//! components take props instead.

use crate::run::{Run, describe_action};
use crate::url::{RunSpec, Source};
use leptos::prelude::*;
use ringside_core::Instant;
use ringside_core::explore::{Action, MessageView, Snapshot};
use ringside_core::membership::JoinStrategy;
use ringside_core::message::MessageKind;
use std::sync::Arc;
use std::time::Duration;

/// The preset shown when the URL names none.
pub const DEFAULT_PRESET: &str = "join-staged";

/// Speeds offered, as simulated seconds per wall-clock second.
pub const SPEEDS: &[f64] = &[0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0];
/// The speed a run starts at: messages 20–60 ms in flight stay visible for a few frames, and a
/// minute of simulated time plays in four.
pub const DEFAULT_SPEED: f64 = 0.25;

/// What the user clicked.
#[derive(Clone, Debug, PartialEq)]
pub enum Selection {
    /// Nothing is selected.
    None,
    /// A node.
    Node(ringside_core::NodeId),
    /// A message (by id), clicked while in flight; it stays selected once it left the network,
    /// so that its fate (a request's verdict) is explained.
    Message(u64),
    /// A client operation (index of its invoke in the history).
    Op(usize),
}

/// The outcome of the user's last action, shown in the inspector.
#[derive(Clone, Debug, PartialEq)]
pub enum Notice {
    /// It was done.
    Done(String),
    /// It was refused or could not be understood; nothing changed.
    Refused(String),
}

/// A lesson's pause at a labelled event.
#[derive(Clone, Debug, PartialEq)]
pub struct Caption {
    /// When the event happens.
    pub at: Instant,
    /// Its label.
    pub label: String,
    /// Its note, or what it does when it has none.
    pub text: String,
    /// The node it concerns, highlighted.
    pub node: Option<String>,
    /// A client operation's key (the operation is selected, its messages lit).
    pub op_key: Option<String>,
}

/// How the run is being looked at (cheap to copy: every field is a handle).
#[derive(Clone, Copy)]
pub struct ViewState {
    /// Playing or paused.
    pub playing: RwSignal<bool>,
    /// Simulated seconds per second.
    pub speed: RwSignal<f64>,
    /// What is selected.
    pub selection: RwSignal<Selection>,
    /// Message kinds not drawn.
    pub hidden: RwSignal<Vec<MessageKind>>,
    /// Messages and replicas of the selected operation.
    pub highlight: RwSignal<Option<Arc<ringside_core::explore::OpMessages>>>,
    /// The token under the pointer on the ring.
    pub hover_token: RwSignal<Option<u64>>,
    /// The help overlay (legend and shortcuts) is open.
    pub help: RwSignal<bool>,
    /// The preset gallery is open.
    pub gallery: RwSignal<bool>,
    /// The course menu is open.
    pub course: RwSignal<bool>,
    /// A scenario or link that could not be loaded.
    pub error: RwSignal<Option<String>>,
    /// The outcome of the last action.
    pub notice: RwSignal<Option<Notice>>,
    /// Lesson mode's caption, while paused at a labelled event.
    pub caption: RwSignal<Option<Caption>>,
    /// The run as it was before an intervention forked the past (its later interventions
    /// dropped), to undo that.
    pub undo: RwSignal<Option<RunSpec>>,
}

impl ViewState {
    fn new() -> ViewState {
        ViewState {
            playing: RwSignal::new(false),
            speed: RwSignal::new(DEFAULT_SPEED),
            selection: RwSignal::new(Selection::None),
            hidden: RwSignal::new(vec![MessageKind::Gossip]),
            highlight: RwSignal::new(None),
            hover_token: RwSignal::new(None),
            help: RwSignal::new(false),
            gallery: RwSignal::new(false),
            course: RwSignal::new(false),
            error: RwSignal::new(None),
            notice: RwSignal::new(None),
            caption: RwSignal::new(None),
            undo: RwSignal::new(None),
        }
    }
}

/// The run and the view of it.
#[derive(Clone, Copy)]
pub struct Explorer {
    /// The run being explored.
    pub run: Run,
    /// How it is being looked at.
    pub view: ViewState,
    /// The selected message as last seen in flight (see [`Explorer::selected_message`]).
    last_message: StoredValue<Option<MessageView>>,
}

/// Creates the explorer state and provides it to the components below.
pub fn provide_explorer() -> Explorer {
    let ex = Explorer {
        run: Run::new(RunSpec::preset(DEFAULT_PRESET)),
        view: ViewState::new(),
        last_message: StoredValue::new(None),
    };
    provide_context(ex);
    // The selected message is remembered on every frame in which it is in flight.
    Effect::new(move |_| {
        ex.run.snapshot.with(|s| {
            if let Some(s) = s {
                ex.remember_selected_message(s);
            }
        })
    });
    ex
}

/// The explorer state provided by [`provide_explorer`].
pub fn use_explorer() -> Explorer {
    expect_context::<Explorer>()
}

impl Explorer {
    /// Loads a run; on failure the current run stays and the error is shown.
    pub fn load(&self, spec: RunSpec) {
        if let Err(e) = self.try_load(spec) {
            self.view.error.set(Some(e));
        }
    }

    /// [`Explorer::load`], returning the error instead of showing it.
    pub fn try_load(&self, spec: RunSpec) -> Result<(), String> {
        // The link's message, if it is in flight at the link's time; from here on the selection
        // is the state and `sync_url` writes it back.
        let selection = spec.message.map_or(Selection::None, Selection::Message);
        let cursor_given = spec.at.is_some();
        self.run.load(spec)?;
        // An exercise opens just before its first question's moment.
        if !cursor_given && let Some(e) = self.run.exercise.get_untracked() {
            self.run.seek(crate::course::opening_moment(&e));
        }
        self.view.error.set(None);
        self.view.notice.set(None);
        self.view.undo.set(None);
        self.view.highlight.set(None);
        self.last_message.set_value(None);
        self.view.selection.set(selection);
        self.run.snapshot.with_untracked(|s| {
            if let Some(s) = s {
                self.remember_selected_message(s);
            }
        });
        self.sync_url();
        Ok(())
    }

    /// Loads a scenario file's text as a custom run.
    pub fn load_text(&self, text: String) -> Result<(), String> {
        self.try_load(RunSpec { source: Source::Custom(text), ..RunSpec::preset("") })
    }

    /// Keeps the selected message's latest view while it is in flight.
    fn remember_selected_message(&self, snapshot: &Snapshot) {
        if let Selection::Message(id) = self.view.selection.get_untracked()
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
            .run
            .snapshot
            .with(|s| s.as_ref().and_then(|s| s.messages.iter().find(|m| m.id == id).cloned()));
        now.or_else(|| {
            let last = self.last_message.get_value().filter(|m| m.id == id)?;
            self.run.with_player(|p| last.settled(p.sim())).flatten()
        })
    }

    /// One animation frame of `dt_ms` wall-clock milliseconds.
    pub fn tick(&self, dt_ms: f64) {
        if !self.view.playing.get_untracked() {
            return;
        }
        let speed = self.view.speed.get_untracked();
        let dt = Duration::from_secs_f64((dt_ms.min(100.0) / 1000.0) * speed);
        if self.run.spec.with_untracked(|s| s.lesson)
            && let Some(caption) = self.next_caption(self.run.now() + dt)
        {
            self.run.seek(caption.at);
            self.pause();
            self.highlight_caption(&caption);
            self.view.caption.set(Some(caption));
            return;
        }
        if self.run.advance(dt) {
            self.pause();
        }
    }

    /// The first labelled event after the cursor and not after `until`, as lesson mode
    /// captions it.
    fn next_caption(&self, until: Instant) -> Option<Caption> {
        let now = self.run.now();
        self.run
            .with_player(|p| {
                p.prepared()
                    .events
                    .iter()
                    .filter(|e| e.label.is_some() || e.note.is_some())
                    .map(|e| (Instant::ZERO + e.at, e))
                    .filter(|(at, _)| *at > now && *at <= until)
                    .min_by_key(|(at, _)| *at)
                    .map(|(at, e)| Caption {
                        at,
                        label: e.label.clone().unwrap_or_else(|| e.event.to_string()),
                        text: e.note.clone().unwrap_or_else(|| e.event.to_string()),
                        node: e.event.node().map(str::to_string),
                        op_key: e.event.client_op().map(|(_, op)| op.key.clone()),
                    })
            })
            .flatten()
    }

    /// Lights what a caption is about: its client operation (messages and replicas), or its node.
    fn highlight_caption(&self, c: &Caption) {
        let invoke = c
            .op_key
            .as_ref()
            .and_then(|key| self.run.full.with_untracked(|f| f.as_ref()?.invoke_at(c.at, key)));
        if let Some(i) = invoke {
            self.select_op(i);
        } else if let Some(i) =
            c.node.as_ref().and_then(|n| self.run.names().iter().position(|x| x == n))
        {
            self.select(Selection::Node(ringside_core::NodeId(i as u32)));
        }
    }

    /// Leaves a lesson's caption and plays on.
    pub fn continue_lesson(&self) {
        self.view.caption.set(None);
        self.view.playing.set(true);
    }

    /// Turns lesson mode on or off (it is part of the link).
    pub fn set_lesson(&self, on: bool) {
        self.run.spec.update(|s| s.lesson = on);
        if !on {
            self.view.caption.set(None);
        }
        self.sync_url();
    }

    /// Starts or stops playing (from the start again once at the end).
    pub fn toggle_play(&self) {
        if self.view.playing.get_untracked() {
            self.pause();
        } else {
            if self.run.now() >= self.run.end.get_untracked() {
                self.seek(Instant::ZERO);
            }
            self.view.caption.set(None);
            self.view.playing.set(true);
        }
    }

    /// Stops playing and records the cursor in the URL.
    pub fn pause(&self) {
        self.view.playing.set(false);
        self.sync_url();
    }

    /// Moves the cursor (the URL follows while paused).
    pub fn seek(&self, t: Instant) {
        if self.view.caption.with_untracked(|c| c.as_ref().is_some_and(|c| c.at != t)) {
            self.view.caption.set(None);
        }
        self.run.seek(t);
        if !self.view.playing.get_untracked() {
            self.sync_url();
        }
    }

    /// Stops playing and moves the cursor there: a click on the timeline, a marker or a chart.
    pub fn jump(&self, t: Instant) {
        self.view.playing.set(false);
        self.seek(t);
    }

    /// One step to the next thing that happens.
    pub fn step(&self) {
        self.view.playing.set(false);
        self.run.step();
        self.sync_url();
    }

    /// Applies an action now; a refused action leaves a notice and changes nothing.
    pub fn intervene(&self, action: Action) {
        let text = describe_action(&action);
        let before = self.run.spec.get_untracked();
        let before_at = self.run.now();
        match self.run.intervene(action) {
            Ok(done) => {
                // A message remembered from the future the intervention forked away is gone.
                let now = self.run.now();
                if let Selection::Message(id) = self.view.selection.get_untracked()
                    && self
                        .last_message
                        .with_value(|m| m.as_ref().is_some_and(|m| m.id == id && m.sent_at > now))
                {
                    self.last_message.set_value(None);
                    self.view.selection.set(Selection::None);
                }
                let fork = if done.dropped > 0 {
                    // The interventions after this moment that the fork dropped, by name.
                    let kept = self.run.spec.with_untracked(|s| s.interventions.clone());
                    let dropped: Vec<String> = before
                        .interventions
                        .iter()
                        .filter(|i| !kept.contains(i))
                        .map(|i| {
                            format!("{} at {:.3} s", describe_action(&i.action), i.at.as_secs_f64())
                        })
                        .collect();
                    let mut undo = before.clone();
                    undo.at = Some(before_at.saturating_duration_since(Instant::ZERO));
                    self.view.undo.set(Some(undo));
                    format!(" — the run forked here and dropped {}", dropped.join(", "))
                } else {
                    self.view.undo.set(None);
                    String::new()
                };
                self.view.notice.set(Some(Notice::Done(format!("{text}: done{fork}"))));
                self.sync_url();
            }
            Err(e) => self.refuse(format!("{text}: refused — {e}")),
        }
    }

    /// Undoes the last fork: the run as it was, its dropped interventions back.
    pub fn undo_fork(&self) {
        if let Some(spec) = self.view.undo.get_untracked() {
            self.view.undo.set(None);
            self.load(spec);
            self.view
                .notice
                .set(Some(Notice::Done("undone: the dropped interventions are back".into())));
        }
    }

    /// Shows why something the user asked for was not done.
    pub fn refuse(&self, why: String) {
        self.view.notice.set(Some(Notice::Refused(why)));
    }

    /// Replays the run under another strategy, keeping the cursor and the interventions.
    pub fn set_strategy(&self, strategy: JoinStrategy) {
        let mut spec = self.run.spec.get_untracked();
        spec.strategy = Some(strategy);
        spec.at = Some(self.run.now().saturating_duration_since(Instant::ZERO));
        self.load(spec);
    }

    /// Replays the run with another seed (interventions kept, cursor at the start).
    pub fn set_seed(&self, seed: u64) {
        let mut spec = self.run.spec.get_untracked();
        spec.seed = Some(seed);
        spec.at = None;
        self.load(spec);
    }

    /// Sets the strategies of the comparison lanes.
    pub fn set_lanes(&self, lanes: Vec<JoinStrategy>) {
        self.run.set_lanes(lanes);
        self.sync_url();
    }

    /// Writes the run into the address bar (without adding a history entry).
    pub fn sync_url(&self) {
        let mut spec = self.run.spec.get_untracked();
        spec.at =
            Some(self.run.now().saturating_duration_since(Instant::ZERO)).filter(|d| !d.is_zero());
        spec.message = match self.view.selection.get_untracked() {
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

    /// Selects a client operation: pauses, seeks to its invoke, and highlights its messages
    /// and the replicas that answered.
    pub fn select_op(&self, invoke: usize) {
        let Some(full) = self.run.full.get_untracked() else { return };
        let Some(op) = full.history.get(invoke).cloned() else { return };
        let completed =
            full.pairing.completion_of(invoke).map_or(op.time, |c| full.history[c].time);
        self.jump(op.time);
        self.view.highlight.set(self.run.op_messages(&op, completed).map(Arc::new));
        self.view.selection.set(Selection::Op(invoke));
    }

    /// Selects something other than an operation (clears the operation's highlight).
    pub fn select(&self, s: Selection) {
        self.view.highlight.set(None);
        self.view.selection.set(s);
        self.run.snapshot.with_untracked(|snap| {
            if let Some(snap) = snap {
                self.remember_selected_message(snap);
            }
        });
        if !self.view.playing.get_untracked() {
            self.sync_url();
        }
    }
}
