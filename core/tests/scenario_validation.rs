//! Bad scenario input is refused up front, before anything runs, with an error that names the
//! line and column of the offending key or value and says what to do instead. Each case here was
//! once accepted: it ran and passed with its expectation ignored, hung, or failed only at the end.

use ringside_core::scenario;

/// The first 7 lines of every case; events and tables are appended from line 8.
const BASE: &str = r#"name = "x"
duration = "20s"
[cluster]
nodes = ["A", "B", "C"]
rf = 3
[workload]
clients = 0
"#;

/// The error parsing and preparing `text` gives; panics when the scenario is accepted.
fn error_of(text: &str) -> String {
    match scenario::parse(text) {
        Err(e) => e.to_string(),
        Ok(s) => match scenario::prepare(s, text) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("scenario accepted, expected an error:\n{text}"),
        },
    }
}

/// Asserts the error of `BASE` + `tail` mentions `line L, column C` and every `needle`.
#[track_caller]
fn refused(tail: &str, line: usize, column: usize, needles: &[&str]) {
    let text = format!("{BASE}{tail}");
    let e = error_of(&text);
    let pos = format!("line {line}, column {column}");
    assert!(e.contains(&pos), "expected {pos:?} in the error: {e}");
    for n in needles {
        assert!(e.contains(n), "expected {n:?} in the error: {e}");
    }
    // Lower case, no trailing period (toml's own parse errors end in a newline).
    assert!(!e.trim_end().ends_with('.'), "trailing period: {e}");
}

#[test]
fn the_base_scenario_is_accepted() {
    let p = scenario::prepare(scenario::parse(BASE).unwrap(), BASE);
    assert!(p.is_ok(), "{p:?}");
}

#[test]
fn rf_larger_than_the_node_count_is_refused() {
    let text = BASE.replace("rf = 3", "rf = 5");
    let e = error_of(&text);
    assert!(e.contains("line 5, column 6"), "{e}");
    assert!(e.contains("cluster.rf 5 is larger than the 3 nodes"), "{e}");
}

#[test]
fn rf_zero_is_refused_with_its_position() {
    let e = error_of(&BASE.replace("rf = 3", "rf = 0"));
    assert!(e.contains("line 5, column 6") && e.contains("cluster.rf must be at least 1"), "{e}");
}

#[test]
fn a_read_at_any_is_refused() {
    refused(
        "[[events]]\nat = \"1s\"\nread = { node = \"A\", key = \"K\", cl = \"ANY\" }\n",
        10,
        38,
        &["ANY is a write-only level"],
    );
}

#[test]
fn a_workload_reading_at_any_is_refused() {
    refused("read_cl = \"ANY\"\n", 8, 11, &["workload.read_cl", "ANY is a write-only level"]);
}

#[test]
fn zero_durations_that_would_spin_or_fail_everything_are_refused() {
    for key in ["heartbeat_interval", "hint_replay_interval", "write_timeout", "read_timeout"] {
        let column = key.len() + 4;
        refused(&format!("[node]\n{key} = \"0s\"\n"), 9, column, &[&format!("node.{key} is zero")]);
    }
}

#[test]
fn zero_length_pauses_and_slow_gossip_are_refused() {
    refused(
        "[[events]]\nat = \"1s\"\npause = { node = \"B\", for = \"0s\" }\n",
        10,
        29,
        &["pause", "zero"],
    );
    refused(
        "[[events]]\nat = \"1s\"\nslow_gossip = { node = \"B\", for = \"0s\" }\n",
        10,
        35,
        &["slow_gossip", "zero"],
    );
}

#[test]
fn an_event_after_the_duration_is_refused() {
    refused(
        "[[events]]\nat = \"30s\"\ncrash = \"A\"\n",
        9,
        6,
        &["after the scenario's duration", "20s"],
    );
}

#[test]
fn an_expect_on_an_inspect_event_is_refused() {
    refused(
        "[[events]]\nat = \"1s\"\ninspect = true\nexpect = { ok = false }\n",
        11,
        1,
        &["`expect` applies to write, delete and read events", "expect_cluster"],
    );
}

