//! TF-IDF sparse rows from item text columns, and the item-table reader the sparse encodings share.
//!
//! The weighting, fixed by the project's reference notes so that runs are comparable:
//! - a document is the chosen columns of one item, joined with spaces, lowercased and split into words at
//!   Unicode word boundaries (UAX #29); words on the stopword lists are removed;
//! - terms are the n-grams, n = 1..=`ngrams`, of consecutive remaining words (a bigram is written `"a b"`);
//! - N is the number of dataset items with non-blank text and df(t) the number of them whose text holds t;
//!   terms with df < `min_df` are dropped (the paper drops terms seen once), and so are terms found in every
//!   item, whose idf ln(N / df) is 0;
//! - an entry is tf · idf with tf the raw count of the term in the item's text, and rows are L2-normalised.
//!
//! Only dataset items count towards N and df: rows of other items are ignored (and counted), so the
//! vocabulary holds no term that no dataset item can ever switch on.

use std::collections::HashSet;
use std::path::Path;

use unicode_segmentation::UnicodeSegmentation;

use super::{Feature, FeatureReport, SparseFeature};
use crate::data::error::{DataCode, DataError, Place};
use crate::data::intern::Interner;
use crate::data::table::{self, TableFormat};
use crate::diagnostic::group_thousands;

/// An item table as a sparse input's config names it: one row per item, with a header (or a Parquet file,
/// when its name ends in `.parquet`).
#[derive(Debug, Clone, Copy)]
pub struct ItemTable<'a> {
    pub path: &'a Path,
    /// The column holding the item ID.
    pub id_column: &'a str,
    /// The columns a row is built from, in this order.
    pub columns: &'a [String],
    /// One byte; `"\t"` reads without quoting, any other separator with `"` quoting. Not used for Parquet.
    pub separator: &'a str,
}

/// Language names accepted in `stopwords`, with the code the `stop-words` crate files them under.
/// Names rather than codes because the config documents names (`["english", "german"]`).
const LANGUAGES: &[(&str, &str)] = &[
    ("afrikaans", "af"),
    ("albanian", "sq"),
    ("arabic", "ar"),
    ("armenian", "hy"),
    ("azerbaijani", "az"),
    ("basque", "eu"),
    ("belarusian", "be"),
    ("bengali", "bn"),
    ("breton", "br"),
    ("bulgarian", "bg"),
    ("catalan", "ca"),
    ("chinese", "zh"),
    ("croatian", "hr"),
    ("czech", "cs"),
    ("danish", "da"),
    ("dutch", "nl"),
    ("english", "en"),
    ("esperanto", "eo"),
    ("estonian", "et"),
    ("finnish", "fi"),
    ("french", "fr"),
    ("galician", "gl"),
    ("german", "de"),
    ("greek", "el"),
    ("gujarati", "gu"),
    ("hausa", "ha"),
    ("hebrew", "he"),
    ("hindi", "hi"),
    ("hinglish", "hinglish"),
    ("hungarian", "hu"),
    ("indonesian", "id"),
    ("irish", "ga"),
    ("italian", "it"),
    ("japanese", "ja"),
    ("kazakh", "kk"),
    ("korean", "ko"),
    ("kurdish", "ku"),
    ("latin", "la"),
    ("latvian", "lv"),
    ("lithuanian", "lt"),
    ("malay", "ms"),
    ("marathi", "mr"),
    ("nepali", "ne"),
    ("norwegian", "no"),
    ("persian", "fa"),
    ("polish", "pl"),
    ("portuguese", "pt"),
    ("romanian", "ro"),
    ("russian", "ru"),
    ("slovak", "sk"),
    ("slovenian", "sl"),
    ("somali", "so"),
    ("sotho", "st"),
    ("spanish", "es"),
    ("swahili", "sw"),
    ("swedish", "sv"),
    ("tagalog", "tl"),
    ("tajik", "tg"),
    ("tamil", "ta"),
    ("thai", "th"),
    ("turkish", "tr"),
    ("ukrainian", "uk"),
    ("urdu", "ur"),
    ("uzbek", "uz"),
    ("vietnamese", "vi"),
    ("yoruba", "yo"),
    ("zulu", "zu"),
];

/// The language names whose lists this build carries.
pub fn stopword_languages() -> impl Iterator<Item = &'static str> {
    LANGUAGES.iter().filter(|(_, code)| stop_words::lookup(code).is_some()).map(|(name, _)| *name)
}

