//! The ring: vnodes coloured by owner, pending ranges, node badges around it, messages flying
//! between them, and a key's replica walk under the pointer.

use crate::geometry::{
    self, CENTER, PENDING_INNER, PENDING_OUTER, Point, RING_INNER, RING_OUTER, SIZE, band_path,
    message_path, message_point, node_position, polar, replica_walk,
};
use crate::state::{Selection, use_explorer};
use leptos::prelude::*;
use ringside_core::NodeId;
use ringside_core::explore::{
    ArcView, DropCause, MessageView, NodeView, OpMessages, fraction, range_view,
};
use ringside_core::message::MessageKind;
use ringside_core::topology::WriteRole;
use std::collections::BTreeMap;
use std::sync::Arc;
use wasm_bindgen::JsCast;

/// Node colours (owners of vnodes), by node id.
/// Twelve hues far apart (blue, orange, green, red, purple, brown, pink, grey, olive, cyan, navy,
/// gold), so that 12 nodes stay told apart, and none close to the red of dropped messages.
const PALETTE: &[&str] = &[
    "#2563eb", "#ea8c00", "#16a34a", "#b91c1c", "#7c3aed", "#8b5a2b", "#db2777", "#6b7280",
    "#84a000", "#06b6d4", "#1e3a8a", "#d4a017",
];

/// The colour of a node.
pub fn node_color(id: NodeId) -> &'static str {
    PALETTE[id.0 as usize % PALETTE.len()]
}

/// The CSS class of a message kind (colours come from the stylesheet).
pub fn kind_class(kind: MessageKind) -> &'static str {
    match kind {
        MessageKind::Gossip => "gossip",
        MessageKind::Topology => "topology",
        MessageKind::Stream => "stream",
        MessageKind::Merkle => "merkle",
        MessageKind::Mutation => "mutation",
        MessageKind::Ack => "ack",
        MessageKind::Read => "read",
        MessageKind::ReadReply => "readreply",
        MessageKind::Repair => "repair",
        MessageKind::Hint => "hint",
    }
}

/// Message kinds in legend order, with their labels.
pub const KINDS: &[(MessageKind, &str)] = &[
    (MessageKind::Mutation, "writes"),
    (MessageKind::Ack, "acks"),
    (MessageKind::Read, "reads"),
    (MessageKind::ReadReply, "read replies"),
    (MessageKind::Repair, "read repair"),
    (MessageKind::Hint, "hints"),
    (MessageKind::Stream, "streaming"),
    (MessageKind::Merkle, "Merkle repair"),
    (MessageKind::Topology, "topology"),
    (MessageKind::Gossip, "gossip"),
];

#[derive(Clone, PartialEq)]
struct Drawn {
    x: f64,
    y: f64,
    class: String,
    /// The message type (for the page's tests and style sheets: `data-name`).
    name: &'static str,
}

