//! Making untrusted strings safe to print: run names, tags, config values and log lines
//! come from files anyone can write, and a control character (an ANSI escape) must never
//! reach the terminal raw.

/// Replaces control characters with their Rust escape (`\u{1b}`, `\t`...).
pub fn escape_controls(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// As [`escape_controls`], keeping newlines: for multi-line text such as an error chain
/// printed to a terminal.
pub fn escape_controls_keep_newlines(s: &str) -> String {
    s.split('\n')
        .map(escape_controls)
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_ansi_sequences() {
        assert_eq!(escape_controls("run\u{1b}[31mred"), "run\\u{1b}[31mred");
        assert_eq!(escape_controls("plain"), "plain");
        assert_eq!(
            escape_controls_keep_newlines("a\u{1b}]52;c;eA==\u{7}\nb"),
            "a\\u{1b}]52;c;eA==\\u{7}\nb"
        );
    }
}
