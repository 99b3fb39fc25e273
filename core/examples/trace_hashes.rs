//! Prints the simulator's reference trace hash for each seed on the command line (default
//! `1 2 3 42 1234`), one `seed hash` line per seed with the hash as 16 hex digits.
//!
//! `cargo xtask test` runs this natively and checks that wasm computes the same hashes
//! (`core/tests/wasm_determinism.rs`): `cargo run -p ringside-core --example trace_hashes -- 7 8`.

const DEFAULT_SEEDS: &[u64] = &[1, 2, 3, 42, 1234];

fn main() {
    let mut seeds = Vec::new();
    for arg in std::env::args().skip(1) {
        match arg.parse::<u64>() {
            Ok(seed) => seeds.push(seed),
            Err(_) => {
                eprintln!("trace_hashes: `{arg}` is not a seed (a whole number up to 2^64 - 1)");
                std::process::exit(2);
            }
        }
    }
    if seeds.is_empty() {
        seeds.extend_from_slice(DEFAULT_SEEDS);
    }
    for seed in seeds {
        let hash = ringside_core::sim::reference_trace_hash(seed);
        println!("{seed} {hash:016x}");
    }
}
