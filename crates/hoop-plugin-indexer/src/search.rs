//! Running a query: the typed clauses become tantivy queries, the caller's visibility is a
//! clause of the same query (so counts and pages never include hidden sessions), and the
//! hits come with highlighted snippets.

use std::collections::BTreeSet;
use std::ops::{Bound, Range};
use std::time::SystemTime;

use tantivy::collector::{Count, TopDocs};
use tantivy::query::{
    AllQuery, BooleanQuery, EmptyQuery, Occur, PhraseQuery, Query, RangeQuery, TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption, TantivyDocument, Value};
use tantivy::snippet::SnippetGenerator;
use tantivy::{DocAddress, Order as TantivyOrder, Searcher, Term};

use crate::error::IndexerError;
use crate::index::{Fields, STARTED, SearchIndex};
use crate::query::{Clause, Filter, Span, TextField, parse};

/// Most snippets per result.
pub const MAX_SNIPPETS: usize = 3;
/// Bytes of text around a match that a snippet is cut from.
const SNIPPET_WINDOW: usize = 160;
/// Characters in a snippet at most.
const SNIPPET_CHARS: usize = 200;

/// Which sessions the caller may find: the host computes it with the rules of its own
/// session listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visibility {
    /// Every session (admins, auditors).
    All,
    /// Only the sessions of these users (e.g. the caller's own).
    Users(Vec<String>),
}

/// How hits are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Newest start time first.
    #[default]
    Newest,
    /// Best match first (BM25), then newest.
    Relevance,
}

/// A search.
#[derive(Debug, Clone)]
pub struct SearchRequest<'a> {
    /// The query text (see [`crate::query`]).
    pub query: &'a str,
    /// What the caller may find.
    pub visibility: Visibility,
    /// The order of hits.
    pub order: Order,
    /// Hits to skip (earlier pages).
    pub offset: usize,
    /// Hits to return at most.
    pub limit: usize,
    /// What relative times (`started:-24h`) count back from.
    pub now: SystemTime,
}

/// A highlighted passage of a session's input or output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snippet {
    /// `input` or `output`.
    pub field: &'static str,
    /// The passage.
    pub fragment: String,
    /// Byte ranges of the matches within `fragment`.
    pub highlights: Vec<Range<usize>>,
}

/// One session found.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// The session's id.
    pub session_id: String,
    /// Its relevance score (0 when ordered by time).
    pub score: f32,
    /// Whether only the beginning of its input or output was indexed.
    pub truncated: bool,
    /// Up to [`MAX_SNIPPETS`] passages where the query's words are.
    pub snippets: Vec<Snippet>,
}

/// A page of hits.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SearchPage {
    /// The hits, in order.
    pub hits: Vec<Hit>,
    /// How many sessions match in all (visible ones only).
    pub total: u64,
}

fn term_query(term: Term) -> Box<dyn Query> {
    Box::new(TermQuery::new(term, IndexRecordOption::Basic))
}

fn range_query(field: Field, span: &Span) -> Box<dyn Query> {
    let bound = |b: Bound<i64>| match b {
        Bound::Included(v) => Bound::Included(Term::from_field_i64(field, v)),
        Bound::Excluded(v) => Bound::Excluded(Term::from_field_i64(field, v)),
        Bound::Unbounded => Bound::Unbounded,
    };
    let (lower, upper) = (bound(span.lower), bound(span.upper));
    // An unbounded side still needs its field: the full range of i64 stands for it.
    let lower = match lower {
        Bound::Unbounded => Bound::Included(Term::from_field_i64(field, i64::MIN + 1)),
        b => b,
    };
    let upper = match upper {
        Bound::Unbounded => Bound::Included(Term::from_field_i64(field, i64::MAX)),
        b => b,
    };
    Box::new(RangeQuery::new(lower, upper))
}

