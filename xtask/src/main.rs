//! `cargo xtask <task>`: the project's automation, in Rust so it runs wherever cargo does.
//!
//! Every task prints each command before it runs it and stops at the first failure with a
//! non-zero exit code.

use std::collections::{BTreeMap, BTreeSet};
use std::env;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

const USAGE: &str = "\
usage: cargo xtask <task> [args]

tasks:
  ci                       everything CI checks: fmt; clippy -D warnings on all targets with all
                           features (also the compile check of every bench) and on the libraries
                           with default features; tests with doctests and docs with warnings
                           denied (all features); the loom models
  loom [crate]             the loom models (all crates that have them, or one)
  bench [crate] [filter]   criterion groups in benches/ (all, or the group named after a crate,
                           optionally filtered by benchmark id)
  demo                     the main job: a 5-process leader election on 127.0.0.1
  release [--execute]      dry run by default: clean tree, CHANGELOGs, package every publishable
                           crate in dependency order, list the tags it would create
  help                     this text
";

#[derive(Debug)]
enum XtaskError {
    Usage(String),
    Failed {
        what: String,
        code: Option<i32>,
    },
    Io {
        what: String,
        source: std::io::Error,
    },
    Check(String),
}

impl fmt::Display for XtaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XtaskError::Usage(msg) => write!(f, "{msg}\n\n{USAGE}"),
            XtaskError::Failed { what, code } => match code {
                Some(c) => write!(f, "`{what}` failed with exit code {c}"),
                None => write!(f, "`{what}` was killed by a signal"),
            },
            XtaskError::Io { what, source } => write!(f, "{what}: {source}"),
            XtaskError::Check(msg) => write!(f, "{msg}"),
        }
    }
}

type Result<T = ()> = std::result::Result<T, XtaskError>;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let started = Instant::now();
    let outcome = run(&args);
    match outcome {
        Ok(()) => {
            eprintln!("xtask: ok ({:.1?})", started.elapsed());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::from(if matches!(e, XtaskError::Usage(_)) {
                2
            } else {
                1
            })
        }
    }
}

fn run(args: &[String]) -> Result {
    let root = project_root();
    env::set_current_dir(&root).map_err(|source| XtaskError::Io {
        what: format!("cd {}", root.display()),
        source,
    })?;
    let (task, rest) = match args.split_first() {
        Some((t, r)) => (t.as_str(), r),
        None => return Err(XtaskError::Usage("no task given".into())),
    };
    match task {
        "ci" => no_args(task, rest).and_then(|()| ci()),
        "loom" => loom(optional_crate(rest, 1)?),
        "bench" => bench(rest),
        "demo" => no_args(task, rest).and_then(|()| demo()),
        "release" => release(rest),
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(XtaskError::Usage(format!("unknown task `{other}`"))),
    }
}

fn no_args(task: &str, rest: &[String]) -> Result {
    if rest.is_empty() {
        Ok(())
    } else {
        Err(XtaskError::Usage(format!(
            "`{task}` takes no arguments, got {rest:?}"
        )))
    }
}

fn optional_crate(rest: &[String], max: usize) -> Result<Option<String>> {
    if rest.len() > max {
        return Err(XtaskError::Usage(format!("too many arguments: {rest:?}")));
    }
    match rest.first() {
        None => Ok(None),
        Some(name) => {
            let known = workspace_crates()?;
            let name = normalise_crate(name);
            if known.iter().any(|c| c.name == name) {
                Ok(Some(name))
            } else {
                let names: Vec<_> = known.iter().map(|c| c.name.as_str()).collect();
                Err(XtaskError::Usage(format!(
                    "unknown crate `{name}`; crates: {}",
                    names.join(", ")
                )))
            }
        }
    }
}

fn normalise_crate(name: &str) -> String {
    if name.starts_with("dsp-") {
        name.to_owned()
    } else {
        format!("dsp-{name}")
    }
}

fn project_root() -> PathBuf {
    let manifest = env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
    match manifest {
        Some(dir) => dir.parent().map(Path::to_path_buf).unwrap_or(dir),
        None => PathBuf::from("."),
    }
}

