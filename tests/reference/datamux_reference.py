#!/usr/bin/env python3
"""Self-contained PyTorch reference of the DataMUX models (docs/datamux-spec.md) and oracle fixtures.

  pip install torch safetensors
  python3 tests/reference/datamux_reference.py            # writes tests/fixtures/oracle/*.safetensors
  python3 tests/reference/datamux_reference.py --check    # also runs torch.autograd.gradcheck (float64)

CI never runs this; the fixtures it writes are committed. See tests/reference/README.md for the file
format. Nothing here imports transformers: the modules are written out with the ORIGINAL parameter
names (spec §6.3) so the state dict keys match the released checkpoints.

What is modelled (spec section in brackets):
  * RoBERTa embeddings, pad-aware position ids starting at 2, padding_idx=1 rows for word and
    position tables (zero, never updated), token type 0, LayerNorm eps 1e-5 [1.5].
  * index prefix (N+1 ids) or mlp token-0 override [1.4]; special ids generalised to vocab size V:
    filler V-265, CLS slot V-342, slot-i diagonal V-2-i (50000, 49923, 50263-i at V=50265).
  * mux: gaussian_hadamard and binary_hadamard (mean over N), random_ortho (sum / sqrt N) [1.6].
  * embedding pass 2 on the muxed tensor: + type[0] + pos[j+2] (sequential), LN again [1.7].
  * post-LN encoder, exact-erf GELU, NO attention mask for the muxed models [1.8].
  * demultiplexers (index/mlp x sentence/token) [1.9] and retrieval heads (index/mlp) [1.10].
  * loss = task_coeff * CE_task + retrieval_coeff * CE_retrieval [1.10].
  * N=1 baseline: RobertaForSequenceClassification from scratch with the padding attention mask
    (HF extended mask: (1 - mask) * -10000 added to the scores) and RoBERTa's classification head
    on token 0 (dense d->d, tanh, out_proj), single embedding pass [1.12].
  * HF 4.4.2 AdamW (correct_bias=True, weight decay 0) after torch clip_grad_norm_(params, 1.0),
    constant lr [2]. Dropout is off (p=0) everywhere.

Expectations are computed in float64 from the float32 parameters stored in the fixture.
"""
import argparse
import json
import math
import os
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file

PAD, BOS, EOS = 1, 0, 2
LN_EPS = 1e-5
HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(HERE, "..", "fixtures", "oracle")


def gelu(x):
    return F.gelu(x)  # exact erf form (approximate="none")


def filler_id(V):
    return V - 265


def cls_id(V):
    return V - 342


def diag_id(V, i):
    return V - 2 - i


class Cfg:
    def __init__(self, **kw):
        self.V = 512
        self.d = 32
        self.layers = 2
        self.heads = 2
        self.inter = 64
        self.P = 64
        self.N = 1
        self.B = 2
        self.L = 8
        self.muxing = "gaussian_hadamard"
        self.demuxing = "index"
        self.task = "sentence"
        self.C = 2
        self.setting = "finetuning"
        self.task_coeff = 0.9
        self.retrieval_coeff = 0.1
        self.lr = 1e-3
        self.max_grad_norm = 1.0
        self.steps = 10
        self.learn_muxing = 0
        self.gh_norm = 1.0
        self.seed = 0
        self.__dict__.update(kw)

    @property
    def baseline(self):
        return self.setting == "baseline"

    @property
    def special_end(self):
        """special_tokens_end_position of the original code."""
        if self.demuxing == "index":
            return self.N + 1
        return 1 if self.task == "sentence" else 0  # mlp: 1 for sentence, 0 (quirk) for token

    @property
    def Lp(self):
        return self.L + self.N + 1 if (not self.baseline and self.demuxing == "index") else self.L


# ---------------------------------------------------------------------------------------------
# RoBERTa trunk


class RobertaEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.word_embeddings = nn.Embedding(c.V, c.d, padding_idx=PAD)
        self.position_embeddings = nn.Embedding(c.P, c.d, padding_idx=PAD)
        self.token_type_embeddings = nn.Embedding(1, c.d)
        self.LayerNorm = nn.LayerNorm(c.d, eps=LN_EPS)

    def forward(self, input_ids=None, inputs_embeds=None):
        if input_ids is not None:
            # create_position_ids_from_input_ids: pads get padding_idx (1), tokens 2, 3, ...
            m = input_ids.ne(PAD).long()
            pos = torch.cumsum(m, dim=1) * m + PAD
            x = self.word_embeddings(input_ids)
        else:
            # create_position_ids_from_inputs_embeds: sequential 2 .. L+1 (cannot see pads)
            n, L, _ = inputs_embeds.shape
            pos = torch.arange(PAD + 1, L + PAD + 1).unsqueeze(0).expand(n, L)
            x = inputs_embeds
        assert int(pos.max()) < self.position_embeddings.num_embeddings
        tt = torch.zeros_like(pos)
        x = x + self.token_type_embeddings(tt)
        x = x + self.position_embeddings(pos)
        return self.LayerNorm(x)  # dropout p=0


class RobertaSelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.h = c.heads
        self.query = nn.Linear(c.d, c.d)
        self.key = nn.Linear(c.d, c.d)
        self.value = nn.Linear(c.d, c.d)

    def forward(self, x, ext_mask):
        n, L, d = x.shape
        hd = d // self.h

        def split(t):
            return t.view(n, L, self.h, hd).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(hd)
        if ext_mask is not None:
            scores = scores + ext_mask
        p = torch.softmax(scores, dim=-1)
        ctx = torch.matmul(p, v).transpose(1, 2).reshape(n, L, d)
        return ctx


# RobertaSelfOutput and RobertaOutput (and the other small modules here) look alike on purpose: the module
# tree spells Hugging Face's parameter names (attention.output.dense, output.dense, ...), which the
# fixtures and the C loader match by name.
class RobertaSelfOutput(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c.d, c.d)
        self.LayerNorm = nn.LayerNorm(c.d, eps=LN_EPS)

    def forward(self, h, inp):
        return self.LayerNorm(self.dense(h) + inp)


class RobertaAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self = RobertaSelfAttention(c)
        self.output = RobertaSelfOutput(c)

    def forward(self, x, ext_mask):
        return self.output(self.self(x, ext_mask), x)


class RobertaIntermediate(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c.d, c.inter)

    def forward(self, x):
        return gelu(self.dense(x))


class RobertaOutput(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c.inter, c.d)
        self.LayerNorm = nn.LayerNorm(c.d, eps=LN_EPS)

    def forward(self, h, inp):
        return self.LayerNorm(self.dense(h) + inp)


class RobertaLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.attention = RobertaAttention(c)
        self.intermediate = RobertaIntermediate(c)
        self.output = RobertaOutput(c)

    def forward(self, x, ext_mask):
        a = self.attention(x, ext_mask)
        return self.output(self.intermediate(a), a)


class RobertaEncoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layer = nn.ModuleList([RobertaLayer(c) for _ in range(c.layers)])

    def forward(self, x, ext_mask):
        for lay in self.layer:
            x = lay(x, ext_mask)
        return x


class RobertaModel(nn.Module):
    """add_pooling_layer=False."""

    def __init__(self, c):
        super().__init__()
        self.embeddings = RobertaEmbeddings(c)
        self.encoder = RobertaEncoder(c)

    def forward(self, input_ids=None, inputs_embeds=None, attention_mask=None):
        x = self.embeddings(input_ids=input_ids, inputs_embeds=inputs_embeds)
        ext = None
        if attention_mask is not None:
            # HF get_extended_attention_mask (4.4.2): (1 - mask) * -10000 on the keys
            ext = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * -10000.0
        return self.encoder(x, ext)


# ---------------------------------------------------------------------------------------------
# Demultiplexers and retrieval heads


