//! Diagnostics shared by every stage: spans, error codes, and rendering with labelled source snippets.

use std::borrow::Cow;

use codespan_reporting::diagnostic::{Diagnostic as Report, Label};
use codespan_reporting::files::SimpleFile;
use codespan_reporting::term::{self, termcolor::WriteColor};

/// A byte range in a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span { start: self.start.min(other.start), end: self.end.max(other.end) }
    }
}

/// Every diagnostic has a stable code, listed with an explanation in docs/diagnostics.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    Syntax,
    NestingTooDeep,
    LineTooLong,
    FileTooLarge,
    NameTooLong,
    TooManyStatements,
    ParserGaveUp,
    UnknownBlock,
    MissingModel,
    DuplicateBlock,
    WrongBlock,
    UnknownSetting,
    DuplicateSetting,
    MissingModelName,
    DuplicateName,
    UnknownName,
    WrongNameKind,
    UnusedInput,
    UnmergedSubnet,
    UnknownFunction,
    UnknownArgument,
    WrongType,
    MissingArgument,
    DuplicateArgument,
    NotPositive,
    OutOfRange,
    MissingMerge,
    MergeArity,
    HiddenSizeMismatch,
    InteractionPrimary,
    WeightCount,
    Embedding,
    NoSubnet,
    SingleSubnetSchedule,
    ScheduleMissesSubnet,
    ScheduleRepeatsSubnet,
    LossActivation,
    ConfigSyntax,
    ConfigBinding,
}

impl Code {
    /// Every code, for documentation and for the test that each has a bad-input example.
    pub const ALL: [Code; 39] = [
        Code::Syntax,
        Code::NestingTooDeep,
        Code::LineTooLong,
        Code::FileTooLarge,
        Code::NameTooLong,
        Code::TooManyStatements,
        Code::ParserGaveUp,
        Code::UnknownBlock,
        Code::MissingModel,
        Code::DuplicateBlock,
        Code::WrongBlock,
        Code::UnknownSetting,
        Code::DuplicateSetting,
        Code::MissingModelName,
        Code::DuplicateName,
        Code::UnknownName,
        Code::WrongNameKind,
        Code::UnusedInput,
        Code::UnmergedSubnet,
        Code::UnknownFunction,
        Code::UnknownArgument,
        Code::WrongType,
        Code::MissingArgument,
        Code::DuplicateArgument,
        Code::NotPositive,
        Code::OutOfRange,
        Code::MissingMerge,
        Code::MergeArity,
        Code::HiddenSizeMismatch,
        Code::InteractionPrimary,
        Code::WeightCount,
        Code::Embedding,
        Code::NoSubnet,
        Code::SingleSubnetSchedule,
        Code::ScheduleMissesSubnet,
        Code::ScheduleRepeatsSubnet,
        Code::LossActivation,
        Code::ConfigSyntax,
        Code::ConfigBinding,
    ];

