#!/usr/bin/env python3
"""Writes tests/fixtures/tokenizer/*: expected RoBERTa token ids from Hugging Face's fast tokenizer.

Ground truth is transformers' RobertaTokenizer(Fast) built from the roberta-base vocab.json and
merges.txt, with <mask> as AddedToken(lstrip=True, rstrip=False), as transformers 4.4.2 (the
original DataMUX environment) constructs it. Checked with transformers 5.x / tokenizers 0.23.

Usage: DATAMUX_DATA=/work/shared/data python3 tests/reference/make_tokenizer_fixture.py

Files (ids are space-separated and include <s>=0 / </s>=2; texts are escaped, see escape()):
  sst2_dev.txt     one line per row of glue/SST-2/dev.tsv: ids of the "sentence" column
  conll_valid.txt  one line per sentence of conll2003/valid.txt (words, add_prefix_space):
                   ids TAB number of ids of each word
  hard_single.txt  ids TAB text            hand-written hard cases, also invalid UTF-8
  hard_words.txt   ids TAB word_ids TAB word TAB word ...   (word_ids: -1 for specials)
  truncation.txt   max_length TAB ids TAB text [TAB text_b]  (ids unpadded; the rest is <pad>)
"""
import os
import sys

from tokenizers import AddedToken
from transformers import RobertaTokenizerFast

DATA = os.environ.get("DATAMUX_DATA")
if not DATA:
    sys.exit("set DATAMUX_DATA (e.g. /work/shared/data)")
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "tokenizer")
TOK_DIR = os.path.join(DATA, "tokenizers", "roberta-base")
MASK = AddedToken("<mask>", lstrip=True, rstrip=False, normalized=False, special=True)

tok = RobertaTokenizerFast.from_pretrained(TOK_DIR, mask_token=MASK)
tok_words = RobertaTokenizerFast.from_pretrained(TOK_DIR, mask_token=MASK, add_prefix_space=True)


def escape(raw: bytes) -> str:
    """Backslash escapes for \\ TAB LF CR and control bytes; all bytes >= 0x80 too when raw is not
    valid UTF-8 (so the fixture file itself stays valid UTF-8)."""
    try:
        raw.decode("utf-8")
        escape_high = False
    except UnicodeDecodeError:
        escape_high = True
    out = []
    for b in raw:
        if b == 0x5C:
            out.append("\\\\")
        elif b == 0x09:
            out.append("\\t")
        elif b == 0x0A:
            out.append("\\n")
        elif b == 0x0D:
            out.append("\\r")
        elif b < 0x20 or b == 0x7F or (b >= 0x80 and escape_high):
            out.append("\\x%02x" % b)
        else:
            out.append(chr(b))
    s = "".join(out)
    return s.encode("latin-1").decode("utf-8") if not escape_high else s


def ids_text(ids):
    return " ".join(str(i) for i in ids)


def encode(raw: bytes):
    # Invalid UTF-8 is read the way Python reads a file with errors='replace'.
    return tok(raw.decode("utf-8", errors="replace"))["input_ids"]


HARD = [
    "Hello world", "hello  world", " leading space", "trailing space ", "  two leading", "two trailing  ",
    "a   b    c", "tab\tseparated\t\tcols", "line1\nline2\n\nline4\n", "crlf\r\nline", "\t \n mixed \t\n",
    "", " ", "   ", "\n", "end\n\n", "x\n\n\ny", "a\n\n b", "x  \n\n  ", "a \u00a0\u00a0b", "don't", "I'M FINE", "I'm fine, you're sure we'll've it'd", "'s 't 're 've 'm 'll 'd",
    "''s '''", "rock 'n' roll", "O'Neil's", "she said 'hi'", "café naïve résumé Ünïcödé",
    "e\u0301 combining", "😀 👍🏽 👨‍👩‍👧 🇫🇷", "中文字符，日本語のテキスト。한국어", "Русский Ελληνικά עברית العربية हिन्दी",
    "abc123def 4567 3.14159 1,000,000 $100.00 -42", "½ ² ③ Ⅻ ٣٤٥ ๓", "!!!???... --- ***", "https://example.com/a?x=1&y=2",
    "#hashtag @user e-mail@x.org", "Hello <mask>.", "Hello\t\u00a0 <mask>!", "<mask><mask> <mask>x", " <mask>",
    "a<s>b</s> <pad><unk>c", "<s >< mask>", "no\u00a0break\u3000ideographic\u2028sep\u2009thin",
    "zero\u200bwidth\u200djoiner", "a\x00b\x01c\x7f", "supercalifragilisticexpialidocious",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "x" * 3 + " " + "ab" * 400, "The quick brown fox jumps over the lazy dog's back 123 times.",
    "It's a 2-hour movie -- and it feels like 4.", "unseen\U0001F9FFemoji\U0010FFFDprivate",
]
HARD_BYTES = [s.encode("utf-8") for s in HARD] + [
    b"abc\xffdef", b"\xc3(", b"trunc \xe2\x82", b"\xe2\x82x", b"\xed\xa0\x80 surrogate", b"\xf0\x9f\x98",
    b"\xc0\x80 overlong", b"\xf8\x88\x80\x80\x80", b"\x80\x80 x", b"caf\xe9 latin1", b"\xf4\x90\x80\x80 big",
    b"ok \xe2\x82\xac then \xe2 and \xf0\x9f", b"<mask\xff>", b" \xff<mask>",
]

