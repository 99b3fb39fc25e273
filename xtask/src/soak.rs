//! `cargo xtask soak --seeds N [--strategy S] [--start K]`: long randomized runs (the ignored
//! `soak` test of `ringside-tests`, in release) with a progress line and the throughput. Each
//! movement run is judged against its strategy's documented signature
//! (`ringside_tests::movements::Signature`): the summary gives per strategy the runs, the violating
//! runs by kind, the runs showing each anomaly of the signature, runs/s, simulated messages/s and
//! seconds. Not part of `cargo xtask test`: it is for hunting rare seeds, not for CI.

use crate::tools;
use anyhow::{Result, bail};

/// Parses the arguments and runs the soak.
pub fn run(args: &[String]) -> Result<()> {
    let mut seeds = "10000".to_string();
    let mut strategy = "none".to_string();
    let mut start = "0".to_string();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().ok_or_else(|| anyhow::anyhow!("{a} needs a value"));
        match a.as_str() {
            "--seeds" => seeds = value()?,
            "--strategy" => strategy = value()?,
            "--start" => start = value()?,
            other => bail!("unknown soak argument `{other}` (--seeds N, --strategy S, --start K)"),
        }
    }
    for (name, v) in [("--seeds", &seeds), ("--start", &start)] {
        if v.parse::<u64>().is_err() {
            bail!("{name} takes an integer, got {v:?}");
        }
    }
    let mut command = tools::cargo();
    command
        .args(["test", "--release", "-p", "ringside-tests", "--test", "soak", "--"])
        .args(["--ignored", "--exact", "soak", "--nocapture"])
        .env("RINGSIDE_SOAK_SEEDS", &seeds)
        .env("RINGSIDE_SOAK_STRATEGY", &strategy)
        .env("RINGSIDE_SOAK_START", &start);
    tools::run(&mut command)
}
