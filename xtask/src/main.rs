//! Project automation, run as `cargo xtask <command>` (the alias lives in `.cargo/config.toml`).
//!
//! The two commands that matter are `cargo xtask explore` (build the browser explorer and serve
//! it) and `cargo xtask test` (every check and test the project has; CI runs exactly this through
//! `.ci/run`). Everything is plain `std::process::Command` calls so that what runs is visible in
//! the output and can be copied into a shell.

mod bench;
mod explore;
mod serve;
mod soak;
mod test;
mod tools;
mod web;

use anyhow::{Result, bail};
use std::path::{Path, PathBuf};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  test               fmt, clippy, wasm checks, every test (what CI runs)
  ci                 same as `test`
  web                build the explorer bundle into www/pkg
  explore [--port N] build the bundle if stale and serve www/ on 127.0.0.1:N (default 8080)
  soak --seeds N [--strategy S] [--start K]
                     long randomized runs (S: none, all, or a join strategy such as staged),
                     with progress, violations and runs/s; not part of `test`
  bench [ARGS...]    run the criterion benchmarks of ringside-core; ARGS go to `cargo bench`
                     (e.g. `cargo xtask bench --bench ring_lookup`)
  bench native [--quick]
                     the native cluster side by side with etcd and Redis
  bench web [--quick]
                     the explorer in headless Chromium: bundle size, frame rate, comparison
                     time (report in target/bench/web/report.md)
";

fn main() {
    if let Err(error) = run() {
        eprintln!("xtask: error: {error:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (command, rest) = match args.split_first() {
        Some((command, rest)) => (command.as_str(), rest),
        None => {
            eprint!("{USAGE}");
            bail!("no command given");
        }
    };
    match command {
        "test" | "ci" => {
            no_arguments(command, rest)?;
            test::run()
        }
        "web" => {
            no_arguments(command, rest)?;
            web::build_bundle().map(|_| ())
        }
        "explore" => explore::run(explore::Options::parse(rest)?),
        "bench" => bench::run(rest),
        "soak" => soak::run(rest),
        "help" | "-h" | "--help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => {
            eprint!("{USAGE}");
            bail!("unknown command `{other}`")
        }
    }
}

fn no_arguments(command: &str, rest: &[String]) -> Result<()> {
    if rest.is_empty() {
        Ok(())
    } else {
        bail!("`cargo xtask {command}` takes no arguments, got {rest:?}")
    }
}

/// The workspace root (the parent of this crate's directory).
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}
