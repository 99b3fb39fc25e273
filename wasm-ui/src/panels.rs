//! The side panels: the node table (like `nodetool status`), the inspector with its "explain
//! this" text and the actions on the selected node, and the forms that act on the cluster
//! (client requests, partitions, adding a node).

use crate::glossary::define;
use crate::ring::node_color;
use crate::run::FullRun;
use crate::state::{Notice, Selection, use_explorer};
use leptos::prelude::*;
use ringside_core::explore::{
    Action, NodeView, OpMessages, explain_arithmetic, explain_message, explain_node,
};
use ringside_core::history::{OpError, OpFunction, OpType};
use ringside_core::membership::JoinStrategy;
use ringside_core::sim::Fate;
use ringside_core::{ConsistencyLevel, NodeId};
use std::sync::Arc;

pub use ringside_core::compare::human_bytes;

/// Seconds with milliseconds.
pub fn secs(micros: u64) -> String {
    format!("{:.3} s", micros as f64 / 1e6)
}

/// The nodes, as an operator's `status` shows them.
#[component]
pub fn NodeTable() -> impl IntoView {
    let ex = use_explorer();
    let rows = Memo::new(move |_| {
        ex.run.snapshot.with(|s| s.as_ref().map(|s| s.nodes.clone()).unwrap_or_default())
    });
    let names = move || ex.run.names();
    view! {
        <table id="nodes" class="nodes">
            <thead>
                <tr>
                    <th title=define("UN, UJ, UL, DN")>"Status"</th>
                    <th>"Node"</th>
                    <th title="keys held (ghost keys: held but no longer replicated)">"Load"</th>
                    <th title=define("Vnodes")>"Tokens"</th>
                    <th title=define("Effective ownership")>"Owns"</th>
                    <th title=define("Hint")>"Hints"</th>
                    <th>"Streaming"</th>
                </tr>
            </thead>
            <tbody>
                <For
                    each=move || (0..rows.with(Vec::len)).map(|i| NodeId(i as u32))
                    key=|id| id.0
                    children=move |id| {
                        // Rows stay; their cells follow the node (a memo: only a change re-renders).
                        let node = Memo::new(move |_| rows.with(|r| r.get(id.0 as usize).cloned()));
                        let field = move |f: fn(&ringside_core::explore::NodeView) -> String| {
                            move || node.with(|n| n.as_ref().map(f).unwrap_or_default())
                        };
                        let hints = move || {
                            node.with(|n| {
                                let n = n.as_ref()?;
                                let total: usize = n.hints.iter().map(|(_, c)| c).sum();
                                let names = names();
                                let per_target = n
                                    .hints
                                    .iter()
                                    .map(|(t, c)| format!("{c}→{}", names.get(t.0 as usize).cloned().unwrap_or_default()))
                                    .collect::<Vec<_>>()
                                    .join(" ");
                                Some(if total == 0 { "0".to_string() } else { format!("{total} ({per_target})") })
                            })
                        };
                        let movement = move || {
                            node.with(|n| n.as_ref().and_then(|n| n.movement.clone())).map(|m| {
                                let f = if m.ranges_total == 0 { 0.0 } else { m.ranges_done as f64 / m.ranges_total as f64 };
                                let dir = if m.joining { "in" } else { "out" };
                                view! {
                                    <div class="progress" title=format!("{} of {} ranges, {} keys streamed {dir}", m.ranges_done, m.ranges_total, m.keys)>
                                        <div class="bar" style=format!("width:{:.0}%", f * 100.0)></div>
                                        <span>{format!("{}/{} ranges · {}", m.ranges_done, m.ranges_total, human_bytes(m.bytes))}</span>
                                    </div>
                                }
                            })
                        };
                        let ghost = move || node.with(|n| n.as_ref().map_or(0, |n| n.ghost_keys));
                        view! {
                            <tr
                                class=move || if ex.view.selection.get() == Selection::Node(id) { "selected" } else { "" }
                                data-name=field(|n| n.name.clone())
                                on:click=move |_| ex.select(Selection::Node(id))
                            >
                                <td class=field(|n| format!("status status-{}", n.status.to_lowercase()))>{field(|n| n.status.clone())}</td>
                                <td><span class="swatch" style=format!("background:{}", node_color(id))></span>{field(|n| n.name.clone())}</td>
                                <td>
                                    {field(|n| format!("{} keys", n.keys))}
                                    {move || (ghost() > 0).then(|| view! { <span class="ghost">{format!(" ({} ghost)", ghost())}</span> })}
                                </td>
                                <td>{field(|n| n.tokens.to_string())}</td>
                                <td>{field(|n| n.ownership.map_or("?".to_string(), |o| format!("{:.1}%", o * 100.0)))}</td>
                                <td>{hints}</td>
                                <td>{movement}</td>
                            </tr>
                        }
                    }
                />
            </tbody>
        </table>
    }
}

