//! A tmux session for driving the real dashboard as a person would (send-keys,
//! capture-pane).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmux session that is killed when dropped.
pub struct Tmux {
    name: String,
}

impl Tmux {
    pub fn start(command: &str, width: u16, height: u16) -> Tmux {
        // Unique per session: the tests of this file run in parallel.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("gantry-e2e-{}-{n}", std::process::id());
        let status = Command::new("tmux")
            .args([
                "new-session",
                "-d",
                "-s",
                &name,
                "-x",
                &width.to_string(),
                "-y",
                &height.to_string(),
            ])
            .arg(command)
            .status()
            .expect("tmux must be installed to run the dashboard test (.ci/run installs it)");
        assert!(status.success(), "tmux new-session failed");
        Tmux { name }
    }

    pub fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn keys(&self, keys: &[&str]) {
        let status = Command::new("tmux")
            .args(["send-keys", "-t", &self.name])
            .args(keys)
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Records everything the program writes to the terminal into `path`.
    pub fn record(&self, path: &Path) {
        let status = Command::new("tmux")
            .args(["pipe-pane", "-o", "-t", &self.name])
            .arg(format!("cat > {}", path.display()))
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub fn resize(&self, width: u16, height: u16) {
        let status = Command::new("tmux")
            .args([
                "resize-window",
                "-t",
                &self.name,
                "-x",
                &width.to_string(),
                "-y",
                &height.to_string(),
            ])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits until the screen satisfies `pred`; returns the screen and the wait.
    pub fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> (String, Duration) {
        self.wait_within(what, Duration::from_secs(30), pred)
    }

    /// [`Tmux::wait_for`] with its own limit.
    pub fn wait_within(
        &self,
        what: &str,
        limit: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> (String, Duration) {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if pred(&screen) {
                return (screen, start.elapsed());
            }
            assert!(
                start.elapsed() < limit,
                "timed out waiting for {what}; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.name])
            .status();
    }
}