/// The ring view.
#[component]
pub fn RingView() -> impl IntoView {
    let ex = use_explorer();
    let snap = ex.run.snapshot;
    let nodes =
        Memo::new(move |_| snap.with(|s| s.as_ref().map(|s| s.nodes.clone()).unwrap_or_default()));
    let count = Memo::new(move |_| nodes.with(Vec::len));
    let names = Memo::new(move |_| nodes.with(|n| n.iter().map(|n| n.name.clone()).collect()));
    let cut =
        Memo::new(move |_| snap.with(|s| s.as_ref().map(|s| s.cut.clone()).unwrap_or_default()));
    let selected_message = Memo::new(move |_| match ex.view.selection.get() {
        Selection::Message(id) => {
            snap.with(|s| s.as_ref().and_then(|s| s.messages.iter().find(|m| m.id == id).cloned()))
        }
        _ => None,
    });
    let positions = Memo::new(move |_| {
        let n = count.get();
        (0..n).map(|i| node_position(i, n)).collect::<Vec<Point>>()
    });
    let arcs =
        Memo::new(move |_| snap.with(|s| s.as_ref().map(|s| s.arcs.clone()).unwrap_or_default()));
    let pending = Memo::new(move |_| {
        snap.with(|s| s.as_ref().map(|s| s.pending.clone()).unwrap_or_default())
    });
    // Messages drawn this frame, by id: position and classes.
    let drawn = Memo::new(move |_| {
        let hidden = ex.view.hidden.get();
        let highlight = ex.view.highlight.get();
        let selected = ex.view.selection.get();
        let pos = positions.get();
        snap.with(|s| {
            let mut out: BTreeMap<u64, Drawn> = BTreeMap::new();
            let Some(s) = s else { return out };
            for m in &s.messages {
                let lit = highlight.as_ref().is_some_and(|h| h.messages.contains(&m.id));
                if hidden.contains(&m.kind) && !lit {
                    continue;
                }
                let (Some(a), Some(b)) = (pos.get(m.from.0 as usize), pos.get(m.to.0 as usize))
                else {
                    continue;
                };
                let p = message_point(*a, *b, m.progress);
                let mut class = format!("msg {}", kind_class(m.kind));
                if m.dropped.is_some() {
                    class.push_str(" dropped");
                }
                if lit {
                    class.push_str(" lit");
                }
                if selected == Selection::Message(m.id) {
                    class.push_str(" selected");
                }
                out.insert(m.id, Drawn { x: p.x, y: p.y, class, name: m.name });
            }
            out
        })
    });
    let ids = Memo::new(move |_| drawn.with(|d| d.keys().copied().collect::<Vec<u64>>()));
    // The selected operation's arithmetic, short: "QUORUM needs 2 · 2 acked ✓".
    let arithmetic = Memo::new(move |_| {
        let Selection::Op(invoke) = ex.view.selection.get() else { return None };
        let h = ex.view.highlight.get()?;
        let plan = h.plan.as_ref()?;
        let op = ex.run.full.with(|f| f.as_ref().and_then(|f| f.history.get(invoke).cloned()))?;
        let got = h.answered.len();
        let what =
            if op.f == ringside_core::history::OpFunction::Read { "replied" } else { "acked" };
        let mark = if got >= plan.required { "✓" } else { "✗" };
        Some(format!("{} needs {} · {got} {what} {mark}", op.cl, plan.required))
    });

    let on_move = move |ev: leptos::ev::MouseEvent| {
        let Some(target) = ev.current_target() else { return };
        let Ok(el) = target.dyn_into::<web_sys::Element>() else { return };
        let rect = el.get_bounding_client_rect();
        if rect.width() <= 0.0 {
            return;
        }
        let scale = SIZE / rect.width().min(rect.height());
        let p = Point {
            x: (f64::from(ev.client_x()) - rect.left()) * scale,
            y: (f64::from(ev.client_y()) - rect.top()) * scale,
        };
        let r = geometry::radius_at(p);
        let on_ring = (RING_INNER - 8.0..=PENDING_OUTER + 8.0).contains(&r);
        ex.view.hover_token.set(on_ring.then(|| geometry::token_at(geometry::fraction_at(p))));
    };

    // The badges come after the message dots, so that names stay readable under traffic.
    view! {
        <svg
            id="ring"
            viewBox=format!("0 0 {SIZE} {SIZE}")
            role="img"
            aria-label="The token ring: vnodes coloured by owner, nodes around it, messages between them"
            on:mousemove=on_move
            on:mouseleave=move |_| ex.view.hover_token.set(None)
        >
            <circle class="ring-guide" cx=CENTER cy=CENTER r=(RING_INNER + RING_OUTER) / 2.0></circle>
            <g class="arcs">
                <For
                    each=move || arcs.get().into_iter().enumerate()
                    key=|(_, a)| (a.token, a.owner.0, a.start.to_bits())
                    children=move |(_, a)| {
                        let owner = a.owner;
                        view! {
                            <path
                                class="arc"
                                d=band_path(a.start, a.width, RING_INNER, RING_OUTER)
                                fill=node_color(owner)
                                data-owner=owner.0
                            ></path>
                        }
                    }
                />
            </g>
            <g class="pending-ranges">
                <For
                    each=move || pending.get().into_iter().enumerate()
                    key=|(i, p)| (*i, p.node.0, p.start.to_bits(), p.width.to_bits())
                    children=move |(_, p)| {
                        let role = match p.role {
                            WriteRole::Counted => "counted",
                            WriteRole::Required => "required",
                            WriteRole::Shadow => "shadow",
                        };
                        view! {
                            <path
                                class=format!("pending {role}")
                                d=band_path(p.start, p.width, PENDING_INNER, PENDING_OUTER)
                                fill=node_color(p.node)
                            >
                                <title>{format!("pending range: extra write target ({role})")}</title>
                            </path>
                        }
                    }
                />
            </g>
            <Streaming nodes/>
            <JoiningTokens nodes/>
            <Partition cut positions/>
            <Walk token=ex.view.hover_token arcs names/>
            <SelectedPath message=selected_message count/>
            <g class="messages">
                <For
                    each=move || ids.get()
                    key=|id| *id
                    children=move |id| {
                        let class = move || drawn.with(|d| d.get(&id).map(|d| d.class.clone()).unwrap_or_default());
                        let x = move || drawn.with(|d| d.get(&id).map_or(0.0, |d| d.x));
                        let y = move || drawn.with(|d| d.get(&id).map_or(0.0, |d| d.y));
                        // A message keeps its id and type while it is drawn.
                        let name = drawn.with_untracked(|d| d.get(&id).map_or("", |d| d.name));
                        view! {
                            <circle
                                r="6"
                                data-id=id
                                data-name=name
                                class=class
                                cx=move || format!("{:.1}", x())
                                cy=move || format!("{:.1}", y())
                                on:click=move |e| {
                                    e.stop_propagation();
                                    ex.view.playing.set(false);
                                    ex.select(Selection::Message(id));
                                }
                            ></circle>
                        }
                    }
                />
            </g>
            <g class="nodes">
                <For
                    each=move || (0..count.get()).map(|i| NodeId(i as u32))
                    key=|id| id.0
                    children=move |id| view! {
                        <NodeBadge
                            id
                            node=Signal::derive(move || nodes.with(|n| n.get(id.0 as usize).cloned()))
                            position=Signal::derive(move || positions.with(|p| p.get(id.0 as usize).copied()))
                            selected=Signal::derive(move || ex.view.selection.get() == Selection::Node(id))
                            highlight=ex.view.highlight
                            on_select=Callback::new(move |()| ex.select(Selection::Node(id)))
                        />
                    }
                />
            </g>
            <text class="clock" x=CENTER y=CENTER - 6.0 text-anchor="middle">
                {move || format!("{:.3} s", ex.run.now().as_micros() as f64 / 1e6)}
            </text>
            <text class="clock-sub" x=CENTER y=CENTER + 16.0 text-anchor="middle">
                {move || snap.with(|s| s.as_ref().map(|s| format!("RF {} · {} in flight", s.rf, s.messages.len())).unwrap_or_default())}
            </text>
            <text id="ring-arithmetic" class="clock-sub arithmetic" x=CENTER y=CENTER + 34.0 text-anchor="middle">
                {move || arithmetic.get()}
            </text>
        </svg>
    }
}

