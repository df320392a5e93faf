//! Habits users of terminal tools bring: reversing the sort, the mouse (wheel and click),
//! and their own key bindings.

use crossterm::event::{KeyCode, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};

use super::app::{Focus, View};
use super::keymap::Keymap;
use super::tests::{app, key, render, root, store};

/// The runs list's ids, top to bottom.
fn listed(app: &super::app::App, store: &super::store::RunStore) -> Vec<String> {
    app.visible(store).iter().map(|r| r.id()).collect()
}

#[test]
fn r_reverses_the_sort_and_says_so() {
    let root = root("habits-reverse");
    let store = store(&root);
    let mut app = app();
    let before = render(&mut app, &store, 100, 30);
    assert!(before.contains("sort age "), "{before}");
    let order = listed(&app, &store);
    let first_row = |screen: &str| screen.lines().nth(2).unwrap_or("").to_string();
    assert!(first_row(&before).contains(&order[0]), "{before}");
    key(&mut app, &store, KeyCode::Char('R'));
    let after = render(&mut app, &store, 100, 30);
    assert!(after.contains("sort age, reversed"), "{after}");
    let mut reversed = listed(&app, &store);
    assert!(first_row(&after).contains(&reversed[0]), "{after}");
    reversed.reverse();
    assert_eq!(order, reversed);
    assert!(order.len() >= 4, "{order:?}");
    // Sorting by another key keeps the reversal until R again.
    key(&mut app, &store, KeyCode::Char('S'));
    assert!(render(&mut app, &store, 100, 30).contains("sort name, reversed"));
    key(&mut app, &store, KeyCode::Char('R'));
    assert!(render(&mut app, &store, 100, 30).contains("sort name "));
}

/// `S` only ever moves to the next key and `R` only ever flips the direction, so every
/// one of the eight orders is a known number of presses away: `S` again never reverses.
#[test]
fn s_cycles_every_key_and_r_reverses_each_of_them() {
    let root = root("habits-sort-cycle");
    let store = store(&root);
    let mut app = app();
    let title = |app: &mut super::app::App| {
        let screen = render(app, &store, 100, 30);
        let top = screen.lines().next().unwrap_or("").to_string();
        let start = top.find("sort ").expect("a sort in the title") + 5;
        top[start..]
            .split(" ─")
            .next()
            .unwrap_or("")
            .trim()
            .to_string()
    };
    assert_eq!(title(&mut app), "age");
    let mut orders = Vec::new();
    for want in ["name", "state", "best", "age"] {
        key(&mut app, &store, KeyCode::Char('S'));
        assert_eq!(title(&mut app), want, "S moves on, never reverses");
        let order = listed(&app, &store);
        key(&mut app, &store, KeyCode::Char('R'));
        assert_eq!(title(&mut app), format!("{want}, reversed"));
        let mut reversed = listed(&app, &store);
        reversed.reverse();
        assert_eq!(reversed, order, "R reverses {want}");
        key(&mut app, &store, KeyCode::Char('R'));
        assert_eq!(listed(&app, &store), order, "R again restores {want}");
        orders.push(order);
    }
    // Name order is the ids' order; the keys give different orders of these runs.
    let mut ids = orders[0].clone();
    ids.sort();
    assert_eq!(orders[0], ids);
    assert_ne!(orders[0], orders[3], "name is not age");
}

fn mouse(kind: MouseEventKind, column: u16, row: u16) -> MouseEvent {
    MouseEvent {
        kind,
        column,
        row,
        modifiers: KeyModifiers::NONE,
    }
}

#[test]
fn a_click_selects_a_run_or_a_view_and_the_wheel_scrolls() {
    let root = root("habits-mouse");
    let store = store(&root);
    let mut app = app();
    render(&mut app, &store, 100, 30);
    let names = listed(&app, &store);
    // Third run: row = top border + header + 2.
    let list = app.areas.borrow().list;
    let click = mouse(MouseEventKind::Down(MouseButton::Left), 10, list.y + 4);
    assert!(app.on_mouse(click, &store));
    assert_eq!(app.current(&store).unwrap().id(), names[2]);
    // The wheel moves the selection in the list.
    assert!(app.on_mouse(mouse(MouseEventKind::ScrollDown, 10, list.y + 3), &store));
    assert_eq!(app.current(&store).unwrap().id(), names[3]);
    assert!(app.on_mouse(mouse(MouseEventKind::ScrollUp, 10, list.y + 3), &store));
    assert_eq!(app.current(&store).unwrap().id(), names[2]);
    // A click on a tab opens that view.
    render(&mut app, &store, 100, 30);
    let (row, tabs) = {
        let a = app.areas.borrow();
        (a.tabs_row, a.tabs.clone())
    };
    let metrics = View::ALL.iter().position(|v| *v == View::Metrics).unwrap();
    let click = mouse(
        MouseEventKind::Down(MouseButton::Left),
        tabs[metrics].0 + 1,
        row,
    );
    assert!(app.on_mouse(click, &store));
    assert_eq!(app.view, View::Metrics);
    // A click in the view focuses it; the wheel there scrolls the view, not the list.
    app.view = View::Log;
    let body = app.areas.borrow().body;
    let click = mouse(
        MouseEventKind::Down(MouseButton::Left),
        body.x + 5,
        body.y + 3,
    );
    assert!(app.on_mouse(click, &store));
    assert_eq!(app.focus, Focus::Detail);
    assert!(app.on_mouse(
        mouse(MouseEventKind::ScrollUp, body.x + 5, body.y + 3),
        &store
    ));
    assert_eq!(app.current(&store).unwrap().id(), names[2]);
    // Below the last run and outside everything: nothing happens.
    assert!(!app.on_mouse(mouse(MouseEventKind::Moved, 1, 1), &store));
}

#[test]
fn the_mouse_is_ignored_while_help_is_open() {
    let root = root("habits-mouse-help");
    let store = store(&root);
    let mut app = app();
    render(&mut app, &store, 100, 30);
    key(&mut app, &store, KeyCode::Char('?'));
    let list = app.areas.borrow().list;
    let click = mouse(MouseEventKind::Down(MouseButton::Left), 10, list.y + 4);
    assert!(!app.on_mouse(click, &store));
}

#[test]
fn user_bindings_replace_the_defaults() {
    let root = root("habits-keys");
    let store = store(&root);
    let mut app = app();
    let keys = [
        ("quit".to_string(), "Q".to_string()),
        ("down".to_string(), "ctrl-n".to_string()),
    ]
    .into();
    app.keymap = Keymap::from_config(&keys).unwrap();
    render(&mut app, &store, 100, 30);
    let names = listed(&app, &store);
    key(&mut app, &store, KeyCode::Char('q'));
    assert!(!app.quit, "q was rebound: it must not quit");
    app.on_key(
        crossterm::event::KeyEvent::new(KeyCode::Char('n'), KeyModifiers::CONTROL),
        &store,
    );
    assert_eq!(app.current(&store).unwrap().id(), names[1]);
    // Typing into the filter is text, never a binding.
    key(&mut app, &store, KeyCode::Char('/'));
    key(&mut app, &store, KeyCode::Char('Q'));
    assert!(!app.quit);
    assert_eq!(app.filter.text, "Q");
    key(&mut app, &store, KeyCode::Enter);
    key(&mut app, &store, KeyCode::Char('Q'));
    assert!(app.quit);
}
