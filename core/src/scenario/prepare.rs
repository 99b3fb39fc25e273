//! Validation of a parsed scenario against its own text, and the [`Prepared`] run it becomes.
//!
//! Everything the types alone cannot refuse is checked here, so that nothing in a file is
//! silently ignored and nothing runs that could not work; each refusal names the line and column
//! of the offending key or value.

use super::event::{ClientOp, Event, Target, TimelineEvent};
use super::expect::{OP_ERRORS, valid_ownership, valid_status};
use super::spec::{EventSpec, OpSpec, PauseSpec, Scenario, ScenarioError};
use crate::alloc::build_ring;
use crate::consistency::ConsistencyLevel;
use crate::id::NodeId;
use crate::node::NodeConfig;
use crate::ring::Ring;
use crate::token::Token;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::time::Duration;
use toml::Spanned;

/// One step of a path into the scenario's TOML document.
#[derive(Clone, Copy, Debug)]
enum Seg<'s> {
    /// A table key.
    K(&'s str),
    /// An array element.
    I(usize),
}
use Seg::{I, K};

/// Where keys and values are in a scenario's text. The typed [`Scenario`] keeps spans only for
/// node names, so validation looks the rest up here by path (`events[3].expect`) to name the
/// line and column of what it refuses.
struct Spans<'a> {
    text: &'a str,
    /// `None` when `text` is not valid TOML (then errors carry no position).
    root: Option<Spanned<toml::de::DeTable<'a>>>,
}

type Span = std::ops::Range<usize>;