class IndexDemuxSentence(nn.Module):
    """RobertaIndexDemultiplexerSequenceClassification (spec §1.9a)."""

    def __init__(self, c):
        super().__init__()
        self.N = c.N
        self.dense = nn.Linear(2 * c.d, c.d)
        self.layer_norm = nn.LayerNorm(c.d, eps=LN_EPS)
        self.dense_before_out_proj = nn.Linear(c.d, c.d)
        self.out_proj = nn.Linear(c.d, c.C)

    def forward(self, H):
        B, Lp, d = H.shape
        p = H[:, : self.N, :]                                   # (B, N, d) prefix slots
        cls = H[:, self.N : self.N + 1, :].expand(B, self.N, d)  # (B, N, d) the CLS slot
        x = torch.cat([p, cls], dim=2).reshape(B * self.N, 2 * d)  # rows b*N+i
        u = self.layer_norm(gelu(self.dense(x)))
        return self.out_proj(gelu(self.dense_before_out_proj(u)))  # no LN here (spec §9.6)


class IndexDemuxToken(nn.Module):
    """RobertaIndexDemultiplexerTokenClassification (spec §1.9b); decoder.bias tied to bias."""

    def __init__(self, c):
        super().__init__()
        self.N = c.N
        self.dense = nn.Linear(2 * c.d, c.d)
        self.layer_norm = nn.LayerNorm(c.d, eps=LN_EPS)
        self.decoder = nn.Linear(c.d, c.C, bias=False)
        self.bias = nn.Parameter(torch.zeros(c.C))
        self.decoder.bias = self.bias

    def forward(self, H):
        B, Lp, d = H.shape
        p = H[:, : self.N, :].unsqueeze(2).expand(B, self.N, Lp, d)
        h = H.unsqueeze(1).expand(B, self.N, Lp, d)
        x = torch.cat([p, h], dim=3).reshape(B * self.N, Lp, 2 * d)
        u = self.layer_norm(gelu(self.dense(x)))
        return self.decoder(u)  # (B*N, L', C)


class DemuxModule(nn.Module):
    """Per-instance MLPs dense_{i}, layer_norm_{i} (dropout_{i} has no parameters)."""

    def __init__(self, c):
        super().__init__()
        self.N = c.N
        for i in range(c.N):
            setattr(self, f"dense_{i}", nn.Linear(c.d, c.d))
            setattr(self, f"layer_norm_{i}", nn.LayerNorm(c.d, eps=LN_EPS))

    def instance(self, i, x):
        return getattr(self, f"layer_norm_{i}")(gelu(getattr(self, f"dense_{i}")(x)))

    def forward(self, x):
        """x (..., d) -> (N, ..., d)"""
        return torch.stack([self.instance(i, x) for i in range(self.N)], dim=0)


class MLPDemuxSentence(nn.Module):
    """RobertaMLPDemultiplexerSequenceClassification (spec §1.9c)."""

    def __init__(self, c):
        super().__init__()
        self.N = c.N
        self.demux_module = DemuxModule(c)
        self.dense_before_out_proj = nn.Linear(c.d, c.d)
        self.layernorm_presoftmax = nn.LayerNorm(c.d, eps=LN_EPS)
        self.out_proj = nn.Linear(c.d, c.C)

    def forward(self, H):
        B, Lp, d = H.shape
        u = self.demux_module(H[:, 0, :])             # (N, B, d)
        u = u.permute(1, 0, 2).reshape(B * self.N, d)  # rows b*N+i
        x = self.layernorm_presoftmax(gelu(self.dense_before_out_proj(u)))
        return self.out_proj(x)


class MLPDemuxToken(nn.Module):
    """RobertaMLPDemultiplexerTokenClassification (spec §1.9d): same names as the sentence head."""

    def __init__(self, c):
        super().__init__()
        self.N = c.N
        self.demux_module = DemuxModule(c)
        self.dense_before_out_proj = nn.Linear(c.d, c.d)
        self.layernorm_presoftmax = nn.LayerNorm(c.d, eps=LN_EPS)
        self.out_proj = nn.Linear(c.d, c.C)

    def forward(self, H):
        B, Lp, d = H.shape
        u = self.demux_module(H)                          # (N, B, L, d)
        u = u.permute(1, 0, 2, 3).reshape(B * self.N, Lp, d)
        x = self.layernorm_presoftmax(gelu(self.dense_before_out_proj(u)))
        return self.out_proj(x)