/// Node `id` around the ring, at `position`; in `highlight`, it shows whether it was asked by
/// the selected operation and answered in time.
#[component]
fn NodeBadge(
    id: NodeId,
    #[prop(into)] node: Signal<Option<NodeView>>,
    #[prop(into)] position: Signal<Option<Point>>,
    #[prop(into)] selected: Signal<bool>,
    #[prop(into)] highlight: Signal<Option<Arc<OpMessages>>>,
    on_select: Callback<()>,
) -> impl IntoView {
    let node = Memo::new(move |_| node.get());
    let pos = move || position.get().unwrap_or(Point { x: 0.0, y: 0.0 });
    let class = move || {
        let mut c = String::from("node");
        if let Some(n) = node.get() {
            c.push_str(&format!(" status-{}", n.status.to_lowercase()));
            if !n.up {
                c.push_str(" down");
            }
        }
        if selected.get() {
            c.push_str(" selected");
        }
        if let Some(h) = highlight.get() {
            if h.answered.contains(&id) {
                c.push_str(" answered");
            } else if h.asked.contains(&id) {
                c.push_str(" asked");
            }
        }
        c
    };
    let name = move || node.get().map(|n| n.name).unwrap_or_default();
    let status = move || node.get().map(|n| n.status).unwrap_or_default();
    view! {
        <g
            class=class
            data-name=name
            data-status=status
            transform=move || format!("translate({:.1} {:.1})", pos().x, pos().y)
            on:click=move |e| {
                e.stop_propagation();
                on_select.run(());
            }
        >
            <title>{move || format!("{} — {} (click for details and actions)", name(), status())}</title>
            <circle class="node-disc" r="27" fill=node_color(id)></circle>
            <text class="node-name" y="5" text-anchor="middle">{name}</text>
            <g class="status-badge" transform="translate(0 40)">
                <rect x="-17" y="-10" width="34" height="17" rx="4"></rect>
                <text y="3" text-anchor="middle">{status}</text>
            </g>
            <Show when=move || node.get().is_some_and(|n| n.movement.is_some())>
                <path
                    class="movement-ring"
                    d=move || {
                        let m = node.get().and_then(|n| n.movement);
                        let f = m.map_or(0.0, |m| if m.ranges_total == 0 { 0.0 } else { m.ranges_done as f64 / m.ranges_total as f64 });
                        arc_around(f)
                    }
                ></path>
            </Show>
        </g>
    }
}

