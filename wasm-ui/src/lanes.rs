//! Strategy lanes: the same scenario, seed, workload, faults and interventions under several
//! join strategies, side by side, with counters at the shared time cursor and a small chart of
//! anomalies over time.

use crate::panels::human_bytes;
use crate::run::LaneState;
use crate::state::use_explorer;
use leptos::prelude::*;
use ringside_core::Instant;
use ringside_core::compare::Lane;
use ringside_core::membership::JoinStrategy;
use std::time::Duration;

/// Width and height of a lane's chart (SVG units).
const CHART_W: f64 = 240.0;
const CHART_H: f64 = 36.0;

/// Counters of a lane at second `second` (inclusive) of the run.
#[derive(Clone, Debug, PartialEq)]
struct AtCursor {
    stale: u64,
    lost: u64,
    errors: u64,
    extra_acks: u64,
    bytes: u64,
    normal: String,
}

fn at_cursor(lane: &Lane, now: Instant) -> AtCursor {
    let second = now.as_micros() / 1_000_000;
    let (mut stale, mut lost, mut errors) = (0, 0, 0);
    for p in lane.timeline.iter().filter(|p| p.second <= second) {
        stale += p.stale_reads;
        lost += p.lost_writes;
        errors += p.errors;
    }
    // The sample taken at the end of the last whole second before the cursor; at the end of the
    // timeline, the run's totals (the final phase included).
    let at_end = second as usize >= lane.samples.len();
    let sample = second.checked_sub(1).and_then(|s| lane.samples.get(s as usize));
    let started = sample.is_some_and(|s| s.joins_started > 0);
    let joined = at_end || sample.is_some_and(|s| s.joins_completed > 0);
    let normal = match lane.time_to_normal {
        Some(t) if joined => format!("{t:.1} s"),
        _ if at_end && !lane.failures.is_empty() => "failed".into(),
        _ if started && !at_end => "joining…".into(),
        _ => "—".into(),
    };
    let (extra_acks, bytes) = if at_end {
        (lane.extra_acks, lane.bytes_streamed)
    } else {
        sample.map_or((0, 0), |s| (s.extra_acks, s.bytes_streamed))
    };
    AtCursor { stale, lost, errors, extra_acks, bytes, normal }
}

fn chart(lane: &Lane, seconds: u64) -> impl IntoView + use<> {
    let w = CHART_W / seconds.max(1) as f64;
    let max = lane
        .timeline
        .iter()
        .map(|p| p.stale_reads + p.lost_writes + p.errors)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    lane.timeline
        .iter()
        .flat_map(|p| {
            let x = p.second as f64 * w;
            let mut y = CHART_H;
            [("stale", p.stale_reads), ("lost", p.lost_writes), ("error", p.errors)]
                .into_iter()
                .filter(|(_, n)| *n > 0)
                .map(|(class, n)| {
                    let h = n as f64 / max * (CHART_H - 2.0);
                    y -= h;
                    view! {
                        <rect class=format!("bar {class}") x=format!("{x:.2}") y=format!("{y:.2}")
                            width=format!("{:.2}", w.max(1.5)) height=format!("{h:.2}")>
                            <title>{format!("{}–{} s: {n} {class}", p.second, p.second + 1)}</title>
                        </rect>
                    }
                })
                .collect::<Vec<_>>()
        })
        .collect_view()
}

/// The comparison panel.
#[component]
pub fn Lanes() -> impl IntoView {
    let ex = use_explorer();
    let chosen = Memo::new(move |_| ex.run.lane_strategies());
    let seconds = move || ex.run.end.get().as_micros().div_ceil(1_000_000);
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
            <table class="lane-table">
                <thead>
                    <tr>
                        <th>"strategy"</th>
                        <th title="reads that missed an acknowledged write">"stale"</th>
                        <th title="acknowledged writes missing at the end">"lost"</th>
                        <th title="unavailable errors and timeouts">"errors"</th>
                        <th title="acknowledgements demanded beyond the level by pending replicas">"+acks"</th>
                        <th>"streamed"</th>
                        <th>"to NORMAL"</th>
                        <th>"anomalies over time"</th>
                    </tr>
                </thead>
                <tbody>
                    <For
                        each=move || ex.run.lanes.with(|l| l.comparison().map(|c| c.lanes.clone()).unwrap_or_default())
                        key=|l| (l.strategy, l.trace_hash.clone())
                        children=move |lane| {
                            let s = lane.strategy;
                            let lane2 = lane.clone();
                            let counters = Memo::new(move |_| at_cursor(&lane2, ex.run.now()));
                            let total = seconds();
                            let cursor_x = move || {
                                let end = ex.run.end.get().as_micros().max(1) as f64;
                                ex.run.now().as_micros() as f64 / end * CHART_W
                            };
                            let animated = move || ex.run.strategy() == Some(s);
                            view! {
                                <tr class=move || if animated() { "lane animated" } else { "lane" } data-strategy=s.name()>
                                    <td class="lane-name">
                                        {s.name()}
                                        <Show when=move || !animated()>
                                            <button class="watch" title="Animate this strategy above" on:click=move |_| ex.set_strategy(s)>"Watch"</button>
                                        </Show>
                                    </td>
                                    <td class=move || { if counters.get().stale > 0 { "stale bad" } else { "stale" } }>{move || counters.get().stale}</td>
                                    <td class=move || { if counters.get().lost > 0 { "lost bad" } else { "lost" } }>{move || counters.get().lost}</td>
                                    <td class="errors">{move || counters.get().errors}</td>
                                    <td>{move || counters.get().extra_acks}</td>
                                    <td>{move || human_bytes(counters.get().bytes)}</td>
                                    <td>{move || counters.get().normal}</td>
                                    <td>
                                        <svg class="lane-chart" viewBox=format!("0 0 {CHART_W} {CHART_H}") preserveAspectRatio="none"
                                            on:click=move |e| {
                                                use wasm_bindgen::JsCast;
                                                let Some(el) = e.current_target().and_then(|t| t.dyn_into::<web_sys::Element>().ok()) else { return };
                                                let r = el.get_bounding_client_rect();
                                                let f = ((f64::from(e.client_x()) - r.left()) / r.width()).clamp(0.0, 1.0);
                                                ex.jump(Instant::ZERO + Duration::from_secs_f64(f * ex.run.end.get_untracked().as_micros() as f64 / 1e6));
                                            }>
                                            <rect class="chart-bg" width=CHART_W height=CHART_H></rect>
                                            {chart(&lane, total)}
                                            <line class="cursor" x1=cursor_x x2=cursor_x y1="0" y2=CHART_H></line>
                                        </svg>
                                    </td>
                                </tr>
                            }
                        }
                    />
                </tbody>
            </table>
            <p class="hint small">
                "Every lane runs the same scenario, seed, workload, faults and your interventions; only the join strategy differs. "
                "Counters are at the time cursor; the row in bold is the one animated above."
            </p>
        </section>
    }
}
