//! Fuzz target: any bytes as a Unit4 response body, through the Unit4 source's JSON parsing and
//! mapping (`koppel_extract::fuzzing::unit4_response`) and the first sync's events. Bad input
//! must come out as a rejected record or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|body: &[u8]| {
    if let Ok(mapped) = koppel_extract::fuzzing::unit4_response(body) {
        common::check_events(&mapped);
    }
});
