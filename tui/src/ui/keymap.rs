//! Key bindings from the user's config over the defaults. A binding translates the user's
//! key into the action's default key before the dashboard handles it, so every view and
//! help text keeps one set of keys to reason about; the default key of a rebound action
//! is freed (pressing it does nothing) unless it is itself bound to something else.
//! Only the main keys are translated: text typed into the filter or a form is never.

use std::collections::{BTreeMap, HashMap, HashSet};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// Action names a config may bind, with their default keys.
pub const ACTIONS: &[(&str, &str)] = &[
    ("quit", "q"),
    ("help", "?"),
    ("filter", "/"),
    ("sort", "S"),
    ("reverse", "R"),
    ("mark", "space"),
    ("new", "n"),
    ("clone", "c"),
    ("stop", "x"),
    ("resume", "r"),
    ("up", "k"),
    ("down", "j"),
    ("top", "g"),
    ("bottom", "G"),
    ("next_view", "tab"),
];

/// A key as the config names it: a code and whether ctrl is held.
type Chord = (KeyCode, bool);

#[derive(Debug, Clone, Default)]
pub struct Keymap {
    /// The user's key to the action's default key.
    to_default: HashMap<Chord, Chord>,
    /// Default keys of rebound actions, not bound to anything else.
    freed: HashSet<Chord>,
}

impl Keymap {
    /// Builds the map; an unknown action or key is `(action, why)`.
    pub fn from_config(keys: &BTreeMap<String, String>) -> Result<Keymap, (String, String)> {
        let mut map = Keymap::default();
        for (action, key) in keys {
            let Some((_, default)) = ACTIONS.iter().find(|(a, _)| a == action) else {
                let names: Vec<&str> = ACTIONS.iter().map(|(a, _)| *a).collect();
                return Err((
                    action.clone(),
                    format!("no such action (actions: {})", names.join(", ")),
                ));
            };
            let user = parse_key(key).map_err(|e| (action.clone(), e))?;
            let default = parse_key(default).expect("default keys parse");
            if user != default {
                map.to_default.insert(user, default);
                map.freed.insert(default);
            }
        }
        let bound: Vec<Chord> = map.to_default.keys().copied().collect();
        for key in bound {
            map.freed.remove(&key);
        }
        Ok(map)
    }

    /// The key the dashboard should handle for `key`: translated, or `None` when it is
    /// the freed default of a rebound action.
    pub fn translate(&self, key: KeyEvent) -> Option<KeyEvent> {
        let chord = (key.code, key.modifiers.contains(KeyModifiers::CONTROL));
        if let Some(&(code, ctrl)) = self.to_default.get(&chord) {
            let modifiers = if ctrl {
                KeyModifiers::CONTROL
            } else {
                KeyModifiers::NONE
            };
            return Some(KeyEvent::new(code, modifiers));
        }
        if self.freed.contains(&chord) {
            return None;
        }
        Some(key)
    }
}

/// `"q"`, `"Q"`, `"space"`, `"ctrl-n"`, `"f5"`, `"pagedown"`...
pub fn parse_key(text: &str) -> Result<Chord, String> {
    let (ctrl, name) = match text.strip_prefix("ctrl-") {
        Some(rest) if !rest.is_empty() => (true, rest),
        _ => (false, text),
    };
    let mut chars = name.chars();
    let code = match (chars.next(), chars.next()) {
        (Some(c), None) => KeyCode::Char(c),
        _ => match name.to_lowercase().as_str() {
            "space" => KeyCode::Char(' '),
            "enter" => KeyCode::Enter,
            "tab" => KeyCode::Tab,
            "esc" => KeyCode::Esc,
            "up" => KeyCode::Up,
            "down" => KeyCode::Down,
            "left" => KeyCode::Left,
            "right" => KeyCode::Right,
            "home" => KeyCode::Home,
            "end" => KeyCode::End,
            "pageup" => KeyCode::PageUp,
            "pagedown" => KeyCode::PageDown,
            f if f.starts_with('f')
                && f[1..].parse::<u8>().is_ok_and(|n| (1..=12).contains(&n)) =>
            {
                KeyCode::F(f[1..].parse().unwrap_or(1))
            }
            _ => {
                return Err(format!(
                    "{text:?} is not a key (a character, or space, enter, tab, esc, arrows, \
                     home, end, pageup, pagedown, f1..f12, with an optional ctrl-)"
                ));
            }
        },
    };
    Ok((code, ctrl))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
    }

    #[test]
    fn a_rebound_action_moves_its_key() {
        let keys = [("quit".to_string(), "Q".to_string())].into();
        let map = Keymap::from_config(&keys).unwrap();
        assert_eq!(map.translate(key('Q')), Some(key('q')));
        assert_eq!(map.translate(key('q')), None, "the old key is freed");
        assert_eq!(map.translate(key('j')), Some(key('j')), "others untouched");
    }

    #[test]
    fn swapped_keys_both_work() {
        let keys = [
            ("up".to_string(), "j".to_string()),
            ("down".to_string(), "k".to_string()),
        ]
        .into();
        let map = Keymap::from_config(&keys).unwrap();
        assert_eq!(map.translate(key('j')), Some(key('k')));
        assert_eq!(map.translate(key('k')), Some(key('j')));
    }

    #[test]
    fn ctrl_and_named_keys_parse() {
        assert_eq!(parse_key("ctrl-n"), Ok((KeyCode::Char('n'), true)));
        assert_eq!(parse_key("space"), Ok((KeyCode::Char(' '), false)));
        assert_eq!(parse_key("F5"), Ok((KeyCode::F(5), false)));
        assert!(parse_key("f13").is_err());
        assert!(parse_key("hyper-x").is_err());
        let keys = [("down".to_string(), "ctrl-n".to_string())].into();
        let map = Keymap::from_config(&keys).unwrap();
        let ctrl_n = KeyEvent::new(KeyCode::Char('n'), KeyModifiers::CONTROL);
        assert_eq!(map.translate(ctrl_n), Some(key('j')));
        // Plain n (new run) is not ctrl-n.
        assert_eq!(map.translate(key('n')), Some(key('n')));
    }
}
