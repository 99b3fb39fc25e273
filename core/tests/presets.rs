//! The explorer's preset gallery: every preset parses, runs and meets its own expectations, and
//! the presets that exist to make a point (the staged/immediate contrast, the busy large cluster)
//! really make it.

use ringside_core::checker::AnomalyKind;
use ringside_core::membership::JoinStrategy;
use ringside_core::presets::{PRESETS, Preset, preset};
use ringside_core::scenario::{self, Prepared, RunOptions};
use ringside_core::time::Instant;
use std::collections::BTreeSet;
use std::time::Duration;

fn prepared(p: &Preset) -> Prepared {
    let parsed = scenario::parse(p.text).unwrap_or_else(|e| panic!("preset {}: {e}", p.id));
    scenario::prepare(parsed, p.text).unwrap_or_else(|e| panic!("preset {}: {e}", p.id))
}

fn options(p: &Preset) -> RunOptions {
    RunOptions { file: Some(format!("core/presets/{}.toml", p.id)), ..RunOptions::default() }
}

fn is_kebab_case(id: &str) -> bool {
    !id.is_empty()
        && !id.starts_with('-')
        && !id.ends_with('-')
        && !id.contains("--")
        && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Sentences in a text: ends of sentence (`.`, `!` or `?` before a space or the end).
fn sentences(text: &str) -> usize {
    let chars: Vec<char> = text.trim().chars().collect();
    (0..chars.len())
        .filter(|&i| {
            matches!(chars[i], '.' | '!' | '?')
                && chars.get(i + 1).is_none_or(|c| c.is_whitespace())
        })
        .count()
}

#[test]
fn ids_are_unique_kebab_case_and_found() {
    assert!(PRESETS.len() >= 9, "the gallery lost presets: {}", PRESETS.len());
    let mut seen = BTreeSet::new();
    for p in PRESETS {
        assert!(is_kebab_case(p.id), "preset id {:?} is not kebab-case", p.id);
        assert!(seen.insert(p.id), "preset id {:?} is listed twice", p.id);
        assert_eq!(preset(p.id).map(|q| q.id), Some(p.id), "preset({:?}) does not find it", p.id);
        assert!(!p.title.trim().is_empty(), "preset {} has no title", p.id);
    }
    assert!(preset("no-such-preset").is_none());
    for required in [
        "steady-quorum",
        "join-staged",
        "join-immediate",
        "dual-write-cutover",
        "joiner-crash",
        "hints",
        "read-repair",
        "partition-during-join",
        "large-cluster",
    ] {
        assert!(preset(required).is_some(), "the gallery has no {required:?} preset");
    }
}

#[test]
fn presets_are_small_enough_to_watch_and_say_what_they_show() {
    for p in PRESETS {
        let s = prepared(p).scenario;
        assert_eq!(s.name, p.id, "preset {}: the scenario's name differs from its id", p.id);
        let sentences = sentences(&s.description);
        assert!(
            (2..=4).contains(&sentences),
            "preset {}: the description should be 2 to 4 plain sentences, found {sentences}",
            p.id
        );
        assert!(s.duration <= Duration::from_secs(60), "preset {}: longer than 60 s", p.id);
        assert!(
            s.network.latency.min >= Duration::from_millis(10),
            "preset {}: latency too small to see messages move",
            p.id
        );
        if p.id != "large-cluster" {
            let nodes =
                s.cluster.nodes.len() + s.events.iter().filter(|e| e.add_node.is_some()).count();
            assert!((3..=6).contains(&nodes), "preset {}: {nodes} nodes", p.id);
            assert!(
                (4..=8).contains(&s.cluster.num_tokens),
                "preset {}: num_tokens {}",
                p.id,
                s.cluster.num_tokens
            );
        }
        assert!(
            p.compare.contains(&s.cluster.strategy),
            "preset {}: compare {:?} lacks the scenario's own strategy {:?}",
            p.id,
            p.compare,
            s.cluster.strategy
        );
        let expects_something = s.expect.stale_reads.is_some()
            || s.expect.lost_writes.is_some()
            || s.expect.converged.is_some();
        assert!(expects_something, "preset {}: no [expect] block", p.id);
    }
}

/// Runs the presets whose ids satisfy `which` and requires every expectation to hold.
fn run_presets(which: impl Fn(&str) -> bool) {
    let mut failures = Vec::new();
    let mut ran = 0;
    for p in PRESETS.iter().filter(|p| which(p.id)) {
        let (report, _) = scenario::run(&prepared(p), &options(p));
        ran += 1;
        if !report.passed {
            failures.push(format!("preset {}:\n{report}", p.id));
        }
    }
    assert!(ran > 0, "no preset selected");
    assert!(failures.is_empty(), "presets failed:\n{}", failures.join("\n"));
}

// Split in several tests so they run in parallel.

#[test]
fn join_presets_meet_their_expectations() {
    run_presets(|id| id.starts_with("join-") || id == "dual-write-cutover");
}

#[test]
fn fault_presets_meet_their_expectations() {
    run_presets(|id| {
        ["joiner-crash", "partition-during-join", "hints", "read-repair"].contains(&id)
    });
}

#[test]
fn other_presets_meet_their_expectations() {
    run_presets(|id| {
        ![
            "join-staged",
            "join-immediate",
            "dual-write-cutover",
            "joiner-crash",
            "partition-during-join",
            "hints",
            "read-repair",
        ]
        .contains(&id)
    });
}

#[test]
fn immediate_join_reads_stale_where_staged_does_not() {
    let p = preset("join-immediate").expect("join-immediate preset");
    let prepared = prepared(p);
    assert_eq!(prepared.scenario.cluster.strategy, JoinStrategy::Immediate);
    let stale = |strategy| {
        let (report, _) =
            scenario::run(&prepared, &RunOptions { strategy: Some(strategy), ..options(p) });
        assert_eq!(
            report.time_to_normal.len(),
            1,
            "{strategy:?}: the join did not complete\n{report}"
        );
        (report.check.count(AnomalyKind::StaleRead), report)
    };
    let (immediate, report) = stale(JoinStrategy::Immediate);
    assert!(immediate > 0, "immediate join: no stale read\n{report}");
    let (staged, report) = stale(JoinStrategy::Staged);
    assert_eq!(staged, 0, "the same scenario with a staged join read stale data\n{report}");
    assert_eq!(report.check.count(AnomalyKind::LostWrite), 0, "{report}");

    // join-staged is the same scenario with the staged strategy.
    let staged_preset = prepared_text_without_differences(preset("join-staged").unwrap());
    let immediate_preset = prepared_text_without_differences(p);
    assert_eq!(
        staged_preset, immediate_preset,
        "join-staged and join-immediate should differ only in name, description, strategy, \
         labels, lesson notes and expectations"
    );
}

/// The parts of a scenario that make the run: everything but its name, description, join
/// strategy, expectations, inspections, labels and lesson notes.
fn prepared_text_without_differences(p: &Preset) -> serde_json::Value {
    let mut v = serde_json::to_value(prepared(p).scenario).expect("a scenario serializes");
    let o = v.as_object_mut().expect("an object");
    for field in ["name", "description", "expect"] {
        o.remove(field);
    }
    o["cluster"].as_object_mut().expect("cluster").remove("strategy");
    let events = o["events"].as_array_mut().expect("events");
    events.retain(|e| e["inspect"].is_null());
    for e in events {
        let e = e.as_object_mut().expect("event");
        for field in ["label", "note", "expect", "expect_cluster"] {
            e.remove(field);
        }
    }
    v
}

#[test]
fn large_cluster_keeps_a_hundred_messages_in_flight() {
    let p = preset("large-cluster").expect("large-cluster preset");
    let prepared = prepared(p);
    let mut sim = scenario::build_simulation(&prepared, &options(p));
    // Sample the busy period: clients run from 1 s to 28 s.
    let mut samples = Vec::new();
    for i in 0..20u64 {
        sim.run_until(Instant::ZERO + Duration::from_millis(5_000 + i * 1_000));
        samples.push(sim.in_flight().count());
    }
    samples.sort_unstable();
    let median = samples[samples.len() / 2];
    println!("large-cluster: median {median} messages in flight, samples {samples:?}");
    assert!(median >= 100, "median of {median} messages in flight (samples {samples:?})");
}

/// The explorer's default lanes: a preset's own list; for another scenario, the three most
/// different strategies when it moves nodes, else only its own strategy.
#[test]
fn default_lanes_follow_the_preset_then_whether_nodes_move() {
    use ringside_core::presets::default_lanes;
    let joining = preset("join-staged").unwrap();
    assert_eq!(default_lanes(Some(joining.id), &prepared(joining)), joining.compare.to_vec());
    let file = |text: &str| {
        scenario::prepare(scenario::parse(text).unwrap(), text).unwrap_or_else(|e| panic!("{e}"))
    };
    let moves = file(include_str!("../../tests/scenarios/join-fourth-node-staged.toml"));
    assert_eq!(
        default_lanes(None, &moves),
        vec![JoinStrategy::Staged, JoinStrategy::Immediate, JoinStrategy::DualWriteCutover]
    );
    let fixed = file(include_str!("../../tests/scenarios/course-003-1-rf3-quorum.toml"));
    assert_eq!(default_lanes(None, &fixed), vec![fixed.node.join_strategy]);
    // An unknown preset id is a scenario like any other.
    assert_eq!(default_lanes(Some("no-such-preset"), &fixed), vec![fixed.node.join_strategy]);
}