impl SearchIndex {
    /// A free word or phrase in one text field: a term, or a phrase of the words the
    /// field's tokenizer makes of it. `None` when it holds no word at all.
    fn text_query(&self, field: Field, text: &str) -> Result<Option<Box<dyn Query>>, IndexerError> {
        let mut analyzer = self.index.tokenizer_for_field(field)?;
        let mut stream = analyzer.token_stream(text);
        let mut terms = Vec::new();
        while let Some(token) = stream.next() {
            terms.push(Term::from_field_text(field, &token.text));
        }
        Ok(match terms.len() {
            0 => None,
            1 => terms.pop().map(|t| {
                Box::new(TermQuery::new(t, IndexRecordOption::WithFreqs)) as Box<dyn Query>
            }),
            _ => Some(Box::new(PhraseQuery::new(terms))),
        })
    }

    fn text_fields(&self, clauses: &[Clause]) -> Vec<Field> {
        let f = &self.fields;
        let scoped: Vec<Field> = clauses
            .iter()
            .filter_map(|c| match c.filter {
                Filter::In(TextField::Input) => Some(f.input),
                Filter::In(TextField::Output) => Some(f.output),
                _ => None,
            })
            .collect();
        if scoped.is_empty() {
            vec![f.input, f.output]
        } else {
            let mut scoped = scoped;
            scoped.dedup();
            scoped
        }
    }

    /// The tantivy query of `clauses` within `visibility`.
    pub(crate) fn build(
        &self,
        clauses: &[Clause],
        visibility: &Visibility,
    ) -> Result<Box<dyn Query>, IndexerError> {
        let f: &Fields = &self.fields;
        let text_fields = self.text_fields(clauses);
        let mut parts: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for clause in clauses {
            let q: Box<dyn Query> = match &clause.filter {
                Filter::In(_) => continue,
                Filter::Text(text) => {
                    let mut per_field = Vec::new();
                    for &field in &text_fields {
                        if let Some(q) = self.text_query(field, text)? {
                            per_field.push((Occur::Should, q));
                        }
                    }
                    if per_field.is_empty() {
                        continue;
                    }
                    Box::new(BooleanQuery::new(per_field))
                }
                Filter::User(v) => term_query(Term::from_field_text(f.user, v)),
                Filter::Connection(v) => term_query(Term::from_field_text(f.connection, v)),
                Filter::Verb(v) => term_query(Term::from_field_text(f.verb, v)),
                Filter::Status(v) => term_query(Term::from_field_text(f.status, v)),
                Filter::Exit(n) => term_query(Term::from_field_i64(f.exit_code, *n)),
                Filter::IsTruncated => term_query(Term::from_field_bool(f.truncated, true)),
                Filter::IsError => {
                    // Not (done with exit code 0).
                    let ok = BooleanQuery::new(vec![
                        (
                            Occur::Must,
                            term_query(Term::from_field_text(f.status, "done")),
                        ),
                        (
                            Occur::Must,
                            term_query(Term::from_field_i64(f.exit_code, 0)),
                        ),
                    ]);
                    Box::new(BooleanQuery::new(vec![
                        (Occur::Must, Box::new(AllQuery) as Box<dyn Query>),
                        (Occur::MustNot, Box::new(ok)),
                    ]))
                }
                Filter::Started(span) => range_query(f.started, span),
                Filter::Duration(span) => range_query(f.duration, span),
            };
            parts.push((
                if clause.negated {
                    Occur::MustNot
                } else {
                    Occur::Must
                },
                q,
            ));
        }
        match visibility {
            Visibility::All => {}
            Visibility::Users(users) if users.is_empty() => return Ok(Box::new(EmptyQuery)),
            Visibility::Users(users) => {
                let mut seen = BTreeSet::new();
                let any: Vec<(Occur, Box<dyn Query>)> = users
                    .iter()
                    .filter(|u| seen.insert(u.as_str()))
                    .map(|u| (Occur::Should, term_query(Term::from_field_text(f.user, u))))
                    .collect();
                parts.push((Occur::Must, Box::new(BooleanQuery::new(any))));
            }
        }
        if !parts.iter().any(|(occur, _)| *occur == Occur::Must) {
            parts.push((Occur::Must, Box::new(AllQuery)));
        }
        Ok(Box::new(BooleanQuery::new(parts)))
    }

