//! End-to-end test harness for koppel; the tests live in tests/.