class RetrievalHeadIndex(nn.Module):
    """RetrievalHeadIndexDemultiplexing (spec §1.10); decoder (V x d) NOT tied to word embeddings;
    bias tied to decoder.bias."""

    def __init__(self, c):
        super().__init__()
        self.N = c.N
        self.dense = nn.Linear(2 * c.d, c.d)
        self.layer_norm = nn.LayerNorm(c.d, eps=LN_EPS)
        self.decoder = nn.Linear(c.d, c.V, bias=False)
        self.bias = nn.Parameter(torch.zeros(c.V))
        self.decoder.bias = self.bias

    def forward(self, H, k):
        B, Lp, d = H.shape
        p = H[:, : self.N, :]
        pk = p[torch.arange(B).unsqueeze(1).expand(B, Lp), k]  # (B, L', d): p_{k[b,j]}
        x = torch.cat([pk, H], dim=2)
        return self.decoder(self.layer_norm(gelu(self.dense(x))))


class RetrievalHeadMLP(nn.Module):
    """RetrievalHeadMLPDemultiplexing (spec §1.10): its own demux_module, then dense_pre_vocab ->
    GELU -> layer_norm_pre_vocab -> decoder + bias (tied)."""

    def __init__(self, c):
        super().__init__()
        self.N = c.N
        self.demux_module = DemuxModule(c)
        self.dense_pre_vocab = nn.Linear(c.d, c.d)
        self.layer_norm_pre_vocab = nn.LayerNorm(c.d, eps=LN_EPS)
        self.decoder = nn.Linear(c.d, c.V, bias=False)
        self.bias = nn.Parameter(torch.zeros(c.V))
        self.decoder.bias = self.bias

    def forward(self, H, k):
        B, Lp, d = H.shape
        allf = self.demux_module(H)  # (N, B, L', d)
        x = allf[k, torch.arange(B).unsqueeze(1), torch.arange(Lp).unsqueeze(0)]  # (B, L', d)
        x = self.layer_norm_pre_vocab(gelu(self.dense_pre_vocab(x)))
        return self.decoder(x)


# ---------------------------------------------------------------------------------------------
# Full models


def instance_vectors(c, gen):
    if c.muxing == "gaussian_hadamard":
        g = torch.randn(c.N, c.d, generator=gen, dtype=torch.float64)
        return (c.gh_norm * g / g.norm(dim=1, keepdim=True)).float()
    if c.muxing == "binary_hadamard":
        v = torch.zeros(c.N, c.d)
        w = c.d // c.N
        for i in range(c.N):
            v[i, i * w : (c.d if i == c.N - 1 else (i + 1) * w)] = 1.0
        return v
    if c.muxing == "random_ortho":
        out = []
        for _ in range(c.N):  # Haar-random orthogonal: QR of a Gaussian with sign fix
            a = torch.randn(c.d, c.d, generator=gen, dtype=torch.float64)
            q, r = torch.linalg.qr(a)
            out.append(q * torch.sign(torch.diagonal(r)).unsqueeze(0))
        return torch.stack(out).float()
    raise ValueError(c.muxing)


