//! Running commands, and making sure the external tools the project needs are installed.
//!
//! CI starts from a clean clone on a machine that may have nothing but the Rust toolchain, so every
//! tool is checked here and installed when it can be (the wasm32 target through rustup, the
//! wasm-bindgen CLI through `cargo install`). When a tool cannot be installed the error says which
//! one and how to get it.

use crate::project_root;
use anyhow::{Context, Result, bail};
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

pub const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// A `cargo` command, using the same cargo binary that runs this xtask.
pub fn cargo() -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(project_root());
    command
}

/// Shell-like rendering of a command, for logs and error messages.
pub fn display(command: &Command) -> String {
    let mut text = String::new();
    for (key, value) in command.get_envs() {
        if let Some(value) = value {
            text.push_str(&format!("{}={} ", key.to_string_lossy(), value.to_string_lossy()));
        }
    }
    let program = command.get_program();
    // `$CARGO` is an absolute path; `cargo` reads better and means the same.
    if Path::new(program).file_stem() == Some(OsStr::new("cargo")) {
        text.push_str("cargo");
    } else {
        text.push_str(&program.to_string_lossy());
    }
    for arg in command.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

/// Runs a command with inherited stdio and fails if it exits unsuccessfully.
pub fn run(command: &mut Command) -> Result<()> {
    let shown = display(command);
    println!("$ {shown}");
    let status = command.status().with_context(|| format!("could not start `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(())
}

/// Runs a command and returns its stdout; stderr passes through.
pub fn output(command: &mut Command) -> Result<String> {
    let shown = display(command);
    let output = command
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("could not start `{shown}`"))?;
    if !output.status.success() {
        bail!("`{shown}` failed ({})", output.status);
    }
    String::from_utf8(output.stdout).with_context(|| format!("`{shown}` printed non-UTF-8"))
}

/// What a command printed, line by line (stdout and stderr interleaved as they arrived).
pub struct Echoed {
    pub success: bool,
    pub lines: Vec<String>,
}

/// Runs a command, echoing its stdout and stderr as they come while also keeping every line, so
/// test counts can be read from the output afterwards.
pub fn run_echoed(command: &mut Command) -> Result<Echoed> {
    let shown = display(command);
    println!("$ {shown}");
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("could not start `{shown}`"))?;
    let lines = Arc::new(Mutex::new(Vec::new()));
    let stdout = echo_lines(child.stdout.take().expect("piped"), false, lines.clone());
    let stderr = echo_lines(child.stderr.take().expect("piped"), true, lines.clone());
    let status = child.wait()?;
    stdout.join().expect("stdout echo thread panicked");
    stderr.join().expect("stderr echo thread panicked");
    let lines = std::mem::take(&mut *lines.lock().expect("no panics while holding the lock"));
    Ok(Echoed { success: status.success(), lines })
}

fn echo_lines(
    stream: impl Read + Send + 'static,
    to_stderr: bool,
    sink: Arc<Mutex<Vec<String>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).split(b'\n') {
            let Ok(line) = line else { break };
            let line = String::from_utf8_lossy(&line).into_owned();
            if to_stderr {
                let _ = writeln!(std::io::stderr(), "{line}");
            } else {
                let _ = writeln!(std::io::stdout(), "{line}");
            }
            sink.lock().expect("no panics while holding the lock").push(line);
        }
    })
}

/// Finds an executable on `PATH`, or in cargo's bin directory (where `cargo install` puts it even
/// when that directory is not on `PATH`).
pub fn find_executable(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(cargo_bin_dir())
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn cargo_bin_dir() -> Option<PathBuf> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")))?;
    Some(home.join("bin"))
}

/// Makes sure the wasm32 standard library is installed, adding it through rustup if needed.
pub fn ensure_wasm_target() -> Result<()> {
    let sysroot = output(Command::new("rustc").args(["--print", "sysroot"]))?;
    let target_dir = Path::new(sysroot.trim()).join("lib/rustlib").join(WASM_TARGET);
    if target_dir.is_dir() {
        return Ok(());
    }
    println!("xtask: the {WASM_TARGET} target is missing; installing it with rustup");
    if find_executable("rustup").is_none() {
        bail!(
            "the {WASM_TARGET} target is not installed and rustup is not available; \
             install the target for this toolchain ({})",
            sysroot.trim()
        );
    }
    run(Command::new("rustup").args(["target", "add", WASM_TARGET]))
        .context("could not install the wasm32 target")
}

