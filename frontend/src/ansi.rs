//! ANSI colours in Ansible's output: the SGR sequences (`ESC [ … m`) become styled spans, every
//! other escape sequence is dropped. A colour may span lines (Ansible colours a whole
//! `ok: [host] => {…}` block), so each line starts from the style the previous one ended with.

/// A colour: one of the 16 terminal colours (shown through the page's own palette, so it stays
/// readable in light and dark mode) or an exact one from a 256-colour or RGB sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colour {
    Basic(u8),
    Rgb(u8, u8, u8),
}

/// The graphic state at a point of the output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Style {
    pub fg: Option<Colour>,
    pub bg: Option<Colour>,
    pub bold: bool,
    pub dim: bool,
    pub italic: bool,
    pub underline: bool,
}

impl Style {
    #[cfg(test)]
    pub fn is_plain(&self) -> bool {
        *self == Style::default()
    }

    /// CSS classes and inline style for a span of this style.
    pub fn css(&self) -> (String, String) {
        let mut classes = Vec::new();
        let mut inline = String::new();
        match self.fg {
            Some(Colour::Basic(n)) => classes.push(format!("fg{n}")),
            Some(Colour::Rgb(r, g, b)) => inline.push_str(&format!("color:rgb({r},{g},{b});")),
            None => {}
        }
        match self.bg {
            Some(Colour::Basic(n)) => classes.push(format!("bg{n}")),
            Some(Colour::Rgb(r, g, b)) => inline.push_str(&format!("background:rgb({r},{g},{b});")),
            None => {}
        }
        for (on, class) in [(self.bold, "b"), (self.dim, "dim"), (self.italic, "i"), (self.underline, "u")] {
            if on {
                classes.push(class.to_owned());
            }
        }
        (classes.join(" "), inline)
    }

    fn apply(&mut self, params: &str) {
        let mut codes =
            params
                .split([';', ':'])
                .map(|p| if p.is_empty() { 0 } else { p.parse::<u16>().unwrap_or(u16::MAX) });
        while let Some(code) = codes.next() {
            match code {
                0 => *self = Style::default(),
                1 => self.bold = true,
                2 => self.dim = true,
                3 => self.italic = true,
                4 => self.underline = true,
                22 => {
                    self.bold = false;
                    self.dim = false;
                }
                23 => self.italic = false,
                24 => self.underline = false,
                30..=37 => self.fg = Some(Colour::Basic((code - 30) as u8)),
                90..=97 => self.fg = Some(Colour::Basic((code - 90 + 8) as u8)),
                39 => self.fg = None,
                40..=47 => self.bg = Some(Colour::Basic((code - 40) as u8)),
                100..=107 => self.bg = Some(Colour::Basic((code - 100 + 8) as u8)),
                49 => self.bg = None,
                38 | 48 => {
                    let colour = match codes.next() {
                        Some(5) => codes.next().map(colour_256),
                        Some(2) => match (codes.next(), codes.next(), codes.next()) {
                            (Some(r), Some(g), Some(b)) => Some(Colour::Rgb(r as u8, g as u8, b as u8)),
                            _ => None,
                        },
                        _ => None,
                    };
                    if code == 38 {
                        self.fg = colour;
                    } else {
                        self.bg = colour;
                    }
                }
                _ => {}
            }
        }
    }
}

fn colour_256(n: u16) -> Colour {
    match n {
        0..=15 => Colour::Basic(n as u8),
        16..=231 => {
            let n = n - 16;
            let level = |v: u16| if v == 0 { 0 } else { (55 + v * 40) as u8 };
            Colour::Rgb(level(n / 36), level(n / 6 % 6), level(n % 6))
        }
        _ => {
            let v = (8 + (n.min(255) - 232) * 10) as u8;
            Colour::Rgb(v, v, v)
        }
    }
}

/// Splits a line into runs of text with their style, starting from `start`; returns the runs and
/// the style the line ends with. Carriage returns are dropped.
pub fn parse(line: &str, start: Style) -> (Vec<(Style, String)>, Style) {
    let mut runs: Vec<(Style, String)> = Vec::new();
    let mut style = start;
    let mut text = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.peek() {
                Some('[') => {
                    chars.next();
                    let mut params = String::new();
                    let mut last = None;
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            last = Some(c);
                            break;
                        }
                        params.push(c);
                    }
                    if last == Some('m') {
                        let mut next = style;
                        next.apply(&params);
                        if next != style {
                            if !text.is_empty() {
                                runs.push((style, std::mem::take(&mut text)));
                            }
                            style = next;
                        }
                    }
                }
                Some(']') => {
                    chars.next();
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' {
                            break;
                        }
                        if c == '\u{1b}' && chars.peek() == Some(&'\\') {
                            chars.next();
                            break;
                        }
                    }
                }
                Some(_) => {
                    chars.next();
                }
                None => {}
            },
            '\r' => {}
            c => text.push(c),
        }
    }
    if !text.is_empty() {
        runs.push((style, text));
    }
    (runs, style)
}

/// The line's text without escape sequences (what search looks at).
pub fn strip(line: &str) -> String {
    if !line.contains(['\u{1b}', '\r']) {
        return line.to_owned();
    }
    parse(line, Style::default()).0.into_iter().map(|(_, t)| t).collect()
}

/// The style a line ends with, without building its runs.
pub fn end_style(line: &str, start: Style) -> Style {
    if !line.contains('\u{1b}') {
        return start;
    }
    parse(line, start).1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ansible_colours_become_styled_runs() {
        let (runs, end) = parse("\u{1b}[0;32mok: [web-01]\u{1b}[0m done", Style::default());
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].0.fg, Some(Colour::Basic(2)));
        assert_eq!(runs[0].1, "ok: [web-01]");
        assert!(runs[1].0.is_plain());
        assert_eq!(runs[1].1, " done");
        assert!(end.is_plain());
    }

    #[test]
    fn a_colour_carries_over_to_the_next_line() {
        let (_, end) = parse("\u{1b}[0;33mchanged: [h] => {", Style::default());
        assert_eq!(end.fg, Some(Colour::Basic(3)));
        let (runs, end) = parse("    \"msg\": 1\u{1b}[0m", end);
        assert_eq!(runs[0].0.fg, Some(Colour::Basic(3)));
        assert!(end.is_plain());
    }

    #[test]
    fn bright_256_and_rgb_colours_and_other_sequences() {
        let (runs, _) = parse(
            "\u{1b}[1;35mA\u{1b}[38;5;196mB\u{1b}[38;2;1;2;3mC\u{1b}[2KD\u{1b}]0;t\u{7}E\r",
            Style::default(),
        );
        assert_eq!(runs[0].0.fg, Some(Colour::Basic(5)));
        assert!(runs[0].0.bold);
        assert_eq!(runs[1].0.fg, Some(Colour::Rgb(255, 0, 0)));
        assert_eq!(runs[2].0.fg, Some(Colour::Rgb(1, 2, 3)));
        assert_eq!(runs[2].1, "CDE");
        assert_eq!(strip("\u{1b}[0;31mfatal\u{1b}[0m: x\r"), "fatal: x");
    }
}