/// The union of the named stopword lists. Names are case-insensitive; an ISO code (`en`) works too.
/// The NLTK list wins where NLTK has the language (its `english` is the usual short list of function
/// words), otherwise the stopwords-iso one, which is much longer.
pub fn stopword_set(path: &Path, languages: &[String]) -> Result<HashSet<&'static str>, DataError> {
    let mut set = HashSet::new();
    for language in languages {
        let wanted = language.trim().to_lowercase();
        let code = LANGUAGES.iter().find(|(name, _)| *name == wanted).map(|(_, code)| *code).unwrap_or(&wanted);
        let Some(words) = stop_words::lookup(code) else {
            let known: Vec<&str> = stopword_languages().collect();
            let mut error = DataError::new(DataCode::Preprocess, path, format!("no stopword list for `{language}`"))
                .note(format!("`stopwords` names it; the known languages are {}", known.join(", ")));
            if let Some(best) = crate::diagnostic::closest(&wanted, known.iter().copied()) {
                error = error.help(format!("did you mean `{best}`?"));
            } else {
                error = error.help("write `stopwords = []` to keep every word");
            }
            return Err(error);
        };
        set.extend(words.iter().copied());
    }
    Ok(set)
}

/// Builds the TF-IDF rows of `items` from `table` (see the module comment for the weighting).
pub fn tfidf(
    input: &str,
    table: &ItemTable,
    stopwords: &[String],
    min_df: usize,
    ngrams: usize,
    items: &Interner,
) -> Result<(Feature, FeatureReport), DataError> {
    if ngrams == 0 {
        return Err(DataError::new(DataCode::Preprocess, table.path, "`ngrams = 0` leaves no term")
            .help("use `ngrams = 1` for words, `ngrams = 2` to add bigrams as the paper did"));
    }
    let stop = stopword_set(table.path, stopwords)?;

    // Pass 1 over the file: every item's term counts, and every term's df. Terms live in a compact
    // interner because bigrams of a large catalogue run into millions, most of them dropped later.
    let mut terms = Interner::new();
    let mut term_n: Vec<u8> = Vec::new();
    let mut df: Vec<u32> = Vec::new();
    let mut doc_of_item = vec![u32::MAX; items.len()];
    let mut doc_start: Vec<u64> = vec![0];
    let mut postings: Vec<(u32, u32)> = Vec::new();
    let (mut with_text, mut blank, mut only_stopwords) = (0usize, 0usize, 0usize);
    let mut text = String::new();
    let mut gram = String::new();
    let mut ids: Vec<u32> = Vec::new();

    let counts = read_rows(table, items, |item, cells| {
        text.clear();
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                text.push(' ');
            }
            text.push_str(cell);
        }
        if text.trim().is_empty() {
            blank += 1;
            return Ok(());
        }
        with_text += 1;
        // Curly apostrophes would keep "don’t" apart from the stopword "don't".
        let lower = text.to_lowercase().replace('\u{2019}', "'");
        let words: Vec<&str> = lower.unicode_words().filter(|w| !stop.contains(w)).collect();
        if words.is_empty() {
            only_stopwords += 1;
        }
        ids.clear();
        for n in 1..=ngrams.min(words.len()) {
            for window in words.windows(n) {
                gram.clear();
                for (i, word) in window.iter().enumerate() {
                    if i > 0 {
                        gram.push(' ');
                    }
                    gram.push_str(word);
                }
                let id = terms.intern(gram.as_bytes());
                if id as usize == df.len() {
                    df.push(0);
                    term_n.push(n.min(u8::MAX as usize) as u8);
                }
                ids.push(id);
            }
        }
        ids.sort_unstable();
        let mut i = 0;
        while i < ids.len() {
            let id = ids[i];
            let run = ids[i..].iter().take_while(|&&other| other == id).count();
            postings.push((id, run as u32));
            df[id as usize] += 1;
            i += run;
        }
        doc_of_item[item as usize] = (doc_start.len() - 1) as u32;
        doc_start.push(postings.len() as u64);
        Ok(())
    })?;

    // The vocabulary: kept terms in lexicographic order.
    let n_docs = with_text as u64;
    let mut kept: Vec<u32> = Vec::new();
    let (mut rare, mut everywhere) = (0usize, 0usize);
    for (id, &count) in df.iter().enumerate() {
        if (count as usize) < min_df {
            rare += 1;
        } else if count as u64 == n_docs {
            everywhere += 1;
        } else {
            kept.push(id as u32);
        }
    }
    kept.sort_unstable_by(|&a, &b| terms.bytes(a).cmp(terms.bytes(b)));
    let mut column = vec![u32::MAX; df.len()];
    let mut per_n = vec![0usize; ngrams];
    for (position, &id) in kept.iter().enumerate() {
        column[id as usize] = position as u32;
        per_n[term_n[id as usize] as usize - 1] += 1;
    }
    let vocabulary: Vec<String> = kept.iter().map(|&id| terms.get_str(id).to_string()).collect();
    if vocabulary.is_empty() {
        return Err(DataError::new(
            DataCode::Preprocess,
            table.path,
            format!("no term is left for input `{input}`: {} distinct terms in {with_text} items' text", df.len()),
        )
        .note(format!("{rare} terms are found in fewer than min_df = {min_df} items, {everywhere} in every item (idf 0)"))
        .help("lower `min_df`, or check `columns` and `stopwords`"));
    }
    drop(terms);

    // Pass 2 over the stored counts: weighted, normalised rows in item order.
    let idf: Vec<f64> = df.iter().map(|&count| (n_docs as f64 / count.max(1) as f64).ln()).collect();
    let mut indptr = Vec::with_capacity(items.len() + 1);
    indptr.push(0u64);
    let mut indices: Vec<u32> = Vec::new();
    let mut values: Vec<f32> = Vec::new();
    let mut row: Vec<(u32, f64)> = Vec::new();
    let mut emptied_by_df = 0usize;
    for &doc in &doc_of_item {
        if doc != u32::MAX {
            let doc = doc as usize;
            let entries = &postings[doc_start[doc] as usize..doc_start[doc + 1] as usize];
            row.clear();
            row.extend(
                entries
                    .iter()
                    .filter(|(id, _)| column[*id as usize] != u32::MAX)
                    .map(|&(id, tf)| (column[id as usize], tf as f64 * idf[id as usize])),
            );
            if row.is_empty() && !entries.is_empty() {
                emptied_by_df += 1;
            }
            row.sort_unstable_by_key(|&(col, _)| col);
            let norm = row.iter().map(|(_, w)| w * w).sum::<f64>().sqrt();
            for &(col, weight) in &row {
                indices.push(col);
                values.push((weight / norm) as f32);
            }
        }
        indptr.push(indices.len() as u64);
    }

    let mut notes = vec![format!(
        "vocabulary: {}; N = {} items with text, idf = ln(N / df), rows L2-normalised",
        per_n
            .iter()
            .enumerate()
            .map(|(n, &count)| format!("{} {}", group_thousands(count as u64), ngram_name(n + 1)))
            .collect::<Vec<_>>()
            .join(", "),
        group_thousands(with_text as u64)
    )];
    notes.push(format!(
        "{} of {} distinct terms dropped: found in fewer than min_df = {min_df} items",
        group_thousands(rare as u64),
        group_thousands(df.len() as u64)
    ));
    if everywhere > 0 {
        notes.push(format!("{everywhere} terms dropped: found in every item, so their idf is 0"));
    }
    if blank > 0 {
        notes.push(format!("{blank} items have a row with blank text: zero rows"));
    }
    if only_stopwords > 0 {
        notes.push(format!("{only_stopwords} items have no word left after stopword removal: zero rows"));
    }
    if emptied_by_df > 0 {
        notes.push(format!("{emptied_by_df} items keep no vocabulary term (all too rare or in every item): zero rows"));
    }

    let feature = SparseFeature { width: vocabulary.len(), indptr, indices, values, vocabulary };
    Ok(super::sparse_output(input, "tfidf", items, &counts, feature, notes))
}

