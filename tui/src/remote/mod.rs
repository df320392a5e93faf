//! Remote hosts: run roots on other machines, watched over ssh. A remote root is followed
//! by a [`link::Link`] that runs `gantry agent` there ([`agent`]) and mirrors the root into
//! the user's cache folder ([`mirror`]); the dashboard watches the mirror like any local
//! root and sends actions on its runs back through the link ([`RemoteRuns`]). The
//! protocol between the two ends is [`protocol`]; addresses are [`address`].

pub mod address;
pub mod agent;
pub mod link;
pub mod mirror;
pub mod protocol;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

pub use address::{RemoteRoot, RootAddress};
pub use link::{Link, SshOptions};

/// The mirror folder of a remote root: under `$XDG_CACHE_HOME/gantry/remote` (else
/// `~/.cache/gantry/remote`), one folder per host, one per root path.
pub fn mirror_dir(remote: &RemoteRoot) -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    cache
        .join("gantry/remote")
        .join(folder_name(&remote.label()))
        .join(folder_name(&remote.path))
}

/// A name usable as one folder: `/data/runs` → `_data_runs`.
fn folder_name(text: &str) -> String {
    let name: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    match name.as_str() {
        "" | "." | ".." => "_".into(),
        _ => name,
    }
}

/// The remote roots the dashboard follows: which local mirror folder is which host's, and
/// the link to act through.
#[derive(Default, Clone)]
pub struct RemoteRuns {
    links: Vec<Arc<Link>>,
}

impl std::fmt::Debug for RemoteRuns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.links.iter().map(|l| l.remote.label()))
            .finish()
    }
}

impl RemoteRuns {
    pub fn new(links: Vec<Arc<Link>>) -> RemoteRuns {
        RemoteRuns { links }
    }

    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }

    /// The link and root number whose mirror holds `path`, and `path`'s first component
    /// under it (the run).
    pub fn locate(&self, path: &Path) -> Option<(&Link, u16, String)> {
        for link in &self.links {
            for (i, mirror) in link.mirrors.iter().enumerate() {
                if let Ok(rel) = path.strip_prefix(mirror) {
                    let run = rel
                        .components()
                        .next()?
                        .as_os_str()
                        .to_string_lossy()
                        .into_owned();
                    return Some((link.as_ref(), i as u16, run));
                }
            }
        }
        None
    }

    /// The link and root number whose mirror folder is `path` itself.
    pub fn locate_root(&self, path: &Path) -> Option<(&Link, u16)> {
        self.links.iter().find_map(|link| {
            let i = link.mirrors.iter().position(|m| m == path)?;
            Some((link.as_ref(), i as u16))
        })
    }

    /// Whether `path` is a remote file listed but not fetched (an empty stand-in).
    pub fn is_placeholder(&self, path: &Path) -> bool {
        self.links.iter().any(|l| l.is_placeholder(path))
    }

    /// Asks the host of `path` for it (see [`Link::fetch`]).
    pub fn fetch(&self, path: &Path) {
        if let Some(link) = self
            .links
            .iter()
            .find(|l| l.mirrors.iter().any(|m| path.starts_with(m)))
        {
            link.fetch(path);
        }
    }

    /// The host label of a path under a mirror; `None` for a local path.
    pub fn host_of(&self, path: &Path) -> Option<String> {
        self.links
            .iter()
            .find(|l| l.mirrors.iter().any(|m| path.starts_with(m)))
            .map(|l| l.remote.label())
    }

    /// Badges of the links that are not live, and the agents' notices.
    pub fn badges(&self, now: Instant) -> Vec<String> {
        let mut out = Vec::new();
        for link in &self.links {
            let state = link.state.lock().expect("link state");
            out.extend(state.badge(now));
            out.extend(
                state
                    .notices
                    .iter()
                    .map(|n| format!("{}: {n}", state.label)),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_folders_are_one_per_host_and_root() {
        let RootAddress::Remote(a) = RootAddress::parse("ana@gpu1:/data/runs").unwrap() else {
            unreachable!()
        };
        let RootAddress::Remote(b) = RootAddress::parse("ssh://gpu1:2222/../x").unwrap() else {
            unreachable!()
        };
        let (a, b) = (mirror_dir(&a), mirror_dir(&b));
        assert!(
            a.ends_with("gantry/remote/ana@gpu1/_data_runs"),
            "{}",
            a.display()
        );
        assert!(
            b.ends_with("gantry/remote/gpu1_2222/_.._x"),
            "{}",
            b.display()
        );
        assert_eq!(folder_name(".."), "_");
    }
}