HARD_WORDS = [
    ["Hello", "world"], ["EU", "rejects", "German", "call", "to", "boycott", "British", "lamb", "."],
    ["don't", "I'M", "'s"], ["<mask>"], ["x", "<mask>", "y"], ["a<s>b"], ["", "x", ""], [" "], ["  spaced"],
    ["tab\there"], ["café"], ["😀"], ["1,000", "-", "2"], ["S.", "Korea"], ["\xff"],
]


def write(name, lines):
    path = os.path.join(OUT, name)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for line in lines:
            f.write(line + "\n")
    print("%s: %d lines, %d bytes" % (path, len(lines), os.path.getsize(path)))


def sst2_sentences():
    with open(os.path.join(DATA, "glue", "SST-2", "dev.tsv"), encoding="utf-8") as f:
        rows = f.read().split("\n")
    assert rows[0] == "sentence\tlabel", rows[0]
    return [r.split("\t")[0] for r in rows[1:] if r]


def conll_sentences():
    with open(os.path.join(DATA, "conll2003", "valid.txt"), encoding="utf-8") as f:
        blocks = f.read().split("\n\n")
    return [[line.split(" ")[0] for line in b.split("\n") if line] for b in blocks if b.strip()]


def word_counts(enc, n_words):
    counts = [0] * n_words
    for w in enc.word_ids():
        if w is not None:
            counts[w] += 1
    return counts


def main():
    os.makedirs(OUT, exist_ok=True)
    sst = sst2_sentences()
    assert len(sst) == 872, len(sst)
    write("sst2_dev.txt", [ids_text(tok(s)["input_ids"]) for s in sst])

    conll = conll_sentences()
    assert len(conll) == 3250, len(conll)
    lines = []
    for words in conll:
        enc = tok_words(words, is_split_into_words=True)
        lines.append(ids_text(enc["input_ids"]) + "\t" + ids_text(word_counts(enc, len(words))))
    write("conll_valid.txt", lines)

    write("hard_single.txt", [ids_text(encode(b)) + "\t" + escape(b) for b in HARD_BYTES])

    lines = []
    for words in HARD_WORDS:
        enc = tok_words(words, is_split_into_words=True)
        wid = [-1 if w is None else w for w in enc.word_ids()]
        lines.append("\t".join([ids_text(enc["input_ids"]), ids_text(wid)] + [escape(w.encode()) for w in words]))
    write("hard_words.txt", lines)

    lines = []
    for i, s in enumerate(sst[:60]):  # single sentences cut at many lengths, including 2
        m = 2 + i % 17
        ids = tok(s, truncation=True, max_length=m)["input_ids"]
        lines.append("%d\t%s\t%s" % (m, ids_text(ids), escape(s.encode())))
    for i in range(0, 120, 2):  # pairs of SST-2 sentences, odd and even room, both sides cut or one
        a, b = sst[i], sst[i + 1] + " " + sst[i + 2] if i % 4 else sst[i + 1]
        m = 4 + (i * 7) % 41
        ids = tok(a, b, truncation="longest_first", max_length=m)["input_ids"]
        lines.append("%d\t%s\t%s\t%s" % (m, ids_text(ids), escape(a.encode()), escape(b.encode())))
    a, b = "a b c d e f g", "h i j k l m n o p"
    for m in (4, 5, 6, 9, 12, 13, 14, 20, 128):
        for x, y in ((a, b), (b, a), (a, a)):
            ids = tok(x, y, truncation="longest_first", max_length=m)["input_ids"]
            lines.append("%d\t%s\t%s\t%s" % (m, ids_text(ids), x, y))
    write("truncation.txt", lines)


if __name__ == "__main__":
    main()
