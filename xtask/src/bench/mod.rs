//! `cargo xtask bench`: the criterion benchmarks of the engine, (`cargo xtask bench native`) the
//! native cluster side by side with etcd and Redis, and (`cargo xtask bench web`) the browser
//! explorer in headless Chromium.

mod native;
mod web;

use crate::{project_root, tools};
use anyhow::Result;

/// `cargo xtask bench native [--quick] ...` runs the native cluster benchmarks (see
/// `bench/native.rs`), `cargo xtask bench web [--quick]` the browser benchmarks (see
/// `bench/web.rs`); anything else runs `cargo bench -p ringside-core` with `args` appended (a
/// `--bench NAME` or a filter).
pub fn run(args: &[String]) -> Result<()> {
    match args.first().map(String::as_str) {
        Some("native") => return native::run(&args[1..]),
        Some("web") => return web::run(&args[1..]),
        _ => {}
    }
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
