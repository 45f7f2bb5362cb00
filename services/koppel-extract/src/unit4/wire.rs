//! The JSON shapes of koppel's provisional Unit4 contract (docs/sources/unit4.md), as lenient
//! serde types: every scalar is an optional `Value` (a number may come as a string or the other
//! way round; the mapping, not the parser, decides what is mandatory and reads decimals from
//! their text), unknown members are ignored, and each list item is parsed on its own, so one
//! malformed record fails only itself.

use serde::Deserialize;
use serde_json::Value;

use crate::http_source::Page;

/// The member that identifies each list's items, for record errors of items that do not parse.
pub(crate) const EMPLOYER_ID_MEMBER: &str = "werkgeverId";
pub(crate) const EMPLOYEE_ID_MEMBER: &str = "werknemerId";
pub(crate) const EMPLOYMENT_ID_MEMBER: &str = "dienstverbandId";

/// The collection envelope: `{"data": [...], "paginering": {...}}`.
#[derive(Debug, Deserialize)]
pub(crate) struct Envelope {
    #[serde(default)]
    pub(crate) data: Vec<Value>,
    #[serde(default)]
    pub(crate) paginering: Option<Paginering>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Paginering {
    #[serde(default)]
    pub(crate) pagina: Option<u64>,
    #[serde(default)]
    pub(crate) totaal_paginas: Option<u64>,
}

impl From<Envelope> for Page<Value> {
    fn from(envelope: Envelope) -> Self {
        let paginering = envelope.paginering.unwrap_or_default();
        Page {
            items: envelope.data,
            current_page: paginering.pagina,
            total_pages: paginering.totaal_paginas,
        }
    }
}

/// A werkgever (employer).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Werkgever {
    pub werkgever_id: String,
    #[serde(default)]
    pub werkgever_nummer: Option<Value>,
    #[serde(default)]
    pub naam: Option<Value>,
    #[serde(default)]
    pub loonheffingennummer: Option<Value>,
    #[serde(default)]
    pub kvk_nummer: Option<Value>,
    /// The employer's full-time week; the fallback when an employment does not say.
    #[serde(default)]
    pub voltijd_uren_per_week: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Adres {
    #[serde(default)]
    pub straat: Option<Value>,
    #[serde(default)]
    pub huisnummer: Option<Value>,
    #[serde(default)]
    pub huisnummer_toevoeging: Option<Value>,
    #[serde(default)]
    pub postcode: Option<Value>,
    #[serde(default)]
    pub woonplaats: Option<Value>,
    #[serde(default)]
    pub land: Option<Value>,
}

/// A werknemer (employee). Its `Debug` leaves the BSN out.
#[derive(Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Werknemer {
    pub werknemer_id: String,
    #[serde(default)]
    pub personeelsnummer: Option<Value>,
    #[serde(default)]
    pub voorletters: Option<Value>,
    #[serde(default)]
    pub voornaam: Option<Value>,
    #[serde(default)]
    pub tussenvoegsel: Option<Value>,
    #[serde(default)]
    pub achternaam: Option<Value>,
    #[serde(default)]
    pub tussenvoegsel_partner: Option<Value>,
    #[serde(default)]
    pub achternaam_partner: Option<Value>,
    /// BRP letters: E, P, V, N.
    #[serde(default)]
    pub naamgebruik: Option<Value>,
    #[serde(default)]
    pub geboortedatum: Option<Value>,
    /// M, V or O.
    #[serde(default)]
    pub geslacht: Option<Value>,
    #[serde(default)]
    pub bsn: Option<Value>,
    #[serde(default)]
    pub email_prive: Option<Value>,
    #[serde(default)]
    pub email_zakelijk: Option<Value>,
    #[serde(default)]
    pub telefoon_mobiel: Option<Value>,
    #[serde(default)]
    pub adres: Option<Adres>,
}

impl std::fmt::Debug for Werknemer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Identifiers only: names, addresses and the BSN are personal data.
        f.debug_struct("Werknemer")
            .field("werknemer_id", &self.werknemer_id)
            .field("personeelsnummer", &self.personeelsnummer)
            .finish_non_exhaustive()
    }
}

/// An organisational unit reference: `afdeling` (`afdelingId`) or `kostenplaats`
/// (`kostenplaatsId`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Eenheid {
    #[serde(default, alias = "afdelingId", alias = "kostenplaatsId")]
    pub id: Option<Value>,
    #[serde(default)]
    pub code: Option<Value>,
    #[serde(default)]
    pub omschrijving: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Uren {
    #[serde(default)]
    pub uren_per_week: Option<Value>,
    #[serde(default)]
    pub voltijd_uren_per_week: Option<Value>,
    /// From when these hours hold.
    #[serde(default)]
    pub ingangsdatum: Option<Value>,
}

/// The placement (department, function, cost center, place of work) and from when it holds.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plaatsing {
    #[serde(default)]
    pub ingangsdatum: Option<Value>,
    /// Place of work (standplaats).
    #[serde(default)]
    pub standplaats: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Salarisgegevens {
    #[serde(default)]
    pub bruto_salaris: Option<Value>,
    /// `maand`, `uur`, `week`, `4 weken`, `jaar`.
    #[serde(default)]
    pub periode: Option<Value>,
    #[serde(default)]
    pub pensioengevend_jaarsalaris: Option<Value>,
    #[serde(default)]
    pub pensioenregeling: Option<Value>,
    #[serde(default)]
    pub ingangsdatum: Option<Value>,
}

/// A dienstverband (employment), with hours and salary embedded.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dienstverband {
    pub dienstverband_id: String,
    #[serde(default)]
    pub werknemer_id: Option<Value>,
    #[serde(default)]
    pub inkomstenverhouding_nummer: Option<Value>,
    #[serde(default)]
    pub datum_in_dienst: Option<Value>,
    #[serde(default)]
    pub datum_uit_dienst: Option<Value>,
    #[serde(default)]
    pub reden_uit_dienst: Option<Value>,
    #[serde(default)]
    pub functie: Option<Value>,
    #[serde(default)]
    pub afdeling: Option<Eenheid>,
    #[serde(default)]
    pub kostenplaats: Option<Eenheid>,
    #[serde(default)]
    pub leidinggevende_werknemer_id: Option<Value>,
    #[serde(default)]
    pub plaatsing: Option<Plaatsing>,
    #[serde(default)]
    pub uren: Option<Uren>,
    #[serde(default)]
    pub salarisgegevens: Option<Salarisgegevens>,
}
