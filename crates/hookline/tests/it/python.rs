//! A Python virtual environment with Linq's official SDK and the Standard Webhooks reference
//! verifier, created once under the build directory and shared by tests.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

fn scripts() -> PathBuf {
    super::common::workspace_root().join("tests/python")
}

pub fn script(name: &str) -> PathBuf {
    scripts().join(name)
}

/// Returns the venv's python, building the venv on first use. Built in a scratch directory and
/// renamed into place, so concurrent test processes never see a half-installed one.
pub fn python() -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap();
    let requirements = std::fs::read_to_string(script("requirements.txt")).unwrap();
    let tag = format!("{:x}", fxhash(&requirements));
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let venv = root.join(format!("pyenv-{tag}"));
    let python = venv.join("bin/python");
    if python.exists() {
        return python;
    }
    let scratch = root.join(format!("pyenv-{tag}.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    run(Command::new("python3").args(["-m", "venv"]).arg(&scratch));
    run(Command::new(scratch.join("bin/python"))
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(script("requirements.txt")));
    if std::fs::rename(&scratch, &venv).is_err() {
        // Another process won the race; its venv is complete.
        let _ = std::fs::remove_dir_all(&scratch);
    }
    assert!(
        python.exists(),
        "venv python missing at {}",
        python.display()
    );
    python
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn fxhash(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}
