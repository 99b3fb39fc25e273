//! `ringside course …` run as a real process: a learner answering right and wrong (from a file
//! and from standard input), progress kept, an instructor grading a directory, an author's
//! checker refusing a broken exercise.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ringside-course-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn ringside(args: &[&str], progress: &Path, stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringside"))
        .args(args)
        .env("RINGSIDE_PROGRESS", progress)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ringside");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Variant 1 of the ownership exercise is RF 3: A owns 100 % before, D shows `?` while it joins
/// and owns 75 % once NORMAL.
const RIGHT: &str = "exercise = \"fourth-node-ownership\"\nvariant = 1\n[answers]\nbefore = \"100%\"\njoining = \"?\"\nafter = \"75%\"\n";

#[test]
fn a_learner_answering_from_a_file_is_graded_against_the_engine_and_progress_is_kept() {
    let dir = scratch("right");
    let progress = dir.join("progress.json");
    let answers = dir.join("alice.toml");
    std::fs::write(&answers, RIGHT).unwrap();
    let out = ringside(
        &["course", "answer", "fourth-node-ownership", "--answers", answers.to_str().unwrap()],
        &progress,
        "",
    );
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("3 of 3 right"), "{t}");
    assert!(t.contains("effective ownership counts every replica"), "the explanation: {t}");
    assert!(t.contains("ringside course scenario fourth-node-ownership --variant 1"), "{t}");
    let list = text(&ringside(&["course", "list"], &progress, ""));
    assert!(list.contains("fourth-node-ownership") && list.contains("done 3/3"), "{list}");
}

#[test]
fn a_wrong_prediction_typed_on_standard_input_is_marked_with_the_clusters_answer() {
    let dir = scratch("wrong");
    let progress = dir.join("progress.json");
    // The reference course's answer for the fourth node: 66.7 %.
    let out = ringside(
        &["course", "answer", "fourth-node-ownership", "--variant", "1"],
        &progress,
        "100%\n?\n66.7%\n",
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("2 of 3 right"), "{t}");
    assert!(t.contains("WRONG") && t.contains("you: 66.7%   the cluster: 75.0%"), "{t}");
    let saved = std::fs::read_to_string(&progress).unwrap();
    assert!(saved.contains("\"best\": 2"), "{saved}");
}

#[test]
fn show_draws_the_ring_and_lists_the_questions() {
    let dir = scratch("show");
    let out = ringside(
        &["course", "show", "fourth-node-ownership", "--variant", "1"],
        &dir.join("p"),
        "",
    );
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("A @25.0% → B @50.0% → C @75.0%"), "{t}");
    assert!(t.contains("The replication factor is 3."), "parameters filled in: {t}");
    assert!(t.contains("3. Once D is NORMAL"), "{t}");
    let out = ringside(&["course", "show", "no-such-exercise"], &dir.join("p"), "");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("there is no exercise \"no-such-exercise\""), "{}", text(&out));
}

#[test]
fn an_instructor_grades_a_directory_of_answer_files() {
    let dir = scratch("grade");
    std::fs::write(dir.join("alice.toml"), RIGHT).unwrap();
    std::fs::write(
        dir.join("bob.toml"),
        "exercise = \"fourth-node-ownership\"\nvariant = 1\n[answers]\nbefore = \"100%\"\nafter = \"66.7%\"\n",
    )
    .unwrap();
    let out = ringside(&["course", "grade", dir.to_str().unwrap()], &dir.join("p"), "");
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines[0], "learner,exercise,variant,question,given,expected,right");
    assert_eq!(lines.len(), 7, "a row per learner and question: {t}");
    assert!(
        t.contains("\"alice\",\"fourth-node-ownership\",1,\"after\",\"75%\",\"75.0%\",true"),
        "{t}"
    );
    assert!(
        t.contains("\"bob\",\"fourth-node-ownership\",1,\"after\",\"66.7%\",\"75.0%\",false"),
        "{t}"
    );
    assert!(
        t.contains("\"bob\",\"fourth-node-ownership\",1,\"joining\",\"\",\"?\",false"),
        "unanswered: {t}"
    );
    let json = text(&ringside(
        &["course", "grade", dir.to_str().unwrap(), "--format", "json"],
        &dir.join("p"),
        "",
    ));
    let rows: serde_json::Value = serde_json::from_str(&json).expect(&json);
    assert_eq!(rows.as_array().unwrap().len(), 6);
}

#[test]
fn the_checker_passes_the_shipped_course_and_fails_a_broken_exercise() {
    let dir = scratch("check");
    let out = ringside(&["course", "check"], &dir.join("p"), "");
    assert!(out.status.success(), "{}", text(&out));
    let broken = dir.join("broken.toml");
    std::fs::write(
        &broken,
        "name = \"b\"\n[exercise]\nmodule = \"m\"\ntitle = \"t\"\nprompt = \"p\"\n[cluster]\nnodes = [\"A\"]\nrf = 1\n\
         [[questions]]\nid = \"q\"\nask = \"?\"\nanswer = { at = \"never\", field = \"status\", node = \"A\" }\nexplanation = \"e\"\n",
    )
    .unwrap();
    let out = ringside(&["course", "check", broken.to_str().unwrap()], &dir.join("p"), "");
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("FAIL") && t.contains("no event labelled \"never\""), "{t}");
}
