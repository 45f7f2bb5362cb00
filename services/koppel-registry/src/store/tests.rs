//! Table tests of how one bucket change moves the snapshot: unknown fields are read, an
//! undecodable or too-new record keeps its last good version, only a delete removes.

use serde_json::json;

use super::*;

fn webhook(url: &str) -> serde_json::Value {
    json!({
        "name": "hooks",
        "settings": {
            "kind": "webhook",
            "url": url,
            "secret": {"nonce": "bm9uY2U=", "ciphertext": "Y2lwaGVy"}
        },
        "max_in_flight": 4
    })
}

fn put(snapshot: &mut RegistrySnapshot, value: &serde_json::Value, revision: u64) {
    let bytes = serde_json::to_vec(value).unwrap();
    apply_change(
        snapshot,
        "recipients.hooks",
        Change::Put {
            value: &bytes,
            revision,
        },
    );
}

fn url_of(snapshot: &RegistrySnapshot) -> Option<String> {
    match &snapshot.recipients.get("hooks")?.settings {
        crate::RecipientSettings::Webhook { url, .. } => Some(url.clone()),
        crate::RecipientSettings::PensionInsurer { .. } => None,
    }
}

#[test]
fn fields_a_newer_koppel_adds_are_ignored() {
    let mut snapshot = RegistrySnapshot::default();
    let mut newer = webhook("http://one");
    newer["delivery_window"] = json!({"from": "06:00", "to": "22:00"});
    newer["settings"]["signature_version"] = json!(2);
    newer["settings"]["secret"]["key_id"] = json!("k2");
    newer[RECORD_VERSION_FIELD] = json!(RECORD_VERSION);

    put(&mut snapshot, &newer, 1);

    assert_eq!(url_of(&snapshot).as_deref(), Some("http://one"));
    assert!(snapshot.problems.is_empty());
}

#[test]
fn a_record_that_does_not_decode_keeps_its_last_good_version() {
    let cases: [(&str, serde_json::Value); 4] = [
        ("a field of the wrong type", {
            let mut bad = webhook("http://two");
            bad["max_in_flight"] = json!("many");
            bad
        }),
        ("a recipient kind this build does not know", {
            let mut bad = webhook("http://two");
            bad["settings"]["kind"] = json!("carrier_pigeon");
            bad
        }),
        ("a record version newer than this build's", {
            let mut newer = webhook("http://two");
            newer[RECORD_VERSION_FIELD] = json!(RECORD_VERSION + 1);
            newer
        }),
        ("not JSON at all", json!(null)),
    ];
    for (case, bad) in cases {
        let mut snapshot = RegistrySnapshot::default();
        put(&mut snapshot, &webhook("http://one"), 1);

        put(&mut snapshot, &bad, 2);

        assert_eq!(url_of(&snapshot).as_deref(), Some("http://one"), "{case}");
        let problem = snapshot.problems.get("recipients.hooks").expect(case);
        assert_eq!(problem.revision, 2, "{case}");
        assert!(problem.serving_last_good, "{case}");
        assert!(
            !problem.reason.contains("many"),
            "{case}: {}",
            problem.reason
        );

        // Fixing the record clears the problem.
        put(&mut snapshot, &webhook("http://three"), 3);
        assert_eq!(url_of(&snapshot).as_deref(), Some("http://three"), "{case}");
        assert!(snapshot.problems.is_empty(), "{case}");
    }
}

#[test]
fn a_record_that_never_decoded_is_absent_and_reported() {
    let mut snapshot = RegistrySnapshot::default();
    let mut newer = webhook("http://one");
    newer[RECORD_VERSION_FIELD] = json!(7);

    put(&mut snapshot, &newer, 5);

    assert_eq!(url_of(&snapshot), None);
    assert_eq!(
        snapshot.problems.get("recipients.hooks"),
        Some(&RecordProblem {
            revision: 5,
            reason: "record version 7 is newer than 1, the newest this build reads".to_owned(),
            serving_last_good: false,
        })
    );
}

#[test]
fn only_a_delete_removes_a_record() {
    let mut snapshot = RegistrySnapshot::default();
    put(&mut snapshot, &webhook("http://one"), 1);
    put(&mut snapshot, &json!({"name": 5}), 2);

    apply_change(&mut snapshot, "recipients.hooks", Change::Deleted);

    assert_eq!(url_of(&snapshot), None);
    assert!(snapshot.problems.is_empty());
}
