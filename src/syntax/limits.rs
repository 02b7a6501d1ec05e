//! Size limits no real spec comes near, checked in one linear pass before the grammar runs.
//!
//! The grammar, the syntax tree, the checker and the IR all recurse once per bracket level, so unbounded
//! nesting would overflow the stack; a huge file, line, name or statement count only costs time and memory.
//! The paper's specs nest 4 brackets deep, have lines under 100 characters and a few dozen statements: each
//! limit is far above that, and each has its own code so that a rejected file says which one it passed.

use crate::diagnostic::{group_thousands, Code, Diagnostic, Span};

/// The largest spec file read, in bytes (1 MiB).
pub const MAX_FILE_BYTES: usize = 1 << 20;
/// The longest line, in characters.
pub const MAX_LINE_CHARS: usize = 4096;
/// The deepest nesting of brackets `(`, `[` and `{`, a block's own braces included.
pub const MAX_NESTING: usize = 16;
/// The longest name (of a block, input, subnet, setting, function or argument), in characters.
pub const MAX_NAME_CHARS: usize = 128;
/// The most statements: lines that start a block or a statement.
pub const MAX_STATEMENTS: usize = 1000;

/// Every limit the text passes, the first place for each; empty when the text is within all of them.
pub fn check(text: &str) -> Vec<Diagnostic> {
    let mut scan = Scan { long_line: long_line(text), ..Scan::default() };
    let bytes = text.as_bytes();
    let mut fresh_line = true;
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        match byte {
            b'\n' | b'\r' => fresh_line = true,
            b' ' | b'\t' => {}
            // A comment runs to the end of its line: brackets and words in it do not count.
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                i = line_end(bytes, i);
                continue;
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                let end = i + bytes[i..].iter().take_while(|b| b.is_ascii_alphanumeric() || **b == b'_').count();
                if std::mem::take(&mut fresh_line) && scan.depth <= 1 {
                    scan.statements += 1;
                    if scan.statements == MAX_STATEMENTS + 1 {
                        scan.too_many = Some(Span::new(i, end));
                    }
                }
                if end - i > MAX_NAME_CHARS && scan.long_name.is_none() {
                    scan.long_name = Some(Span::new(i, end));
                }
                i = end;
                continue;
            }
            // A number's digits and exponent (`1e5`) are one word, not a name.
            b'0'..=b'9' => {
                fresh_line = false;
                i += bytes[i..].iter().take_while(|b| b.is_ascii_alphanumeric() || **b == b'_').count();
                continue;
            }
            b'(' | b'[' | b'{' => {
                fresh_line = false;
                scan.depth += 1;
                if scan.depth == 1 {
                    scan.outermost = i;
                }
                if scan.depth > MAX_NESTING && scan.deep.is_none() {
                    scan.deep = Some((i, scan.outermost));
                }
            }
            b')' | b']' | b'}' => {
                fresh_line = false;
                scan.depth = scan.depth.saturating_sub(1);
            }
            _ => fresh_line = false,
        }
        i += 1;
    }
    scan.diagnostics(text)
}

/// Where the line holding `from` ends: at the first `\n` or `\r` from there, or at the end of the text. The
/// grammar's NEWLINE is `\n`, `\r\n` or a lone `\r`, so a comment ends at a lone `\r` too: the text after it
/// is read as code, and its brackets must count here.
pub(crate) fn line_end(bytes: &[u8], from: usize) -> usize {
    bytes[from..].iter().position(|&b| b == b'\n' || b == b'\r').map_or(bytes.len(), |p| from + p)
}

/// The first character past [`MAX_LINE_CHARS`] on any line: its byte offset and length.
fn long_line(text: &str) -> Option<(usize, usize)> {
    let mut chars = 0;
    for (offset, byte) in text.bytes().enumerate() {
        if byte == b'\n' || byte == b'\r' {
            chars = 0;
        } else if byte & 0xC0 != 0x80 {
            // A UTF-8 continuation byte does not start a character.
            chars += 1;
            if chars > MAX_LINE_CHARS {
                return Some((offset, text[offset..].chars().next().map_or(1, char::len_utf8)));
            }
        }
    }
    None
}

#[derive(Default)]
struct Scan {
    depth: usize,
    /// Where the outermost bracket still open was opened.
    outermost: usize,
    statements: usize,
    deep: Option<(usize, usize)>,
    /// The first character past the line limit: its byte offset and length.
    long_line: Option<(usize, usize)>,
    long_name: Option<Span>,
    too_many: Option<Span>,
}

