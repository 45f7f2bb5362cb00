//! `koppel connection add|test|list` and `koppel employer discover`: source accounts.

use anyhow::{Context as _, bail};
use koppel_extract::{Extractor, ExtractorConfig, client_secret_context};
use koppel_registry::{
    Connection, ConnectionSettings, LoketConnectionSettings, SecretKey, Unit4ConnectionSettings,
    Unit4Paths,
};
use secrecy::SecretString;
use serde::Serialize;
use serde_json::json;

use crate::cli::{AddConnection, ConnectionCommand};
use crate::context::{CliConfig, Context};
use crate::output::Output;

/// An extractor handle for onboarding calls: the same code path the worker uses.
pub(crate) async fn extractor(config: &CliConfig) -> anyhow::Result<Extractor> {
    let extractor_config = ExtractorConfig {
        nats: config.nats.clone(),
        topology: config.topology.clone(),
        namespace: config.namespace.clone(),
        ..ExtractorConfig::default()
    };
    Extractor::from_config(&extractor_config).await
}

fn optional_secret_from_env(variable: &str) -> Option<SecretString> {
    std::env::var(variable)
        .ok()
        .filter(|value| !value.is_empty())
        .map(SecretString::from)
}

#[derive(Debug, Serialize)]
struct ConnectionRow {
    id: String,
    source: String,
    api_base_url: String,
    employers: usize,
}

