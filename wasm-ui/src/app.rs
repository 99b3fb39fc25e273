//! The page: header controls, the ring with the panels beside it, the timeline, the history and
//! the strategy lanes; keyboard shortcuts and the animation loop.

use crate::course::{CourseMenu, ExercisePanel};
use crate::gallery::{Dialog, Gallery, ScenarioInfo};
use crate::history::HistoryPane;
use crate::lanes::Lanes;
use crate::panels::{Actions, Inspector, NodeTable};
use crate::ring::{KINDS, RingView, kind_class};
use crate::state::{DEFAULT_PRESET, Notice, SPEEDS, Selection, provide_explorer, use_explorer};
use crate::timeline::Timeline;
use crate::url::RunSpec;
use leptos::prelude::*;
use ringside_core::Instant;
use ringside_core::membership::JoinStrategy;
use ringside_core::message::MessageKind;
use ringside_core::sim::reference_trace_hash;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::Closure;

/// The whole page.
#[component]
pub fn App() -> impl IntoView {
    let ex = provide_explorer();
    let query = window().location().search().unwrap_or_default();
    match RunSpec::from_query(&query, DEFAULT_PRESET) {
        Ok(spec) => ex.load(spec),
        Err(e) => {
            ex.load(RunSpec::preset(DEFAULT_PRESET));
            ex.view.error.set(Some(format!(
                "The link could not be replayed: {e}. Showing the default scenario."
            )));
        }
    }
    animation_loop(move |dt| ex.tick(dt));
    keyboard_shortcuts();
    view! {
        <Header/>
        {move || ex.view.error.get().map(|e| view! {
            <p id="load-error" class="error banner">{e}<button on:click=move |_| ex.view.error.set(None)>"✕"</button></p>
        })}
        <main class="explorer">
            <div class="stage">
                <div class="ring-box">
                    <LessonCaption/>
                    <RingView/>
                    <Legend hidden=ex.view.hidden/>
                </div>
                <div class="side">
                    <ExercisePanel/>
                    <NodeTable/>
                    <Inspector/>
                    <HistoryPane/>
                </div>
            </div>
            <Timeline/>
            <div class="lower">
                <Actions/>
                <div class="lower-right">
                    <Lanes/>
                    <ScenarioInfo scenario=ex.run.scenario/>
                </div>
            </div>
            <DeterminismProbe/>
        </main>
        <Gallery/>
        <CourseMenu/>
        <Help open=ex.view.help/>
    }
}

#[component]
fn Header() -> impl IntoView {
    let ex = use_explorer();
    let (seed_text, set_seed_text) = signal(String::new());
    let seed_shown = move || ex.run.seed().map(|s| s.to_string());
    let apply_seed = move || match seed_text.get_untracked().trim().parse::<u64>() {
        Ok(seed) => ex.set_seed(seed),
        Err(_) => ex.refuse(format!("A seed is a whole number from 0 to {}.", u64::MAX)),
    };
    view! {
        <header class="top">
            <h1>"Ringside"<span>" explorer"</span></h1>
            <button id="open-gallery" class="primary" on:click=move |_| ex.view.gallery.set(true)>"Scenarios…"</button>
            <button id="open-course-menu" title="Exercises: predict, run, compare (c)" on:click=move |_| ex.view.course.set(true)>"Course…"</button>
            <span id="scenario-title" class="title">{move || ex.run.scenario.with(|s| s.as_ref().map(|s| s.title.clone()))}</span>
            <label>
                "Seed "
                <input id="run-seed" size="8" inputmode="numeric"
                    prop:value=move || seed_shown().unwrap_or_default()
                    on:input=move |e| set_seed_text.set(event_target_value(&e))
                    on:change=move |_| apply_seed()/>
            </label>
            <button title="A new random seed" on:click=move |_| ex.set_seed((js_sys::Math::random() * 1e15) as u64)>"Random"</button>
            <label>
                "Strategy "
                <select id="run-strategy" prop:value=move || ex.run.strategy().map(|s| s.name().to_string()).unwrap_or_default()
                    on:change=move |e| {
                        if let Ok(s) = event_target_value(&e).parse::<JoinStrategy>() {
                            ex.set_strategy(s)
                        }
                    }>
                    {JoinStrategy::ALL.iter().map(|s| view! { <option value=s.name()>{s.name()}</option> }).collect_view()}
                </select>
            </label>
            <button id="share" title="The address bar always holds the whole run; this copies it"
                on:click=move |_| {
                    ex.sync_url();
                    let href = window().location().href().unwrap_or_default();
                    let _ = window().navigator().clipboard().write_text(&href);
                    ex.view.notice.set(Some(Notice::Done("Link copied: it replays this exact run (seed, scenario, strategies, interventions, time).".into())));
                }>"Copy link"</button>
            <label class="check" title="Pause at each labelled event of the scenario and explain it">
                <input id="lesson" type="checkbox" prop:checked=move || ex.run.spec.with(|s| s.lesson)
                    on:change=move |e| ex.set_lesson(event_target_checked(&e))/>
                "Lesson"
            </label>
            <button id="help" title="Legend and keyboard shortcuts (?)" on:click=move |_| ex.view.help.update(|h| *h = !*h)>"?"</button>
        </header>
    }
}

