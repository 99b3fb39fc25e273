//! `ringside sim …`: scenario runs in the simulator.

use anyhow::{Context, Result};
use clap::Subcommand;
use ringside_core::membership::JoinStrategy;
use ringside_core::scenario::{self, RunOptions};
use ringside_core::token::token_for;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum SimCommand {
    /// Run a scenario file and check its expectations (exit status 1 when one fails).
    Run {
        /// The scenario file (TOML).
        file: PathBuf,
        /// Replace the scenario's seed.
        #[arg(long)]
        seed: Option<u64>,
        /// Print a machine-readable JSON report instead of text.
        #[arg(long)]
        json: bool,
        /// Write the Jepsen-style history to this file (JSON lines, or Jepsen EDN when the file
        /// name ends in `.edn`).
        #[arg(long)]
        history: Option<PathBuf>,
        /// Write the full trace (JSON lines) to this file.
        #[arg(long)]
        trace: Option<PathBuf>,
        /// Replace the scenario's join strategy.
        #[arg(long)]
        strategy: Option<JoinStrategy>,
    },
    /// Run a scenario once per join strategy (same seed, workload and faults) and print a table:
    /// stale reads, lost writes, errors, extra acks, bytes streamed, time to NORMAL, ghost data.
    Compare {
        /// The scenario file (TOML).
        file: PathBuf,
        /// Strategies to compare: `all`, or a comma-separated list such as
        /// `staged,pending-ranges,immediate`.
        #[arg(long, default_value = "all")]
        strategies: String,
        /// Replace the scenario's seed.
        #[arg(long)]
        seed: Option<u64>,
        /// Print the lanes as JSON (the explorer's data structure) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print the token of a key (to place nodes around it in scenario files).
    Token {
        /// The key.
        key: String,
    },
}

pub fn run(cmd: SimCommand) -> Result<ExitCode> {
    match cmd {
        SimCommand::Run { file, seed, json, history, trace, strategy } => {
            let prepared = load(&file)?;
            let options = RunOptions {
                seed,
                keep_trace: trace.is_some(),
                file: Some(file.display().to_string()),
                strategy,
            };
            let (report, sim) = scenario::run(&prepared, &options);
            if let Some(path) = history {
                let out = if path.extension().is_some_and(|e| e == "edn") {
                    ringside_core::checker::to_jepsen_edn(sim.history())
                } else {
                    let mut out = String::new();
                    for op in &sim.history().ops {
                        out.push_str(&serde_json::to_string(op)?);
                        out.push('\n');
                    }
                    out
                };
                std::fs::write(&path, out)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            if let Some(path) = trace {
                let mut out = String::new();
                for r in sim.trace().records() {
                    out.push_str(&serde_json::to_string(r)?);
                    out.push('\n');
                }
                std::fs::write(&path, out)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            if json {
                emit(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
            } else {
                emit(&report.to_string())?;
            }
            Ok(if report.passed { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        SimCommand::Compare { file, strategies, seed, json } => {
            let strategies = parse_strategies(&strategies)?;
            let prepared = load(&file)?;
            let options = RunOptions {
                seed,
                file: Some(file.display().to_string()),
                ..RunOptions::default()
            };
            let comparison = ringside_core::compare::compare(&prepared, &strategies, &options);
            if json {
                emit(&format!("{}\n", serde_json::to_string_pretty(&comparison)?))?;
            } else {
                emit(&comparison.to_string())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        SimCommand::Token { key } => {
            emit(&format!("{}\n", token_for(key.as_bytes())))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Writes a command's output to stdout. A reader that went away (`ringside sim run … | head`)
/// is not an error: `print!` would panic on the broken pipe, so the output stops quietly and the
/// command keeps its own exit status (pass or fail), like a tool that was not interrupted.
fn emit(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        result => result.context("cannot write to stdout"),
    }
}

fn load(file: &std::path::Path) -> Result<scenario::Prepared> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read scenario file {}", file.display()))?;
    let parsed = scenario::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    scenario::prepare(parsed, &text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))
}

fn parse_strategies(text: &str) -> Result<Vec<JoinStrategy>> {
    if text.trim() == "all" {
        return Ok(JoinStrategy::ALL.to_vec());
    }
    let mut out = Vec::new();
    for name in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let s: JoinStrategy = name.parse().map_err(|e| anyhow::anyhow!("--strategies: {e}"))?;
        if !out.contains(&s) {
            out.push(s);
        }
    }
    if out.is_empty() {
        anyhow::bail!("--strategies is empty: give `all` or names such as staged,pending-ranges");
    }
    Ok(out)
}
