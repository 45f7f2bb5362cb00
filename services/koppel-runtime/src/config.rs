//! Layered configuration: an optional TOML file, then `KOPPEL_` environment variables on top,
//! deserialized into one typed struct per service with `deny_unknown_fields`, so a typo is an
//! error at start instead of a silently ignored setting. The layering is config-rs's; this
//! module adds the TOML source and the rule that an error never echoes a configured value.
//!
//! Environment variables name a section and a key, joined by double underscores, and are
//! lower-cased: `KOPPEL_NATS__URL=nats://a:4222` sets `[nats] url`. Variables without `__`
//! (`KOPPEL_CONFIG`, `KOPPEL_SECRET_KEY`, `KOPPEL_NATS_IMAGE`...) are not configuration and
//! are left alone, so `deny_unknown_fields` does not trip over them. A value becomes whatever
//! type its field has (`3` a number for `replicas`, a string for `password`); surrounding
//! double quotes are removed: `KOPPEL_X__PIN='"0123"'` is the text `0123`.

use std::path::{Path, PathBuf};

use config::{Config, Environment, Map, Source, Value, ValueKind};
use serde::de::DeserializeOwned;

/// The prefix of every koppel environment variable.
pub const ENV_PREFIX: &str = "KOPPEL_";

/// What went wrong loading a config. No variant carries a configured value: the reasons are
/// rebuilt from the error's kind and key, because a value in the wrong field may be a secret.
/// (config-rs's own error is not kept as a source for that reason: its `Debug` and `Display`
/// print the offending value.)
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("invalid configuration: {reason}")]
    Invalid { reason: String },
}

/// Loads `T` from `file` (if any) and the process environment.
pub fn load_config<T: DeserializeOwned>(file: Option<&Path>) -> Result<T, ConfigError> {
    load_config_from(file, std::env::vars())
}

/// As [`load_config`], with the environment given: tests pass their own.
///
/// The layering is config-rs's (`config` on crates.io): the TOML file, then `KOPPEL_`
/// variables through its `Environment` source with `__` as the separator. Variables are passed
/// as strings and config-rs converts them to the field's type when deserializing, so a numeric
/// password stays a string and a port becomes a number, with no guessing beforehand.
pub fn load_config_from<T: DeserializeOwned>(
    file: Option<&Path>,
    environment: impl IntoIterator<Item = (String, String)>,
) -> Result<T, ConfigError> {
    let mut builder = Config::builder();
    if let Some(path) = file {
        builder = builder.add_source(TomlFile::read(path)?);
    }
    let variables: Map<String, String> = environment
        .into_iter()
        .filter(|(name, _)| name.starts_with(ENV_PREFIX) && name.contains("__"))
        .map(|(name, raw)| (name, unquote(raw)))
        .collect();
    builder = builder.add_source(
        Environment::with_prefix(ENV_PREFIX.trim_end_matches('_'))
            .prefix_separator("_")
            .separator("__")
            .source(Some(variables)),
    );
    builder
        .build()
        .and_then(Config::try_deserialize)
        .map_err(|error| ConfigError::Invalid {
            reason: describe(&error),
        })
}

/// A quoted value (`'"0123"'`) is the text between the quotes: the way to keep a leading or
/// trailing space, or to be explicit that a value is text.
fn unquote(raw: String) -> String {
    match raw
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
    {
        Some(quoted) => quoted.to_owned(),
        None => raw,
    }
}

/// The TOML file, parsed with `toml` (whose error message, unlike its `Display`, quotes no
/// line of the file) and handed to config-rs as a source.
#[derive(Debug, Clone)]
struct TomlFile {
    table: Map<String, Value>,
}

impl TomlFile {
    fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let table = toml::from_str::<toml::Table>(&text).map_err(|error| ConfigError::Parse {
            path: path.to_owned(),
            reason: error.message().to_owned(),
        })?;
        let origin = path.display().to_string();
        let table = table
            .into_iter()
            .map(|(key, value)| (key, to_config_value(&origin, value)))
            .collect();
        Ok(TomlFile { table })
    }
}

impl Source for TomlFile {
    fn clone_into_box(&self) -> Box<dyn Source + Send + Sync> {
        Box::new(self.clone())
    }

    fn collect(&self) -> Result<Map<String, Value>, config::ConfigError> {
        Ok(self.table.clone())
    }
}

fn to_config_value(origin: &str, value: toml::Value) -> Value {
    let kind = match value {
        toml::Value::String(text) => ValueKind::String(text),
        toml::Value::Integer(integer) => ValueKind::I64(integer),
        toml::Value::Float(float) => ValueKind::Float(float),
        toml::Value::Boolean(boolean) => ValueKind::Boolean(boolean),
        toml::Value::Datetime(datetime) => ValueKind::String(datetime.to_string()),
        toml::Value::Array(items) => ValueKind::Array(
            items
                .into_iter()
                .map(|item| to_config_value(origin, item))
                .collect(),
        ),
        toml::Value::Table(table) => ValueKind::Table(
            table
                .into_iter()
                .map(|(key, item)| (key, to_config_value(origin, item)))
                .collect(),
        ),
    };
    Value::new(Some(&origin.to_owned()), kind)
}

