//! pest parser: spec text -> spanned syntax tree, with every broken line reported at once.

use std::num::NonZeroUsize;
use std::sync::{Mutex, PoisonError};

use pest::error::{ErrorVariant, InputLocation};
use pest::iterators::{Pair, Pairs};
use pest::Parser;
use pest_derive::Parser;

use super::ast::*;
use super::limits;
use crate::diagnostic::{group_thousands, Code, Diagnostic, Span};

#[derive(Parser)]
#[grammar = "../grammar/prnn.pest"]
struct SpecParser;

/// How many grammar steps (pest's counted calls: rules, sequences, repetitions, options, lookaheads) one run of
/// the grammar may take per byte of its text. The grammar is linear: the worst text found within the size limits
/// (lines of 15 nested calls, each broken by a closer of the wrong kind) takes 45 steps a byte and a paper spec
/// about 6, so the budget is five times the worst. It bounds time and memory whatever the grammar becomes: pest's
/// record of the attempts at the furthest position grows with every step, and once grew to gigabytes when a
/// recovery rule backtracked exponentially (issue 19; the backtracking was removed for issue 15).
const PARSE_STEPS_PER_BYTE: usize = 256;
/// Steps every run may take on top of [`PARSE_STEPS_PER_BYTE`], so that a short text is not refused for the
/// fixed cost of its first rules.
const PARSE_STEPS_BASE: usize = 100_000;

/// Serialises the runs of the grammar: pest reads its call limit and error detail from process-wide settings when
/// a run starts, and each run sets the limit for its own text.
static PEST_SETTINGS: Mutex<()> = Mutex::new(());

/// The steps a run of the grammar may take on a text: `base`, and `per_byte` for each of its bytes.
#[derive(Clone, Copy, Debug)]
struct StepBudget {
    per_byte: usize,
    base: usize,
}

impl StepBudget {
    const DEFAULT: StepBudget = StepBudget { per_byte: PARSE_STEPS_PER_BYTE, base: PARSE_STEPS_BASE };

    fn steps(self, text: &str) -> usize {
        text.len().saturating_mul(self.per_byte).saturating_add(self.base).max(1)
    }

    /// Runs the grammar's `rule` on `text`; past the budget pest stops with its "call limit reached" error.
    fn run(self, rule: Rule, text: &str) -> Result<Pairs<'_, Rule>, pest::error::Error<Rule>> {
        let _turn = PEST_SETTINGS.lock().unwrap_or_else(PoisonError::into_inner);
        // Track the literal tokens tried at the furthest position, so messages can say "expected `,` or `)`".
        pest::set_error_detail(true);
        pest::set_call_limit(NonZeroUsize::new(self.steps(text)));
        SpecParser::parse(rule, text)
    }
}

/// Parses a whole spec. On failure returns one diagnostic per broken line (or one for a broken block structure,
/// or one per size limit passed: those are checked first, so that the grammar only ever sees bounded input).
pub fn parse(text: &str) -> Result<SpecFile, Vec<Diagnostic>> {
    parse_within(text, StepBudget::DEFAULT)
}

fn parse_within(text: &str, budget: StepBudget) -> Result<SpecFile, Vec<Diagnostic>> {
    let over_limits = limits::check(text);
    if !over_limits.is_empty() {
        return Err(over_limits);
    }
    let mut pairs = budget.run(Rule::spec, text).map_err(|error| vec![grammar_diagnostic(error, text, 0, budget)])?;
    let spec = pairs.next().expect("the spec rule always yields one pair");
    let mut blocks = Vec::new();
    let mut errors = Vec::new();
    for pair in spec.into_inner() {
        if pair.as_rule() == Rule::block {
            blocks.push(build_block(pair, budget, &mut errors));
        }
    }
    if errors.is_empty() {
        Ok(SpecFile { blocks })
    } else {
        Err(errors)
    }
}

