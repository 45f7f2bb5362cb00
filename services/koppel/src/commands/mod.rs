//! One module per subcommand group, and the dispatch over them.

mod connection;
mod demo;
mod dlq;
mod export;
mod registry;
mod replay;
mod schema;
mod setup;
mod sim;
mod status;
mod sync;
mod tail;
mod workers;

use crate::cli::{Cli, Command, KeyCommand};
use crate::context::{CliConfig, Context};
use crate::output::Output;

/// Runs the parsed command.
pub(crate) async fn run(cli: Cli) -> anyhow::Result<()> {
    let output = Output { format: cli.output };
    // The workers load their own config (extractor.toml, deliverer.toml) and telemetry.
    match &cli.command {
        Command::Extractor(arguments) => return workers::extractor(&cli, arguments).await,
        Command::Deliverer(arguments) => return workers::deliverer(&cli, arguments).await,
        _ => {}
    }
    let config = CliConfig::load(&cli)?;
    let _metrics = koppel_runtime::init_telemetry(&config.telemetry);
    match cli.command {
        Command::Extractor(_) | Command::Deliverer(_) => Ok(()),
        Command::Connection(command) => connection::run(command, &config, output).await,
        Command::Employer(crate::cli::EmployerCommand::Discover { connection }) => {
            connection::discover(&connection, &config, output).await
        }
        Command::Key(KeyCommand::Generate) => {
            let key = koppel_registry::SecretKey::generate_base64()?;
            if output.is_json() {
                output.json(&serde_json::json!({ "secret_key": key }));
            } else {
                output.text(key);
            }
            Ok(())
        }
        Command::Schema(command) => schema::run(command, output),
        Command::Setup => setup::run(&config, output).await,
        Command::Sim(arguments) => sim::run(arguments, &config, output).await,
        Command::Dlq(command) => dlq::run(command, &config, output).await,
        Command::Status => status::run(&config, output).await,
        Command::Sync { employer, full } => sync::run(&employer, full, &config, output).await,
        Command::Replay(arguments) => replay::run(arguments, &config, output).await,
        Command::Demo(arguments) => demo::run(arguments, output).await,
        Command::Recipient(command) => {
            registry::recipient(command, &Context::connect(&config).await?, output).await
        }
        Command::Employer(command) => {
            registry::employer(command, &Context::connect(&config).await?, output).await
        }
        // These validate their arguments before connecting, so bad input fails fast and clearly.
        Command::Tail(arguments) => tail::run(arguments, &config, output).await,
        Command::Export(arguments) => export::run(arguments, &config, output).await,
    }
}