fn cargo() -> Command {
    Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Runs a command, echoing it first, failing on a non-zero exit.
fn exec(mut cmd: Command, envs: &[(&str, &str)]) -> Result {
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let shown = show(&cmd, envs);
    println!("\n==> {shown}");
    let step = Instant::now();
    let status = cmd.status().map_err(|source| XtaskError::Io {
        what: format!("could not start `{shown}`"),
        source,
    })?;
    println!("<== {shown} ({:.1?})", step.elapsed());
    if status.success() {
        Ok(())
    } else {
        Err(XtaskError::Failed {
            what: shown,
            code: status.code(),
        })
    }
}

fn show(cmd: &Command, envs: &[(&str, &str)]) -> String {
    let mut parts: Vec<String> = envs.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    let program = cmd.get_program().to_string_lossy().into_owned();
    // Show `cargo` rather than the toolchain's full path.
    let short = if program.ends_with("/cargo") {
        "cargo".to_owned()
    } else {
        program
    };
    parts.push(short);
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

fn cargo_with(args: &[&str]) -> Command {
    let mut c = cargo();
    c.args(args);
    c
}

fn ci() -> Result {
    exec(cargo_with(&["fmt", "--all", "--", "--check"]), &[])?;
    // Every optional feature is linted, tested and documented: features are additive, and a
    // feature nobody enables in CI is code nobody tests.
    exec(
        cargo_with(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--locked",
            "--",
            "-D",
            "warnings",
        ]),
        &[],
    )?;
    // The published libraries also build and lint with their default (minimal) features.
    exec(
        cargo_with(&[
            "clippy",
            "--workspace",
            "--exclude",
            "dsp-benches",
            "--exclude",
            "xtask",
            "--lib",
            "--locked",
            "--",
            "-D",
            "warnings",
        ]),
        &[],
    )?;
    exec(
        cargo_with(&["test", "--workspace", "--all-features", "--locked"]),
        &[],
    )?;
    exec(
        cargo_with(&[
            "doc",
            "--workspace",
            "--no-deps",
            "--all-features",
            "--locked",
        ]),
        &[("RUSTDOCFLAGS", "-D warnings")],
    )?;
    loom(None)
}

/// Crates whose sources contain loom models (`cfg(loom)` with a `loom` test).
fn loom_crates() -> Result<Vec<String>> {
    let mut out = Vec::new();
    for c in workspace_crates()? {
        let mut has = false;
        for dir in ["src", "tests"] {
            visit_rs(&c.dir.join(dir), &mut |text| {
                if text.contains("cfg(loom)") || text.contains("cfg(all(test, loom))") {
                    has = true;
                }
            })?;
        }
        if has {
            out.push(c.name);
        }
    }
    Ok(out)
}

fn visit_rs(dir: &Path, f: &mut dyn FnMut(&str)) -> Result {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            visit_rs(&path, f)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = fs::read_to_string(&path).map_err(|source| XtaskError::Io {
                what: format!("read {}", path.display()),
                source,
            })?;
            f(&text);
        }
    }
    Ok(())
}

/// Runs every test whose path contains `loom` (modules `loom_tests`, files `tests/loom*.rs` with
/// `loom_` test names) under `--cfg loom`, in its own target directory.
fn loom(only: Option<String>) -> Result {
    let crates = match only {
        Some(c) => vec![c],
        None => loom_crates()?,
    };
    if crates.is_empty() {
        println!("no loom models found");
        return Ok(());
    }
    let target = project_root().join("target").join("loom");
    let target = target.to_string_lossy().into_owned();
    let preemptions = env::var("LOOM_MAX_PREEMPTIONS").unwrap_or_else(|_| "2".into());
    // One invocation for all crates: the loom build of the dependencies happens once.
    let mut cmd = cargo_with(&[
        "test",
        "--locked",
        "--lib",
        "--tests",
        "--target-dir",
        &target,
    ]);
    for c in &crates {
        cmd.args(["-p", c]);
    }
    cmd.args(["--", "loom", "--test-threads=1"]);
    exec(
        cmd,
        &[
            ("RUSTFLAGS", "--cfg loom"),
            ("LOOM_MAX_PREEMPTIONS", preemptions.as_str()),
            ("CARGO_PROFILE_DEV_DEBUG", "false"),
        ],
    )?;
    Ok(())
}

