/* RoBERTa / GPT-2 byte-level BPE tokenizer, id for id the same as Hugging Face's roberta-base fast
 * tokenizer (tokenizers' ByteLevel pre-tokenizer + BPE + RobertaProcessing).
 *
 * What it does, in HF's order:
 *  1. Special tokens written in the text (<s> <pad> </s> <unk> <mask>) are cut out as whole tokens
 *     before anything else. <mask> also swallows the whitespace to its left (HF's AddedToken
 *     lstrip=True, as transformers sets it for RoBERTa's mask token); the others strip nothing.
 *  2. Each remaining segment is split with the GPT-2 regex
 *       's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *     over code points (\p{L}, \p{N} from Unicode general categories, \s = White_Space; tables in
 *     data/unicode_tables.c, Unicode 14: code points first assigned later are treated as
 *     punctuation, where HF's newer Oniguruma may call them letters or numbers).
 *     With add_prefix_space, a segment that does not start with ' ' gets one prepended.
 *  3. Each piece's bytes are BPE-merged by merges.txt rank (lowest first, leftmost on ties).
 *
 * Invalid UTF-8: each maximal ill-formed subsequence (Unicode's "maximal subpart" rule) is replaced
 * by U+FFFD before step 1, exactly as Python's bytes.decode('utf-8', errors='replace') does. So a
 * file holding stray Latin-1 bytes tokenizes as HF does after Python reads it with
 * errors='replace'. Nothing is dropped and nothing crashes; NUL bytes are ordinary characters.
 *
 * A dmx_tokenizer is not thread-safe: it keeps a piece -> ids cache and scratch buffers. Use one
 * per thread. */
#ifndef DMX_TOKENIZER_H
#define DMX_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "host/base/common.h"

enum {
  DMX_TOKEN_BOS = 0,      /* <s> */
  DMX_TOKEN_PAD = 1,      /* <pad> */
  DMX_TOKEN_EOS = 2,      /* </s> */
  DMX_TOKEN_UNK = 3,      /* <unk> */
  DMX_TOKEN_MASK = 50264, /* <mask> in roberta-base; loading checks all five ids */
};

typedef struct dmx_tokenizer dmx_tokenizer;

/* Loads DIR/vocab.json and DIR/merges.txt. The vocabulary must hold the five RoBERTa special
 * tokens at RoBERTa's ids (DMX_TOKEN_*) and all 256 single-byte tokens. NULL with err naming file:line and the reason on failure. */
dmx_tokenizer *dmx_tokenizer_load(const char *dir, dmx_error *err);
void dmx_tokenizer_free(dmx_tokenizer *tok);

/* Finds the tokenizer folder: `arg` itself when it holds vocab.json; otherwise, for a relative
 * `arg`, $DATAMUX_DATA/arg; with arg NULL, $DATAMUX_DATA/tokenizers/roberta-base.
 * Writes the folder into out (cap bytes). 0, or -1 with err naming every path tried. */
int dmx_tokenizer_resolve_dir(const char *arg, char *out, size_t cap, dmx_error *err);

int dmx_tokenizer_vocab_size(const dmx_tokenizer *tok);
/* Id of the vocabulary entry with these raw bytes (" the", not the byte-level spelling "\u0120the");
 * -1 when absent. */
int32_t dmx_tokenizer_token_id(const dmx_tokenizer *tok, const char *bytes, size_t len);
/* The raw bytes of token `id` (not NUL-terminated) and their count; NULL for an unknown id. */
const char *dmx_tokenizer_token_bytes(const dmx_tokenizer *tok, int32_t id, size_t *len);

/* Tokenizes text[0..len) without special tokens around it. Writes at most cap ids to out and
 * returns how many there are in all (like snprintf: a result above cap means out was too small).
 * -1 with err only when len is absurd (over 1 GiB). */
int dmx_tokenize(dmx_tokenizer *tok, const char *text, size_t len, int add_prefix_space, int32_t *out, int cap,
                 dmx_error *err);

/* Word-split input (NER): every word is tokenized on its own as if preceded by a space (HF
 * is_split_into_words=True with add_prefix_space=True); an empty word gives no ids. word_of[k]
 * (when non-NULL) is the index of the word that id k came from; a word's first id is where
 * word_of changes. lens may be NULL (words are then NUL-terminated). Returns the total count as
 * dmx_tokenize does. */
int dmx_tokenize_words(dmx_tokenizer *tok, const char *const *words, const size_t *lens, int n_words, int32_t *out,
                       int32_t *word_of, int cap, dmx_error *err);

/* Model inputs with specials, as HF roberta-base tokenizer(text, truncation=True,
 * padding='max_length', max_length=max_length):
 *   single  <s> A </s>           pair  <s> A </s></s> B </s>
 * max_length > 0: A (and B) are truncated to fit, then <pad>=1 fills out[] up to max_length.
 * Pairs follow HF 'longest_first' (tokenizers' truncate_encodings): only the longer side is cut
 * when that suffices, else both get half the room, the longer (B on a tie) the odd token;
 * cap must be >= max_length, and max_length >= 2 (single) or 4 (pair). The return value is the
 * unpadded length (the attention mask is 1 on out[0..ret)).
 * max_length <= 0: no truncation and no padding; returns the full length, writing at most cap.
 * -1 with err on a bad max_length/cap. */
int dmx_encode_single(dmx_tokenizer *tok, const char *a, size_t a_len, int max_length, int32_t *out, int cap,
                      dmx_error *err);
int dmx_encode_pair(dmx_tokenizer *tok, const char *a, size_t a_len, const char *b, size_t b_len, int max_length,
                    int32_t *out, int cap, dmx_error *err);
/* Word-split single sequence with specials; word_of gets -1 for <s>, </s> and pads. Same length
 * rules as dmx_encode_single. */
int dmx_encode_words(dmx_tokenizer *tok, const char *const *words, const size_t *lens, int n_words, int max_length,
                     int32_t *out, int32_t *word_of, int cap, dmx_error *err);

#endif
