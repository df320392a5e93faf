//! A pre-flight check of a plugin file before `dlopen` sees it.
//!
//! `dlopen` maps the segments an ELF header declares; if the file is shorter than that (a
//! truncated copy, a half-finished `cp`), touching the mapping raises SIGBUS and kills the
//! process. Reading the headers ourselves and checking every declared range against the
//! file length turns that crash into a clear refusal.

use std::io::Read;
use std::path::Path;

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;

/// Checks that `path` is a little-endian 64-bit ELF shared object whose loadable segments
/// and section table lie inside the file. Returns a reason on failure.
pub(super) fn check(path: &Path) -> Result<(), String> {
    let mut file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    // Program headers sit near the start; 64 KiB covers every real header table.
    let mut head = Vec::with_capacity(64 * 1024);
    (&mut file)
        .take(64 * 1024)
        .read_to_end(&mut head)
        .map_err(|e| e.to_string())?;
    if head.len() < 64 || &head[..4] != b"\x7fELF" {
        return Err("not an ELF file".into());
    }
    if head[4] != 2 || head[5] != 1 {
        return Err("not a 64-bit little-endian ELF file".into());
    }
    let u16_at = |o: usize| u16::from_le_bytes([head[o], head[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes(head[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(head[o..o + 8].try_into().unwrap());
    const ET_DYN: u16 = 3;
    if u16_at(16) != ET_DYN {
        return Err("an ELF file, but not a shared library".into());
    }
    let phoff = u64_at(32);
    let shoff = u64_at(40);
    let phentsize = u16_at(54) as u64;
    let phnum = u16_at(56) as u64;
    let shentsize = u16_at(58) as u64;
    let shnum = u16_at(60) as u64;
    let truncated = |what: &str, end: u64| {
        format!("truncated: its {what} ends at byte {end}, but the file has {len} bytes")
    };
    let ph_end = phoff.saturating_add(phentsize.saturating_mul(phnum));
    if ph_end > len || ph_end > head.len() as u64 || phentsize < 56 {
        return Err(truncated("program header table", ph_end));
    }
    for i in 0..phnum {
        let o = (phoff + i * phentsize) as usize;
        let p_type = u32_at(o);
        if p_type != PT_LOAD && p_type != PT_DYNAMIC {
            continue;
        }
        let end = u64_at(o + 8).saturating_add(u64_at(o + 32));
        if end > len {
            return Err(truncated("loadable segment", end));
        }
    }
    let sh_end = shoff.saturating_add(shentsize.saturating_mul(shnum));
    if shoff != 0 && sh_end > len {
        return Err(truncated("section header table", sh_end));
    }
    Ok(())
}