/// Lesson mode's caption: what the labelled event the run paused at shows, and Continue.
#[component]
fn LessonCaption() -> impl IntoView {
    let ex = use_explorer();
    move || {
        ex.view.caption.get().map(|c| view! {
            <div id="caption" class="caption" role="status">
                <strong>{format!("{:.1} s · {}", c.at.as_micros() as f64 / 1e6, c.label)}</strong>
                <p>{c.text.split_whitespace().collect::<Vec<_>>().join(" ")}</p>
                <button id="lesson-continue" class="primary" on:click=move |_| ex.continue_lesson()>"Continue ▶"</button>
            </div>
        })
    }
}

/// Message colours, which double as filters: the kinds in `hidden` are not drawn.
#[component]
fn Legend(hidden: RwSignal<Vec<MessageKind>>) -> impl IntoView {
    view! {
        <div id="legend" class="legend">
            {KINDS.iter().map(|(kind, label)| {
                let kind = *kind;
                view! {
                    <label class="check" title="show or hide this kind of message">
                        <input type="checkbox" class="kind-filter" data-kind=kind_class(kind)
                            prop:checked=move || !hidden.get().contains(&kind)
                            on:change=move |e| {
                                let on = event_target_checked(&e);
                                hidden.update(|h| { h.retain(|k| *k != kind); if !on { h.push(kind); } });
                            }/>
                        <span class=format!("dot {}", kind_class(kind))></span>
                        {*label}
                    </label>
                }
            }).collect_view()}
            <span class="legend-item"><span class="dot dropped"></span>"will be dropped"</span>
            <span class="legend-item"><span class="band pending"></span>"pending range"</span>
        </div>
    }
}

/// The legend and the keyboard shortcuts, while `open` is set.
#[component]
fn Help(open: RwSignal<bool>) -> impl IntoView {
    view! {
        <Dialog open=open id="help-dialog" title="How to read this">
                    <dl class="help">
                        <dt>"The ring"</dt>
                        <dd>"Each coloured arc is a vnode's range, coloured by the node that owns it (its primary replica). A key lives on the first RF distinct nodes met walking clockwise from its token: hover over the ring to see the walk. The thin outer band marks pending ranges: extra write targets while a node joins or leaves."</dd>
                        <dt>"Status"</dt>
                        <dd>"As nodetool prints it: U/D for up or down, then N (normal), J (joining) or L (leaving). Owns is effective ownership; it is ? while a node joins."</dd>
                        <dt>"Messages"</dt>
                        <dd>"Dots fly from sender to receiver over their real send and delivery times. Red ones will be dropped (loss, partition, or the receiver is down). Click one to have it explained; the legend's boxes filter kinds."</dd>
                        <dt>"History"</dt>
                        <dd>"Every client operation, with the checker's stale reads and lost writes flagged, and the requests refused as unavailable or timed out. Click one to jump to it: its messages and the replicas that answered light up."</dd>
                        <dt>"Glossary"</dt>
                        <dd>
                            <dl id="glossary" class="glossary">
                                {crate::glossary::GLOSSARY.iter().map(|t| view! {
                                    <dt>{t.term}</dt><dd>{t.definition}</dd>
                                }).collect_view()}
                            </dl>
                        </dd>
                        <dt>"Keyboard"</dt>
                        <dd><kbd>"Space"</kbd>" play/pause · "<kbd>"→"</kbd>" or "<kbd>"."</kbd>" step · "<kbd>"←"</kbd>" back 100 ms · "<kbd>"+"</kbd>"/"<kbd>"−"</kbd>" speed · "<kbd>"Home"</kbd>" start · "<kbd>"g"</kbd>" scenarios · "<kbd>"c"</kbd>" course · "<kbd>"?"</kbd>" this help · "<kbd>"Esc"</kbd>" close / deselect"</dd>
                    </dl>
        </Dialog>
    }
}

