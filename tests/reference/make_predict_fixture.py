"""A fixture for `datamux predict --format jsonl`: a tiny DataMUX sentence classifier (index demux,
N=2, the original's quirks: double embedding pass, no attention mask, prefix ids), eight input
lines, and the logits the PyTorch reference model gives for them as predict runs it (lines grouped
N=2 at a time in input order, evaluation mode).

Writes tests/fixtures/predict/:
  model.safetensors   the parameters under the original names (datamux_reference.py's model),
                      the word embeddings in F16 (50,265 x 8: the full RoBERTa vocabulary, which
                      the prefix ids need), no retrieval head (predict does not use it)
  experiment.yaml     the model's configuration for `datamux predict`
  input.txt           the lines
  expect.jsonl        per line {"label", "logits"}: argmax and logits in float64

The ids are made by Hugging Face's `tokenizers` (roberta-base's vocab.json and merges.txt from
$DATAMUX_DATA, RoBERTa post-processing), not by the C tokenizer, so the test checks tokenizer and
model together.

Run from the repository root:  DATAMUX_DATA=../shared/data python3 tests/reference/make_predict_fixture.py
Needs torch, safetensors, tokenizers. Output ~0.8 MB.
"""
import json
import os
import sys

import torch
from tokenizers import ByteLevelBPETokenizer
from tokenizers.processors import RobertaProcessing

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import datamux_reference as ref  # noqa: E402

OUT = os.path.join(HERE, "..", "fixtures", "predict")
LINES = [
    "a gorgeous, witty, seductive movie.",
    "the story is flat and the acting is worse.",
    "it's a charming and often affecting journey.",
    "unflinchingly bleak and desperate",
    "one of the greatest family-oriented films ever made.",
    "the plot is nothing but boilerplate cliches from start to finish.",
    "an utterly delightful comedy",
    "it never rises above mediocrity.",
]
LABELS = ["negative", "positive"]  # SST-2, Hugging Face order
WORDS = "roberta.embeddings.word_embeddings.weight"
QK_SCALE = 6.0


def roberta_tokenizer():
    d = os.path.join(os.environ.get("DATAMUX_DATA", "../shared/data"), "tokenizers", "roberta-base")
    tok = ByteLevelBPETokenizer(os.path.join(d, "vocab.json"), os.path.join(d, "merges.txt"))
    tok.post_processor = RobertaProcessing(("</s>", 2), ("<s>", 0))
    return tok


def main():
    torch.set_num_threads(1)
    V, L = 50265, 32
    # d=8 keeps the file under 1 MB (the 50,265 word embeddings are most of it)
    c = ref.Cfg(V=V, d=8, layers=2, heads=2, inter=16, P=40, N=2, B=len(LINES) // 2, L=L,
                muxing="gaussian_hadamard", demuxing="index", task="sentence", C=2,
                seed=int(os.environ.get("FIXTURE_SEED", "39")))
    tok = roberta_tokenizer()
    raw = torch.full((len(LINES), L), ref.PAD, dtype=torch.long)
    for r, line in enumerate(LINES):
        ids = tok.encode(line).ids
        assert len(ids) <= L, f"line {r + 1}: {len(ids)} tokens, more than {L}"
        raw[r, : len(ids)] = torch.tensor(ids)
    model, _, _, _, _, _ = ref.build(c)
    model.eval()
    with torch.no_grad():
        # the model's float32 values are what the file holds; the reference computes in float64
        for n, p in model.named_parameters():
            # Sharper attention: at the init's scale it is nearly uniform over 32 mostly-padding
            # positions, so a slot's logits moved by ~1e-3 from line to line and the labels only
            # alternated with the slot. With query and key weights x6 a slot's logit margins span
            # 0.023-0.025 (over 200x the test's 1e-4) and the labels depend on the words (seed 39:
            # - - + - + - + -; the smallest margin is 0.0034).
            if n.endswith(("query.weight", "key.weight")):
                p.mul_(QK_SCALE)
            p.copy_((p.half() if n == WORDS else p.float()).double())
        ids = model.prepare_ids(raw)
        emb = model.roberta.embeddings(input_ids=ids)
        n, Lp, d = emb.shape
        E = emb.view(c.B, c.N, Lp, d)
        x = (E * model.instance_embedding.to(E.dtype).unsqueeze(0).unsqueeze(2)).mean(dim=1)
        H = model.roberta(inputs_embeds=x, attention_mask=None)
        logits = model.demultiplexer(H)  # (B*N, C), rows in input order
    params = {n: (p.detach().half() if n == WORDS else p.detach().float()).contiguous()
              for n, p in model.named_parameters(remove_duplicate=False) if not n.startswith("retrieval_head.")}
    ref.save_deterministic(os.path.join(OUT, "model.safetensors"), params, {"format": "pt"})
    with open(os.path.join(OUT, "input.txt"), "w", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in LINES))
    with open(os.path.join(OUT, "expect.jsonl"), "w", encoding="utf-8") as f:
        for r in range(len(LINES)):
            lg = [float(v) for v in logits[r]]
            f.write(json.dumps({"label": LABELS[int(torch.argmax(logits[r]))], "logits": lg}) + "\n")
    with open(os.path.join(OUT, "experiment.yaml"), "w", encoding="utf-8") as f:
        f.write(
            "# The model of tests/fixtures/predict/model.safetensors (tests/reference/make_predict_fixture.py).\n"
            "# Tokenizer: roberta-base from the data folder (DATAMUX_DATA), the default.\n"
            "name: predict_fixture\nsetting: finetuning\n"
            f"model:\n  vocab_size: {V}\n  hidden_size: {c.d}\n  num_layers: {c.layers}\n  num_heads: {c.heads}\n"
            f"  intermediate_size: {c.inter}\n  max_position_embeddings: {c.P}\n"
            f"multiplexing:\n  num_instances: {c.N}\n  muxing: {c.muxing}\n  demuxing: {c.demuxing}\n"
            f"task:\n  name: sst2\n  max_length: {L}\n"
            f"training:\n  batch_size: {c.B}\n")
    for fn in sorted(os.listdir(OUT)):
        print(fn)
    print("labels:", [LABELS[int(torch.argmax(logits[r]))] for r in range(len(LINES))])


if __name__ == "__main__":
    main()
