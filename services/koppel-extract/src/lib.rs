//! koppel's extractors: source clients, change detection against per-employer snapshots, and
//! crash-safe publishing of change events to JetStream.
//!
//! # How a sync works
//!
//! fetch (a [`source::Source`]) -> diff against the snapshot -> publish and await every ack
//! -> save the snapshot -> advance the watermark ([`engine`]). Event ids are derived from the
//! entity, its next revision and its content hash, so a run repeated after a crash at any
//! step publishes the same ids again and JetStream drops the duplicates; nothing that would
//! suppress an event is written before its ack.
//!
//! A source without a change feed (Unit4) is fully fetched and diffed on every poll; a poll
//! that finds nothing new publishes nothing, not even the `SyncCompleted` marker.
//!
//! # Layout
//! - `http_source`: source-neutral retry/backoff (429, 5xx, Retry-After) and paging.
//! - `source`: the `Source` trait and what a fetch returns, shared by every source.
//! - `access_token`: the token cache every source shares (margin, single flight, one renewal
//!   per rejected token).
//! - `mapping`: source-neutral record errors and readers for dates, decimals and text.
//! - `engine`: diff, safety threshold, bad-record reporting, publish, snapshot, watermark.
//! - `snapshot`: chunked per-employer snapshots (digests and revisions, no content).
//! - `lease`: one replica per employer, through KV leases.
//! - `loket`: the Loket.nl source (tokens, client, wire shapes, mapping, call plan).
//! - `unit4`: the Unit4 HR & Salarisgemak source (client credentials, client, wire shapes,
//!   mapping, call plan).
//! - `worker`: the long-running extractor and its configuration.
//!
//! # Entry points
//! - [`worker::run`]: the extractor process.
//! - [`worker::Extractor::sync_employer_once`]: one deterministic sync (tests, demo).
//! - [`worker::Extractor::discover_employers`]: onboarding's `employer discover`, for Loket
//!   and Unit4 connections alike.
//! - [`loket::exchange_authorization_code`]: onboarding's `connection add loket`. A Unit4
//!   connection needs no exchange: its record (client id, the secret sealed with
//!   [`source::client_secret_context`], scope, token URL, API base URL, paths) is complete.

pub mod access_token;
pub mod engine;
#[doc(hidden)]
pub mod fuzzing;
pub mod http_source;
pub mod lease;
pub mod loket;
pub mod mapping;
pub mod snapshot;
pub mod source;
pub mod unit4;
pub mod worker;

pub use engine::{
    EngineSettings, EventSummary, FailPoint, SyncContext, SyncError, SyncOptions, SyncOutcome,
    Watermark, sync_employer,
};
pub use http_source::{ErrorClass, HttpSourceError, RetryPolicy};
pub use source::{
    DiscoveredEmployer, FetchMode, FetchRequest, Source, SourceError, SourceFetch,
    client_secret_context,
};
pub use worker::{
    ConnectionSource, ExtractError, ExtractionSettings, Extractor, ExtractorConfig,
    SecretKeySource, run,
};