/// What is selected, explained, with the actions that apply to it.
#[component]
pub fn Inspector() -> impl IntoView {
    let ex = use_explorer();
    let names = Signal::derive(move || ex.run.names());
    let body = move || match ex.view.selection.get() {
        Selection::None => view! {
            <p class="hint">
                "Click a node, a message or an operation in the history to see what it is. "
                "Hover over the ring to see which replicas a key there goes to."
            </p>
        }
        .into_any(),
        Selection::Node(id) => {
            let node = Signal::derive(move || {
                ex.run
                    .snapshot
                    .with(|s| s.as_ref().and_then(|s| s.nodes.get(id.0 as usize).cloned()))
            });
            view! { <NodeDetails node names on_act=Callback::new(move |a| ex.intervene(a))/> }
                .into_any()
        }
        Selection::Message(id) => match ex.selected_message(id) {
            Some(m) => {
                let names = names.get();
                let text = explain_message(&m, &names);
                let name = |n: NodeId| names.get(n.0 as usize).cloned().unwrap_or_default();
                let (outcome, fate) = match &m.fate {
                    None => (format!("arrives {}", secs(m.deliver_at.as_micros())), "in-flight"),
                    Some(Fate::Delivered) => ("delivered".to_string(), "delivered"),
                    Some(Fate::Rejected { .. } | Fate::Refused { .. }) => {
                        ("delivered, refused".to_string(), "refused")
                    }
                    Some(Fate::Dropped(_)) => ("dropped".to_string(), "dropped"),
                };
                view! {
                    <h3>{format!("{} {} → {}", m.name, name(m.from), name(m.to))}</h3>
                    <p id="explain" class="explain" data-fate=fate>{text}</p>
                    <p class="meta">
                        {format!(
                            "sent {} · {outcome}{}{}",
                            secs(m.sent_at.as_micros()),
                            m.epoch.map(|e| format!(" · epoch {e}")).unwrap_or_default(),
                            m.key.map(|k| format!(" · key {k}")).unwrap_or_default()
                        )}
                    </p>
                }
                .into_any()
            }
            None => view! { <p class="hint">"That message is not in flight at this time."</p> }
                .into_any(),
        },
        Selection::Op(index) => view! {
            <OpDetails index full=ex.run.full highlight=ex.view.highlight names/>
        }
        .into_any(),
    };
    view! {
        <section id="inspector" class="panel inspector">
            <h2>"Explain this"</h2>
            {body}
            {move || ex.view.notice.get().map(|notice| {
                let (class, text) = match notice {
                    Notice::Done(text) => ("notice ok", text),
                    Notice::Refused(text) => ("notice refused", text),
                };
                view! { <p id="notice" class=class>{text}</p> }
            })}
            {move || ex.view.undo.get().map(|_| view! {
                <button id="undo-fork" title="Go back to the run before this intervention, with the ones it dropped"
                    on:click=move |_| ex.undo_fork()>"Undo"</button>
            })}
        </section>
    }
}

/// A node explained, with the buttons that act on it (`on_act` applies the action).
#[component]
fn NodeDetails(
    #[prop(into)] node: Signal<Option<NodeView>>,
    #[prop(into)] names: Signal<Vec<String>>,
    on_act: Callback<Action>,
) -> impl IntoView {
    let node = Memo::new(move |_| node.get());
    let act = move |make: fn(String) -> Action| {
        move |_| {
            if let Some(n) = node.get_untracked() {
                on_act.run(make(n.name));
            }
        }
    };
    move || {
        node.get().map(|n| {
            let names = names.get();
            let up = n.up;
            let joining_stuck = n.lifecycle.contains("interrupted") || n.lifecycle.contains("failed");
            view! {
                <h3>{format!("{} — {}", n.name, n.status)}</h3>
                <p id="explain" class="explain">{explain_node(&n, &names)}</p>
                <div class="actions">
                    {if up {
                        view! { <button id="act-crash" on:click=act(Action::Crash)>"Crash"</button> }.into_any()
                    } else {
                        view! { <button id="act-restart" on:click=act(Action::Restart)>"Restart"</button> }.into_any()
                    }}
                    <button id="act-decommission" on:click=act(Action::Decommission) disabled=!up>"Decommission"</button>
                    <button id="act-repair" on:click=act(Action::Repair) disabled=!up>"Repair"</button>
                    <button id="act-cleanup" on:click=act(Action::Cleanup) disabled=!up>"Cleanup"</button>
                    {joining_stuck.then(|| view! {
                        <button id="act-resume" on:click=act(Action::ResumeJoin)>"Resume join"</button>
                    })}
                </div>
            }
        })
    }
}

