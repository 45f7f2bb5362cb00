//! Avro implementations nobody here wrote decode koppel's stream: payloads published with
//! koppel's `Publisher` to a real NATS, read back raw with the schemas bucket beside them, are
//! decoded by fastavro and by the Apache Avro Java implementation's `BinaryMessageDecoder`. Each
//! finds the writer schema by the fingerprint it computes itself, so these tests fail if koppel's
//! fingerprint leaves the specification.
//!
//! The toolchains come from outside Cargo (`pip install fastavro`; Debian's `libavro-java` and
//! `default-jdk-headless`, which .ci/run installs). Missing on a developer's machine, a test
//! prints why it skips; with `CI=true` a missing toolchain fails the test.

use std::path::{Path, PathBuf};
use std::process::Command;

use futures::StreamExt;
use koppel_events::{Event, sample, schema::event_union_schema};
use koppel_nats::{PreparedEvent, Publisher, PublisherSettings};
use koppel_test_support::topology;

/// Jars of Debian's `libavro-java` and the dependencies its decoder loads.
const JAVA_CLASSPATH_JARS: [&str; 4] = [
    "/usr/share/java/avro.jar",
    "/usr/share/java/jackson-core-asl.jar",
    "/usr/share/java/jackson-mapper-asl.jar",
    "/usr/share/java/slf4j-api.jar",
];

/// A stream dump on disk: what a data team has, and the lines every decoder must print.
struct Dump {
    directory: PathBuf,
    expected: Vec<String>,
}

impl Drop for Dump {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.directory);
    }
}

/// Publishes one event of every type, then writes each stored message's raw payload, the whole
/// schemas bucket, and the union reader schema into a fresh directory.
async fn dump_of_a_real_stream() -> Dump {
    let topology = topology().await;
    let events: Vec<Event> = sample::one_of_each_type(7);
    let prepared: Vec<PreparedEvent> = events
        .iter()
        .map(|event| PreparedEvent::encode(&topology.names, event).unwrap())
        .collect();
    let report = Publisher::new(topology.jetstream.clone(), PublisherSettings::default())
        .publish_all(&prepared)
        .await
        .unwrap();
    assert_eq!(report.stored, events.len() as u64);

    let directory = std::env::temp_dir().join(format!("koppel-interop-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(directory.join("payloads")).unwrap();
    std::fs::create_dir_all(directory.join("schemas")).unwrap();

    let stream = topology.events_stream().await.unwrap();
    let mut expected = Vec::new();
    for (index, event) in events.iter().enumerate() {
        let message = stream.get_raw_message(index as u64 + 1).await.unwrap();
        let payload = message.payload.to_vec();
        // The header repeats the payload's fingerprint, which the decoders check by their own.
        assert_eq!(
            message
                .headers
                .get("Koppel-Schema-Fingerprint")
                .map(|value| value.as_str().to_owned()),
            Some(
                payload[2..10]
                    .iter()
                    .map(|byte| format!("{byte:02x}"))
                    .collect::<String>()
            )
        );
        let file = format!("{:06}.bin", index + 1);
        std::fs::write(directory.join("payloads").join(&file), &payload).unwrap();
        expected.push(expected_line(&file, event));
    }

    let mut keys = topology.schemas.keys().await.unwrap();
    while let Some(key) = keys.next().await {
        let key = key.unwrap();
        let json = topology.schemas.get(&key).await.unwrap().unwrap();
        std::fs::write(directory.join("schemas").join(format!("{key}.avsc")), json).unwrap();
    }
    let reader = serde_json::to_string(&event_union_schema().unwrap()).unwrap();
    std::fs::write(directory.join("reader.avsc"), reader).unwrap();
    Dump {
        directory,
        expected,
    }
}

fn expected_line(file: &str, event: &Event) -> String {
    let header = event.header();
    let salary = match event {
        Event::EmploymentStarted(event)
        | Event::EmploymentChanged(event)
        | Event::EmploymentEnded(event) => event.employment.salary.as_ref().map(|salary| {
            let mut amount = salary.amount.amount;
            // The contract's money scale: what the datum carries.
            amount.rescale(4);
            amount.to_string()
        }),
        _ => None,
    };
    [
        file.to_owned(),
        format!("nl.koppel.events.{}", header.event_type.schema_name()),
        header.event_id.to_string(),
        header.employer_key.clone(),
        header.entity_id.clone(),
        header.revision.to_string(),
        salary.unwrap_or_else(|| "-".to_owned()),
    ]
    .join("\t")
}

/// Whether a toolchain is usable; if not, skips (returns false) on a developer's machine and
/// fails under CI, so a skipped check never reads as passed there.
fn toolchain_available(name: &str, probe: &mut Command, extra_files: &[&str]) -> bool {
    let runs = probe
        .output()
        .map(|output| output.status.success())
        .unwrap_or(false);
    let missing_file = extra_files
        .iter()
        .find(|file| !Path::new(file).exists())
        .copied();
    let reason = match (runs, missing_file) {
        (true, None) => return true,
        (false, _) => format!("{name} is not installed"),
        (true, Some(file)) => format!("{name}: {file} is missing"),
    };
    if std::env::var("CI").is_ok_and(|value| value == "true") {
        panic!("{reason}; CI must run this check (see .ci/run)");
    }
    // A skip must be visible in the test output: that is its whole report.
    #[allow(clippy::print_stderr)]
    {
        eprintln!("SKIPPED: {reason}; install it to run this check (see .ci/run)");
    }
    false
}

fn interop_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(name)
}

fn lines_of(output: std::process::Output, decoder: &str) -> Vec<String> {
    assert!(
        output.status.success(),
        "{decoder} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn fastavro_decodes_the_stream_by_its_own_fingerprints() {
    if !toolchain_available(
        "fastavro (pip install fastavro)",
        Command::new("python3").args(["-c", "import fastavro"]),
        &[],
    ) {
        return;
    }
    let dump = dump_of_a_real_stream().await;

    let output = Command::new("python3")
        .arg(interop_file("decode_with_fastavro.py"))
        .arg(&dump.directory)
        .output()
        .unwrap();

    assert_eq!(lines_of(output, "fastavro"), dump.expected);
}

#[tokio::test]
async fn avro_java_binary_message_decoder_decodes_the_stream_by_its_own_fingerprints() {
    if !toolchain_available(
        "a JDK (apt-get install default-jdk-headless)",
        Command::new("javac").arg("-version"),
        &[],
    ) || !toolchain_available(
        "Apache Avro for Java (apt-get install libavro-java)",
        Command::new("java").arg("-version"),
        &JAVA_CLASSPATH_JARS,
    ) {
        return;
    }
    let dump = dump_of_a_real_stream().await;
    let classes = dump.directory.join("classes");
    let classpath = JAVA_CLASSPATH_JARS.join(":");
    let compiled = Command::new("javac")
        .arg("-d")
        .arg(&classes)
        .args(["-cp", &classpath])
        .arg(interop_file("DecodeWithAvroJava.java"))
        .output()
        .unwrap();
    assert!(
        compiled.status.success(),
        "javac: {}",
        String::from_utf8_lossy(&compiled.stderr)
    );

    let output = Command::new("java")
        .arg("-cp")
        .arg(format!("{}:{classpath}", classes.display()))
        .arg("DecodeWithAvroJava")
        .arg(&dump.directory)
        .output()
        .unwrap();

    assert_eq!(lines_of(output, "Avro Java"), dump.expected);
}