/// Calls `f` with the milliseconds since the previous frame, on every animation frame.
fn animation_loop(mut f: impl FnMut(f64) + 'static) {
    type Frame = Rc<RefCell<Option<Closure<dyn FnMut(f64)>>>>;
    let frame: Frame = Rc::new(RefCell::new(None));
    let again = frame.clone();
    let mut last: Option<f64> = None;
    *frame.borrow_mut() = Some(Closure::new(move |ts: f64| {
        f(last.map_or(0.0, |l| ts - l));
        last = Some(ts);
        if let Some(cb) = again.borrow().as_ref() {
            let _ = window().request_animation_frame(cb.as_ref().unchecked_ref());
        }
    }));
    if let Some(cb) = frame.borrow().as_ref() {
        let _ = window().request_animation_frame(cb.as_ref().unchecked_ref());
    }
}

fn keyboard_shortcuts() {
    let ex = use_explorer();
    let handle = window_event_listener(leptos::ev::keydown, move |e| {
        // Keys typed into a text field are the field's. A slider, a checkbox or a drop-down
        // keeps focus after a click; the shortcuts still work there (the control loses focus).
        let target = e.target().and_then(|t| t.dyn_into::<web_sys::HtmlElement>().ok());
        let typing = target.as_ref().is_some_and(|el| match el.tag_name().as_str() {
            "TEXTAREA" => true,
            "INPUT" => !matches!(
                el.get_attribute("type").as_deref(),
                Some("range" | "checkbox" | "radio" | "button")
            ),
            _ => false,
        });
        if typing || e.ctrl_key() || e.meta_key() || e.alt_key() {
            return;
        }
        let focused_control = target.filter(|el| el.tag_name() != "BODY");
        let speed_step = |up: bool| {
            let now = ex.view.speed.get_untracked();
            let i = SPEEDS.iter().position(|s| *s == now).unwrap_or(2);
            let j = if up { (i + 1).min(SPEEDS.len() - 1) } else { i.saturating_sub(1) };
            ex.view.speed.set(SPEEDS[j]);
        };
        match e.key().as_str() {
            " " => ex.toggle_play(),
            "ArrowRight" | "." => ex.step(),
            "ArrowLeft" | "," => {
                let back = ex
                    .run
                    .now()
                    .saturating_duration_since(Instant::ZERO)
                    .saturating_sub(Duration::from_millis(100));
                ex.jump(Instant::ZERO + back);
            }
            "+" | "=" => speed_step(true),
            "-" | "_" => speed_step(false),
            "Home" => ex.seek(Instant::ZERO),
            "g" => ex.view.gallery.set(true),
            "c" => ex.view.course.set(true),
            "?" => ex.view.help.update(|h| *h = !*h),
            "Escape" => {
                ex.view.help.set(false);
                ex.view.gallery.set(false);
                ex.view.course.set(false);
                ex.select(Selection::None);
            }
            _ => return,
        }
        if let Some(el) = focused_control {
            let _ = el.blur();
        }
        e.prevent_default();
    });
    // The listener lives as long as the page.
    std::mem::forget(handle);
}

/// Runs the simulator's built-in reference scenario for a seed and shows the hash of its trace.
/// The same seed gives the same hash here and natively (`cargo xtask test` checks it); a
/// different hash would mean the browser is not replaying what a native run did.
#[component]
fn DeterminismProbe() -> impl IntoView {
    let (seed_text, set_seed_text) = signal(initial_probe_seed().to_string());
    let seed = Memo::new(move |_| parse_seed(&seed_text.read()));
    let trace_hash = Memo::new(move |_| seed.get().map(reference_trace_hash));

    view! {
        <section class="panel probe">
            <h2>"Determinism probe"</h2>
            <p>
                "The engine never touches a clock or OS randomness: a run is fully determined by its seed. "
                "The reference scenario for this seed, simulated here in WebAssembly, produced the trace "
                "hash below; a native run prints the same one."
            </p>
            <label>
                "Seed "
                <input
                    id="seed"
                    type="text"
                    inputmode="numeric"
                    spellcheck="false"
                    prop:value=seed_text
                    on:input=move |event| set_seed_text.set(event_target_value(&event))
                />
            </label>
            " Trace hash: "
            <output id="trace-hash">{move || trace_hash.get().map(format_trace_hash)}</output>
            <Show when=move || seed.get().is_none()>
                <p class="error">"A seed is a whole number from 0 to 18446744073709551615."</p>
            </Show>
        </section>
    }
}

/// The probe's seed: the URL's `?seed=`, or 42.
fn initial_probe_seed() -> u64 {
    let query = window().location().search().unwrap_or_default();
    query
        .trim_start_matches('?')
        .split('&')
        .find_map(|pair| pair.strip_prefix("seed="))
        .and_then(parse_seed)
        .unwrap_or(42)
}

fn parse_seed(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// Hashes are shown as 16 hex digits, the way `core/examples/trace_hashes.rs` prints them.
fn format_trace_hash(hash: u64) -> String {
    format!("{hash:016x}")
}