impl<'a> Spans<'a> {
    fn new(text: &'a str) -> Spans<'a> {
        Spans { text, root: toml::de::DeTable::parse(text).ok() }
    }

    /// The key's span (for the last segment when it is a key) and the value at `path`.
    fn find(&self, path: &[Seg]) -> Option<(Option<Span>, &Spanned<toml::de::DeValue<'a>>)> {
        let root = self.root.as_ref()?;
        let (first, rest) = path.split_first()?;
        let K(k) = first else { return None };
        let (mut key, mut value) =
            root.get_ref().iter().find(|(n, _)| n.get_ref() == k).map(|(n, v)| (n.span(), v))?;
        for seg in rest {
            match (seg, value.get_ref()) {
                (K(k), toml::de::DeValue::Table(t)) => {
                    let (n, v) = t.iter().find(|(n, _)| n.get_ref() == k)?;
                    (key, value) = (n.span(), v);
                }
                (I(i), toml::de::DeValue::Array(a)) => {
                    value = a.get(*i)?;
                    key = value.span();
                }
                _ => return None,
            }
        }
        Some((Some(key), value))
    }

    /// The span of the value at `path`.
    fn value(&self, path: &[Seg]) -> Option<Span> {
        self.find(path).map(|(_, v)| v.span())
    }

    /// The span of the key at `path` (of the element, for an array index).
    fn key(&self, path: &[Seg]) -> Option<Span> {
        self.find(path).and_then(|(k, _)| k)
    }

    /// An error at `span`, or without a position when the span is unknown.
    fn error(&self, span: Option<Span>, message: String) -> ScenarioError {
        match span {
            Some(span) => {
                let (line, column) = line_column(self.text, span.start);
                ScenarioError::Invalid { line, column, message }
            }
            None => ScenarioError::Semantic(message),
        }
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (before.matches('\n').count() + 1, before[line_start..].chars().count() + 1)
}
/// What [`validate`] parsed on the way: the timeline and the tokens `cluster.tokens` gives.
struct Validated {
    timeline: Vec<TimelineEvent>,
    tokens: BTreeMap<String, Vec<Token>>,
}

/// Checks everything in a scenario that the types alone do not, so that nothing in the file is
/// silently ignored and nothing runs that could not work; errors point into `text`.
fn validate(scenario: &Scenario, sp: &Spans) -> Result<Validated, ScenarioError> {
    let names: Vec<String> = scenario.cluster.nodes.iter().map(|s| s.get_ref().clone()).collect();
    let at_span = |s: &Spanned<String>, message: String| sp.error(Some(s.span()), message);
    if names.is_empty() {
        return Err(sp.error(
            sp.value(&[K("cluster"), K("nodes")]),
            "cluster.nodes is empty: list at least one node".into(),
        ));
    }
    for (i, n) in scenario.cluster.nodes.iter().enumerate() {
        if names[..i].contains(n.get_ref()) {
            return Err(at_span(
                n,
                format!(
                    "node {:?} is listed twice in cluster.nodes: give each node one name",
                    n.get_ref()
                ),
            ));
        }
    }
    let rf = scenario.cluster.rf;
    let rf_span = || sp.value(&[K("cluster"), K("rf")]);
    if rf == 0 {
        return Err(sp.error(rf_span(), "cluster.rf must be at least 1".into()));
    }
    // More replicas than nodes would make a node count twice: ALL would succeed with fewer acks
    // than RF and ownership would sum past 100% per replica. Nodes added later do not count:
    // the initial ring must hold RF replicas from the start.
    if rf > names.len() {
        return Err(sp.error(
            rf_span(),
            format!(
                "cluster.rf {rf} is larger than the {} nodes of cluster.nodes: lower rf or list more nodes",
                names.len()
            ),
        ));
    }
    if scenario.cluster.num_tokens == 0 {
        return Err(sp.error(
            sp.value(&[K("cluster"), K("num_tokens")]),
            "cluster.num_tokens must be at least 1 (vnodes per node)".into(),
        ));
    }
    for (map, what) in [("tokens", "explicit tokens"), ("racks", "a rack")] {
        let keys: Vec<&String> = if map == "tokens" {
            scenario.cluster.tokens.keys().collect()
        } else {
            scenario.cluster.racks.keys().collect()
        };
        for name in keys {
            if !names.contains(name) {
                return Err(sp.error(
                    sp.key(&[K("cluster"), K(map), K(name)]),
                    format!(
                        "cluster.{map} gives {what} to unknown node {name:?}: the cluster's nodes are {}",
                        names.join(", ")
                    ),
                ));
            }
        }
    }
    let mut tokens = BTreeMap::new();
    for (name, specs) in &scenario.cluster.tokens {
        let path = [K("cluster"), K("tokens"), K(name)];
        if specs.is_empty() {
            return Err(sp.error(
                sp.value(&path),
                format!("cluster.tokens gives node {name:?} no tokens: list at least one, or leave the node out to allocate its tokens"),
            ));
        }
        let mut resolved = Vec::with_capacity(specs.len());
        for (j, t) in specs.iter().enumerate() {
            resolved.push(t.resolve().map_err(|m| {
                sp.error(sp.value(&[path[0], path[1], path[2], I(j)]), m.to_string())
            })?);
        }
        tokens.insert(name.clone(), resolved);
    }

    // Nodes added by the timeline are valid names for every event (a too-early reference fails
    // at run time with a clear error).
    let mut all_names = names.clone();
    for e in &scenario.events {
        if let Some(a) = &e.add_node {
            if all_names.contains(a.name.get_ref()) {
                return Err(at_span(
                    &a.name,
                    format!(
                        "add_node: a node named {:?} already exists: pick a new name",
                        a.name.get_ref()
                    ),
                ));
            }
            all_names.push(a.name.get_ref().clone());
        }
    }
    let unknown =
        |n: &str| format!("unknown node {n:?}: the cluster's nodes are {}", all_names.join(", "));
    let check_name = |s: &Spanned<String>| -> Result<(), ScenarioError> {
        if all_names.contains(s.get_ref()) { Ok(()) } else { Err(at_span(s, unknown(s.get_ref()))) }
    };
    // Names in expectations are plain strings: their spans come from the text.
    let check_names_at = |path: &[Seg], names: &[String]| -> Result<(), ScenarioError> {
        for (j, n) in names.iter().enumerate() {
            if !all_names.contains(n) {
                let mut p = path.to_vec();
                p.push(I(j));
                return Err(sp.error(sp.value(&p), unknown(n)));
            }
        }
        Ok(())
    };
    let check_node_map = |path: &[Seg], keys: Vec<&String>| -> Result<(), ScenarioError> {
        for n in keys {
            if !all_names.contains(n) {
                let mut p = path.to_vec();
                p.push(K(n));
                return Err(sp.error(sp.key(&p).or_else(|| sp.key(path)), unknown(n)));
            }
        }
        Ok(())
    };
    let check_status_map = |path: &[Seg],
                            m: &Option<BTreeMap<String, String>>|
     -> Result<(), ScenarioError> {
        check_node_map(path, m.iter().flat_map(|m| m.keys()).collect())?;
        for (n, want) in m.iter().flatten() {
            if !valid_status(want) {
                let mut p = path.to_vec();
                p.push(K(n));
                return Err(sp.error(
                        sp.value(&p),
                        format!("status {want:?} of {n} is not one `status` prints: use UN, UJ, UL, DN, DJ, DL, LEFT or OUT (a withdrawn joiner)"),
                    ));
            }
        }
        Ok(())
    };
    let check_ownership_map = |path: &[Seg],
                               m: &Option<BTreeMap<String, String>>|
     -> Result<(), ScenarioError> {
        check_node_map(path, m.iter().flat_map(|m| m.keys()).collect())?;
        for (n, want) in m.iter().flatten() {
            if !valid_ownership(want) {
                let mut p = path.to_vec();
                p.push(K(n));
                return Err(sp.error(
                        sp.value(&p),
                        format!("ownership {want:?} of {n} must be a percentage such as \"75%\", or \"?\" for a joining node"),
                    ));
            }
        }
        Ok(())
    };

    let end = scenario.duration;
    let mut timeline = Vec::with_capacity(scenario.events.len());
    for (i, e) in scenario.events.iter().enumerate() {
        let ev = |rest: &[Seg<'static>]| {
            let mut p = vec![K("events"), I(i)];
            p.extend_from_slice(rest);
            p
        };
        let actions = [
            e.crash.is_some(),
            e.restart.is_some(),
            e.partition.is_some(),
            e.pause.is_some(),
            e.heal.is_some(),
            e.loss.is_some(),
            e.write.is_some(),
            e.delete.is_some(),
            e.read.is_some(),
            e.add_node.is_some(),
            e.resume_join.is_some(),
            e.decommission.is_some(),
            e.abort.is_some(),
            e.cleanup.is_some(),
            e.repair.is_some(),
            e.slow_gossip.is_some(),
            e.inspect.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if actions != 1 {
            return Err(sp.error(
                sp.value(&ev(&[])),
                format!(
                    "events[{i}] (at {:?}) must have exactly one action (crash, restart, pause, partition, heal, loss, write, delete, read, add_node, resume_join, decommission, abort, cleanup, repair, slow_gossip or inspect), found {actions}: split it into one event per action",
                    e.at
                ),
            ));
        }
        // `run` stops applying events at `duration`: a later one would never happen.
        if e.at > end {
            return Err(sp.error(
                sp.value(&ev(&[K("at")])),
                format!(
                    "events[{i}] at {:?} is after the scenario's duration ({end:?}), so it would never run: move it earlier or raise duration",
                    e.at
                ),
            ));
        }
        let event = parse_event(e, i, &ev, sp, &check_name)?;

        // Expectations are checked only on the kind of event they describe; anywhere else they
        // were ignored and the run passed.
        let kind = event.kind();
        let is_op = event.client_op().is_some();
        if let Some(x) = &e.expect {
            if !is_op {
                return Err(sp.error(
                    sp.key(&ev(&[K("expect")])),
                    "`expect` applies to write, delete and read events: on this event it would never be checked, use expect_cluster instead".into(),
                ));
            }
            let wrong: &[(&str, bool, &str)] = &[
                ("acks", x.acks.is_some() && kind == "read", "a read: use expect.replied"),
                ("hinted", x.hinted.is_some() && kind == "read", "a read: reads store no hints"),
                (
                    "values",
                    x.values.is_some() && kind != "read",
                    "a write or delete: only a read returns values",
                ),
                (
                    "replied",
                    x.replied.is_some() && kind != "read",
                    "a write or delete: use expect.acks",
                ),
            ];
            if let Some((field, _, why)) = wrong.iter().find(|w| w.1) {
                return Err(sp.error(
                    sp.key(&ev(&[K("expect"), K(field)])),
                    format!("expect.{field} is never true of {why}"),
                ));
            }
            if let Some(err) = &x.error {
                if x.ok == Some(true) {
                    return Err(sp.error(
                        sp.key(&ev(&[K("expect"), K("error")])),
                        "expect.error contradicts ok = true: remove one of them".into(),
                    ));
                }
                if !OP_ERRORS.contains(&err.to_lowercase().as_str()) {
                    return Err(sp.error(
                        sp.value(&ev(&[K("expect"), K("error")])),
                        format!(
                            "expect.error {err:?} is not an outcome: use one of {}",
                            OP_ERRORS.join(", ")
                        ),
                    ));
                }
            }
            for (field, list) in [("acks", &x.acks), ("hinted", &x.hinted), ("replied", &x.replied)]
            {
                if let Some(list) = list {
                    check_names_at(&ev(&[K("expect"), K(field)]), list)?;
                }
            }
        }
        if let Some(x) = &e.expect_cluster {
            if is_op {
                return Err(sp.error(
                    sp.key(&ev(&[K("expect_cluster")])),
                    format!("`expect_cluster` is not checked on {kind} events: put it on an inspect event at the same time (at = \"{:?}\", inspect = true)", e.at),
                ));
            }
            check_status_map(&ev(&[K("expect_cluster"), K("status")]), &x.status)?;
            check_ownership_map(&ev(&[K("expect_cluster"), K("ownership")]), &x.ownership)?;
        }
        timeline.push(TimelineEvent {
            at: e.at,
            label: e.label.clone(),
            note: e.note.clone(),
            event,
            expect: e.expect.clone(),
            expect_cluster: e.expect_cluster.clone(),
        });
    }

    let x = &scenario.expect;
    check_node_map(
        &[K("expect"), K("hints_stored")],
        x.hints_stored.iter().flat_map(|m| m.keys()).collect(),
    )?;
    check_status_map(&[K("expect"), K("status")], &x.status)?;
    check_ownership_map(&[K("expect"), K("ownership")], &x.ownership)?;

    let probabilities = [
        (
            "workload.read_fraction",
            [K("workload"), K("read_fraction")].as_slice(),
            scenario.workload.read_fraction,
        ),
        (
            "workload.delete_fraction",
            &[K("workload"), K("delete_fraction")],
            scenario.workload.delete_fraction,
        ),
        ("network.loss", &[K("network"), K("loss")], scenario.network.loss),
        (
            "network.latency.tail_probability",
            &[K("network"), K("latency"), K("tail_probability")],
            scenario.network.latency.tail_probability,
        ),
    ];
    for (name, path, p) in probabilities {
        if !(0.0..=1.0).contains(&p) {
            return Err(
                sp.error(sp.value(path), format!("{name} must be between 0 and 1, found {p}"))
            );
        }
    }
    let w = &scenario.workload;
    if w.read_fraction + w.delete_fraction > 1.0 {
        return Err(sp.error(
            sp.value(&[K("workload"), K("delete_fraction")]),
            "workload.read_fraction + workload.delete_fraction must not exceed 1".into(),
        ));
    }
    if w.read_cl == ConsistencyLevel::Any {
        return Err(sp.error(
            sp.value(&[K("workload"), K("read_cl")]),
            "workload.read_cl: ANY is a write-only level (a hint cannot answer a read): read at ONE or higher".into(),
        ));
    }
    if w.clients > 0 && w.keys == 0 {
        return Err(sp.error(
            sp.value(&[K("workload"), K("keys")]),
            "workload.keys must be at least 1 when there are clients (or set clients = 0)".into(),
        ));
    }

    // Zero durations: a zero period re-arms its timer at the same instant forever (the run never
    // advances and memory grows), and a zero timeout fails every request that needs a remote
    // replica. max_hint_window, gc_grace and ring_delay may be zero: they are waits or windows,
    // and zero is a meaningful setting (no hints past conviction, immediate expiry, no wait).
    let o = &scenario.node;
    let zero_refused = [
        (
            "heartbeat_interval",
            o.heartbeat_interval,
            "makes every node re-arm its heartbeat timer at the same instant forever",
            "1s",
        ),
        (
            "hint_replay_interval",
            o.hint_replay_interval,
            "makes every node re-arm its hint replay timer at the same instant forever",
            "10s",
        ),
        ("write_timeout", o.write_timeout, "fails every write that needs a remote replica", "2s"),
        ("read_timeout", o.read_timeout, "fails every read that needs a remote replica", "5s"),
    ];
    for (key, value, why, example) in zero_refused {
        if value.is_some_and(|d| d.is_zero()) {
            return Err(sp.error(
                sp.value(&[K("node"), K(key)]),
                format!(
                    "node.{key} is zero, which {why}: use a positive duration such as \"{example}\""
                ),
            ));
        }
    }
    if let Some(phi) = o.phi_threshold
        && !(phi.is_finite() && phi > 0.0)
    {
        return Err(sp.error(
            sp.value(&[K("node"), K("phi_threshold")]),
            format!(
                "node.phi_threshold {phi} must be a positive number (Cassandra's default is 8)"
            ),
        ));
    }
    if let Some(m) = o.stream_mib_per_sec
        && !(m.is_finite() && m >= 0.0)
    {
        return Err(sp.error(
            sp.value(&[K("node"), K("stream_mib_per_sec")]),
            format!(
                "node.stream_mib_per_sec {m} must be 0 (unthrottled) or a positive number of MiB/s"
            ),
        ));
    }
    Ok(Validated { timeline, tokens })
}

/// Turns one timeline entry, already known to hold exactly one action, into its [`Event`],
/// refusing what could not run. `i` is the entry's index, `ev` makes a path inside it and
/// `check_name` refuses a node the scenario never has.
fn parse_event(
    e: &EventSpec,
    i: usize,
    ev: &dyn Fn(&[Seg<'static>]) -> Vec<Seg<'static>>,
    sp: &Spans,
    check_name: &dyn Fn(&Spanned<String>) -> Result<(), ScenarioError>,
) -> Result<Event, ScenarioError> {
    let at_span = |s: &Spanned<String>, message: String| sp.error(Some(s.span()), message);
    let node = |s: &Spanned<String>| -> Result<String, ScenarioError> {
        check_name(s)?;
        Ok(s.get_ref().clone())
    };
    let target = |s: &Spanned<String>| -> Result<Target, ScenarioError> {
        let target = Target::named(s.get_ref());
        if let Target::Node(_) = target {
            check_name(s)?;
        }
        Ok(target)
    };
    let paused = |field: &'static str,
                  p: &PauseSpec|
     -> Result<(String, Duration), ScenarioError> {
        let name = node(&p.node)?;
        if p.duration.is_zero() {
            return Err(sp.error(
                sp.value(&ev(&[K(field), K("for")])),
                format!("{field} for = \"0s\" is zero and would do nothing: give a positive length such as \"10s\""),
            ));
        }
        Ok((name, p.duration))
    };
    // What writes, deletes and reads have in common; a write's value is checked by its caller.
    let client_op = |kind: &'static str, op: &OpSpec| -> Result<ClientOp, ScenarioError> {
        let name = node(&op.node)?;
        let cl = op
            .cl
            .get_ref()
            .parse::<ConsistencyLevel>()
            .map_err(|err| at_span(&op.cl, err.to_string()))?;
        if kind == "read" && cl == ConsistencyLevel::Any {
            return Err(at_span(
                &op.cl,
                "ANY is a write-only level (a hint cannot answer a read): read at ONE or higher"
                    .into(),
            ));
        }
        if op.key.is_empty() {
            return Err(sp.error(
                sp.value(&ev(&[K(kind), K("key")])),
                format!("events[{i}]: key is empty: give the {kind} a key"),
            ));
        }
        if kind != "write" && op.value.is_some() {
            return Err(sp.error(
                sp.key(&ev(&[K(kind), K("value")])),
                format!("a {kind} takes no value: remove it (only a write stores one)"),
            ));
        }
        if kind == "read" && op.with_context {
            return Err(sp.error(
                sp.key(&ev(&[K(kind), K("with_context")])),
                "with_context applies to writes and deletes (they send the last read's context): remove it from the read".into(),
            ));
        }
        Ok(ClientOp { node: name, key: op.key.clone(), cl })
    };

    let event = if let Some(n) = &e.crash {
        Event::Crash(node(n)?)
    } else if let Some(n) = &e.restart {
        Event::Restart(node(n)?)
    } else if let Some(groups) = &e.partition {
        if groups.is_empty() {
            return Err(sp.error(
                sp.value(&ev(&[K("partition")])),
                "partition has no groups: list groups such as [[\"A\"], [\"B\", \"C\"]], or use heal = true".into(),
            ));
        }
        let mut seen: Vec<&str> = Vec::new();
        for (j, g) in groups.iter().enumerate() {
            if g.is_empty() {
                return Err(sp.error(
                    sp.value(&ev(&[K("partition"), I(j)])),
                    "partition has an empty group: remove it (unlisted nodes already form a group of their own)".into(),
                ));
            }
            for s in g {
                check_name(s)?;
                if seen.contains(&s.get_ref().as_str()) {
                    return Err(at_span(
                        s,
                        format!(
                            "partition names node {:?} twice: a node is in one group only",
                            s.get_ref()
                        ),
                    ));
                }
                seen.push(s.get_ref());
            }
        }
        Event::Partition(
            groups.iter().map(|g| g.iter().map(|s| s.get_ref().clone()).collect()).collect(),
        )
    } else if let Some(p) = &e.pause {
        let (node, duration) = paused("pause", p)?;
        Event::Pause { node, duration }
    } else if let Some(p) = &e.slow_gossip {
        let (node, duration) = paused("slow_gossip", p)?;
        Event::SlowGossip { node, duration }
    } else if let Some(heal) = e.heal {
        // The flags are actions by presence: `heal = false` used to heal.
        if !heal {
            return Err(sp.error(
                sp.value(&ev(&[K("heal")])),
                "heal = false does nothing: write heal = true, or remove the event".into(),
            ));
        }
        Event::Heal
    } else if let Some(p) = e.loss {
        if !(0.0..=1.0).contains(&p) {
            return Err(sp.error(
                sp.value(&ev(&[K("loss")])),
                format!("events[{i}]: loss {p} must be between 0 and 1"),
            ));
        }
        Event::Loss(p)
    } else if let Some(a) = &e.add_node {
        // The name was checked to be new before the timeline, with every other added node.
        let mut tokens = None;
        if let Some(specs) = &a.tokens {
            let mut resolved = Vec::with_capacity(specs.len());
            for (j, t) in specs.iter().enumerate() {
                resolved.push(t.resolve().map_err(|m| {
                    sp.error(sp.value(&ev(&[K("add_node"), K("tokens"), I(j)])), m.to_string())
                })?);
            }
            tokens = Some(resolved);
        }
        Event::AddNode { name: a.name.get_ref().clone(), tokens }
    } else if let Some(r) = &e.resume_join {
        Event::ResumeJoin {
            node: node(&r.node)?,
            allow_inconsistent_source: r.allow_inconsistent_source,
        }
    } else if let Some(n) = &e.decommission {
        Event::Decommission(node(n)?)
    } else if let Some(n) = &e.abort {
        Event::Abort(node(n)?)
    } else if let Some(n) = &e.cleanup {
        Event::Cleanup(target(n)?)
    } else if let Some(n) = &e.repair {
        Event::Repair(target(n)?)
    } else if let Some(w) = &e.write {
        let op = client_op("write", w)?;
        let Some(value) = &w.value else {
            return Err(sp.error(
                sp.value(&ev(&[K("write")])),
                format!("events[{i}]: a write needs a value: add value = \"...\" (or use delete)"),
            ));
        };
        Event::Write { op, value: value.clone(), with_context: w.with_context }
    } else if let Some(d) = &e.delete {
        Event::Delete { op: client_op("delete", d)?, with_context: d.with_context }
    } else if let Some(r) = &e.read {
        Event::Read(client_op("read", r)?)
    } else {
        // The caller counted exactly one action, so the one left is `inspect`.
        if e.inspect == Some(false) {
            return Err(sp.error(
                sp.value(&ev(&[K("inspect")])),
                "inspect = false does nothing: write inspect = true, or remove the event".into(),
            ));
        }
        Event::Inspect
    };
    Ok(event)
}

/// A scenario checked against its own text, ready to run.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The scenario.
    pub scenario: Scenario,
    /// Node names.
    pub names: Vec<String>,
    /// The initial ring.
    pub ring: Ring,
    /// Node configuration.
    pub node: NodeConfig,
    /// The timeline, each entry parsed once into an [`Event`], in the file's order.
    pub events: Vec<TimelineEvent>,
}

/// Validates a parsed scenario (`text` is its source, for line numbers).
pub fn prepare(scenario: Scenario, text: &str) -> Result<Prepared, ScenarioError> {
    let Validated { timeline: events, tokens } = validate(&scenario, &Spans::new(text))?;
    let names: Vec<String> = scenario.cluster.nodes.iter().map(|s| s.get_ref().clone()).collect();
    let ids: Vec<NodeId> = (0..names.len() as u32).map(NodeId).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(scenario.seed ^ 0x5eed_0f7a_110c);
    let allocated = build_ring(
        &ids,
        scenario.cluster.num_tokens.max(1),
        scenario.cluster.rf,
        scenario.cluster.allocation,
        &mut rng,
    )
    .map_err(|e| ScenarioError::Semantic(format!("cannot build the ring: {e}")))?;
    let ring = if scenario.cluster.tokens.is_empty() {
        allocated
    } else {
        let mut assignments = Vec::new();
        for (i, name) in names.iter().enumerate() {
            match tokens.get(name) {
                Some(given) => {
                    for t in given {
                        assignments.push((*t, NodeId(i as u32)));
                    }
                }
                None => {
                    for t in allocated.tokens_of(NodeId(i as u32)) {
                        assignments.push((t, NodeId(i as u32)));
                    }
                }
            }
        }
        build_placement(assignments, &scenario, &names)?
    };
    let ring = if scenario.cluster.racks.is_empty() || !scenario.cluster.tokens.is_empty() {
        ring
    } else {
        let assignments: Vec<(Token, NodeId)> =
            ring.tokens().iter().copied().zip(ring.owners().iter().copied()).collect();
        build_placement(assignments, &scenario, &names)?
    };

    let d = NodeConfig::default();
    let o = &scenario.node;
    let node = NodeConfig {
        conflict_mode: scenario.cluster.conflict,
        write_timeout: o.write_timeout.unwrap_or(d.write_timeout),
        read_timeout: o.read_timeout.unwrap_or(d.read_timeout),
        heartbeat_interval: o.heartbeat_interval.or(d.heartbeat_interval),
        phi_threshold: o.phi_threshold.unwrap_or(d.phi_threshold),
        hinted_handoff: o.hinted_handoff.unwrap_or(d.hinted_handoff),
        max_hint_window: o.max_hint_window.unwrap_or(d.max_hint_window),
        hint_replay_interval: o.hint_replay_interval.unwrap_or(d.hint_replay_interval),
        gc_grace: o.gc_grace.unwrap_or(d.gc_grace),
        ring_delay: o.ring_delay.unwrap_or(d.ring_delay),
        stream_throughput: match o.stream_mib_per_sec {
            None => d.stream_throughput,
            Some(m) if m <= 0.0 => None,
            Some(m) => Some((m * 1024.0 * 1024.0) as u64),
        },
        num_tokens: scenario.cluster.num_tokens.max(1),
        allocation: scenario.cluster.allocation,
        join_strategy: scenario.cluster.strategy,
        ..d
    };
    Ok(Prepared { scenario, names, ring, node, events })
}

fn build_placement(
    assignments: Vec<(Token, NodeId)>,
    scenario: &Scenario,
    names: &[String],
) -> Result<Ring, ScenarioError> {
    let result = if scenario.cluster.racks.is_empty() {
        Ring::new(assignments, scenario.cluster.rf)
    } else {
        let racks: BTreeMap<NodeId, String> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let rack = scenario.cluster.racks.get(n).cloned().unwrap_or_else(|| "rack1".into());
                (NodeId(i as u32), rack)
            })
            .collect();
        Ring::with_racks(assignments, scenario.cluster.rf, &racks)
    };
    result.map_err(|e| ScenarioError::Semantic(format!("invalid tokens: {e}")))
}
