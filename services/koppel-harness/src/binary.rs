//! The one way tests, benchmarks and the chaos suite find the `koppel` program they run as a
//! child process.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::bail;

/// The `koppel` binary: `$KOPPEL_BIN` when set (a release build, say); otherwise the one cargo
/// builds for this workspace (`cargo build -p koppel --bin koppel`, once per test binary, a
/// no-op when it is fresh, so a changed command is never tested through a stale binary); when
/// cargo cannot run, the one next to the running test executable (`target/<profile>/koppel`).
pub fn koppel_binary() -> anyhow::Result<PathBuf> {
    // The error is kept as text: an anyhow::Error cannot be cloned out of the cell.
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BINARY
        .get_or_init(|| locate_binary().map_err(|error| format!("{error:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn locate_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("KOPPEL_BIN").filter(|path| !path.is_empty()) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!("KOPPEL_BIN={} is not a file", path.display());
        }
        return Ok(path);
    }
    // A test executable is `target/<profile>/deps/<name>`; the binary is `target/<profile>/koppel`.
    let next_to_tests = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(|dir| dir.join("koppel")));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let release = next_to_tests
        .as_ref()
        .and_then(|path| path.parent()?.file_name())
        .is_some_and(|profile| profile == "release");
    let mut arguments = vec!["build", "-p", "koppel", "--bin", "koppel"];
    if release {
        arguments.push("--release");
    }
    let built = Command::new(&cargo)
        .args(&arguments)
        .current_dir(&workspace)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    match (built, next_to_tests) {
        (Ok(output), Some(path)) if output.status.success() && path.is_file() => Ok(path),
        (_, Some(path)) if path.is_file() => Ok(path),
        (Ok(output), _) => bail!(
            "the koppel binary is missing and `cargo build -p koppel --bin koppel` failed: {}; set KOPPEL_BIN",
            String::from_utf8_lossy(&output.stderr).trim()
        ),
        (Err(error), _) => bail!(
            "the koppel binary is missing and cargo could not run ({error}); build it with `cargo build -p koppel` or set KOPPEL_BIN"
        ),
    }
}
