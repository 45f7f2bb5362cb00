//! Faithful simulators of every external API koppel talks to, over one deterministic payroll world.
//!
//! # Layout
//! - `faults`: fault injection shared by every simulator (429 with Retry-After, 5xx, slow answers).
//! - `ground_truth`: the world's change log as the events koppel must emit, for comparisons.
//! - `world`: the simulated payroll world (employers, employees, employments) and the mutation
//!   engine that advances it day by day while recording the ground truth of every change.
//! - `loket`: the Loket.nl simulator (OAuth2 with rotating refresh tokens, the v2 REST API).
//! - `unit4`: the Unit4 HR & Salarisgemak simulator (IDS client credentials, koppel's
//!   provisional resource contract).
//! - `insurer`: the pension insurer salary-link simulator (a recipient).
//! - `server`: serving a simulator's router, shared by every simulator.
//! - `suite`: every simulator at once, wired for the demo and end-to-end tests.
//! - `webhook_receiver`: a Standard Webhooks receiver that verifies signatures (a recipient).

pub mod faults;
pub mod ground_truth;
pub mod insurer;
pub mod loket;
mod server;
pub mod suite;
pub mod unit4;
pub mod webhook_receiver;
pub mod world;