/// A progress arc around a node badge (radius 32), `f` of the way round.
fn arc_around(f: f64) -> String {
    let f = f.clamp(0.0, 0.9999);
    let r = 32.0;
    let a = geometry::angle_of(f);
    let large = if f > 0.5 { 1 } else { 0 };
    format!("M0 {:.2}A{r} {r} 0 {large} 1 {:.2} {:.2}", -r, r * a.cos(), r * a.sin())
}

/// The replica walk over `arcs` from `token` (the one under the pointer).
#[component]
fn Walk(
    #[prop(into)] token: Signal<Option<u64>>,
    #[prop(into)] arcs: Signal<Vec<ArcView>>,
    #[prop(into)] names: Signal<Vec<String>>,
) -> impl IntoView {
    let walk = Memo::new(move |_| {
        let token = token.get()?;
        arcs.with(|arcs| Some((token, replica_walk(arcs, token), arcs.clone())))
    });
    move || {
        walk.get().map(|(token, steps, arcs)| {
            let f = fraction(token);
            let (inner, outer) = (polar(f, RING_INNER - 14.0), polar(f, PENDING_OUTER + 6.0));
            let names = names.get();
            let replicas: Vec<String> = steps
                .iter()
                .filter(|s| s.replica.is_some())
                .map(|s| names.get(s.owner.0 as usize).cloned().unwrap_or_default())
                .collect();
            let marks = steps
                .iter()
                .map(|s| {
                    let a = &arcs[s.arc];
                    let p = polar(a.start + a.width, (RING_INNER + RING_OUTER) / 2.0);
                    let label = s.replica.map(|n| n.to_string()).unwrap_or_else(|| "·".into());
                    view! {
                        <g class=if s.replica.is_some() { "walk-step replica" } else { "walk-step skipped" }
                            transform=format!("translate({:.1} {:.1})", p.x, p.y)>
                            <circle r="9"></circle>
                            <text y="4" text-anchor="middle">{label}</text>
                        </g>
                    }
                })
                .collect_view();
            view! {
                <g class="walk">
                    <line class="walk-token" x1=inner.x y1=inner.y x2=outer.x y2=outer.y></line>
                    {marks}
                    <text id="walk-caption" class="walk-caption" x=CENTER y=CENTER + 40.0 text-anchor="middle">
                        {format!("token {:.1}% → replicas {}", f * 100.0, replicas.join(", "))}
                    </text>
                </g>
            }
        })
    }
}

