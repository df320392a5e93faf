//! The agent protocol: what `gantry agent` on a remote host and the dashboard say to each
//! other over ssh's stdin and stdout.
//!
//! 1. The agent prints one text line, `GANTRY-AGENT proto=N gantry=VERSION host=NAME`.
//!    Whatever a login prints before it (a banner, a MOTD) is skipped, up to
//!    [`MAX_BANNER`] bytes. A client of another protocol version reads the line and names
//!    both versions.
//! 2. Then both sides send frames: a little-endian `u32` length, then that many bytes of
//!    [postcard](https://docs.rs/postcard) encoding a [`ToClient`] or [`ToAgent`]. A frame
//!    longer than [`MAX_FRAME`] is refused before it is read.
//! 3. The client sends one [`ToAgent::Have`] per root (what its mirror holds, so a
//!    reconnect resumes from the offsets it had), then [`ToAgent::Start`]. The agent sends
//!    what differs, [`ToClient::Synced`], then each change as it happens.
//!
//! The remote side is not trusted: [`read_frame`] bounds every length, [`safe_relative`]
//! refuses every path that could leave the mirror, and nothing received is ever run.

use std::io::{self, BufRead, Read, Write};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The protocol version; both sides must speak the same.
pub const PROTOCOL: u32 = 1;
/// The start of the agent's hello line.
pub const HELLO: &str = "GANTRY-AGENT";
/// Bytes a login may print before the hello line.
pub const MAX_BANNER: usize = 64 * 1024;
/// The longest frame either side accepts.
pub const MAX_FRAME: usize = 4 * 1024 * 1024;
/// File contents travel in chunks of at most this size.
pub const CHUNK: usize = 1024 * 1024;
/// The longest relative path accepted.
const MAX_PATH: usize = 4096;

/// What the agent sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ToClient {
    /// `file` (a small number, used by later frames) is `path` under root `root`.
    Open { file: u32, root: u16, path: String },
    /// A part of the whole content of `file`, from `offset`; the file is `total` bytes long
    /// and modified at `mtime` (Unix seconds). The client makes it visible once complete.
    Put {
        file: u32,
        total: u64,
        offset: u64,
        mtime: f64,
        bytes: Vec<u8>,
    },
    /// `bytes` appended to `file` at `offset` (the length the client has).
    Append {
        file: u32,
        offset: u64,
        bytes: Vec<u8>,
    },
    /// The file is gone.
    Remove { file: u32 },
    /// Everything that differed at connection time has been sent.
    Synced,
    /// Nothing changed; the link is alive.
    Heartbeat,
    /// A problem on the remote side that is not the link's (a root that cannot be read).
    Notice { message: String },
    /// The outcome of [`ToAgent::Act`] `id`; an error is the agent's message.
    Reply {
        id: u32,
        outcome: Result<Outcome, String>,
    },
    /// `file` exists on the host (`total` bytes, modified at `mtime`) and is sent only
    /// when asked for ([`ToAgent::Fetch`]): sample images, fetched when they are shown.
    Listed { file: u32, total: u64, mtime: f64 },
}

/// What the client sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ToAgent {
    /// What the client's mirror of root `root` holds.
    Have { root: u16, files: Vec<HaveFile> },
    /// Begin: send the differences, then the changes.
    Start,
    /// Carry out an action on a run of a root; answered with [`ToClient::Reply`].
    Act {
        id: u32,
        root: u16,
        action: RemoteAction,
    },
    /// Send this [`ToClient::Listed`] file now, and its changes from now on.
    Fetch { root: u16, path: String },
}

/// One file of the client's mirror: its length and a hash of its last bytes, enough for
/// the agent to tell "append from here" from "send it again".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HaveFile {
    pub path: String,
    pub size: u64,
    pub tail_hash: u64,
}

