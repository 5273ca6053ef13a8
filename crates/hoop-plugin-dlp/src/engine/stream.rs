//! Content-defined segmentation and the streaming redactor.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::detect::{Cand, Tail};
use super::label::{Carry, Tables};
use super::literal::{ends_token, pem_end};
use super::types::B;
use super::{Finding, Inner};

/// Most bytes a [`StreamRedactor`] ever holds back between calls.
pub const MAX_HOLDBACK: usize = 1024;

/// A long line is cut, preferably, at a delimiter at least this far before the end of
/// its 1 KiB window, so that any value of up to this length that crosses the cut is
/// seen whole (and the cut moved before it).
const CUT_MARGIN: usize = 256;

/// In a PEM block, the last bytes of a long-line window are kept back so that an END
/// marker straddling two windows is still found.
const PEM_KEEP: usize = 64;

/// A PEM block whose END line has not come after this many bytes stops being masked.
const PEM_CAP: usize = 64 * 1024;

/// Lines processed per detection batch.
const BATCH: usize = 64 * 1024;

/// What carries over from one segment to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing: the next segment starts fresh.
    Idle,
    /// Inside a PEM private key block; `seen` bytes of it so far.
    Pem { seen: usize },
    /// Inside a token that was cut at a window end.
    Cont { kind: u16, tail: Tail },
}

#[inline]
fn is_delim(b: u8) -> bool {
    matches!(
        b,
        b' ' | b'\t'
            | b'\r'
            | b','
            | b';'
            | b'|'
            | b'"'
            | b'\''
            | b'<'
            | b'>'
            | b'('
            | b')'
            | b'['
            | b']'
            | b'{'
            | b'}'
            | b'&'
    )
}

/// Where to cut a full window `w` of a long line: after the delimiter closest to
/// `len - CUT_MARGIN` that no accepted candidate (with its context) crosses — the last one
/// at or before it, else the first one after it (so that as much as possible of the window
/// is seen again, whole, in the next one) — else at the window end.
fn choose_cut(w: &[u8], c0: usize, acc: &[Cand]) -> usize {
    let n = w.len();
    let free = |p: usize| !acc.iter().any(|c| c.guard < p && p < c.end);
    let hi = n.saturating_sub(CUT_MARGIN);
    let mut p = hi;
    while p > c0 {
        if is_delim(w[p - 1]) && free(p) {
            return p;
        }
        p -= 1;
    }
    let mut p = hi.max(c0) + 1;
    while p < n {
        if is_delim(w[p - 1]) && free(p) {
            return p;
        }
        p += 1;
    }
    n
}

/// The mutable half of a redactor.
#[derive(Debug)]
struct Core {
    state: State,
    counts: Vec<u64>,
    masked: u64,
    cands: Vec<Cand>,
    accepted: Vec<Cand>,
    offset: usize,
    findings: Option<Vec<Finding>>,
    /// Table header in effect after the last segment.
    tables: Carry,
    /// The last line of the last segment, if it may be a table header.
    prev_line: Vec<u8>,
}

impl Core {
    fn emit(&mut self, inner: &Inner, kind: u16, value: &[u8], abs: usize, out: &mut Vec<u8>) {
        self.counts[usize::from(kind)] += 1;
        self.masked += value.len() as u64;
        inner.masker.value(kind, value, out);
        if let Some(f) = &mut self.findings {
            f.push(Finding {
                info_type: inner.names[usize::from(kind)].clone(),
                start: abs,
                end: abs + value.len(),
            });
        }
    }

    fn emit_cont(&mut self, inner: &Inner, kind: u16, value: &[u8], abs: usize, out: &mut Vec<u8>) {
        self.masked += value.len() as u64;
        inner.masker.continuation(kind, value, out);
        if let Some(last) = self.findings.as_mut().and_then(|f| f.last_mut()) {
            last.end = last.end.max(abs + value.len());
        }
    }

