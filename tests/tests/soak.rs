//! Long randomized runs for `cargo xtask soak` (not part of `cargo xtask test`: the test is
//! ignored). `RINGSIDE_SOAK_SEEDS` runs, from `RINGSIDE_SOAK_START` (default 0), of the
//! randomized runs without movements (`RINGSIDE_SOAK_STRATEGY` unset or `none`) or of the
//! movement runs of one join strategy (`staged`, `pending-ranges`, …) or of each (`all`). Prints a
//! progress line every 100 runs, then runs, violations and throughput; every violation prints
//! its replay command. Fails when any run broke an invariant.

use ringside_core::checker::AnomalyKind;
use ringside_core::membership::JoinStrategy;
use ringside_tests::RandomRun;
use ringside_tests::movements::MovementRun;
use std::time::Instant;

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|s| !s.is_empty())
}

/// The command that replays one soak run exactly (the soak's runs are `from_seed` as they are,
/// which the CI sweeps adjust, so their commands would replay another run).
fn soak_replay(seed: u64, strategy: &str) -> String {
    format!("cargo xtask soak --seeds 1 --start {seed} --strategy {strategy}")
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
                .find(|j| format!("{j:?}").to_lowercase() == s.replace('-', "").to_lowercase())
                .unwrap_or_else(|| {
                    panic!("unknown strategy {s:?}: none, all or one of {:?}", JoinStrategy::ALL)
                }),
        )],
    };
    let mut total_violations = 0;
    for strategy in strategies {
        let name = strategy.map_or("none".to_string(), |s| format!("{s:?}"));
        let began = Instant::now();
        let (mut runs, mut violating, mut messages) = (0u64, 0u64, 0u64);
        for seed in start..start + seeds {
            let (broken, sent, replay) = match strategy {
                None => {
                    let out = RandomRun::from_seed(seed).execute();
                    let mut broken: Vec<String> = Vec::new();
                    let c = &out.check;
                    // LWW loses concurrent updates by design (LostUpdate is reported, not a
                    // violation); stale reads and lost writes are, as in tests/invariants.rs.
                    for kind in [AnomalyKind::StaleRead, AnomalyKind::LostWrite] {
                        if c.count(kind) > 0 {
                            broken.push(format!("{} {kind}", c.count(kind)));
                        }
                    }
                    if !out.quiet_divergence.is_empty() {
                        broken.push(format!(
                            "diverged before forced reads: {:?}",
                            out.quiet_divergence
                        ));
                    }
                    if !out.sim.divergent_keys().is_empty() {
                        broken.push("diverged after forced reads".into());
                    }
                    if let Some(v) = out.causal.first() {
                        broken.push(v.explanation.clone());
                    }
                    if let Some(p) = out.request_problems.first() {
                        broken.push(format!(
                            "{} unexplained failures: {p}",
                            out.request_problems.len()
                        ));
                    }
                    (broken, out.sim.stats().sent, soak_replay(seed, "none"))
                }
                Some(s) => {
                    let out = MovementRun::from_seed(seed, s).execute();
                    let broken = out.violations();
                    let name = s.to_string();
                    (broken, out.sim.stats().sent, soak_replay(seed, &name))
                }
            };
            runs += 1;
            messages += sent;
            if !broken.is_empty() {
                violating += 1;
                println!("[{name}] seed {seed}: {}\n  replay: {replay}", broken.join("; "));
            }
            if runs % 100 == 0 {
                let secs = began.elapsed().as_secs_f64().max(1e-9);
                println!(
                    "[{name}] {runs}/{seeds} runs, {violating} violating, {:.1} runs/s, {:.0} simulated messages/s",
                    runs as f64 / secs,
                    messages as f64 / secs
                );
            }
        }
        let secs = began.elapsed().as_secs_f64().max(1e-9);
        println!(
            "[{name}] done: {runs} runs, {violating} violating, {:.1} runs/s, {:.0} simulated messages/s, {secs:.1} s",
            runs as f64 / secs,
            messages as f64 / secs
        );
        total_violations += violating;
    }
    assert_eq!(total_violations, 0, "runs broke invariants (replay commands above)");
}
