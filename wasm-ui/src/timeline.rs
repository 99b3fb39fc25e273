//! Time: play/pause, step, speed, and a timeline to scrub with markers for the scenario's events,
//! the user's interventions and the anomalies the checker found. An anomaly's marker sits where
//! the lanes and the history count it (at the completion it concerns); the final phase's anomalies
//! are past the end and have none.

use crate::state::{SPEEDS, use_explorer};
use leptos::prelude::*;
use ringside_core::Instant;
use std::time::Duration;

/// What the markers' colours mean (their classes are [`crate::run::Marker::class`]).
const MARKER_KINDS: [(&str, &str); 6] = [
    ("event", "scenario event"),
    ("user", "your action"),
    ("stale", "stale read"),
    ("lost", "lost write"),
    ("unavailable", "unavailable"),
    ("timeout", "timeout"),
];

/// Transport controls and the scrubber.
#[component]
pub fn Timeline() -> impl IntoView {
    let ex = use_explorer();
    let end_ms = move || ex.run.end.get().as_millis();
    let now_ms = move || ex.run.now().as_millis();
    let percent = move |at: Instant| {
        let end = ex.run.end.get().as_micros().max(1) as f64;
        at.as_micros() as f64 / end * 100.0
    };
    view! {
        <section id="timeline" class="panel timeline">
            <div class="transport">
                <button id="to-start" title="Back to the start (Home)" on:click=move |_| ex.seek(Instant::ZERO)>"⇤ Start"</button>
                <button
                    id="play"
                    class="primary"
                    title="Play / pause (Space)"
                    on:click=move |_| ex.toggle_play()
                >
                    {move || if ex.view.playing.get() { "⏸ Pause" } else { "▶ Play" }}
                </button>
                <button id="step" title="Step to the next thing that happens (→)" on:click=move |_| ex.step()>"Step →"</button>
                <label>
                    "Speed "
                    <select
                        id="speed"
                        title="Simulated time per second (+ / −)"
                        on:change=move |e| {
                            if let Ok(v) = event_target_value(&e).parse() {
                                ex.view.speed.set(v);
                            }
                        }
                        prop:value=move || ex.view.speed.get().to_string()
                    >
                        {SPEEDS.iter().map(|s| view! { <option value=s.to_string()>{format!("{s}×")}</option> }).collect_view()}
                    </select>
                </label>
                <output id="clock">
                    {move || format!("{:.3} s / {:.0} s", ex.run.now().as_micros() as f64 / 1e6, end_ms() as f64 / 1000.0)}
                </output>
            </div>
            <div class="scrub">
                <div class="markers" aria-hidden="true">
                    <For
                        each=move || ex.run.markers.get().into_iter().enumerate()
                        key=|(i, m)| (*i, m.at, m.class)
                        children=move |(_, m)| {
                            let at = m.at;
                            view! {
                                <span
                                    class=format!("marker {}", m.class)
                                    data-at=at.as_micros()
                                    style=move || format!("left:{:.3}%", percent(at))
                                    title=format!("{:.3} s: {}", at.as_micros() as f64 / 1e6, m.label)
                                    on:click=move |_| ex.jump(at)
                                ></span>
                            }
                        }
                    />
                </div>
                <input
                    id="scrubber"
                    type="range"
                    min="0"
                    step="1"
                    aria-label="Simulated time"
                    prop:max=move || end_ms().to_string()
                    prop:value=move || now_ms().to_string()
                    on:input=move |e| {
                        if let Ok(ms) = event_target_value(&e).parse::<u64>() {
                            ex.jump(Instant::ZERO + Duration::from_millis(ms));
                        }
                    }
                />
            </div>
            <div id="marker-legend" class="marker-legend">
                {MARKER_KINDS.iter().map(|(class, label)| view! {
                    <span class="legend-item"><span class=format!("marker-swatch {class}")></span>{*label}</span>
                }).collect_view()}
            </div>
        </section>
    }
}