fn span_of(pair: &Pair<Rule>) -> Span {
    let span = pair.as_span();
    Span::new(span.start(), span.end())
}

fn build_block(pair: Pair<Rule>, budget: StepBudget, errors: &mut Vec<Diagnostic>) -> Block {
    let span = span_of(&pair);
    let mut kind = None;
    let mut name = None;
    let mut statements = Vec::new();
    for inner in pair.into_inner() {
        match inner.as_rule() {
            Rule::block_kind => kind = Some(build_ident(inner.into_inner().next().unwrap())),
            Rule::block_name => name = Some(build_ident(inner.into_inner().next().unwrap())),
            Rule::bad_line => errors.push(reparse_bad_line(&inner, budget)),
            _ => statements.push(build_statement(inner)),
        }
    }
    Block { kind: kind.expect("a block always has a kind"), name, statements, span }
}

/// A line that failed inside a block is parsed again alone, so the message points into that line.
fn reparse_bad_line(pair: &Pair<Rule>, budget: StepBudget) -> Diagnostic {
    let offset = pair.as_span().start();
    let line = pair.as_str();
    if let Some(diagnostic) = unknown_statement(line, offset) {
        return diagnostic;
    }
    match budget.run(Rule::statement_alone, line) {
        Err(error) => {
            let diagnostic = grammar_diagnostic(error, line, offset, budget);
            match (first_unclosed(line), &diagnostic.primary) {
                _ if diagnostic.code == Code::ParserGaveUp => diagnostic,
                // The grammar ran past the opener's line looking for its closer: the opener is the news.
                // (Only when the error lies after the opener: one before it is news of its own.)
                (Some(at), Some((span, _))) if line.get(at..span.start - offset).is_some_and(|gap| gap.contains('\n')) => {
                    unclosed(line, at, offset, diagnostic)
                }
                _ => diagnostic,
            }
        }
        // The line parses alone, so what broke it was what followed it on the same line.
        Ok(_) => Diagnostic::error(Code::Syntax, "unexpected text after a statement")
            .at(span_of(pair), "this line holds more than one statement")
            .help("put each statement on its own line"),
    }
}

/// The statement keywords; any other first word is a setting's key, followed by `=`.
const KEYWORDS: [&str; 2] = ["input", "subnet"];

/// `subnett content_net = gru(...)`: two names before `=` or `:` make a declaration whose keyword is misspelled.
/// Without this the grammar reads `subnett` as a setting's key and asks for `=` at the second name.
fn unknown_statement(line: &str, offset: usize) -> Option<Diagnostic> {
    let is_name_char = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let start = line.len() - line.trim_start().len();
    let keyword_len = line[start..].find(|c: char| !is_name_char(c)).unwrap_or(line.len() - start);
    let keyword = &line[start..start + keyword_len];
    let rest = &line[start + keyword_len..];
    let name = rest.trim_start_matches([' ', '\t']);
    let name_len = name.find(|c: char| !is_name_char(c)).unwrap_or(name.len());
    let after = name[name_len..].trim_start_matches([' ', '\t']);
    let declares = keyword_len > 0
        && name_len > 0
        && name.len() < rest.len()
        && !keyword.starts_with(|c: char| c.is_ascii_digit())
        && (after.starts_with('=') || after.starts_with(':'));
    if !declares || KEYWORDS.contains(&keyword) {
        return None;
    }
    let span = Span::new(offset + start, offset + start + keyword_len);
    let diagnostic = Diagnostic::error(Code::Syntax, format!("unknown statement `{keyword}`"))
        .at(span, "a statement starts with `input`, `subnet`, or a setting's key followed by `=`");
    Some(match crate::diagnostic::closest(keyword, KEYWORDS) {
        Some(best) => diagnostic.help(format!("did you mean `{best}`?")),
        None => diagnostic.help("write `input NAME : KIND`, `subnet NAME = gru(...)` or `KEY = VALUE`"),
    })
}