#[test]
fn an_expect_cluster_on_a_write_event_is_refused() {
    refused(
        "[[events]]\nat = \"1s\"\nwrite = { node = \"A\", key = \"K\", value = \"v\", cl = \"ONE\" }\nexpect_cluster = { status = { A = \"DN\" } }\n",
        11,
        1,
        &["`expect_cluster` is not checked on write", "inspect"],
    );
}

#[test]
fn op_expectations_of_the_wrong_kind_are_refused() {
    // A write returns no values; `values = []` would always pass.
    refused(
        "[[events]]\nat = \"1s\"\nwrite = { node = \"A\", key = \"K\", value = \"v\", cl = \"ONE\" }\nexpect = { values = [] }\n",
        11,
        12,
        &["expect.values", "read"],
    );
    refused(
        "[[events]]\nat = \"1s\"\nread = { node = \"A\", key = \"K\", cl = \"ONE\" }\nexpect = { acks = [\"A\"] }\n",
        11,
        12,
        &["expect.acks", "replied"],
    );
    refused(
        "[[events]]\nat = \"1s\"\nread = { node = \"A\", key = \"K\", cl = \"ONE\" }\nexpect = { ok = true, error = \"timeout\" }\n",
        11,
        23,
        &["contradicts"],
    );
    refused(
        "[[events]]\nat = \"1s\"\nread = { node = \"A\", key = \"K\", cl = \"ONE\" }\nexpect = { error = \"late\" }\n",
        11,
        20,
        &["\"late\"", "unavailable", "timeout"],
    );
    refused(
        "[[events]]\nat = \"1s\"\nread = { node = \"A\", key = \"K\", cl = \"ONE\" }\nexpect = { replied = [\"Z\"] }\n",
        11,
        23,
        &["unknown node \"Z\""],
    );
}

#[test]
fn a_malformed_count_is_refused_when_parsing() {
    // Checked by `parse` alone, before any run.
    let text = format!("{BASE}[expect]\nlost_writes = \"about 3\"\n");
    let e = scenario::parse(&text).expect_err("malformed count accepted").to_string();
    assert!(e.contains("line 9, column 15") && e.contains("\"about 3\""), "{e}");
    refused("[expect]\nstale_reads = \">= x\"\n", 9, 15, &["\">= x\""]);
    refused("[expect]\nhints_stored = { A = \"lots\" }\n", 9, 22, &["\"lots\""]);
    refused(
        "[[events]]\nat = \"1s\"\ninspect = true\nexpect_cluster = { ghost_keys = \"some\" }\n",
        11,
        33,
        &["\"some\""],
    );
    refused("[expect]\ntimeouts = -1\n", 9, 12, &["negative"]);
}

#[test]
fn run_expectations_naming_unknown_nodes_or_bad_values_are_refused() {
    refused("[expect]\nhints_stored = { Z = 1 }\n", 9, 18, &["unknown node \"Z\""]);
    refused("[expect]\nstatus = { A = \"UP\" }\n", 9, 16, &["\"UP\"", "UN"]);
    refused("[expect]\nownership = { A = \"lots\" }\n", 9, 19, &["\"lots\"", "75%"]);
    refused("[expect]\nownership = { Q = \"50%\" }\n", 9, 15, &["unknown node \"Q\""]);
    refused(
        "[[events]]\nat = \"1s\"\ninspect = true\nexpect_cluster = { status = { Q = \"UN\" } }\n",
        11,
        31,
        &["unknown node \"Q\""],
    );
}

#[test]
fn partitions_naming_a_node_twice_or_empty_are_refused() {
    refused(
        "[[events]]\nat = \"1s\"\npartition = [[\"A\", \"B\"], [\"B\", \"C\"]]\n",
        10,
        27,
        &["\"B\"", "twice"],
    );
    refused("[[events]]\nat = \"1s\"\npartition = []\n", 10, 13, &["no groups"]);
    refused("[[events]]\nat = \"1s\"\npartition = [[\"A\"], []]\n", 10, 21, &["empty group"]);
}

