//! Security tests of koppel live in `tests/it`; this library is empty. See the tests' module
//! docs for what each one proves.
