//! Strategy lanes: the same scenario, seed, workload, faults and interventions under several
//! join strategies, side by side, with counters at the shared time cursor and a chart of
//! anomalies per second under each lane.
//!
//! The counters are [`Lane::at`], which counts anomalies with the same rule as the history pane
//! and the timeline markers (`ringside_core::compare::counted_at`): at the completion they
//! concern, and those of the final phase apart, "after the run".

use crate::panels::human_bytes;
use crate::run::LaneState;
use crate::state::use_explorer;
use leptos::prelude::*;
use ringside_core::Instant;
use ringside_core::compare::{AnomalyCounts, Lane, LaneAt, ToNormal};
use ringside_core::membership::JoinStrategy;
use std::time::Duration;

/// The chart's drawing box, in SVG units; it is drawn about one unit to the pixel, so that its
/// labels read at the page's small text size.
const CHART_W: f64 = 480.0;
const CHART_H: f64 = 64.0;
/// The plot inside it: room on the left for the count axis, below for the time axis.
const PLOT_LEFT: f64 = 38.0;
const PLOT_RIGHT: f64 = CHART_W - 10.0;
const PLOT_TOP: f64 = 6.0;
const PLOT_BOTTOM: f64 = 46.0;

/// The anomaly kinds a chart stacks, bottom up: CSS class (colour and pattern) and legend text.
const KINDS: [(&str, &str); 4] = [
    ("stale", "stale reads"),
    ("lost", "lost writes"),
    ("unavailable", "unavailable"),
    ("timeout", "timeouts"),
];

/// The counts of [`KINDS`], in its order.
fn by_kind(c: &AnomalyCounts) -> [u64; 4] {
    [c.stale_reads, c.lost(), c.unavailable, c.timeouts]
}

/// The x of time `micros` in a run of `end_micros`.
fn x_of(micros: u64, end_micros: u64) -> f64 {
    PLOT_LEFT + micros as f64 / end_micros.max(1) as f64 * (PLOT_RIGHT - PLOT_LEFT)
}

/// Time-axis ticks, in whole seconds: a round step giving at most seven of them.
fn time_ticks(seconds: u64) -> Vec<u64> {
    let step = [1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 1200, 3600]
        .into_iter()
        .find(|step| seconds / step <= 6)
        .unwrap_or(seconds.max(1));
    (0..=seconds).step_by(step as usize).collect()
}

/// "after the run: 4 stale reads, 1 timeout", or nothing when the final phase found nothing.
fn after_run_text(c: &AnomalyCounts) -> Option<String> {
    let parts: Vec<String> = KINDS
        .iter()
        .zip(by_kind(c))
        .filter(|(_, n)| *n > 0)
        .map(|((_, label), n)| {
            let label = if n == 1 { label.trim_end_matches('s') } else { label };
            format!("{n} {label}")
        })
        .collect();
    (!parts.is_empty()).then(|| format!("after the run: {}", parts.join(", ")))
}

fn to_normal_text(t: ToNormal) -> (String, &'static str) {
    match t {
        ToNormal::NotStarted => ("—".into(), "no join has started yet"),
        ToNormal::Joining => ("joining…".into(), "a joiner is not NORMAL yet"),
        ToNormal::Normal(d) => {
            (format!("{:.1} s", d.as_secs_f64()), "from the join's start to NORMAL (the slowest)")
        }
        ToNormal::AfterRun(d) => (
            format!("after the run ({:.1} s)", d.as_secs_f64()),
            "not NORMAL by the end of the run: it became NORMAL in the final phase, this long \
             after it started",
        ),
        ToNormal::Failed => ("failed".into(), "the join failed"),
        ToNormal::Unfinished => ("unfinished".into(), "not NORMAL by the end, nor after it"),
    }
}