/// Client operation `index` (its invoke in `full`'s history) explained: its outcome, what the
/// checker found, and the replicas asked and answering (`highlight`).
#[component]
fn OpDetails(
    index: usize,
    #[prop(into)] full: Signal<Option<Arc<FullRun>>>,
    #[prop(into)] highlight: Signal<Option<Arc<OpMessages>>>,
    #[prop(into)] names: Signal<Vec<String>>,
) -> impl IntoView {
    move || {
        let full = full.get()?;
        let invoke = full.history.get(index)?.clone();
        let done = full.pairing.completion_of(index).map(|c| full.history[c].clone());
        let names = names.get();
        let name = |n: NodeId| names.get(n.0 as usize).cloned().unwrap_or_default();
        let anomalies: Vec<String> = done
            .as_ref()
            .map(|d| {
                full.report
                    .check
                    .anomalies
                    .iter()
                    .filter(|a| a.op_index == d.index)
                    .map(|a| format!("{}: {}", a.kind, a.explanation))
                    .collect()
            })
            .unwrap_or_default();
        let write = invoke.f != OpFunction::Read;
        let replicas = highlight.get().map(|h| {
            explain_arithmetic(&h, invoke.cl, write, &names).unwrap_or_else(|| {
                let list = |set: &std::collections::BTreeSet<NodeId>| {
                    set.iter().map(|n| name(*n)).collect::<Vec<_>>().join(", ")
                };
                format!("asked {} · answered in time: {}", list(&h.asked), list(&h.answered))
            })
        });
        let f = match invoke.f {
            OpFunction::Read => "read",
            OpFunction::Write => "write",
            OpFunction::Delete => "delete",
        };
        let outcome = done.as_ref().map_or("never completed".to_string(), |d| match d.op_type {
            OpType::Ok if invoke.f == OpFunction::Read => format!("ok → {:?}", d.values),
            OpType::Ok => "ok".into(),
            // Jepsen's fail (nothing written) and info (maybe written), in the page's words.
            _ => match d.error {
                Some(OpError::Unavailable) => {
                    "unavailable: refused up front, nothing written".into()
                }
                Some(OpError::Timeout) => {
                    "timeout: too few replies in time, some replicas may hold it".into()
                }
                Some(OpError::NodeDown) => "failed: the coordinator was not running".into(),
                None => format!("{:?}", d.op_type).to_lowercase(),
            },
        });
        Some(view! {
            <h3>{format!("client {} {f} {} at {} via {}", invoke.process, invoke.key, invoke.cl, name(invoke.node))}</h3>
            <p class="meta">
                {format!(
                    "invoked {}{} · {outcome}",
                    secs(invoke.time.as_micros()),
                    done.as_ref().map(|d| format!(", completed {}", secs(d.time.as_micros()))).unwrap_or_default()
                )}
            </p>
            <p id="explain" class="explain">
                {if anomalies.is_empty() {
                    "The checker found nothing wrong with this operation. Its messages are highlighted on the ring; step (→) to follow them.".to_string()
                } else {
                    anomalies.join(" ")
                }}
            </p>
            {replicas.map(|r| view! { <p id="op-replicas" class="meta">{r}</p> })}
        })
    }
}

