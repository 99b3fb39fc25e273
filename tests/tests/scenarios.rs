//! Runs every scenario file of the corpus and requires all its expectations to hold.

use ringside_core::scenario::{self, RunOptions};
use std::path::{Path, PathBuf};

fn corpus() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_scenario_meets_its_expectations() {
    let files = corpus();
    assert!(files.len() >= 6, "the corpus lost scenarios: {files:?}");
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("readable scenario");
        let parsed = scenario::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let prepared =
            scenario::prepare(parsed, &text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let rel = file.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap_or(file);
        let options =
            RunOptions { file: Some(format!("tests/{}", rel.display())), ..Default::default() };
        let (report, _) = scenario::run(&prepared, &options);
        if !report.passed {
            failures.push(format!("{report}"));
        }
    }
    assert!(failures.is_empty(), "scenarios failed:\n{}", failures.join("\n"));
}

#[test]
fn scenario_runs_are_deterministic() {
    for file in corpus().iter().take(3) {
        let text = std::fs::read_to_string(file).expect("readable scenario");
        let prepared = scenario::prepare(scenario::parse(&text).unwrap(), &text).unwrap();
        let (a, _) = scenario::run(&prepared, &RunOptions::default());
        let (b, _) = scenario::run(&prepared, &RunOptions::default());
        assert_eq!(a.trace_hash, b.trace_hash, "{}", file.display());
        let (c, _) =
            scenario::run(&prepared, &RunOptions { seed: Some(a.seed + 1), ..Default::default() });
        // `--seed` really replaces the scenario's seed: latencies, tokens and the trace change.
        assert_eq!(c.seed, a.seed + 1);
        assert_ne!(c.trace_hash, a.trace_hash, "{}", file.display());
    }
}

#[test]
fn a_failed_expectation_reports_what_happened_and_the_replay_command() {
    let text = include_str!("../fixtures/wrong-prediction.toml");
    let prepared = scenario::prepare(scenario::parse(text).unwrap(), text).unwrap();
    let options = RunOptions { file: Some("wrong.toml".into()), ..Default::default() };
    let (report, _) = scenario::run(&prepared, &options);
    assert!(!report.passed);
    let failed: Vec<_> = report.expectations.iter().filter(|e| !e.passed).collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].expected, "true");
    assert_eq!(failed[0].actual, "false");
    let text = report.to_string();
    assert!(text.contains("FAIL w: ok: expected true, got false"), "{text}");
    assert!(text.contains("ringside sim run wrong.toml --seed 9"), "{text}");
}

fn error_of(text: &str) -> String {
    match scenario::parse(text) {
        Err(e) => e.to_string(),
        Ok(s) => scenario::prepare(s, text).expect_err("invalid scenario accepted").to_string(),
    }
}

#[test]
fn broken_scenario_files_name_the_line_and_field() {
    let base = "name = \"x\"\n[cluster]\nnodes = [\"A\", \"B\"]\nrf = 2\n";
    // Unknown field: toml names it and its line.
    let e = error_of(&format!("{base}nmu_tokens = 4\n"));
    assert!(e.contains("nmu_tokens") && e.contains("line 5"), "{e}");
    // Unknown node in an event.
    let e = error_of(&format!("{base}[[events]]\nat = \"1s\"\ncrash = \"Z\"\n"));
    assert!(e.contains("line 7") && e.contains("unknown node \"Z\"") && e.contains("A, B"), "{e}");
    // Invalid consistency level.
    let e = error_of(&format!(
        "{base}[[events]]\nat = \"1s\"\nread = {{ node = \"A\", key = \"k\", cl = \"MOST\" }}\n"
    ));
    assert!(e.contains("line 7") && e.contains("MOST") && e.contains("QUORUM"), "{e}");
    // Wrong type.
    let e = error_of(include_str!("../fixtures/rf-is-text.toml"));
    assert!(e.contains("line 4") && e.contains("rf"), "{e}");
    // Two actions in one event.
    let e = error_of(&format!("{base}[[events]]\nat = \"1s\"\ncrash = \"A\"\nheal = true\n"));
    assert!(e.contains("exactly one action"), "{e}");
    // Bad duration.
    let e = error_of(&format!("{base}[[events]]\nat = \"soon\"\nheal = true\n"));
    assert!(e.contains("line 6"), "{e}");
}

