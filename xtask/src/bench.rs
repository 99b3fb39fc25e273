//! `cargo xtask bench`: the criterion benchmarks of the engine.

use crate::{project_root, tools};
use anyhow::Result;

/// Runs `cargo bench -p ringside-core`, with `args` appended (a `--bench NAME` or a filter).
pub fn run(args: &[String]) -> Result<()> {
    tools::run(tools::cargo().args(["bench", "-p", "ringside-core"]).args(args))?;
    let reports = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| project_root().join("target"))
        .join("criterion");
    println!(
        "xtask: criterion results are in {} (one directory per benchmark; \
         `new/estimates.json` holds the latest numbers)",
        reports.display()
    );
    Ok(())
}