/// Forms that act on the cluster now: a client request, a partition, a new node.
#[component]
pub fn Actions() -> impl IntoView {
    let ex = use_explorer();
    let names = Memo::new(move |_| ex.run.names());
    let (coordinator, set_coordinator) = signal(String::new());
    let (op, set_op) = signal("write".to_string());
    let (key, set_key) = signal("k1".to_string());
    let (value, set_value) = signal("hello".to_string());
    let (cl, set_cl) = signal("QUORUM".to_string());
    let (side, set_side) = signal(Vec::<String>::new());
    let (new_name, set_new_name) = signal(String::new());
    let coordinator_now = move || {
        let c = coordinator.get();
        if c.is_empty() { names.get().first().cloned().unwrap_or_default() } else { c }
    };
    let next_name = move || {
        let taken = names.get();
        let typed = new_name.get();
        if !typed.is_empty() {
            return typed;
        }
        (b'A'..=b'Z')
            .map(|c| (c as char).to_string())
            .find(|n| !taken.contains(n))
            .unwrap_or_else(|| format!("N{}", taken.len()))
    };
    let issue = move |_| {
        let cl: ConsistencyLevel = match cl.get_untracked().parse() {
            Ok(cl) => cl,
            Err(e) => {
                ex.refuse(e.to_string());
                return;
            }
        };
        let node = coordinator_now();
        let key = key.get_untracked();
        if key.is_empty() {
            ex.refuse("a key cannot be empty".into());
            return;
        }
        let action = if op.get_untracked() == "read" {
            Action::Read { node, key, cl }
        } else {
            Action::Write { node, key, value: value.get_untracked(), cl }
        };
        ex.intervene(action);
    };
    // The strategy picked for the new node; the run's own until the user picks another.
    let (picked, set_picked) = signal(None::<JoinStrategy>);
    let strategy_now = move || picked.get().or_else(|| ex.run.strategy());
    view! {
        <section id="actions" class="panel actions-panel">
            <h2>"Act on the cluster"</h2>
            <div class="form-row">
                <select id="req-op" on:change=move |e| set_op.set(event_target_value(&e)) prop:value=op>
                    <option value="write">"write"</option>
                    <option value="read">"read"</option>
                </select>
                <input id="req-key" size="6" prop:value=key on:input=move |e| set_key.set(event_target_value(&e)) aria-label="key"/>
                <Show when=move || op.get() == "write">
                    <input id="req-value" size="7" prop:value=value on:input=move |e| set_value.set(event_target_value(&e)) aria-label="value"/>
                </Show>
                <select id="req-cl" prop:value=cl on:change=move |e| set_cl.set(event_target_value(&e)) aria-label="consistency level">
                    {ConsistencyLevel::ALL.iter().map(|l| view! { <option value=l.to_string()>{l.to_string()}</option> }).collect_view()}
                </select>
                "via"
                <select id="req-node" on:change=move |e| set_coordinator.set(event_target_value(&e)) aria-label="coordinator">
                    {move || names.get().into_iter().map(|n| view! { <option value=n.clone() selected=n == coordinator_now()>{n.clone()}</option> }).collect_view()}
                </select>
                <button id="req-go" on:click=issue>"Send"</button>
            </div>
            <div class="form-row">
                <span class="label">"Partition off"</span>
                {move || names.get().into_iter().map(|n| {
                    let n2 = n.clone();
                    view! {
                        <label class="check">
                            <input type="checkbox" class="part-node" prop:checked=move || side.get().contains(&n2)
                                on:change={
                                    let n = n.clone();
                                    move |e| {
                                        let on = event_target_checked(&e);
                                        set_side.update(|s| { s.retain(|x| x != &n); if on { s.push(n.clone()); } });
                                    }
                                }/>
                            {n.clone()}
                        </label>
                    }
                }).collect_view()}
                <button id="partition" on:click=move |_| {
                    let chosen = side.get_untracked();
                    if chosen.is_empty() {
                        ex.refuse("tick the nodes to cut off from the others first".into());
                    } else {
                        ex.intervene(Action::Partition(vec![chosen]));
                    }
                }>"Partition"</button>
                <button id="heal" on:click=move |_| ex.intervene(Action::Heal)>"Heal"</button>
            </div>
            <div class="form-row">
                <span class="label">"Add node"</span>
                <input id="add-name" size="4" prop:value=next_name on:input=move |e| set_new_name.set(event_target_value(&e)) aria-label="new node name"/>
                "with"
                <select id="add-strategy" aria-label="join strategy"
                    prop:value=move || strategy_now().map(|s| s.name().to_string()).unwrap_or_default()
                    on:change=move |e| set_picked.set(event_target_value(&e).parse().ok())>
                    {JoinStrategy::ALL.iter().map(|s| view! { <option value=s.name()>{s.name()}</option> }).collect_view()}
                </select>
                <button id="add-go" on:click=move |_| {
                    let name = next_name();
                    if let Some(s) = strategy_now() && Some(s) != ex.run.strategy() {
                        // The strategy is cluster-wide: replay the run under it up to now.
                        ex.set_strategy(s);
                    }
                    ex.intervene(Action::AddNode(name));
                    set_new_name.set(String::new());
                    set_picked.set(None);
                }>"Add"</button>
            </div>
            <p class="hint small">"The join strategy is cluster-wide: choosing another one replays the run under it, up to now, before the node is added."</p>
        </section>
    }
}
