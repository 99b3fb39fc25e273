//! The scenario builder: a situation set up from a few choices (nodes, RF, tokens, who is down,
//! one client request, a node joining), written as a scenario file by the engine's
//! [`Sketch`] and run like a pasted file — so the link replays it.

use crate::state::use_explorer;
use leptos::prelude::*;
use ringside_core::ConsistencyLevel;
use ringside_core::membership::JoinStrategy;
use ringside_core::scenario::{Sketch, SketchOp, node_name};
use ringside_core::version::ConflictMode;

/// The builder's form, with the scenario file it writes.
#[component]
pub fn ScenarioBuilder() -> impl IntoView {
    let ex = use_explorer();
    let sketch = RwSignal::new(Sketch::default());
    let text = Memo::new(move |_| sketch.with(Sketch::to_toml));
    let names = Memo::new(move |_| sketch.with(Sketch::names));
    let number = |e: &leptos::ev::Event| event_target_value(e).parse::<usize>().ok();
    let set_nodes = move |e: leptos::ev::Event| {
        if let Some(n) = number(&e) {
            sketch.update(|s| {
                s.nodes = n;
                s.rf = s.rf.min(n);
                let names = s.names();
                s.down.retain(|d| names.contains(d));
                if let Some(op) = &mut s.op
                    && !names.contains(&op.node)
                {
                    op.node = node_name(0);
                }
            });
        }
    };
    let op_kind = move || {
        sketch.with(|s| s.op.as_ref().map_or("none", |o| if o.write { "write" } else { "read" }))
    };
    let set_op = move |e: leptos::ev::Event| {
        let kind = event_target_value(&e);
        sketch.update(|s| {
            s.op = match kind.as_str() {
                "none" => None,
                k => {
                    let mut op = s.op.clone().unwrap_or(SketchOp {
                        write: true,
                        node: node_name(0),
                        key: "k1".into(),
                        cl: ConsistencyLevel::Quorum,
                    });
                    op.write = k == "write";
                    Some(op)
                }
            }
        });
    };
    let run = move |_| match ex.load_text(text.get_untracked()) {
        Ok(()) => ex.view.gallery.set(false),
        Err(e) => ex.refuse(format!("the built scenario does not load: {e}")),
    };
    view! {
        <div id="builder" class="builder">
            <div class="form-row">
                <label>"Nodes "
                    <select id="b-nodes" on:change=set_nodes prop:value=move || sketch.with(|s| s.nodes.to_string())>
                        {(2..=12).map(|n| view! { <option value=n.to_string()>{n}</option> }).collect_view()}
                    </select>
                </label>
                <label>"RF "
                    <select id="b-rf" prop:value=move || sketch.with(|s| s.rf.to_string())
                        on:change=move |e| { if let Some(rf) = number(&e) { sketch.update(|s| s.rf = rf.min(s.nodes)) } }>
                        {(1..=5).map(|n| view! { <option value=n.to_string()>{n}</option> }).collect_view()}
                    </select>
                </label>
                <label>"Tokens "
                    <select id="b-vnodes" prop:value=move || sketch.with(|s| s.vnodes.to_string())
                        on:change=move |e| { if let Some(v) = number(&e) { sketch.update(|s| s.vnodes = v) } }>
                        <option value="1">"one each, evenly spaced"</option>
                        <option value="4">"4 vnodes each"</option>
                        <option value="16">"16 vnodes each"</option>
                    </select>
                </label>
                <label>"Writes "
                    <select id="b-conflict" on:change=move |e| {
                        let lww = event_target_value(&e) == "lww";
                        sketch.update(|s| s.conflict = if lww { ConflictMode::Lww } else { ConflictMode::VectorClock });
                    }>
                        <option value="lww">"last-write-wins"</option>
                        <option value="vector-clock">"vector clocks"</option>
                    </select>
                </label>
            </div>
            <div class="form-row">
                <span class="label">"Down from 1 s"</span>
                {move || names.get().into_iter().map(|n| {
                    let n2 = n.clone();
                    let n3 = n.clone();
                    view! {
                        <label class="check">
                            <input type="checkbox" class="b-down" data-node=n.clone()
                                prop:checked=move || sketch.with(|s| s.down.contains(&n2))
                                on:change=move |e| {
                                    let on = event_target_checked(&e);
                                    let n = n3.clone();
                                    sketch.update(|s| { s.down.retain(|d| *d != n); if on { s.down.push(n); } });
                                }/>
                            {n}
                        </label>
                    }
                }).collect_view()}
            </div>
            <div class="form-row">
                <span class="label">"At 70 s"</span>
                <select id="b-op" prop:value=op_kind on:change=set_op aria-label="request">
                    <option value="write">"a write"</option>
                    <option value="read">"a read"</option>
                    <option value="none">"no request"</option>
                </select>
                <Show when=move || sketch.with(|s| s.op.is_some())>
                    "of"
                    <input id="b-key" size="6" aria-label="key"
                        prop:value=move || sketch.with(|s| s.op.as_ref().map(|o| o.key.clone()).unwrap_or_default())
                        on:input=move |e| { let k = event_target_value(&e); sketch.update(|s| if let Some(o) = &mut s.op { o.key = k }) }/>
                    "at"
                    <select id="b-cl" aria-label="consistency level"
                        prop:value=move || sketch.with(|s| s.op.as_ref().map(|o| o.cl.to_string()).unwrap_or_default())
                        on:change=move |e| { if let Ok(cl) = event_target_value(&e).parse() { sketch.update(|s| if let Some(o) = &mut s.op { o.cl = cl }) } }>
                        {ConsistencyLevel::ALL.iter().map(|l| view! { <option value=l.to_string()>{l.to_string()}</option> }).collect_view()}
                    </select>
                    "via"
                    <select id="b-coord" aria-label="coordinator"
                        on:change=move |e| { let n = event_target_value(&e); sketch.update(|s| if let Some(o) = &mut s.op { o.node = n }) }>
                        {move || names.get().into_iter().map(|n| {
                            let selected = sketch.with(|s| s.op.as_ref().is_some_and(|o| o.node == n));
                            view! { <option value=n.clone() selected=selected>{n.clone()}</option> }
                        }).collect_view()}
                    </select>
                </Show>
            </div>
            <div class="form-row">
                <label class="check">
                    <input id="b-join" type="checkbox" prop:checked=move || sketch.with(|s| s.join.is_some())
                        on:change=move |e| { let on = event_target_checked(&e); sketch.update(|s| s.join = on.then_some(None)) }/>
                    "a node joins at 10 s, with"
                </label>
                <select id="b-strategy" aria-label="join strategy"
                    on:change=move |e| {
                        let picked: Result<JoinStrategy, _> = event_target_value(&e).parse();
                        if let Ok(st) = picked { sketch.update(|s| s.strategy = st) }
                    }>
                    {JoinStrategy::ALL.iter().map(|s| view! { <option value=s.name()>{s.name()}</option> }).collect_view()}
                </select>
                <label>"Clients "
                    <input id="b-clients" type="number" min="0" max="20" size="3"
                        prop:value=move || sketch.with(|s| s.clients.to_string())
                        on:input=move |e| { if let Some(c) = number(&e) { sketch.update(|s| s.clients = c.min(20)) } }/>
                </label>
            </div>
            <details>
                <summary>"The scenario file it writes"</summary>
                <pre id="builder-toml" class="scenario-text">{move || text.get()}</pre>
            </details>
            <div class="form-row">
                <button id="builder-run" class="primary" on:click=run>"Run this situation"</button>
                <span class="hint small">"It goes into the link, so a shared link sets up the same situation."</span>
            </div>
        </div>
    }
}