    /// Runs `request`. Blocks (reads the index): call it off the async threads.
    ///
    /// # Errors
    /// [`IndexerError::InvalidQuery`] naming what is wrong in the query; [`IndexerError`]
    /// when the index cannot be read.
    pub fn search(&self, request: &SearchRequest<'_>) -> Result<SearchPage, IndexerError> {
        let clauses = parse(request.query, request.now)?;
        let query = self.build(&clauses, &request.visibility)?;
        let searcher = self.reader.searcher();
        let limit = request.limit.max(1);
        let (total, addresses): (usize, Vec<(f32, DocAddress)>) = match request.order {
            Order::Newest => {
                let top = TopDocs::with_limit(limit)
                    .and_offset(request.offset)
                    .order_by_fast_field::<i64>(STARTED, TantivyOrder::Desc);
                let (total, docs) = searcher.search(&*query, &(Count, top))?;
                (total, docs.into_iter().map(|(_, a)| (0.0, a)).collect())
            }
            Order::Relevance => {
                let top = TopDocs::with_limit(limit)
                    .and_offset(request.offset)
                    .order_by_score();
                searcher.search(&*query, &(Count, top))?
            }
        };
        let text_fields = self.text_fields(&clauses);
        let snippets = Snippets::new(&searcher, &*query, &text_fields, &self.fields)?;
        let mut hits = Vec::with_capacity(addresses.len());
        for (score, address) in addresses {
            let doc: TantivyDocument = searcher.doc(address)?;
            let truncated = doc
                .get_first(self.fields.truncated)
                .and_then(|v| v.as_bool())
                .unwrap_or(false);
            hits.push(Hit {
                session_id: self.doc_text(&doc, self.fields.id),
                score,
                truncated,
                snippets: snippets.of(&doc),
            });
        }
        Ok(SearchPage {
            hits,
            total: u64::try_from(total).unwrap_or(u64::MAX),
        })
    }
}

/// Cuts snippets out of hits: the query's words per text field, found fast with a
/// case-insensitive scan, then highlighted by tantivy's snippet generator around each match.
struct Snippets {
    fields: Vec<(&'static str, Field, SnippetGenerator, Option<aho::Finder>)>,
}

mod aho {
    use aho_corasick::AhoCorasick;

    /// Finds the query's words in text as the index's tokenizer sees them: whole words
    /// (runs of alphanumeric characters), ignoring case.
    pub(super) struct Finder {
        words: Vec<String>,
        /// ASCII words (nearly always): one pass of an ASCII-case-insensitive automaton over
        /// the text, lazily, so a hit's snippets cost the text up to its first matches only.
        ascii: Option<AhoCorasick>,
    }

    impl Finder {
        pub(super) fn new(words: Vec<String>) -> Option<Self> {
            if words.is_empty() {
                return None;
            }
            let ascii = if words.iter().all(|w| w.is_ascii()) {
                AhoCorasick::builder()
                    .ascii_case_insensitive(true)
                    .build(&words)
                    .ok()
            } else {
                None
            };
            Some(Self { words, ascii })
        }

        /// Byte offsets of the whole-word matches in `text`, in order. Lazy on the ASCII
        /// path: stop taking when enough were found.
        pub(super) fn find<'a>(&'a self, text: &'a str) -> Box<dyn Iterator<Item = usize> + 'a> {
            match &self.ascii {
                Some(ac) => Box::new(
                    ac.find_iter(text)
                        .filter(|m| whole_word(text, m.start(), m.end()))
                        .map(|m| m.start()),
                ),
                None => Box::new(self.find_unicode(text).into_iter()),
            }
        }

