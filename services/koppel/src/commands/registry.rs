//! `koppel recipient ...` and `koppel employer ...`: onboarding records in the registry.

use std::collections::BTreeMap;

use anyhow::{Context as _, bail};
use koppel_registry::onboarding::{self, InsurerTerms, OnboardingError};
use koppel_registry::{
    EmployerRegistration, Recipient, RecipientSettings, RegistryError, SecretKey,
};
use secrecy::SecretString;
use serde::Serialize;

use crate::cli::{AddRecipient, EmployerCommand, RecipientCommand};
use crate::context::Context;
use crate::output::Output;

/// Reads a secret from the environment variable the operator named. Secrets never travel as
/// arguments, where `ps` and shell history would show them.
fn secret_from_env(variable: &str) -> anyhow::Result<SecretString> {
    match std::env::var(variable) {
        Ok(value) if !value.is_empty() => Ok(SecretString::from(value)),
        _ => bail!(
            "environment variable {variable} is not set; put the secret there (it is never read from arguments)"
        ),
    }
}

#[derive(Debug, Serialize)]
struct RecipientRow {
    name: String,
    kind: &'static str,
    endpoint: String,
    employers: usize,
}

pub(crate) async fn recipient(
    command: RecipientCommand,
    context: &Context,
    output: Output,
) -> anyhow::Result<()> {
    match command {
        RecipientCommand::Add(add) => {
            let key =
                SecretKey::from_environment().context("cannot seal the recipient's secret")?;
            let recipient = match add {
                AddRecipient::Insurer(arguments) => {
                    let token = secret_from_env(&arguments.token_env)?;
                    Recipient {
                        settings: RecipientSettings::PensionInsurer {
                            base_url: arguments.base_url,
                            api_token: key.seal(
                                &token,
                                &koppel_deliver::recipient::secret_context(
                                    &arguments.name,
                                    "api_token",
                                ),
                            )?,
                            employer_links: BTreeMap::new(),
                        },
                        name: arguments.name,
                        max_in_flight: arguments.max_in_flight,
                    }
                }
                AddRecipient::Webhook(arguments) => {
                    let secret = secret_from_env(&arguments.secret_env)?;
                    Recipient {
                        settings: RecipientSettings::Webhook {
                            url: arguments.url,
                            secret: key.seal(
                                &secret,
                                &koppel_deliver::recipient::secret_context(
                                    &arguments.name,
                                    "secret",
                                ),
                            )?,
                        },
                        name: arguments.name,
                        max_in_flight: arguments.max_in_flight,
                    }
                }
            };
            let recipient = onboarding::register_recipient(&context.registry, recipient)
                .await
                .context("cannot register the recipient")?;
            output.text(format!("recipient {} registered", recipient.name));
            if output.is_json() {
                output
                    .json(&serde_json::json!({ "recipient": recipient.name, "registered": true }));
            }
            Ok(())
        }
        RecipientCommand::List => {
            let snapshot = context.registry.snapshot().await?;
            let records: Vec<RecipientRow> = snapshot
                .recipients
                .values()
                .map(|recipient| {
                    let (kind, endpoint) = match &recipient.settings {
                        RecipientSettings::PensionInsurer { base_url, .. } => {
                            ("pension_insurer", base_url.clone())
                        }
                        RecipientSettings::Webhook { url, .. } => ("webhook", url.clone()),
                    };
                    RecipientRow {
                        name: recipient.name.clone(),
                        kind,
                        endpoint,
                        employers: snapshot.employers_of_recipient(&recipient.name).len(),
                    }
                })
                .collect();
            let rows: Vec<Vec<String>> = records
                .iter()
                .map(|row| {
                    vec![
                        row.name.clone(),
                        row.kind.to_owned(),
                        row.endpoint.clone(),
                        row.employers.to_string(),
                    ]
                })
                .collect();
            output.table(&["NAME", "KIND", "ENDPOINT", "EMPLOYERS"], &rows, &records);
            Ok(())
        }
    }
}

#[derive(Debug, Serialize)]
struct EmployerRow {
    employer_key: String,
    connection: String,
    source_employer_id: String,
    name: String,
    recipients: Vec<String>,
    enabled: bool,
}

pub(crate) async fn employer(
    command: EmployerCommand,
    context: &Context,
    output: Output,
) -> anyhow::Result<()> {
    match command {
        EmployerCommand::Add(arguments) => {
            let employer_key = arguments.key.clone().unwrap_or_else(|| {
                onboarding::default_employer_key(&arguments.connection, &arguments.source_id)
            });
            let registration = EmployerRegistration {
                employer_key: employer_key.clone(),
                connection_id: arguments.connection.clone(),
                source_employer_id: arguments.source_id.clone(),
                name: arguments.name.clone(),
                payroll_tax_number: arguments.payroll_tax_number.clone(),
                recipients: arguments.recipients.clone(),
                removal_threshold_percent: arguments.removal_threshold_percent,
                enabled: true,
            };
            let terms = InsurerTerms {
                contract_number: arguments.insurer_contract.clone(),
                scheme_id: None,
            };
            match onboarding::register_employer(&context.registry, &registration, &terms).await {
                Ok(()) => {}
                Err(OnboardingError::MissingPayrollTaxNumber { recipient, .. }) => bail!(
                    "recipient {recipient} is a pension insurer: give --payroll-tax-number (loonheffingennummer)"
                ),
                Err(OnboardingError::Registry(error @ RegistryError::NotFound { .. })) => {
                    return Err(error.into());
                }
                Err(error) => return Err(error).context("cannot register the employer"),
            }
            output.text(format!(
                "employer {employer_key} linked to {}",
                if arguments.recipients.is_empty() {
                    "no recipients".to_owned()
                } else {
                    arguments.recipients.join(", ")
                }
            ));
            if output.is_json() {
                output
                    .json(&serde_json::json!({ "employer_key": employer_key, "registered": true }));
            }
            Ok(())
        }
        EmployerCommand::List => {
            let snapshot = context.registry.snapshot().await?;
            let records: Vec<EmployerRow> = snapshot
                .employers
                .values()
                .map(|employer| EmployerRow {
                    employer_key: employer.employer_key.clone(),
                    connection: employer.connection_id.clone(),
                    source_employer_id: employer.source_employer_id.clone(),
                    name: employer.name.clone(),
                    recipients: employer.recipients.clone(),
                    enabled: employer.enabled,
                })
                .collect();
            let rows: Vec<Vec<String>> = records
                .iter()
                .map(|row| {
                    vec![
                        row.employer_key.clone(),
                        row.connection.clone(),
                        row.name.clone(),
                        row.recipients.join(","),
                    ]
                })
                .collect();
            output.table(
                &["EMPLOYER", "CONNECTION", "NAME", "RECIPIENTS"],
                &rows,
                &records,
            );
            Ok(())
        }
        EmployerCommand::Discover { .. } => unreachable!("dispatched to connection::discover"),
        EmployerCommand::Remove { employer_key } => {
            context
                .registry
                .remove_employer(&employer_key)
                .await
                .with_context(|| format!("cannot remove employer {employer_key}"))?;
            output.text(format!("employer {employer_key} removed"));
            if output.is_json() {
                output.json(&serde_json::json!({ "employer_key": employer_key, "removed": true }));
            }
            Ok(())
        }
    }
}