fn bench(rest: &[String]) -> Result {
    if rest.len() > 2 {
        return Err(XtaskError::Usage(format!("too many arguments: {rest:?}")));
    }
    let mut cmd = cargo_with(&["bench", "--locked", "-p", "dsp-benches"]);
    if let Some(krate) = rest.first() {
        let group = krate.trim_start_matches("dsp-").to_owned();
        let available = bench_targets()?;
        if !available.contains(&group) {
            return Err(XtaskError::Usage(format!(
                "no bench group `{group}`; groups: {}",
                available.into_iter().collect::<Vec<_>>().join(", ")
            )));
        }
        cmd.args(["--bench", &group]);
    }
    if let Some(filter) = rest.get(1) {
        cmd.args(["--", filter.as_str()]);
    }
    exec(cmd, &[])
}

fn bench_targets() -> Result<BTreeSet<String>> {
    let dir = project_root().join("benches").join("benches");
    let entries = fs::read_dir(&dir).map_err(|source| XtaskError::Io {
        what: format!("read {}", dir.display()),
        source,
    })?;
    Ok(entries
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            (p.extension().is_some_and(|x| x == "rs"))
                .then(|| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
                .flatten()
        })
        .collect())
}

fn demo() -> Result {
    // The election demo (issue 8) is the main job once it exists; until then, a labelled tour.
    let election = project_root().join("crates/dsp-election/examples/demo.rs");
    if election.exists() {
        exec(
            cargo_with(&[
                "build",
                "--locked",
                "--release",
                "-p",
                "dsp-election",
                "--example",
                "demo",
            ]),
            &[],
        )?;
        exec(
            cargo_with(&[
                "run",
                "--locked",
                "--release",
                "-p",
                "dsp-election",
                "--example",
                "demo",
            ]),
            &[],
        )
    } else {
        println!("(the 5-process election demo has not landed yet; running the dsp-core tour)");
        exec(
            cargo_with(&["run", "--locked", "-p", "dsp-core", "--example", "tour"]),
            &[],
        )
    }
}

#[derive(Debug, Clone)]
struct Crate {
    name: String,
    version: String,
    dir: PathBuf,
    publish: bool,
    internal_deps: BTreeSet<String>,
}

fn workspace_crates() -> Result<Vec<Crate>> {
    let dir = project_root().join("crates");
    let entries = fs::read_dir(&dir).map_err(|source| XtaskError::Io {
        what: format!("read {}", dir.display()),
        source,
    })?;
    let mut crates = Vec::new();
    for entry in entries.flatten() {
        let manifest = entry.path().join("Cargo.toml");
        let Ok(text) = fs::read_to_string(&manifest) else {
            continue;
        };
        crates.push(parse_manifest(&text, entry.path())?);
    }
    crates.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(crates)
}

/// Reads the few fields xtask needs from a crate manifest (our manifests are regular enough that
/// a line scan is exact).
fn parse_manifest(text: &str, dir: PathBuf) -> Result<Crate> {
    let mut name = None;
    let mut publish = true;
    let mut section = String::new();
    let mut internal_deps = BTreeSet::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line.trim_matches(|c| c == '[' || c == ']').to_owned();
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        if section == "package" && key == "name" {
            name = Some(value.trim_matches('"').to_owned());
        }
        if section == "package" && key == "publish" && value == "false" {
            publish = false;
        }
        // Dev-dependencies order publishing too: a crate's tests must resolve from the registry
        // when it is published. (A cycle through dev-dependencies is reported as an error.)
        if section == "dependencies" || section == "dev-dependencies" {
            let dep = key.split('.').next().unwrap_or(key);
            if dep.starts_with("dsp-") {
                internal_deps.insert(dep.to_owned());
            }
        }
    }
    let name =
        name.ok_or_else(|| XtaskError::Check(format!("{}: no package name", dir.display())))?;
    Ok(Crate {
        name,
        version: workspace_version()?,
        dir,
        publish,
        internal_deps,
    })
}

