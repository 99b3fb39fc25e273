//! `ringside course …`: exercises in the terminal. A learner lists them, reads one, predicts and
//! is graded against the engine's own run; an author checks a file; an instructor grades a
//! directory of answer files.

use anyhow::{Context, Result, bail};
use clap::{Subcommand, ValueEnum};
use ringside_core::course::{self, Answer, CATALOG, Exercise, Instance, by_id, describe_choice};
use ringside_core::id::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum CourseCommand {
    /// The exercises by module, with your progress.
    List {
        /// Where progress is kept (default: $RINGSIDE_PROGRESS, or
        /// ~/.local/share/ringside/progress.json).
        #[arg(long)]
        progress: Option<PathBuf>,
    },
    /// An exercise: the situation, the cluster drawn as text, and the questions.
    Show {
        /// An exercise id (see `ringside course list`) or an exercise file.
        exercise: String,
        /// Which variant (each gives other parameters and so other answers).
        #[arg(long, default_value_t = 0)]
        variant: u64,
    },
    /// Answer an exercise's questions (one per line on standard input, or from --answers), then
    /// see each verdict, the explanation and the command that replays the run.
    Answer {
        /// An exercise id or an exercise file.
        exercise: String,
        /// Which variant.
        #[arg(long, default_value_t = 0)]
        variant: u64,
        /// An answer file (TOML: `exercise`, `variant`, and `[answers]` by question id).
        #[arg(long)]
        answers: Option<PathBuf>,
        /// Where progress is kept.
        #[arg(long)]
        progress: Option<PathBuf>,
    },
    /// Print a variant's scenario file, to replay its run with `ringside sim run` or open it
    /// in the explorer.
    Scenario {
        /// An exercise id or an exercise file.
        exercise: String,
        /// Which variant.
        #[arg(long, default_value_t = 0)]
        variant: u64,
    },
    /// For authors: check exercise files (every variant runs, every answer is determined).
    Check {
        /// Exercise files or directories of them (default: the shipped course).
        files: Vec<PathBuf>,
    },
    /// For instructors: grade a directory of answer files, one table row per learner and
    /// question.
    Grade {
        /// A directory of answer files (`*.toml`, searched recursively).
        dir: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = GradeFormat::Csv)]
        format: GradeFormat,
    },
}

/// How `ringside course grade` prints.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum GradeFormat {
    /// Comma-separated values, one line per learner and question.
    Csv,
    /// A JSON array of the same rows.
    Json,
}

pub fn run(cmd: CourseCommand) -> Result<ExitCode> {
    match cmd {
        CourseCommand::List { progress } => list(&Progress::load(progress)?),
        CourseCommand::Show { exercise, variant } => {
            let ex = load(&exercise)?;
            let inst = ex.instance(variant)?;
            print!("{}", show(&ex, &inst));
            println!("\nAnswer with: ringside course answer {exercise} --variant {}", inst.variant);
            Ok(ExitCode::SUCCESS)
        }
        CourseCommand::Answer { exercise, variant, answers, progress } => {
            answer(&exercise, variant, answers.as_deref(), Progress::load(progress)?)
        }
        CourseCommand::Scenario { exercise, variant } => {
            print!("{}", load(&exercise)?.instance(variant)?.text);
            Ok(ExitCode::SUCCESS)
        }
        CourseCommand::Check { files } => check(&files),
        CourseCommand::Grade { dir, format } => grade(&dir, format),
    }
}

