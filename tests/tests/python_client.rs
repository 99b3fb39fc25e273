//! A client that is not ours: Python `grpcio` stubs generated from `native-node/proto` put and get
//! against a real node process (tests/python/kv_client.py).
//!
//! `cargo xtask test` provides a Python with grpcio (RINGSIDE_PYTHON) and requires this test to
//! run (RINGSIDE_REQUIRE_PYTHON=1); a bare `cargo test` without grpcio installed skips it with a
//! notice.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

fn binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("RINGSIDE_BIN") {
        return bin.into();
    }
    let exe = std::env::current_exe().expect("test executable path");
    let bin = exe.parent().and_then(Path::parent).expect("target dir").join("ringside");
    assert!(
        bin.exists(),
        "build the node first: cargo build -p ringside-node ({} missing)",
        bin.display()
    );
    bin
}

fn python() -> Option<PathBuf> {
    let python: PathBuf = std::env::var_os("RINGSIDE_PYTHON").map_or("python3".into(), Into::into);
    let ok = Command::new(&python)
        .args(["-c", "import grpc, grpc_tools, grpc_health"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some(python);
    }
    assert!(
        std::env::var_os("RINGSIDE_REQUIRE_PYTHON").is_none(),
        "{} cannot import grpc, grpc_tools and grpc_health: `cargo xtask test` installs them \
         (or pip install grpcio grpcio-tools grpcio-health-checking)",
        python.display()
    );
    None
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn python_grpcio_client_puts_and_gets() {
    let Some(python) = python() else {
        eprintln!("skipped: no Python with grpcio (run `cargo xtask test` to install it)");
        return;
    };
    let dir = std::env::temp_dir().join(format!("ringside-py-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    let log = std::fs::File::create(dir.join("node.log")).unwrap();
    let node = Kill(
        Command::new(binary())
            .args(["node", "--listen", &address, "--metrics", "", "--rf", "1", "--host-id", "1"])
            .args(["--initial-cluster", &format!("1={address}")])
            .arg("--data-dir")
            .arg(dir.join("data"))
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start the node"),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(&address).is_err() {
        assert!(Instant::now() < deadline, "node did not listen on {address}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = Command::new(&python)
        .arg(root().join("tests/python/kv_client.py"))
        .arg(&address)
        .arg(root().join("native-node/proto"))
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    drop(node);
    assert!(
        out.status.success(),
        "python client failed ({}):\n{stdout}\n{stderr}\nnode log:\n{}",
        out.status,
        std::fs::read_to_string(dir.join("node.log")).unwrap_or_default()
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}
