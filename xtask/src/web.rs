//! `cargo xtask web`: builds the explorer (wasm-ui) into `www/pkg`.
//!
//! Plain cargo plus the wasm-bindgen CLI rather than trunk: trunk downloads its own wasm-bindgen
//! and wasm-opt, which cannot work offline (see TOOLCHAIN.md).

use crate::project_root;
use crate::tools::{self, WASM_TARGET};
use anyhow::{Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

/// The cargo profile the bundle is built with (size-optimised; defined in the root Cargo.toml).
const PROFILE: &str = "wasm-release";
/// The name wasm-bindgen gives its outputs: `pkg/ringside_ui.js` and `pkg/ringside_ui_bg.wasm`.
const OUT_NAME: &str = "ringside_ui";

/// Where the built bundle is.
pub struct Bundle {
    pub js: PathBuf,
    pub wasm: PathBuf,
}

/// The directory served by `cargo xtask explore`.
pub fn www_dir() -> PathBuf {
    project_root().join("www")
}

/// Builds the bundle. Cargo decides whether the wasm is stale; wasm-bindgen (and wasm-opt) run
/// again only when cargo produced a newer wasm than the one in `www/pkg`.
pub fn build_bundle() -> Result<Bundle> {
    tools::ensure_wasm_target()?;
    let wasm_bindgen = tools::ensure_wasm_bindgen()?;

    tools::run(tools::cargo().args([
        "build",
        "-p",
        "ringside-ui",
        "--target",
        WASM_TARGET,
        "--profile",
        PROFILE,
    ]))?;
    let input = target_dir().join(WASM_TARGET).join(PROFILE).join("ringside-ui.wasm");

    let out_dir = www_dir().join("pkg");
    let bundle = Bundle {
        js: out_dir.join(format!("{OUT_NAME}.js")),
        wasm: out_dir.join(format!("{OUT_NAME}_bg.wasm")),
    };
    let up_to_date = bundle.js.is_file()
        && modified(&bundle.wasm).is_some_and(|output| Some(output) >= modified(&input));
    if up_to_date {
        println!("xtask: {} is up to date", out_dir.display());
    } else {
        tools::run(
            Command::new(&wasm_bindgen.bindgen)
                .args(["--target", "web", "--no-typescript", "--out-name", OUT_NAME])
                .arg("--out-dir")
                .arg(&out_dir)
                .arg(&input),
        )?;
        optimize_if_possible(&bundle.wasm);
    }
    report_sizes(&bundle)?;
    Ok(bundle)
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join("target"))
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|meta| meta.modified()).ok()
}

/// Runs wasm-opt when it is installed; the bundle works without it, so its absence is not an
/// error, and neither is a failure (old binaryen releases reject features rustc now enables).
fn optimize_if_possible(wasm: &Path) {
    let Some(wasm_opt) = tools::find_executable("wasm-opt") else {
        return;
    };
    let optimized = wasm.with_extension("opt.wasm");
    let mut command = Command::new(wasm_opt);
    command
        .args([
            "-Oz",
            // Features rustc enables by default for wasm32-unknown-unknown.
            "--enable-bulk-memory",
            "--enable-nontrapping-float-to-int",
            "--enable-sign-ext",
            "--enable-mutable-globals",
            "--enable-reference-types",
            "--enable-multivalue",
        ])
        .arg(wasm)
        .arg("-o")
        .arg(&optimized);
    match tools::run(&mut command).and_then(|()| {
        std::fs::rename(&optimized, wasm).context("could not replace the wasm with wasm-opt's")
    }) {
        Ok(()) => {}
        Err(error) => {
            let _ = std::fs::remove_file(&optimized);
            println!("xtask: warning: wasm-opt failed, keeping the unoptimised wasm: {error:#}");
        }
    }
}

fn report_sizes(bundle: &Bundle) -> Result<()> {
    let mut total = (0, 0);
    println!("xtask: bundle in {}", bundle.js.parent().unwrap_or(Path::new("")).display());
    for path in [&bundle.wasm, &bundle.js] {
        let bytes =
            std::fs::read(path).with_context(|| format!("could not read {}", path.display()))?;
        let gzipped = gzip_len(&bytes)?;
        total = (total.0 + bytes.len(), total.1 + gzipped);
        println!(
            "  {:<20} {:>8} raw  {:>8} gzipped",
            path.file_name().unwrap_or_default().to_string_lossy(),
            kib(bytes.len()),
            kib(gzipped)
        );
    }
    println!("  {:<20} {:>8} raw  {:>8} gzipped", "total", kib(total.0), kib(total.1));
    Ok(())
}

fn gzip_len(bytes: &[u8]) -> Result<usize> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes)?;
    Ok(encoder.finish()?.len())
}

fn kib(bytes: usize) -> String {
    format!("{:.1} KiB", bytes as f64 / 1024.0)
}
