//! The history pane: client operations Jepsen-style (invoke → completion, per client), newest
//! invoked first, with the checker's stale reads, lost writes, unavailable requests and timeouts
//! flagged once the operation they concern has completed. Clicking one seeks the cluster to it and
//! highlights its messages and the replicas that answered; for a stale read or a lost write, the
//! key's timeline below shows why ([`keyline`]).
//!
//! Its counts are `AnomalyLog::at`, the rule the strategy lanes and the timeline markers count
//! with too: at the cursor, an anomaly counts once the operation it concerns has completed, and
//! those of the final phase are apart, "after the run".

mod keyline;

use crate::panels::secs;
use crate::state::{Selection, use_explorer};
use keyline::KeyTimeline;
use leptos::prelude::*;
use ringside_core::checker::AnomalyKind;
use ringside_core::compare::{AnomalyCounts, AnomalyLog};
use ringside_core::history::{Op, OpError, OpFunction, OpType};
use ringside_core::sim::Issuer;
use std::sync::Arc;

/// How many rows the pane shows at most (the latest invoked before the cursor, and the selected
/// one).
const ROWS: usize = 60;

#[derive(Clone, PartialEq)]
struct Row {
    invoke: usize,
    time: u64,
    client: String,
    text: String,
    /// CSS class and text of the outcome.
    result: (&'static str, &'static str),
    /// The checker's flags, shown once the operation completed.
    flags: Vec<(&'static str, &'static str)>,
    /// The flags of the selected operation while it is still running: shown apart, since they do
    /// not count yet.
    coming: Vec<(&'static str, &'static str)>,
}

/// CSS class and words of an anomaly kind; the lanes, markers and legend use the same words.
pub fn flag(kind: AnomalyKind) -> (&'static str, &'static str) {
    match kind {
        AnomalyKind::StaleRead => ("stale", "stale read"),
        AnomalyKind::LostWrite => ("lost", "lost write"),
        AnomalyKind::LostUpdate => ("lost", "lost update"),
        AnomalyKind::Unavailable => ("unavailable", "unavailable"),
        AnomalyKind::Timeout => ("timeout", "timeout"),
    }
}

/// CSS class and words of how an operation ended.
fn outcome(op: &Op) -> (&'static str, &'static str) {
    match (op.op_type, op.error) {
        (OpType::Ok, _) => ("ok", "ok"),
        (_, Some(OpError::Timeout)) => ("timeout", "timeout"),
        (_, Some(OpError::Unavailable)) => ("unavailable", "unavailable"),
        (_, Some(OpError::NodeDown)) => ("node-down", "node down"),
        (OpType::Fail, None) => ("fail", "failed"),
        (_, None) => ("unknown", "unknown"),
    }
}

fn client_name(process: u32) -> String {
    match Issuer::of(process) {
        Issuer::Final => "final".to_string(),
        Issuer::Scripted => "you/script".to_string(),
        Issuer::Client(c) => format!("c{c}"),
    }
}

/// "4 stale reads, 1 timeout".
fn counts_text(c: &AnomalyCounts) -> String {
    let parts: Vec<String> = [
        (c.stale_reads, "stale read"),
        (c.lost(), "lost write"),
        (c.unavailable, "unavailable"),
        (c.timeouts, "timeout"),
    ]
    .into_iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| {
        let s = if n == 1 || what == "unavailable" { "" } else { "s" };
        format!("{n} {what}{s}")
    })
    .collect();
    parts.join(", ")
}