class MuxedModel(nn.Module):
    """RobertaSequenceClassificationMuxed / RobertaTokenClassificationMuxed."""

    def __init__(self, c, gen):
        super().__init__()
        self.c = c
        self.roberta = RobertaModel(c)
        if c.demuxing == "index":
            self.demultiplexer = IndexDemuxSentence(c) if c.task == "sentence" else IndexDemuxToken(c)
            self.retrieval_head = RetrievalHeadIndex(c)
        else:
            self.demultiplexer = MLPDemuxSentence(c) if c.task == "sentence" else MLPDemuxToken(c)
            self.retrieval_head = RetrievalHeadMLP(c)
        self.instance_embedding = nn.Parameter(instance_vectors(c, gen), requires_grad=bool(c.learn_muxing))

    def prepare_ids(self, raw):
        """(B*N, L) tokenised rows -> ids as embedding pass 1 sees them (spec §1.4)."""
        c = self.c
        ids = raw.clone()
        if c.demuxing == "index":
            prefix = torch.full((c.N, c.N), filler_id(c.V), dtype=torch.long)
            for i in range(c.N):
                prefix[i, i] = diag_id(c.V, i)
            prefix = torch.cat([prefix, torch.full((c.N, 1), cls_id(c.V), dtype=torch.long)], dim=1)
            return torch.cat([prefix.repeat(c.B, 1), ids], dim=1)
        ids[:, 0] = cls_id(c.V)
        return ids

    def forward(self, ids, labels, k, targets):
        c = self.c
        emb = self.roberta.embeddings(input_ids=ids)  # pass 1, per instance
        n, Lp, d = emb.shape
        E = emb.view(c.B, c.N, Lp, d)
        W = self.instance_embedding.to(E.dtype)
        if c.muxing == "random_ortho":
            x = torch.matmul(W, E.permute(0, 1, 3, 2)).permute(0, 1, 3, 2)  # W_i e (left-multiply)
            x = x.sum(dim=1) / math.sqrt(c.N)
        else:
            x = (E * W.unsqueeze(0).unsqueeze(2)).mean(dim=1)
        H = self.roberta(inputs_embeds=x, attention_mask=None)  # pass 2 + encoder, no mask
        logits = self.demultiplexer(H)
        if c.task == "token" and c.demuxing == "index":
            logits = logits[:, c.N + 1 :, :]  # drop the prefix (spec §9.7)
        task_loss = F.cross_entropy(logits.reshape(-1, c.C), labels.reshape(-1), ignore_index=-100)
        r = self.retrieval_head(H, k)
        retrieval_loss = F.cross_entropy(r.reshape(-1, c.V), targets.reshape(-1), ignore_index=-100)
        loss = c.task_coeff * task_loss + c.retrieval_coeff * retrieval_loss
        return dict(loss=loss, task_loss=task_loss, retrieval_loss=retrieval_loss, logits=logits, H=H,
                    retrieval_logits=r)


class RobertaClassificationHead(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c.d, c.d)
        self.out_proj = nn.Linear(c.d, c.C)

    def forward(self, H):
        return self.out_proj(torch.tanh(self.dense(H[:, 0, :])))


class BaselineModel(nn.Module):
    """RobertaForSequenceClassification from scratch (spec §1.12), N=1."""

    def __init__(self, c, gen):
        super().__init__()
        self.c = c
        self.roberta = RobertaModel(c)
        self.classifier = RobertaClassificationHead(c)

    def prepare_ids(self, raw):
        return raw.clone()

    def forward(self, ids, labels, k=None, targets=None):
        c = self.c
        mask = ids.ne(PAD).long()
        H = self.roberta(input_ids=ids, attention_mask=mask)
        logits = self.classifier(H)
        task_loss = F.cross_entropy(logits, labels.reshape(-1), ignore_index=-100)
        zero = task_loss * 0.0
        loss = c.task_coeff * task_loss
        return dict(loss=loss, task_loss=task_loss, retrieval_loss=zero.detach(), logits=logits, H=H)


# ---------------------------------------------------------------------------------------------
# Initialisation (NOT HF's: larger scales and non-zero biases / LN parameters so that every
# parameter visibly matters in the comparison; the fixture stores all values anyway)


def init_params(model, gen):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name == "instance_embedding":
                continue
            leaf = name.rsplit(".", 1)[-1]
            if "LayerNorm" in name or "layer_norm" in name or "layernorm" in name:
                if leaf == "weight":
                    p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen, dtype=torch.float64))
                else:
                    p.copy_(0.1 * torch.randn(p.shape, generator=gen, dtype=torch.float64))
            elif "embeddings" in name:
                p.copy_(0.3 * torch.randn(p.shape, generator=gen, dtype=torch.float64))
            elif leaf == "weight":
                p.copy_(0.15 * torch.randn(p.shape, generator=gen, dtype=torch.float64))
            else:  # biases (the tied ones are visited once)
                p.copy_(0.05 * torch.randn(p.shape, generator=gen, dtype=torch.float64))
        emb = model.roberta.embeddings
        emb.word_embeddings.weight[PAD].zero_()      # padding_idx rows
        emb.position_embeddings.weight[PAD].zero_()
        for p in model.parameters():                 # exactly representable in float32
            p.copy_(p.float().double())


