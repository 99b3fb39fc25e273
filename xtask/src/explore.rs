//! `cargo xtask explore`: the main job — build the explorer if needed and open it in a browser.
//!
//! The order is: prepare (build the bundle and the `ringside` binary), start companions (a local
//! 3-node native cluster, `ringside cluster up`, with its data in `target/explore-cluster/`), then
//! serve `www/` until Ctrl-C. Ctrl-C reaches the whole foreground process group, so the cluster
//! stops with it (each node syncs and exits); [`Companions`] also stops it with SIGTERM if
//! `explore` returns with an error. The data directories are kept, so the next run restarts the
//! same cluster with its data.

use crate::{project_root, serve, tools, web};
use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Command-line options of `cargo xtask explore`.
pub struct Options {
    pub port: u16,
    /// Nodes of the local native cluster (0: none).
    pub nodes: u16,
}

impl Options {
    pub fn parse(args: &[String]) -> Result<Options> {
        let mut options = Options { port: 8080, nodes: 3 };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let (name, value) = match arg.split_once('=') {
                Some((name, value)) => (name, value),
                None => match arg.as_str() {
                    "--port" | "--nodes" => (
                        arg.as_str(),
                        args.next().with_context(|| format!("{arg} needs a value"))?.as_str(),
                    ),
                    other => bail!("unknown option `{other}` (expected --port N, --nodes N)"),
                },
            };
            match name {
                "--port" => {
                    options.port =
                        value.parse().with_context(|| format!("invalid port `{value}`"))?
                }
                "--nodes" => {
                    options.nodes =
                        value.parse().with_context(|| format!("invalid node count `{value}`"))?
                }
                other => bail!("unknown option `{other}` (expected --port N, --nodes N)"),
            }
        }
        Ok(options)
    }
}

pub fn run(options: Options) -> Result<()> {
    web::build_bundle()?;
    let _companions = start_companions(options.nodes)?;
    serve::serve(&web::www_dir(), options.port)
}

/// Processes that live as long as the explorer is being served.
#[derive(Default)]
struct Companions {
    children: Vec<Child>,
}

impl Drop for Companions {
    fn drop(&mut self) {
        // SIGTERM first: `ringside cluster up` stops its nodes cleanly before exiting.
        ringside_procs::terminate_all(&mut self.children, Duration::from_secs(15));
    }
}

/// Where `cargo xtask explore` keeps the local cluster's data.
pub fn cluster_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join("target"))
        .join("explore-cluster")
}

/// Starts the processes the page talks to: a local native cluster of `nodes` nodes on
/// 127.0.0.1:7401.., waiting until every node answers.
fn start_companions(nodes: u16) -> Result<Companions> {
    let mut companions = Companions::default();
    if nodes == 0 {
        return Ok(companions);
    }
    tools::run(tools::cargo().args(["build", "-p", "ringside-node", "--bin", "ringside"]))?;
    let binary = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join("target"))
        .join("debug")
        .join("ringside");
    let dir = cluster_dir();
    let mut command = Command::new(&binary);
    command.args(["cluster", "up", "--nodes", &nodes.to_string(), "--data-dir"]).arg(&dir);
    println!("$ {}", tools::display(&command));
    let child = command.spawn().with_context(|| format!("could not start {}", binary.display()))?;
    companions.children.push(child);
    // `cluster up` prints the addresses once every node answers; wait for the first one here so
    // the explorer's address line comes after the cluster's.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", 7401)).is_ok() {
            break;
        }
        if let Some(status) = companions.children[0].try_wait()? {
            bail!(
                "the local cluster exited ({status}); its logs are in {}/n*/node.log \
                 (is another cluster already using ports 7401..?)",
                dir.display()
            );
        }
        if Instant::now() > deadline {
            bail!("the local cluster did not start within 90 s; see {}/n*/node.log", dir.display());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(500));
    Ok(companions)
}
