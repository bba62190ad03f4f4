//! Linq's official Node SDK (`tests/node/package.json`), installed once under the build
//! directory with npm and shared by tests, like the Python venv (`python.rs`).

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

fn sources() -> PathBuf {
    super::common::workspace_root().join("tests/node")
}

/// A copy of `tests/node/<name>` inside the installed project (an ES module finds its packages
/// from where it lies), with `node_modules` installed on first use.
pub fn script(name: &str) -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    static COPIES: AtomicU32 = AtomicU32::new(0);
    let _guard = LOCK.lock().unwrap();
    let manifest = std::fs::read_to_string(sources().join("package.json")).unwrap();
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let project = root.join(format!("node-{:x}", super::python::fxhash(&manifest)));
    if !project.join("node_modules/@linqapp/sdk").exists() {
        let scratch = root.join(format!("node-scratch.{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch).unwrap();
        std::fs::write(scratch.join("package.json"), &manifest).unwrap();
        let out = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent"])
            .current_dir(&scratch)
            .output()
            .expect("npm is installed (Node.js 20 or later)");
        assert!(
            out.status.success(),
            "npm install failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if std::fs::rename(&scratch, &project).is_err() {
            // Another test process won the race; its install is complete.
            let _ = std::fs::remove_dir_all(&scratch);
        }
    }
    let n = COPIES.fetch_add(1, Ordering::Relaxed);
    let copy = project.join(format!("{}.{}.{n}.mjs", name, std::process::id()));
    std::fs::copy(sources().join(name), &copy).unwrap();
    copy
}
