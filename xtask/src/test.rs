//! `cargo xtask test`: every check and test of the project, in order, stopping at the first failed
//! step. CI runs exactly this (through `.ci/run`) on a clean clone, so the prerequisites step
//! installs whatever is missing.
//!
//! Steps:
//! 0. prerequisites — wasm32 target, wasm-bindgen CLI at the locked version, Node.js
//! 1. fmt — `cargo fmt --all -- --check`
//! 2. clippy — native workspace with all targets, then wasm-ui for wasm32; `-D warnings`
//! 3. core-wasm — ringside-core checks for wasm32 and has no I/O crate among its dependencies
//! 4. tests — every native test (nextest when installed) plus doc tests
//! 5. wasm-determinism — the simulator's trace hashes are identical natively and in wasm
//! 6. e2e — browser end-to-end tests in `tests/e2e`, when that suite exists

use crate::tools::{self, Echoed, WASM_TARGET};
use crate::{project_root, web};
use anyhow::{Context, Result, bail, ensure};
use std::process::Command;
use std::time::{Duration, Instant};

/// Crates that mean the engine does I/O or reads OS state. **Architecture Invariant:** core
/// performs no I/O and compiles for wasm32 (see ARCHITECTURE.md), so none of these may appear
/// among its normal dependencies, on any target.
const FORBIDDEN_IN_CORE: &[&str] = &[
    // Async runtimes, networking and RPC.
    "tokio",
    "mio",
    "tonic",
    "hyper",
    "socket2",
    "async-std",
    "smol",
    "reqwest",
    // Storage engines and file-system helpers.
    "fjall",
    "lsm-tree",
    "redb",
    "sled",
    "rocksdb",
    "tempfile",
    "walkdir",
    "memmap2",
    "fs2",
    "fs4",
    "fs-err",
    "notify",
    // OS randomness: the engine's randomness comes from seeded generators only.
    "getrandom",
];

/// The seeds whose simulator traces must hash identically natively and in wasm.
const DETERMINISM_SEEDS: &[u64] = &[1, 2, 3, 42, 1234];

/// Packages the native steps skip: the UI only builds for wasm32 and is checked there.
const NATIVE_EXCLUDES: &[&str] = &["--exclude", "ringside-ui"];

#[derive(Default, Clone, Copy)]
struct TestCounts {
    passed: u64,
    failed: u64,
}

impl TestCounts {
    fn add(&mut self, other: TestCounts) {
        self.passed += other.passed;
        self.failed += other.failed;
    }
}

enum Outcome {
    Passed,
    Failed(String),
    Skipped(String),
    NotRun,
}

struct StepReport {
    name: &'static str,
    outcome: Outcome,
    elapsed: Duration,
    /// `None` for steps that ran no tests.
    tests: Option<TestCounts>,
}

/// A step adds the counts of the tests it runs to its argument as it goes, so that a failed step
/// still reports how many passed and failed.
type StepFn = fn(&mut TestCounts) -> Result<StepResult>;

/// How a step that did not fail ended.
enum StepResult {
    Done,
    Skipped(String),
}

