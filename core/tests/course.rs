//! The course: every shipped exercise is listed, checks clean and is answered by the engine; the
//! authors' checker refuses what would mislead a learner.

use ringside_core::course::{self, Answer, CATALOG, Exercise, ExerciseError};
use std::path::Path;

fn exercise(text: &str) -> Exercise {
    Exercise::parse("t", text).expect("parses")
}

/// A three-node LWW cluster with a write at `cl` after `down` crashed; the question is `q`.
fn quorum_exercise(cl: &str, down: &str, question: &str) -> String {
    format!(
        r#"name = "t"
duration = "90s"
[exercise]
module = "00 Test"
title = "t"
prompt = "p"
[cluster]
nodes = ["A", "B", "C"]
rf = 3
num_tokens = 4
conflict = "lww"
[workload]
clients = 0
[[events]]
at = "1s"
crash = "{down}"
[[events]]
at = "70s"
label = "w"
write = {{ node = "A", key = "k", value = "v", cl = "{cl}" }}
[[events]]
at = "75s"
label = "end"
inspect = true
{question}
"#
    )
}

#[test]
fn every_exercise_file_is_in_the_catalog() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("course");
    let mut files = Vec::new();
    for module in std::fs::read_dir(&dir).unwrap() {
        let module = module.unwrap().path();
        for f in std::fs::read_dir(&module).unwrap() {
            let f = f.unwrap().path();
            if f.extension().is_some_and(|e| e == "toml") {
                let rel = f.strip_prefix(&dir).unwrap().display().to_string();
                files.push(rel);
            }
        }
    }
    files.sort();
    let mut listed: Vec<String> = CATALOG.iter().map(|e| e.path.to_string()).collect();
    listed.sort();
    assert_eq!(files, listed, "core/course/ and course::CATALOG differ");
}

#[test]
fn every_shipped_exercise_checks_clean() {
    let mut failures = Vec::new();
    for e in CATALOG {
        let result = Exercise::parse(e.id, e.text).and_then(|ex| course::check(&ex));
        if let Err(err) = result {
            failures.push(format!("{}: {err}", e.path));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn answers_come_from_the_run_not_the_file() {
    let q = "[[questions]]\nid = \"ok\"\nask = \"?\"\nanswer = { op = \"w\", field = \"ok\" }\nexplanation = \"e\"\n\
             [[questions]]\nid = \"err\"\nask = \"?\"\nanswer = { op = \"w\", field = \"error\" }\nexplanation = \"e\"\n\
             [[questions]]\nid = \"status\"\nask = \"?\"\nanswer = { at = \"end\", field = \"status\", node = \"C\" }\nexplanation = \"e\"\n";
    let solved = |cl: &str| {
        let ex = exercise(&quorum_exercise(cl, "C", q));
        let inst = ex.instance(0).unwrap();
        inst.solve(None).answers.into_iter().map(Result::unwrap).collect::<Vec<_>>()
    };
    // One replica of three down: QUORUM succeeds, ALL is refused up front.
    assert_eq!(
        solved("QUORUM"),
        vec![Answer::Bool(true), Answer::Word("none".into()), Answer::Word("DN".into())]
    );
    assert_eq!(
        solved("ALL"),
        vec![Answer::Bool(false), Answer::Word("unavailable".into()), Answer::Word("DN".into())]
    );
}

#[test]
fn variants_fill_in_the_parameters_and_change_the_answers() {
    let text = quorum_exercise(
        "{{cl}}",
        "C",
        "[params]\ncl = [\"ONE\", \"ALL\"]\n[[questions]]\nid = \"ok\"\nask = \"At {{cl}}?\"\nanswer = { op = \"w\", field = \"ok\" }\nexplanation = \"e\"\n",
    );
    let ex = exercise(&text);
    assert_eq!(ex.variants(), 2);
    let checked = course::check(&ex).unwrap();
    assert_eq!(checked[0].answers[0].1, Answer::Bool(true));
    assert_eq!(checked[1].answers[0].1, Answer::Bool(false));
    assert_eq!(ex.instance(1).unwrap().questions[0].ask, "At ALL?");
    assert_eq!(ex.instance(3).unwrap().variant, 1, "variant numbers wrap around");
}

fn refusal(text: &str) -> String {
    match Exercise::parse("t", text).and_then(|ex| course::check(&ex)) {
        Ok(_) => panic!("the checker accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_checker_refuses_an_answer_that_message_timing_decides() {
    // All three up at QUORUM: which two replicas acknowledge first depends on latency.
    let text = quorum_exercise(
        "QUORUM",
        "Z",
        "[[questions]]\nid = \"acks\"\nask = \"?\"\nanswer = { op = \"w\", field = \"acks\" }\nexplanation = \"e\"\n",
    )
    .replace("crash = \"Z\"", "inspect = true");
    let e = refusal(&text);
    assert!(e.contains("not determined") && e.contains("acks"), "{e}");
}

#[test]
fn the_checker_refuses_what_would_pass_vacuously_or_mislead() {
    let ask = |answer: &str| {
        format!("[[questions]]\nid = \"q\"\nask = \"?\"\nanswer = {answer}\nexplanation = \"e\"\n")
    };
    // A moment after the end of the run.
    let e = refusal(&quorum_exercise(
        "ONE",
        "C",
        &ask("{ at = \"later\", field = \"status\", node = \"A\" }"),
    ));
    assert!(e.contains("no event labelled \"later\""), "{e}");
    // A field that does not apply: hinted of a read.
    let text = quorum_exercise("ONE", "C", &ask("{ op = \"w\", field = \"values\" }"));
    assert!(refusal(&text).contains("which is a write"));
    // No question at all.
    assert!(refusal(&quorum_exercise("ONE", "C", "")).contains("no [[questions]]"));
    // A parameter never used, one used but not declared, one with no value.
    let q = ask("{ op = \"w\", field = \"ok\" }");
    assert!(
        refusal(&quorum_exercise("ONE", "C", &format!("[params]\nrf = [3, 5]\n{q}")))
            .contains("never used")
    );
    assert!(refusal(&quorum_exercise("{{cl}}", "C", &q)).contains("does not list \"cl\""));
    assert!(
        refusal(&quorum_exercise("{{cl}}", "C", &format!("[params]\ncl = []\n{q}")))
            .contains("no value")
    );
    // Variants that change nothing a question asks.
    let text = quorum_exercise("{{cl}}", "C", &format!("[params]\ncl = [\"ONE\", \"TWO\"]\n{q}"));
    assert!(refusal(&text).contains("same answers"), "{}", refusal(&text));
    // A variant that is not a valid scenario names its parameters.
    let text = quorum_exercise("{{cl}}", "C", &format!("[params]\ncl = [\"ONE\", \"MOST\"]\n{q}"));
    let e = refusal(&text);
    assert!(e.contains("variant 1 (cl=MOST)") && e.contains("MOST"), "{e}");
}

#[test]
fn an_error_names_the_question() {
    let e = ExerciseError::Question { id: "acks".into(), why: "x".into() };
    assert_eq!(e.to_string(), "question \"acks\": x");
}
