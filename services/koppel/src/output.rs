//! The command's output layer: the only place that writes to stdout. Text for people, JSON for
//! scripts (`--output json`: one JSON document per line, the summary last).

#![allow(clippy::print_stdout)]

use std::io::Write;

use clap::ValueEnum;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum OutputFormat {
    #[default]
    Text,
    Json,
}

/// Where command results go.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub format: OutputFormat,
}

impl Output {
    pub fn is_json(&self) -> bool {
        self.format == OutputFormat::Json
    }

    /// A line for people; nothing in JSON mode.
    pub fn text(&self, line: impl AsRef<str>) {
        if !self.is_json() {
            println!("{}", line.as_ref());
        }
    }

    /// A JSON document on one line; in text mode, pretty-printed.
    pub fn json<T: Serialize>(&self, value: &T) {
        let rendered = if self.is_json() {
            serde_json::to_string(value)
        } else {
            serde_json::to_string_pretty(value)
        };
        match rendered {
            Ok(text) => println!("{text}"),
            Err(error) => tracing::error!(%error, "Cannot render output as JSON."),
        }
    }

    /// One JSON line, in both modes: for streams of records (`tail`).
    pub fn json_line(&self, value: &serde_json::Value) {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{value}");
    }

    /// Either a table (text) or the rows as a JSON array (json).
    pub fn table<T: Serialize>(&self, headers: &[&str], rows: &[Vec<String>], records: &[T]) {
        if self.is_json() {
            self.json(&records);
            return;
        }
        let mut widths: Vec<usize> = headers.iter().map(|header| header.len()).collect();
        for row in rows {
            for (index, cell) in row.iter().enumerate() {
                if let Some(width) = widths.get_mut(index) {
                    *width = (*width).max(cell.chars().count());
                }
            }
        }
        let render = |cells: Vec<String>| {
            cells
                .iter()
                .enumerate()
                .map(|(index, cell)| {
                    format!(
                        "{cell:<width$}",
                        width = widths.get(index).copied().unwrap_or(0)
                    )
                })
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_owned()
        };
        println!(
            "{}",
            render(headers.iter().map(|header| (*header).to_owned()).collect())
        );
        for row in rows {
            println!("{}", render(row.clone()));
        }
    }
}

/// Replaces every BSN in a rendered event with its mask (`*****1234`), unless the caller asked
/// for personal data. Walks the whole document, so a BSN anywhere in it is caught.
pub fn mask_bsns(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if key == "bsn" {
                    if let serde_json::Value::String(bsn) = child {
                        let tail: String = bsn
                            .chars()
                            .rev()
                            .take(4)
                            .collect::<Vec<_>>()
                            .into_iter()
                            .rev()
                            .collect();
                        *bsn = format!("*****{tail}");
                    }
                } else {
                    mask_bsns(child);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(mask_bsns),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bsns_are_masked_wherever_they_are() {
        let mut value = serde_json::json!({"data": {"employee": {"bsn": "111222333"}, "list": [{"bsn": "123456782"}]}});
        mask_bsns(&mut value);
        let text = value.to_string();
        assert!(
            !text.contains("111222333") && !text.contains("123456782"),
            "{text}"
        );
        assert!(text.contains("*****2333"));
    }
}