/// The bars and axes of one lane's chart; `ymax` is the count at the top (shared by the lanes so
/// that their heights compare).
fn chart(lane: &Lane, ymax: u64) -> impl IntoView + use<> {
    let end = lane.anomalies.end.as_micros();
    let ymax = ymax.max(1);
    let height = PLOT_BOTTOM - PLOT_TOP;
    let bars: Vec<_> = lane
        .anomalies
        .per_second()
        .iter()
        .enumerate()
        .flat_map(|(second, counts)| {
            let second = second as u64;
            let x0 = x_of(second * 1_000_000, end);
            let x1 = x_of(((second + 1) * 1_000_000).min(end), end);
            let width = ((x1 - x0) * 0.85).max(1.5);
            let mut y = PLOT_BOTTOM;
            KINDS
                .iter()
                .zip(by_kind(counts))
                .filter(|(_, n)| *n > 0)
                .map(|((class, label), n)| {
                    let h = n as f64 / ymax as f64 * height;
                    y -= h;
                    view! {
                        <rect class=format!("bar {class}") x=format!("{x0:.2}") y=format!("{y:.2}")
                            width=format!("{width:.2}") height=format!("{h:.2}")>
                            <title>{format!("{second}–{} s: {n} {label}", second + 1)}</title>
                        </rect>
                    }
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let seconds = end / 1_000_000;
    let ticks = time_ticks(seconds);
    let last = ticks.last().copied();
    let x_labels = ticks
        .into_iter()
        .map(|s| {
            let x = x_of(s * 1_000_000, end);
            let anchor = if s == 0 {
                "start"
            } else if Some(s) == last && x > PLOT_RIGHT - 12.0 {
                "end"
            } else {
                "middle"
            };
            view! {
                <line class="tick" x1=format!("{x:.2}") x2=format!("{x:.2}") y1=PLOT_BOTTOM y2=PLOT_BOTTOM + 3.0></line>
                <text class="tick-label" x=format!("{x:.2}") y=PLOT_BOTTOM + 13.0 text-anchor=anchor>{format!("{s} s")}</text>
            }
        })
        .collect_view();
    view! {
        <rect class="chart-bg" x=PLOT_LEFT y=PLOT_TOP width=PLOT_RIGHT - PLOT_LEFT height=height></rect>
        <line class="grid" x1=PLOT_LEFT x2=PLOT_RIGHT y1=PLOT_TOP y2=PLOT_TOP></line>
        {bars}
        <line class="axis" x1=PLOT_LEFT x2=PLOT_LEFT y1=PLOT_TOP y2=PLOT_BOTTOM></line>
        <line class="axis" x1=PLOT_LEFT x2=PLOT_RIGHT y1=PLOT_BOTTOM y2=PLOT_BOTTOM></line>
        <text class="tick-label y" x=PLOT_LEFT - 3.0 y=PLOT_TOP + 7.0 text-anchor="end">{ymax.to_string()}</text>
        <text class="tick-label y" x=PLOT_LEFT - 3.0 y=PLOT_BOTTOM text-anchor="end">"0"</text>
        <text class="axis-title" x="9" y=(PLOT_TOP + PLOT_BOTTOM) / 2.0 text-anchor="middle"
            transform=format!("rotate(-90 9 {})", (PLOT_TOP + PLOT_BOTTOM) / 2.0)>"per s"</text>
        {x_labels}
    }
}

/// The fills of the anomaly kinds: a colour and a pattern each, so that they tell apart in grey
/// too. Referenced by the charts and the legend (`url(#lane-pat-…)` in the CSS).
#[component]
fn Patterns() -> impl IntoView {
    view! {
        <svg class="lane-patterns" width="0" height="0" aria-hidden="true">
            <defs>
                <pattern id="lane-pat-lost" patternUnits="userSpaceOnUse" width="4" height="4" patternTransform="rotate(45)">
                    <rect width="4" height="4" fill="#fecaca"></rect>
                    <rect width="2" height="4" fill="#7f1d1d"></rect>
                </pattern>
                <pattern id="lane-pat-unavailable" patternUnits="userSpaceOnUse" width="4" height="4">
                    <rect width="4" height="4" fill="#fef3c7"></rect>
                    <circle cx="2" cy="2" r="1.3" fill="#b45309"></circle>
                </pattern>
                <pattern id="lane-pat-timeout" patternUnits="userSpaceOnUse" width="4" height="4">
                    <rect width="4" height="4" fill="#e5e7eb"></rect>
                    <rect width="4" height="2" fill="#374151"></rect>
                </pattern>
            </defs>
        </svg>
    }
}

/// What the charts draw.
#[component]
fn ChartLegend() -> impl IntoView {
    view! {
        <div id="lane-legend" class="lane-legend">
            <span class="legend-title">"Charts — anomalies per second:"</span>
            {KINDS.iter().map(|(class, label)| view! {
                <span class="legend-item" data-kind=*class>
                    <svg class="kind-swatch" viewBox="0 0 14 10"><rect class=format!("bar {class}") width="14" height="10"></rect></svg>
                    {*label}
                </span>
            }).collect_view()}
            <span class="legend-item">
                <svg class="kind-swatch" viewBox="0 0 14 10"><line class="cursor" x1="7" x2="7" y1="0" y2="10"></line></svg>
                "time cursor"
            </span>
            <span class="legend-item">
                <svg class="kind-swatch" viewBox="0 0 14 10"><rect class="chart-bg" width="14" height="10"></rect><rect class="future" width="14" height="10"></rect></svg>
                "not yet counted"
            </span>
        </div>
    }
}

/// The comparison panel.
#[component]
pub fn Lanes() -> impl IntoView {
    let ex = use_explorer();
    let chosen = Memo::new(move |_| ex.run.lane_strategies());
    let seconds = move || ex.run.end.get().as_micros().div_ceil(1_000_000);
    // The count at the top of every chart: the busiest second of any lane.
    let ymax = Memo::new(move |_| {
        ex.run.lanes.with(|l| {
            l.comparison().map_or(1, |c| {
                c.lanes
                    .iter()
                    .flat_map(|l| l.anomalies.per_second())
                    .map(|c| by_kind(&c).iter().sum::<u64>())
                    .max()
                    .unwrap_or(0)
                    .max(1)
            })
        })
    });
    let toggle = move |s: JoinStrategy, on: bool| {
        let mut lanes = chosen.get_untracked();
        lanes.retain(|x| *x != s);
        if on {
            lanes.push(s);
            lanes.sort_by_key(|x| JoinStrategy::ALL.iter().position(|y| y == x));
        }
        if !lanes.is_empty() {
            ex.set_lanes(lanes);
        }
    };
    view! {
        <section id="lanes" class="panel lanes">
            <Patterns/>
            <div class="panel-head">
                <h2>"Join strategies side by side"</h2>
                <span class="meta" id="compare-time" data-ms=move || ex.run.lanes.with(|l| match l {
                    LaneState::Ready { took_ms, .. } => Some(format!("{took_ms:.0}")),
                    LaneState::Computing => None,
                })>
                    {move || match ex.run.lanes.get() {
                        LaneState::Computing => "computing…".to_string(),
                        LaneState::Ready { comparison, took_ms } => {
                            let n = comparison.lanes.len();
                            format!("{n} lane{} of {} s computed in {:.2} s", if n == 1 { "" } else { "s" }, seconds(), took_ms / 1000.0)
                        }
                    }}
                </span>
            </div>
            <div class="lane-picker">
                {JoinStrategy::ALL.iter().map(|s| {
                    let s = *s;
                    view! {
                        <label class="check">
                            <input type="checkbox" class="lane-choice" data-strategy=s.name()
                                prop:checked=move || chosen.get().contains(&s)
                                on:change=move |e| toggle(s, event_target_checked(&e))/>
                            {s.name()}
                        </label>
                    }
                }).collect_view()}
            </div>
            <ChartLegend/>
            <table class="lane-table">
                <thead>
                    <tr>
                        <th>"strategy"</th>
                        <th title="reads that missed a write acknowledged before they began (R + W > RF)">"stale"</th>
                        <th title="acknowledged writes missing from the final state (counted at their acknowledgement)">"lost"</th>
                        <th title="requests refused up front: too few live replicas">"unavail."</th>
                        <th title="requests that timed out: their outcome is unknown">"timeouts"</th>
                        <th title="acknowledgements demanded beyond the level by pending replicas">"+acks"</th>
                        <th title="bytes streamed to joiners and by repairs">"streamed"</th>
                        <th title="from a join's start until the joiner is NORMAL">"to NORMAL"</th>
                    </tr>
                </thead>
                <tbody>
                    <For
                        each=move || ex.run.lanes.with(|l| l.comparison().map(|c| c.lanes.clone()).unwrap_or_default())
                        key=|l| (l.strategy, l.trace_hash.clone())
                        children=move |lane| {
                            let s = lane.strategy;
                            let lane2 = lane.clone();
                            let counters: Memo<LaneAt> = Memo::new(move |_| lane2.at(ex.run.now()));
                            let end = lane.anomalies.end.as_micros();
                            let cursor_x = move || format!("{:.2}", x_of(ex.run.now().as_micros().min(end), end));
                            let future_w = move || format!("{:.2}", (PLOT_RIGHT - x_of(ex.run.now().as_micros().min(end), end)).max(0.0));
                            let animated = move || ex.run.strategy() == Some(s);
                            let count_cell = move |class: &'static str, count: fn(&AnomalyCounts) -> u64, bad: bool| {
                                view! {
                                    <td class=move || {
                                        let n = count(&counters.get().anomalies);
                                        if bad && n > 0 { format!("{class} bad") } else { class.to_string() }
                                    }>{move || count(&counters.get().anomalies)}</td>
                                }
                            };
                            let after_run = after_run_text(&lane.anomalies.after_run);
                            let lane3 = lane.clone();
                            view! {
                                <tr class=move || if animated() { "lane animated" } else { "lane" } data-strategy=s.name()>
                                    <td class="lane-name">
                                        {s.name()}
                                        <Show when=move || !animated()>
                                            <button class="watch" title="Animate this strategy above" on:click=move |_| ex.set_strategy(s)>"Watch"</button>
                                        </Show>
                                    </td>
                                    {count_cell("stale", |c| c.stale_reads, true)}
                                    {count_cell("lost", AnomalyCounts::lost, true)}
                                    {count_cell("unavailable", |c| c.unavailable, false)}
                                    {count_cell("timeouts", |c| c.timeouts, false)}
                                    <td class="acks">{move || counters.get().extra_acks}</td>
                                    <td class="streamed">{move || human_bytes(counters.get().bytes_streamed)}</td>
                                    <td class="normal" title=move || to_normal_text(counters.get().to_normal).1>
                                        {move || to_normal_text(counters.get().to_normal).0}
                                    </td>
                                    <td class="chart-cell">
                                        <svg class="lane-chart" data-strategy=s.name() viewBox=format!("0 0 {CHART_W} {CHART_H}")
                                            role="img" aria-label=format!("{s}: anomalies per second over the run")
                                            on:click=move |e| {
                                                use wasm_bindgen::JsCast;
                                                let Some(el) = e.current_target().and_then(|t| t.dyn_into::<web_sys::Element>().ok()) else { return };
                                                let r = el.get_bounding_client_rect();
                                                let x = (f64::from(e.client_x()) - r.left()) / r.width() * CHART_W;
                                                let f = ((x - PLOT_LEFT) / (PLOT_RIGHT - PLOT_LEFT)).clamp(0.0, 1.0);
                                                ex.jump(Instant::ZERO + Duration::from_secs_f64(f * end as f64 / 1e6));
                                            }>
                                            {move || chart(&lane3, ymax.get())}
                                            <rect class="future" x=cursor_x y=PLOT_TOP width=future_w height=PLOT_BOTTOM - PLOT_TOP></rect>
                                            <line class="cursor" x1=cursor_x x2=cursor_x y1="0" y2=PLOT_BOTTOM></line>
                                        </svg>
                                        {after_run.map(|text| view! {
                                            <p class="after-run" title="in the final phase (heal, settle, final reads at ALL), which the timeline does not reach; counted at no cursor">{text}</p>
                                        })}
                                    </td>
                                </tr>
                            }
                        }
                    />
                </tbody>
            </table>
            <p class="hint small">
                "Every lane runs the same scenario, seed, workload, faults and your interventions; only the join strategy differs. "
                "Counters are at the time cursor, like the history's: an anomaly counts when the operation it concerns completes. "
                "The row in bold is the one animated above; click a chart to move the cursor."
            </p>
        </section>
    }
}