pub(crate) async fn run(
    command: ConnectionCommand,
    config: &CliConfig,
    output: Output,
) -> anyhow::Result<()> {
    match command {
        ConnectionCommand::Add(AddConnection::Loket(arguments)) => {
            let context = Context::connect(config).await?;
            let key =
                SecretKey::from_environment().context("cannot seal the connection's secrets")?;
            let client_secret = optional_secret_from_env(&arguments.client_secret_env)
                .unwrap_or_else(|| SecretString::from(String::new()));
            let connection = Connection {
                id: arguments.id.clone(),
                settings: ConnectionSettings::Loket(LoketConnectionSettings {
                    oauth_base_url: arguments.oauth_base_url.trim_end_matches('/').to_owned(),
                    api_base_url: arguments.api_base_url.trim_end_matches('/').to_owned(),
                    client_id: arguments.client_id.clone(),
                    client_secret: key
                        .seal(&client_secret, &client_secret_context(&arguments.id))?,
                    redirect_uri: arguments.redirect_uri.clone(),
                }),
                poll_interval_seconds: arguments.poll_interval_seconds,
                full_sync_interval_seconds: 24 * 60 * 60,
            };
            context
                .registry
                .put_connection(&connection)
                .await
                .context("cannot register the connection")?;
            let extractor = extractor(config).await?;
            if let Some(variable) = &arguments.refresh_token_env {
                let Some(refresh_token) = optional_secret_from_env(variable) else {
                    bail!(
                        "environment variable {variable} is not set; put the refresh token there"
                    );
                };
                koppel_extract::loket::store_refresh_token(
                    &context.topology.tokens,
                    &key,
                    &arguments.id,
                    &refresh_token,
                )
                .await?;
                output.text(format!(
                    "connection {} registered with the given refresh token",
                    arguments.id
                ));
            } else if let Some(code) = &arguments.code {
                let http = koppel_runtime::http::HttpClientSettings::default().client()?;
                let oauth = koppel_extract::loket::oauth_client(
                    &connection,
                    &key,
                    http,
                    &koppel_extract::loket::LoketSettings::default(),
                )?;
                koppel_extract::loket::exchange_authorization_code(
                    &oauth,
                    &context.topology.tokens,
                    &key,
                    &SecretString::from(code.clone()),
                )
                .await
                .context("cannot exchange the authorization code")?;
                output.text(format!("connection {} authorised", arguments.id));
            } else {
                let state = uuid::Uuid::new_v4().simple().to_string();
                let url = format!(
                    "{}/authorize?client_id={}&redirect_uri={}&response_type=code&scope=all&state={state}",
                    arguments.oauth_base_url.trim_end_matches('/'),
                    url_encode(&arguments.client_id),
                    url_encode(&arguments.redirect_uri),
                );
                output.text(format!("connection {} registered; a Loket user authorises it here:\n  {url}\nthen run this command again with --code <code from the redirect>", arguments.id));
                if output.is_json() {
                    output.json(&json!({ "connection": arguments.id, "authorize_url": url }));
                }
                return Ok(());
            }
            drop(extractor);
            if output.is_json() {
                output.json(
                    &json!({ "connection": arguments.id, "registered": true, "authorised": true }),
                );
            }
            Ok(())
        }
        ConnectionCommand::Add(AddConnection::Unit4(arguments)) => {
            let context = Context::connect(config).await?;
            let key =
                SecretKey::from_environment().context("cannot seal the connection's secrets")?;
            let Some(client_secret) = optional_secret_from_env(&arguments.client_secret_env) else {
                bail!(
                    "environment variable {} is not set; put the Unit4 client secret there (it is never read from arguments)",
                    arguments.client_secret_env
                );
            };
            let connection = Connection {
                id: arguments.id.clone(),
                settings: ConnectionSettings::Unit4(Unit4ConnectionSettings {
                    token_url: arguments.token_url.clone(),
                    scope: arguments.scope.clone(),
                    api_base_url: arguments.api_base_url.trim_end_matches('/').to_owned(),
                    client_id: arguments.client_id.clone(),
                    client_secret: key
                        .seal(&client_secret, &client_secret_context(&arguments.id))?,
                    paths: Unit4Paths::default(),
                }),
                poll_interval_seconds: arguments.poll_interval_seconds,
                full_sync_interval_seconds: arguments.poll_interval_seconds,
            };
            context
                .registry
                .put_connection(&connection)
                .await
                .context("cannot register the connection")?;
            output.text(format!(
                "connection {} registered; check it with `koppel connection test {}`",
                arguments.id, arguments.id
            ));
            if output.is_json() {
                output.json(&json!({ "connection": arguments.id, "registered": true }));
            }
            Ok(())
        }
        ConnectionCommand::Test { connection } => {
            let extractor = extractor(config).await?;
            let employers = extractor
                .discover_employers(&connection)
                .await
                .with_context(|| format!("connection {connection} does not work"))?;
            output.text(format!(
                "connection {connection} works: it sees {} employers",
                employers.len()
            ));
            if output.is_json() {
                output.json(&json!({ "connection": connection, "works": true, "employers": employers.len() }));
            }
            Ok(())
        }
        ConnectionCommand::List => {
            let context = Context::connect(config).await?;
            let snapshot = context.registry.snapshot().await?;
            let records: Vec<ConnectionRow> = snapshot
                .connections
                .values()
                .map(|connection| ConnectionRow {
                    id: connection.id.clone(),
                    source: connection.source().to_string(),
                    api_base_url: match &connection.settings {
                        ConnectionSettings::Loket(settings) => settings.api_base_url.clone(),
                        ConnectionSettings::Unit4(settings) => settings.api_base_url.clone(),
                    },
                    employers: snapshot.employers_of_connection(&connection.id).len(),
                })
                .collect();
            let rows: Vec<Vec<String>> = records
                .iter()
                .map(|row| {
                    vec![
                        row.id.clone(),
                        row.source.clone(),
                        row.api_base_url.clone(),
                        row.employers.to_string(),
                    ]
                })
                .collect();
            output.table(
                &["CONNECTION", "SOURCE", "API", "EMPLOYERS"],
                &rows,
                &records,
            );
            Ok(())
        }
    }
}

/// `koppel employer discover --connection C`.
pub(crate) async fn discover(
    connection: &str,
    config: &CliConfig,
    output: Output,
) -> anyhow::Result<()> {
    let extractor = extractor(config).await?;
    let employers = extractor
        .discover_employers(connection)
        .await
        .with_context(|| format!("cannot list the employers of connection {connection}"))?;
    #[derive(Serialize)]
    struct Row<'a> {
        source_employer_id: &'a str,
        name: Option<&'a str>,
        payroll_tax_number: Option<&'a str>,
    }
    let records: Vec<Row<'_>> = employers
        .iter()
        .map(|employer| Row {
            source_employer_id: &employer.source_employer_id,
            name: employer.name.as_deref(),
            payroll_tax_number: employer.payroll_tax_number.as_deref(),
        })
        .collect();
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|row| {
            vec![
                row.source_employer_id.to_owned(),
                row.name.unwrap_or("").to_owned(),
                row.payroll_tax_number.unwrap_or("").to_owned(),
            ]
        })
        .collect();
    output.table(
        &["SOURCE ID", "NAME", "LOONHEFFINGENNUMMER"],
        &rows,
        &records,
    );
    Ok(())
}

/// Percent-encodes a query value (RFC 3986 unreserved characters pass).
fn url_encode(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}
