//! Span-level precision and recall of every built-in type on the labelled corpus.
//!
//! `cargo test -p hoop-plugin-dlp --test accuracy -- --nocapture` prints the table.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::{BTreeMap, HashSet};

use support::corpus::{self, TYPES};

const SEED: u64 = 0x00D1_5C0F_FEE0;
const ROWS: usize = 9000;

#[test]
fn precision_and_recall_per_type() {
    let c = corpus::labelled(SEED, ROWS);
    let e = support::all();
    let found = e.findings(&c.text);
    let truth: HashSet<(&str, usize, usize)> = c.labels.iter().copied().collect();
    let mut tp: BTreeMap<&str, usize> = BTreeMap::new();
    let mut fp: BTreeMap<&str, usize> = BTreeMap::new();
    let mut matched = HashSet::new();
    let mut fp_examples = Vec::new();
    for f in &found {
        let key = TYPES.iter().find(|t| **t == f.info_type).copied().unwrap();
        if truth.contains(&(key, f.start, f.end)) {
            *tp.entry(key).or_default() += 1;
            matched.insert((key, f.start, f.end));
        } else {
            *fp.entry(key).or_default() += 1;
            if fp_examples.len() < 40 {
                let lo = f.start.saturating_sub(30);
                let hi = (f.end + 30).min(c.text.len());
                fp_examples.push(format!(
                    "FP {key} {:?} in {:?}",
                    String::from_utf8_lossy(&c.text[f.start..f.end]),
                    String::from_utf8_lossy(&c.text[lo..hi])
                ));
            }
        }
    }
    let mut fn_examples = Vec::new();
    let mut fns: BTreeMap<&str, usize> = BTreeMap::new();
    for l in &c.labels {
        if !matched.contains(l) {
            *fns.entry(l.0).or_default() += 1;
            if fn_examples.len() < 40 {
                let lo = l.1.saturating_sub(30);
                let hi = (l.2 + 30).min(c.text.len());
                fn_examples.push(format!(
                    "FN {} {:?} in {:?}",
                    l.0,
                    String::from_utf8_lossy(&c.text[l.1..l.2]),
                    String::from_utf8_lossy(&c.text[lo..hi])
                ));
            }
        }
    }
    println!(
        "corpus: {} bytes, {} rows, {} labelled values\n",
        c.text.len(),
        ROWS,
        c.labels.len()
    );
    println!(
        "{:<32} {:>7} {:>6} {:>6} {:>6} {:>9} {:>9}",
        "type", "labels", "TP", "FP", "FN", "precision", "recall"
    );
    let mut bad = Vec::new();
    for t in TYPES {
        let tp_ = tp.get(t).copied().unwrap_or(0);
        let fp_ = fp.get(t).copied().unwrap_or(0);
        let fn_ = fns.get(t).copied().unwrap_or(0);
        let labels = c.labels.iter().filter(|l| l.0 == *t).count();
        let p = if tp_ + fp_ == 0 {
            1.0
        } else {
            tp_ as f64 / (tp_ + fp_) as f64
        };
        let r = if labels == 0 {
            1.0
        } else {
            tp_ as f64 / labels as f64
        };
        println!("{t:<32} {labels:>7} {tp_:>6} {fp_:>6} {fn_:>6} {p:>9.4} {r:>9.4}");
        if p < 0.99 || r < 0.99 || labels < 100 {
            bad.push(*t);
        }
    }
    for x in fp_examples.iter().chain(&fn_examples) {
        println!("{x}");
    }
    assert!(
        bad.is_empty(),
        "types below 0.99 precision/recall (or < 100 labels): {bad:?}"
    );
}

#[test]
fn corpus_streams_like_one_shot() {
    let c = corpus::labelled(SEED ^ 1, 1500);
    let e = support::all();
    let one = e.redact(&c.text).output;
    for sizes in [&[1usize][..], &[7, 13, 1], &[4096], &[1000, 3, 200]] {
        let got = support::stream_chunks(&e, &c.text, sizes);
        assert!(got == one, "chunking {sizes:?} differs");
    }
}