/// The history pane.
#[component]
pub fn HistoryPane() -> impl IntoView {
    let ex = use_explorer();
    let (only_anomalies, set_only_anomalies) = signal(false);
    // While playing, the pane follows the cursor at a tenth of a second (enough for reading, and
    // it spares the animation's frames); paused, exactly.
    let cursor = Memo::new(move |_| {
        let t = ex.run.now().as_micros();
        let t = if ex.view.playing.get() { t - t % 100_000 } else { t };
        ringside_core::Instant::ZERO + std::time::Duration::from_micros(t)
    });
    let log = Memo::new(move |_| {
        let end = ex.run.end.get();
        ex.run.full.get().map(|f| Arc::new(AnomalyLog::new(&f.report.check.anomalies, end)))
    });
    let rows = Memo::new(move |_| {
        let full = ex.run.full.get()?;
        let now = cursor.get();
        let only = only_anomalies.get();
        let selected = match ex.view.selection.get() {
            Selection::Op(i) => Some(i),
            _ => None,
        };
        let flags_of = |completion: usize| -> Vec<(&'static str, &'static str)> {
            full.flags
                .get(&(completion as u64))
                .map(|k| k.iter().map(|k| flag(*k)).collect())
                .unwrap_or_default()
        };
        let row = |invoke: usize| -> Option<Row> {
            let inv = &full.history[invoke];
            let completion = full.pairing.completion_of(invoke);
            let done = completion.filter(|c| full.history[*c].time <= now);
            let flags = done.map(flags_of).unwrap_or_default();
            let coming = match completion {
                Some(c) if done.is_none() && selected == Some(invoke) => flags_of(c),
                _ => Vec::new(),
            };
            if only && flags.is_empty() && selected != Some(invoke) {
                return None;
            }
            let f = match inv.f {
                OpFunction::Read => "read",
                OpFunction::Write => "write",
                OpFunction::Delete => "delete",
            };
            let text = match done.map(|c| &full.history[c]) {
                Some(op) if op.f == OpFunction::Read && op.op_type == OpType::Ok => {
                    format!("{f} {} @{} → [{}]", inv.key, inv.cl, op.values.join(", "))
                }
                _ if inv.f == OpFunction::Write => {
                    format!("{f} {}={} @{}", inv.key, inv.value.clone().unwrap_or_default(), inv.cl)
                }
                _ => format!("{f} {} @{}", inv.key, inv.cl),
            };
            Some(Row {
                invoke,
                time: inv.time.as_micros(),
                client: client_name(inv.process),
                text,
                result: done.map_or(("pending", "pending"), |c| outcome(&full.history[c])),
                flags,
                coming,
            })
        };
        // Operations invoked by the cursor, newest first (the history is in time order); one
        // still running shows as pending.
        let invoked = full.history.partition_point(|o| o.time <= now);
        let mut rows: Vec<Row> = (0..invoked)
            .rev()
            .filter(|i| full.history[*i].op_type == OpType::Invoke)
            .filter_map(row)
            .take(ROWS)
            .collect();
        // The selected operation stays listed, in its place, however many were invoked since.
        if let Some(s) = selected
            && s < invoked
            && full.history[s].op_type == OpType::Invoke
            && !rows.iter().any(|r| r.invoke == s)
            && let Some(r) = row(s)
        {
            rows.push(r);
        }
        Some(rows)
    });
    let summary = move || {
        let log = log.get()?;
        let (now, whole) = (log.at(ex.run.now()), log.whole_run());
        Some(format!(
            "so far: {} stale reads, {} lost writes, {} unavailable, {} timeouts (whole run: {}, {}, {}, {})",
            now.stale_reads,
            now.lost(),
            now.unavailable,
            now.timeouts,
            whole.stale_reads,
            whole.lost(),
            whole.unavailable,
            whole.timeouts,
        ))
    };
    let after_run = move || {
        let log = log.get()?;
        (log.after_run.total() > 0)
            .then(|| format!("after the run: {}", counts_text(&log.after_run)))
    };
    view! {
        <section id="history" class="panel history">
            <div class="panel-head">
                <h2>"History"</h2>
                <label class="check">
                    <input id="only-anomalies" type="checkbox" on:change=move |e| set_only_anomalies.set(event_target_checked(&e))/>
                    "anomalies only"
                </label>
            </div>
            <p class="counts">
                <span id="anomaly-summary" class="meta"
                    title="Anomalies flagged on operations completed by the cursor (the strategy lanes and the timeline markers count alike); whole run: at the end of the timeline">
                    {summary}
                </span>
                {move || after_run().map(|text| view! {
                    <span id="after-run" class="meta after-run"
                        title="In the final phase (heal, settle, final reads at ALL), which the timeline does not reach: counted at no cursor">
                        {text}
                    </span>
                })}
            </p>
            <Show when=move || ex.run.full.get().is_some() fallback=|| view! { <p class="hint">"Checking the run…"</p> }>
                <div class="history-scroll">
                    <table class="ops">
                        <thead><tr><th>"invoked"</th><th>"client"</th><th>"operation"</th><th>"result"</th><th></th></tr></thead>
                        <tbody>
                            <For
                                each=move || rows.get().unwrap_or_default()
                                key=|r| (r.invoke, r.result.0, r.coming.len())
                                children=move |r| {
                                    let invoke = r.invoke;
                                    let anomalous = !r.flags.is_empty();
                                    view! {
                                        <tr
                                            class=move || {
                                                let mut c = String::from("op");
                                                if anomalous { c.push_str(" anomaly"); }
                                                if ex.view.selection.get() == Selection::Op(invoke) { c.push_str(" selected"); }
                                                c
                                            }
                                            data-invoke=invoke
                                            on:click=move |_| ex.select_op(invoke)
                                        >
                                            <td>{secs(r.time)}</td>
                                            <td>{r.client.clone()}</td>
                                            <td class="op-text">{r.text.clone()}</td>
                                            <td class=format!("result {}", r.result.0)>{r.result.1}</td>
                                            <td>
                                                {r.flags.iter().map(|(c, t)| view! { <span class=format!("flag {c}")>{*t}</span> }).collect_view()}
                                                {r.coming.iter().map(|(c, t)| view! {
                                                    <span class=format!("flag coming {c}") title="flagged when it completes: not counted yet">{format!("{t} (when done)")}</span>
                                                }).collect_view()}
                                            </td>
                                        </tr>
                                    }
                                }
                            />
                        </tbody>
                    </table>
                </div>
                <KeyTimeline/>
            </Show>
        </section>
    }
}
