//! The explorer's components.

use leptos::prelude::*;
use ringside_core::sim::reference_trace_hash;

/// The seed shown when the URL does not name one (`?seed=N`).
const DEFAULT_SEED: u64 = 42;

/// The whole page.
#[component]
pub fn App() -> impl IntoView {
    view! {
        <main>
            <h1>"Ringside explorer"</h1>
            <p class="tagline">"A Dynamo/Cassandra-style key-value engine, running in your browser."</p>
            <p>
                "Ringside's engine is a set of plain state machines: it never touches the network, "
                "a disk or a clock, so the same code runs in native nodes and, compiled to "
                "WebAssembly, in this page. A simulation is fully determined by its seed."
            </p>
            <DeterminismProbe/>
        </main>
    }
}

/// Runs the simulator's built-in reference scenario for a seed and shows the hash of its trace.
/// The same seed gives the same hash here and natively (`cargo xtask test` checks it); a
/// different hash would mean the browser is not replaying what a native run did.
#[component]
fn DeterminismProbe() -> impl IntoView {
    let (seed_text, set_seed_text) = signal(initial_seed().to_string());
    let seed = Memo::new(move |_| parse_seed(&seed_text.read()));
    let trace_hash = Memo::new(move |_| seed.get().map(reference_trace_hash));

    view! {
        <section class="probe">
            <h2>"Determinism probe"</h2>
            <p>
                "The reference scenario for this seed, simulated in WebAssembly, produced the trace "
                "hash below. Add "<code>"?seed=N"</code>" to the URL to start from another seed."
            </p>
            <label>
                "Seed"
                <input
                    id="seed"
                    type="text"
                    inputmode="numeric"
                    spellcheck="false"
                    prop:value=seed_text
                    on:input=move |event| set_seed_text.set(event_target_value(&event))
                />
            </label>
            <p>
                "Trace hash: "
                <output id="trace-hash">{move || trace_hash.get().map(format_trace_hash)}</output>
            </p>
            <Show when=move || seed.get().is_none()>
                <p class="error">"A seed is a whole number from 0 to 18446744073709551615."</p>
            </Show>
        </section>
    }
}

/// The seed from the page URL's `?seed=` query parameter, or [`DEFAULT_SEED`].
fn initial_seed() -> u64 {
    let query = window().location().search().unwrap_or_default();
    seed_from_query(&query).unwrap_or(DEFAULT_SEED)
}

fn seed_from_query(query: &str) -> Option<u64> {
    query
        .trim_start_matches('?')
        .split('&')
        .find_map(|pair| pair.strip_prefix("seed="))
        .and_then(parse_seed)
}

fn parse_seed(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// Hashes are shown as 16 hex digits, the way `core/examples/trace_hashes.rs` prints them.
fn format_trace_hash(hash: u64) -> String {
    format!("{hash:016x}")
}
