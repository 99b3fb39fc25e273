//! The simulator produces the same trace natively and in WebAssembly.
//!
//! The browser explorer replays seeds that native runs (tests, the `ringside sim` command) report,
//! so a seed must mean the same run everywhere. This test recomputes, in wasm, the reference
//! scenario's trace hash for each seed that a native run hashed, and compares.
//!
//! Run it with `cargo xtask test` (step `wasm-determinism`). That step prints the native hashes with
//! `cargo run -p ringside-core --example trace_hashes`, then compiles this test for
//! wasm32-unknown-unknown with them in `RINGSIDE_NATIVE_TRACE_HASHES` (`seed:hexhash,...`) and runs
//! it under Node with `wasm-bindgen-test-runner`. On native targets this file compiles to nothing.
#![cfg(target_arch = "wasm32")]

use wasm_bindgen_test::wasm_bindgen_test;

/// `seed:hexhash` pairs separated by commas, baked in at compile time by `cargo xtask test`.
const NATIVE_TRACE_HASHES: Option<&str> = option_env!("RINGSIDE_NATIVE_TRACE_HASHES");

#[wasm_bindgen_test]
fn reference_trace_hashes_match_native() {
    let Some(encoded) = NATIVE_TRACE_HASHES else {
        panic!(
            "RINGSIDE_NATIVE_TRACE_HASHES was not set when this test was compiled, so there is \
             nothing to compare with: run it through `cargo xtask test`, which computes the native \
             hashes first"
        );
    };
    let native = parse_native_hashes(encoded);
    assert!(!native.is_empty(), "RINGSIDE_NATIVE_TRACE_HASHES is empty");

    let mismatches: Vec<String> = native
        .iter()
        .filter_map(|&(seed, native_hash)| {
            let wasm_hash = ringside_core::sim::reference_trace_hash(seed);
            (wasm_hash != native_hash)
                .then(|| format!("seed {seed}: native {native_hash:016x}, wasm {wasm_hash:016x}"))
        })
        .collect();
    assert!(
        mismatches.is_empty(),
        "the simulator is not deterministic across platforms:\n{}",
        mismatches.join("\n")
    );
}

fn parse_native_hashes(encoded: &str) -> Vec<(u64, u64)> {
    encoded
        .split(',')
        .filter(|pair| !pair.trim().is_empty())
        .map(|pair| {
            let (seed, hash) = pair
                .trim()
                .split_once(':')
                .unwrap_or_else(|| panic!("expected `seed:hexhash`, got `{pair}`"));
            let seed = seed.parse().unwrap_or_else(|_| panic!("bad seed in `{pair}`"));
            let hash = u64::from_str_radix(hash, 16)
                .unwrap_or_else(|_| panic!("bad hex hash in `{pair}`"));
            (seed, hash)
        })
        .collect()
}