    /// Consume the continuation of a value from the start of `seg`; returns the number of
    /// bytes consumed (and leaves the state `Idle` when the value ended in `seg`).
    fn cont(
        &mut self,
        inner: &Inner,
        seg: &[u8],
        abs: usize,
        window: bool,
        out: &mut Vec<u8>,
    ) -> usize {
        match self.state {
            State::Idle => 0,
            State::Pem { seen } => {
                let pk = B::PrivateKey.kind();
                if let Some(e) = pem_end(seg) {
                    self.emit_cont(inner, pk, &seg[..e], abs, out);
                    self.state = State::Idle;
                    e
                } else if seen >= PEM_CAP {
                    self.state = State::Idle;
                    0
                } else {
                    let n = if window {
                        seg.len() - PEM_KEEP
                    } else {
                        seg.len()
                    };
                    self.emit_cont(inner, pk, &seg[..n], abs, out);
                    self.state = State::Pem { seen: seen + n };
                    n
                }
            }
            State::Cont { kind, tail } => {
                let end = if tail == Tail::Line {
                    memchr::memchr2(b'\n', b'\r', seg)
                } else {
                    seg.iter().position(|&b| ends_token(b))
                };
                let e = end.unwrap_or(seg.len());
                self.emit_cont(inner, kind, &seg[..e], abs, out);
                if end.is_some() {
                    self.state = State::Idle;
                }
                e
            }
        }
    }

    /// Redact `s`: whole lines (each ending in `\n`, at most [`MAX_HOLDBACK`] bytes), or
    /// the final bytes of the stream.
    fn lines(&mut self, inner: &Inner, s: &[u8], out: &mut Vec<u8>) {
        let base = self.offset;
        let mut cands = std::mem::take(&mut self.cands);
        cands.clear();
        let mut tables = Tables::new(self.tables, std::mem::take(&mut self.prev_line));
        inner.detector.detect(s, false, &mut tables, &mut cands);
        if inner.detector.tables_needed() {
            (self.tables, self.prev_line) = tables.finish(s);
        }
        let mut pos = 0;
        let mut ci = 0;
        while pos < s.len() {
            if self.state != State::Idle {
                let le = memchr::memchr(b'\n', &s[pos..]).map_or(s.len(), |i| pos + i + 1);
                pos += self.cont(inner, &s[pos..le], base + pos, false, out);
                if self.state != State::Idle {
                    continue;
                }
            }
            let mut opened = false;
            while ci < cands.len() {
                let c = cands[ci];
                ci += 1;
                if c.start < pos {
                    continue;
                }
                out.extend_from_slice(&s[pos..c.start]);
                self.emit(inner, c.kind, &s[c.start..c.end], base + c.start, out);
                pos = c.end;
                if c.tail == Tail::PemOpen {
                    self.state = State::Pem {
                        seen: c.end - c.start,
                    };
                    opened = true;
                    break;
                }
            }
            if !opened {
                out.extend_from_slice(&s[pos..]);
                pos = s.len();
            }
        }
        self.cands = cands;
        self.offset += s.len();
    }

    /// Redact the first part of a full window `w` ([`MAX_HOLDBACK`] bytes of a longer line,
    /// no `\n`); returns how many bytes were consumed (the rest starts the next window).
    fn window(&mut self, inner: &Inner, w: &[u8], out: &mut Vec<u8>) -> usize {
        let base = self.offset;
        // A long line is not a table row: it ends any table.
        self.tables = Carry::default();
        self.prev_line.clear();
        let c0 = self.cont(inner, w, base, true, out);
        if self.state != State::Idle {
            self.offset += c0;
            return c0;
        }
        let mut cands = std::mem::take(&mut self.cands);
        let mut acc = std::mem::take(&mut self.accepted);
        cands.clear();
        acc.clear();
        inner
            .detector
            .detect(w, true, &mut Tables::default(), &mut cands);
        let mut last = c0;
        for c in &cands {
            if c.start >= last {
                acc.push(*c);
                last = c.end;
            }
        }
        let cut = choose_cut(w, c0, &acc);
        let mut pos = c0;
        let mut next_state = State::Idle;
        for c in &acc {
            if c.end > cut {
                break;
            }
            out.extend_from_slice(&w[pos..c.start]);
            self.emit(inner, c.kind, &w[c.start..c.end], base + c.start, out);
            pos = c.end;
            if cut == w.len() && c.end == w.len() {
                next_state = match c.tail {
                    Tail::PemOpen => State::Pem {
                        seen: c.end - c.start,
                    },
                    Tail::Ws | Tail::Line => State::Cont {
                        kind: c.kind,
                        tail: c.tail,
                    },
                    Tail::Closed => State::Idle,
                };
            }
        }
        out.extend_from_slice(&w[pos..cut]);
        self.state = next_state;
        self.cands = cands;
        self.accepted = acc;
        self.offset += cut;
        cut
    }

