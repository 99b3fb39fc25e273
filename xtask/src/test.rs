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
//! 6. e2e — browser end-to-end tests in `tests/e2e` (Playwright driving Debian's headless
//!    Chromium, installed when missing) against the freshly built explorer

use crate::tools::{self, Echoed, WASM_TARGET};
use crate::{project_root, serve, web};
use anyhow::{Context, Result, bail, ensure};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
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

/// The seeds whose native trace hashes the browser tests compare the explorer's against: the
/// default seed, `?seed=7`, a typed seed and the largest seed.
const E2E_SEEDS: &[u64] = &[7, 42, 1234, u64::MAX];

/// The oldest Node.js the pinned `playwright-core` supports (its `engines`).
const E2E_MIN_NODE_MAJOR: u64 = 20;

/// Packages native clippy and doc tests skip: the UI is linted for wasm32, where it runs. Its
/// pure modules (geometry, URL state) are unit-tested natively with the rest.
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
    // Installed by the e2e step, not here: the other steps do not need a browser.
    match tools::installed_chromium() {
        Some(chromium) => println!("chromium:      {}", chromium.browser.display()),
        None => println!("chromium:      not installed (the e2e step installs it)"),
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

/// Browser end-to-end tests: the suite in `tests/e2e` (Node's test runner, with `playwright-core`
/// driving Debian's headless Chromium) runs against the explorer freshly built into `www/pkg` and
/// served on a free local port. The page must show, for each seed, exactly the trace hash native
/// code computes; the suite gets the native hashes in `RINGSIDE_NATIVE_HASHES`.
fn e2e(counts: &mut TestCounts) -> Result<StepResult> {
    let suite = project_root().join("tests").join("e2e");
    if !suite.is_dir() {
        return Ok(StepResult::Skipped("no tests/e2e suite".to_string()));
    }
    for file in ["package.json", "package-lock.json"] {
        ensure!(
            suite.join(file).is_file(),
            "{} has no {file}: the suite is an npm project with a committed lock file \
             (teach xtask/src/test.rs, fn e2e, any other kind of suite)",
            suite.display()
        );
    }
    let files = e2e_test_files(&suite)?;

    let chromium = tools::ensure_chromium()?;
    println!("chromium:     {} ({})", chromium.browser.display(), version_of(&chromium.browser));
    println!("chromedriver: {} ({})", chromium.driver.display(), version_of(&chromium.driver));
    let node = ensure_e2e_node()?;
    npm_ci_if_needed(&suite)?;

    let hashes = native_hashes(E2E_SEEDS)?;
    for (seed, hash) in &hashes {
        println!("native trace hash  seed {seed:>20}  {hash}");
    }
    let encoded: Vec<String> = hashes.iter().map(|(seed, hash)| format!("{seed}={hash}")).collect();
    web::build_bundle()?;
    let screenshots = target_dir().join("e2e-screenshots");
    std::fs::create_dir_all(&screenshots)
        .with_context(|| format!("could not create {}", screenshots.display()))?;

    // Stopped when dropped, whatever happens to the tests.
    let server = serve::serve_in_background(&web::www_dir())?;
    println!("xtask: serving {} at {}", web::www_dir().display(), server.url());
    let mut command = Command::new(&node);
    command
        .current_dir(&suite)
        .env("RINGSIDE_E2E_BASE_URL", server.url())
        .env("RINGSIDE_NATIVE_HASHES", encoded.join(","))
        .env("RINGSIDE_CHROMIUM", &chromium.browser)
        .env("RINGSIDE_E2E_SCREENSHOTS", &screenshots)
        .args(["--test", "--test-reporter=spec"])
        .args(&files);
    let result = tools::run_echoed(&mut command);
    drop(server);
    let Echoed { success, lines } = result?;
    let found = count_node_tests(&lines);
    counts.add(found);
    ensure!(
        success && found.failed == 0,
        "the browser tests failed: {} passed, {} failed",
        found.passed,
        found.failed
    );
    ensure!(
        found.passed > 0,
        "`node --test` in tests/e2e passed but no count was read from its output \
         (see count_node_tests)"
    );
    println!("xtask: screenshots in {}", screenshots.display());
    Ok(StepResult::Done)
}

/// Node.js, new enough for the pinned `playwright-core` of `tests/e2e` (also used by
/// `cargo xtask bench web`).
pub(crate) fn ensure_e2e_node() -> Result<PathBuf> {
    let node = tools::ensure_node()?;
    let node_version = version_of(&node);
    println!("node:         {} ({node_version})", node.display());
    ensure!(
        node_major(&node_version).is_some_and(|major| major >= E2E_MIN_NODE_MAJOR),
        "tests/e2e needs Node.js {E2E_MIN_NODE_MAJOR} or newer (for playwright-core), but {} is \
         {node_version}",
        node.display()
    );
    Ok(node)
}

/// The suite's test files (`*.test.mjs` and `*.test.js` directly in `tests/e2e`), named
/// explicitly because `node --test` finds files differently from one Node.js version to the next.
fn e2e_test_files(suite: &Path) -> Result<Vec<String>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(suite).with_context(|| format!("reading {}", suite.display()))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.ends_with(".test.mjs") || name.ends_with(".test.js") {
            files.push(name);
        }
    }
    files.sort();
    ensure!(!files.is_empty(), "{} has no *.test.mjs file", suite.display());
    Ok(files)
}

