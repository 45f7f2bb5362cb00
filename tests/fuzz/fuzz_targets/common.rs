//! What both mapping targets check after a source response is mapped: every event a first
//! sync would publish encodes (or is refused with an error) and decodes back to itself.

use koppel_extract::fuzzing::Mapped;

pub fn check_events(mapped: &Mapped) {
    let Some(Ok(events)) = &mapped.events else {
        return;
    };
    for event in events {
        // An entity the codec cannot hold (a decimal beyond the schema) is an error, never a
        // panic; what encodes must come back unchanged.
        let Ok(payload) = koppel_events::encode(event) else {
            continue;
        };
        match koppel_events::decode(&payload) {
            Ok(decoded) => assert_eq!(&decoded, event, "a mapped event changed on the wire"),
            Err(error) => panic!("a mapped event does not decode: {error}"),
        }
    }
}
