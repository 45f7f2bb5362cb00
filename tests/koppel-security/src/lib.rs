//! The secret scanner the security tests run over everything koppel prints and logs: known
//! values (configured secrets, issued tokens, BSNs) and shapes of secrets the tests cannot know
//! in advance, reported with every hit replaced by `<HIT>` so a failing test never prints a
//! secret. The tests themselves are in `tests/it`; see their module docs for what each proves.

use std::collections::BTreeSet;

/// One thing that must not appear: a secret, a token or a BSN, and how to match it.
#[derive(Debug, Clone)]
pub struct Needle {
    /// What it is, printable (never the value itself): `bsn #12`, `UNIT4_CLIENT_SECRET`.
    pub label: String,
    pub value: String,
    /// A number must not match inside a longer run of digits (a BSN inside a nanosecond
    /// timestamp is not a leak).
    pub digit_bounded: bool,
}

impl Needle {
    pub fn text(label: impl Into<String>, value: impl Into<String>) -> Self {
        Needle {
            label: label.into(),
            value: value.into(),
            digit_bounded: false,
        }
    }

    pub fn number(label: impl Into<String>, value: impl Into<String>) -> Self {
        Needle {
            label: label.into(),
            value: value.into(),
            digit_bounded: true,
        }
    }

    /// Byte offsets where the needle occurs in `line`.
    fn occurrences(&self, line: &str) -> Vec<usize> {
        let bytes = line.as_bytes();
        line.match_indices(self.value.as_str())
            .map(|(start, _)| start)
            .filter(|start| {
                if !self.digit_bounded {
                    return true;
                }
                let end = start + self.value.len();
                let before = start
                    .checked_sub(1)
                    .and_then(|index| bytes.get(index))
                    .is_some_and(u8::is_ascii_digit);
                let after = bytes.get(end).is_some_and(u8::is_ascii_digit);
                !before && !after
            })
            .collect()
    }
}

/// A shape of secret found by pattern, for values the test cannot know in advance (tokens the
/// simulators issued inside the demo process, the demo's own sealing key).
#[derive(Debug, Clone, Copy)]
pub enum SecretShape {
    /// At least 64 lowercase hex digits in a row: an opaque token as the Loket and Unit4
    /// simulators issue them (two simple UUIDs). Shorter runs are ids (a simple UUID is 32).
    OpaqueToken,
    /// 43 standard-base64 characters and `=`: a 32-byte key as `koppel key generate` prints it.
    Base64Key,
}

impl SecretShape {
    pub fn label(self) -> &'static str {
        match self {
            SecretShape::OpaqueToken => "opaque-token-shaped value (64+ hex digits)",
            SecretShape::Base64Key => "32-byte-key-shaped value (base64)",
        }
    }

    /// Byte ranges of the shape in `line`.
    pub fn find(self, line: &str) -> Vec<(usize, usize)> {
        let bytes = line.as_bytes();
        let mut found = Vec::new();
        let mut index = 0;
        while index < bytes.len() {
            let in_run = |byte: u8| match self {
                SecretShape::OpaqueToken => byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte),
                SecretShape::Base64Key => {
                    byte.is_ascii_alphanumeric() || byte == b'+' || byte == b'/'
                }
            };
            if !in_run(bytes[index]) {
                index += 1;
                continue;
            }
            let start = index;
            while index < bytes.len() && in_run(bytes[index]) {
                index += 1;
            }
            let length = index - start;
            match self {
                SecretShape::OpaqueToken if length >= 64 => found.push((start, index)),
                SecretShape::Base64Key if length == 43 && bytes.get(index) == Some(&b'=') => {
                    found.push((start, index + 1));
                }
                _ => {}
            }
        }
        found
    }
}

/// What the scan found: printable descriptions only, the matched values replaced by `<HIT>`.
#[derive(Debug, Default)]
pub struct ScanReport {
    pub lines_scanned: usize,
    pub bytes_scanned: usize,
    pub hits: Vec<String>,
}

impl ScanReport {
    pub fn scan(&mut self, source: &str, text: &str, needles: &[Needle], shapes: &[SecretShape]) {
        for (number, line) in text.lines().enumerate() {
            self.lines_scanned += 1;
            self.bytes_scanned += line.len();
            let mut ranges: Vec<(usize, usize, String)> = Vec::new();
            for needle in needles {
                for start in needle.occurrences(line) {
                    ranges.push((start, start + needle.value.len(), needle.label.clone()));
                }
            }
            for shape in shapes {
                for (start, end) in shape.find(line) {
                    ranges.push((start, end, shape.label().to_owned()));
                }
            }
            if ranges.is_empty() {
                continue;
            }
            let labels: Vec<String> = ranges.iter().map(|(_, _, label)| label.clone()).collect();
            self.hits.push(format!(
                "{source} line {}: [{}] {}",
                number + 1,
                labels.join(", "),
                redact(line, &ranges)
            ));
        }
    }
}

/// `line` with every range replaced by `<HIT>`, so a failing test never prints a secret.
fn redact(line: &str, ranges: &[(usize, usize, String)]) -> String {
    let mut covered = vec![false; line.len()];
    for (start, end, _) in ranges {
        for flag in covered.iter_mut().take(*end).skip(*start) {
            *flag = true;
        }
    }
    let mut out = String::new();
    let mut in_hit = false;
    for (index, character) in line.char_indices() {
        if covered[index] {
            if !in_hit {
                out.push_str("<HIT>");
                in_hit = true;
            }
        } else {
            in_hit = false;
            out.push(character);
        }
    }
    out
}

/// Every `bsn` string anywhere in a rendered event (as `tail --show-pii` prints it).
pub fn collect_bsns(value: &serde_json::Value, found: &mut BTreeSet<u32>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, child) in map {
                match (key.as_str(), child) {
                    ("bsn", serde_json::Value::String(bsn)) => match bsn.parse() {
                        Ok(number) => {
                            found.insert(number);
                        }
                        // The value is not printed: it may be a BSN in another shape.
                        Err(_) => panic!("a `bsn` field that is not a number"),
                    },
                    _ => collect_bsns(child, found),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|item| collect_bsns(item, found)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scanner_finds_what_it_must_and_never_prints_it() {
        let needles = [
            Needle::text("secret", "hunter2"),
            Needle::number("bsn #1", "123456782"),
        ];
        let shapes = [SecretShape::OpaqueToken, SecretShape::Base64Key];
        let mut report = ScanReport::default();
        let token = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let key = koppel_registry::SecretKey::generate_base64().unwrap();
        let text = format!(
            "clean line 2026-01-01\npassword=hunter2 ok\nbsn=123456782\nts=11234567821\ntoken {token}\nkey {key}\nid 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
        );
        report.scan("sample", &text, &needles, &shapes);
        assert_eq!(report.lines_scanned, 7);
        assert_eq!(report.hits.len(), 4, "{:#?}", report.hits);
        let joined = report.hits.join("\n");
        for secret in ["hunter2", "123456782", token.as_str(), key.as_str()] {
            assert!(!joined.contains(secret), "{joined}");
        }
        assert!(joined.contains("password=<HIT> ok"), "{joined}");
    }
}