fn ngram_name(n: usize) -> String {
    match n {
        1 => "unigrams".into(),
        2 => "bigrams".into(),
        3 => "trigrams".into(),
        n => format!("{n}-grams"),
    }
}

pub(super) fn mean(total: usize, count: usize) -> f64 {
    if count == 0 {
        0.0
    } else {
        total as f64 / count as f64
    }
}

/// What [`read_rows`] saw besides the rows it handed on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RowCounts {
    /// Rows of dataset items, each handed to the callback.
    pub matched: usize,
    /// Rows of items that are not in the dataset.
    pub ignored: usize,
}

/// The first line on which every item ID appeared, to name both lines of a duplicate.
/// Dataset items take a slot each; other IDs go into a compact interner, since a feature file often covers
/// a much larger catalogue than the sessions.
pub(super) struct SeenIds {
    dataset: Vec<u64>,
    others: Interner,
    other_lines: Vec<u64>,
}

impl SeenIds {
    pub fn new(items: &Interner) -> Self {
        SeenIds { dataset: vec![0; items.len()], others: Interner::new(), other_lines: Vec::new() }
    }

    /// Records `id` (dataset index `item`) on `line`; returns the earlier line if it was seen before.
    pub fn first_line(&mut self, item: Option<u32>, id: &[u8], line: u64) -> Option<u64> {
        match item {
            Some(item) => {
                let slot = &mut self.dataset[item as usize];
                if *slot != 0 {
                    return Some(*slot);
                }
                *slot = line;
            }
            None => {
                let index = self.others.intern(id) as usize;
                if index < self.other_lines.len() {
                    return Some(self.other_lines[index]);
                }
                self.other_lines.push(line);
            }
        }
        None
    }
}