/// Actions the agent performs on its own host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RemoteAction {
    /// SIGTERM the run's runner (SIGKILL when `force`).
    Stop { run: String, force: bool },
    /// Resume the run from its last checkpoint, detached.
    Resume { run: String },
    /// Start a new detached run from this config text (RON) under the root.
    Launch {
        config: String,
        name: Option<String>,
    },
}

/// Whether the agent lists `path` (relative to its root) instead of sending it: the
/// files of a `samples/` folder, which only the Samples view reads.
pub fn is_lazy(path: &str) -> bool {
    Path::new(path)
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|d| d == "samples")
}

/// What an action did on the remote host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    Stopped(crate::control::StopSent),
    Resumed,
    /// The new run's folder name under the root.
    Launched {
        run: String,
    },
}

/// How many trailing bytes [`tail_hash`] covers.
pub const TAIL_BYTES: u64 = 4096;

/// FNV-1a over the last [`TAIL_BYTES`] of `data` (all of it for a small file).
pub fn tail_hash(data: &[u8]) -> u64 {
    let start = data.len().saturating_sub(TAIL_BYTES as usize);
    data[start..].iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}

/// The hash of a file's first `size` bytes' tail, read from disk.
pub fn file_tail_hash(path: &Path, size: u64) -> io::Result<u64> {
    use std::io::Seek;
    let mut file = std::fs::File::open(path)?;
    let start = size.saturating_sub(TAIL_BYTES);
    file.seek(io::SeekFrom::Start(start))?;
    let mut buf = Vec::with_capacity((size - start) as usize);
    file.take(size - start).read_to_end(&mut buf)?;
    if buf.len() as u64 != size - start {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank"));
    }
    Ok(tail_hash(&buf))
}

/// The agent's hello line (without the newline).
pub fn hello_line(host: &str) -> String {
    format!(
        "{HELLO} proto={PROTOCOL} gantry={} host={}",
        env!("CARGO_PKG_VERSION"),
        host.replace(char::is_whitespace, "_")
    )
}

/// What the hello line said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub proto: u32,
    pub gantry: String,
    pub host: String,
}

/// Why the protocol could not start or went on.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("the remote side closed before the agent's hello{}", shown_banner(.banner))]
    NoHello { banner: String },
    #[error("no agent hello in the first {MAX_BANNER} bytes the remote side printed")]
    BannerTooLong,
    #[error("the agent speaks protocol {remote} (gantry {remote_version}); this gantry speaks {PROTOCOL} ({}): install the same gantry version on both sides", env!("CARGO_PKG_VERSION"))]
    Version { remote: u32, remote_version: String },
    #[error("malformed hello line {0:?}")]
    BadHello(String),
    #[error("a frame of {0} bytes is over the {MAX_FRAME}-byte limit")]
    Oversized(usize),
    #[error("a frame ended early")]
    Truncated,
    #[error("a frame does not decode: {0}")]
    Decode(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

fn shown_banner(banner: &str) -> String {
    let text: String = crate::text::escape_controls(banner.trim())
        .chars()
        .take(300)
        .collect();
    if text.is_empty() {
        String::new()
    } else {
        format!(" (it printed: {text})")
    }
}

/// Skips what a login printed and reads the agent's hello line.
pub fn read_hello(reader: &mut impl BufRead) -> Result<Hello, ProtocolError> {
    let mut seen = 0usize;
    let mut banner = String::new();
    loop {
        let mut line = Vec::new();
        let n = reader
            .by_ref()
            .take((MAX_BANNER - seen + 1) as u64)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            return Err(ProtocolError::NoHello { banner });
        }
        seen += n;
        let text = String::from_utf8_lossy(&line);
        // A banner without a final newline may share the hello's line.
        if let Some(at) = text.find(HELLO) {
            return parse_hello(text[at..].trim_end());
        }
        if seen > MAX_BANNER {
            return Err(ProtocolError::BannerTooLong);
        }
        if banner.len() < 2048 {
            banner.push_str(&text);
        }
    }
}