/// The exact `wasm-bindgen` crate version in `Cargo.lock`: the CLI must match it exactly.
pub fn locked_wasm_bindgen_version() -> Result<String> {
    let lock_path = project_root().join("Cargo.lock");
    let lock = std::fs::read_to_string(&lock_path)
        .with_context(|| format!("could not read {}", lock_path.display()))?;
    // Each package is a `[[package]]` table whose `version` line follows its `name` line.
    let lines: Vec<&str> = lock.lines().map(str::trim).collect();
    lines
        .windows(2)
        .find(|pair| pair[0] == r#"name = "wasm-bindgen""#)
        .and_then(|pair| pair[1].strip_prefix("version = "))
        .map(|version| version.trim_matches('"').to_string())
        .with_context(|| format!("no wasm-bindgen package in {}", lock_path.display()))
}

/// Paths of the wasm-bindgen CLI tools, at the version `Cargo.lock` pins.
pub struct WasmBindgen {
    pub bindgen: PathBuf,
    pub test_runner: PathBuf,
}

/// Makes sure `wasm-bindgen` and `wasm-bindgen-test-runner` are installed at exactly the version
/// in `Cargo.lock`, installing them with `cargo install` otherwise (a few minutes, once).
pub fn ensure_wasm_bindgen() -> Result<WasmBindgen> {
    let wanted = locked_wasm_bindgen_version()?;
    if let Some(tools) = installed_wasm_bindgen(&wanted) {
        return Ok(tools);
    }
    println!(
        "xtask: wasm-bindgen CLI {wanted} is missing or a different version; installing it \
         (takes a few minutes, once)"
    );
    // No `--locked`: the registry mirror has been seen to lack one exact version from the CLI's
    // own lock file, and the unlocked install works (see TOOLCHAIN.md).
    run(cargo().args(["install", "wasm-bindgen-cli", "--version", &wanted]))
        .with_context(|| format!("could not install wasm-bindgen-cli {wanted}"))?;
    installed_wasm_bindgen(&wanted).with_context(|| {
        format!(
            "wasm-bindgen-cli {wanted} was installed but `wasm-bindgen --version` still does not \
             report {wanted}: is another wasm-bindgen earlier on PATH?"
        )
    })
}

fn installed_wasm_bindgen(wanted: &str) -> Option<WasmBindgen> {
    let bindgen = find_executable("wasm-bindgen")?;
    let test_runner = find_executable("wasm-bindgen-test-runner")?;
    let reported = Command::new(&bindgen).arg("--version").output().ok()?;
    // Prints e.g. "wasm-bindgen 0.2.100".
    let reported = String::from_utf8_lossy(&reported.stdout);
    let version = reported.split_whitespace().nth(1)?;
    (version == wanted).then_some(WasmBindgen { bindgen, test_runner })
}

/// Makes sure Node.js is available (the wasm tests run under it), installing it from Debian's
/// packages when running as root.
pub fn ensure_node() -> Result<PathBuf> {
    if let Some(node) = find_executable("node") {
        return Ok(node);
    }
    let is_root = output(Command::new("id").arg("-u")).is_ok_and(|uid| uid.trim() == "0");
    if is_root && find_executable("apt-get").is_some() {
        println!("xtask: node is missing; installing Debian's nodejs package");
        run(Command::new("apt-get").args(["install", "-y", "nodejs"]))
            .or_else(|_| {
                run(Command::new("apt-get").arg("update"))?;
                run(Command::new("apt-get").args(["install", "-y", "nodejs"]))
            })
            .context("could not install nodejs with apt-get")?;
    }
    find_executable("node").context(
        "Node.js (`node`) is required to run the wasm tests and is not installed: \
         install it (e.g. `apt-get install -y nodejs`)",
    )
}

/// Python modules the third-party client test needs (from PyPI).
const PYTHON_PACKAGES: [&str; 3] = ["grpcio", "grpcio-tools", "grpcio-health-checking"];

/// Makes sure a Python with `grpcio`, `grpcio-tools` and `grpcio-health-checking` exists, in a
/// virtual environment under the target directory (installed from PyPI when missing). Returns
/// its interpreter.
pub fn ensure_python_grpc() -> Result<PathBuf> {
    let venv = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join("target"))
        .join("py-venv");
    let python = venv.join("bin").join("python");
    let ready = |python: &Path| {
        Command::new(python)
            .args(["-c", "import grpc, grpc_tools, grpc_health"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if python.exists() && ready(&python) {
        return Ok(python);
    }
    let system = find_executable("python3").context(
        "python3 is required for the third-party gRPC client test and is not installed: \
         install it (e.g. `apt-get install -y python3 python3-venv`)",
    )?;
    if !python.exists() {
        run(Command::new(&system).args(["-m", "venv"]).arg(&venv)).context(
            "could not create a Python virtual environment (on Debian: apt-get install -y python3-venv)",
        )?;
    }
    run(Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
        .args(PYTHON_PACKAGES))
    .with_context(|| {
        format!(
            "could not install {} from PyPI into {}",
            PYTHON_PACKAGES.join(", "),
            venv.display()
        )
    })?;
    if !ready(&python) {
        bail!(
            "{} still cannot import grpc after installing {}",
            python.display(),
            PYTHON_PACKAGES.join(", ")
        );
    }
    Ok(python)
}

/// Where Debian's `chromium` and `chromium-driver` packages put the browser and its WebDriver.
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Debian's Chromium and ChromeDriver, for the browser end-to-end tests.
pub struct Chromium {
    pub browser: PathBuf,
    pub driver: PathBuf,
}

/// Chromium and ChromeDriver where Debian installs them, if both are there.
pub fn installed_chromium() -> Option<Chromium> {
    let chromium = Chromium { browser: CHROMIUM.into(), driver: CHROMEDRIVER.into() };
    (chromium.browser.is_file() && chromium.driver.is_file()).then_some(chromium)
}

/// Makes sure Debian's Chromium and ChromeDriver are installed (`/usr/bin/chromium`,
/// `/usr/bin/chromedriver`), installing the `chromium` and `chromium-driver` packages with apt-get
/// when running as root (about a minute, once). Test tools cannot download their own browsers
/// here (see TOOLCHAIN.md), so the tests drive this one.
pub fn ensure_chromium() -> Result<Chromium> {
    if let Some(chromium) = installed_chromium() {
        return Ok(chromium);
    }
    let missing: Vec<&str> =
        [CHROMIUM, CHROMEDRIVER].into_iter().filter(|path| !Path::new(path).is_file()).collect();
    let missing = missing.join(" and ");
    if is_root() && find_executable("apt-get").is_some() {
        println!(
            "xtask: {missing} missing; installing Debian's chromium and chromium-driver \
             (about a minute, once)"
        );
        let install = || run(apt_get().args(["install", "-y", "chromium", "chromium-driver"]));
        install()
            .or_else(|_| {
                run(apt_get().arg("update"))?;
                install()
            })
            .context("could not install chromium and chromium-driver with apt-get")?;
    }
    installed_chromium().with_context(|| {
        format!(
            "{missing} not installed: the browser end-to-end tests (tests/e2e) need Debian's \
             Chromium and ChromeDriver; install them as root with \
             `apt-get install -y chromium chromium-driver`"
        )
    })
}

/// Makes sure `wasm-opt` (Debian's binaryen) is installed when that is possible (root with
/// apt-get), so that the bundle size `cargo xtask bench web` measures is the optimised one. The
/// bundle works without it; without it the size is reported unoptimised, with a warning.
pub fn ensure_wasm_opt() -> Option<PathBuf> {
    if let Some(path) = find_executable("wasm-opt") {
        return Some(path);
    }
    if is_root() && find_executable("apt-get").is_some() {
        println!("xtask: wasm-opt missing; installing Debian's binaryen");
        let install = || run(apt_get().args(["install", "-y", "binaryen"]));
        let _ = install().or_else(|_| {
            run(apt_get().arg("update"))?;
            install()
        });
    }
    let found = find_executable("wasm-opt");
    if found.is_none() {
        println!(
            "xtask: warning: wasm-opt (binaryen) is not installed; the bundle is measured \
             unoptimised (install it with `apt-get install -y binaryen`)"
        );
    }
    found
}

fn is_root() -> bool {
    output(Command::new("id").arg("-u")).is_ok_and(|uid| uid.trim() == "0")
}

/// A non-interactive `apt-get` that waits for the dpkg lock (another apt run, an unattended
/// upgrade) instead of failing at once.
fn apt_get() -> Command {
    let mut command = Command::new("apt-get");
    command.env("DEBIAN_FRONTEND", "noninteractive").args(["-o", "DPkg::Lock::Timeout=300"]);
    command
}
