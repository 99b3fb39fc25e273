//! A static file server for `www/`, good enough for local exploration (one thread, no caching).

use anyhow::{Context, Result, anyhow};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use tiny_http::{Header, Request, Response, Server};

/// Serves `root` on `127.0.0.1:port` until the process is interrupted.
pub fn serve(root: &Path, port: u16) -> Result<()> {
    let server = Server::http(("127.0.0.1", port))
        .map_err(|error| anyhow!("could not listen on 127.0.0.1:{port}: {error}"))?;
    println!("xtask: serving {} at http://127.0.0.1:{port}/", root.display());
    println!("xtask: press Ctrl-C to stop");
    for request in server.incoming_requests() {
        respond(root, request);
    }
    Ok(())
}

/// A server of `root` on a free port of 127.0.0.1, answering from a background thread until it
/// is dropped (the browser tests use it).
pub struct Background {
    pub port: u16,
    server: Arc<Server>,
    thread: Option<JoinHandle<()>>,
}

/// Starts serving `root` on a port the OS picks, in a background thread.
pub fn serve_in_background(root: &Path) -> Result<Background> {
    let server = Server::http(("127.0.0.1", 0))
        .map_err(|error| anyhow!("could not listen on 127.0.0.1: {error}"))?;
    let port = server.server_addr().to_ip().context("the server has no IP address")?.port();
    let server = Arc::new(server);
    let thread = {
        let server = server.clone();
        let root = root.to_path_buf();
        std::thread::Builder::new()
            .name("serve-www".to_string())
            .spawn(move || {
                for request in server.incoming_requests() {
                    respond(&root, request);
                }
            })
            .context("could not start the server thread")?
    };
    Ok(Background { port, server, thread: Some(thread) })
}

impl Background {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }
}

impl Drop for Background {
    /// Stops the thread; dropping the last reference to the server then closes its socket.
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn respond(root: &Path, request: Request) {
    let response = match resolve(root, request.url()) {
        Some(path) => match std::fs::read(&path) {
            Ok(body) => Response::from_data(body)
                .with_header(header("Content-Type", content_type(&path)))
                // The bundle changes on every rebuild; never serve a stale one.
                .with_header(header("Cache-Control", "no-store")),
            Err(_) => not_found(),
        },
        None => not_found(),
    };
    let _ = request.respond(response);
}

/// Maps a request URL to a file under `root`, refusing anything that would escape it.
fn resolve(root: &Path, url: &str) -> Option<PathBuf> {
    let path = url.split(['?', '#']).next().unwrap_or("");
    let mut resolved = root.to_path_buf();
    for component in Path::new(path.trim_start_matches('/')).components() {
        match component {
            Component::Normal(part) => resolved.push(part),
            Component::CurDir => {}
            _ => return None,
        }
    }
    if resolved.is_dir() {
        resolved.push("index.html");
    }
    resolved.is_file().then_some(resolved)
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|ext| ext.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        // Browsers only stream-compile wasm served with this exact type.
        Some("wasm") => "application/wasm",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("toml" | "txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("static header is valid")
}

fn not_found() -> Response<std::io::Cursor<Vec<u8>>> {
    Response::from_string("not found")
        .with_status_code(404)
        .with_header(header("Content-Type", "text/plain; charset=utf-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_refuses_paths_outside_the_root() {
        let root = crate::project_root().join("www");
        assert_eq!(resolve(&root, "/../Cargo.toml"), None);
        assert_eq!(resolve(&root, "/index.html?seed=1"), Some(root.join("index.html")));
        assert_eq!(resolve(&root, "/?seed=7"), Some(root.join("index.html")));
    }

    #[test]
    fn background_server_serves_and_stops() {
        use std::io::{Read, Write};
        let root = crate::project_root().join("www");
        let server = serve_in_background(&root).unwrap();
        let port = server.port;
        let get = |path: &str| -> std::io::Result<String> {
            let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
            write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
            let mut reply = String::new();
            stream.read_to_string(&mut reply)?;
            Ok(reply)
        };
        let index = get("/?seed=7").unwrap();
        assert!(index.starts_with("HTTP/1.1 200"), "{index}");
        assert!(index.contains("text/html"), "{index}");
        assert!(get("/../Cargo.toml").unwrap().starts_with("HTTP/1.1 404"));
        drop(server);
        // Refused, reset or closed: anything but an answer.
        let after = get("/");
        assert!(!matches!(&after, Ok(reply) if reply.starts_with("HTTP/")), "{after:?}");
    }

    #[test]
    fn wasm_is_served_as_application_wasm() {
        assert_eq!(content_type(Path::new("pkg/ringside_ui_bg.wasm")), "application/wasm");
        assert_eq!(content_type(Path::new("pkg/ringside_ui.js")), "text/javascript; charset=utf-8");
    }
}
