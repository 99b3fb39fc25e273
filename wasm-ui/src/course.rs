//! Course mode: the exercise panel (predict, run, see what the cluster did and why), the course
//! menu by module with progress, and progress kept in the browser's localStorage.

use crate::gallery::Dialog;
use crate::run::ExerciseRun;
use crate::state::{Selection, use_explorer};
use crate::url::{RunSpec, Source};
use leptos::prelude::*;
use ringside_core::Instant;
use ringside_core::course::{CATALOG, Exercise, QuestionSpec, Verdict};
use ringside_core::scenario::ScenarioReport;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The localStorage key of the learner's progress.
const PROGRESS_KEY: &str = "ringside-course-progress";

/// Best score per exercise id: (right, questions).
type Progress = BTreeMap<String, (usize, usize)>;

fn load_progress() -> Progress {
    let storage = window().local_storage().ok().flatten();
    let text = storage.and_then(|s| s.get_item(PROGRESS_KEY).ok().flatten()).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split(' ');
            let id = parts.next()?.to_string();
            let right = parts.next()?.parse().ok()?;
            let total = parts.next()?.parse().ok()?;
            Some((id, (right, total)))
        })
        .collect()
}

fn save_progress(p: &Progress) {
    let text: Vec<String> = p.iter().map(|(id, (r, t))| format!("{id} {r} {t}")).collect();
    if let Some(s) = window().local_storage().ok().flatten() {
        let _ = s.set_item(PROGRESS_KEY, &text.join("\n"));
    }
}

/// A graded question: the learner's verdict and the run it was graded against.
#[derive(Clone)]
struct Graded {
    verdicts: Vec<Verdict>,
    report: Arc<ScenarioReport>,
}

/// The exercise panel, while the run is an exercise.
#[component]
pub fn ExercisePanel() -> impl IntoView {
    let ex = use_explorer();
    move || ex.run.exercise.get().map(|run| view! { <ExerciseView run/> })
}

#[component]
fn ExerciseView(run: Arc<ExerciseRun>) -> impl IntoView {
    let ex = use_explorer();
    let inst = &run.instance;
    let answers = RwSignal::new(BTreeMap::<String, String>::new());
    let graded = RwSignal::new(None::<Graded>);
    let variants = run.exercise.variants();
    let variant = inst.variant;
    let id = inst.id.clone();
    let check = {
        let run = run.clone();
        move |_| {
            let solved = run.instance.solve(None);
            let given = answers.get_untracked();
            let verdicts: Vec<Verdict> = run
                .instance
                .questions
                .iter()
                .zip(&solved.answers)
                .map(|(q, a)| match a {
                    Ok(a) => a.verdict(given.get(&q.id).map(String::as_str)),
                    Err(e) => Verdict {
                        right: false,
                        given: given.get(&q.id).cloned().unwrap_or_default(),
                        expected: format!("(no answer: {e})"),
                        unreadable: None,
                    },
                })
                .collect();
            let right = verdicts.iter().filter(|v| v.right).count();
            let mut progress = load_progress();
            let best = progress.get(&run.instance.id).map_or(0, |(r, _)| *r).max(right);
            progress.insert(run.instance.id.clone(), (best, verdicts.len()));
            save_progress(&progress);
            graded.set(Some(Graded { verdicts, report: Arc::new(solved.report) }));
        }
    };
    let next_variant = {
        let id = id.clone();
        move |_| {
            ex.load(RunSpec {
                source: Source::Exercise {
                    id: id.clone(),
                    variant: (variant + 1) % variants.max(1),
                },
                ..RunSpec::preset("")
            })
        }
    };
    let score = move || {
        graded.with(|g| {
            g.as_ref().map(|g| {
                let right = g.verdicts.iter().filter(|v| v.right).count();
                format!("{right} of {} right", g.verdicts.len())
            })
        })
    };
    let questions = inst
        .questions
        .iter()
        .enumerate()
        .map(|(i, q)| view! { <QuestionView index=i question=q.clone() run=run.clone() answers graded/> })
        .collect_view();
    view! {
        <section id="exercise" class="panel exercise" data-exercise=id.clone() data-variant=variant>
            <div class="panel-head">
                <h2>{inst.exercise.module.clone()}" · exercise"</h2>
                <button id="open-course" on:click=move |_| ex.view.course.set(true)>"All exercises"</button>
            </div>
            <h3>{inst.exercise.title.clone()}</h3>
            <p class="meta">
                {if variants > 1 { format!("variant {variant} (of 0–{})", variants - 1) } else { "one variant".into() }}
            </p>
            <div class="prompt">
                {inst.exercise.prompt.split("\n\n").map(|p| view! { <p>{p.split_whitespace().collect::<Vec<_>>().join(" ")}</p> }).collect_view()}
            </div>
            <ol class="questions">{questions}</ol>
            <div class="form-row">
                <button id="exercise-check" class="primary" on:click=check>"Run and check"</button>
                <button id="exercise-next" title="The same exercise with other parameters, and so other answers"
                    on:click=next_variant disabled=variants < 2>"Another variant"</button>
                <output id="exercise-score">{score}</output>
            </div>
        </section>
    }
}

