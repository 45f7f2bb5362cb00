//! The `koppel` command: one binary for the workers, the simulators, the demo, onboarding,
//! data-team tools and dead letters. The logic of each subcommand lives in `commands`; this
//! module parses arguments, sets up telemetry and maps errors to exit codes.
//!
//! # Layout
//! - `cli`: the argument definitions (clap).
//! - `context`: the config every subcommand shares, and connecting to NATS.
//! - `output`: the only module that writes to stdout.
//! - `commands`: one module per subcommand group.

pub mod cli;
mod commands;
pub mod context;
pub mod output;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;

/// Exit code of a command that failed at run time (bad input, unreachable NATS...). Usage
/// errors exit with clap's 2.
pub const EXIT_FAILURE: u8 = 1;

/// Parses the command line, runs the command and turns the outcome into an exit code. Errors
/// are one line on stderr: `error: <what>: <why>`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return report_error(&anyhow::Error::from(error)),
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => report_error(&error),
    }
}

#[allow(
    clippy::print_stderr,
    reason = "the one-line error report is the command's stderr output layer"
)]
fn report_error(error: &anyhow::Error) -> ExitCode {
    let chain: Vec<String> = error.chain().map(ToString::to_string).collect();
    eprintln!("error: {}", chain.join(": "));
    ExitCode::from(EXIT_FAILURE)
}