#[test]
fn heal_false_and_inspect_false_are_refused() {
    // `heal = false` used to heal.
    refused("[[events]]\nat = \"1s\"\nheal = false\n", 10, 8, &["heal = true"]);
    refused("[[events]]\nat = \"1s\"\ninspect = false\n", 10, 11, &["inspect = true"]);
}

#[test]
fn op_fields_that_do_nothing_are_refused() {
    refused(
        "[[events]]\nat = \"1s\"\nread = { node = \"A\", key = \"K\", value = \"v\", cl = \"ONE\" }\n",
        10,
        33,
        &["value", "read"],
    );
    refused(
        "[[events]]\nat = \"1s\"\nread = { node = \"A\", key = \"K\", cl = \"ONE\", with_context = true }\n",
        10,
        45,
        &["with_context"],
    );
    refused(
        "[[events]]\nat = \"1s\"\nwrite = { node = \"A\", key = \"K\", cl = \"ONE\" }\n",
        10,
        9,
        &["a write needs a value"],
    );
    refused(
        "[[events]]\nat = \"1s\"\nwrite = { node = \"A\", key = \"\", value = \"v\", cl = \"ONE\" }\n",
        10,
        29,
        &["key is empty"],
    );
}

#[test]
fn events_with_no_or_two_actions_name_their_position() {
    refused("[[events]]\nat = \"1s\"\ncrash = \"A\"\nheal = true\n", 8, 1, &["exactly one action"]);
    refused("[[events]]\nat = \"1s\"\nlabel = \"nothing\"\n", 8, 1, &["found 0"]);
    refused("[[events]]\nat = \"1s\"\nloss = 1.5\n", 10, 8, &["between 0 and 1"]);
}

#[test]
fn cluster_settings_are_checked_with_their_position() {
    let e = error_of(&BASE.replace("rf = 3", "rf = 3\nnum_tokens = 0"));
    assert!(e.contains("line 6, column 14") && e.contains("num_tokens"), "{e}");
    let e = error_of(&BASE.replace("rf = 3", "rf = 3\ntokens = { Z = [1] }"));
    assert!(e.contains("line 6, column 12") && e.contains("unknown node \"Z\""), "{e}");
    let e = error_of(&BASE.replace("rf = 3", "rf = 3\nracks = { Z = \"r1\" }"));
    assert!(e.contains("line 6, column 11") && e.contains("unknown node \"Z\""), "{e}");
    let e = error_of(&BASE.replace("rf = 3", "rf = 3\ntokens = { A = [] }"));
    assert!(e.contains("line 6, column 16") && e.contains("no tokens"), "{e}");
    let e =
        error_of(&BASE.replace("rf = 3", "rf = 3\ntokens = { A = [\"key:\"] , B = [\"nope\"] }"));
    assert!(e.contains("line 6, column 32") && e.contains("\"nope\""), "{e}");
    let e = error_of(&BASE.replace("nodes = [\"A\", \"B\", \"C\"]", "nodes = []"));
    assert!(e.contains("line 4, column 9") && e.contains("cluster.nodes is empty"), "{e}");
}

#[test]
fn node_and_workload_numbers_are_checked() {
    refused("[node]\nphi_threshold = 0.0\n", 9, 17, &["phi_threshold"]);
    refused("[node]\nstream_mib_per_sec = -1.0\n", 9, 22, &["stream_mib_per_sec"]);
    let e = error_of(&BASE.replace("clients = 0", "clients = 2\nkeys = 0"));
    assert!(e.contains("line 8, column 8") && e.contains("workload.keys"), "{e}");
    let e = error_of(&BASE.replace("clients = 0", "clients = 2\nread_fraction = 2.0"));
    assert!(e.contains("line 8, column 17") && e.contains("read_fraction"), "{e}");
    refused("[network]\nloss = -0.1\n", 9, 8, &["network.loss"]);
    refused("[network.latency]\ntail_probability = 3.0\n", 9, 20, &["tail_probability"]);
}
