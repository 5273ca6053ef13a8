#!/usr/bin/env python3
"""hoop-rs DLP engine vs Microsoft Presidio, side by side, on the same PII-dense input.

Generates a psql-style table where every row holds an email address, a credit card number
and a phone number (seeded, so every run sees the same bytes, with the true spans known),
then:

* runs Presidio's AnalyzerEngine (its regex/pattern recognizers, with a blank spaCy
  pipeline: no NER model) on a sample of the rows, timing it;
* runs the hoop-rs engine (the `findings` example of hoop-plugin-dlp, release build, one
  core) on the same sample for its findings, and on a larger input for its throughput;
* prints throughput of both and the ratio, each tool's precision/recall against the true
  spans, and how often the two tools agree.

Usage (see BENCHMARKS.md):

    python3 -m venv /tmp/presidio-venv
    /tmp/presidio-venv/bin/pip install presidio-analyzer presidio-anonymizer
    cargo build --release -p hoop-plugin-dlp --example findings
    /tmp/presidio-venv/bin/python bench/presidio/compare.py

With `--independent DIR`, it instead scores both tools' recall on the independent corpus
of `crates/hoop-plugin-dlp/tests/independent.rs` (phone and card numbers from the `fake`
crate, Python Faker and libphonenumber's example numbers, planted in psql tables, log lines
and JSON), exported by

    DLP_INDEPENDENT_OUT=DIR cargo test -p hoop-plugin-dlp --test independent

hoop-rs runs on the whole corpus (its bare-number rule needs the table headers); Presidio,
being slow, on a seeded sample of the labelled lines (`--sample`, per type and layout),
and both are scored on the same sampled values: exact spans, and "overlap" (a finding of
the type overlapping the value at all, for tools that draw the span differently, e.g.
leaving out an extension).
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time

HOOP_TYPES = ["EMAIL_ADDRESS", "CREDIT_CARD_NUMBER", "PHONE_NUMBER"]
# Presidio's entity names for the same info types.
PRESIDIO_OF = {
    "EMAIL_ADDRESS": "EMAIL_ADDRESS",
    "CREDIT_CARD_NUMBER": "CREDIT_CARD",
    "PHONE_NUMBER": "PHONE_NUMBER",
}
HOOP_OF = {v: k for k, v in PRESIDIO_OF.items()}

FIRST = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan",
         "judy", "mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent",
         "victor", "walter", "yolanda", "zoe", "maria", "joao", "chen", "priya"]
LAST = ["smith", "jones", "garcia", "silva", "nguyen", "kim", "muller", "rossi",
        "novak", "kowalski", "santos", "ito", "patel", "okafor", "larsen", "dubois"]
DOMAINS = ["example.com", "example.org", "mail.example.net", "corp.example.co.uk",
           "example.io", "sub.example.com.br"]


def luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    digits = prefix + "".join(str(rng.randrange(10)) for _ in range(length - len(prefix) - 1))
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d)
        if i % 2 == 0:
            n *= 2
            if n > 9:
                n -= 9
        total += n
    return digits + str((10 - total % 10) % 10)


def card(rng: random.Random) -> str:
    kind = rng.randrange(3)
    if kind == 0:
        number = luhn_complete("4", 16, rng)
        groups = [number[i:i + 4] for i in range(0, 16, 4)]
    elif kind == 1:
        number = luhn_complete(str(rng.choice([51, 52, 53, 54, 55])), 16, rng)
        groups = [number[i:i + 4] for i in range(0, 16, 4)]
    else:
        number = luhn_complete(rng.choice(["34", "37"]), 15, rng)
        groups = [number[:4], number[4:10], number[10:]]
    sep = rng.choice([" ", "-", ""])
    return sep.join(groups)


def phone(rng: random.Random) -> str:
    area = rng.choice(["415", "212", "646", "303", "617", "206"])
    line = f"{rng.randrange(10000):04d}"
    exchange = f"{rng.randrange(200, 999)}"
    style = rng.randrange(4)
    if style == 0:
        return f"({area}) {exchange}-{line}"
    if style == 1:
        return f"+1 {area}-{exchange}-{line}"
    if style == 2:
        return f"{area}-{exchange}-{line}"
    return f"+44 20 7946 {rng.randrange(10000):04d}"


def table(rows: int, seed: int):
    """The table text and its true spans [(type, start, end)]."""
    rng = random.Random(seed)
    out = [" id  | name             | email                              | card                 | phone\n",
           "-----+------------------+------------------------------------+----------------------+-----------------\n"]
    pos = sum(len(x) for x in out)
    spans = []
    for i in range(1, rows + 1):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        email = f"{first}.{last}{rng.randrange(100)}@{rng.choice(DOMAINS)}"
        values = [("EMAIL_ADDRESS", email), ("CREDIT_CARD_NUMBER", card(rng)),
                  ("PHONE_NUMBER", phone(rng))]
        line = f" {i:>3} | {first.title() + ' ' + last.title():<16} |"
        for kind, value in values:
            line += " "
            spans.append((kind, pos + len(line), pos + len(line) + len(value)))
            line += value + " |"
        line = line[:-2] + "\n"
        out.append(line)
        pos += len(line)
    out.append(f"({rows} rows)\n")
    return "".join(out), spans


def hoop(binary: str, text: str, types=None):
    with tempfile.NamedTemporaryFile("w", delete=False, suffix=".txt") as f:
        f.write(text)
        path = f.name
    try:
        with open(path, "rb") as stdin:
            done = subprocess.run([binary, ",".join(types or HOOP_TYPES)], stdin=stdin,
                                  capture_output=True, check=True)
    finally:
        os.unlink(path)
    findings = [json.loads(line) for line in done.stdout.decode().splitlines() if line]
    timing = json.loads(done.stderr.decode().strip().splitlines()[-1])
    return [(f["type"], f["start"], f["end"]) for f in findings], timing


def presidio(text: str, block_lines: int, hoop_types=None):
    # Offline: tldextract (used by the email recognizer) must not fetch the suffix list.
    import tldextract
    tldextract.extract = tldextract.TLDExtract(suffix_list_urls=())
    import spacy
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import SpacyNlpEngine

    class BlankSpacy(SpacyNlpEngine):
        """A spaCy pipeline with a tokenizer only: no statistical NER model."""

        def __init__(self):
            super().__init__(models=[{"lang_code": "en", "model_name": "blank"}])

        def load(self):
            self.nlp = {"en": spacy.blank("en")}

    engine = BlankSpacy()
    engine.load()
    analyzer = AnalyzerEngine(nlp_engine=engine, supported_languages=["en"])
    entities = [PRESIDIO_OF[t] for t in (hoop_types or HOOP_TYPES)]
    lines = text.splitlines(keepends=True)
    spans = []
    offset = 0
    started = time.perf_counter()
    for i in range(0, len(lines), block_lines):
        block = "".join(lines[i:i + block_lines])
        for r in analyzer.analyze(text=block, language="en", entities=entities):
            spans.append((HOOP_OF[r.entity_type], offset + r.start, offset + r.end))
        offset += len(block)
    seconds = time.perf_counter() - started
    return spans, {"bytes": len(text), "seconds": seconds, "mb_per_s": len(text) / seconds / 1e6}


def independent(args):
    """Recall of both tools per type and layout on the exported independent corpus."""
    import collections
    text = open(os.path.join(args.independent, "corpus.txt"), encoding="utf-8").read()
    labels = [json.loads(x) for x in open(os.path.join(args.independent, "labels.jsonl"))]
    # Byte offsets (Rust) to str offsets (Python): the corpus is ASCII apart from rare
    # values, so map through the encoded text.
    raw = text.encode("utf-8")
    if len(raw) != len(text):
        b2c = {}
        c = 0
        for i, ch in enumerate(text):
            b2c[c] = i
            c += len(ch.encode("utf-8"))
        b2c[c] = len(text)
        for lab in labels:
            lab["start"], lab["end"] = b2c[lab["start"]], b2c[lab["end"]]
    hoop_spans, _ = hoop(args.hoop, text, ["PHONE_NUMBER", "CREDIT_CARD_NUMBER"])
    if len(raw) != len(text):
        hoop_spans = [(t, b2c[a], b2c[b]) for t, a, b in hoop_spans]

    rng = random.Random(args.seed)
    groups = collections.defaultdict(list)
    for lab in labels:
        groups[(lab["type"], lab["layout"])].append(lab)
    sample = []
    for key in sorted(groups):
        g = groups[key]
        sample += rng.sample(g, min(args.sample, len(g)))
    # The sampled lines, one per value, for Presidio.
    lines, offsets = [], []
    pos = 0
    for lab in sample:
        ls = text.rfind("\n", 0, lab["start"]) + 1
        le = text.find("\n", lab["end"])
        le = len(text) if le < 0 else le + 1
        lines.append(text[ls:le])
        offsets.append((pos, ls))
        pos += le - ls
    sample_text = "".join(lines)
    entities = {"PHONE_NUMBER": "PHONE_NUMBER", "CREDIT_CARD_NUMBER": "CREDIT_CARD_NUMBER"}
    pres, ptime = presidio(sample_text, args.block_lines, list(entities))
    # Presidio's spans back to corpus offsets.
    starts = [o[0] for o in offsets]
    import bisect
    pres_corpus = []
    for t, a, b in pres:
        k = bisect.bisect_right(starts, a) - 1
        delta = offsets[k][1] - offsets[k][0]
        pres_corpus.append((t, a + delta, b + delta))

    def recall(found, labs):
        exact = {(t, a, b) for t, a, b in found}
        by_type = collections.defaultdict(list)
        for t, a, b in found:
            by_type[t].append((a, b))
        for v in by_type.values():
            v.sort()
        n_exact = n_overlap = 0
        for lab in labs:
            t, a, b = lab["type"], lab["start"], lab["end"]
            if (t, a, b) in exact:
                n_exact += 1
            spans = by_type.get(t, [])
            k = bisect.bisect_left(spans, (b, b))
            if any(x < b and a < y for x, y in spans[max(0, k - 3):k + 1]):
                n_overlap += 1
        return n_exact / len(labs), n_overlap / len(labs)

    print(f"independent corpus: {len(text)} bytes, {len(labels)} labelled values; "
          f"sample for both tools: {len(sample)} values ({len(sample_text)} bytes); "
          f"Presidio {version()} took {ptime['seconds']:.1f} s", file=sys.stderr)
    print("| type | layout | values | hoop-rs recall (exact) | hoop-rs recall (overlap) | "
          "Presidio recall (exact) | Presidio recall (overlap) |")
    print("|---|---|---|---|---|---|---|")
    totals = collections.defaultdict(list)
    for key in sorted(groups):
        labs = [x for x in sample if (x["type"], x["layout"]) == key]
        he, ho = recall(hoop_spans, labs)
        pe, po = recall(pres_corpus, labs)
        totals[key[0]] += labs
        print(f"| {key[0]} | {key[1]} | {len(labs)} | {he:.4f} | {ho:.4f} | {pe:.4f} | {po:.4f} |")
    for t, labs in sorted(totals.items()):
        he, ho = recall(hoop_spans, labs)
        pe, po = recall(pres_corpus, labs)
        print(f"| {t} | all | {len(labs)} | {he:.4f} | {ho:.4f} | {pe:.4f} | {po:.4f} |")
    # Presidio's recall per source, to see what it misses.
    by_source = collections.defaultdict(list)
    for lab in sample:
        by_source[(lab["type"], lab["source"])].append(lab)
    print("\n| type | source | values | hoop-rs (overlap) | Presidio (overlap) |")
    print("|---|---|---|---|---|")
    for (t, src), labs in sorted(by_source.items()):
        print(f"| {t} | {src} | {len(labs)} | {recall(hoop_spans, labs)[1]:.4f} | "
              f"{recall(pres_corpus, labs)[1]:.4f} |")


def score(found, truth):
    """Per type: (precision, recall, tp, fp, fn) with exact span matches."""
    out = {}
    for t in HOOP_TYPES:
        f = {(s, e) for k, s, e in found if k == t}
        g = {(s, e) for k, s, e in truth if k == t}
        tp = len(f & g)
        out[t] = (tp / len(f) if f else 1.0, tp / len(g) if g else 1.0, tp, len(f - g), len(g - f))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=2000, help="rows given to both tools (Presidio is slow)")
    p.add_argument("--hoop-rows", type=int, default=200000, help="rows for hoop's throughput")
    p.add_argument("--block-lines", type=int, default=50, help="lines per Presidio analyze() call")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--hoop", default="target/release/examples/findings")
    p.add_argument("--independent", metavar="DIR",
                   help="score recall on the exported independent corpus instead")
    p.add_argument("--sample", type=int, default=300,
                   help="values per type and layout given to Presidio (--independent)")
    args = p.parse_args()
    if args.independent:
        independent(args)
        return

    sample, truth = table(args.rows, args.seed)
    big, _ = table(args.hoop_rows, args.seed + 1)
    print(f"input: {args.rows} rows, {len(sample)} bytes (both tools); "
          f"{len(big)} bytes for hoop's throughput", file=sys.stderr)

    hoop_spans, _ = hoop(args.hoop, sample)
    _, hoop_time = hoop(args.hoop, big)
    print("hoop:", hoop_time, file=sys.stderr)
    presidio_spans, presidio_time = presidio(sample, args.block_lines)
    print("presidio:", presidio_time, file=sys.stderr)

    ratio = hoop_time["mb_per_s"] / presidio_time["mb_per_s"]
    h, pr = score(hoop_spans, truth), score(presidio_spans, truth)
    hs, ps = set(hoop_spans), set(presidio_spans)
    print("| tool | input | MB/s |")
    print("|------|-------|------|")
    print(f"| hoop-rs (one core) | {len(big) / 1e6:.1f} MB, {hoop_time['rounds']} rounds | "
          f"{hoop_time['mb_per_s']:.1f} |")
    print(f"| Presidio {version()} (regex recognizers, blank spaCy) | {len(sample) / 1e6:.3f} MB | "
          f"{presidio_time['mb_per_s']:.4f} |")
    print(f"\n**Ratio: {ratio:,.0f}×** (hoop-rs MB/s ÷ Presidio MB/s)\n")
    print("| type | hoop-rs precision | hoop-rs recall | Presidio precision | Presidio recall | same span | only hoop-rs | only Presidio |")
    print("|------|------|------|------|------|------|------|------|")
    for t in HOOP_TYPES:
        hh = {x for x in hs if x[0] == t}
        pp = {x for x in ps if x[0] == t}
        print(f"| {t} | {h[t][0]:.4f} | {h[t][1]:.4f} | {pr[t][0]:.4f} | {pr[t][1]:.4f} | "
              f"{len(hh & pp)} | {len(hh - pp)} | {len(pp - hh)} |")
    agree = len(hs & ps) / len(hs | ps) if hs | ps else 1.0
    print(f"\nAgreement (identical spans ÷ spans either tool found): {agree:.4f}; "
          f"true spans: {len(truth)}")
    misses = sorted((ps - hs) | (hs - ps))[:8]
    for kind, s, e in misses:
        who = "presidio only" if (kind, s, e) in ps else "hoop only"
        print(f"- {who}: {kind} {sample[s:e]!r}")


def version():
    try:
        from importlib.metadata import version as v
        return v("presidio-analyzer")
    except Exception:  # noqa: BLE001 - a label only
        return "?"


if __name__ == "__main__":
    main()