    pub fn as_str(self) -> &'static str {
        use Code::*;
        match self {
            Syntax => "E0100",
            NestingTooDeep => "E0101",
            LineTooLong => "E0102",
            FileTooLarge => "E0103",
            NameTooLong => "E0104",
            TooManyStatements => "E0105",
            ParserGaveUp => "E0106",
            UnknownBlock => "E0200",
            MissingModel => "E0201",
            DuplicateBlock => "E0202",
            WrongBlock => "E0203",
            UnknownSetting => "E0204",
            DuplicateSetting => "E0205",
            MissingModelName => "E0206",
            DuplicateName => "E0300",
            UnknownName => "E0301",
            WrongNameKind => "E0302",
            UnusedInput => "E0303",
            UnmergedSubnet => "E0304",
            UnknownFunction => "E0400",
            UnknownArgument => "E0401",
            WrongType => "E0402",
            MissingArgument => "E0403",
            DuplicateArgument => "E0404",
            NotPositive => "E0405",
            OutOfRange => "E0406",
            MissingMerge => "E0500",
            MergeArity => "E0501",
            HiddenSizeMismatch => "E0502",
            InteractionPrimary => "E0503",
            WeightCount => "E0504",
            Embedding => "E0505",
            NoSubnet => "E0506",
            SingleSubnetSchedule => "E0600",
            ScheduleMissesSubnet => "E0601",
            ScheduleRepeatsSubnet => "E0602",
            LossActivation => "E0700",
            ConfigSyntax => "E0800",
            ConfigBinding => "E0801",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub code: Code,
    pub message: String,
    /// The span the message is about, with a short label under it.
    pub primary: Option<(Span, String)>,
    /// Related places, e.g. the first declaration of a duplicate.
    pub secondary: Vec<(Span, String)>,
    /// Lines printed after the snippet; "help:" lines say how to fix it.
    pub notes: Vec<String>,
    /// The file the spans point into, when it is not the one the diagnostics are rendered with: a file that a
    /// run config includes.
    pub file: Option<Box<Source>>,
}

impl Diagnostic {
    pub fn error(code: Code, message: impl Into<String>) -> Self {
        Diagnostic { code, message: message.into(), primary: None, secondary: Vec::new(), notes: Vec::new(), file: None }
    }

    pub fn at(mut self, span: Span, label: impl Into<String>) -> Self {
        self.primary = Some((span, label.into()));
        self
    }

    pub fn also(mut self, span: Span, label: impl Into<String>) -> Self {
        self.secondary.push((span, label.into()));
        self
    }

    pub fn help(mut self, text: impl Into<String>) -> Self {
        self.notes.push(format!("help: {}", text.into()));
        self
    }

    pub fn note(mut self, text: impl Into<String>) -> Self {
        self.notes.push(format!("note: {}", text.into()));
        self
    }

    /// Adds "did you mean `x`?" when a known name is close to what was written.
    pub fn suggest<'a>(self, written: &str, known: impl IntoIterator<Item = &'a str>) -> Self {
        match closest(written, known) {
            Some(best) => self.help(format!("did you mean `{best}`?")),
            None => self,
        }
    }

    fn to_report(&self, source_name: &str) -> Report<()> {
        let mut notes = self.notes.clone();
        if self.primary.is_none() {
            // Without a snippet nothing else names the file.
            notes.insert(0, format!("note: in {source_name}"));
        }
        let mut labels = Vec::new();
        if let Some((span, label)) = &self.primary {
            labels.push(Label::primary((), span.start..span.end).with_message(label));
        }
        for (span, label) in &self.secondary {
            labels.push(Label::secondary((), span.start..span.end).with_message(label));
        }
        Report::error().with_code(self.code.as_str()).with_message(&self.message).with_labels(labels).with_notes(notes)
    }
}

/// `1234567` as `1,234,567`: counts and limits in messages and renderings are read by people.
pub fn group_thousands(value: impl Into<u128>) -> String {
    let digits = value.into().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The known name closest to `written`, if any is close enough to be a plausible typo.
pub fn closest<'a>(written: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let written_lower = written.to_lowercase();
    known
        .into_iter()
        .map(|candidate| (strsim::jaro_winkler(&written_lower, &candidate.to_lowercase()), candidate))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}

/// A source file as diagnostics see it: the name shown in `file:line:column` and its text.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub name: String,
    pub text: String,
}

impl Source {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        Source { name: name.into(), text: text.into() }
    }
}

fn render_config() -> term::Config {
    term::Config::default()
}

/// Renders diagnostics without colour: the form snapshot tests pin.
pub fn render_plain(source: &Source, diagnostics: &[Diagnostic]) -> String {
    let (files, shown) = shown_by_file(source, diagnostics);
    let mut out = String::new();
    for (index, diagnostic) in &shown {
        let ShownFile { name, text } = &files[*index];
        term::emit_to_string(&mut out, &render_config(), &SimpleFile::new(*name, text.as_str()), &diagnostic.to_report(name))
            .expect("rendering into a String cannot fail");
    }
    out
}