/// The byte offset of the outermost bracket in `line` that is never closed, if any. As in the grammar's
/// `bracketed`, a closer of another kind ends the inner brackets still open; comments are skipped.
fn first_unclosed(line: &str) -> Option<usize> {
    let mut open: Vec<(usize, u8)> = Vec::new();
    let mut unclosed: Option<usize> = None;
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                i = limits::line_end(bytes, i);
                continue;
            }
            opener @ (b'(' | b'[' | b'{') => open.push((i, opener)),
            closer @ (b')' | b']' | b'}') => {
                while let Some((at, opener)) = open.pop() {
                    if matches!((opener, closer), (b'(', b')') | (b'[', b']') | (b'{', b'}')) {
                        break;
                    }
                    unclosed = Some(unclosed.map_or(at, |u| u.min(at)));
                }
            }
            _ => {}
        }
        i += 1;
    }
    open.first().map(|(at, _)| *at).into_iter().chain(unclosed).min()
}

/// Turns the grammar's "expected ..." at the end of an unclosed bracket's reach into "`(` is never closed".
fn unclosed(line: &str, at: usize, offset: usize, parse_error: Diagnostic) -> Diagnostic {
    let opener = &line[at..at + 1];
    let closer = match opener {
        "(" => ")",
        "[" => "]",
        _ => "}",
    };
    let (span, found) = parse_error.primary.expect("syntax diagnostics are located");
    Diagnostic::error(Code::Syntax, format!("`{opener}` is never closed"))
        .at(Span::new(offset + at, offset + at + 1), format!("this `{opener}` has no `{closer}`"))
        .also(span, format!("{}, {found}", parse_error.message))
        .help(format!("close it with `{closer}` where its value ends"))
}

fn build_statement(pair: Pair<Rule>) -> Statement {
    let rule = pair.as_rule();
    let mut inner = pair.into_inner();
    let name = build_ident(inner.next().unwrap().into_inner().next().unwrap());
    let value = build_value(inner.next().unwrap());
    match rule {
        Rule::input_decl => Statement::Input { name, kind: value },
        Rule::subnet_decl => Statement::Subnet { name, layer: value },
        Rule::setting => Statement::Setting { key: name, value },
        other => unreachable!("not a statement rule: {other:?}"),
    }
}

fn build_ident(pair: Pair<Rule>) -> Ident {
    Ident { text: pair.as_str().to_string(), span: span_of(&pair) }
}

fn number_parts(text: &str) -> (f64, bool) {
    let value = text.parse::<f64>().expect("the grammar only admits valid numbers");
    let is_integer = !text.contains(['.', 'e', 'E']);
    (value, is_integer)
}

fn build_value(pair: Pair<Rule>) -> Value {
    let span = span_of(&pair);
    let kind = match pair.as_rule() {
        Rule::number => {
            let (value, is_integer) = number_parts(pair.as_str());
            ValueKind::Number { value, is_integer }
        }
        Rule::quantity => {
            let mut inner = pair.into_inner();
            let (value, is_integer) = number_parts(inner.next().unwrap().as_str());
            let unit = build_ident(inner.next().unwrap());
            ValueKind::Quantity { value, is_integer, unit }
        }
        Rule::name => ValueKind::Name(pair.as_str().to_string()),
        Rule::list => ValueKind::List(pair.into_inner().map(build_value).collect()),
        Rule::call => {
            let mut inner = pair.into_inner();
            let callee = build_ident(inner.next().unwrap().into_inner().next().unwrap());
            let args = inner
                .map(|argument| {
                    let mut parts = argument.into_inner().peekable();
                    let name = match parts.peek().map(|p| p.as_rule()) {
                        Some(Rule::arg_name) => Some(build_ident(parts.next().unwrap().into_inner().next().unwrap())),
                        _ => None,
                    };
                    Argument { name, value: build_value(parts.next().unwrap()) }
                })
                .collect();
            ValueKind::Call { callee, args }
        }
        Rule::entry_block => {
            let mut inner = pair.into_inner();
            let head = build_ident(inner.next().unwrap().into_inner().next().unwrap());
            let entries = inner
                .map(|entry| {
                    let mut parts = entry.into_inner();
                    let key = build_ident(parts.next().unwrap().into_inner().next().unwrap());
                    Entry { key, value: build_value(parts.next().unwrap()) }
                })
                .collect();
            ValueKind::EntryBlock { head, entries }
        }
        other => unreachable!("not a value rule: {other:?}"),
    };
    Value { kind, span }
}

