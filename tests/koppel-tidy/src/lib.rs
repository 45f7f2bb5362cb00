//! House-style checks over the whole source tree, as functions over a directory; the test in
//! `tests/tidy.rs` runs them over this workspace. They look at text only and build nothing.

use std::path::{Path, PathBuf};

/// Every `.rs` file under `directory`, skipping `target` and hidden directories.
pub fn rust_files(directory: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    collect_rust_files(directory, &mut found);
    found.sort();
    found
}

fn collect_rust_files(directory: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(directory) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if name != "target" && !name.to_string_lossy().starts_with('.') {
                collect_rust_files(&path, found);
            }
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            found.push(path);
        }
    }
}

/// Whether `text`, a Rust file's contents, opens with a `//!` line saying what it is for.
pub fn opens_with_module_doc(text: &str) -> bool {
    text.trim_start().starts_with("//!")
}

/// Of `files`, those that do not open with a `//!` line, relative to `root`.
pub fn files_without_module_doc(root: &Path, files: &[PathBuf]) -> Vec<String> {
    files
        .iter()
        .filter(|path| !opens_with_module_doc(&std::fs::read_to_string(path).unwrap_or_default()))
        .map(|path| {
            path.strip_prefix(root)
                .unwrap_or(path)
                .display()
                .to_string()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_module_doc_line_must_come_first() {
        assert!(opens_with_module_doc("//! What this is for.\nuse std::fs;"));
        assert!(opens_with_module_doc("\n//! After a blank line."));
        assert!(!opens_with_module_doc("/// An item doc.\nfn f() {}"));
        assert!(!opens_with_module_doc("use std::fs;\n//! too late"));
        assert!(!opens_with_module_doc(""));
    }
}
