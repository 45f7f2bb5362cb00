//! What every koppel process needs around its own work: typed configuration from a TOML file
//! and `KOPPEL_` environment variables, telemetry, the operations endpoints (`/metrics`,
//! `/healthz`, `/readyz`) and graceful shutdown.
//!
//! # Layout
//! - `config`: layered loading (file, then environment) into a service's typed config.
//! - `telemetry`: the tracing subscriber (JSON or pretty) and the Prometheus recorder. This is
//!   the only crate that installs either.
//! - `http`: outbound HTTP client settings and the Retry-After header, shared by every source
//!   client and recipient.
//! - `ops`: the operations HTTP server.
//! - `shutdown`: a cancellation token that fires on SIGINT or SIGTERM.

pub mod config;
pub mod http;
pub mod ops;
pub mod shutdown;
pub mod telemetry;

pub use config::{ConfigError, load_config};
pub use ops::{OpsSettings, Readiness, serve_ops};
pub use shutdown::shutdown_on_signal;
pub use telemetry::{LogFormat, TelemetrySettings, init_telemetry};
pub use tokio_util::sync::CancellationToken;
