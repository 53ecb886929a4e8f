//! What standard error shows a person at a terminal: progress bars. Off a terminal (a pipe,
//! a file, a container's log) the bars are hidden, so logs stay plain lines.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

/// Whether standard error is a terminal.
pub fn is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// A bar on standard error for `doing` (e.g. `producing`) counted in `what` (e.g.
/// `readings`): position/total, rate and ETA; without a total, a spinner with the count,
/// rate and elapsed time. Hidden, every call on it a no-op, when standard error is not a
/// terminal. Move it with `inc`/`set_position`, end it with `finish_and_clear`.
pub fn progress_bar(doing: &str, what: &str, total: Option<u64>) -> ProgressBar {
    if !is_terminal() {
        return ProgressBar::hidden();
    }
    let template = match total {
        Some(_) => format!(
            "{doing} [{{bar:30}}] {{human_pos}}/{{human_len}} {what}, {{per_sec:0}}, ETA {{eta}}"
        ),
        None => format!("{{spinner}} {doing} {{human_pos}} {what}, {{per_sec:0}}, {{elapsed}}"),
    };
    let style = ProgressStyle::with_template(&template)
        .expect("a valid template")
        .progress_chars("=> ");
    let bar = match total {
        Some(total) => ProgressBar::new(total),
        None => ProgressBar::no_length(),
    };
    bar.set_style(style);
    // Redrawn without new counts too, so that rate and ETA stay current while paced.
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}
