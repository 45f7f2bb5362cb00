//! Placeholder so the workspace manifest parses until the benchmark lands.

fn main() {}