    /// Redact as much of `input` as forms complete segments; returns the bytes consumed.
    fn block(&mut self, inner: &Inner, input: &[u8], out: &mut Vec<u8>) -> usize {
        let n = input.len();
        let mut pos = 0;
        loop {
            let start = pos;
            let mut long = false;
            // Jump from line start to line start a window at a time: the last `\n` within
            // MAX_HOLDBACK bytes of a line start ends a run of lines that are all short.
            while pos < n && pos - start < BATCH {
                let lim = (pos + MAX_HOLDBACK).min(n);
                match memchr::memrchr(b'\n', &input[pos..lim]) {
                    Some(i) => pos += i + 1,
                    None => {
                        long = lim - pos == MAX_HOLDBACK;
                        break;
                    }
                }
            }
            if pos > start {
                self.lines(inner, &input[start..pos], out);
            }
            if long {
                pos += self.window(inner, &input[pos..pos + MAX_HOLDBACK], out);
            } else if pos == start || pos == n {
                return pos;
            }
        }
    }
}

/// Redacts a byte stream chunk by chunk; see the [module docs](super) for the guarantees.
///
/// Created by [`Engine::stream`](super::Engine::stream). `Send`, not shared: one per stream.
#[derive(Debug)]
pub struct StreamRedactor {
    inner: Arc<Inner>,
    held: Vec<u8>,
    core: Core,
}

impl StreamRedactor {
    pub(crate) fn new(inner: Arc<Inner>, findings: bool) -> Self {
        let kinds = inner.names.len();
        StreamRedactor {
            inner,
            held: Vec::with_capacity(MAX_HOLDBACK),
            core: Core {
                state: State::Idle,
                counts: vec![0; kinds],
                masked: 0,
                cands: Vec::new(),
                accepted: Vec::new(),
                offset: 0,
                findings: findings.then(Vec::new),
                tables: Carry::default(),
                prev_line: Vec::new(),
            },
        }
    }

    /// Feed `chunk`; append to `out` every byte that can be released (redacted). At most
    /// [`MAX_HOLDBACK`] bytes stay held: an unfinished line, or the undecided tail of a
    /// long one.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        let inner = Arc::clone(&self.inner);
        let mut input = chunk;
        while !self.held.is_empty() && !input.is_empty() {
            let room = MAX_HOLDBACK - self.held.len();
            let take = room.min(input.len());
            if let Some(i) = memchr::memchr(b'\n', &input[..take]) {
                self.held.extend_from_slice(&input[..=i]);
                input = &input[i + 1..];
                let held = std::mem::take(&mut self.held);
                self.core.lines(&inner, &held, out);
                self.held = held;
                self.held.clear();
            } else if take == room {
                self.held.extend_from_slice(&input[..take]);
                input = &input[take..];
                let held = std::mem::take(&mut self.held);
                let used = self.core.window(&inner, &held, out);
                self.held = held;
                self.held.drain(..used);
            } else {
                self.held.extend_from_slice(input);
                input = &[];
            }
        }
        if !input.is_empty() {
            let used = self.core.block(&inner, input, out);
            self.held.extend_from_slice(&input[used..]);
        }
    }

    /// Release everything held (at the end of the stream, or after a pause). A value
    /// split by a mid-stream flush may be partly missed; an open PEM block stays masked.
    pub fn flush(&mut self, out: &mut Vec<u8>) {
        if !self.held.is_empty() {
            let inner = Arc::clone(&self.inner);
            let held = std::mem::take(&mut self.held);
            self.core.lines(&inner, &held, out);
            self.held = held;
            self.held.clear();
        }
    }

    /// Bytes currently held back (never more than [`MAX_HOLDBACK`]).
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Number of values masked so far, per info type (types with none are left out).
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.core
            .counts
            .iter()
            .zip(&self.inner.names)
            .filter(|(c, _)| **c > 0)
            .map(|(c, n)| (n.clone(), *c))
            .collect()
    }

    /// Number of input bytes masked so far.
    pub fn masked_bytes(&self) -> u64 {
        self.core.masked
    }

    /// Whether the stream is inside a masked multi-segment value (a PEM private key
    /// block, or a token cut at the holdback limit): the next bytes will be masked until
    /// it ends.
    pub fn in_value(&self) -> bool {
        self.core.state != State::Idle
    }

    pub(crate) fn take_findings(&mut self) -> Vec<Finding> {
        self.core.findings.take().unwrap_or_default()
    }
}