fn workspace_version() -> Result<String> {
    let path = project_root().join("Cargo.toml");
    let text = fs::read_to_string(&path).map_err(|source| XtaskError::Io {
        what: format!("read {}", path.display()),
        source,
    })?;
    let mut in_pkg = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_pkg = line == "[workspace.package]";
        } else if in_pkg
            && line.starts_with("version")
            && let Some((_, v)) = line.split_once('=')
        {
            return Ok(v.trim().trim_matches('"').to_owned());
        }
    }
    Err(XtaskError::Check(
        "no version in [workspace.package]".into(),
    ))
}

/// Publishable crates, each after the crates it depends on.
fn publish_order(crates: &[Crate]) -> Result<Vec<Crate>> {
    let by_name: BTreeMap<_, _> = crates
        .iter()
        .filter(|c| c.publish)
        .map(|c| (c.name.clone(), c.clone()))
        .collect();
    let mut done = BTreeSet::new();
    let mut order = Vec::new();
    while order.len() < by_name.len() {
        let next = by_name.values().find(|c| {
            !done.contains(&c.name)
                && c.internal_deps
                    .iter()
                    .all(|d| done.contains(d) || !by_name.contains_key(d))
        });
        match next {
            Some(c) => {
                done.insert(c.name.clone());
                order.push(c.clone());
            }
            None => {
                return Err(XtaskError::Check(
                    "dependency cycle among publishable crates".into(),
                ));
            }
        }
    }
    Ok(order)
}

fn release(rest: &[String]) -> Result {
    let execute = match rest {
        [] => false,
        [flag] if flag == "--execute" => true,
        other => {
            return Err(XtaskError::Usage(format!(
                "release takes only --execute, got {other:?}"
            )));
        }
    };
    let status = Command::new("git")
        .args(["status", "--porcelain"])
        .output()
        .map_err(|source| XtaskError::Io {
            what: "git status".into(),
            source,
        })?;
    let dirty = String::from_utf8_lossy(&status.stdout).trim().to_owned();
    if !dirty.is_empty() {
        return Err(XtaskError::Check(format!(
            "the work tree is not clean:\n{dirty}"
        )));
    }
    let order = publish_order(&workspace_crates()?)?;
    let mut problems = Vec::new();
    for c in &order {
        let changelog = c.dir.join("CHANGELOG.md");
        match fs::read_to_string(&changelog) {
            Ok(text) if text.contains(&format!("## {}", c.version)) => {}
            Ok(_) => problems.push(format!(
                "{}: CHANGELOG.md has no `## {}` section",
                c.name, c.version
            )),
            Err(_) => problems.push(format!("{}: no CHANGELOG.md", c.name)),
        }
    }
    if !problems.is_empty() {
        return Err(XtaskError::Check(problems.join("\n")));
    }
    println!("publish order:");
    for (i, c) in order.iter().enumerate() {
        println!("  {:>2}. {} {}", i + 1, c.name, c.version);
    }
    // `cargo package` over the whole set resolves unpublished workspace dependencies locally.
    let mut cmd = cargo_with(&["package", "--locked", "--no-verify"]);
    for c in &order {
        cmd.args(["-p", &c.name]);
    }
    exec(cmd, &[])?;
    println!(
        "\ntags {}:",
        if execute {
            "to create"
        } else {
            "it would create"
        }
    );
    for c in &order {
        println!("  {}-v{}", c.name, c.version);
    }
    if execute {
        let mut cmd = cargo_with(&["publish", "--locked"]);
        for c in &order {
            cmd.args(["-p", &c.name]);
        }
        exec(cmd, &[])?;
        for c in &order {
            let mut tag = Command::new("git");
            tag.args(["tag", &format!("{}-v{}", c.name, c.version)]);
            exec(tag, &[])?;
        }
    } else {
        println!("\n(dry run: nothing published, no tags created; pass --execute to publish)");
    }
    Ok(())
}
