//! `cargo xtask bench web [--quick]`: the browser explorer measured in Debian's headless Chromium
//! (the browser the end-to-end tests drive). Measurements to read, not tests: budgets are reported
//! as met or missed, nothing fails on a miss.
//!
//! 1. **Bundle**: raw and gzipped size of `www/pkg` (budget ≤ 350 kB gzipped).
//! 2. **Frame rate**: the `large-cluster` preset playing with well over 100 messages on screen,
//!    next to an idle page's frame rate, the refresh the headless browser gives (budget ≥ 55 fps
//!    median).
//! 3. **Comparison**: the time the page takes to compute six strategy lanes of the 60 s
//!    `join-staged` preset (budget ≤ 2 s), next to the native `ringside sim compare` of the same
//!    file.
//!
//! The measuring is `tests/e2e/bench.mjs`; this builds the bundle and the native binary, times the
//! native comparison, serves `www/` and runs the script. The report is printed and written to
//! `target/bench/web/report.md` (with the raw numbers in `results.json`).

use crate::{project_root, serve, test, tools, web};
use anyhow::{Context, Result, bail, ensure};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage: cargo xtask bench web [--quick]

  --quick  sample frame rates for 3 s instead of 10 s (for development)
";

/// The scenario the comparison is timed on, natively and in the page (`tests/e2e/bench.mjs` loads
/// the same preset with all six strategies).
const COMPARED: &str = "core/presets/join-staged.toml";

/// Native runs of the comparison; the median is reported.
const NATIVE_RUNS: usize = 3;

/// `cargo xtask bench web ...`.
pub fn run(args: &[String]) -> Result<()> {
    let mut quick = false;
    for arg in args {
        match arg.as_str() {
            "--quick" => quick = true,
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(());
            }
            other => {
                eprint!("{USAGE}");
                bail!("unknown argument `{other}` to `cargo xtask bench web`");
            }
        }
    }
    let suite = project_root().join("tests").join("e2e");
    let script = suite.join("bench.mjs");
    ensure!(script.is_file(), "{} is missing", script.display());

    let chromium = tools::ensure_chromium()?;
    let node = test::ensure_e2e_node()?;
    test::npm_ci_if_needed(&suite)?;
    tools::ensure_wasm_opt();
    web::build_bundle()?;

    tools::run(tools::cargo().args(["build", "--release", "-p", "ringside-node"]))?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join("target"));
    let binary = target.join("release/ringside");
    ensure!(
        binary.is_file(),
        "`cargo build --release -p ringside-node` did not produce {}",
        binary.display()
    );
    let native = time_native_compare(&binary)?;
    let native_median = median(&native);
    println!(
        "xtask: native `ringside sim compare {COMPARED}`: {} (median {:.0} ms)",
        native.iter().map(|d| format!("{:.0} ms", ms(*d))).collect::<Vec<_>>().join(", "),
        ms(native_median)
    );

    let out = target.join("bench").join("web");
    std::fs::create_dir_all(&out).with_context(|| format!("could not create {}", out.display()))?;
    // Stopped when dropped, whatever happens to the script.
    let server = serve::serve_in_background(&web::www_dir())?;
    println!("xtask: serving {} at {}", web::www_dir().display(), server.url());
    let mut command = Command::new(&node);
    command
        .current_dir(&suite)
        .env("RINGSIDE_E2E_BASE_URL", server.url())
        .env("RINGSIDE_CHROMIUM", &chromium.browser)
        .env("RINGSIDE_BENCH_OUT", &out)
        .env("RINGSIDE_BENCH_QUICK", if quick { "1" } else { "0" })
        .env("RINGSIDE_NATIVE_COMPARE_MS", format!("{:.1}", ms(native_median)))
        .env(
            "RINGSIDE_NATIVE_COMPARE_RUNS",
            native.iter().map(|d| format!("{:.0}", ms(*d))).collect::<Vec<_>>().join(", "),
        )
        .env("RINGSIDE_NATIVE_COMPARE_CMD", format!("ringside sim compare {COMPARED}"))
        .arg("bench.mjs");
    let result = tools::run(&mut command);
    drop(server);
    result?;
    println!("xtask: report written to {}", out.join("report.md").display());
    Ok(())
}

/// Wall-clock times of `NATIVE_RUNS` runs of `ringside sim compare` on [`COMPARED`] (all six
/// strategies, its default), after one untimed run to warm the page cache.
fn time_native_compare(binary: &Path) -> Result<Vec<Duration>> {
    let command = || {
        let mut command = Command::new(binary);
        command
            .args(["sim", "compare", COMPARED])
            .current_dir(project_root())
            .stdout(Stdio::null());
        command
    };
    println!("$ {}", tools::display(&command()));
    let mut times = Vec::new();
    for run in 0..=NATIVE_RUNS {
        let started = Instant::now();
        let status = command().status().context("could not start `ringside sim compare`")?;
        let elapsed = started.elapsed();
        ensure!(status.success(), "`ringside sim compare {COMPARED}` failed ({status})");
        if run > 0 {
            times.push(elapsed);
        }
    }
    Ok(times)
}

fn median(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    sorted.get(sorted.len().saturating_sub(1) / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        let d = Duration::from_millis;
        assert_eq!(median(&[d(30), d(10), d(20)]), d(20));
        assert_eq!(median(&[d(40), d(10), d(30), d(20)]), d(20));
        assert_eq!(median(&[]), Duration::ZERO);
    }
}