/// The path of the selected `message` between the `count` nodes, with a mark where it will be
/// dropped.
#[component]
fn SelectedPath(
    #[prop(into)] message: Signal<Option<MessageView>>,
    #[prop(into)] count: Signal<usize>,
) -> impl IntoView {
    move || {
        message.get().map(|m: MessageView| {
            let n = count.get();
            let (a, b) = (node_position(m.from.0 as usize, n), node_position(m.to.0 as usize, n));
            let cross = m.dropped.map(|cause| {
                let p = message_point(a, b, 0.85);
                let title = match cause {
                    DropCause::Loss => "lost by the network",
                    DropCause::Partition => "blocked by the partition",
                    DropCause::NodeDown => "receiver is down",
                };
                view! {
                    <g class="drop-mark" transform=format!("translate({:.1} {:.1})", p.x, p.y)>
                        <title>{title}</title>
                        <path d="M-7 -7L7 7M7 -7L-7 7"></path>
                    </g>
                }
            });
            view! {
                <g class="selected-path">
                    <path d=message_path(a, b)></path>
                    {cross}
                </g>
            }
        })
    }
}

/// The range each moving node among `nodes` is streaming now, just outside the pending band.
#[component]
fn Streaming(#[prop(into)] nodes: Signal<Vec<NodeView>>) -> impl IntoView {
    let ranges = Memo::new(move |_| {
        nodes.with(|nodes| {
            nodes
                .iter()
                .filter_map(|n| {
                    let m = n.movement.as_ref()?;
                    let (range, peer) = m.current?;
                    let (start, width) = range_view(range);
                    Some((n.id, peer, start, width))
                })
                .collect::<Vec<_>>()
        })
    });
    move || {
        let names: Vec<String> = nodes.with(|n| n.iter().map(|n| n.name.clone()).collect());
        ranges
            .get()
            .into_iter()
            .map(|(node, peer, start, width)| {
                let name = |n: NodeId| names.get(n.0 as usize).cloned().unwrap_or_default();
                view! {
                    <path class="streaming-range" d=band_path(start, width, PENDING_OUTER + 3.0, PENDING_OUTER + 9.0)
                        fill=node_color(node)>
                        <title>{format!("{} is streaming this range with {} now", name(node), name(peer))}</title>
                    </path>
                }
            })
            .collect_view()
    }
}

/// Marks at a joining node's announced tokens, outside the ring: where its ranges will start.
#[component]
fn JoiningTokens(#[prop(into)] nodes: Signal<Vec<NodeView>>) -> impl IntoView {
    move || {
        nodes.with(|nodes| {
            nodes
                .iter()
                .flat_map(|n| {
                    let (id, name) = (n.id, n.name.clone());
                    n.joining_tokens.iter().map(move |f| {
                        let (tip, left, right) = (
                            polar(*f, PENDING_OUTER + 2.0),
                            polar(*f - 0.006, PENDING_OUTER + 14.0),
                            polar(*f + 0.006, PENDING_OUTER + 14.0),
                        );
                        let d = format!(
                            "M{:.1} {:.1}L{:.1} {:.1}L{:.1} {:.1}Z",
                            tip.x, tip.y, left.x, left.y, right.x, right.y
                        );
                        view! {
                            <path class="joining-token" d=d fill=node_color(id) data-node=name.clone()>
                                <title>{format!("a token {name} announced: its range will end here once it has joined")}</title>
                            </path>
                        }
                    })
                })
                .collect_view()
        })
    }
}

/// Dashed lines between the pairs of nodes a partition separates (`cut`).
#[component]
fn Partition(
    #[prop(into)] cut: Signal<Vec<(NodeId, NodeId)>>,
    #[prop(into)] positions: Signal<Vec<Point>>,
) -> impl IntoView {
    move || {
        let pos = positions.get();
        cut.get()
            .into_iter()
            .filter_map(|(a, b)| {
                let (pa, pb) = (pos.get(a.0 as usize)?, pos.get(b.0 as usize)?);
                Some(view! {
                    <line class="cut" x1=pa.x y1=pa.y x2=pb.x y2=pb.y>
                        <title>"partitioned: messages between these two nodes are dropped"</title>
                    </line>
                })
            })
            .collect_view()
    }
}
