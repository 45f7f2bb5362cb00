//! The onboarding registry: which source connections exist, which employers koppel extracts and
//! which recipients each employer's events go to. It lives in the registry KV bucket, so every
//! worker sees a change without a restart (they watch the bucket).
//!
//! # Layout
//! - `model`: connections, employers, recipients: the records a payroll processor onboards.
//! - `onboarding`: registering recipients and employers with the links between them, as
//!   `koppel recipient|employer add` and the test harness do it.
//! - `sealed`: secrets sealed at rest with an AEAD key (client secrets, refresh tokens,
//!   webhook secrets); the key comes from a file or an environment variable.
//! - `store`: reading, writing and watching the records in KV, with compare-and-set.

pub mod model;
pub mod onboarding;
pub mod sealed;
pub mod store;

pub use model::{
    Connection, ConnectionSettings, EmployerRegistration, LoketConnectionSettings, Recipient,
    RecipientSettings, Unit4ConnectionSettings, Unit4Paths,
};
pub use sealed::{SealError, SealedSecret, SecretKey, SecretKeySource};
pub use store::{Registry, RegistryError, RegistrySnapshot};
