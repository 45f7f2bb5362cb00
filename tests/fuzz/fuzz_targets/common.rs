//! What both mapping targets check after a source response is mapped: every event a first
//! sync would publish encodes and decodes back to itself. A mapped record the contract cannot
//! carry must have been rejected as a bad record (`within_contract`), because an event that
//! does not encode fails the employer's whole run.

use koppel_extract::fuzzing::Mapped;

pub fn check_events(mapped: &Mapped) {
    let Some(Ok(events)) = &mapped.events else {
        return;
    };
    for event in events {
        let payload = match koppel_events::encode(event) {
            Ok(payload) => payload,
            Err(error) => panic!("a mapped record's event does not encode: {error}"),
        };
        match koppel_events::decode(&payload) {
            Ok(decoded) => assert_eq!(&decoded, event, "a mapped event changed on the wire"),
            Err(error) => panic!("a mapped event does not decode: {error}"),
        }
    }
}
