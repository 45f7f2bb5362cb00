//! The command line. Every subcommand documents itself (`koppel <command> --help`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::output::OutputFormat;

#[derive(Debug, Parser)]
#[command(
    name = "koppel",
    version,
    about = "Event pipeline for Dutch payroll and pension data",
    long_about = "koppel extracts payroll data from Loket.nl and Unit4, publishes change events \
                  to NATS JetStream, and delivers them to pension insurers and webhooks.\n\n\
                  Configuration: a TOML file (--config or KOPPEL_CONFIG) plus KOPPEL_<SECTION>__<KEY> \
                  environment variables. Secrets at rest are sealed with KOPPEL_SECRET_KEY."
)]
pub struct Cli {
    /// Config file (TOML).
    #[arg(long, global = true, env = "KOPPEL_CONFIG")]
    pub config: Option<PathBuf>,
    /// Output format: text for people, json for scripts.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// NATS server URL; overrides [nats] url from the config. Credentials are refused here,
    /// where every user of the machine can read them: put a URL with credentials in
    /// KOPPEL_NATS_URL, or set [nats] user and KOPPEL_NATS__PASSWORD.
    #[arg(long, global = true, env = "KOPPEL_NATS_URL", hide_env_values = true)]
    pub nats_url: Option<String>,
    /// Prefix for every stream, bucket and subject (side-by-side installations, tests).
    #[arg(long, global = true, env = "KOPPEL_NAMESPACE")]
    pub namespace: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Creates or updates the streams and buckets from [topology] in the config (replicas,
    /// size and age limits) and registers the writer schemas. Needs the operator's NATS user;
    /// run it before the workers start and after every upgrade.
    Setup,
    /// Runs the extractor: polls every enabled employer of every connection and publishes
    /// change events. Config: --config extractor.toml.
    Extractor(WorkerArgs),
    /// Runs the deliverer: one consumer per recipient, delivering at least once, in order per
    /// employee. Config: --config deliverer.toml.
    Deliverer(WorkerArgs),
    /// Source connections: Loket authorisations and Unit4 web-API users.
    #[command(subcommand)]
    Connection(ConnectionCommand),
    /// Runs the whole pipeline end to end against the simulators, with faults, and prints
    /// what reached each recipient. Uses $NATS_URL or starts a local nats-server.
    Demo(DemoArgs),
    /// Serves every simulator (Loket, Unit4, pension insurer, webhook receiver) until Ctrl-C.
    Sim(SimArgs),
    /// Secret-key tools.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Recipients: pension insurers and webhooks.
    #[command(subcommand)]
    Recipient(RecipientCommand),
    /// Employers: link an employer of a connection to recipients.
    #[command(subcommand)]
    Employer(EmployerCommand),
    /// Syncs one employer now (full or delta), with a progress spinner, and reports what it
    /// published. The extractor worker does this on its schedule.
    Sync {
        #[arg(long)]
        employer: String,
        /// A full sync, even where the source has a change feed.
        #[arg(long)]
        full: bool,
    },
    /// Redelivers past events to a recipient with their original idempotency keys, in order,
    /// through a durable consumer of its own: interrupted, it resumes with the same --name.
    Replay(ReplayArgs),
    /// Per employer the last sync and its result; per recipient the lag and dead letters.
    Status,
    /// Dead letters: list, show, retry (re-drive with the original idempotency keys), purge.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Prints decoded events as JSON lines, following the stream.
    Tail(TailArgs),
    /// Writes events to an Avro object container file or JSON lines.
    Export(ExportArgs),
    /// The event schemas, as data teams need them.
    #[command(subcommand)]
    Schema(SchemaCommand),
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Where /metrics, /healthz and /readyz listen.
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub ops_listen: std::net::SocketAddr,
    /// Log as JSON lines (for log shippers) instead of text.
    #[arg(long)]
    pub json_logs: bool,
}

#[derive(Debug, Subcommand)]
pub enum ConnectionCommand {
    /// Registers a source connection.
    #[command(subcommand)]
    Add(AddConnection),
    /// Fetches a token with a connection and reports the employers it can see.
    Test {
        /// The connection id.
        connection: String,
    },
    /// Lists connections (secrets are never shown).
    List,
}

#[derive(Debug, Subcommand)]
pub enum AddConnection {
    /// A Loket.nl authorisation. Without --authorised or --refresh-token-env it registers the
    /// connection and prints the URL where a Loket user authorises it.
    Loket(AddLoketArgs),
    /// A Unit4 HR & Salarisgemak web-API user (client credentials).
    Unit4(AddUnit4Args),
}

#[derive(Debug, Args)]
pub struct AddLoketArgs {
    /// Connection id (letters, digits, '-' and '_').
    #[arg(long)]
    pub id: String,
    #[arg(long)]
    pub client_id: String,
    /// Environment variable holding the client secret (empty or unset: a client without one).
    #[arg(long, default_value = "KOPPEL_CLIENT_SECRET")]
    pub client_secret_env: String,
    /// The redirect URI registered for the client.
    #[arg(long)]
    pub redirect_uri: String,
    #[arg(long, default_value = "https://oauth.loket.nl")]
    pub oauth_base_url: String,
    #[arg(long, default_value = "https://api.loket.nl/v2")]
    pub api_base_url: String,
    /// The user has authorised: read the URL Loket redirected to (it holds the authorization
    /// code and the state) from KOPPEL_LOKET_REDIRECT_URL or, when that is unset, from a
    /// prompt. Never on the command line, where every user of the machine can read it.
    #[arg(long, conflicts_with = "refresh_token_env")]
    pub authorised: bool,
    /// Environment variable holding a refresh token obtained elsewhere.
    #[arg(long)]
    pub refresh_token_env: Option<String>,
    /// Seconds between change polls.
    #[arg(long, default_value_t = 60)]
    pub poll_interval_seconds: u64,
}

#[derive(Debug, Args)]
pub struct AddUnit4Args {
    #[arg(long)]
    pub id: String,
    /// The IDS token endpoint, e.g. https://s-eu-ids1.unit4cloud.com/identity/connect/token.
    #[arg(long)]
    pub token_url: String,
    #[arg(long)]
    pub api_base_url: String,
    #[arg(long, default_value = "hr-salarisgemak.api")]
    pub scope: String,
    #[arg(long)]
    pub client_id: String,
    /// Environment variable holding the client secret.
    #[arg(long, default_value = "KOPPEL_CLIENT_SECRET")]
    pub client_secret_env: String,
    /// Seconds between full diffs (Unit4 has no change feed).
    #[arg(long, default_value_t = 900)]
    pub poll_interval_seconds: u64,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Seed of the simulated worlds: the same seed gives the same run.
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
    /// Employers per source.
    #[arg(long, default_value_t = 3)]
    pub employers: usize,
    /// Employees per employer.
    #[arg(long, default_value_t = 40)]
    pub employees: usize,
    /// Simulated days after the first sync, one sync per day.
    #[arg(long, default_value_t = 60)]
    pub days: u32,
    /// How long the deliverer may take to drain at the end.
    #[arg(long, default_value_t = 300)]
    pub drain_timeout_seconds: u64,
}

#[derive(Debug, Args)]
pub struct SimArgs {
    /// Seed of the simulated worlds.
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
    /// Employers per source.
    #[arg(long, default_value_t = 3)]
    pub employers: usize,
    /// Employees per employer.
    #[arg(long, default_value_t = 25)]
    pub employees: usize,
    /// Address the simulators listen on (0.0.0.0 in a container).
    #[arg(long, default_value = "127.0.0.1")]
    pub listen_host: std::net::IpAddr,
    /// Loket, Unit4, insurer and webhooks listen on this port and the next three (0: free ports).
    #[arg(long, default_value_t = 0)]
    pub base_port: u16,
    /// Host name other processes use to reach the simulators.
    #[arg(long, default_value = "127.0.0.1")]
    pub advertise_host: String,
    /// Also onboard every simulated connection, employer and recipient into the registry on
    /// NATS (needs KOPPEL_SECRET_KEY), so workers started against it have work at once.
    #[arg(long)]
    pub onboard: bool,
    /// With --onboard: seconds between polls of each connection.
    #[arg(long, default_value_t = 30)]
    pub poll_seconds: u64,
    /// Advance the simulated worlds one day every this many seconds (0: never).
    #[arg(long, default_value_t = 0)]
    pub day_every_seconds: u64,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Prints a new random key for KOPPEL_SECRET_KEY (base64 of 32 bytes).
    Generate,
}

#[derive(Debug, Subcommand)]
pub enum RecipientCommand {
    /// Registers or updates a recipient.
    #[command(subcommand)]
    Add(AddRecipient),
    /// Lists recipients (secrets are never shown).
    List,
}

#[derive(Debug, Subcommand)]
pub enum AddRecipient {
    /// A pension insurer's salary link.
    Insurer(AddInsurerArgs),
    /// A Standard Webhooks endpoint.
    Webhook(AddWebhookArgs),
}

#[derive(Debug, Args)]
pub struct AddInsurerArgs {
    /// Recipient name (letters, digits, '-' and '_').
    #[arg(long)]
    pub name: String,
    #[arg(long)]
    pub base_url: String,
    /// Environment variable holding the insurer's API token (never pass secrets as arguments).
    #[arg(long, default_value = "KOPPEL_RECIPIENT_TOKEN")]
    pub token_env: String,
    /// Parallel requests across employees.
    #[arg(long, default_value_t = 16)]
    pub max_in_flight: usize,
}

#[derive(Debug, Args)]
pub struct AddWebhookArgs {
    #[arg(long)]
    pub name: String,
    #[arg(long)]
    pub url: String,
    /// Environment variable holding the `whsec_...` signing secret.
    #[arg(long, default_value = "KOPPEL_WEBHOOK_SECRET")]
    pub secret_env: String,
    #[arg(long, default_value_t = 16)]
    pub max_in_flight: usize,
}

#[derive(Debug, Subcommand)]
pub enum EmployerCommand {
    /// Links an employer of a connection to recipients (creates or updates it).
    Add(AddEmployerArgs),
    /// Lists registered employers.
    List,
    /// Lists the employers a connection can see, for `employer add`.
    Discover {
        #[arg(long)]
        connection: String,
    },
    /// Stops extracting an employer and removes its registration.
    Remove {
        /// The employer key.
        employer_key: String,
    },
}

#[derive(Debug, Args)]
pub struct AddEmployerArgs {
    /// The connection the employer is reached through.
    #[arg(long)]
    pub connection: String,
    /// The employer's id in the source system.
    #[arg(long)]
    pub source_id: String,
    /// koppel's key for the employer (default: <connection>-<first 8 chars of the source id>).
    #[arg(long)]
    pub key: Option<String>,
    #[arg(long)]
    pub name: String,
    /// Loonheffingennummer, e.g. 123456789L01.
    #[arg(long)]
    pub payroll_tax_number: Option<String>,
    /// A recipient to deliver to; repeat for several.
    #[arg(long = "recipient")]
    pub recipients: Vec<String>,
    /// Hold back a run that would end or remove more than this percentage of employees.
    #[arg(long, default_value_t = 20)]
    pub removal_threshold_percent: u8,
    /// Insurer contract number, when linking to a pension insurer.
    #[arg(long)]
    pub insurer_contract: Option<String>,
}

#[derive(Debug, Args)]
pub struct TailArgs {
    /// Only this employer.
    #[arg(long)]
    pub employer: Option<String>,
    /// Only this source (loket, unit4).
    #[arg(long)]
    pub source: Option<String>,
    /// Only these event types (e.g. EmploymentChanged); repeat for several.
    #[arg(long = "type")]
    pub event_types: Vec<String>,
    /// Start at the beginning of the stream instead of at new events.
    #[arg(long)]
    pub from_start: bool,
    /// Stop at the end of the stream instead of waiting for new events.
    #[arg(long)]
    pub no_follow: bool,
    /// Stop after this many events.
    #[arg(long)]
    pub limit: Option<u64>,
    /// Print BSNs in full. Without it they are masked (*****1234).
    #[arg(long)]
    pub show_pii: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// Avro object container file, writer schema embedded, deflate.
    Avro,
    /// One JSON object per line.
    Jsonl,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Start: RFC 3339 time (2026-11-01T00:00:00Z) or date (2026-11-01).
    #[arg(long)]
    pub since: Option<String>,
    /// End (exclusive), same forms.
    #[arg(long)]
    pub until: Option<String>,
    #[arg(long)]
    pub employer: Option<String>,
    #[arg(long, value_enum, default_value_t = ExportFormat::Avro)]
    pub format: ExportFormat,
    /// The file to write.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[arg(long)]
    pub recipient: String,
    /// Replay events stored from this time (RFC 3339 or a date).
    #[arg(long, conflicts_with = "from_seq")]
    pub since: Option<String>,
    /// Replay events from this stream sequence.
    #[arg(long)]
    pub from_seq: Option<u64>,
    /// Only this employer (it must be subscribed to the recipient).
    #[arg(long)]
    pub employer: Option<String>,
    /// The replay's name (letters, digits and `_`): its durable consumer is
    /// replay-<recipient>-<name>. Give the same name to resume an interrupted replay.
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct DlqTarget {
    /// The recipient whose dead letters to act on.
    #[arg(long)]
    pub recipient: String,
    /// Only this employer.
    #[arg(long)]
    pub employer: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Lists dead letters (no payloads, no personal data).
    List(DlqTarget),
    /// Shows one dead letter with its event decoded (BSNs masked unless --show-pii).
    Show {
        #[arg(long)]
        recipient: String,
        /// The dead letter's sequence in KOPPEL_DLQ (from `dlq list`).
        sequence: u64,
        #[arg(long)]
        show_pii: bool,
    },
    /// Re-drives dead letters in order, per employee, with their original idempotency keys.
    /// With a sequence, re-drives that dead letter's whole lane.
    Retry {
        #[command(flatten)]
        target: DlqTarget,
        sequence: Option<u64>,
    },
    /// Removes dead letters without delivering them, with a reason for the audit log.
    Purge {
        #[command(flatten)]
        target: DlqTarget,
        sequence: Option<u64>,
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Lists every writer schema this build writes, with its fingerprint.
    List,
    /// Prints one self-contained writer schema as JSON, by event type or fingerprint.
    Show {
        /// An event type (EmploymentChanged) or a 16-hex-digit fingerprint.
        name: String,
    },
}