fn prepared(name: &str) -> scenario::Prepared {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios").join(name);
    let text = std::fs::read_to_string(&file).expect("readable scenario");
    scenario::prepare(scenario::parse(&text).unwrap(), &text).unwrap()
}

#[test]
fn pairdb_story_dual_write_cutover_loses_writes_and_staged_does_not() {
    use ringside_core::compare::compare;
    use ringside_core::membership::JoinStrategy::*;
    let p = prepared("pairdb-dual-write-cutover.toml");
    let c = compare(
        &p,
        &[Staged, PendingRanges, DualWriteCutover, StreamThenCutover],
        &RunOptions::default(),
    );
    let lane = |s| c.lane(s).unwrap();
    for s in [Staged, PendingRanges] {
        assert_eq!((lane(s).lost_writes, lane(s).stale_reads), (0, 0), "{s}:\n{c}");
        assert!(lane(s).time_to_normal.is_some(), "{s} completes its join:\n{c}");
        assert!(lane(s).extra_acks > 0, "{s} demands the joiner's ack:\n{c}");
    }
    // The copy to the joiner is best effort: writes A acknowledged alone never reach it.
    assert!(lane(DualWriteCutover).lost_writes > 0, "{c}");
    assert!(lane(StreamThenCutover).lost_writes > 0, "{c}");
    assert_eq!(lane(DualWriteCutover).extra_acks, 0, "{c}");
}

#[test]
fn a_join_shows_uj_then_un_and_ownership_moves_from_100_to_75_percent() {
    let p = prepared("join-fourth-node-staged.toml");
    let (report, sim) = scenario::run(&p, &RunOptions::default());
    assert!(report.passed, "{report}");
    // The inspections in the file are the assertions; check they ran.
    let checked: Vec<&str> = report.expectations.iter().map(|e| e.what.as_str()).collect();
    assert!(checked.iter().any(|w| w.starts_with("while D joins: status of D")), "{checked:?}");
    assert!(checked.iter().any(|w| w.starts_with("after the join: ownership of D")), "{checked:?}");
    let d = sim.node_id("D").unwrap();
    assert_eq!(scenario::status_code(&sim, d), "UN");
    assert_eq!(scenario::ownership_text(&sim, d), "75.0%");
}

/// `Node::range_locks`, what `ringside status` shows of range locks, during two overlapping
/// joins under `staged` (E and F added at once): no member ever grants both, every grant names
/// a movement still at its first step in that member's view, E is granted the lock (F gives
/// way), and once E is NORMAL no member reports a lock.
#[test]
fn range_locks_as_operators_see_them_during_concurrent_joins() {
    use ringside_core::gossip::Status;
    use ringside_core::time::Instant;
    let p = prepared("concurrent-joins-staged.toml");
    let mut play = scenario::Playback::new(&p, &RunOptions::default());
    let (mut e_granted, mut f_refused_or_gave_way) = (0, false);
    let mut t = Instant::ZERO;
    while t < Instant::from_secs(40) {
        t += std::time::Duration::from_millis(50);
        play.advance_to(t);
        let sim = play.sim();
        let (Ok(e), Ok(f)) = (sim.node_id("E"), sim.node_id("F")) else { continue };
        for name in sim.names() {
            let id = sim.node_id(name).unwrap();
            let Some(node) = sim.node(id) else { continue };
            let locks = node.range_locks();
            assert!(
                !(locks.granted.contains_key(&e) && locks.granted.contains_key(&f)),
                "{name} granted both overlapping joins at {t:?}: {locks:?}"
            );
            for (mover, epoch) in &locks.granted {
                let m = node.view().member(*mover).expect("a granted mover is a member");
                assert!(
                    m.epoch == *epoch && matches!(m.status, Status::Boot | Status::Leaving),
                    "{name} reports a stale grant to {mover}@{epoch} at {t:?}: {m:?}"
                );
            }
            if locks.granted.contains_key(&e) {
                e_granted += 1;
            }
            if id == f
                && (!locks.refused_by.is_empty() || node.view().status(f) == Some(Status::Left))
            {
                f_refused_or_gave_way = true;
            }
        }
    }
    assert!(e_granted > 0, "no member ever reported granting E the range lock");
    assert!(f_refused_or_gave_way, "F never reported a refusal nor gave way");
    for name in play.sim().names() {
        let node = play.sim().node(play.sim().node_id(name).unwrap()).expect("running");
        assert_eq!(node.range_locks(), Default::default(), "{name} at 40 s (E is NORMAL)");
    }
}