impl Scan {
    fn diagnostics(self, text: &str) -> Vec<Diagnostic> {
        let mut found = Vec::new();
        if text.len() > MAX_FILE_BYTES {
            let at = floor_char_boundary(text, MAX_FILE_BYTES);
            let width = text[at..].chars().next().map_or(0, char::len_utf8);
            found.push(
                Diagnostic::error(
                    Code::FileTooLarge,
                    format!("the spec is {} bytes, more than the limit of 1 MiB", group_thousands(text.len() as u64)),
                )
                .at(Span::new(at, at + width), "the file passes 1 MiB (1,048,576 bytes) here")
                .note("a spec describes one model in a few dozen lines; a file this large is not a spec, or was generated wrong")
                .help("check that this is the spec file; a generated spec must stay under 1 MiB"),
            );
        }
        if let Some((at, outermost)) = self.deep {
            let opener = &text[at..at + 1];
            found.push(
                Diagnostic::error(Code::NestingTooDeep, format!("brackets nested more than {MAX_NESTING} deep"))
                    .at(Span::new(at, at + 1), format!("this `{opener}` opens level {}", MAX_NESTING + 1))
                    .also(Span::new(outermost, outermost + 1), "level 1 opens here")
                    .note("a spec nests a few levels: a block, a call, a call in an argument (`item_id(embedding = separate(dim = 64))`)")
                    .help(format!(
                        "close the brackets before they nest {} deep; a subnet is one `gru(...)`, not a call of calls",
                        MAX_NESTING + 1
                    )),
            );
        }
        if let Some((at, width)) = self.long_line {
            found.push(
                Diagnostic::error(Code::LineTooLong, format!("line longer than {} characters", group_thousands(MAX_LINE_CHARS as u64)))
                    .at(Span::new(at, at + width), format!("character {} of the line", group_thousands((MAX_LINE_CHARS + 1) as u64)))
                    .help("break the statement across lines: newlines are free inside brackets"),
            );
        }
        if let Some(span) = self.long_name {
            found.push(
                Diagnostic::error(Code::NameTooLong, format!("a name longer than {MAX_NAME_CHARS} characters"))
                    .at(span, format!("this name has {} characters", group_thousands((span.end - span.start) as u64)))
                    .help(format!("use a name of at most {MAX_NAME_CHARS} characters")),
            );
        }
        if let Some(span) = self.too_many {
            found.push(
                Diagnostic::error(Code::TooManyStatements, format!("more than {} statements", group_thousands(MAX_STATEMENTS as u64)))
                    .at(span, format!("statement {} starts here", group_thousands((MAX_STATEMENTS + 1) as u64)))
                    .note("every line that starts a block or a statement counts; a spec needs a few dozen")
                    .help(format!(
                        "keep the spec to {} statements at most; check that this is the spec file",
                        group_thousands(MAX_STATEMENTS as u64)
                    )),
            );
        }
        found.sort_by_key(|d| d.primary.as_ref().map(|(span, _)| span.start));
        found
    }
}

