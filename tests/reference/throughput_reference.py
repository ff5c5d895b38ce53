#!/usr/bin/env python3
"""Inference throughput versus N of the PyTorch reference model, timed the way `datamux bench` does.

  pip install torch safetensors
  python3 tests/reference/throughput_reference.py [--threads 2] [-N 1,2,5,10,20,40] [--batches 50]

The models are datamux_reference.py's (spec §1): the same trunk, embedding pass 1 -> mux -> pass 2,
index (or mlp) demultiplexer; eval mode under torch.no_grad(), no retrieval head (the paper's
throughput setting), base_bs(N)*N instances per batch (32 / 24 / 20 / 16 groups), synthetic rows of
SST-2-like lengths. As in `datamux bench`, warm-up batches are excluded, each row's speedup is taken
against a plain RoBERTa model (the baseline, N=1) timed alongside it in alternate batches, and the
model sizes default to experiments/models/tiny.yaml at max_length 48. Prints a table and writes CSV
when --out is given. CI never runs this.
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import datamux_reference as ref  # noqa: E402


def base_bs(n):
    return 32 if n <= 1 else 24 if n < 20 else 20 if n < 40 else 16


def make_rows(rows, L, gen):
    """<s> tokens </s> then pads; lengths 8..L, as short sentences give."""
    ids = torch.full((rows, L), ref.PAD, dtype=torch.long)
    for r in range(rows):
        n = int(torch.randint(8, L + 1, (1,), generator=gen))
        ids[r, 0] = ref.BOS
        ids[r, 1 : n - 1] = torch.randint(3, 50000, (n - 2,), generator=gen)
        ids[r, n - 1] = ref.EOS
    return ids


class Runner:
    def __init__(self, c, gen):
        self.c = c
        self.model = (ref.BaselineModel(c, gen) if c.baseline else ref.MuxedModel(c, gen)).eval()
        self.ids = self.model.prepare_ids(make_rows(c.B * c.N, c.L, gen))
        self.times = []

    @torch.no_grad()
    def batch(self):
        c, m = self.c, self.model
        t0 = time.perf_counter()
        if c.baseline:
            mask = self.ids.ne(ref.PAD).long()
            m.classifier(m.roberta(input_ids=self.ids, attention_mask=mask))
        else:  # MuxedModel.forward without the retrieval head and the losses
            emb = m.roberta.embeddings(input_ids=self.ids)
            n, Lp, d = emb.shape
            E = emb.view(c.B, c.N, Lp, d)
            x = (E * m.instance_embedding.unsqueeze(0).unsqueeze(2)).mean(dim=1)
            H = m.roberta(inputs_embeds=x, attention_mask=None)
            m.demultiplexer(H)
        return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("-N", default="1,2,5,10,20,40")
    ap.add_argument("--batches", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--max-seconds", type=float, default=0, help="cap per row (0 = none)")
    ap.add_argument("--demuxing", default="index", choices=["index", "mlp"])
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--inter", type=int, default=512)
    ap.add_argument("--L", type=int, default=48)
    ap.add_argument("--out", help="CSV path")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    gen = torch.Generator().manual_seed(0)
    shape = dict(V=50265, d=a.d, layers=a.layers, heads=a.heads, inter=a.inter, P=514, L=a.L,
                 demuxing=a.demuxing, task="sentence", C=2)

    def cfg(n, baseline=False):
        return ref.Cfg(N=n, B=base_bs(n), setting="baseline" if baseline else "finetuning", **shape)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); d={a.d}, {a.layers} layers, "
          f"{a.heads} heads, FFN {a.inter}, L={a.L}, {a.demuxing} demux; {a.warmup} warm-up, {a.batches} timed "
          "batches per row, the vanilla model alongside every row")
    van = Runner(cfg(1, baseline=True), gen)
    for _ in range(a.warmup):
        van.batch()
    for _ in range(a.batches):
        van.times.append(van.batch())
    van_ips = len(van.times) * van.c.B / sum(van.times)
    rows = [("vanilla", 1, van.c.Lp, van.c.B, van_ips, None, 1.0, 1e3 * sum(van.times) / len(van.times))]
    print(f"vanilla: {van_ips:.1f} instances/s, {rows[0][-1]:.2f} ms/batch")
    for n in [int(x) for x in a.N.split(",")]:
        r, alongside = Runner(cfg(n), gen), Runner(cfg(1, baseline=True), gen)
        for _ in range(a.warmup):
            r.batch()
            alongside.batch()
        for i in range(a.batches):
            if i % 2:
                alongside.times.append(alongside.batch())
            r.times.append(r.batch())
            if i % 2 == 0:
                alongside.times.append(alongside.batch())
            if a.max_seconds and sum(r.times) >= a.max_seconds:
                break
        inst = r.c.B * r.c.N
        ips = len(r.times) * inst / sum(r.times)
        ref_ips = len(alongside.times) * alongside.c.B / sum(alongside.times)
        ms = 1e3 * sum(r.times) / len(r.times)
        rows.append((f"N={n}", n, r.c.Lp, inst, ips, ref_ips, ips / ref_ips, ms))
        print(f"N={n}: {inst} instances/batch, T={r.c.Lp}: {ips:.1f} instances/s ({ms:.2f} ms/batch); vanilla "
              f"alongside {ref_ips:.1f}: {ips / ref_ips:.2f}x")
    print(f"\n{'':8} {'N':>4} {'T':>4} {'inst/batch':>10} {'instances/s':>12} {'ref alongside':>14} {'speedup':>8} "
          f"{'ms/batch':>9}")
    for label, n, T, inst, ips, rips, sp, ms in rows:
        print(f"{label:8} {n:4d} {T:4d} {inst:10d} {ips:12.1f} {('-' if rips is None else f'{rips:.1f}'):>14} "
              f"{sp:7.2f}x {ms:9.2f}")
    if a.out:
        with open(a.out + ".tmp", "w") as f:
            f.write("label,N,seq_len,instances_per_batch,instances_per_s,reference_instances_per_s_alongside,speedup,"
                    "ms_per_batch\n")
            for label, n, T, inst, ips, rips, sp, ms in rows:
                f.write(f"{label},{n},{T},{inst},{ips:.2f},{'' if rips is None else f'{rips:.2f}'},{sp:.3f},{ms:.3f}\n")
        os.replace(a.out + ".tmp", a.out)
        print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
