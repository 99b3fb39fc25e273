//! Long randomized runs for `cargo xtask soak` (not part of `cargo xtask test`: the test is
//! ignored). `RINGSIDE_SOAK_SEEDS` runs, from `RINGSIDE_SOAK_START` (default 0), of the
//! randomized runs without movements (`RINGSIDE_SOAK_STRATEGY` unset or `none`) or of the
//! movement runs of one join strategy (`staged`, `pending-ranges`, …) or of each (`all`).
//!
//! A movement run is judged against its strategy's signature (`movements::Signature`,
//! docs/semantics.md §1): the anomalies the strategy is documented to show are counted as runs
//! showing the signature, every other anomaly or problem makes the run violating. Prints a
//! progress line every 1,000 runs, then per strategy the runs, the violating runs (by kind), the
//! runs showing each kind of the signature and the throughput; every violating run prints its
//! replay command. Fails when any run broke an invariant.

use ringside_core::checker::AnomalyKind;
use ringside_core::membership::JoinStrategy;
use ringside_tests::RandomRun;
use ringside_tests::movements::{MovementRun, Signature};
use std::collections::BTreeMap;
use std::time::Instant;

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|s| !s.is_empty())
}

/// The command that replays one soak run exactly (the soak's runs are `from_seed` as they are,
/// which the CI sweeps adjust, so their commands would replay another run).
fn soak_replay(seed: u64, strategy: &str) -> String {
    format!("cargo xtask soak --seeds 1 --start {seed} --strategy {strategy}")
}

/// One run, judged: its violations (kind, line), the signature's anomaly counts, messages sent.
struct Judged {
    violations: Vec<(&'static str, String)>,
    /// Every violation is a stale read or lost write planned by a late coordinator.
    late_only: bool,
    signature: Vec<(AnomalyKind, usize)>,
    sent: u64,
}

/// A randomized run without movements: LWW loses concurrent updates by design (LostUpdate is
/// reported, not a violation); stale reads and lost writes are, as in tests/invariants.rs.
fn random_run(seed: u64) -> Judged {
    let out = RandomRun::from_seed(seed).execute();
    let mut violations = Vec::new();
    let c = &out.check;
    for kind in [AnomalyKind::StaleRead, AnomalyKind::LostWrite] {
        if c.count(kind) > 0 {
            violations.push((kind.as_str(), format!("{} {kind}", c.count(kind))));
        }
    }
    if !out.quiet_divergence.is_empty() {
        violations.push((
            "divergence",
            format!("diverged before forced reads: {:?}", out.quiet_divergence),
        ));
    }
    if !out.sim.divergent_keys().is_empty() {
        violations.push(("divergence", "diverged after forced reads".into()));
    }
    if let Some(v) = out.causal.first() {
        violations.push(("causal", v.explanation.clone()));
    }
    if let Some(p) = out.request_problems.first() {
        violations
            .push(("request", format!("{} unexplained failures: {p}", out.request_problems.len())));
    }
    Judged { violations, late_only: false, signature: Vec::new(), sent: out.sim.stats().sent }
}

fn movement_run(seed: u64, strategy: JoinStrategy) -> Judged {
    let out = MovementRun::from_seed(seed, strategy).execute();
    let verdict = out.verdict();
    Judged {
        late_only: verdict.violations.iter().all(|v| v.late_coordinator),
        violations: verdict.violations.into_iter().map(|v| (v.kind.as_str(), v.line)).collect(),
        signature: verdict.signature,
        sent: out.sim.stats().sent,
    }
}

/// `kind in N runs` for each entry, comma-separated, or `none`.
fn runs_by_kind(counts: &BTreeMap<&'static str, u64>) -> String {
    if counts.is_empty() {
        return "none".into();
    }
    counts.iter().map(|(k, n)| format!("{k} in {n} runs")).collect::<Vec<_>>().join(", ")
}

#[test]
#[ignore = "long: run through `cargo xtask soak`"]
fn soak() {
    let seeds: u64 = env("RINGSIDE_SOAK_SEEDS").map_or(1_000, |s| s.parse().expect("seeds"));
    let start: u64 = env("RINGSIDE_SOAK_START").map_or(0, |s| s.parse().expect("start"));
    let strategy = env("RINGSIDE_SOAK_STRATEGY").unwrap_or_else(|| "none".into());
    let strategies: Vec<Option<JoinStrategy>> = match strategy.as_str() {
        "none" => vec![None],
        "all" => JoinStrategy::ALL.iter().copied().map(Some).collect(),
        s => vec![Some(
            JoinStrategy::ALL
                .iter()
                .copied()
                .find(|j| j.name().replace('-', "") == s.replace('-', "").to_lowercase())
                .unwrap_or_else(|| {
                    panic!("unknown strategy {s:?}: none, all or one of {:?}", JoinStrategy::ALL)
                }),
        )],
    };
    let mut total_violations = 0;
    for strategy in strategies {
        let name = strategy.map_or("none".to_string(), |s| s.to_string());
        if let Some(s) = strategy {
            let sig = Signature::of(s);
            println!(
                "[{name}] signature: {:?}{}",
                sig.kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
                if sig.late_coordinator_only { " through a late coordinator only" } else { "" }
            );
        }
        let began = Instant::now();
        let (mut runs, mut violating, mut late_only, mut messages) = (0u64, 0u64, 0u64, 0u64);
        let mut violating_by_kind: BTreeMap<&'static str, u64> = BTreeMap::new();
        let mut signature_runs: BTreeMap<&'static str, u64> = BTreeMap::new();
        for seed in start..start + seeds {
            let judged = match strategy {
                None => random_run(seed),
                Some(s) => movement_run(seed, s),
            };
            runs += 1;
            messages += judged.sent;
            for (kind, _) in &judged.signature {
                *signature_runs.entry(kind.as_str()).or_default() += 1;
            }
            if !judged.violations.is_empty() {
                violating += 1;
                late_only += u64::from(judged.late_only);
                let mut kinds: Vec<&'static str> = judged.violations.iter().map(|v| v.0).collect();
                kinds.sort_unstable();
                kinds.dedup();
                for k in kinds {
                    *violating_by_kind.entry(k).or_default() += 1;
                }
                let lines: Vec<String> =
                    judged.violations.iter().map(|(k, l)| format!("[{k}] {l}")).collect();
                println!(
                    "[{name}] seed {seed}: {}\n  replay: {}",
                    lines.join("; "),
                    soak_replay(seed, &name)
                );
            }
            if runs % 1_000 == 0 {
                let secs = began.elapsed().as_secs_f64().max(1e-9);
                println!(
                    "[{name}] {runs}/{seeds} runs, {violating} violating, signature: {}, {:.1} runs/s, {:.0} simulated messages/s",
                    runs_by_kind(&signature_runs),
                    runs as f64 / secs,
                    messages as f64 / secs
                );
            }
        }
        let secs = began.elapsed().as_secs_f64().max(1e-9);
        println!(
            "[{name}] done: {runs} runs (seeds {start}–{}), {violating} violating ({}; {late_only} of them only through a late coordinator), signature: {}, {:.1} runs/s, {:.0} simulated messages/s, {secs:.1} s",
            start + seeds - 1,
            runs_by_kind(&violating_by_kind),
            runs_by_kind(&signature_runs),
            runs as f64 / secs,
            messages as f64 / secs
        );
        total_violations += violating;
    }
    assert_eq!(total_violations, 0, "runs broke invariants (replay commands above)");
}
