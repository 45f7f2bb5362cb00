//! Codec benchmark: Avro single-object encode and decode per event, against serde_json on the
//! same events in the same run. `cargo bench -p koppel-events --bench codec`.

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::float_arithmetic)]

use std::time::Instant;

use koppel_events::sample;

fn main() {
    let count: u64 = 20_000;
    let events: Vec<_> = (0..count).map(sample::employment_changed).collect();
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
        let per_event = |duration: std::time::Duration| duration.as_secs_f64() * 1e6 / count as f64;
        println!(
            "round {round}: avro encode {:.2} us, decode {:.2} us; json encode {:.2} us; avro {} B, json {} B per event",
            per_event(encode),
            per_event(decode),
            per_event(json_encode),
            payloads[0].len(),
            json[0].len()
        );
    }
}
