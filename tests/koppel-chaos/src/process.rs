//! Worker processes: the real `koppel` binary (`koppel_harness::koppel_binary`) run as
//! `koppel extractor|deliverer --config <file>`, with its output in a log file, killed with
//! SIGKILL and restarted on demand.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context as _, bail};

/// One worker process, restartable. Dropping it kills the process.
#[derive(Debug)]
pub struct WorkerProcess {
    name: String,
    binary: PathBuf,
    arguments: Vec<OsString>,
    environment: Vec<(OsString, OsString)>,
    log_path: PathBuf,
    child: Option<Child>,
    starts: u32,
    kills: u32,
}

impl WorkerProcess {
    /// Starts `binary arguments...` with `environment` added, stdout and stderr appended to
    /// `log_path`. Variables that would override the command line (`KOPPEL_CONFIG`,
    /// `KOPPEL_NATS_URL`, `KOPPEL_NAMESPACE`, `KOPPEL_SECRET_KEY`) are removed first.
    pub fn spawn(
        name: &str,
        binary: &Path,
        arguments: Vec<OsString>,
        environment: Vec<(OsString, OsString)>,
        log_path: PathBuf,
    ) -> anyhow::Result<Self> {
        let mut process = WorkerProcess {
            name: name.to_owned(),
            binary: binary.to_owned(),
            arguments,
            environment,
            log_path,
            child: None,
            starts: 0,
            kills: 0,
        };
        process.start()?;
        Ok(process)
    }

    fn start(&mut self) -> anyhow::Result<()> {
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .with_context(|| format!("cannot open {}", self.log_path.display()))?;
        self.starts += 1;
        writeln!(log, "===== chaos harness: start #{} =====", self.starts)?;
        let stderr: File = log.try_clone()?;
        let mut command = Command::new(&self.binary);
        command
            .args(&self.arguments)
            .env_remove("KOPPEL_CONFIG")
            .env_remove("KOPPEL_NATS_URL")
            .env_remove("KOPPEL_NAMESPACE")
            .env_remove("KOPPEL_SECRET_KEY")
            .envs(self.environment.iter().map(|(key, value)| (key, value)))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(stderr));
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {} ({})", self.name, self.binary.display()))?;
        self.child = Some(child);
        Ok(())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The running process's id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// How often the process was started and SIGKILLed so far.
    pub fn starts(&self) -> u32 {
        self.starts
    }

    pub fn kills(&self) -> u32 {
        self.kills
    }

    /// Whether the process is alive (false after it exited or was killed).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGKILL (`Child::kill` is SIGKILL on unix: no shutdown hook runs), then reaps it.
    pub fn kill_9(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            bail!("{} is not running", self.name);
        };
        if matches!(child.try_wait(), Ok(None)) {
            child
                .kill()
                .with_context(|| format!("cannot kill {}", self.name))?;
            self.kills += 1;
        }
        child.wait()?;
        self.append_note("killed with SIGKILL by the chaos harness")?;
        Ok(())
    }

    /// Starts the process again with the same command line (killing it first if it runs).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            self.kill_9()?;
        }
        self.start()
    }

    fn append_note(&self, note: &str) -> anyhow::Result<()> {
        let mut log = OpenOptions::new().append(true).open(&self.log_path)?;
        writeln!(log, "===== chaos harness: {note} =====")?;
        Ok(())
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last `lines` lines of the process's output, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        let start = all.len().saturating_sub(lines);
        format!(
            "----- {} ({}), last {} lines -----\n{}",
            self.name,
            self.log_path.display(),
            all.len() - start,
            all[start..].join("\n")
        )
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