        /// Words outside ASCII: the whole text lower-cased, then searched word by word.
        fn find_unicode(&self, text: &str) -> Vec<usize> {
            let lower = text.to_lowercase();
            // `to_lowercase` may change byte lengths outside ASCII; offsets are then only
            // approximate, and re-aligned to character boundaries by the caller.
            let mut hits: Vec<usize> = Vec::new();
            for word in &self.words {
                let mut from = 0;
                while let Some(at) = lower[from..].find(word.as_str()) {
                    hits.push(from + at);
                    from += at + word.len().max(1);
                    if hits.len() > super::MAX_SNIPPETS * 8 {
                        break;
                    }
                }
            }
            hits.sort_unstable();
            hits
        }
    }

    /// Whether `text[start..end]` is a whole token: no alphanumeric character touches it.
    fn whole_word(text: &str, start: usize, end: usize) -> bool {
        let before = text[..start].chars().next_back();
        let after = text[end..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    }
}

fn floor_boundary(text: &str, mut at: usize) -> usize {
    at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn ceil_boundary(text: &str, mut at: usize) -> usize {
    at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at += 1;
    }
    at
}

impl Snippets {
    fn new(
        searcher: &Searcher,
        query: &dyn Query,
        text_fields: &[Field],
        f: &Fields,
    ) -> Result<Self, IndexerError> {
        let mut fields = Vec::new();
        for (name, field) in [("input", f.input), ("output", f.output)] {
            if !text_fields.contains(&field) {
                continue;
            }
            let mut generator = SnippetGenerator::create(searcher, query, field)?;
            generator.set_max_num_chars(SNIPPET_CHARS);
            let mut words = BTreeSet::new();
            query.query_terms(&mut |term, _| {
                if term.field() == field
                    && let Some(text) = term.value().as_str()
                {
                    words.insert(text.to_owned());
                }
            });
            let finder = aho::Finder::new(words.into_iter().collect());
            fields.push((name, field, generator, finder));
        }
        Ok(Self { fields })
    }

    /// Up to [`MAX_SNIPPETS`] snippets of `doc`, taking turns between the fields.
    fn of(&self, doc: &TantivyDocument) -> Vec<Snippet> {
        let mut per_field: Vec<std::collections::VecDeque<Snippet>> = Vec::new();
        for (name, field, generator, finder) in &self.fields {
            let Some(finder) = finder else { continue };
            let text = doc
                .get_first(*field)
                .and_then(|v| v.as_str())
                .unwrap_or_default();
            let mut found = std::collections::VecDeque::new();
            let mut covered = 0usize;
            // Windows tried, bounded: a word the tokenizer splits otherwise (rare) yields no
            // highlight and is passed over, but never makes a hit cost its whole text.
            let mut tried = 0usize;
            for at in finder.find(text) {
                if at < covered {
                    continue;
                }
                tried += 1;
                if tried > MAX_SNIPPETS * 8 {
                    break;
                }
                let start = floor_boundary(text, at.saturating_sub(SNIPPET_WINDOW / 2));
                let end = ceil_boundary(text, at + SNIPPET_WINDOW);
                covered = end;
                let snippet = generator.snippet(&text[start..end]);
                if snippet.highlighted().is_empty() {
                    continue;
                }
                found.push_back(Snippet {
                    field: name,
                    fragment: snippet.fragment().to_owned(),
                    highlights: snippet.highlighted().to_vec(),
                });
                if found.len() == MAX_SNIPPETS {
                    break;
                }
            }
            per_field.push(found);
        }
        let mut out = Vec::new();
        while out.len() < MAX_SNIPPETS && per_field.iter().any(|f| !f.is_empty()) {
            for found in &mut per_field {
                if out.len() < MAX_SNIPPETS
                    && let Some(s) = found.pop_front()
                {
                    out.push(s);
                }
            }
        }
        out
    }
}
