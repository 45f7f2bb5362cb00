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
            } else if arguments.authorised {
                let redirect = redirect_url()?;
                let code = authorised_code(&context, &arguments.id, &redirect).await?;
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
                    &code,
                )
                .await
                .context("cannot exchange the authorization code")?;
                // The state is used up: a replayed redirect finds nothing pending.
                context
                    .topology
                    .tokens
                    .purge(pending_state_key(&arguments.id))
                    .await
                    .context("cannot clear the pending authorisation")?;
                output.text(format!("connection {} authorised", arguments.id));
            } else {
                // The state ties the redirect to this request (OAuth's CSRF defence): kept until
                // `--authorised` checks the redirect against it.
                let state = uuid::Uuid::new_v4().simple().to_string();
                context
                    .topology
                    .tokens
                    .put(pending_state_key(&arguments.id), state.clone().into())
                    .await
                    .context("cannot record the pending authorisation")?;
                let url = format!(
                    "{}/authorize?client_id={}&redirect_uri={}&response_type=code&scope=all&state={state}",
                    arguments.oauth_base_url.trim_end_matches('/'),
                    url_encode(&arguments.client_id),
                    url_encode(&arguments.redirect_uri),
                );
                output.text(format!("connection {} registered; a Loket user authorises it here:\n  {url}\nthen run this command again with --authorised and paste the URL Loket redirected to (or set KOPPEL_LOKET_REDIRECT_URL)", arguments.id));
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

/// Where a Loket authorisation's state waits for its redirect, in the tokens bucket.
fn pending_state_key(connection: &str) -> String {
    format!("pending-authorisation.{connection}")
}

/// The URL Loket redirected to: from KOPPEL_LOKET_REDIRECT_URL, else a prompt on stderr read
/// from stdin. Never an argument, which every user of the machine can read.
fn redirect_url() -> anyhow::Result<SecretString> {
    if let Some(url) = optional_secret_from_env("KOPPEL_LOKET_REDIRECT_URL") {
        return Ok(url);
    }
    let mut stderr = std::io::stderr();
    std::io::Write::write_all(&mut stderr, b"URL Loket redirected to: ")?;
    std::io::Write::flush(&mut stderr)?;
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("cannot read the redirect URL")?;
    let line = line.trim().to_owned();
    if line.is_empty() {
        bail!("no redirect URL given: paste it at the prompt or set KOPPEL_LOKET_REDIRECT_URL");
    }
    Ok(SecretString::from(line))
}

/// The authorization code of `redirect`, once its state matches the one recorded when the
/// authorisation URL was made. Neither the code nor the state is ever part of an error.
async fn authorised_code(
    context: &Context,
    connection: &str,
    redirect: &SecretString,
) -> anyhow::Result<SecretString> {
    use secrecy::ExposeSecret as _;
    let parameters = query_parameters(redirect.expose_secret());
    let find = |name: &str| {
        parameters
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    if let Some(error) = find("error") {
        bail!("Loket refused the authorisation: {error}");
    }
    let (Some(code), Some(state)) = (find("code"), find("state")) else {
        bail!("the redirect URL has no code and state: paste the whole URL Loket redirected to");
    };
    let pending = context
        .topology
        .tokens
        .get(pending_state_key(connection))
        .await
        .context("cannot read the pending authorisation")?;
    let Some(pending) = pending else {
        bail!(
            "no authorisation of connection {connection} is pending: run this command without \
             --authorised first, and have the user authorise at the URL it prints"
        );
    };
    if pending.as_ref() != state.as_bytes() {
        bail!(
            "the redirect's state does not match the authorisation koppel asked for: refused, \
             since it may come from someone else's request. Start again without --authorised"
        );
    }
    Ok(SecretString::from(code))
}

/// The query parameters of a URL, percent-decoded (`+` is a space, as in forms).
fn query_parameters(url: &str) -> Vec<(String, String)> {
    let query = url
        .split_once('?')
        .map_or("", |(_, query)| query)
        .split('#')
        .next()
        .unwrap_or("");
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let hex = |byte: u8| char::from(byte).to_digit(16);
    let mut decoded = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(byte) = bytes.next() {
        match byte {
            b'%' => {
                let mut lookahead = bytes.clone();
                match (
                    lookahead.next().and_then(hex),
                    lookahead.next().and_then(hex),
                ) {
                    (Some(high), Some(low)) => {
                        decoded.push(u8::try_from(high * 16 + low).unwrap_or(b'?'));
                        bytes = lookahead;
                    }
                    _ => decoded.push(b'%'),
                }
            }
            b'+' => decoded.push(b' '),
            byte => decoded.push(byte),
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_redirect_query_is_split_and_percent_decoded() {
        let parameters =
            query_parameters("https://app.example/callback?state=ab%2Fc&code=x+y%3D%zz#fragment");
        assert_eq!(
            parameters,
            vec![
                ("state".to_owned(), "ab/c".to_owned()),
                ("code".to_owned(), "x y=%zz".to_owned()),
            ]
        );
        assert!(query_parameters("https://app.example/callback").is_empty());
    }
}