def tied_names(model):
    """name -> canonical name for every state-dict parameter name (tied biases map to decoder.bias)."""
    canon = {}
    by_id = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        by_id.setdefault(id(p), []).append(name)
    for names in by_id.values():
        pick = next((n for n in names if n.endswith("decoder.bias")), names[0])
        for n in names:
            canon[n] = pick
    return canon


# ---------------------------------------------------------------------------------------------
# Data


def make_batch(c, gen):
    rows = c.B * c.N
    ids = torch.full((rows, c.L), PAD, dtype=torch.long)
    lengths = []
    for r in range(rows):
        # content length: every other row is shorter so each case has pads; at least <s> x </s>
        n = c.L if r % 3 == 2 else int(torch.randint(3, c.L, (1,), generator=gen))
        toks = torch.randint(3, 160, (n - 2,), generator=gen)
        ids[r, 0] = BOS
        ids[r, 1 : n - 1] = toks
        ids[r, n - 1] = EOS
        lengths.append(n)
    assert (ids == PAD).any()
    if c.task == "sentence":
        labels = torch.randint(0, c.C, (rows,), generator=gen)
    else:
        labels = torch.randint(0, c.C, (rows, c.L), generator=gen)
        drop = torch.rand((rows, c.L), generator=gen) < 0.2  # "non-first sub-token" positions
        labels[drop] = -100
        for r, n in enumerate(lengths):
            labels[r, 0] = -100       # <s>
            labels[r, n - 1 :] = -100  # </s> and pads
    return ids, labels


def retrieval_inputs(c, ids, gen):
    """k[b,j] (0 below special_tokens_end_position) and targets: id of instance k at position j of
    the prefixed id matrix; -100 below special_tokens_end_position and for pads (spec §1.10)."""
    Lp = ids.shape[1]
    s = c.special_end
    k = torch.zeros((c.B, Lp), dtype=torch.long)
    k[:, s:] = torch.randint(0, c.N, (c.B, Lp - s), generator=gen)
    g = ids.view(c.B, c.N, Lp)
    t = g[torch.arange(c.B).unsqueeze(1), k, torch.arange(Lp).unsqueeze(0)].clone()
    t[:, :s] = -100
    t[t == PAD] = -100
    return k, t


# ---------------------------------------------------------------------------------------------
# Training (HF 4.4.2 AdamW, correct_bias=True) and the fixture


