//! The little CSV the run folder needs: RFC 4180 quoting for fields that carry commas or
//! quotes (file names, tags), and the matching split. Rows are single lines.

/// Quotes a field when needed. Line breaks are written escaped (`\n`, `\r`), not quoted:
/// every reader of a run folder is line-based (a live tailer, `tail -f`, `grep`), so a
/// quoted line break would split the row in two unreadable halves.
pub fn field(s: &str) -> String {
    let s = if s.contains(['\n', '\r']) {
        s.replace('\n', "\\n").replace('\r', "\\r")
    } else {
        s.to_string()
    };
    if s.contains([',', '"']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// Splits one line into fields, honouring quotes.
pub fn split(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => cur.push(c),
            (false, '"') if cur.is_empty() => quoted = true,
            (false, ',') => fields.push(std::mem::take(&mut cur)),
            (false, c) => cur.push(c),
        }
    }
    if quoted {
        return Err("unterminated quote".into());
    }
    fields.push(cur);
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_round_trips() {
        for s in ["plain", "a,b", "say \"hi\"", ""] {
            let line = format!("{},x", field(s));
            assert_eq!(split(&line).unwrap(), vec![s.to_string(), "x".into()]);
        }
        assert!(split("\"open,x").is_err());
    }

    #[test]
    fn line_breaks_are_escaped_so_a_row_stays_one_line() {
        // Found by tests/hostile_input.rs: a plugin's tag "a\nb" split its scalars.csv row
        // into two lines that neither the tailer nor `truncate_after` could read.
        for (s, written) in [
            ("a\nb", "a\\nb"),
            ("x\r\n", "x\\r\\n"),
            ("a,\nb", "\"a,\\nb\""),
        ] {
            let f = field(s);
            assert_eq!(f, written);
            assert!(!f.contains(['\n', '\r']));
            let line = format!("{f},x");
            assert_eq!(
                split(&line).unwrap()[0],
                s.replace('\n', "\\n").replace('\r', "\\r")
            );
        }
    }
}
