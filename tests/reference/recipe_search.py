"""Recipe search for the CPU quickstart (README, "What the quickstart shows"): trains the PyTorch
reference DataMUX model on SST-2 from scratch with the task loss only, with or without the padding
mask on the multiplexed sequence (the original has none), and prints dev accuracy every
max(100, steps/6) steps. Never run by CI.

  python3 tests/reference/recipe_search.py --N 1 --mask 0     # stays at the majority class
  python3 tests/reference/recipe_search.py --N 1 --mask 1     # ~77% after 400 steps
  python3 tests/reference/recipe_search.py --N 2 --mask 1 --L 32 --lr 2e-3 --seed 43

--second 0 skips the second embedding pass; --threads 1 leaves the other core to the C trainer.
"""
import argparse, math, os, sys, time
import torch, torch.nn as nn, torch.nn.functional as F
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import datamux_reference as R
import train_reference as T
from transformers import RobertaTokenizerFast
ap = argparse.ArgumentParser()
ap.add_argument("--N", type=int, default=2); ap.add_argument("--mask", type=int, default=0)
ap.add_argument("--L", type=int, default=48); ap.add_argument("--lr", type=float, default=1e-3)
ap.add_argument("--steps", type=int, default=400); ap.add_argument("--warmup", type=int, default=30)
ap.add_argument("--muxing", default="gaussian_hadamard"); ap.add_argument("--demuxing", default="index")
ap.add_argument("--norm", type=float, default=1.0); ap.add_argument("--second", type=int, default=1)
ap.add_argument("--batch", type=int, default=0); ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--seed", type=int, default=42); ap.add_argument("--d", type=int, default=128)
ap.add_argument("--learn", type=int, default=0)
a = ap.parse_args()
torch.set_num_threads(a.threads); torch.manual_seed(a.seed)
N = a.N; B = a.batch or (32 if N == 1 else 24)
c = R.Cfg(V=50265, d=a.d, layers=2, heads=4, inter=4*a.d, P=514, N=N, B=B, L=a.L, C=2, setting="finetuning",
          task_coeff=1.0, retrieval_coeff=0.0, lr=a.lr, muxing=a.muxing, demuxing=a.demuxing, gh_norm=a.norm,
          learn_muxing=a.learn)
gen = torch.Generator().manual_seed(a.seed)
model = R.MuxedModel(c, gen); T.hf_init(model)
def fwd(ids, labels):
    emb = model.roberta.embeddings(input_ids=ids); n, Lp, d = emb.shape
    E = emb.view(B, N, Lp, d); W = model.instance_embedding
    if c.muxing == "random_ortho":
        x = torch.matmul(W, E.permute(0,1,3,2)).permute(0,1,3,2).sum(1) / math.sqrt(N)
    else:
        x = (E * W.unsqueeze(0).unsqueeze(2)).mean(1)
    m = ids.view(B, N, Lp).ne(R.PAD).any(1).long() if a.mask else None
    if a.second:
        H = model.roberta(inputs_embeds=x, attention_mask=m)
    else:
        ext = None if m is None else (1.0 - m[:, None, None, :].float()) * -10000.0
        H = model.roberta.encoder(x, ext)
    logits = model.demultiplexer(H)
    return logits, F.cross_entropy(logits, labels)
tok = RobertaTokenizerFast.from_pretrained(os.path.join(T.DATA, "tokenizers", "roberta-base"))
train, dev = T.load_sst2("train"), T.load_sst2("dev")
def encode(rows):
    enc = tok([s for s, _ in rows], max_length=a.L, truncation=True, padding="max_length")
    return torch.tensor(enc["input_ids"]), torch.tensor([y for _, y in rows])
params = [p for p in model.parameters() if p.requires_grad]
opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=0.0)
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: s / a.warmup if s < a.warmup else max(0.0, (a.steps - s) / max(1, a.steps - a.warmup)))
per = B * N
order = torch.randperm(len(train), generator=torch.Generator().manual_seed(a.seed))
def evaluate():
    model.eval(); cor = tot = 0
    with torch.no_grad():
        for s in range(0, len(dev) - per + 1, per):
            ids, y = encode(dev[s:s+per]); lg, _ = fwd(model.prepare_ids(ids), y)
            cor += (lg.argmax(-1) == y).sum().item(); tot += len(y)
    model.train(); return cor / tot
EV = max(100, a.steps // 6)
t0 = time.time(); hist = []
for step in range(1, a.steps + 1):
    s = ((step - 1) * per) % (len(train) - per)
    ids, y = encode([train[i] for i in order[s:s+per].tolist()])
    _, loss = fwd(model.prepare_ids(ids), y)
    opt.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_(params, 1.0); opt.step(); sched.step()
    if step % EV == 0: hist.append(f"{step}:{evaluate():.3f}")
print(vars(a), " ".join(hist), f"{(time.time()-t0)/a.steps:.3f}s/step", flush=True)