/// The error for an item listed twice in a feature file: first on line (or, in Parquet, absolute row) `first`,
/// again at `at`.
pub(super) fn duplicate_error(path: &Path, id: &[u8], first: u64, at: Place, snippet: &str) -> DataError {
    let id = String::from_utf8_lossy(id);
    let places = match at {
        Place::Line(line) => format!("on line {first} and line {line}"),
        Place::Row(row) => format!("in row {first} and row {} (counting from 0)", row.row),
    };
    DataError::new(DataCode::FeatureShape, path, format!("item `{id}` is listed twice: {places}"))
        .at(at)
        .snippet(snippet)
        .help(format!("keep one row for `{id}`: an item has one feature row"))
}

/// The error for a file none of whose rows is a dataset item: almost always a wrong ID column or IDs
/// written differently than in the sessions (`123` against `123.0`, say).
pub(super) fn no_match_error(path: &Path, rows: usize, first_id: &[u8], items: &Interner) -> DataError {
    let examples: Vec<String> = (0..items.len().min(3) as u32).map(|i| format!("`{}`", items.get_str(i))).collect();
    DataError::new(DataCode::Preprocess, path, format!("none of the {rows} rows is an item of the dataset"))
        .note(format!(
            "the file's first ID is `{}`; the dataset's items include {}",
            String::from_utf8_lossy(first_id),
            examples.join(", ")
        ))
        .help("check the ID column and that IDs are written the same way as in the session files")
}

/// Reads `table`, handing each dataset item's row to `each` with the item's index and the cells of
/// `table.columns` in order. Checks the header, the columns, empty and duplicate IDs; counts rows of items
/// outside the dataset; fails when no row is a dataset item.
pub(super) fn read_rows(
    table: &ItemTable,
    items: &Interner,
    mut each: impl FnMut(u32, &[&str]) -> Result<(), DataError>,
) -> Result<RowCounts, DataError> {
    let path = table.path;
    if table.columns.is_empty() {
        return Err(DataError::new(DataCode::Column, path, "`columns` names no column")
            .help("list the columns that make an item's row, e.g. `columns = [\"text\"]`"));
    }
    for (i, column) in table.columns.iter().enumerate() {
        if table.columns[..i].contains(column) {
            return Err(DataError::new(DataCode::Column, path, format!("`columns` lists `{column}` twice")).help("list each column once"));
        }
    }
    if crate::data::parquet::is_parquet(path) {
        return crate::data::parquet::read_item_rows(table, items, each);
    }
    let separator = match table.separator.as_bytes() {
        [byte] => *byte,
        _ => {
            return Err(DataError::new(
                DataCode::Preprocess,
                path,
                format!("separator {:?} is not one single-byte character", table.separator),
            )
            .help("write the separator as one ASCII character, e.g. `separator = \"\\t\"` or `separator = \",\"`"))
        }
    };

    let format = TableFormat { separator, header: true, quoting: separator != b'\t' };
    let mut reader = table::reader(table::open(path, "the item table")?, &format);
    let mut record = csv::ByteRecord::new();
    if !reader.read_byte_record(&mut record).map_err(|e| table::csv_error(path, e))? {
        return Err(DataError::new(DataCode::Empty, path, "the item table is empty")
            .help(format!("it needs a header naming `{}` and the columns, then one row per item", table.id_column)));
    }
    let header = table::header_names(&record);
    let id_field = table::find_column(path, Some(&header), table.id_column, "id_column")?;
    let fields: Vec<usize> =
        table.columns.iter().map(|column| table::find_column(path, Some(&header), column, "columns")).collect::<Result<_, _>>()?;
    let needed = fields.iter().copied().chain([id_field]).max().unwrap_or(0) + 1;

    let mut rows = ItemRows::new(path, table.id_column, items);
    while reader.read_byte_record(&mut record).map_err(|e| table::csv_error(path, e))? {
        let line = record.position().map_or(0, |p| p.line());
        let snippet = || table::record_text(&record, separator);
        if record.len() < needed {
            let missing = header.get(record.len()).map_or(String::new(), |name| format!(" (`{name}` and after)"));
            return Err(DataError::new(
                DataCode::Row,
                path,
                format!("row has {} fields, the header {}: the last{missing} are missing", record.len(), header.len()),
            )
            .line(line)
            .snippet(snippet())
            .help("write every column, empty ones too; check the separator and, with `\",\"`, the quoting"));
        }
        let Some(item) = rows.id(&record[id_field], Place::Line(line), snippet)? else { continue };
        let mut cells: Vec<&str> = Vec::with_capacity(fields.len());
        for (&field, column) in fields.iter().zip(table.columns) {
            let cell = std::str::from_utf8(&record[field]).map_err(|error| {
                DataError::new(DataCode::Row, path, format!("column `{column}` is not UTF-8 (bad byte at offset {})", error.valid_up_to()))
                    .line(line)
                    .snippet(snippet())
                    .help("convert the file to UTF-8, e.g. `iconv -f latin1 -t utf-8`")
            })?;
            cells.push(cell);
        }
        each(item, &cells)?;
    }
    rows.finish(|| {
        DataError::new(DataCode::Empty, path, "the item table has a header but no rows")
            .line(1)
            .snippet(header.join(&(separator as char).to_string()))
    })
}

