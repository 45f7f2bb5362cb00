//! Fuzz target: any bytes through `koppel_events::decode`. No input may panic, and an event
//! that decodes must encode again and decode to the same event (the codec loses nothing it
//! accepted).
#![no_main]

use koppel_events::codec::{decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|payload: &[u8]| {
    let Ok(event) = decode(payload) else {
        return;
    };
    let encoded = match encode(&event) {
        Ok(encoded) => encoded,
        Err(error) => panic!("a decoded event does not encode again: {error}"),
    };
    match decode(&encoded) {
        Ok(again) => assert_eq!(again, event, "the round trip changed the event"),
        Err(error) => panic!("a re-encoded event does not decode: {error}"),
    }
});
