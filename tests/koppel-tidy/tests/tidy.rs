//! The house-style checks of `koppel_tidy` over this workspace's `services/` and `tests/`.

use std::path::Path;

use koppel_tidy::{files_without_module_doc, rust_files};

#[test]
fn every_rust_file_opens_with_a_module_doc_line() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = rust_files(&root.join("services"));
    files.extend(rust_files(&root.join("tests")));
    assert!(files.len() > 50, "found only {} files", files.len());
    let missing = files_without_module_doc(&root, &files);
    assert!(
        missing.is_empty(),
        "files without a `//!` opening line: {missing:#?}"
    );
}