/// What the text and Parquet item-table readers share: each row's ID checked (not empty, not seen before)
/// and looked up among the dataset's items, and the counts of rows matched and ignored.
pub(crate) struct ItemRows<'a> {
    path: &'a Path,
    id_column: &'a str,
    items: &'a Interner,
    /// First lines, or for Parquet absolute rows + 1 (0 means "not seen").
    seen: SeenIds,
    counts: RowCounts,
    first_id: Option<Vec<u8>>,
}

impl<'a> ItemRows<'a> {
    pub(crate) fn new(path: &'a Path, id_column: &'a str, items: &'a Interner) -> Self {
        ItemRows { path, id_column, items, seen: SeenIds::new(items), counts: RowCounts { matched: 0, ignored: 0 }, first_id: None }
    }

    /// The row at `place` with ID `id`: its dataset item, or `None` for an item outside the dataset (counted).
    /// An empty ID or one seen before is an error; `snippet` renders the row for it.
    pub(crate) fn id(&mut self, id: &[u8], place: Place, snippet: impl Fn() -> String) -> Result<Option<u32>, DataError> {
        if id.is_empty() {
            return Err(DataError::new(DataCode::Row, self.path, format!("empty item ID in column `{}`", self.id_column))
                .at(place)
                .snippet(snippet()));
        }
        self.first_id.get_or_insert_with(|| id.to_vec());
        let item = self.items.find(id);
        let key = match place {
            Place::Line(line) => line,
            Place::Row(row) => row.row + 1,
        };
        if let Some(first) = self.seen.first_line(item, id, key) {
            let first = if matches!(place, Place::Row(_)) { first - 1 } else { first };
            return Err(duplicate_error(self.path, id, first, place, &snippet()));
        }
        match item {
            Some(_) => self.counts.matched += 1,
            None => self.counts.ignored += 1,
        }
        Ok(item)
    }