/// Words for grammar rules in "expected ..." messages.
fn describe_rule(rule: &Rule) -> &'static str {
    match rule {
        Rule::EOI => "end of file",
        Rule::block => "a block such as `model NAME { ... }` or `train { ... }`",
        Rule::block_kind => "a block kind (`model` or `train`)",
        Rule::block_name | Rule::decl_name | Rule::setting_key | Rule::callee | Rule::arg_name | Rule::entry_key => "a name",
        Rule::ident | Rule::name => "a value",
        Rule::statement_alone => "a statement",
        Rule::input_decl => "`input NAME : KIND`",
        Rule::subnet_decl => "`subnet NAME = gru(...)`",
        Rule::setting => "`KEY = VALUE`",
        Rule::call | Rule::entry_block | Rule::list | Rule::quantity | Rule::number => "a value",
        Rule::unit => "`epochs`",
        Rule::argument => "an argument",
        Rule::entry => "an entry `NAME: VALUE`",
        _ => "something else",
    }
}

/// Turns a pest error into a diagnostic; `offset` shifts positions when a single line was parsed alone.
/// pest's own limits end a run with a custom error: the step budget ("call limit reached") or, on a thread
/// short of stack, its stack guard ("stack limit reached").
fn grammar_diagnostic(error: pest::error::Error<Rule>, input: &str, offset: usize, budget: StepBudget) -> Diagnostic {
    let ErrorVariant::CustomError { message } = &error.variant else {
        return syntax_diagnostic(error, input, offset);
    };
    let position = match error.location {
        InputLocation::Pos(pos) => pos,
        InputLocation::Span((start, _)) => start,
    };
    let width = input[position..].chars().next().map_or(0, char::len_utf8);
    let why = match message.as_str() {
        "call limit reached" => format!(
            "it took more than its budget of {} steps on these {} bytes; the grammar is linear, and no spec within the size limits comes near the budget",
            group_thousands(budget.steps(input) as u64),
            group_thousands(input.len() as u64)
        ),
        other => format!("pest stopped it ({other})"),
    };
    Diagnostic::error(Code::ParserGaveUp, "the parser gave up on this spec")
        .at(Span::new(offset + position, offset + position + width), "it got this far")
        .note(why)
        .help("this is a bug in prnn's grammar: please report it with the spec; meanwhile, look near the mark for deep or unclosed brackets")
}

