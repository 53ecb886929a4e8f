//! What standard error shows a person at a terminal: progress bars, and a block of lines
//! redrawn in place. Off a terminal (a pipe, a file, a container's log) the bars are hidden
//! and the block is printed as one plain line, so logs stay greppable.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::{IsTerminal, Write};
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

/// A block of lines shown again and again: on a terminal each block replaces the previous
/// one in place; elsewhere each block is one line, its lines joined by ` | `.
#[derive(Debug)]
pub struct LiveLines {
    terminal: bool,
    /// Lines of the block on screen, to move up over.
    drawn: usize,
}

impl LiveLines {
    /// For standard error.
    pub fn stderr() -> LiveLines {
        LiveLines::new(is_terminal())
    }

    fn new(terminal: bool) -> LiveLines {
        LiveLines { terminal, drawn: 0 }
    }

    /// Shows `lines` on standard error.
    pub fn draw(&mut self, lines: &[String]) {
        let text = self.render(lines);
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(text.as_bytes());
        let _ = err.flush();
    }

    /// What [`LiveLines::draw`] writes: on a terminal, the cursor moved up over the
    /// previous block and each line cleared before it is written.
    fn render(&mut self, lines: &[String]) -> String {
        if !self.terminal {
            return format!("{}\n", lines.join(" | "));
        }
        let mut text = String::new();
        if self.drawn > 0 {
            text.push_str(&format!("\x1b[{}A", self.drawn));
        }
        for line in lines {
            text.push_str("\r\x1b[2K");
            text.push_str(line);
            text.push('\n');
        }
        // A shorter block leaves the rest of the previous one: clear it.
        text.push_str("\x1b[J");
        self.drawn = lines.len();
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(texts: &[&str]) -> Vec<String> {
        texts.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn on_a_terminal_each_block_replaces_the_previous_one() {
        let mut live = LiveLines::new(true);
        assert_eq!(
            live.render(&lines(&["a", "b"])),
            "\r\x1b[2Ka\n\r\x1b[2Kb\n\x1b[J"
        );
        assert_eq!(live.render(&lines(&["c"])), "\x1b[2A\r\x1b[2Kc\n\x1b[J");
        assert_eq!(live.render(&lines(&["d"])), "\x1b[1A\r\x1b[2Kd\n\x1b[J");
    }

    #[test]
    fn elsewhere_each_block_is_one_plain_line() {
        let mut live = LiveLines::new(false);
        assert_eq!(live.render(&lines(&["a", "b"])), "a | b\n");
        assert_eq!(live.render(&lines(&["c", "d"])), "c | d\n");
    }
}
