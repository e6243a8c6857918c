//! Characters that must not reach a terminal unescaped: C0 and C1 control
//! characters (other than newline and tab), which can move the cursor,
//! rewrite lines or change colours, and the Unicode bidirectional controls,
//! which can make text display in an order other than the one it is read in
//! ("Trojan Source"). Definitions refuse them in names and titles; the CLI
//! escapes them in anything user-supplied it prints to a terminal.

use std::borrow::Cow;

/// True for a character that must not be shown as is.
pub fn is_unsafe(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// The first unsafe character of `text`, if any.
pub fn first_unsafe(text: &str) -> Option<char> {
    text.chars().find(|c| is_unsafe(*c))
}

/// `text` with every unsafe character written as `\u{XXXX}`.
pub fn escape(text: &str) -> Cow<'_, str> {
    if first_unsafe(text).is_none() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_unsafe(c) {
            out.push_str(&format!("\\u{{{:04X}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn controls_and_bidi_overrides_are_escaped() {
        assert_eq!(super::escape("plain\ttext\n"), "plain\ttext\n");
        assert_eq!(super::escape("a\u{1b}[31mred"), "a\\u{001B}[31mred");
        assert_eq!(super::escape("x\u{202E}y"), "x\\u{202E}y");
        assert_eq!(super::first_unsafe("ok"), None);
    }
}
