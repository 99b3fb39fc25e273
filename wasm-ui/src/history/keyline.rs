//! The key's timeline for a flagged operation, Porcupine/Jepsen style: the operations on the key
//! of a selected stale read or lost write, as intervals from invoke to completion, one row per
//! client, with the flagged operation and the operations the checker relates to it highlighted.
//!
//! A stale read's story is visible as an order in time: the write it missed was acknowledged
//! (its interval ends) before the read was invoked (its interval starts), yet the read returned
//! values that do not include it. A lost write's: it was acknowledged, and the final read of its
//! key, after the run, does not include it.

use super::{client_name, outcome};
use crate::panels::secs;
use crate::state::{Selection, use_explorer};
use leptos::prelude::*;
use ringside_core::Instant;
use ringside_core::checker::{Anomaly, AnomalyKind};
use ringside_core::history::{Op, OpFunction, OpType, Pairing};
use ringside_core::sim::Issuer;
use std::collections::BTreeMap;
use std::time::Duration;

/// Drawing box (SVG units, about one to the pixel).
const W: f64 = 540.0;
/// Where intervals may be drawn: right of the client labels.
const X0: f64 = 62.0;
const X1: f64 = W - 12.0;
/// Room above the rows for the guide labels, and the height of a row.
const TOP: f64 = 18.0;
const ROW_H: f64 = 26.0;
/// Room below the rows for the time axis.
const BOTTOM: f64 = 32.0;
/// At most this many operations are drawn: the flagged one, those the anomaly names, the writes a
/// stale read returned, then the others nearest the flagged one in time.
const MAX_OPS: usize = 18;

/// The part an operation plays in the anomaly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    /// The operation the checker flagged.
    Flagged,
    /// An operation the anomaly names: a missed write, or the final read lacking a lost write.
    Related,
    /// A write whose value the stale read returned.
    Returned,
    /// Another operation on the key in the same window.
    Other,
}

impl Role {
    fn class(self) -> &'static str {
        match self {
            Role::Flagged => "flagged",
            Role::Related => "missed",
            Role::Returned => "returned",
            Role::Other => "other",
        }
    }
}

/// One operation drawn.
#[derive(Clone, Debug, PartialEq)]
struct Interval {
    invoke: usize,
    start: Instant,
    /// Its completion; `None` when it never completed.
    end: Option<Instant>,
    write: bool,
    /// Short text drawn above it.
    label: String,
    /// The whole operation in words (its tooltip).
    title: String,
    role: Role,
}

/// The time axis of a key timeline: not to scale, but in order. Every invoke and completion
/// drawn gets a slot of its own, in time order, and times between two of them are placed
/// proportionally between their slots (Porcupine's compressed timeline): operations milliseconds
/// long stay readable next to a write acknowledged half a minute earlier, and what happened
/// before what, which is all the checker's rule looks at, is exact.
#[derive(Clone, Debug, PartialEq)]
struct Scale {
    /// The instants with a slot, sorted, without repeats.
    times: Vec<Instant>,
}

impl Scale {
    fn new(mut times: Vec<Instant>) -> Scale {
        times.sort();
        times.dedup();
        Scale { times }
    }

    fn step(&self) -> f64 {
        (X1 - X0) / self.times.len().max(1) as f64
    }

    fn slot(&self, i: usize) -> f64 {
        X0 + (i as f64 + 0.5) * self.step()
    }

    /// The x of `t`: its slot, between its neighbours' slots, or at an edge outside them.
    fn x(&self, t: Instant) -> f64 {
        let i = self.times.partition_point(|x| *x < t);
        if i == self.times.len() {
            return X1;
        }
        if self.times[i] == t {
            return self.slot(i);
        }
        if i == 0 {
            return X0;
        }
        let (a, b) = (self.times[i - 1].as_micros(), self.times[i].as_micros());
        let f = (t.as_micros() - a) as f64 / (b - a) as f64;
        self.slot(i - 1) + f * self.step()
    }

    fn first(&self) -> Option<Instant> {
        self.times.first().copied()
    }

    fn last(&self) -> Option<Instant> {
        self.times.last().copied()
    }

