//! Run-root addresses: a local path, `[user@]host:PATH` (scp style) or
//! `ssh://[user@]host[:port]/PATH`. As with scp, a colon before the first slash makes an
//! address remote; `./a:b` and `/data/a:b` stay local paths.

use std::fmt;
use std::path::PathBuf;

/// A run root on another machine, reached with the system's `ssh`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RemoteRoot {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    /// The root on that host; relative paths are relative to the login's home, as for scp.
    pub path: String,
}

/// Where a run root is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootAddress {
    Local(PathBuf),
    Remote(RemoteRoot),
}

/// A remote address that cannot be used; the message names the part at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("run root {address:?}: {why}")]
pub struct AddressError {
    pub address: String,
    pub why: String,
}

impl RootAddress {
    pub fn parse(text: &str) -> Result<RootAddress, AddressError> {
        let err = |why: &str| AddressError {
            address: text.to_string(),
            why: why.to_string(),
        };
        if let Some(rest) = text.strip_prefix("ssh://") {
            let (authority, path) = rest.split_once('/').ok_or_else(|| {
                err("an ssh:// address needs a path after the host (ssh://host/PATH)")
            })?;
            let (user, hostport) = split_user(authority);
            let (host, port) = match hostport.rsplit_once(':') {
                Some((h, p)) if !h.contains(']') || h.ends_with(']') => {
                    let port = p
                        .parse::<u16>()
                        .map_err(|_| err(&format!("port {p:?} is not a number from 1 to 65535")))?;
                    (h, Some(port))
                }
                _ => (hostport, None),
            };
            let host = host.trim_start_matches('[').trim_end_matches(']');
            // ssh://host/data/runs is /data/runs; ssh://host/~/runs is ~/runs.
            let path = match path.strip_prefix("~/") {
                Some(home) => home.to_string(),
                None => format!("/{path}"),
            };
            return remote(user, host, port, path, &err);
        }
        match text.split_once(':') {
            Some((before, after)) if !before.contains('/') && !before.is_empty() => {
                let (user, host) = split_user(before);
                remote(user, host, None, after.to_string(), &err)
            }
            _ => Ok(RootAddress::Local(PathBuf::from(text))),
        }
    }

    pub fn is_remote(&self) -> bool {
        matches!(self, RootAddress::Remote(_))
    }
}

fn split_user(authority: &str) -> (Option<&str>, &str) {
    match authority.rsplit_once('@') {
        Some((user, host)) => (Some(user), host),
        None => (None, authority),
    }
}

fn remote(
    user: Option<&str>,
    host: &str,
    port: Option<u16>,
    path: String,
    err: &dyn Fn(&str) -> AddressError,
) -> Result<RootAddress, AddressError> {
    if host.is_empty() {
        return Err(err("the host is empty"));
    }
    // ssh would take a host starting with '-' for an option.
    if host.starts_with('-') || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(err("the host name may not start with '-' or hold spaces"));
    }
    if user.is_some_and(|u| u.is_empty() || u.starts_with('-')) {
        return Err(err("the user name is empty or starts with '-'"));
    }
    if path.contains('\0') || path.chars().any(char::is_control) {
        return Err(err("the path holds control characters"));
    }
    let path = if path.is_empty() { ".".into() } else { path };
    Ok(RootAddress::Remote(RemoteRoot {
        user: user.map(str::to_string),
        host: host.to_string(),
        port,
        path,
    }))
}

impl RemoteRoot {
    /// `[user@]host` as ssh takes it.
    pub fn destination(&self) -> String {
        match &self.user {
            Some(u) => format!("{u}@{}", self.host),
            None => self.host.clone(),
        }
    }

    /// The host as the dashboard labels it: `host`, `user@host`, `host:port`.
    pub fn label(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.destination()),
            None => self.destination(),
        }
    }
}

impl fmt::Display for RemoteRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(p) => write!(
                f,
                "ssh://{}:{p}/{}",
                self.destination(),
                self.path.trim_start_matches('/')
            ),
            None => write!(f, "{}:{}", self.destination(), self.path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(text: &str) -> RemoteRoot {
        match RootAddress::parse(text).unwrap() {
            RootAddress::Remote(r) => r,
            other => panic!("{text} parsed as {other:?}"),
        }
    }

    #[test]
    fn scp_and_url_forms_are_remote() {
        let r = remote("gpu1:runs");
        assert_eq!(
            (r.user, r.host.as_str(), r.port, r.path.as_str()),
            (None, "gpu1", None, "runs")
        );
        let r = remote("ana@gpu2:/data/runs");
        assert_eq!(r.destination(), "ana@gpu2");
        assert_eq!(r.path, "/data/runs");
        let r = remote("ssh://ana@gpu3:2222/data/runs");
        assert_eq!(
            (r.host.as_str(), r.port, r.path.as_str()),
            ("gpu3", Some(2222), "/data/runs")
        );
        assert_eq!(r.label(), "ana@gpu3:2222");
        assert_eq!(remote("ssh://gpu3/~/runs").path, "runs");
        assert_eq!(remote("gpu1:").path, ".");
    }

    #[test]
    fn paths_with_colons_after_a_slash_stay_local() {
        for text in ["runs", "./a:b", "/data/a:b", "../x:y"] {
            assert_eq!(
                RootAddress::parse(text).unwrap(),
                RootAddress::Local(text.into())
            );
        }
    }

    #[test]
    fn bad_addresses_name_their_fault() {
        let e = RootAddress::parse("ssh://gpu1:port/x").unwrap_err();
        assert!(e.to_string().contains("port \"port\""), "{e}");
        let e = RootAddress::parse("-oProxyCommand=evil:runs").unwrap_err();
        assert!(e.to_string().contains("may not start with '-'"), "{e}");
        assert!(RootAddress::parse("ssh://gpu1").is_err());
        assert!(RootAddress::parse("@gpu1:runs").is_err());
    }
}