/// Runs `npm ci` in the suite unless `node_modules` was installed after the last change to
/// `package.json` and `package-lock.json` (npm writes `node_modules/.package-lock.json` at the
/// end of every install).
pub(crate) fn npm_ci_if_needed(suite: &Path) -> Result<()> {
    let installed = modified(&suite.join("node_modules").join(".package-lock.json"));
    let wanted = ["package.json", "package-lock.json"]
        .into_iter()
        .filter_map(|file| modified(&suite.join(file)))
        .max();
    if matches!((installed, wanted), (Some(installed), Some(wanted)) if installed >= wanted) {
        println!("xtask: tests/e2e/node_modules is up to date");
        return Ok(());
    }
    let npm = tools::find_executable("npm").context(
        "npm is required to install the packages of tests/e2e and is not installed \
         (it comes with Node.js; on Debian: apt-get install -y npm)",
    )?;
    // playwright-core downloads no browser on install; the variable makes sure of it.
    tools::run(
        Command::new(&npm)
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(suite)
            .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1"),
    )
    .context("could not install the packages of tests/e2e from the npm registry")
}

/// The first line a program prints for `--version`, for the log.
fn version_of(program: &Path) -> String {
    Command::new(program)
        .arg("--version")
        .stderr(Stdio::null())
        .output()
        .ok()
        .and_then(|output| {
            String::from_utf8_lossy(&output.stdout)
                .lines()
                .next()
                .map(|line| line.trim().to_string())
        })
        .filter(|line| !line.is_empty())
        .unwrap_or_else(|| "version unknown".to_string())
}

/// The major version in `node --version`'s `v20.11.1`.
fn node_major(version: &str) -> Option<u64> {
    version.trim().strip_prefix('v')?.split('.').next()?.parse().ok()
}

/// The native trace hashes of `seeds`, from `core/examples/trace_hashes.rs`.
fn native_hashes(seeds: &[u64]) -> Result<Vec<(u64, String)>> {
    let seed_args: Vec<String> = seeds.iter().map(u64::to_string).collect();
    let mut native = tools::cargo();
    native.args(["run", "-p", "ringside-core", "--example", "trace_hashes", "--"]).args(&seed_args);
    println!("$ {}", tools::display(&native));
    parse_seed_hashes(&tools::output(&mut native)?, seeds)
}

/// Parses the `seed hash` lines of `trace_hashes`: exactly `seeds`, in order, each with a hash of
/// 16 hex digits (the way the page shows it).
fn parse_seed_hashes(output: &str, seeds: &[u64]) -> Result<Vec<(u64, String)>> {
    let mut hashes = Vec::new();
    for line in output.lines().filter(|line| !line.trim().is_empty()) {
        let mut parts = line.split_whitespace();
        let (Some(seed), Some(hash), None) = (parts.next(), parts.next(), parts.next()) else {
            bail!("unexpected line from trace_hashes: `{line}` (expected `seed hash`)");
        };
        let seed: u64 = seed.parse().with_context(|| format!("bad seed in `{line}`"))?;
        ensure!(
            hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()),
            "bad hash in `{line}` (expected 16 hex digits)"
        );
        hashes.push((seed, hash.to_ascii_lowercase()));
    }
    let printed: Vec<u64> = hashes.iter().map(|(seed, _)| *seed).collect();
    ensure!(printed == seeds, "trace_hashes printed seeds {printed:?}, asked for {seeds:?}");
    Ok(hashes)
}

