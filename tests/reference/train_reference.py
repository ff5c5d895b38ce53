"""Trains the PyTorch reference DataMUX model (datamux_reference.py) on SST-2 with the same
settings as a datamux run, to compare learning curves and CPU speed with the C/OpenCL trainer.
Never run by CI.

  python3 tests/reference/train_reference.py --N 2 --steps 200 --max-length 48 --lr 1e-3
  python3 tests/reference/train_reference.py --baseline --steps 200

Initialisation follows Hugging Face (normal(0, 0.02) weights, zero biases, unit LayerNorms, zero
padding rows); dropout is off in the reference modules. Prints dev accuracy and seconds per step.
"""
import argparse
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import RobertaTokenizerFast

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import datamux_reference as R  # noqa: E402

DATA = os.environ.get("DATAMUX_DATA", os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data"))


def load_sst2(split):
    rows = []
    with open(os.path.join(DATA, "glue", "SST-2", f"{split}.tsv"), encoding="utf-8") as f:
        next(f)
        for line in f:
            s, y = line.rstrip("\n").split("\t")
            rows.append((s, int(y)))
    return rows


def hf_init(model, std=0.02):
    for mod in model.modules():
        if isinstance(mod, nn.Linear):
            mod.weight.data.normal_(0, std)
            if mod.bias is not None:
                mod.bias.data.zero_()
        elif isinstance(mod, nn.Embedding):
            mod.weight.data.normal_(0, std)
            if mod.padding_idx is not None:
                mod.weight.data[mod.padding_idx].zero_()
        elif isinstance(mod, nn.LayerNorm):
            mod.weight.data.fill_(1.0)
            mod.bias.data.zero_()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--N", type=int, default=2)
    ap.add_argument("--baseline", action="store_true")
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--inter", type=int, default=512)
    ap.add_argument("--max-length", type=int, default=48)
    ap.add_argument("--batch", type=int, default=0, help="groups per step; 0 = by N")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--task-coeff", type=float, default=1.0)
    ap.add_argument("--retrieval-coeff", type=float, default=0.0)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--bench", type=int, default=0, metavar="K",
                    help="time K steps (after 3 untimed) on batches tokenized beforehand, print the median "
                         "s/step and exit: the step `datamux bench --train` times, without the tokenizer")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    N = 1 if a.baseline else a.N
    B = a.batch or (32 if N == 1 else 24 if N < 20 else 20 if N < 40 else 16)
    c = R.Cfg(V=50265, d=a.d, layers=a.layers, heads=a.heads, inter=a.inter, P=514, N=N, B=B, L=a.max_length,
              C=2, setting="baseline" if a.baseline else "finetuning", task_coeff=a.task_coeff,
              retrieval_coeff=a.retrieval_coeff, lr=a.lr)
    gen = torch.Generator().manual_seed(a.seed)
    model = R.BaselineModel(c, gen) if a.baseline else R.MuxedModel(c, gen)
    hf_init(model)
    tok = RobertaTokenizerFast.from_pretrained(os.path.join(DATA, "tokenizers", "roberta-base"))
    train, dev = load_sst2("train"), load_sst2("dev")

    def encode(rows):
        enc = tok([s for s, _ in rows], max_length=a.max_length, truncation=True, padding="max_length")
        return torch.tensor(enc["input_ids"]), torch.tensor([y for _, y in rows])

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: s / a.warmup if s < a.warmup else max(0.0, (a.steps - s) / max(1, a.steps - a.warmup)))
    per_step = B * N
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(a.seed))

    def run(ids, labels, k=None, targets=None):
        x = ids if a.baseline else model.prepare_ids(ids)
        if k is None:
            Lp = x.shape[1]
            k = torch.zeros(B, Lp, dtype=torch.long)
            targets = torch.full((B, Lp), -100, dtype=torch.long)
        return model(x, labels, k, targets)

    def evaluate():
        model.eval()
        correct = total = 0
        with torch.no_grad():
            for s in range(0, len(dev) - per_step + 1, per_step):
                ids, y = encode(dev[s : s + per_step])
                out = run(ids, y)
                correct += (out["logits"].argmax(-1) == y).sum().item()
                total += len(y)
        model.train()
        return correct / total

    if a.bench:
        batches = []
        for step in range(1, a.bench + 4):
            s = ((step - 1) * per_step) % (len(train) - per_step)
            batches.append(encode([train[i] for i in order[s : s + per_step].tolist()]))
        def task_loss(ids, y):
            """MuxedModel.forward without the retrieval head, which the reference always computes (a
            (B, L', V) product) and `datamux` skips at retrieval coefficient 0."""
            if a.baseline:
                return run(ids, y)["task_loss"]
            x = model.prepare_ids(ids)
            emb = model.roberta.embeddings(input_ids=x)
            E = emb.view(B, N, emb.shape[1], emb.shape[2])
            h = model.roberta(inputs_embeds=(E * model.instance_embedding.unsqueeze(0).unsqueeze(2)).mean(dim=1),
                              attention_mask=None)
            return torch.nn.functional.cross_entropy(model.demultiplexer(h).reshape(-1, c.C), y.reshape(-1))

        times = []
        for step, (ids, y) in enumerate(batches):
            t = time.perf_counter()
            loss = task_loss(ids, y)
            opt.zero_grad()
            (a.task_coeff * loss).backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            if step >= 3:
                times.append(time.perf_counter() - t)
        times.sort()
        print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads: {len(times)} steps of "
              f"{B} groups x N={N}, L={a.max_length}: median {times[len(times) // 2]:.4f} s/step, "
              f"mean {sum(times) / len(times):.4f}")
        return

    t0 = time.time()
    for step in range(1, a.steps + 1):
        s = ((step - 1) * per_step) % (len(train) - per_step)
        ids, y = encode([train[i] for i in order[s : s + per_step].tolist()])
        k = targets = None
        if a.retrieval_coeff > 0 and not a.baseline:
            x = model.prepare_ids(ids)
            Lp = x.shape[1]
            k = torch.randint(0, N, (B, Lp))
            targets = torch.gather(x.view(B, N, Lp), 1, k.unsqueeze(1)).squeeze(1)
            targets[:, : N + 1] = -100
            targets[targets == R.PAD] = -100
        out = run(ids, y, k, targets)
        opt.zero_grad()
        loss = out["loss"] if k is not None else a.task_coeff * out["task_loss"]  # no retrieval: 0 * nan
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        if step % 20 == 0:
            print(f"step {step} loss {loss.item():.4f} task {out['task_loss'].item():.4f} "
                  f"{(time.time() - t0) / step:.3f} s/step", flush=True)
        if step % a.eval_every == 0 or step == a.steps:
            print(f"eval step {step}: accuracy {evaluate():.4f}", flush=True)


if __name__ == "__main__":
    main()