fn syntax_diagnostic(error: pest::error::Error<Rule>, input: &str, offset: usize) -> Diagnostic {
    let mut position = match error.location {
        InputLocation::Pos(pos) => pos,
        InputLocation::Span((start, _)) => start,
    };
    let mut expected: Vec<String> = match &error.variant {
        ErrorVariant::ParsingError { positives, .. } => positives.iter().map(|r| describe_rule(r).to_string()).collect(),
        ErrorVariant::CustomError { .. } => Vec::new(),
    };
    // Punctuation is matched by literals, not rules: the detailed attempts know how far the parser got.
    if let Some(attempts) = error.parse_attempts() {
        let tokens: Vec<String> = attempts
            .expected_tokens()
            .iter()
            .map(|token| token.to_string())
            // Literal tokens only: character ranges (`a..z`) and built-in rules are described by their rules.
            .filter(|token| !token.is_empty() && !token.contains("..") && !token.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
            .map(|token| format!("`{}`", token.escape_debug()))
            .collect();
        if attempts.max_position > position && !tokens.is_empty() {
            position = attempts.max_position;
            expected = tokens;
        } else if attempts.max_position == position {
            expected.extend(tokens);
        }
    }
    let at_line_end = offset > 0;
    let expected = tidy_expected(expected, at_line_end, position >= input.trim_end().len());
    let found = found_token(&input[position.min(input.len())..]);
    let span = Span::new(offset + position, offset + position + found.as_ref().map_or(0, String::len));
    let message = if expected.is_empty() { "syntax error".to_string() } else { format!("expected {}", join_alternatives(&expected)) };
    let label = match found {
        Some(token) => format!("found `{token}`"),
        None if at_line_end || input[position.min(input.len())..].starts_with(['\n', '\r']) => "found the end of the line".to_string(),
        None => "found the end of the file".to_string(),
    };
    Diagnostic::error(Code::Syntax, message).at(span, label)
}

/// Turns pest's raw alternatives into the few a person would type: whitespace, comments and the pieces
/// of numbers and keywords go; newlines read as "end of line"; where a closing bracket would fit, the
/// openers and `=` (which only continue a name into a call or named argument) go too.
fn tidy_expected(raw: Vec<String>, lone_line: bool, at_end: bool) -> Vec<String> {
    const NOISE: &[&str] = &["` `", "`\\t`", "`//`", "`-`", "`epoch`", "`input`", "`subnet`", "something else"];
    let mut words: Vec<String> = raw
        .into_iter()
        .filter(|w| !NOISE.contains(&w.as_str()))
        .map(|w| match w.as_str() {
            "`\\n`" | "`\\r\\n`" | "`\\r`" => "end of line".to_string(),
            "end of file" if lone_line => "end of line".to_string(),
            _ => w,
        })
        .collect();
    if at_end && !lone_line && words.iter().any(|w| w == "`}`") {
        return vec!["`}` to close the block".to_string()];
    }
    if words.iter().any(|w| matches!(w.as_str(), "`)`" | "`]`" | "`}`")) {
        words.retain(|w| !matches!(w.as_str(), "`(`" | "`[`" | "`{`" | "`=`" | "end of line"));
    }
    if words.iter().any(|w| w == "a value") {
        words.retain(|w| w != "`[`");
    }
    words.sort();
    words.dedup();
    words
}

/// The token starting at the front of `rest`: a word, or one punctuation character.
fn found_token(rest: &str) -> Option<String> {
    let first = rest.chars().next().filter(|c| *c != '\n' && *c != '\r')?;
    if first.is_alphanumeric() || first == '_' {
        Some(rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '.').collect())
    } else {
        Some(first.to_string())
    }
}