/// Reads the totals Node's test runner prints at the end of a run: `ℹ pass 4`, `ℹ fail 0`,
/// `ℹ cancelled 0` with the spec reporter (`# pass 4` and so on with TAP). Cancelled tests (timed
/// out, or cut short by a failed hook) count as failed. Only unindented lines count, and colour
/// codes are ignored.
fn count_node_tests(lines: &[String]) -> TestCounts {
    let mut counts = TestCounts::default();
    for line in lines {
        let line = strip_ansi(line);
        let Some(total) = line.strip_prefix("ℹ ").or_else(|| line.strip_prefix("# ")) else {
            continue;
        };
        let mut words = total.split_whitespace();
        let (Some(label), Some(number), None) = (words.next(), words.next(), words.next()) else {
            continue;
        };
        let Ok(number) = number.parse::<u64>() else {
            continue;
        };
        match label {
            "pass" => counts.passed += number,
            "fail" | "cancelled" => counts.failed += number,
            _ => {}
        }
    }
    counts
}

/// `text` without ANSI escape sequences (`ESC [ ... letter`), in case colours are forced.
fn strip_ansi(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join("target"))
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|meta| meta.modified()).ok()
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
    fn counts_node_test_runner_totals() {
        let spec = lines(
            "✔ the explorer loads (857.2ms)\n\
             ✖ ?seed=7 shows the native hash (15414.6ms)\n\
             \x20 AssertionError [ERR_ASSERTION]: #trace-hash shows \"ea22\"\n\
             ℹ tests 4\n\
             ℹ suites 0\n\
             ℹ pass 2\n\
             ℹ fail 1\n\
             ℹ cancelled 1\n\
             ℹ skipped 0\n\
             ℹ todo 0\n\
             ℹ duration_ms 2916.767248\n\
             \n\
             ✖ failing tests:",
        );
        let counts = count_node_tests(&spec);
        assert_eq!((counts.passed, counts.failed), (2, 2));

        let tap = lines(
            "TAP version 13\n\
             # Subtest: loads\n\
             ok 1 - loads\n\
             \x20   # pass 9\n\
             1..1\n\
             # tests 1\n\
             # pass 1\n\
             # fail 0\n\
             # cancelled 0",
        );
        let counts = count_node_tests(&tap);
        assert_eq!((counts.passed, counts.failed), (1, 0));

        let coloured = lines("\x1b[34mℹ pass 3\x1b[39m\n\x1b[34mℹ fail 0\x1b[39m");
        let counts = count_node_tests(&coloured);
        assert_eq!((counts.passed, counts.failed), (3, 0));
    }

    #[test]
    fn parses_seed_hashes_for_the_browser_tests() {
        let output = "7 ea229163c9e4a543\n18446744073709551615 9452989FF4547D1F\n";
        let hashes = parse_seed_hashes(output, &[7, u64::MAX]).unwrap();
        assert_eq!(hashes[1], (u64::MAX, "9452989ff4547d1f".to_string()));
        assert!(parse_seed_hashes(output, &[7]).is_err(), "an extra seed");
        assert!(parse_seed_hashes("7 ea22\n", &[7]).is_err(), "a short hash");
        assert_eq!(node_major("v20.20.2\n"), Some(20));
        assert_eq!(node_major("20"), None);
    }

    #[test]
    fn parses_trace_hashes() {
        let output = "1 00ff\n2 0a\n3 1\n42 abcdef\n1234 ffffffffffffffff\n";
        let hashes = parse_native_hashes(output).unwrap();
        assert_eq!(hashes[3], (42, "abcdef".to_string()));
        assert!(parse_native_hashes("1 xyz\n").is_err());
    }
}
