//! Onboarding steps with a rule beyond one record write, shared by `koppel recipient add` and
//! `koppel employer add` and by the test harness that onboards a simulator suite
//! (`koppel-harness`), so both onboard the same way.
//!
//! - Re-registering a pension insurer keeps the employers already linked to it: `recipient
//!   add` changes an endpoint or a token, not which employers the insurer serves.
//! - Registering an employer links it on every pension-insurer recipient it names first,
//!   under its payroll tax number (loonheffingennummer), so delivery needs no other lookup.

use crate::model::{EmployerRegistration, InsurerEmployerLink, Recipient, RecipientSettings};
use crate::store::{Registry, RegistryError};

/// Why an onboarding step was refused.
#[derive(Debug, thiserror::Error)]
pub enum OnboardingError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A pension insurer identifies employers by payroll tax number, and the employer has none.
    #[error(
        "recipient {recipient} is a pension insurer and employer {employer_key} has no payroll tax number (loonheffingennummer)"
    )]
    MissingPayrollTaxNumber {
        recipient: String,
        employer_key: String,
    },
}

/// The terms of an employer's link at a pension insurer, besides its payroll tax number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InsurerTerms {
    pub contract_number: Option<String>,
    /// The employer's one pension scheme, for a source that reports none per employment.
    pub scheme_id: Option<String>,
}

/// Registers `recipient`, keeping the employer links a pension insurer of the same name
/// already has. Returns the record as written.
pub async fn register_recipient(
    registry: &Registry,
    mut recipient: Recipient,
) -> Result<Recipient, RegistryError> {
    if let RecipientSettings::PensionInsurer { employer_links, .. } = &mut recipient.settings
        && let Ok(Recipient {
            settings:
                RecipientSettings::PensionInsurer {
                    employer_links: existing,
                    ..
                },
            ..
        }) = registry.recipient(&recipient.name).await
    {
        for (employer_key, link) in existing {
            employer_links.entry(employer_key).or_insert(link);
        }
    }
    registry.put_recipient(&recipient).await?;
    Ok(recipient)
}

/// The default employer key: the connection id plus the start of the source's employer id,
/// which is unique enough within a connection and readable in subjects.
pub fn default_employer_key(connection_id: &str, source_employer_id: &str) -> String {
    let short: String = source_employer_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect();
    format!("{connection_id}-{short}")
}

/// Registers `registration`, after linking it on every pension-insurer recipient it names
/// with `terms`. Fails before writing the employer when such a recipient is missing or the
/// employer has no payroll tax number.
pub async fn register_employer(
    registry: &Registry,
    registration: &EmployerRegistration,
    terms: &InsurerTerms,
) -> Result<(), OnboardingError> {
    for recipient_name in &registration.recipients {
        let mut recipient = registry.recipient(recipient_name).await?;
        if let RecipientSettings::PensionInsurer { employer_links, .. } = &mut recipient.settings {
            let Some(payroll_tax_number) = registration.payroll_tax_number.clone() else {
                return Err(OnboardingError::MissingPayrollTaxNumber {
                    recipient: recipient_name.clone(),
                    employer_key: registration.employer_key.clone(),
                });
            };
            employer_links.insert(
                registration.employer_key.clone(),
                InsurerEmployerLink {
                    payroll_tax_number,
                    contract_number: terms.contract_number.clone(),
                    scheme_id: terms.scheme_id.clone(),
                },
            );
            registry.put_recipient(&recipient).await?;
        }
    }
    registry.put_employer(registration).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_key_is_the_connection_and_eight_alphanumerics_of_the_source_id() {
        assert_eq!(
            default_employer_key("loket-acme", "1001"),
            "loket-acme-1001"
        );
        assert_eq!(
            default_employer_key("unit4", "6f1c-2b9e-44aa-9f00"),
            "unit4-6f1c2b9e"
        );
        assert_eq!(default_employer_key("c", "--"), "c-");
    }
}