fn parse_hello(line: &str) -> Result<Hello, ProtocolError> {
    let bad = || ProtocolError::BadHello(line.chars().take(200).collect());
    let mut proto = None;
    let mut gantry = String::new();
    let mut host = String::new();
    for word in line.split_whitespace().skip(1) {
        match word.split_once('=') {
            Some(("proto", v)) => proto = Some(v.parse::<u32>().map_err(|_| bad())?),
            Some(("gantry", v)) => gantry = v.chars().take(64).collect(),
            Some(("host", v)) => host = v.chars().take(255).collect(),
            _ => {}
        }
    }
    let proto = proto.ok_or_else(bad)?;
    if proto != PROTOCOL {
        return Err(ProtocolError::Version {
            remote: proto,
            remote_version: gantry,
        });
    }
    Ok(Hello {
        proto,
        gantry,
        host,
    })
}

/// Writes one frame.
pub fn write_frame<T: Serialize>(writer: &mut impl Write, message: &T) -> io::Result<()> {
    let body = postcard::to_stdvec(message).map_err(io::Error::other)?;
    if body.len() > MAX_FRAME {
        return Err(io::Error::other(format!("frame of {} bytes", body.len())));
    }
    writer.write_all(&(body.len() as u32).to_le_bytes())?;
    writer.write_all(&body)
}

/// Reads one frame; `Ok(None)` at a clean end of the stream (between frames).
pub fn read_frame<T: for<'de> Deserialize<'de>>(
    reader: &mut impl Read,
) -> Result<Option<T>, ProtocolError> {
    let mut len = [0u8; 4];
    match read_full(reader, &mut len)? {
        0 => return Ok(None),
        4 => {}
        _ => return Err(ProtocolError::Truncated),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(ProtocolError::Oversized(len));
    }
    let mut body = vec![0u8; len];
    if read_full(reader, &mut body)? != len {
        return Err(ProtocolError::Truncated);
    }
    decode(&body).map(Some)
}