fn join_alternatives(words: &[String]) -> String {
    match words {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {}", init.join(", "), last),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARALLEL: &str = "// a comment\nmodel m {\n  input id : item_id\n  subnet a = gru(id, hidden = 100)\n  loss = top1 // trailing\n}\ntrain {\n  schedule = residual {\n    a: 10 epochs,\n  }\n  weights = [1, 0.5e0]\n}\n";

    #[test]
    fn parses_blocks_statements_and_values() {
        let spec = parse(PARALLEL).unwrap();
        assert_eq!(spec.blocks.len(), 2);
        let model = &spec.blocks[0];
        assert_eq!(model.kind.text, "model");
        assert_eq!(model.name.as_ref().unwrap().text, "m");
        assert_eq!(model.statements.len(), 3);
        let Statement::Subnet { layer, .. } = &model.statements[1] else { panic!("expected a subnet") };
        let ValueKind::Call { callee, args } = &layer.kind else { panic!("expected a call") };
        assert_eq!(callee.text, "gru");
        assert_eq!(args.len(), 2);
        assert!(args[0].name.is_none());
        assert_eq!(args[1].name.as_ref().unwrap().text, "hidden");
        let Statement::Setting { value, .. } = &spec.blocks[1].statements[0] else { panic!() };
        let ValueKind::EntryBlock { entries, .. } = &value.kind else { panic!("expected an entry block") };
        assert!(matches!(entries[0].value.kind, ValueKind::Quantity { value: 10.0, is_integer: true, .. }));
        let Statement::Setting { value, .. } = &spec.blocks[1].statements[1] else { panic!() };
        let ValueKind::List(items) = &value.kind else { panic!("expected a list") };
        assert!(matches!(items[1].kind, ValueKind::Number { value: 0.5, is_integer: false }));
    }

    #[test]
    fn reports_every_broken_line() {
        let text = "model m {\n  input id : \n  subnet a = gru(id hidden = 1)\n  loss = top1\n}\n";
        let errors = parse(text).unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:#?}");
        assert!(errors.iter().all(|e| e.code == Code::Syntax));
        // Second error points into line 3, after `id`.
        let (span, _) = errors[1].primary.clone().unwrap();
        assert_eq!(&text[span.start..span.start + 6], "hidden");
    }

    #[test]
    fn entry_blocks_take_commas_newlines_and_a_trailing_separator() {
        for (value, count) in [
            ("residual { }", 0),
            ("residual { a: 1 }", 1),
            ("residual { a: 1, }", 1),
            ("residual {\n a: 1\n b: 2\n}", 2),
            ("residual {\n a: 1,\n\n b: 2,\n}", 2),
            ("residual { a: residual { b: residual { c: 1 } }, d: 2 }", 2),
        ] {
            let spec = parse(&format!("train {{\n  schedule = {value}\n}}\n")).unwrap_or_else(|e| panic!("{value}: {e:#?}"));
            let Statement::Setting { value: parsed, .. } = &spec.blocks[0].statements[0] else { panic!("{value}") };
            let ValueKind::EntryBlock { entries, .. } = &parsed.kind else { panic!("{value}") };
            assert_eq!(entries.len(), count, "{value}");
        }
        assert!(parse("train {\n  schedule = residual { a: 1 b: 2 }\n}\n").is_err());
    }

    #[test]
    fn a_misspelled_keyword_is_an_unknown_statement_but_a_setting_is_not() {
        let errors = parse("model m {\n  subnett a = gru(id)\n  inptu id : item_id\n  loss = top1 top2\n}\n").unwrap_err();
        let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(messages, ["unknown statement `subnett`", "unknown statement `inptu`", "expected `(`, `{` or end of line"]);
        assert!(errors[0].notes.iter().any(|n| n.contains("did you mean `subnet`?")), "{:?}", errors[0]);
        assert!(errors[1].notes.iter().any(|n| n.contains("did you mean `input`?")), "{:?}", errors[1]);
    }

    #[test]
    fn an_unclosed_bracket_is_named_at_its_opener() {
        let text = "model m {\n  subnet a = gru(id, hidden = 1\n  loss = top1\n}\n";
        let errors = parse(text).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert_eq!(errors[0].message, "`(` is never closed");
        assert_eq!(errors[0].primary.as_ref().unwrap().0.start, text.find('(').unwrap());
        // Brackets in comments are not openers; a closer of another kind ends the brackets inside it.
        assert_eq!(first_unclosed("f(a) // (("), None);
        assert_eq!(first_unclosed("f([a)"), Some(2));
        assert_eq!(first_unclosed("f(a, [b]"), Some(1));
    }

    #[test]
    fn an_unclosed_block_is_one_error() {
        let errors = parse("model m {\n  loss = top1\n").unwrap_err();
        assert_eq!(errors.len(), 1);
    }

    fn rendered(name: &str, text: &str, diagnostics: &[Diagnostic]) -> String {
        crate::diagnostic::render_plain(&crate::diagnostic::Source::new(name, text), diagnostics)
    }

    /// `text` with every run of more than 20 repeats of a unit of up to 4 characters (`(`, `f(`, `r { `) written as 5
    /// repeats and a count, so that a snapshot of a 4,096-character line stays readable; a carriage return is written
    /// `\r`, which a snapshot file would not keep.
    fn squeezed(text: &str) -> String {
        let chars: Vec<char> = text.chars().collect();
        let mut out = String::new();
        let mut i = 0;
        while i < chars.len() {
            let run = (1..=4).find_map(|period| {
                let mut end = i + period;
                while end < chars.len() && chars[end] == chars[end - period] {
                    end += 1;
                }
                let repeats = (end - i) / period;
                (repeats > 20).then_some((period, repeats))
            });
            match run {
                Some((period, repeats)) => {
                    let unit: String = chars[i..i + period].iter().collect();
                    out.push_str(&format!("{}<{} more {unit:?}>", unit.repeat(5), repeats - 5));
                    i += period * repeats;
                }
                None if chars[i] == '\r' => {
                    out.push_str("\\r");
                    i += 1;
                }
                None => {
                    out.push(chars[i]);
                    i += 1;
                }
            }
        }
        out
    }

    /// The smallest budget, in steps, under which no run of the grammar on `text` gives up, found by bisection. It is
    /// the steps of the costliest run: the whole spec's, or one broken line's parsed again alone.
    fn steps_needed(text: &str) -> usize {
        let gives_up = |steps: usize| {
            parse_within(text, StepBudget { per_byte: 0, base: steps })
                .is_err_and(|errors| errors.iter().any(|e| e.code == Code::ParserGaveUp))
        };
        let mut enough = StepBudget::DEFAULT.steps(text);
        assert!(!gives_up(enough), "the default budget is too small for:\n{text}");
        let mut too_few = 0;
        while enough - too_few > 1 {
            let middle = too_few + (enough - too_few) / 2;
            if gives_up(middle) {
                too_few = middle;
            } else {
                enough = middle;
            }
        }
        enough
    }

    /// Issue 19: 24 unclosed `(` aborted under a 3 GB memory limit and 200 reached 4.3 GB in 20 s, in a build whose
    /// recovery rule backtracked and whose pest recorded every attempt. Now the pre-scan refuses them at the 17th bracket: the grammar does not run,
    /// so even a budget of one step gives the same errors.
    #[test]
    fn unclosed_brackets_past_the_nesting_limit_never_reach_the_grammar() {
        let mebibyte_line = "(".repeat(limits::MAX_FILE_BYTES);
        let cases = [
            ("gru_200.prnn", format!("model m {{\n  subnet a = gru({}\n}}\n", "(".repeat(200))),
            ("gru_10000.prnn", format!("model m {{\n  subnet a = gru({}\n}}\n", "(".repeat(10_000))),
            ("lists.prnn", format!("model m {{\n  x = {}\n}}\n", "[".repeat(200))),
            ("entries.prnn", format!("train {{\n  schedule = residual {{ a: {}\n}}\n", "r { ".repeat(200))),
            ("closed.prnn", format!("model m {{\n  x = {}a{}\n}}\n", "f(".repeat(10_000), ")".repeat(10_000))),
            // The grammar ends a comment at a lone carriage return, so the brackets after it are code.
            ("after_cr.prnn", format!("model m {{\n  // a comment\r  x = {}\n}}\n", "(".repeat(200))),
            ("mebibyte_line.prnn", mebibyte_line),
        ];
        let mut report = String::new();
        for (name, text) in &cases {
            let errors = parse(text).unwrap_err();
            assert_eq!(errors[0].code, Code::NestingTooDeep, "{name}: {errors:#?}");
            let without_steps = parse_within(text, StepBudget { per_byte: 0, base: 1 }).unwrap_err();
            assert_eq!(without_steps, errors, "{name}: the grammar ran");
            let shown = rendered(name, text, &errors);
            assert!(shown.len() < 16 * limits::MAX_LINE_CHARS, "{name}: a snippet shows a long line only up to a little past its labels");
            report.push_str(&squeezed(&shown));
        }
        insta::assert_snapshot!(report);
    }

    /// The worst texts within the limits, at two sizes: the steps grow no faster than the text (a run that
    /// backtracked would grow faster), and stay far under the budget. Each shape is a block holding a first line
    /// and a line repeated to size: an opener never closed takes every later line into its bad line.
    #[test]
    fn the_worst_texts_within_the_limits_take_steps_linear_in_their_size() {
        let nested = |unit: &str, closer: &str| format!("{}{}", unit.repeat(limits::MAX_NESTING - 1), closer);
        let setting = "  x = 1 // a setting\n".to_string();
        let shapes = [
            ("unclosed `(`", "model m", format!("  x = {}\n", nested("(", "")), setting.clone()),
            ("unclosed `[`", "model m", format!("  x = {}\n", nested("[", "")), setting.clone()),
            ("unclosed calls", "model m", format!("  x = {}\n", nested("f(a, ", "")), setting.clone()),
            ("unclosed entry blocks", "train", format!("  s = {}\n", nested("r { a: ", "")), setting),
            ("calls broken by `]`", "model m", String::new(), format!("  x = {}\n", nested("f(", &"]".repeat(limits::MAX_NESTING - 1)))),
            ("calls closed on the next line", "model m", String::new(), format!("  x = {}\n", nested("f(", &format!("a\n{}", ")".repeat(limits::MAX_NESTING - 1))))),
            ("lists broken by `)`", "model m", String::new(), format!("  x = {}\n", nested("[", &")".repeat(limits::MAX_NESTING - 1)))),
            ("lists closed", "model m", String::new(), format!("  x = {}\n", nested("[", &format!("1{}", "]".repeat(limits::MAX_NESTING - 1))))),
            ("entry blocks closed", "train", String::new(), format!("  x = {}\n", nested("r{a:", &format!("1{}", "}".repeat(limits::MAX_NESTING - 1))))),
            ("broken lines", "model m", String::new(), "  subnet a = gru(id hidden = [1, 1, 1, 1])\n".to_string()),
        ];
        for (shape, block, first, repeated) in shapes {
            let text = |lines: usize| format!("{block} {{\n{first}{}}}\n", repeated.repeat(lines));
            let (small, large) = (text(40), text(80));
            let (steps_small, steps_large) = (steps_needed(&small), steps_needed(&large));
            eprintln!("{shape}: {steps_small} steps for {} bytes, {steps_large} for {}", small.len(), large.len());
            assert!(steps_small > small.len(), "{shape}: the grammar did not run");
            assert!(steps_large <= 2 * steps_small, "{shape}: {steps_small} steps, then {steps_large} for twice the text");
            assert!(steps_large <= 64 * large.len(), "{shape}: {steps_large} steps for {} bytes", large.len());
        }
    }

    #[test]
    fn a_run_past_its_budget_gives_up_with_a_located_error() {
        let text = "model m {\n  input id : item_id\n  subnet a = gru(id, hidden = 100)\n}\n";
        let errors = parse_within(text, StepBudget { per_byte: 0, base: 40 }).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert_eq!(errors[0].code, Code::ParserGaveUp);
        insta::assert_snapshot!(rendered("budget.prnn", text, &errors));
        // A broken line's own run is budgeted too.
        let broken = "model m {\n  subnet a = gru(id hidden = 1)\n}\n";
        let steps = steps_needed(broken);
        let errors = parse_within(broken, StepBudget { per_byte: 0, base: steps - 1 }).unwrap_err();
        assert_eq!(errors.iter().map(|e| e.code).collect::<Vec<_>>(), [Code::ParserGaveUp]);
    }
}