    /// The counts, or `empty()` when the table had no row, or E0906 when no row was a dataset item.
    pub(crate) fn finish(self, empty: impl FnOnce() -> DataError) -> Result<RowCounts, DataError> {
        let rows = self.counts.matched + self.counts.ignored;
        if rows == 0 {
            return Err(empty());
        }
        if self.counts.matched == 0 && !self.items.is_empty() {
            return Err(no_match_error(self.path, rows, self.first_id.as_deref().unwrap_or_default(), self.items));
        }
        Ok(self.counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn interner(ids: &[&str]) -> Interner {
        Interner::from_keys(ids.iter().copied())
    }

    fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn run(
        text: &str,
        columns: &[&str],
        stopwords: &[&str],
        min_df: usize,
        ngrams: usize,
        items: &Interner,
    ) -> Result<(SparseFeature, FeatureReport, PathBuf), DataError> {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "items.tsv", text.as_bytes());
        let columns = strings(columns);
        let table = ItemTable { path: &path, id_column: "ItemId", columns: &columns, separator: "\t" };
        let (feature, report) = tfidf("text", &table, &strings(stopwords), min_df, ngrams, items)?;
        let Feature::Sparse(sparse) = feature else { panic!("tfidf gives sparse rows") };
        Ok((sparse, report, path))
    }

    fn row(feature: &SparseFeature, i: usize) -> Vec<(u32, f32)> {
        let range = feature.indptr[i] as usize..feature.indptr[i + 1] as usize;
        feature.indices[range.clone()].iter().copied().zip(feature.values[range].iter().copied()).collect()
    }

    fn error(result: Result<(SparseFeature, FeatureReport, PathBuf), DataError>) -> DataError {
        result.expect_err("an error")
    }

    const TABLE: &str = "ItemId\ttitle\tbrand\n\
        a\tRed shoes for running. Red!\tAcme\n\
        b\tBlue running shoes\tAcme\n\
        c\tRed hat\tZeta\n\
        x\tRed socks\tAcme\n\
        d\t\t\n\
        e\tBlue red hat\tAcme\n";

    #[test]
    fn matches_a_hand_computed_reference() {
        let items = interner(&["a", "b", "c", "d", "e", "f"]);
        let (feature, report, _) = run(TABLE, &["title", "brand"], &["english"], 2, 2, &items).unwrap();
        // Documents after stopwords: a = red shoes running red acme, b = blue running shoes acme,
        // c = red hat zeta, e = blue red hat acme; N = 4 (d has blank text, x is not a dataset item).
        assert_eq!(feature.vocabulary, ["acme", "blue", "hat", "red", "red hat", "running", "shoes"]);
        assert_eq!(feature.width, 7);
        let (common, rare) = ((4.0f64 / 3.0).ln(), 2.0f64.ln());
        let expected: [Vec<(u32, f64)>; 6] = [
            vec![(0, common), (3, 2.0 * common), (5, rare), (6, rare)],
            vec![(0, common), (1, rare), (5, rare), (6, rare)],
            vec![(2, rare), (3, common), (4, rare)],
            vec![],
            vec![(0, common), (1, rare), (2, rare), (3, common), (4, rare)],
            vec![],
        ];
        for (i, want) in expected.iter().enumerate() {
            let norm = want.iter().map(|(_, w)| w * w).sum::<f64>().sqrt();
            let got = row(&feature, i);
            assert_eq!(got.iter().map(|e| e.0).collect::<Vec<_>>(), want.iter().map(|e| e.0).collect::<Vec<_>>(), "row {i}");
            for ((_, g), (_, w)) in got.iter().zip(want) {
                assert!((*g as f64 - w / norm).abs() < 1e-6, "row {i}: {g} against {}", w / norm);
            }
            if !got.is_empty() {
                let length: f64 = got.iter().map(|(_, g)| (*g as f64).powi(2)).sum();
                assert!((length - 1.0).abs() < 1e-6);
            }
        }
        assert_eq!(report.encoding, "tfidf");
        assert_eq!(report.width, 7);
        assert_eq!((report.items_with_features, report.items_without_features, report.ignored_rows), (5, 1, 1));
        assert!((report.mean_nonzeros - 16.0 / 5.0).abs() < 1e-12);
        assert!(report.notes[0].contains("6 unigrams, 1 bigrams"), "{:?}", report.notes);
        // 7 unigrams + 11 bigrams seen in dataset items, 11 of them in one item only.
        assert!(report.notes.iter().any(|n| n.starts_with("11 of 18 distinct terms dropped")), "{:?}", report.notes);
        assert!(report.notes.iter().any(|n| n.starts_with("1 items have a row with blank text")), "{:?}", report.notes);
    }

    #[test]
    fn stopwords_are_removed_before_ngrams() {
        let items = interner(&["a", "b", "c"]);
        let text = "ItemId\ttitle\na\tThe cat and the dog\nb\tthe cat and a dog\nc\ta bird\n";
        let (feature, _, _) = run(text, &["title"], &["english"], 1, 2, &items).unwrap();
        // "cat dog" joins the words around the removed "and the".
        assert_eq!(feature.vocabulary, ["bird", "cat", "cat dog", "dog"]);
        let (kept, _, _) = run(text, &["title"], &[], 1, 2, &items).unwrap();
        for term in ["the cat", "a dog", "and", "bird"] {
            assert!(kept.vocabulary.contains(&term.to_string()), "{term}: {:?}", kept.vocabulary);
        }
    }

    #[test]
    fn terms_in_every_item_carry_no_weight() {
        let items = interner(&["a", "b", "c"]);
        let text = "ItemId\ttitle\na\tcat dog\nb\tcat bird\nc\tcat dog bird\n";
        let (feature, report, _) = run(text, &["title"], &[], 1, 2, &items).unwrap();
        assert!(!feature.vocabulary.contains(&"cat".to_string()));
        assert_eq!(feature.vocabulary, ["bird", "cat bird", "cat dog", "dog", "dog bird"]);
        assert!(report.notes.iter().any(|n| n.contains("found in every item")), "{:?}", report.notes);
    }

    #[test]
    fn min_df_drops_rare_terms_and_may_empty_a_row() {
        let items = interner(&["a", "b", "c"]);
        let text = "ItemId\ttitle\na\tcat dog\nb\tcat bird\nc\tfish\n";
        let (feature, report, _) = run(text, &["title"], &[], 2, 1, &items).unwrap();
        assert_eq!(feature.vocabulary, ["cat"]);
        assert_eq!(row(&feature, 0), [(0, 1.0)]);
        assert_eq!(row(&feature, 2), []);
        assert!(report.notes.iter().any(|n| n.starts_with("1 items keep no vocabulary term")), "{:?}", report.notes);
        assert!(report.notes.iter().any(|n| n.starts_with("3 of 4 distinct terms dropped")), "{:?}", report.notes);
    }

    #[test]
    fn only_stopwords_give_a_zero_row() {
        let items = interner(&["a", "b", "c"]);
        let text = "ItemId\ttitle\na\tcat dog\nb\tcat bird\nc\tThe and of\n";
        let (feature, report, _) = run(text, &["title"], &["English"], 1, 1, &items).unwrap();
        assert_eq!(row(&feature, 2), []);
        assert!(report.notes.iter().any(|n| n.starts_with("1 items have no word left")), "{:?}", report.notes);
    }

    #[test]
    fn words_split_at_unicode_boundaries_and_lowercase() {
        let items = interner(&["a", "b", "c"]);
        let text = "ItemId\ttitle\na\tÜber-Größe CAFÉ don’t\nb\tüber café, don't\nc\tx\n";
        let (feature, _, _) = run(text, &["title"], &[], 2, 1, &items).unwrap();
        assert_eq!(feature.vocabulary, ["café", "don't", "über"]);
        let (feature, _, _) = run(text, &["title"], &["english"], 2, 1, &items).unwrap();
        assert_eq!(feature.vocabulary, ["café", "über"]);
    }

    #[test]
    fn reads_quoted_csv() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "items.csv", b"ItemId,title\na,\"cat, dog\"\nb,\"cat \"\"bird\"\"\"\nc,fish\n");
        let columns = strings(&["title"]);
        let table = ItemTable { path: &path, id_column: "ItemId", columns: &columns, separator: "," };
        let (Feature::Sparse(feature), _) = tfidf("t", &table, &[], 2, 1, &interner(&["a", "b", "c"])).unwrap() else { panic!() };
        assert_eq!(feature.vocabulary, ["cat"]);
        assert_eq!(feature.indptr, [0, 1, 2, 2]);
    }

    #[test]
    fn unknown_stopword_language_lists_the_known_ones() {
        let err = error(run(TABLE, &["title"], &["englsh"], 2, 2, &interner(&["a"])));
        assert_eq!(err.code, DataCode::Preprocess);
        assert!(err.to_string().contains("items.tsv"), "{err}");
        assert!(err.notes.iter().any(|n| n.contains("english, esperanto")), "{err}");
        assert!(err.notes.iter().any(|n| n.contains("did you mean `english`")), "{err}");
        assert!(stopword_set(Path::new("x"), &strings(&["german", "fr", "English"])).unwrap().contains("und"));
    }

    #[test]
    fn duplicate_ids_name_both_lines() {
        for id in ["a", "zz"] {
            let text = format!("ItemId\ttitle\n{id}\tcat\nb\tdog\n{id}\tbird\n");
            let err = error(run(&text, &["title"], &[], 1, 1, &interner(&["a", "b"])));
            assert_eq!(err.code, DataCode::FeatureShape);
            assert_eq!(err.line, Some(4));
            assert!(err.message.contains(&format!("`{id}` is listed twice: on line 2 and line 4")), "{err}");
            assert!(err.to_string().contains("items.tsv:4"), "{err}");
        }
    }

    #[test]
    fn missing_column_suggests_the_header_name() {
        let err = error(run(TABLE, &["Title"], &[], 1, 1, &interner(&["a"])));
        assert_eq!(err.code, DataCode::Column);
        assert!(err.to_string().contains("items.tsv:1"), "{err}");
        assert!(err.notes.iter().any(|n| n.contains("did you mean `title`")), "{err}");
    }

    #[test]
    fn empty_files_and_header_only_files_are_empty() {
        for (text, line) in [("", None), ("ItemId\ttitle\n", Some(1))] {
            let err = error(run(text, &["title"], &[], 1, 1, &interner(&["a"])));
            assert_eq!(err.code, DataCode::Empty, "{err}");
            assert_eq!(err.line, line);
            assert!(err.to_string().contains("items.tsv"), "{err}");
        }
    }

    #[test]
    fn bad_rows_are_errors_at_their_line() {
        let items = interner(&["a", "b"]);
        let short = error(run("ItemId\ttitle\ta\na\tcat\tx\nb\tdog\n", &["title", "a"], &[], 1, 1, &items));
        assert_eq!((short.code, short.line), (DataCode::Row, Some(3)), "{short}");
        assert!(short.to_string().contains("items.tsv:3"), "{short}");
        let empty_id = error(run("ItemId\ttitle\na\tcat\n\tdog\n", &["title"], &[], 1, 1, &items));
        assert_eq!((empty_id.code, empty_id.line), (DataCode::Row, Some(3)), "{empty_id}");
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "latin1.tsv", b"ItemId\ttitle\na\tcaf\xe9\n");
        let columns = strings(&["title"]);
        let table = ItemTable { path: &path, id_column: "ItemId", columns: &columns, separator: "\t" };
        let err = tfidf("t", &table, &[], 1, 1, &items).unwrap_err();
        assert_eq!((err.code, err.line), (DataCode::Row, Some(2)), "{err}");
        assert!(err.to_string().contains("latin1.tsv:2") && err.message.contains("not UTF-8"), "{err}");
    }

    #[test]
    fn settings_that_cannot_apply_are_errors() {
        let items = interner(&["a", "b"]);
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "items.tsv", TABLE.as_bytes());
        let title = strings(&["title"]);
        for separator in ["", "ab", "→"] {
            let table = ItemTable { path: &path, id_column: "ItemId", columns: &title, separator };
            let err = tfidf("t", &table, &[], 1, 1, &items).unwrap_err();
            assert_eq!(err.code, DataCode::Preprocess, "{err}");
            assert!(err.to_string().contains("items.tsv"), "{err}");
        }
        let twice = strings(&["title", "title"]);
        let table = ItemTable { path: &path, id_column: "ItemId", columns: &twice, separator: "\t" };
        assert_eq!(tfidf("t", &table, &[], 1, 1, &items).unwrap_err().code, DataCode::Column);
        let none: Vec<String> = Vec::new();
        let table = ItemTable { path: &path, id_column: "ItemId", columns: &none, separator: "\t" };
        assert_eq!(tfidf("t", &table, &[], 1, 1, &items).unwrap_err().code, DataCode::Column);
        let err = error(run(TABLE, &["title"], &[], 1, 0, &items));
        assert_eq!(err.code, DataCode::Preprocess);
        assert!(err.to_string().contains("items.tsv") && err.message.contains("ngrams"), "{err}");
    }

    #[test]
    fn no_dataset_item_in_the_file_is_an_error() {
        let err = error(run(TABLE, &["title"], &[], 1, 1, &interner(&["1", "2"])));
        assert_eq!(err.code, DataCode::Preprocess);
        assert!(err.message.contains("none of the 6 rows"), "{err}");
        assert!(err.notes.iter().any(|n| n.contains("first ID is `a`") && n.contains("`1`, `2`")), "{err}");
        assert!(err.to_string().contains("items.tsv"), "{err}");
    }

    #[test]
    fn an_empty_vocabulary_is_an_error() {
        let err = error(run("ItemId\ttitle\na\tcat\nb\tdog\n", &["title"], &[], 2, 2, &interner(&["a", "b"])));
        assert_eq!(err.code, DataCode::Preprocess);
        assert!(err.message.contains("no term is left") && err.to_string().contains("items.tsv"), "{err}");
    }
}