/// Renders diagnostics to a terminal stream, in colour when it supports it.
pub fn render_to(writer: &mut dyn WriteColor, source: &Source, diagnostics: &[Diagnostic]) -> std::io::Result<()> {
    let (files, shown) = shown_by_file(source, diagnostics);
    for (index, diagnostic) in &shown {
        let ShownFile { name, text } = &files[*index];
        let file = SimpleFile::new(*name, text.as_str());
        term::emit_to_write_style(writer, &render_config(), &file, &diagnostic.to_report(name)).map_err(std::io::Error::other)?;
    }
    Ok(())
}

/// The files the diagnostics point into (`source`, and any that a diagnostic names as its own `file`) as
/// [`shown`] shows them, and each diagnostic, in order, with the index of its file. A file's lines are cut once
/// for all of its diagnostics, so that a line keeps every label on it in view.
fn shown_by_file<'a>(source: &'a Source, diagnostics: &'a [Diagnostic]) -> (Vec<ShownFile<'a>>, Vec<(usize, Diagnostic)>) {
    let mut sources: Vec<&'a Source> = vec![source];
    let file_of: Vec<usize> = diagnostics
        .iter()
        .map(|diagnostic| match &diagnostic.file {
            None => 0,
            Some(file) => sources.iter().position(|known| *known == &**file).unwrap_or_else(|| {
                sources.push(file);
                sources.len() - 1
            }),
        })
        .collect();
    let mut files = Vec::new();
    let mut in_order: Vec<Option<(usize, Diagnostic)>> = vec![None; diagnostics.len()];
    for (index, file) in sources.iter().enumerate() {
        let positions: Vec<usize> = (0..diagnostics.len()).filter(|&i| file_of[i] == index).collect();
        let own: Vec<Diagnostic> = positions.iter().map(|&i| diagnostics[i].clone()).collect();
        let (text, moved) = shown(&file.text, &own);
        for (&position, diagnostic) in positions.iter().zip(moved.iter()) {
            in_order[position] = Some((index, diagnostic.clone()));
        }
        files.push(ShownFile { name: file.name.as_str(), text: text.into_owned() });
    }
    (files, in_order.into_iter().map(|shown| shown.expect("every diagnostic has a file")).collect())
}

/// A file's name, and its text as snippets show it.
struct ShownFile<'a> {
    name: &'a str,
    text: String,
}

/// A line longer than this many bytes is cut when shown, a little after the last label on it: a snippet
/// of a hostile one-line file (E0101, E0102) would otherwise print the whole line.
const SHOWN_LINE_BYTES: usize = 512;
const SHOWN_AFTER_LABEL: usize = 80;