    /// The long pauses the scale hides: where (between two slots) and how long, those longer
    /// than a quarter of the whole span and than half a second.
    fn gaps(&self) -> Vec<(f64, Duration)> {
        let (Some(first), Some(last)) = (self.first(), self.last()) else { return Vec::new() };
        let span = last.saturating_duration_since(first);
        self.times
            .windows(2)
            .enumerate()
            .filter_map(|(i, w)| {
                let gap = w[1].saturating_duration_since(w[0]);
                (gap * 4 >= span && gap >= Duration::from_millis(500))
                    .then(|| ((self.slot(i) + self.slot(i + 1)) / 2.0, gap))
            })
            .collect()
    }
}

/// What the key timeline draws for one flagged operation.
#[derive(Clone, Debug, PartialEq)]
struct Story {
    key: String,
    kind: AnomalyKind,
    explanation: String,
    scale: Scale,
    /// Rows: client name and its operations.
    rows: Vec<(String, Vec<Interval>)>,
    /// Vertical guides: when and what ("c6-45 acked", "read invoked").
    guides: Vec<(Instant, String)>,
}

fn label_of(invoke: &Op, done: Option<&Op>) -> String {
    let what = match invoke.f {
        OpFunction::Write => format!("W {}", invoke.value.clone().unwrap_or_default()),
        OpFunction::Delete => "D".to_string(),
        OpFunction::Read => match done {
            Some(d) if d.op_type == OpType::Ok => format!("R [{}]", d.values.join(", ")),
            _ => "R".to_string(),
        },
    };
    match done {
        Some(d) if d.op_type != OpType::Ok => format!("{what} ✕ {}", outcome(d).1),
        None => format!("{what} …"),
        _ => what,
    }
}

/// Row order: clients by number, then scripted operations, then the final phase's reads.
fn row_order(process: u32) -> (u8, u32) {
    match Issuer::of(process) {
        Issuer::Client(c) => (0, c),
        Issuer::Scripted => (1, 0),
        Issuer::Final => (2, 0),
    }
}

impl Story {
    /// The story of the operation invoked at `invoke`, if the checker flagged it as a stale read,
    /// a lost write or a lost update.
    fn of(
        history: &[Op],
        pairing: &Pairing,
        anomalies: &[Anomaly],
        invoke: usize,
    ) -> Option<Story> {
        let completion = pairing.completion_of(invoke)?;
        let anomaly = anomalies
            .iter()
            .find(|a| a.op_index == completion as u64 && a.kind.is_correctness())?;
        let related: Vec<usize> =
            anomaly.related.iter().filter_map(|c| pairing.invoke_of(*c as usize)).collect();
        let span = |i: usize| {
            let end = pairing.completion_of(i).map(|c| history[c].time);
            (history[i].time, end.unwrap_or(history[i].time))
        };
        let (mut lo, mut hi) = span(invoke);
        for r in &related {
            let (s, e) = span(*r);
            lo = lo.min(s);
            hi = hi.max(e);
        }
        let pad = (hi.saturating_duration_since(lo) / 10).max(Duration::from_millis(20));
        let from = Instant(lo.as_micros().saturating_sub(pad.as_micros() as u64));
        let to = hi + pad;
        let returned: &[String] = match anomaly.kind {
            AnomalyKind::StaleRead => &history[completion].values,
            _ => &[],
        };

        let key = &history[invoke].key;
        let mut ops: Vec<Interval> = history
            .iter()
            .enumerate()
            .filter(|(_, op)| op.op_type == OpType::Invoke && op.key == *key && op.time <= to)
            .filter_map(|(i, op)| {
                let done = pairing.completion_of(i).map(|c| &history[c]);
                if done.is_some_and(|d| d.time < from) {
                    return None;
                }
                let role = if i == invoke {
                    Role::Flagged
                } else if related.contains(&i) {
                    Role::Related
                } else if op.f == OpFunction::Write
                    && op.value.as_ref().is_some_and(|v| returned.contains(v))
                {
                    Role::Returned
                } else {
                    Role::Other
                };
                let label = label_of(op, done);
                let title = format!(
                    "{} {label}, invoked at {}{}",
                    client_name(op.process),
                    secs(op.time.as_micros()),
                    done.map_or(", never completed".into(), |d| format!(
                        ", {} at {}",
                        outcome(d).1,
                        secs(d.time.as_micros())
                    )),
                );
                Some(Interval {
                    invoke: i,
                    start: op.time,
                    end: done.map(|d| d.time),
                    write: op.f != OpFunction::Read,
                    label,
                    title,
                    role,
                })
            })
            .collect();
        let anchor = history[invoke].time.as_micros();
        ops.sort_by_key(|o| (o.role, o.start.as_micros().abs_diff(anchor)));
        ops.truncate(MAX_OPS);
        let scale = Scale::new(ops.iter().flat_map(|o| [Some(o.start), o.end]).flatten().collect());

        let mut rows: BTreeMap<(u8, u32), (String, Vec<Interval>)> = BTreeMap::new();
        for o in ops {
            let process = history[o.invoke].process;
            rows.entry(row_order(process))
                .or_insert_with(|| (client_name(process), Vec::new()))
                .1
                .push(o);
        }
        let mut rows: Vec<(String, Vec<Interval>)> = rows.into_values().collect();
        for (_, r) in &mut rows {
            r.sort_by_key(|o| o.start);
        }

        let mut guides = Vec::new();
        match anomaly.kind {
            AnomalyKind::StaleRead => {
                guides.push((history[invoke].time, "read invoked".to_string()));
                for r in &related {
                    if let Some(c) = pairing.completion_of(*r) {
                        let v = history[*r].value.clone().unwrap_or_else(|| "delete".into());
                        guides.push((history[c].time, format!("{v} acked")));
                    }
                }
            }
            _ => {
                guides.push((history[completion].time, "acked".to_string()));
                for r in &related {
                    guides.push((history[*r].time, "final read".to_string()));
                }
            }
        }
        Some(Story {
            key: key.clone(),
            kind: anomaly.kind,
            explanation: anomaly.explanation.clone(),
            scale,
            rows,
            guides,
        })
    }

