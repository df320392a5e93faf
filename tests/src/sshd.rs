//! A throwaway OpenSSH server on a loopback port, for the remote-host tests: its own host
//! key, authorized key and config in a temp folder, and a client config (`ssh -F`) that
//! names it `gantry-test`. `None` (the test says it was skipped) where Debian's
//! openssh-server is not installed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The server; killed when dropped.
pub struct Sshd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
}

/// The host alias the client config gives the server.
pub const HOST: &str = "gantry-test";

impl Sshd {
    pub fn start() -> Option<Sshd> {
        let sshd = Path::new("/usr/sbin/sshd");
        if !sshd.exists() || Command::new("ssh").arg("-V").output().is_err() {
            eprintln!(
                "skipped: no /usr/sbin/sshd or ssh (Debian's openssh-server and openssh-client)"
            );
            return None;
        }
        // sshd refuses to start without its privilege-separation folder.
        let _ = std::fs::create_dir_all("/run/sshd");
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for key in ["host_key", "client_key"] {
            let ok = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(d.join(key))
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "ssh-keygen failed");
        }
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
        let user = std::env::var("USER")
            .ok()
            .or_else(|| {
                let out = Command::new("id").arg("-un").output().ok()?;
                Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
            })
            .unwrap_or_else(|| "root".into());
        {
            let port = free_port();
            std::fs::write(
                d.join("sshd_config"),
                format!(
                    "Port {port}\nListenAddress 127.0.0.1\nHostKey {0}/host_key\n\
                     AuthorizedKeysFile {0}/authorized_keys\nPidFile {0}/sshd.pid\n\
                     StrictModes no\nUsePAM no\nPasswordAuthentication no\n\
                     KbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
                     PermitRootLogin yes\nAllowUsers {user}\nLogLevel ERROR\n",
                    d.display()
                ),
            )
            .unwrap();
            let host_pub = std::fs::read_to_string(d.join("host_key.pub")).unwrap();
            let host_pub: Vec<&str> = host_pub.split_whitespace().take(2).collect();
            std::fs::write(
                d.join("known_hosts"),
                format!("[127.0.0.1]:{port} {}\n", host_pub.join(" ")),
            )
            .unwrap();
            std::fs::write(
                d.join("ssh_config"),
                format!(
                    "Host {HOST}\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  \
                     IdentityFile {0}/client_key\n  IdentitiesOnly yes\n  \
                     UserKnownHostsFile {0}/known_hosts\n  StrictHostKeyChecking yes\n  \
                     LogLevel ERROR\n",
                    d.display()
                ),
            )
            .unwrap();
            let child = Command::new(sshd)
                .args(["-D", "-e", "-f"])
                .arg(d.join("sshd_config"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start sshd");
            let mut server = Sshd { dir, port, child };
            assert!(
                server.wait_ready(),
                "the throwaway sshd on port {port} did not accept a login within 10 s"
            );
            Some(server)
        }
    }

    /// The client config file: `ssh -F THIS gantry-test`.
    pub fn client_config(&self) -> PathBuf {
        self.dir.path().join("ssh_config")
    }

    /// `GANTRY_SSH` for gantry: the system's ssh with this server's client config.
    pub fn gantry_ssh(&self) -> String {
        format!("ssh -F {}", self.client_config().display())
    }

    /// Runs a command over ssh; whether it succeeded.
    pub fn ssh(&self, command: &str) -> bool {
        Command::new("ssh")
            .arg("-F")
            .arg(self.client_config())
            .args(["-o", "BatchMode=yes", HOST, command])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn wait_ready(&mut self) -> bool {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if self.ssh("true") {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// Kills the ssh client processes that use this server (a dropped connection, as the
    /// remote end sees it when a laptop's Wi-Fi goes).
    pub fn kill_clients(&self) -> usize {
        let config = self.client_config().display().to_string();
        let mut killed = 0;
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let args: Vec<String> = cmdline
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let is_client = args
                .first()
                .is_some_and(|a| a == "ssh" || a.ends_with("/ssh"))
                && args.windows(2).any(|w| w[0] == "-F" && w[1] == config)
                && args.iter().any(|a| a.contains(" agent "));
            if is_client
                && Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status()
                    .is_ok_and(|s| s.success())
            {
                killed += 1;
            }
        }
        killed
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nobody listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
