//! The `koppel` command, built inside this test crate so its tests can run it as a child
//! process (cargo hands them its path as `CARGO_BIN_EXE_koppel-security-cli`). Identical to
//! services/koppel's `main.rs`.

fn main() -> std::process::ExitCode {
    koppel::main()
}
