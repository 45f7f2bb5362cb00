//! koppel's JetStream plumbing: connecting, the streams and buckets, the deduplicating
//! publisher, pull-consumer outcomes, and compare-and-set over KV.
//!
//! # Layout
//! - `connect`: connection settings (auth, TLS) and a connect that never gives up.
//! - `topology`: setup (create or update) of KOPPEL_EVENTS, KOPPEL_DLQ and every KV bucket
//!   and registration of the writer schemas, apart from `open`, which only checks they exist.
//! - `publish`: pipelined publishing with bounded in-flight acks and `Nats-Msg-Id` dedupe.
//! - `consume`: the closed set of ways to settle a pulled message, and durable consumers.
//! - `error_class`: retryable or permanent, the one classification of failures.
//! - `kv`: typed compare-and-set helpers over KV buckets.
//! - `read`: reading a range of a stream in order, for tail, export and replay tools.
//! - `schemas`: reading writer schemas back from the schemas bucket for decoding.
//!
//! The module structure mirrors async-nats's concepts, not koppel's services.

pub mod connect;
pub mod consume;
pub mod error_class;
pub mod kv;
pub mod publish;
pub mod read;
pub mod schemas;
pub mod topology;

pub use connect::{ConnectError, NatsSettings, connect, url_without_credentials};
pub use consume::{
    AckOutcome, ConsumerSpec, EnsureConsumerError, SettleError, consumer_error_class,
    ensure_pull_consumer, settle,
};
pub use error_class::ErrorClass;
pub use kv::{KvError, Versioned};
pub use publish::{PreparedEvent, PublishError, PublishReport, Publisher, PublisherSettings};
pub use topology::{Topology, TopologyError, TopologySettings};