/// Describes a config-rs error without the value it is about: a type error keeps what was
/// expected, the key and where the value came from; a serde message loses its quoted value.
fn describe(error: &config::ConfigError) -> String {
    match error {
        config::ConfigError::Type {
            origin,
            expected,
            key,
            ..
        } => {
            let mut reason = format!("invalid type: <redacted>, expected {expected}");
            if let Some(key) = key {
                reason.push_str(&format!(" for key `{key}`"));
            }
            if let Some(origin) = origin {
                reason.push_str(&format!(" in {origin}"));
            }
            reason
        }
        config::ConfigError::At { error, origin, key } => {
            let mut reason = describe(error);
            if let Some(key) = key {
                reason.push_str(&format!(" for key `{key}`"));
            }
            if let Some(origin) = origin {
                reason.push_str(&format!(" in {origin}"));
            }
            reason
        }
        config::ConfigError::Message(message) => redact_values(message),
        config::ConfigError::NotFound(key) => format!("missing configuration field `{key}`"),
        other => redact_values(&other.to_string()),
    }
}

/// Drops the offending value from a serde message (`invalid value: string "x", expected
/// ...`, `unknown variant `x`, expected ...`, `enum X does not have variant constructor x`):
/// it may be a secret put in the wrong field. Keeps its kind, which is what the operator
/// needs. Other messages (unknown field names) hold no values and pass unchanged.
fn redact_values(message: &str) -> String {
    // config-rs's own wording for an unknown variant ends with the value.
    const NO_VARIANT: &str = "does not have variant constructor ";
    if let Some(start) = message.find(NO_VARIANT) {
        return format!("{}<redacted>", &message[..start + NO_VARIANT.len()]);
    }
    for prefix in ["invalid type: ", "invalid value: ", "unknown variant "] {
        if let Some(start) = message.find(prefix)
            && let Some(length) = message[start..].rfind(", expected")
        {
            let value_start = start + prefix.len();
            let value_end = start + length;
            let kind: Vec<&str> = message[value_start..value_end]
                .split_whitespace()
                .take_while(|word| !word.starts_with(['"', '`', '\'']))
                .collect();
            return format!(
                "{}{} <redacted>{}",
                &message[..value_start],
                kind.join(" "),
                &message[value_end..]
            );
        }
    }
    message.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::{ExposeSecret, SecretString};
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Example {
        name: String,
        nats: Nats,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Nats {
        url: String,
        #[serde(default)]
        replicas: u32,
        password: Option<SecretString>,
        #[serde(default)]
        mode: Mode,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Mode {
        #[default]
        Plain,
        Tls,
    }

    fn write(text: &str) -> tempfile_path::TempFile {
        tempfile_path::TempFile::new(text)
    }

    mod tempfile_path {
        //! A throwaway file for config tests, removed on drop.
        pub(super) struct TempFile(pub(super) std::path::PathBuf);
        impl TempFile {
            pub(super) fn new(text: &str) -> Self {
                let path = std::env::temp_dir().join(format!(
                    "koppel-config-{}.toml",
                    std::process::id() as u128 * 1_000_000 + u128::from(rand_suffix())
                ));
                std::fs::write(&path, text).unwrap();
                TempFile(path)
            }
        }
        fn rand_suffix() -> u32 {
            use std::sync::atomic::{AtomicU32, Ordering};
            static NEXT: AtomicU32 = AtomicU32::new(0);
            NEXT.fetch_add(1, Ordering::Relaxed)
        }
        impl Drop for TempFile {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    #[test]
    fn environment_overrides_the_file() {
        let file = write("name = \"a\"\n[nats]\nurl = \"nats://file:4222\"\nreplicas = 1\n");
        let env = vec![
            ("KOPPEL_NATS__URL".to_owned(), "nats://env:4222".to_owned()),
            ("KOPPEL_NATS__REPLICAS".to_owned(), "3".to_owned()),
            ("UNRELATED".to_owned(), "x".to_owned()),
        ];
        let config: Example = load_config_from(Some(&file.0), env).unwrap_err_or_config();
        assert_eq!(config.name, "a");
        assert_eq!(config.nats.url, "nats://env:4222");
        assert_eq!(config.nats.replicas, 3);
        assert!(config.nats.password.is_none());
    }

    trait UnwrapConfig<T> {
        fn unwrap_err_or_config(self) -> T;
    }
    impl<T> UnwrapConfig<T> for Result<T, ConfigError> {
        fn unwrap_err_or_config(self) -> T {
            match self {
                Ok(config) => config,
                Err(error) => panic!("{error}"),
            }
        }
    }

    #[test]
    fn variables_without_a_section_are_not_configuration() {
        let env = vec![
            ("KOPPEL_NATS__URL".to_owned(), "u".to_owned()),
            ("KOPPEL_SECRET_KEY".to_owned(), "not-config".to_owned()),
            ("KOPPEL_NATS_IMAGE".to_owned(), "koppel/nats:1".to_owned()),
        ];
        let file = write("name = \"a\"\n");
        let config: Example = load_config_from(Some(&file.0), env).unwrap();
        assert_eq!(config.nats.url, "u");
    }

    #[test]
    fn quoted_values_stay_strings() {
        let env = vec![
            ("KOPPEL_NATS__URL".to_owned(), "u".to_owned()),
            ("KOPPEL_NATS__PASSWORD".to_owned(), "\"0123\"".to_owned()),
        ];
        let file = write("name = \"n\"\n");
        let config: Example = load_config_from(Some(&file.0), env).unwrap();
        assert_eq!(config.nats.password.unwrap().expose_secret(), "0123");
    }

    #[test]
    fn an_unquoted_numeric_secret_is_read_as_a_string() {
        let env = vec![
            ("KOPPEL_NATS__URL".to_owned(), "u".to_owned()),
            ("KOPPEL_NATS__PASSWORD".to_owned(), "987654".to_owned()),
        ];
        let file = write("name = \"n\"\n");
        let config: Example = load_config_from(Some(&file.0), env).unwrap();
        assert_eq!(config.nats.password.unwrap().expose_secret(), "987654");
    }

    #[test]
    fn type_errors_never_echo_the_value() {
        let file =
            write("name = \"a\"\n[nats]\nurl = \"u\"\nreplicas = \"s3cret-in-wrong-field\"\n");
        let error = load_config_from::<Example>(Some(&file.0), Vec::new()).unwrap_err();
        assert!(!error.to_string().contains("s3cret"), "{error}");
        assert!(error.to_string().contains("nats.replicas"), "{error}");
    }

    #[test]
    fn unknown_fields_are_errors() {
        let file = write("name = \"a\"\nnmae = \"typo\"\n[nats]\nurl = \"u\"\n");
        let error = load_config_from::<Example>(Some(&file.0), Vec::new()).unwrap_err();
        assert!(
            error.to_string().contains("unknown field `nmae`"),
            "{error}"
        );
    }

    #[test]
    fn a_missing_file_is_a_clear_error() {
        let error =
            load_config_from::<Example>(Some(Path::new("/nonexistent/koppel.toml")), Vec::new())
                .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("cannot read config file /nonexistent/koppel.toml"),
            "{error}"
        );
    }

    #[test]
    fn environment_type_errors_never_echo_the_value() {
        let env = vec![
            ("KOPPEL_NATS__URL".to_owned(), "u".to_owned()),
            (
                "KOPPEL_NATS__REPLICAS".to_owned(),
                "s3cret-in-wrong-field".to_owned(),
            ),
        ];
        let file = write("name = \"a\"\n");
        let error = load_config_from::<Example>(Some(&file.0), env).unwrap_err();
        assert!(!error.to_string().contains("s3cret"), "{error}");
        assert!(!format!("{error:?}").contains("s3cret"), "{error:?}");
        assert!(error.to_string().contains("nats.replicas"), "{error}");
    }

    #[test]
    fn unknown_variants_never_echo_the_value() {
        let file = write("name = \"a\"\n[nats]\nurl = \"u\"\nmode = \"s3cret-as-mode\"\n");
        let error = load_config_from::<Example>(Some(&file.0), Vec::new()).unwrap_err();
        assert!(!error.to_string().contains("s3cret"), "{error}");
        assert!(error.to_string().contains("variant"), "{error}");
        assert!(error.to_string().contains("nats.mode"), "{error}");
        let env = vec![
            ("KOPPEL_NATS__URL".to_owned(), "u".to_owned()),
            ("KOPPEL_NATS__MODE".to_owned(), "tls".to_owned()),
        ];
        let config: Example = load_config_from(Some(&write("name = \"a\"\n").0), env).unwrap();
        assert!(matches!(config.nats.mode, Mode::Tls));
    }

    #[test]
    fn toml_syntax_errors_never_quote_the_file() {
        let file = write("name = \"a\"\n[nats]\npassword = \"s3cret-unterminated\n");
        let error = load_config_from::<Example>(Some(&file.0), Vec::new()).unwrap_err();
        assert!(matches!(error, ConfigError::Parse { .. }), "{error}");
        assert!(!error.to_string().contains("s3cret"), "{error}");
    }

    #[test]
    fn a_missing_field_names_its_key() {
        let file = write("name = \"a\"\n[nats]\nreplicas = 1\n");
        let error = load_config_from::<Example>(Some(&file.0), Vec::new()).unwrap_err();
        assert!(error.to_string().contains("url"), "{error}");
    }
}
