//! Layered configuration: an optional TOML file, then `KOPPEL_` environment variables on top,
//! deserialized into one typed struct per service with `deny_unknown_fields`, so a typo is an
//! error at start instead of a silently ignored setting.
//!
//! Environment variables name a section and a key, joined by double underscores, and are
//! lower-cased: `KOPPEL_NATS__URL=nats://a:4222` sets `[nats] url`. Variables without `__`
//! (`KOPPEL_CONFIG`, `KOPPEL_SECRET_KEY`, `KOPPEL_NATS_IMAGE`...) are not configuration and
//! are left alone, so `deny_unknown_fields` does not trip over them. Values that look like integers or
//! booleans become those; quote a value to force a string: `KOPPEL_X__PIN='"0123"'`.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// The prefix of every koppel environment variable.
pub const ENV_PREFIX: &str = "KOPPEL_";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("environment variable {name} cannot be applied: {reason}")]
    Environment { name: String, reason: String },
    #[error("invalid configuration: {reason}")]
    Invalid { reason: String },
}

/// Loads `T` from `file` (if any) and the process environment.
pub fn load_config<T: DeserializeOwned>(file: Option<&Path>) -> Result<T, ConfigError> {
    load_config_from(file, std::env::vars())
}

/// As [`load_config`], with the environment given: tests pass their own.
pub fn load_config_from<T: DeserializeOwned>(
    file: Option<&Path>,
    environment: impl IntoIterator<Item = (String, String)>,
) -> Result<T, ConfigError> {
    let table = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            toml::from_str::<toml::Table>(&text).map_err(|error| ConfigError::Parse {
                path: path.to_owned(),
                reason: error.message().to_owned(),
            })?
        }
        None => toml::Table::new(),
    };
    let mut overrides: Vec<(String, String)> = environment
        .into_iter()
        .filter(|(name, _)| name.starts_with(ENV_PREFIX) && name.contains("__"))
        .collect();
    // Deterministic order: a parent (`KOPPEL_NATS`) before its children (`KOPPEL_NATS__URL`).
    overrides.sort();
    let overrides: Vec<(String, Vec<String>, String)> = overrides
        .into_iter()
        .map(|(name, raw)| {
            let path = name[ENV_PREFIX.len()..]
                .split("__")
                .map(str::to_lowercase)
                .collect();
            (name, path, raw)
        })
        .collect();
    // Paths whose environment value must stay a string although it looks like a number or a
    // boolean: learnt from the type errors of earlier attempts (a numeric password, say).
    let mut as_string: Vec<String> = Vec::new();
    loop {
        let mut attempt = table.clone();
        for (name, path, raw) in &overrides {
            let value = if as_string.contains(&path.join(".")) {
                toml::Value::String(raw.clone())
            } else {
                parse_scalar(raw)
            };
            apply(&mut attempt, path, value).map_err(|reason| ConfigError::Environment {
                name: name.clone(),
                reason,
            })?;
        }
        match T::deserialize(toml::Value::Table(attempt)) {
            Ok(config) => return Ok(config),
            Err(error) => {
                let message = error.to_string();
                let retry_path = failing_path(&message).filter(|path| {
                    message.contains("expected a string")
                        && !as_string.contains(path)
                        && overrides
                            .iter()
                            .any(|(_, env_path, _)| env_path.join(".") == *path)
                });
                match retry_path {
                    Some(path) => as_string.push(path),
                    None => {
                        return Err(ConfigError::Invalid {
                            reason: redact_values(&message),
                        });
                    }
                }
            }
        }
    }
}

/// The dotted path toml's deserializer names in its error (`... in `nats.password``).
fn failing_path(message: &str) -> Option<String> {
    let (_, tail) = message.rsplit_once("in `")?;
    Some(tail.trim_end().trim_end_matches('`').to_owned())
}

/// Drops the offending value from a type error (`invalid type: string "x", expected u32`): it
/// may be a secret put in the wrong field. Keeps its kind and the field path, which is what the
/// operator needs. Other messages (unknown field names) hold no values and pass unchanged.
fn redact_values(message: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(start) = message.find(prefix)
            && let Some(length) = message[start..].find(", expected")
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

fn parse_scalar(raw: &str) -> toml::Value {
    if let Some(quoted) = raw
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
    {
        return toml::Value::String(quoted.to_owned());
    }
    if let Ok(integer) = raw.parse::<i64>() {
        return toml::Value::Integer(integer);
    }
    match raw {
        "true" => toml::Value::Boolean(true),
        "false" => toml::Value::Boolean(false),
        _ => toml::Value::String(raw.to_owned()),
    }
}

fn apply(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    match path {
        [] => Err("empty name".to_owned()),
        [leaf] => {
            table.insert(leaf.clone(), value);
            Ok(())
        }
        [section, rest @ ..] => {
            let entry = table
                .entry(section.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match entry {
                toml::Value::Table(inner) => apply(inner, rest, value),
                _ => Err(format!("{section} is a value, not a section")),
            }
        }
    }
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
}