/// The text as snippets show it, with the spans moved to match. Nothing before a label's end on its
/// line is cut, so every `file:line:column` stays that of the file.
fn shown<'a>(text: &'a str, diagnostics: &'a [Diagnostic]) -> (Cow<'a, str>, Cow<'a, [Diagnostic]>) {
    if !text.split('\n').any(|line| line.len() > SHOWN_LINE_BYTES) {
        return (Cow::Borrowed(text), Cow::Borrowed(diagnostics));
    }
    let spans = |d: &'a Diagnostic| d.primary.iter().chain(&d.secondary).map(|(span, _)| *span);
    let mut points: Vec<usize> = diagnostics.iter().flat_map(spans).flat_map(|s| [s.start, s.end]).collect();
    points.sort_unstable();
    const ELLIPSIS: &str = "…";
    let mut shown = String::new();
    // (end of the kept part, end of the cut part) of each cut line, in order.
    let mut cuts: Vec<(usize, usize)> = Vec::new();
    let mut line_start = 0;
    for line in text.split_inclusive('\n') {
        let content_end = line_start + line.trim_end_matches(['\n', '\r']).len();
        let last_label = points[..points.partition_point(|&p| p <= content_end)].last().copied().filter(|&p| p >= line_start);
        let mut keep = (line_start + SHOWN_LINE_BYTES).max(last_label.map_or(0, |p| p + SHOWN_AFTER_LABEL)).min(content_end);
        while !text.is_char_boundary(keep) {
            keep -= 1;
        }
        if keep + ELLIPSIS.len() < content_end {
            shown.push_str(&text[line_start..keep]);
            shown.push_str(ELLIPSIS);
            shown.push_str(&text[content_end..line_start + line.len()]);
            cuts.push((keep, content_end));
        } else {
            shown.push_str(line);
        }
        line_start += line.len();
    }
    let moved = |offset: usize| {
        let mut removed = 0;
        for &(keep, end) in &cuts[..cuts.partition_point(|&(keep, _)| keep < offset)] {
            if offset < end {
                return keep - removed;
            }
            removed += end - keep - ELLIPSIS.len();
        }
        offset - removed
    };
    let moved_span = |(span, label): &(Span, String)| (Span::new(moved(span.start), moved(span.end)), label.clone());
    let diagnostics = diagnostics
        .iter()
        .map(|d| Diagnostic {
            primary: d.primary.as_ref().map(moved_span),
            secondary: d.secondary.iter().map(moved_span).collect(),
            ..d.clone()
        })
        .collect();
    (Cow::Owned(shown), Cow::Owned(diagnostics))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_file_line_column_label_and_help() {
        let source = Source::new("a.prnn", "model m {\n  los = top1\n}\n");
        let diagnostic = Diagnostic::error(Code::UnknownSetting, "unknown setting `los`")
            .at(Span::new(12, 15), "here")
            .suggest("los", ["loss", "merge"]);
        let text = render_plain(&source, &[diagnostic]);
        assert!(text.starts_with("error[E0204]: unknown setting `los`\n"), "{text}");
        assert!(text.contains("a.prnn:2:3"), "{text}");
        assert!(text.contains("= help: did you mean `loss`?"), "{text}");
    }

    #[test]
    fn long_lines_are_cut_after_their_labels_and_positions_kept() {
        let long = "x".repeat(3000);
        let text = format!("a\n{long}\n{long}\nbad here\n");
        let third_line = 2 + 3001;
        let fourth_line = third_line + 3001;
        let diagnostic = Diagnostic::error(Code::Syntax, "m")
            .at(Span::new(fourth_line, fourth_line + 3), "main")
            .also(Span::new(third_line + 1000, third_line + 1001), "related");
        let rendered = render_plain(&Source::new("a.prnn", text), &[diagnostic]);
        assert!(rendered.contains("a.prnn:4:1"), "{rendered}");
        assert!(rendered.contains("bad here\n"), "{rendered}");
        let shown = rendered.lines().find(|l| l.contains("xxx")).unwrap();
        assert!(shown.ends_with("x…"), "{shown}");
        assert_eq!(shown.matches('x').count(), 1001 + SHOWN_AFTER_LABEL, "cut a little after the label's end, nothing before it");
    }

    #[test]
    fn a_diagnostic_in_another_file_is_shown_in_that_file_and_in_its_place() {
        let top = Source::new("top.toml", "include = [\"base.toml\"]\n");
        let base = Source::new("base.toml", "[eval]\ncutofs = [5]\n");
        let elsewhere =
            Diagnostic { file: Some(Box::new(base)), ..Diagnostic::error(Code::ConfigSyntax, "unknown field").at(Span::new(7, 13), "here") };
        let here = Diagnostic::error(Code::ConfigSyntax, "bad include").at(Span::new(0, 7), "this");
        let text = render_plain(&top, &[elsewhere, here]);
        let (in_base, in_top) = (text.find("base.toml:2:1"), text.find("top.toml:1:1"));
        assert!(in_base.is_some() && in_top.is_some(), "{text}");
        assert!(in_base < in_top, "in the order given: {text}");
        assert!(text.contains("2 │ cutofs = [5]"), "{text}");
    }

    #[test]
    fn suggests_only_close_names() {
        assert_eq!(closest("hiden", ["hidden", "dropout"]), Some("hidden"));
        assert_eq!(closest("zzz", ["hidden", "dropout"]), None);
    }
}