def adamw_step(params, state, lr, t, b1=0.9, b2=0.999, eps=1e-8, wd=0.0):
    with torch.no_grad():
        for p in params:
            g = p.grad
            m, v = state[id(p)]
            m.mul_(b1).add_(g, alpha=1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            step_size = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
            p.addcdiv_(m, v.sqrt().add_(eps), value=-step_size)
            if wd > 0:
                p.add_(p, alpha=-lr * wd)


def build(c):
    gen = torch.Generator().manual_seed(1000 + c.seed)
    model = (BaselineModel if c.baseline else MuxedModel)(c, gen).double()
    init_params(model, gen)
    raw, labels = make_batch(c, gen)
    ids = model.prepare_ids(raw)
    if c.baseline:
        k = t = None
    else:
        k, t = retrieval_inputs(c, ids, gen)
        if c.demuxing == "mlp":
            used = set(k[:, c.special_end :].flatten().tolist())
            assert used == set(range(c.N)), "every retrieval demux MLP should be exercised"
    return model, raw, ids, labels, k, t


def save_deterministic(path, tensors, meta):
    """safetensors file with a reproducible byte layout (the library serialises metadata in hash
    order): metadata keys sorted, tensors sorted by name, header padded with spaces to 8 bytes."""
    dt = {torch.float32: "F32", torch.float16: "F16", torch.int32: "I32"}
    header = {"__metadata__": dict(sorted(meta.items()))}
    blobs, off = [], 0
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        b = t.numpy().astype(t.numpy().dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": dt[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    back = load_file(path)  # the reference library must read it back identically
    assert back.keys() == tensors.keys() and all(torch.equal(back[k], tensors[k]) for k in back)


def case_fixture(name, c):
    model, raw, ids, labels, k, t = build(c)
    canon = tied_names(model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    out = {}
    # parameters under every state-dict name (tied ones duplicated)
    for n, p in model.named_parameters(remove_duplicate=False):
        out[n] = p.detach().float().clone().contiguous()
    out["input.ids"] = ids.int()
    out["input.labels"] = labels.int()
    out["input.attention_mask"] = raw.ne(PAD).int()
    if k is not None:
        out["input.retrieval_instance"] = k.int()
        out["input.retrieval_targets"] = t.int()

    res = model(ids, labels, k, t)
    model.zero_grad(set_to_none=True)
    res["loss"].backward()
    out["expect.logits"] = res["logits"].detach().float().contiguous()
    out["expect.encoder_output"] = res["H"].detach().float().contiguous()
    if "retrieval_logits" in res:
        out["expect.retrieval_logits"] = res["retrieval_logits"].detach().float().contiguous()
    for key in ("task_loss", "retrieval_loss", "loss"):
        out["expect." + key] = res[key].detach().float().reshape(1)
    for n, p in model.named_parameters():
        if p.requires_grad and canon[n] == n:
            out["grad." + n] = p.grad.detach().float().clone()
    for n, p in model.named_parameters(remove_duplicate=False):  # tied: the decoder.bias name
        if p.requires_grad and canon[n] == n and "grad." + n not in out:
            out["grad." + n] = p.grad.detach().float().clone()

    # 10 steps on the same batch
    state = {id(p): (torch.zeros_like(p), torch.zeros_like(p)) for p in trainable}
    losses, norms = [], []
    for step in range(1, c.steps + 1):
        model.zero_grad(set_to_none=True)
        r = model(ids, labels, k, t)
        losses.append(float(r["loss"].detach()))
        r["loss"].backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(trainable, c.max_grad_norm)))
        adamw_step(trainable, state, c.lr, step)
    out["expect.step_losses"] = torch.tensor(losses, dtype=torch.float32)
    out["expect.step_grad_norms"] = torch.tensor(norms, dtype=torch.float32)
    assert losses[-1] < losses[0], f"{name}: loss did not decrease: {losses}"

    meta = {
        "vocab_size": c.V, "hidden_size": c.d, "num_layers": c.layers, "num_heads": c.heads,
        "intermediate_size": c.inter, "max_position_embeddings": c.P, "layer_norm_eps": LN_EPS,
        "num_instances": c.N, "muxing": "none" if c.baseline else c.muxing,
        "demuxing": "none" if c.baseline else c.demuxing, "task_type": c.task, "num_labels": c.C,
        "setting": c.setting, "task_loss_coeff": c.task_coeff, "retrieval_loss_coeff": c.retrieval_coeff,
        "learning_rate": c.lr, "max_grad_norm": c.max_grad_norm, "steps": c.steps, "groups": c.B,
        "seq_len": c.L, "seq_len_prefixed": c.Lp, "learn_muxing": c.learn_muxing,
        "special_tokens_end_position": 0 if c.baseline else c.special_end,
        "gaussian_hadamard_norm": c.gh_norm, "filler_id": filler_id(c.V), "cls_id": cls_id(c.V),
        "diag_id_formula": "vocab_size-2-i", "adam_betas": "0.9,0.999", "adam_eps": 1e-8,
        "weight_decay": 0.0, "dropout": 0.0,
        "tied": "retrieval_head.bias=retrieval_head.decoder.bias; demultiplexer.bias=demultiplexer.decoder.bias; "
                "grads stored once under the decoder.bias name",
    }
    meta = {key: str(v) for key, v in meta.items()}
    path = os.path.join(OUT_DIR, name + ".safetensors")
    save_deterministic(path, out, meta)
    size = os.path.getsize(path)
    assert size < 1 << 20, f"{path}: {size} bytes"
    print(f"{name}: {size} bytes, loss {losses[0]:.6f} -> {losses[-1]:.6f}, "
          f"task {float(res['task_loss'].detach()):.6f} retrieval {float(res['retrieval_loss'].detach()):.6f}")
    return model, ids, labels, k, t


CASES = {
    "gh_index_n4_sentence": dict(muxing="gaussian_hadamard", demuxing="index", N=4, task="sentence", C=3, seed=1),
    "ro_mlp_n3_token": dict(muxing="random_ortho", demuxing="mlp", N=3, task="token", C=9, seed=2),
    "baseline_n1": dict(setting="baseline", N=1, task="sentence", C=2, task_coeff=1.0, retrieval_coeff=0.0, seed=3),
    "bh_index_n2_token": dict(muxing="binary_hadamard", demuxing="index", N=2, task="token", C=9, learn_muxing=1,
                              seed=4),
    "gh_mlp_n2_sentence": dict(muxing="gaussian_hadamard", demuxing="mlp", N=2, task="sentence", C=2, seed=5),
}


# ---------------------------------------------------------------------------------------------
# Self-checks


def gradcheck_case(name):
    """torch.autograd.gradcheck in float64 on every trainable parameter of one case. The padding
    rows of the word/position tables get no gradient by design (padding_idx) although the output
    does depend on them, so those tables are checked without their row 1."""
    from torch.func import functional_call

    c = Cfg(**CASES[name])
    model, raw, ids, labels, k, t = build(c)
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    pad_tables = {"roberta.embeddings.word_embeddings.weight", "roberta.embeddings.position_embeddings.weight"}
    inputs = []
    for n in names:
        v = params[n]
        if n in pad_tables:
            v = torch.cat([v[:PAD], v[PAD + 1 :]])
        inputs.append(v.clone().requires_grad_(True))

    def fn(*xs):
        ps = dict(params)
        for n, x in zip(names, xs):
            if n in pad_tables:
                x = torch.cat([x[:PAD], params[n][PAD : PAD + 1], x[PAD:]])
            ps[n] = x
        r = functional_call(model, ps, (ids, labels, k, t))
        return r["loss"]

    ok = torch.autograd.gradcheck(fn, tuple(inputs), eps=1e-6, atol=1e-6, rtol=1e-4, fast_mode=True)
    print(f"gradcheck (fast mode, all {len(names)} trainable tensors) {name}: {ok}")
    # full mode on the small tensors
    small = [i for i, n in enumerate(names) if params[n].numel() <= 1024]

    def fn_small(*xs):
        full = list(inputs)
        for i, x in zip(small, xs):
            full[i] = x
        return fn(*full)

    ok2 = torch.autograd.gradcheck(fn_small, tuple(inputs[i] for i in small), eps=1e-6, atol=1e-6, rtol=1e-4)
    print(f"gradcheck (full mode, {len(small)} tensors of <= 1024 elements) {name}: {ok2}")

    # the padding rows really receive no gradient
    model.zero_grad(set_to_none=True)
    model(ids, labels, k, t)["loss"].backward()
    for n in pad_tables:
        g = dict(model.named_parameters())[n].grad
        assert float(g[PAD].abs().max()) == 0.0, n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true", help="run gradcheck (float64) after writing")
    ap.add_argument("--check-case", default="bh_index_n2_token")
    args = ap.parse_args()
    torch.set_num_threads(1)
    os.makedirs(OUT_DIR, exist_ok=True)
    for name, kw in CASES.items():
        case_fixture(name, Cfg(**kw))
    if args.check:
        gradcheck_case(args.check_case)


if __name__ == "__main__":
    main()