fn floor_char_boundary(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes_and_starts(text: &str) -> Vec<(Code, usize)> {
        check(text).iter().map(|d| (d.code, d.primary.as_ref().unwrap().0.start)).collect()
    }

    #[test]
    fn specs_within_every_limit_pass() {
        let spec = "model m {\n  input id : item_id(embedding = separate(dim = 64)) // (((\n  subnet a = gru(id, hidden = 1e2)\n}\n";
        assert!(check(spec).is_empty());
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        for folder in ["specs", "specs/modern"] {
            for entry in std::fs::read_dir(root.join(folder)).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "prnn") {
                    assert!(check(&std::fs::read_to_string(&path).unwrap()).is_empty(), "{}", path.display());
                }
            }
        }
    }

    #[test]
    fn nesting_is_counted_outside_comments_up_to_the_limit() {
        let at_limit = format!("model m {{\n  x = {}{}\n}}\n", "[".repeat(MAX_NESTING - 1), "]".repeat(MAX_NESTING - 1));
        assert!(check(&at_limit).is_empty());
        let over = format!("model m {{\n  x = {}{}\n}}\n", "[".repeat(MAX_NESTING), "]".repeat(MAX_NESTING));
        assert_eq!(codes_and_starts(&over), [(Code::NestingTooDeep, 16 + MAX_NESTING - 1)]);
        let in_comment = format!("model m {{\n  // {}\n}}\n", "(".repeat(100));
        assert!(check(&in_comment).is_empty());
        // Closers of any kind close: unbalanced text cannot hide depth or invent it.
        assert!(check(&"(]".repeat(1000)).is_empty());
    }

    #[test]
    fn a_lone_carriage_return_ends_a_comment_and_a_line_as_in_the_grammar() {
        let after_comment = format!("model m {{\n  // a comment\r  x = {}\n}}\n", "(".repeat(20));
        let level_17 = after_comment.find('(').unwrap() + MAX_NESTING - 1;
        assert_eq!(codes_and_starts(&after_comment), [(Code::NestingTooDeep, level_17)]);
        let crlf = format!("model m {{\r\n  // {}\r\n}}\r\n", "x".repeat(MAX_LINE_CHARS - 5));
        assert!(check(&crlf).is_empty(), "the `\\r` of `\\r\\n` is not a character of the line");
        let lines = format!("model m {{\r{}}}\r", "  x = 1\r".repeat(MAX_STATEMENTS));
        assert_eq!(codes_and_starts(&lines), [(Code::TooManyStatements, lines.rfind("x = 1").unwrap())]);
    }

    #[test]
    fn a_long_line_is_found_at_its_first_character_past_the_limit() {
        let at_limit = format!("model m {{\n  // {}\n}}\n", "é".repeat(MAX_LINE_CHARS - 5));
        assert!(check(&at_limit).is_empty(), "the limit counts characters, not bytes");
        let over = format!("model m {{\n  // {}\n}}\n", "é".repeat(MAX_LINE_CHARS - 4));
        let start = 10 + 5 + 2 * (MAX_LINE_CHARS - 5);
        assert_eq!(codes_and_starts(&over), [(Code::LineTooLong, start)]);
        assert_eq!(&over[start..start + 2], "é");
    }

    #[test]
    fn names_are_limited_and_numbers_are_not_names() {
        let name = "n".repeat(MAX_NAME_CHARS);
        assert!(check(&format!("model {name} {{}}\n")).is_empty());
        assert_eq!(codes_and_starts(&format!("model {name}x {{}}\n")), [(Code::NameTooLong, 6)]);
        assert!(check(&format!("model m {{\n  x = 1{}\n}}\n", "0".repeat(500))).is_empty());
    }

    #[test]
    fn statements_are_lines_that_start_a_block_or_a_statement() {
        let spec = |n: usize| {
            let mut text = String::from("model m {\n");
            for i in 1..n {
                text.push_str(&format!("  x{i} = f(\n    a = 1\n  )\n"));
            }
            text + "}\n"
        };
        assert!(check(&spec(MAX_STATEMENTS)).is_empty(), "arguments on their own lines are not statements");
        let over = spec(MAX_STATEMENTS + 1);
        let start = over.find(&format!("x{MAX_STATEMENTS} =")).unwrap();
        assert_eq!(codes_and_starts(&over), [(Code::TooManyStatements, start)]);
    }

    #[test]
    fn a_file_over_one_mebibyte_is_located_where_it_passes_the_limit() {
        // Valid statements, each padded by a comment: only the size is wrong. The bad-spec corpus has no
        // example of E0103, because it would take a 1 MiB file.
        let line = format!("  seed = 1 // {}\n", "x".repeat(2000));
        let mut text = String::from("model m {\n");
        while text.len() <= MAX_FILE_BYTES {
            text.push_str(&line);
        }
        text.push_str("}\n");
        let diagnostics = check(&text);
        assert_eq!(diagnostics.len(), 1, "{diagnostics:#?}");
        assert_eq!(diagnostics[0].code, Code::FileTooLarge);
        assert_eq!(diagnostics[0].primary.as_ref().unwrap().0, Span::new(MAX_FILE_BYTES, MAX_FILE_BYTES + 1));
        let rendered = crate::diagnostic::render_plain(&crate::diagnostic::Source::new("big.prnn", text.as_str()), &diagnostics);
        let line = text[..MAX_FILE_BYTES].matches('\n').count() + 1;
        let column = MAX_FILE_BYTES - text[..MAX_FILE_BYTES].rfind('\n').unwrap();
        assert!(rendered.contains(&format!("big.prnn:{line}:{column}\n")), "{rendered}");
        assert!(rendered.len() < 2000, "the snippet shows the line up to a little after the label: {rendered}");
    }
}