    fn height(&self) -> f64 {
        TOP + self.rows.len() as f64 * ROW_H + BOTTOM
    }
}

/// The key timeline of the selected operation, when the checker flagged it.
#[component]
pub fn KeyTimeline() -> impl IntoView {
    let ex = use_explorer();
    let story = Memo::new(move |_| {
        let Selection::Op(invoke) = ex.view.selection.get() else { return None };
        let full = ex.run.full.get()?;
        Story::of(&full.history, &full.pairing, &full.report.check.anomalies, invoke)
    });
    view! {
        {move || match story.get() {
            None => view! {
                <p id="key-timeline-hint" class="hint small">
                    "Select a stale read or a lost write (tick “anomalies only”) to see its key’s timeline: why the checker flagged it."
                </p>
            }.into_any(),
            Some(s) => key_timeline(s).into_any(),
        }}
    }
}

fn key_timeline(s: Story) -> impl IntoView {
    let ex = use_explorer();
    let h = s.height();
    let stale = s.kind == AnomalyKind::StaleRead;
    let (what, flagged, related) = if stale {
        ("why this read is stale", "the stale read", "the write(s) it missed")
    } else if s.kind == AnomalyKind::LostWrite {
        ("why this write is lost", "the lost write", "the final read that lacks it")
    } else {
        ("why this write is lost", "the lost update", "the write that shadowed it")
    };
    let rows = s
        .rows
        .iter()
        .enumerate()
        .map(|(row, (client, ops))| {
            let y = TOP + row as f64 * ROW_H;
            let bars = ops
                .iter()
                .map(|o| {
                    let x0 = s.scale.x(o.start);
                    let x1 = o.end.map_or(X1, |e| s.scale.x(e)).max(x0 + 2.0);
                    let class = format!(
                        "interval {} {}",
                        o.role.class(),
                        if o.write { "write" } else { "read" }
                    );
                    let start = o.start;
                    // A label longer than the room up to the client's next operation is cut.
                    let room = ops
                        .iter()
                        .find(|n| n.start > o.start)
                        .map_or(X1 + 10.0 - x0, |n| s.scale.x(n.start) - x0);
                    let chars = ((room / 5.6) as usize).max(3);
                    let label = if o.label.chars().count() > chars {
                        let cut: String = o.label.chars().take(chars.saturating_sub(1)).collect();
                        format!("{cut}…")
                    } else {
                        o.label.clone()
                    };
                    view! {
                        <g class=class data-invoke=o.invoke data-start=o.start.as_micros()
                            data-end=o.end.map(|e| e.as_micros().to_string())
                            on:click=move |_| ex.jump(start)>
                            <title>{o.title.clone()}</title>
                            <rect x=format!("{x0:.2}") y=format!("{:.2}", y + 12.0) width=format!("{:.2}", x1 - x0) height="9" rx="2"></rect>
                            <text x=format!("{x0:.2}") y=y + 9.0>{label}</text>
                        </g>
                    }
                })
                .collect_view();
            view! {
                <text class="client" x="2" y=y + 20.0>{client.clone()}</text>
                <line class="row-line" x1=X0 x2=X1 y1=y + 16.5 y2=y + 16.5></line>
                {bars}
            }
        })
        .collect_view();
    let bottom = h - BOTTOM;
    let guides = s
        .guides
        .iter()
        .enumerate()
        .map(|(i, (t, text))| {
            let x = s.scale.x(*t);
            let anchor = if x > X1 - 70.0 { "end" } else { "start" };
            let dx = if anchor == "end" { -3.0 } else { 3.0 };
            view! {
                <line class=format!("guide g{i}") x1=format!("{x:.2}") x2=format!("{x:.2}") y1="4" y2=bottom + 3.0></line>
                <text class="guide-label" x=format!("{:.2}", x + dx) y="11" text-anchor=anchor>{text.clone()}</text>
                <text class="tick-label" x=format!("{:.2}", x + dx) y=bottom + 13.0 text-anchor=anchor>{secs(t.as_micros())}</text>
            }
        })
        .collect_view();
    let gaps = s
        .scale
        .gaps()
        .into_iter()
        .map(|(x, gap)| {
            view! {
                <g class="gap">
                    <rect class="gap-break" x=format!("{:.2}", x - 3.0) y=bottom - 4.0 width="6" height="8"></rect>
                    <line x1=format!("{:.2}", x - 4.0) x2=format!("{:.2}", x) y1=bottom + 4.0 y2=bottom - 4.0></line>
                    <line x1=format!("{:.2}", x) x2=format!("{:.2}", x + 4.0) y1=bottom + 4.0 y2=bottom - 4.0></line>
                    <text class="gap-label" x=format!("{x:.2}") y=bottom + 25.0 text-anchor="middle">{format!("+{:.1} s", gap.as_secs_f64())}</text>
                </g>
            }
        })
        .collect_view();
    let scale = s.scale.clone();
    let cursor = move || {
        let now = ex.run.now();
        let (first, last) = (scale.first()?, scale.last()?);
        (now >= first && now <= last).then(|| {
            let x = format!("{:.2}", scale.x(now));
            view! { <line class="cursor" x1=x.clone() x2=x y1="4" y2=bottom></line> }
        })
    };
    view! {
        <div id="key-timeline" class="key-timeline" data-key=s.key.clone() data-kind=s.kind.as_str()>
            <h3>{format!("Key {}: {what}", s.key)}</h3>
            <svg viewBox=format!("0 0 {W} {h:.0}") role="img"
                aria-label=format!("operations on {}, one row per client, invoke to completion", s.key)>
                {guides}
                {rows}
                <line class="axis" x1=X0 x2=X1 y1=bottom y2=bottom></line>
                {gaps}
                {cursor}
            </svg>
            <div class="key-legend">
                <span class="legend-item"><span class="kind-swatch flagged"></span>{flagged}</span>
                <span class="legend-item"><span class="kind-swatch missed"></span>{related}</span>
                {stale.then(|| view! { <span class="legend-item"><span class="kind-swatch returned"></span>"the write(s) it returned"</span> })}
                <span class="legend-item"><span class="kind-swatch other-write"></span>"other writes"</span>
                <span class="legend-item"><span class="kind-swatch other-read"></span>"other reads"</span>
            </div>
            <p class="hint small">
                "Each bar runs from the operation's invoke to its completion, one row per client; click one to go there. "
                "Time is in order but not to scale: long pauses are squeezed (marked +s)."
            </p>
            <p class="key-explanation">{s.explanation.clone()}</p>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringside_core::{ConsistencyLevel, NodeId};

    /// A history entry of client `process` at `ms` milliseconds.
    fn op(process: u32, op_type: OpType, f: OpFunction, value: Option<&str>, ms: u64) -> Op {
        Op {
            index: 0,
            process,
            op_type,
            f,
            key: "k".into(),
            value: value.map(String::from),
            values: Vec::new(),
            cl: ConsistencyLevel::Quorum,
            time: Instant::from_millis(ms),
            node: NodeId(0),
            version: None,
            context: None,
            write_context: None,
            error: None,
            final_read: false,
        }
    }

    /// c1 writes a (acked at 10 ms); c2 reads from 50 ms and returns b, written by c3 at the same
    /// time; the checker says the read missed a.
    fn stale_story() -> (Vec<Op>, Story) {
        use OpFunction::{Read, Write};
        use OpType::{Invoke, Ok};
        let mut history = vec![
            op(1, Invoke, Write, Some("a"), 0),
            op(1, Ok, Write, Some("a"), 10),
            op(2, Invoke, Read, None, 50),
            op(3, Invoke, Write, Some("b"), 55),
            op(3, Ok, Write, Some("b"), 58),
            op(2, Ok, Read, None, 60),
            op(4, Invoke, Read, None, 30_000),
            op(4, Ok, Read, None, 30_010),
        ];
        history[5].values = vec!["b".into()];
        for (i, o) in history.iter_mut().enumerate() {
            o.index = i as u64;
        }
        let anomaly = Anomaly {
            kind: AnomalyKind::StaleRead,
            key: "k".into(),
            op_index: 5,
            time: Instant::from_millis(60),
            related: vec![1],
            explanation: "read of k missed write a".into(),
        };
        let pairing = Pairing::of(&history);
        let story = Story::of(&history, &pairing, &[anomaly], 2).expect("a flagged read");
        (history, story)
    }

    fn role_of(story: &Story, invoke: usize) -> Option<Role> {
        story.rows.iter().flat_map(|(_, ops)| ops).find(|o| o.invoke == invoke).map(|o| o.role)
    }

    #[test]
    fn a_stale_read_is_drawn_with_the_write_it_missed_and_the_one_it_returned() {
        let (_, story) = stale_story();
        let clients: Vec<&str> = story.rows.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(
            clients,
            ["c1", "c2", "c3"],
            "one row per client; c4's read is out of the window"
        );
        assert_eq!(role_of(&story, 2), Some(Role::Flagged));
        assert_eq!(role_of(&story, 0), Some(Role::Related));
        assert_eq!(role_of(&story, 3), Some(Role::Returned));
        // The missed write's acknowledgement is left of the read's invoke, and the guides say so.
        let scale = &story.scale;
        assert!(scale.x(Instant::from_millis(10)) < scale.x(Instant::from_millis(50)));
        let guides: Vec<(u64, &str)> =
            story.guides.iter().map(|(t, g)| (t.as_millis(), g.as_str())).collect();
        assert_eq!(guides, [(50, "read invoked"), (10, "a acked")]);
        assert_eq!(story.explanation, "read of k missed write a");
    }

    #[test]
    fn an_unflagged_operation_has_no_story() {
        let (history, _) = stale_story();
        let pairing = Pairing::of(&history);
        assert_eq!(Story::of(&history, &pairing, &[], 2), None);
        assert_eq!(Story::of(&history, &pairing, &[], 0), None);
    }

    #[test]
    fn the_scale_keeps_the_order_and_squeezes_long_pauses() {
        let ms = Instant::from_millis;
        let scale = Scale::new(vec![ms(60), ms(0), ms(10), ms(50), ms(10), ms(30_000)]);
        assert_eq!(scale.times.len(), 5, "one slot per instant");
        let xs: Vec<f64> =
            [0, 5, 10, 50, 55, 60, 20_000, 30_000].into_iter().map(|t| scale.x(ms(t))).collect();
        assert!(xs.windows(2).all(|w| w[0] < w[1]), "in order: {xs:?}");
        assert!(xs.iter().all(|x| (X0..=X1).contains(x)), "{xs:?}");
        // Slots are evenly spread, whatever the time between them.
        let step = scale.step();
        assert!((scale.x(ms(10)) - scale.x(ms(0)) - step).abs() < 1e-9);
        assert!((scale.x(ms(30_000)) - scale.x(ms(60)) - step).abs() < 1e-9);
        let gaps = scale.gaps();
        assert_eq!(gaps.len(), 1, "{gaps:?}");
        assert_eq!(gaps[0].1, Duration::from_millis(29_940));
        assert_eq!((scale.x(ms(99_999)), Scale::new(Vec::new()).x(ms(5))), (X1, X1));
    }
}
