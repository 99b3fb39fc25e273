//! Each join strategy keeps its signature in `ringside sim compare` runs (docs/semantics.md §1,
//! "Join strategies the explorer compares"): `staged` shows nothing, `sync-dual-write` may only be
//! unavailable, and the flawed strategies still show the anomalies they are known for, so these
//! assertions fail if the checker or the harness goes blind as well as if a strategy regresses.
//!
//! The runs go through [`compare`], the library behind `ringside sim compare`, on a few seeds of
//! three inputs; a failure prints the comparison table and the command that replays it.

use ringside_core::compare::{Comparison, Lane, compare};
use ringside_core::membership::JoinStrategy::{self, *};
use ringside_core::presets::preset;
use ringside_core::scenario::{self, RunOptions};

/// Seeds of every input (the CLI's `--seed`).
const SEEDS: [u64; 3] = [1, 2, 3];

/// What a lane must show.
#[derive(Clone, Copy, Debug)]
enum Signature {
    /// No stale read and no lost write at any seed; unavailability and timeouts are allowed.
    Clean,
    /// At least one stale read over the seeds.
    StaleReads,
    /// At least one lost write over the seeds.
    LostWrites,
}

/// One scenario, the file the CLI replays it from, and the signature of each strategy run on it.
struct Input {
    file: &'static str,
    text: &'static str,
    signatures: &'static [(JoinStrategy, Signature)],
}

fn run(input: &Input) {
    let prepared = scenario::prepare(
        scenario::parse(input.text).unwrap_or_else(|e| panic!("{}: {e}", input.file)),
        input.text,
    )
    .unwrap_or_else(|e| panic!("{}: {e}", input.file));
    let strategies: Vec<JoinStrategy> = input.signatures.iter().map(|(s, _)| *s).collect();
    let runs: Vec<Comparison> = SEEDS
        .iter()
        .map(|&seed| {
            let options = RunOptions {
                seed: Some(seed),
                file: Some(input.file.to_string()),
                ..RunOptions::default()
            };
            compare(&prepared, &strategies, &options)
        })
        .collect();
    let replay = |c: &Comparison| {
        format!("ringside sim compare {} --seed {} --strategies all", input.file, c.seed)
    };
    let lanes = |s: JoinStrategy| runs.iter().map(move |c| (c, c.lane(s).expect("lane was run")));
    let total =
        |s: JoinStrategy, count: fn(&Lane) -> u64| lanes(s).map(|(_, l)| count(l)).sum::<u64>();
    let all_tables = || runs.iter().map(|c| format!("{c}")).collect::<Vec<_>>().join("\n");
    for &(strategy, signature) in input.signatures {
        match signature {
            Signature::Clean => {
                for (c, lane) in lanes(strategy) {
                    assert_eq!(
                        (lane.stale_reads, lane.lost_writes),
                        (0, 0),
                        "{strategy} on {} must show no stale read and no lost write:\n{c}\nreplay: {}",
                        input.file,
                        replay(c)
                    );
                }
            }
            Signature::StaleReads => assert!(
                total(strategy, |l| l.stale_reads) > 0,
                "{strategy} on {} no longer shows its stale reads over seeds {SEEDS:?}:\n{}",
                input.file,
                all_tables()
            ),
            Signature::LostWrites => assert!(
                total(strategy, |l| l.lost_writes) > 0,
                "{strategy} on {} no longer shows its lost writes over seeds {SEEDS:?}:\n{}",
                input.file,
                all_tables()
            ),
        }
    }
}

/// A join with settled gossip, just after a replica came back missing writes: `immediate` reads
/// its empty joiner; `sync-dual-write` reads its joiner too but must not count its reply (before
/// the fencing work it did, and served 8–23 stale reads per seed here).
#[test]
fn a_join_after_an_outage_staged_and_sync_dual_write_stay_correct_immediate_reads_stale() {
    run(&Input {
        file: "core/presets/join-staged.toml",
        text: preset("join-staged").expect("preset").text,
        signatures: &[
            (Staged, Signature::Clean),
            (SyncDualWrite, Signature::Clean),
            (Immediate, Signature::StaleReads),
        ],
    });
}

/// A replica cut off right after the joiner copied its ranges, while clients keep writing through
/// it at ONE: the cutover strategies lose the writes it acknowledged alone (PairDB); `staged` and
/// `sync-dual-write` demand the joiner's acknowledgement and fail those writes instead.
#[test]
fn a_coordinator_cut_off_mid_join_loses_writes_only_under_the_cutover_strategies() {
    run(&Input {
        file: "core/presets/dual-write-cutover.toml",
        text: preset("dual-write-cutover").expect("preset").text,
        signatures: &[
            (Staged, Signature::Clean),
            (SyncDualWrite, Signature::Clean),
            (DualWriteCutover, Signature::LostWrites),
            (StreamThenCutover, Signature::LostWrites),
        ],
    });
}

/// A coordinator whose gossip is slower than RING_DELAY (scylladb#2308): `pending-ranges` keeps
/// writing to the old owner after it streamed the range; `staged` and `sync-dual-write` push
/// every epoch to it and fence what it planned before (unfenced, `sync-dual-write` lost writes
/// here too: it wrote to the old replicas only after they had streamed the range).
#[test]
fn a_late_coordinator_loses_writes_under_pending_ranges_and_not_under_the_fenced_strategies() {
    run(&Input {
        file: "tests/scenarios/ring-delay-race.toml",
        text: include_str!("../scenarios/ring-delay-race.toml"),
        signatures: &[
            (Staged, Signature::Clean),
            (SyncDualWrite, Signature::Clean),
            (PendingRanges, Signature::LostWrites),
        ],
    });
}
