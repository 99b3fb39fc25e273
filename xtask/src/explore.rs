//! `cargo xtask explore`: the main job — build the explorer if needed and open it in a browser.
//!
//! The order is: prepare (build the bundle), start companions (nothing yet; a later step starts a
//! local native cluster here, before serving, so the page can talk to it), then serve `www/` until
//! Ctrl-C. Ctrl-C reaches the whole foreground process group, so companion processes started from
//! here stop with it; [`Companions`] also kills them if `explore` returns with an error.

use crate::{serve, web};
use anyhow::{Context, Result, bail};
use std::process::Child;

/// Command-line options of `cargo xtask explore`.
pub struct Options {
    pub port: u16,
}

impl Options {
    pub fn parse(args: &[String]) -> Result<Options> {
        let mut options = Options { port: 8080 };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let port = match arg.as_str() {
                "--port" => args.next().context("--port needs a value")?.as_str(),
                other => match other.strip_prefix("--port=") {
                    Some(port) => port,
                    None => bail!("unknown option `{other}` (expected --port N)"),
                },
            };
            options.port = port.parse().with_context(|| format!("invalid port `{port}`"))?;
        }
        Ok(options)
    }
}

pub fn run(options: Options) -> Result<()> {
    web::build_bundle()?;
    let _companions = start_companions()?;
    serve::serve(&web::www_dir(), options.port)
}

/// Processes that live as long as the explorer is being served.
#[derive(Default)]
struct Companions {
    children: Vec<Child>,
}

impl Drop for Companions {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts the processes the page talks to. None yet: the native cluster comes in a later step.
fn start_companions() -> Result<Companions> {
    Ok(Companions::default())
}
