"""A real torch.save of a tiny DataMUX state dict, laid out as a released Hugging Face checkpoint
(spec §6.2-6.3): tests/fixtures/torch_bin/model/{config.json, pytorch_model.bin} plus
tests/fixtures/torch_bin/reference.safetensors (a fixed batch and the logits the model gives).

The state dict has the original key names (the model of datamux_reference.py) and exercises what a
reader of torch.save files must handle:
  - storages shared between keys: the tied retrieval_head.bias / retrieval_head.decoder.bias
    (one Parameter under two names), and demultiplexer.dense.bias / demultiplexer.layer_norm.bias
    saved as two slices of one storage (the second at a non-zero storage offset);
  - a non-contiguous view: demultiplexer.out_proj.weight saved transposed-back (strides (1, C));
  - half tensors: the word-embedding and retrieval decoder tables (their values are rounded to half
    first, so the float64 reference uses exactly what the file holds);
  - the int64 buffer roberta.embeddings.position_ids.

Run from the repository root:  python3 tests/reference/make_torch_bin_fixture.py
Needs torch and safetensors. Output is ~50 KB; torch.save output is not byte-reproducible (it
embeds a random serialization id), the values are (fixed seeds).
"""
import collections
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import datamux_reference as ref  # noqa: E402

OUT = os.path.join(HERE, "..", "fixtures", "torch_bin")
HALF = ("roberta.embeddings.word_embeddings.weight", "retrieval_head.decoder.weight")


def config_json(c):
    """config.json as push_checkpoints_hub.py wrote it: RobertaConfig fields plus DataMUX's."""
    return {
        "architectures": ["RobertaSequenceClassificationMuxed"],
        "attention_probs_dropout_prob": 0.1, "bos_token_id": 0, "eos_token_id": 2,
        "gradient_checkpointing": False, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
        "hidden_size": c.d, "initializer_range": 0.02, "intermediate_size": c.inter,
        "layer_norm_eps": ref.LN_EPS, "max_position_embeddings": c.P, "model_type": "roberta",
        "num_attention_heads": c.heads, "num_hidden_layers": c.layers, "pad_token_id": ref.PAD,
        "position_embedding_type": "absolute", "transformers_version": "4.4.2", "type_vocab_size": 1,
        "use_cache": True, "vocab_size": c.V,
        "id2label": {str(i): f"LABEL_{i}" for i in range(c.C)},
        "label2id": {f"LABEL_{i}": i for i in range(c.C)},
        "finetuning_task": "mnli", "num_instances": c.N, "muxing_variant": c.muxing,
        "demuxing_variant": c.demuxing, "retrieval_percentage": 1.0, "gaussian_hadamard_norm": c.gh_norm,
        "binary_hadamard_epsilon": 0.0, "retrieval_loss_coeff": c.retrieval_coeff,
        "task_loss_coeff": c.task_coeff, "learn_muxing": 0,
    }


def state_dict(model, c):
    """The model's state dict in float32, with the shared, offset, strided and half entries."""
    sd = collections.OrderedDict()
    sd["instance_embedding"] = model.instance_embedding.detach().float()
    sd["roberta.embeddings.position_ids"] = torch.arange(c.P).unsqueeze(0)
    for name, p in model.named_parameters(remove_duplicate=False):
        if name != "instance_embedding":
            sd[name] = p.detach().float()
    # the tied pair: one storage under two names, as state_dict() of a tied module gives it
    sd["retrieval_head.decoder.bias"] = sd["retrieval_head.bias"]
    for name in HALF:
        sd[name] = sd[name].half()
    # two biases as slices of one storage
    both = torch.cat([sd["demultiplexer.dense.bias"], sd["demultiplexer.layer_norm.bias"]])
    sd["demultiplexer.dense.bias"] = both[: c.d]
    sd["demultiplexer.layer_norm.bias"] = both[c.d:]
    # a non-contiguous view with the same values
    w = sd["demultiplexer.out_proj.weight"]
    sd["demultiplexer.out_proj.weight"] = w.t().contiguous().t()
    assert not sd["demultiplexer.out_proj.weight"].is_contiguous()
    sd._metadata = collections.OrderedDict({"": {"version": 1}})
    return sd


def main():
    torch.set_num_threads(1)
    c = ref.Cfg(V=512, d=16, layers=1, heads=2, inter=32, P=32, N=2, B=2, L=8, muxing="gaussian_hadamard",
                demuxing="index", task="sentence", C=3, seed=7)
    model, raw, ids, labels, k, t = ref.build(c)
    with torch.no_grad():  # the half tables hold exactly what the file will
        for name, p in model.named_parameters():
            if name in HALF:
                p.copy_(p.half().double())
    res = model(ids, labels, k, t)

    os.makedirs(os.path.join(OUT, "model"), exist_ok=True)
    sd = state_dict(model, c)
    torch.save(sd, os.path.join(OUT, "model", "pytorch_model.bin"))
    with open(os.path.join(OUT, "model", "config.json"), "w") as f:
        json.dump(config_json(c), f, indent=2, sort_keys=True)
        f.write("\n")
    expect = {
        "input.ids": ids.int().contiguous(),
        "input.labels": labels.int().contiguous(),
        "input.retrieval_instance": k.int().contiguous(),
        "input.retrieval_targets": t.int().contiguous(),
        "expect.logits": res["logits"].detach().float().contiguous(),
        "expect.loss": res["loss"].detach().float().reshape(1),
    }
    meta = {"groups": c.B, "seq_len": c.L, "num_labels": c.C, "num_instances": c.N}
    ref.save_deterministic(os.path.join(OUT, "reference.safetensors"), expect, {k_: str(v) for k_, v in meta.items()})

    back = torch.load(os.path.join(OUT, "model", "pytorch_model.bin"), weights_only=True)
    assert back["retrieval_head.bias"].untyped_storage().data_ptr() == \
        back["retrieval_head.decoder.bias"].untyped_storage().data_ptr()
    assert back["demultiplexer.layer_norm.bias"].storage_offset() == c.d
    for root, _, files in os.walk(OUT):
        for fn in sorted(files):
            p = os.path.join(root, fn)
            print(f"{os.path.relpath(p, OUT)}: {os.path.getsize(p)} bytes")
    print(f"loss {float(res['loss'].detach()):.6f}; logits {tuple(res['logits'].shape)}")


if __name__ == "__main__":
    main()
