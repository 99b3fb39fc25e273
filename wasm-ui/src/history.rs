//! The history pane: client operations Jepsen-style (invoke → completion, per client), with the
//! checker's stale reads, lost writes and errors flagged. Clicking one seeks the cluster to it
//! and highlights its messages and the replicas that answered.

use crate::panels::secs;
use crate::state::{Selection, use_explorer};
use leptos::prelude::*;
use ringside_core::checker::AnomalyKind;
use ringside_core::history::{OpFunction, OpType};
use ringside_core::sim::Issuer;

/// How many rows the pane shows at most (the latest ones before the cursor).
const ROWS: usize = 60;

#[derive(Clone, PartialEq)]
struct Row {
    invoke: usize,
    time: u64,
    client: String,
    text: String,
    result: &'static str,
    flags: Vec<(&'static str, &'static str)>,
}

fn flag(kind: AnomalyKind) -> (&'static str, &'static str) {
    match kind {
        AnomalyKind::StaleRead => ("stale", "stale read"),
        AnomalyKind::LostWrite => ("lost", "lost write"),
        AnomalyKind::LostUpdate => ("lost", "lost update"),
        AnomalyKind::Unavailable => ("error", "unavailable"),
        AnomalyKind::Timeout => ("error", "timeout"),
    }
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
    let rows = Memo::new(move |_| {
        let full = ex.run.full.get()?;
        let now = cursor.get();
        let only = only_anomalies.get();
        let mut rows = Vec::new();
        // The history is in time order: completions later than any operation invoked by now
        // (a request times out well within a minute) are not looked at.
        let horizon = now + std::time::Duration::from_secs(60);
        let end = full.history.partition_point(|o| o.time <= horizon);
        // Operations invoked by the cursor, newest first; one still running shows as pending
        // (so that the operation just clicked, whose start the cursor is at, stays listed).
        for (i, op) in full.history[..end].iter().enumerate().rev() {
            if op.op_type == OpType::Invoke {
                continue;
            }
            let Some(invoke) = full.pairing.invoke_of(i) else { continue };
            let inv = &full.history[invoke];
            if inv.time > now {
                continue;
            }
            let done = op.time <= now;
            let flags: Vec<_> = full
                .flags
                .get(&(i as u64))
                .map(|k| k.iter().map(|k| flag(*k)).collect())
                .unwrap_or_default();
            let flags = if done { flags } else { Vec::new() };
            if only && flags.is_empty() {
                continue;
            }
            let client = match Issuer::of(op.process) {
                Issuer::Final => "final".to_string(),
                Issuer::Scripted => "you/script".to_string(),
                Issuer::Client(c) => format!("c{c}"),
            };
            let f = match op.f {
                OpFunction::Read => "read",
                OpFunction::Write => "write",
                OpFunction::Delete => "delete",
            };
            let what = match (op.f, op.op_type) {
                (OpFunction::Read, OpType::Ok) if done => {
                    format!("{f} {} @{} → [{}]", op.key, op.cl, op.values.join(", "))
                }
                (OpFunction::Write, _) => {
                    format!("{f} {}={} @{}", op.key, op.value.clone().unwrap_or_default(), op.cl)
                }
                _ => format!("{f} {} @{}", op.key, op.cl),
            };
            rows.push(Row {
                invoke,
                time: inv.time.as_micros(),
                client,
                text: what,
                result: match op.op_type {
                    _ if !done => "pending",
                    OpType::Ok => "ok",
                    OpType::Fail => "fail",
                    _ => "info",
                },
                flags,
            });
            if rows.len() >= ROWS {
                break;
            }
        }
        Some(rows)
    });
    let summary = move || {
        let full = ex.run.full.get()?;
        let count = |k: AnomalyKind| full.report.check.counts.get(&k).copied().unwrap_or(0);
        let now = ex.run.now();
        let so_far = |k: AnomalyKind| {
            full.report.check.anomalies.iter().filter(|a| a.kind == k && a.time <= now).count()
        };
        Some(format!(
            "so far: {} stale reads, {} lost writes, {} unavailable, {} timeouts (whole run: {}, {}, {}, {})",
            so_far(AnomalyKind::StaleRead),
            so_far(AnomalyKind::LostWrite),
            so_far(AnomalyKind::Unavailable),
            so_far(AnomalyKind::Timeout),
            count(AnomalyKind::StaleRead),
            count(AnomalyKind::LostWrite),
            count(AnomalyKind::Unavailable),
            count(AnomalyKind::Timeout),
        ))
    };
    view! {
        <section id="history" class="panel history">
            <div class="panel-head">
                <h2>"History"</h2>
                <label class="check">
                    <input id="only-anomalies" type="checkbox" on:change=move |e| set_only_anomalies.set(event_target_checked(&e))/>
                    "anomalies only"
                </label>
                <span id="anomaly-summary" class="meta">{summary}</span>
            </div>
            <Show when=move || ex.run.full.get().is_some() fallback=|| view! { <p class="hint">"Checking the run…"</p> }>
                <div class="history-scroll">
                    <table class="ops">
                        <thead><tr><th>"invoked"</th><th>"client"</th><th>"operation"</th><th>"result"</th><th></th></tr></thead>
                        <tbody>
                            <For
                                each=move || rows.get().unwrap_or_default()
                                key=|r| (r.invoke, r.result)
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
                                            on:click=move |_| ex.select_op(invoke)
                                        >
                                            <td>{secs(r.time)}</td>
                                            <td>{r.client.clone()}</td>
                                            <td class="op-text">{r.text.clone()}</td>
                                            <td class=format!("result {}", r.result)>{r.result}</td>
                                            <td>{r.flags.iter().map(|(c, t)| view! { <span class=format!("flag {c}")>{*t}</span> }).collect_view()}</td>
                                        </tr>
                                    }
                                }
                            />
                        </tbody>
                    </table>
                </div>
            </Show>
        </section>
    }
}