/// One question: the learner's answer, then the verdict, the cluster's answer and why.
#[component]
fn QuestionView(
    index: usize,
    question: QuestionSpec,
    run: Arc<ExerciseRun>,
    answers: RwSignal<BTreeMap<String, String>>,
    graded: RwSignal<Option<Graded>>,
) -> impl IntoView {
    let ex = use_explorer();
    let qid = question.id.clone();
    let value = {
        let qid = qid.clone();
        move || answers.with(|a| a.get(&qid).cloned().unwrap_or_default())
    };
    let set = {
        let qid = qid.clone();
        move |text: String| {
            answers.update(|a| {
                a.insert(qid.clone(), text);
            })
        }
    };
    // Node answers: a button per node toggles it in the text.
    let pick = question.answer.expects_nodes().then(|| {
        let names = run.instance.prepared.names.clone();
        let value = value.clone();
        let set = set.clone();
        names
            .into_iter()
            .map(|n| {
                let value = value.clone();
                let set = set.clone();
                let n2 = n.clone();
                let on = {
                    let value = value.clone();
                    let n = n.clone();
                    move || value().split(|c: char| c == ',' || c.is_whitespace()).any(|w| w == n)
                };
                view! {
                    <button class=move || if on() { "pick on" } else { "pick" } data-node=n.clone()
                        on:click=move |_| {
                            let mut list: Vec<String> = value()
                                .split(|c: char| c == ',' || c.is_whitespace())
                                .filter(|w| !w.is_empty() && *w != "none")
                                .map(str::to_string)
                                .collect();
                            if let Some(i) = list.iter().position(|w| *w == n2) {
                                list.remove(i);
                            } else {
                                list.push(n2.clone());
                            }
                            set(if list.is_empty() { "none".into() } else { list.join(", ") });
                        }>{n.clone()}</button>
                }
            })
            .collect_view()
    });
    let verdict = move || graded.with(|g| g.as_ref().and_then(|g| g.verdicts.get(index).cloned()));
    let explanation = question.explanation.clone();
    let show = {
        let run = run.clone();
        let question = question.clone();
        move |_| {
            let Some(report) = graded.with_untracked(|g| g.as_ref().map(|g| g.report.clone()))
            else {
                return;
            };
            show_moment(&run, &question, &report, ex);
        }
    };
    view! {
        <li class="question" data-question=qid.clone()>
            <p class="ask">{question.ask.trim().to_string()}</p>
            <div class="form-row">
                <input class="answer" data-question=qid.clone() placeholder=question.answer.form()
                    prop:value=value.clone() on:input=move |e| set(event_target_value(&e))/>
                {pick}
            </div>
            {move || verdict().map(|v| {
                let show = show.clone();
                view! {
                    <div class=if v.right { "verdict right" } else { "verdict wrong" }>
                        <strong>{if v.right { "Right" } else { "Wrong" }}</strong>
                        {format!(" — you: {} · the cluster: {}", v.given, v.expected)}
                        {v.unreadable.map(|u| view! { <span class="meta">{format!(" ({u})")}</span> })}
                        <button class="show" on:click=show title="Jump to this moment and light what decided it">"Show"</button>
                    </div>
                    <p class="explanation">{explanation.split_whitespace().collect::<Vec<_>>().join(" ")}</p>
                }
            })}
        </li>
    }
}

