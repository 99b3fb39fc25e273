//! The `ringside sim` commands, run as a real process.

use std::path::Path;
use std::process::Command;

fn ringside(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ringside"))
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .output()
        .expect("run ringside")
}

#[test]
fn sim_run_prints_a_report_and_exits_zero_when_expectations_hold() {
    let out = ringside(&["sim", "run", "tests/scenarios/course-004-1-six-nodes-quorum-hint.toml"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("QUORUM write of K via A"), "{text}");
    assert!(text.contains("replicas [B, D]  hinted [C]"), "{text}");
    assert!(text.contains("result: PASS"), "{text}");
}

#[test]
fn sim_run_json_is_machine_readable() {
    let out = ringside(&[
        "sim",
        "run",
        "tests/scenarios/course-003-2-all-with-replica-down.toml",
        "--json",
        "--seed",
        "11",
    ]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(v["seed"], 11);
    assert_eq!(v["passed"], true);
    assert_eq!(v["anomalies"]["unavailable"], 1);
    assert_eq!(v["anomalies"]["stale-read"], 0);
    assert_eq!(v["trace_hash"].as_str().map(str::len), Some(16));
    assert!(v["replay"].as_str().unwrap().ends_with("--seed 11"));
    assert!(v["expectations"].as_array().unwrap().iter().all(|e| e["passed"] == true));
}

#[test]
fn history_exports_as_jepsen_edn() {
    let dir = std::env::temp_dir().join(format!("ringside-cli-edn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("h.edn");
    let out = ringside(&[
        "sim",
        "run",
        "tests/scenarios/course-004-2-read-repair.toml",
        "--history",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let edn = std::fs::read_to_string(&file).unwrap();
    let first = edn.lines().next().unwrap();
    assert_eq!(
        first,
        "{:type :invoke, :f :write, :process 10000, :time 1000000000, :index 0, :value [\"user:100\" \"v1\"]}"
    );
}

/// A scenario file shared with the other hosts' tests (`tests/fixtures/`).
fn fixture(name: &str) -> String {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(name);
    path.to_str().unwrap().to_string()
}

#[test]
fn failed_expectation_exits_one_with_the_replay_command() {
    let file = fixture("wrong-prediction.toml");
    let out = ringside(&["sim", "run", &file]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL w: ok: expected true, got false"), "{text}");
    assert!(text.contains(&format!("replay with: ringside sim run {file} --seed 9")), "{text}");
}

#[test]
fn broken_scenario_file_names_line_and_field() {
    let out = ringside(&["sim", "run", &fixture("rf-is-text.toml")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("rf-is-text.toml") && err.contains("line 4") && err.contains("rf"),
        "{err}"
    );

    let out = ringside(&["sim", "run", "does/not/exist.toml"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("cannot read scenario file does/not/exist.toml"), "{err}");
}
