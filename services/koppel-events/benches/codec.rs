//! Codec benchmark: Avro single-object encode and decode per event, and payload size, against
//! serde_json on the same events in the same run. `cargo bench -p koppel-events --bench codec`.
//!
//! The JSON decode baseline parses into `serde_json::Value`: events have no JSON reader (JSON
//! is only what the webhook recipient gets), and a generic tree is what any JSON consumer
//! builds at the least. Best of three rounds for each timing. Prints figures and appends them
//! to `$KOPPEL_BENCH_REPORT` (see koppel-bench-report).

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::float_arithmetic)]

use std::time::{Duration, Instant};

use koppel_bench_report::{Figure, record};
use koppel_events::sample;

fn main() {
    let count: u64 = 20_000;
    let events: Vec<_> = (0..count).map(sample::employment_changed).collect();
    let mut best = [Duration::MAX; 4];
    let mut sizes = (0usize, 0usize);
    for round in 1..=3 {
        let started = Instant::now();
        let payloads: Vec<Vec<u8>> = events
            .iter()
            .map(|event| koppel_events::encode(event).unwrap())
            .collect();
        let encode = started.elapsed();
        let started = Instant::now();
        for payload in &payloads {
            std::hint::black_box(koppel_events::decode(payload).unwrap());
        }
        let decode = started.elapsed();
        let started = Instant::now();
        let json: Vec<Vec<u8>> = events
            .iter()
            .map(|event| serde_json::to_vec(event).unwrap())
            .collect();
        let json_encode = started.elapsed();
        let started = Instant::now();
        for document in &json {
            std::hint::black_box(serde_json::from_slice::<serde_json::Value>(document).unwrap());
        }
        let json_decode = started.elapsed();
        for (slot, time) in best
            .iter_mut()
            .zip([encode, decode, json_encode, json_decode])
        {
            *slot = (*slot).min(time);
        }
        sizes = (
            payloads.iter().map(Vec::len).sum(),
            json.iter().map(Vec::len).sum(),
        );
        println!(
            "round {round}: avro encode {:.2} us, decode {:.2} us; json encode {:.2} us, decode {:.2} us; avro {} B, json {} B per event",
            per_event(encode, count),
            per_event(decode, count),
            per_event(json_encode, count),
            per_event(json_decode, count),
            payloads[0].len(),
            json[0].len()
        );
    }
    let [encode, decode, json_encode, json_decode] = best.map(|time| per_event(time, count));
    let note = format!("{count} employment.changed events, best of 3 rounds");
    for figure in [
        Figure::against(
            "codec",
            "Avro payload size",
            sizes.0 as f64 / count as f64,
            "B/event",
            "serde_json",
            sizes.1 as f64 / count as f64,
        ),
        Figure::against(
            "codec",
            "Avro encode",
            encode,
            "µs/event",
            "serde_json encode",
            json_encode,
        )
        .with_note(note.clone()),
        Figure::against(
            "codec",
            "Avro decode",
            decode,
            "µs/event",
            "serde_json parse into Value",
            json_decode,
        )
        .with_note(note),
    ] {
        record(&figure).unwrap();
    }
}

fn per_event(duration: Duration, count: u64) -> f64 {
    duration.as_secs_f64() * 1e6 / count as f64
}