/// Jumps to the moment a question is about and lights what decided it: the operation's messages
/// and replicas, the node asked about, or the end of the run.
fn show_moment(
    run: &ExerciseRun,
    q: &QuestionSpec,
    report: &ScenarioReport,
    ex: crate::state::Explorer,
) {
    if let Some(label) = &q.answer.op {
        let Some(outcome) = report.operations.iter().find(|o| &o.label == label) else { return };
        let key = run
            .instance
            .prepared
            .events
            .iter()
            .find(|e| e.label.as_ref() == Some(label))
            .and_then(|e| e.event.client_op().map(|(_, op)| op.key.clone()));
        let invoke =
            ex.run.full.with_untracked(|f| f.as_ref()?.invoke_at(outcome.at, key.as_deref()?));
        if let Some(i) = invoke {
            ex.select_op(i);
        } else {
            ex.jump(outcome.at);
        }
    } else if let Some(label) = &q.answer.at {
        if let Some(m) = report.moments.iter().find(|m| &m.label == label) {
            ex.jump(m.at);
            let node =
                q.answer.node.as_ref().and_then(|n| ex.run.names().iter().position(|x| x == n));
            if let Some(i) = node {
                ex.select(Selection::Node(ringside_core::NodeId(i as u32)));
            }
        }
    } else {
        ex.jump(ex.run.end.get_untracked());
    }
}

/// The course menu: modules, exercises, progress.
#[component]
pub fn CourseMenu() -> impl IntoView {
    let ex = use_explorer();
    let progress = RwSignal::new(Progress::new());
    // Read when opened, so answers given since show.
    Effect::new(move |_| {
        if ex.view.course.get() {
            progress.set(load_progress());
        }
    });
    let mut modules: BTreeMap<String, Vec<(&'static str, String, usize)>> = BTreeMap::new();
    for e in CATALOG {
        if let Ok(inst) = Exercise::parse(e.id, e.text).and_then(|x| x.instance(0)) {
            modules.entry(inst.exercise.module.clone()).or_default().push((
                e.id,
                inst.exercise.title.clone(),
                inst.questions.len(),
            ));
        }
    }
    let done = move || progress.with(|p| p.values().filter(|(r, t)| r == t).count());
    view! {
        <Dialog open=ex.view.course id="course" title="Course">
            <p class="hint small">
                {move || format!("{} exercises, {} done. Predict what the cluster does, then run the engine and see where your prediction and the cluster differ.", CATALOG.len(), done())}
            </p>
            {modules.clone().into_iter().map(|(module, list)| view! {
                <h3>{module}</h3>
                <ul class="course-list">
                    {list.into_iter().map(|(id, title, questions)| {
                        let mark = move || progress.with(|p| match p.get(id) {
                            Some((r, t)) if r == t => format!("✓ {r}/{t}"),
                            Some((r, t)) => format!("{r}/{t}"),
                            None => format!("{questions} questions"),
                        });
                        view! {
                            <li>
                                <button class="course-item" data-exercise=id on:click=move |_| {
                                    ex.load(RunSpec { source: Source::Exercise { id: id.to_string(), variant: 0 }, ..RunSpec::preset("") });
                                    ex.view.course.set(false);
                                }>{title}</button>
                                <span class="meta">{mark}</span>
                            </li>
                        }
                    }).collect_view()}
                </ul>
            }).collect_view()}
        </Dialog>
    }
}

/// Where an exercise opens: just before the first question's moment, so the learner sees the
/// situation but not the outcome.
pub fn opening_moment(run: &ExerciseRun) -> Instant {
    let first = run.instance.questions.iter().filter_map(|q| run.instance.moment_of(q)).min();
    first.map_or(Instant::ZERO, |t| {
        Instant::ZERO + t.saturating_sub(std::time::Duration::from_millis(1))
    })
}