/// An exercise by id (the shipped course) or by file.
fn load(name: &str) -> Result<Exercise> {
    if let Some(entry) = by_id(name) {
        return Ok(Exercise::parse(entry.id, entry.text)?);
    }
    let path = Path::new(name);
    if !path.exists() {
        let ids: Vec<&str> = CATALOG.iter().map(|e| e.id).collect();
        bail!(
            "there is no exercise {name:?}: give a file, or one of {} (ringside course list)",
            ids.join(", ")
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read exercise file {}", path.display()))?;
    let id = path.file_stem().map_or(name.to_string(), |s| s.to_string_lossy().into_owned());
    Exercise::parse(&id, &text).with_context(|| path.display().to_string())
}

/// The exercise as text: title, prompt, the cluster (ring order), the timeline, the questions.
fn show(ex: &Exercise, inst: &Instance) -> String {
    let mut out = String::new();
    let e = &inst.exercise;
    let _ = writeln!(out, "{} — {}", e.module, e.title);
    if ex.variants() > 1 {
        let _ = writeln!(
            out,
            "variant {} (of 0–{}): {}",
            inst.variant,
            ex.variants() - 1,
            describe_choice(&inst.choice)
        );
    }
    let _ = writeln!(out, "\n{}\n", e.prompt.trim());
    let p = &inst.prepared;
    let s = &p.scenario;
    let _ = writeln!(
        out,
        "Cluster: {} nodes, RF {}, {} writes, strategy {}",
        p.names.len(),
        s.cluster.rf,
        match s.cluster.conflict {
            ringside_core::version::ConflictMode::Lww => "last-write-wins",
            ringside_core::version::ConflictMode::VectorClock => "vector-clock",
        },
        s.cluster.strategy
    );
    out.push_str(&ring_text(p));
    if !p.events.is_empty() {
        out.push_str("\nTimeline:\n");
        for ev in &p.events {
            let label = ev.label.as_deref().map(|l| format!("  [{l}]")).unwrap_or_default();
            let _ = writeln!(out, "  {:>7.3} s  {}{label}", ev.at.as_secs_f64(), ev.event);
        }
    }
    out.push_str("\nQuestions:\n");
    for (i, q) in inst.questions.iter().enumerate() {
        let _ = writeln!(out, "  {}. {}  ({})", i + 1, q.ask.trim(), q.id);
    }
    out
}

/// The initial ring as text: tokens clockwise with their owners, then each node's share of the
/// ring as primary.
fn ring_text(p: &ringside_core::scenario::Prepared) -> String {
    let mut out =
        String::from("Ring (clockwise from 0; a key belongs to the first token at or after it):\n");
    let tokens = p.ring.tokens();
    let owners = p.ring.owners();
    if tokens.len() <= 24 {
        let line: Vec<String> = tokens
            .iter()
            .zip(owners)
            .map(|(t, o)| {
                format!(
                    "{} @{:.1}%",
                    p.names[o.0 as usize],
                    ringside_core::explore::fraction(*t) * 100.0
                )
            })
            .collect();
        let _ = writeln!(out, "  {}", line.join(" → "));
    } else {
        let _ = writeln!(
            out,
            "  {} tokens ({} per node)",
            tokens.len(),
            tokens.len() / p.names.len().max(1)
        );
    }
    let per_node: Vec<String> = (0..p.names.len() as u32)
        .map(|i| {
            format!(
                "{} ({} token{})",
                p.names[i as usize],
                p.ring.tokens_of(NodeId(i)).len(),
                if p.ring.tokens_of(NodeId(i)).len() == 1 { "" } else { "s" }
            )
        })
        .collect();
    let _ = writeln!(out, "  nodes: {}", per_node.join(", "));
    out
}

/// An answer file.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct AnswerFile {
    exercise: String,
    #[serde(default)]
    variant: u64,
    #[serde(default)]
    learner: Option<String>,
    answers: BTreeMap<String, String>,
}

fn answer(
    name: &str,
    variant: u64,
    file: Option<&Path>,
    mut progress: Progress,
) -> Result<ExitCode> {
    let (name, variant, given) = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read answer file {}", path.display()))?;
            let f: AnswerFile = toml::from_str(&text)
                .with_context(|| format!("{} is not an answer file", path.display()))?;
            if f.exercise != name
                && Path::new(name).file_stem().is_none_or(|s| s != f.exercise.as_str())
            {
                bail!("{} answers exercise {:?}, not {name:?}", path.display(), f.exercise);
            }
            (name.to_string(), f.variant, Some(f.answers))
        }
        None => (name.to_string(), variant, None),
    };
    let ex = load(&name)?;
    let inst = ex.instance(variant)?;
    let given = match given {
        Some(g) => g,
        None => ask(&ex, &inst)?,
    };
    let solved = inst.solve(None);
    let mut right = 0;
    let mut out = String::new();
    for (q, a) in inst.questions.iter().zip(&solved.answers) {
        let a =
            a.as_ref().map_err(|e| anyhow::anyhow!("question {:?} has no answer: {e}", q.id))?;
        let v = a.verdict(given.get(&q.id).map(String::as_str));
        right += usize::from(v.right);
        let mark = if v.right { "RIGHT" } else { "WRONG" };
        let _ = writeln!(out, "\n{mark}  {}", q.ask.trim());
        let _ = writeln!(out, "       you: {}   the cluster: {}", v.given, v.expected);
        if let Some(form) = &v.unreadable {
            let _ = writeln!(out, "       (your answer could not be read: {form})");
        }
        for line in q.explanation.trim().lines() {
            let _ = writeln!(out, "       {line}");
        }
    }
    let total = inst.questions.len();
    let _ = writeln!(out, "\n{right} of {total} right.");
    let file = format!("{}-v{}.toml", inst.id, inst.variant);
    let _ = writeln!(
        out,
        "Replay the run: ringside course scenario {} --variant {} > {file} && ringside sim run {file}",
        inst.id, inst.variant
    );
    print!("{out}");
    progress.record(&inst.id, inst.variant, right, total);
    progress.save()?;
    Ok(if right == total { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Asks each question on the terminal (or reads one answer per line from standard input).
fn ask(ex: &Exercise, inst: &Instance) -> Result<BTreeMap<String, String>> {
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        print!("{}", show(ex, inst));
        println!();
    }
    let mut answers = BTreeMap::new();
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    for q in &inst.questions {
        if interactive {
            print!("{} [{}]\n> ", q.ask.trim(), q.answer.form());
            std::io::stdout().flush()?;
        }
        let Some(line) = lines.next() else { break };
        answers.insert(q.id.clone(), line?.trim().to_string());
    }
    Ok(answers)
}

fn check(files: &[PathBuf]) -> Result<ExitCode> {
    let mut exercises: Vec<(String, Result<Exercise>)> = Vec::new();
    if files.is_empty() {
        for e in CATALOG {
            exercises.push((e.path.to_string(), Exercise::parse(e.id, e.text).map_err(Into::into)));
        }
    }
    for f in files {
        let mut paths = Vec::new();
        collect_toml(f, &mut paths)?;
        for p in paths {
            exercises.push((p.display().to_string(), load(&p.display().to_string())));
        }
    }
    if exercises.is_empty() {
        bail!("no exercise files found");
    }
    let mut failed = 0;
    for (name, ex) in &exercises {
        match ex
            .as_ref()
            .map_err(ToString::to_string)
            .and_then(|ex| course::check(ex).map_err(|e| e.to_string()))
        {
            Ok(variants) => {
                let questions = variants.first().map_or(0, |v| v.answers.len());
                println!("ok    {name}: {} variant(s), {questions} question(s)", variants.len());
            }
            Err(e) => {
                failed += 1;
                println!("FAIL  {name}: {e}");
            }
        }
    }
    println!("{} checked, {failed} failed", exercises.len());
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn collect_toml(path: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for e in entries {
            collect_toml(&e, out)?;
        }
    } else if path.extension().is_some_and(|e| e == "toml") {
        out.push(path.to_path_buf());
    } else if !path.exists() {
        bail!("{} does not exist", path.display());
    }
    Ok(())
}

/// One graded answer.
#[derive(Debug, Serialize)]
struct Row {
    learner: String,
    exercise: String,
    variant: u64,
    question: String,
    given: String,
    expected: String,
    right: bool,
}

fn grade(dir: &Path, format: GradeFormat) -> Result<ExitCode> {
    let mut files = Vec::new();
    collect_toml(dir, &mut files)?;
    if files.is_empty() {
        bail!("{} holds no answer files (*.toml)", dir.display());
    }
    let mut rows = Vec::new();
    let mut solved: BTreeMap<(String, u64), (Instance, Vec<Answer>)> = BTreeMap::new();
    for path in &files {
        let text = std::fs::read_to_string(path)?;
        let f: AnswerFile = toml::from_str(&text)
            .with_context(|| format!("{} is not an answer file", path.display()))?;
        let learner = f.learner.clone().unwrap_or_else(|| {
            path.file_stem().map_or(String::new(), |s| s.to_string_lossy().into_owned())
        });
        let key = (f.exercise.clone(), f.variant);
        if !solved.contains_key(&key) {
            let ex = load(&f.exercise).with_context(|| path.display().to_string())?;
            let inst = ex.instance(f.variant)?;
            let answers = inst
                .solve(None)
                .answers
                .into_iter()
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| anyhow::anyhow!("{}: {e}", f.exercise))?;
            solved.insert(key.clone(), (inst, answers));
        }
        let (inst, answers) = &solved[&key];
        for (q, a) in inst.questions.iter().zip(answers) {
            let v = f.answers.get(&q.id).map(|g| a.grade(g));
            rows.push(Row {
                learner: learner.clone(),
                exercise: f.exercise.clone(),
                variant: inst.variant,
                question: q.id.clone(),
                given: v.as_ref().map_or(String::new(), |v| v.given.clone()),
                expected: a.to_string(),
                right: v.is_some_and(|v| v.right),
            });
        }
    }
    match format {
        GradeFormat::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        GradeFormat::Csv => {
            println!("learner,exercise,variant,question,given,expected,right");
            let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
            for r in &rows {
                println!(
                    "{},{},{},{},{},{},{}",
                    q(&r.learner),
                    q(&r.exercise),
                    r.variant,
                    q(&r.question),
                    q(&r.given),
                    q(&r.expected),
                    r.right
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn list(progress: &Progress) -> Result<ExitCode> {
    let mut modules: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for e in CATALOG {
        let ex = Exercise::parse(e.id, e.text)?;
        let inst = ex.instance(0)?;
        modules
            .entry(inst.exercise.module.clone())
            .or_default()
            .push((e.id.to_string(), inst.exercise.title.clone()));
    }
    let done = progress.exercises.values().filter(|p| p.best == p.total).count();
    println!("{} exercises, {done} done ({})", CATALOG.len(), progress.path.display());
    for (module, exercises) in &modules {
        println!("\n{module}");
        for (id, title) in exercises {
            let mark = match progress.exercises.get(id) {
                Some(p) if p.best == p.total => format!("done {}/{}", p.best, p.total),
                Some(p) => format!("{}/{}", p.best, p.total),
                None => String::new(),
            };
            println!("  {id:<36} {title:<60} {mark}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A learner's progress: the best score per exercise.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Progress {
    #[serde(skip)]
    path: PathBuf,
    exercises: BTreeMap<String, Score>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Score {
    best: usize,
    total: usize,
    variants: Vec<u64>,
}

impl Progress {
    fn load(path: Option<PathBuf>) -> Result<Progress> {
        let path = path
            .or_else(|| std::env::var_os("RINGSIDE_PROGRESS").map(PathBuf::from))
            .or_else(|| {
                std::env::var_os("HOME")
                    .map(|h| PathBuf::from(h).join(".local/share/ringside/progress.json"))
            })
            .unwrap_or_else(|| PathBuf::from("ringside-progress.json"));
        let mut p: Progress = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).with_context(|| {
                format!("{} is not a progress file (delete it to start over)", path.display())
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Progress::default(),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        p.path = path;
        Ok(p)
    }

    fn record(&mut self, id: &str, variant: u64, right: usize, total: usize) {
        let s = self.exercises.entry(id.to_string()).or_insert(Score {
            best: 0,
            total,
            variants: vec![],
        });
        s.best = s.best.max(right);
        s.total = total;
        if !s.variants.contains(&variant) {
            s.variants.push(variant);
        }
    }

    fn save(&self) -> Result<()> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(self)?)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.path)
            .with_context(|| format!("cannot write {}", self.path.display()))?;
        Ok(())
    }
}