pub fn run() -> Result<()> {
    let steps: &[(&'static str, StepFn)] = &[
        ("prerequisites", prerequisites),
        ("fmt", fmt),
        ("clippy", clippy),
        ("core-wasm", core_wasm),
        ("tests", native_tests),
        ("wasm-determinism", wasm_determinism),
        ("e2e", e2e),
    ];
    let mut reports = Vec::new();
    let mut failed = false;
    for (index, &(name, step)) in steps.iter().enumerate() {
        if failed {
            reports.push(StepReport {
                name,
                outcome: Outcome::NotRun,
                elapsed: Duration::ZERO,
                tests: None,
            });
            continue;
        }
        println!();
        println!("==== xtask test: step {index}/{}: {name} ====", steps.len() - 1);
        let started = Instant::now();
        let mut counts = TestCounts::default();
        let outcome = match step(&mut counts) {
            Ok(StepResult::Done) => Outcome::Passed,
            Ok(StepResult::Skipped(why)) => Outcome::Skipped(why),
            Err(error) => {
                failed = true;
                Outcome::Failed(format!("{error:#}"))
            }
        };
        let tests = (counts.passed + counts.failed > 0).then_some(counts);
        let elapsed = started.elapsed();
        match &outcome {
            Outcome::Passed => println!("==== {name}: ok ({:.1}s) ====", elapsed.as_secs_f64()),
            Outcome::Skipped(why) => println!("==== {name}: skipped: {why} ===="),
            Outcome::Failed(error) => println!("==== {name}: FAILED: {error} ===="),
            Outcome::NotRun => {}
        }
        reports.push(StepReport { name, outcome, elapsed, tests });
    }
    print_summary(&reports);
    if failed {
        bail!("`cargo xtask test` failed");
    }
    Ok(())
}

fn print_summary(reports: &[StepReport]) {
    println!();
    println!("==== xtask test: summary ====");
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    let mut tests = TestCounts::default();
    for report in reports {
        let (label, detail) = match &report.outcome {
            Outcome::Passed => {
                passed += 1;
                ("ok", String::new())
            }
            Outcome::Failed(error) => {
                failed += 1;
                ("FAILED", first_line(error))
            }
            Outcome::Skipped(why) => {
                skipped += 1;
                ("skipped", why.clone())
            }
            Outcome::NotRun => ("not run", "an earlier step failed".to_string()),
        };
        let detail = match report.tests {
            Some(counts) => {
                tests.add(counts);
                format!("{} passed, {} failed", counts.passed, counts.failed)
            }
            None => detail,
        };
        println!(
            "  {label:<8} {:<17} {:>7.1}s  {detail}",
            report.name,
            report.elapsed.as_secs_f64()
        );
    }
    println!("steps: {passed} passed, {failed} failed, {skipped} skipped");
    println!("tests: {} passed, {} failed", tests.passed, tests.failed);
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_string()
}

fn prerequisites(_: &mut TestCounts) -> Result<StepResult> {
    tools::ensure_wasm_target()?;
    let wasm_bindgen = tools::ensure_wasm_bindgen()?;
    let node = tools::ensure_node()?;
    let python = tools::ensure_python_grpc()?;
    println!("wasm32 target: installed");
    println!("python grpcio: {}", python.display());
    println!("wasm-bindgen:  {}", wasm_bindgen.bindgen.display());
    println!("test runner:   {}", wasm_bindgen.test_runner.display());
    println!("node:          {}", node.display());
    match tools::find_executable("cargo-nextest") {
        Some(nextest) => println!("cargo-nextest: {}", nextest.display()),
        None => println!("cargo-nextest: not installed (falling back to `cargo test`)"),
    }
    Ok(StepResult::Done)
}

fn fmt(_: &mut TestCounts) -> Result<StepResult> {
    tools::run(tools::cargo().args(["fmt", "--all", "--", "--check"]))
        .context("formatting differs: run `cargo fmt --all`")?;
    Ok(StepResult::Done)
}

fn clippy(_: &mut TestCounts) -> Result<StepResult> {
    tools::run(tools::cargo().args(["clippy", "--workspace"]).args(NATIVE_EXCLUDES).args([
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    tools::run(tools::cargo().args([
        "clippy",
        "--target",
        WASM_TARGET,
        "-p",
        "ringside-ui",
        "--",
        "-D",
        "warnings",
    ]))?;
    Ok(StepResult::Done)
}

fn core_wasm(_: &mut TestCounts) -> Result<StepResult> {
    tools::run(tools::cargo().args(["check", "-p", "ringside-core", "--target", WASM_TARGET]))?;
    let mut tree = tools::cargo();
    tree.args([
        "tree",
        "-p",
        "ringside-core",
        "-e",
        "normal",
        "--target",
        "all",
        "--prefix",
        "none",
        "--format",
        "{p}",
    ]);
    println!("$ {}", tools::display(&tree));
    let tree = tools::output(&mut tree)?;
    let mut found: Vec<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| FORBIDDEN_IN_CORE.contains(name))
        .collect();
    found.sort_unstable();
    found.dedup();
    ensure!(
        found.is_empty(),
        "ringside-core depends on I/O crates: {} (the engine must stay sans-IO; \
         see `cargo tree -p ringside-core -e normal -i <crate>`)",
        found.join(", ")
    );
    println!("ringside-core's dependencies include none of: {}", FORBIDDEN_IN_CORE.join(", "));
    Ok(StepResult::Done)
}

fn native_tests(counts: &mut TestCounts) -> Result<StepResult> {
    // The multi-process tests start the node binary; the third-party client test must not skip.
    let python = tools::ensure_python_grpc()?;
    tools::run(tools::cargo().args(["build", "-p", "ringside-node", "--bin", "ringside"]))?;
    if tools::find_executable("cargo-nextest").is_some() {
        run_tests(
            counts,
            tools::cargo()
                .env("RINGSIDE_PYTHON", &python)
                .env("RINGSIDE_REQUIRE_PYTHON", "1")
                .args(["nextest", "run", "--workspace"])
                .args(NATIVE_EXCLUDES)
                .args(["--no-fail-fast", "--no-tests=warn"]),
        )?;
        // nextest does not run doc tests.
        run_tests(
            counts,
            tools::cargo()
                .env("RINGSIDE_PYTHON", &python)
                .env("RINGSIDE_REQUIRE_PYTHON", "1")
                .args(["test", "--doc", "--workspace"])
                .args(NATIVE_EXCLUDES)
                .arg("--no-fail-fast"),
        )?;
    } else {
        run_tests(
            counts,
            tools::cargo()
                .env("RINGSIDE_PYTHON", &python)
                .env("RINGSIDE_REQUIRE_PYTHON", "1")
                .args(["test", "--workspace"])
                .args(NATIVE_EXCLUDES)
                .arg("--no-fail-fast"),
        )?;
    }
    Ok(StepResult::Done)
}

/// Runs a test command, adds the counts it reported to `total` and returns them; fails if the
/// command failed.
fn run_tests(total: &mut TestCounts, command: &mut Command) -> Result<TestCounts> {
    let Echoed { success, lines } = tools::run_echoed(command)?;
    let counts = count_tests(&lines);
    total.add(counts);
    if !success || counts.failed > 0 {
        bail!(
            "`{}` failed: {} passed, {} failed",
            tools::display(command),
            counts.passed,
            counts.failed
        );
    }
    Ok(counts)
}

/// Adds up the counts in libtest's `test result:` lines (cargo test, doc tests and
/// wasm-bindgen-test-runner) and nextest's `Summary [...] N tests run: N passed, N failed` line.
/// Indented `test result:` lines are skipped: nextest quotes a failed test's own output indented,
/// and that test is already in nextest's summary.
fn count_tests(lines: &[String]) -> TestCounts {
    let mut counts = TestCounts::default();
    for line in lines {
        let numbers = if line.starts_with("test result:") {
            line.as_str()
        } else if line.trim_start().starts_with("Summary ") {
            match line.find(" run: ") {
                Some(index) => &line[index..],
                None => continue,
            }
        } else {
            continue;
        };
        let words: Vec<&str> = numbers
            .split(|c: char| c.is_whitespace() || c == ',' || c == ';')
            .filter(|word| !word.is_empty())
            .collect();
        for pair in words.windows(2) {
            let Ok(number) = pair[0].parse::<u64>() else {
                continue;
            };
            match pair[1] {
                "passed" => counts.passed += number,
                "failed" => counts.failed += number,
                _ => {}
            }
        }
    }
    counts
}

/// The simulator must produce the same trace natively and in wasm (the browser explorer replays
/// native seeds). The native hashes are computed by `core/examples/trace_hashes.rs` and compiled
/// into the wasm test `core/tests/wasm_determinism.rs`, which recomputes them under Node.
fn wasm_determinism(counts: &mut TestCounts) -> Result<StepResult> {
    let seeds: Vec<String> = DETERMINISM_SEEDS.iter().map(u64::to_string).collect();
    let mut native = tools::cargo();
    native.args(["run", "-p", "ringside-core", "--example", "trace_hashes", "--"]).args(&seeds);
    println!("$ {}", tools::display(&native));
    let native = tools::output(&mut native)?;
    let hashes = parse_native_hashes(&native)?;
    for (seed, hash) in &hashes {
        println!("native trace hash  seed {seed:>5}  {hash}");
    }
    let encoded: Vec<String> = hashes.iter().map(|(seed, hash)| format!("{seed}:{hash}")).collect();

    let wasm_bindgen = tools::ensure_wasm_bindgen()?;
    let wasm_counts = run_tests(
        counts,
        tools::cargo()
            .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER", &wasm_bindgen.test_runner)
            .env("RINGSIDE_NATIVE_TRACE_HASHES", encoded.join(","))
            .args([
                "test",
                "-p",
                "ringside-core",
                "--target",
                WASM_TARGET,
                "--test",
                "wasm_determinism",
            ]),
    )?;
    ensure!(
        wasm_counts.passed > 0,
        "the wasm determinism test ran no test (is it still cfg'd to wasm32 only?)"
    );
    Ok(StepResult::Done)
}

/// Parses `seed hash` lines (hash in hex) printed by the `trace_hashes` example.
fn parse_native_hashes(output: &str) -> Result<Vec<(u64, String)>> {
    let mut hashes = Vec::new();
    for line in output.lines().filter(|line| !line.trim().is_empty()) {
        let mut parts = line.split_whitespace();
        let (Some(seed), Some(hash), None) = (parts.next(), parts.next(), parts.next()) else {
            bail!("unexpected line from trace_hashes: `{line}` (expected `seed hash`)");
        };
        let seed: u64 = seed.parse().with_context(|| format!("bad seed in `{line}`"))?;
        u64::from_str_radix(hash, 16).with_context(|| format!("bad hex hash in `{line}`"))?;
        hashes.push((seed, hash.to_string()));
    }
    ensure!(
        hashes.len() == DETERMINISM_SEEDS.len(),
        "trace_hashes printed {} hashes for {} seeds",
        hashes.len(),
        DETERMINISM_SEEDS.len()
    );
    Ok(hashes)
}

/// Browser end-to-end tests. The suite does not exist yet; when `tests/e2e` appears with a
/// `package.json`, its `npm test` runs against a freshly built bundle. Any other kind of suite
/// must be taught to this step rather than silently skipped.
fn e2e(counts: &mut TestCounts) -> Result<StepResult> {
    let suite = project_root().join("tests").join("e2e");
    if !suite.is_dir() {
        return Ok(StepResult::Skipped("no tests/e2e suite yet".to_string()));
    }
    ensure!(
        suite.join("package.json").is_file(),
        "{} exists but has no package.json: teach xtask/src/test.rs (fn e2e) how to run it",
        suite.display()
    );
    web::build_bundle()?;
    let npm = tools::find_executable("npm").context("npm is required for tests/e2e")?;
    let install = if suite.join("package-lock.json").is_file() { "ci" } else { "install" };
    tools::run(Command::new(&npm).arg(install).current_dir(&suite))?;
    let Echoed { success, lines } = tools::run_echoed(
        Command::new(&npm).arg("test").current_dir(&suite).env("RINGSIDE_WWW", web::www_dir()),
    )?;
    counts.add(count_tests(&lines));
    ensure!(success, "`npm test` in tests/e2e failed");
    Ok(StepResult::Done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn counts_libtest_and_nextest_summaries() {
        let output = lines(
            "test result: ok. 5 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out\n\
             test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out\n\
             \x20    Summary [   1.234s] 12 tests run: 11 passed, 1 failed, 0 skipped\n\
             \x20   test result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured\n\
             PASS [   0.003s] ringside-core ring::tests::passed",
        );
        let counts = count_tests(&output);
        assert_eq!((counts.passed, counts.failed), (18, 2));
    }

    #[test]
    fn parses_trace_hashes() {
        let output = "1 00ff\n2 0a\n3 1\n42 abcdef\n1234 ffffffffffffffff\n";
        let hashes = parse_native_hashes(output).unwrap();
        assert_eq!(hashes[3], (42, "abcdef".to_string()));
        assert!(parse_native_hashes("1 xyz\n").is_err());
    }
}