/// Decodes one frame's body; the whole body must be used.
pub fn decode<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ProtocolError> {
    let (value, rest) =
        postcard::take_from_bytes::<T>(body).map_err(|e| ProtocolError::Decode(e.to_string()))?;
    if !rest.is_empty() {
        return Err(ProtocolError::Decode(format!(
            "{} bytes after the message",
            rest.len()
        )));
    }
    Ok(value)
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// `path` as a relative path that stays inside the folder it is joined to: normal
/// components only, none hidden-temporary, bounded length. `None` for anything else.
pub fn safe_relative(path: &str) -> Option<PathBuf> {
    if path.is_empty() || path.len() > MAX_PATH || path.contains('\0') {
        return None;
    }
    let p = Path::new(path);
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(name) => {
                let name = name.to_str()?;
                // Control characters are legal in names (the dashboard escapes them).
                if name.ends_with(PART_SUFFIX) {
                    return None;
                }
                out.push(name);
            }
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

/// The suffix of a file the client is still receiving.
pub const PART_SUFFIX: &str = ".gantry-part";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_is_found_after_a_banner() {
        let text = format!(
            "Welcome to gpu1!\nLast login: today\r\n{}\n",
            hello_line("gpu 1")
        );
        let mut r = io::Cursor::new(text.into_bytes());
        let hello = read_hello(&mut r).unwrap();
        assert_eq!(hello.proto, PROTOCOL);
        assert_eq!(hello.host, "gpu_1");
        let mut r = io::Cursor::new(format!("no newline banner{}\n", hello_line("h")).into_bytes());
        assert!(read_hello(&mut r).is_ok());
    }

    #[test]
    fn another_version_and_a_missing_hello_are_named() {
        let mut r = io::Cursor::new(b"GANTRY-AGENT proto=99 gantry=9.9.9 host=x\n".to_vec());
        let e = read_hello(&mut r).unwrap_err().to_string();
        assert!(
            e.contains("protocol 99 (gantry 9.9.9)") && e.contains(&format!("speaks {PROTOCOL}")),
            "{e}"
        );
        let mut r = io::Cursor::new(b"bash: gantry: command not found\n".to_vec());
        let e = read_hello(&mut r).unwrap_err().to_string();
        assert!(e.contains("command not found"), "{e}");
        let mut r = io::Cursor::new(vec![b'x'; MAX_BANNER + 10]);
        assert!(matches!(
            read_hello(&mut r),
            Err(ProtocolError::BannerTooLong)
        ));
        // Escapes in a banner never reach the message unescaped.
        let mut r = io::Cursor::new(b"\x1b[2J evil\n".to_vec());
        let e = read_hello(&mut r).unwrap_err().to_string();
        assert!(!e.contains('\x1b'), "{e:?}");
    }

    #[test]
    fn frames_round_trip_and_bad_ones_are_refused() {
        let msgs = vec![
            ToClient::Open {
                file: 3,
                root: 0,
                path: "run-1/scalars.csv".into(),
            },
            ToClient::Append {
                file: 3,
                offset: 120,
                bytes: b"1,0,2.5,loss,0.1\n".to_vec(),
            },
            ToClient::Synced,
        ];
        let mut wire = Vec::new();
        for m in &msgs {
            write_frame(&mut wire, m).unwrap();
        }
        let mut r = io::Cursor::new(wire.clone());
        for m in &msgs {
            assert_eq!(read_frame::<ToClient>(&mut r).unwrap().as_ref(), Some(m));
        }
        assert!(read_frame::<ToClient>(&mut r).unwrap().is_none());
        // Truncated, oversized, garbage.
        let mut r = io::Cursor::new(wire[..wire.len() - 1].to_vec());
        let mut last = Ok(None);
        for _ in 0..3 {
            last = read_frame::<ToClient>(&mut r);
        }
        assert!(matches!(last, Err(ProtocolError::Truncated)), "{last:?}");
        let mut big = ((MAX_FRAME + 1) as u32).to_le_bytes().to_vec();
        big.extend([0; 8]);
        assert!(matches!(
            read_frame::<ToClient>(&mut io::Cursor::new(big)),
            Err(ProtocolError::Oversized(_))
        ));
        let junk = [3u8, 0, 0, 0, 0xff, 0xff, 0xff];
        assert!(matches!(
            read_frame::<ToClient>(&mut io::Cursor::new(junk)),
            Err(ProtocolError::Decode(_))
        ));
    }

    #[test]
    fn an_appended_row_costs_little_on_the_wire() {
        let row = b"1200,3,1733512345.125,train/loss,0.0123456\n";
        let mut wire = Vec::new();
        write_frame(
            &mut wire,
            &ToClient::Append {
                file: 17,
                offset: 123_456,
                bytes: row.to_vec(),
            },
        )
        .unwrap();
        assert!(
            wire.len() <= row.len() + 12,
            "{} bytes for a {}-byte row",
            wire.len(),
            row.len()
        );
    }

    #[test]
    fn only_paths_inside_the_mirror_are_safe() {
        assert_eq!(
            safe_relative("run-1/scores/epoch-0001.csv"),
            Some(PathBuf::from("run-1/scores/epoch-0001.csv"))
        );
        // Legal in a name; the dashboard escapes it when shown.
        assert!(safe_relative("evil\x1b[31mred/run.ron").is_some());
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b/..",
            "a\0b",
            "x.gantry-part",
        ] {
            assert_eq!(safe_relative(bad), None, "{bad:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn no_bytes_make_the_decoder_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = read_frame::<ToClient>(&mut io::Cursor::new(bytes.clone()));
            let _ = read_frame::<ToAgent>(&mut io::Cursor::new(bytes.clone()));
            let _ = read_hello(&mut io::Cursor::new(bytes));
        }
    }
}
