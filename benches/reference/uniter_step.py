"""PyTorch reference for `cargo xtask bench step`: the `uniter-bench` model
(UNITER-style single-stream transformer over text tokens and detector
regions, MLM + ITM) trained or run forward-only on the inputs the runner
wrote, timed the same way as vlp.

The runner calls it once per mode in its own process, so that the process's
peak RSS belongs to that mode alone. By hand (after `cargo xtask bench step`
has created .venv; it deletes its inputs when done, so keep them with
`cargo xtask bench step --keep-inputs DIR` first):

    .venv/bin/python benches/reference/uniter_step.py --inputs DIR/b32-t32-r36 \
        --mode train --threads 2 --warmup 2 --steps 3 --reps 3 --out result.json

Inputs (`.npy`, written by crates/vlp-bench/src/step/inputs.rs):
    input_ids [B, T] int64       masked text ([CLS] ... [SEP] then [PAD])
    attention_mask [B, T] int64  1 at real tokens, 0 at padding
    mlm_positions [N] int64      flat positions b * T + t of the masked tokens
    mlm_labels [N] int64         their original ids
    region_features [B, R, F] float32
    region_boxes [B, R, 4] float32  x1, y1, x2, y2 normalised by image size
    itm_labels [B] int64         1 = matching pair, 0 = negative

The model follows UNITER's code (BERT post-norm layers, UNITER's image
embeddings with 7-d geometry, BERT's MLM head tied to the word embeddings and
computed on the masked positions only, ITM on the pooled [CLS]) with BERT's
initialisation. Weights are this framework's own seeded initialisation, so
only the compute is compared with vlp, not the loss values.
"""

import argparse
import json
import math
import resource
import statistics
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class Config:
    def __init__(self, **kw):
        self.vocab_size = 30522
        self.hidden_size = 256
        self.num_layers = 4
        self.num_heads = 4
        self.intermediate_size = 1024
        self.max_text_len = 32
        self.type_vocab_size = 2
        self.feature_size = 2048
        self.geometry_size = 7
        self.dropout = 0.1
        self.layer_norm_eps = 1e-12
        self.__dict__.update(kw)


class TextEmbeddings(nn.Module):
    """word + position + token type, LayerNorm, dropout (BERT)."""

    def __init__(self, c):
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size)
        self.position_embeddings = nn.Embedding(c.max_text_len, c.hidden_size)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, ids):
        positions = torch.arange(ids.shape[1], device=ids.device).unsqueeze(0)
        types = torch.zeros_like(ids)
        x = self.word_embeddings(ids) + self.position_embeddings(positions) + self.token_type_embeddings(types)
        return self.dropout(self.LayerNorm(x))


class RegionEmbeddings(nn.Module):
    """UNITER's image embeddings: LN(LN(W_f f) + LN(W_g g) + type) then dropout."""

    def __init__(self, c):
        super().__init__()
        self.img_linear = nn.Linear(c.feature_size, c.hidden_size)
        self.img_layer_norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.pos_linear = nn.Linear(c.geometry_size, c.hidden_size)
        self.pos_layer_norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, features, geometry, type_embedding):
        content = self.img_layer_norm(self.img_linear(features))
        position = self.pos_layer_norm(self.pos_linear(geometry))
        return self.dropout(self.LayerNorm(content + position + type_embedding))


def box_geometry(boxes):
    """[B, R, 4] x1, y1, x2, y2 -> [B, R, 7] x1, y1, x2, y2, w, h, w*h (UNITER)."""
    w = boxes[..., 2:3] - boxes[..., 0:1]
    h = boxes[..., 3:4] - boxes[..., 1:2]
    return torch.cat([boxes, w, h, w * h], dim=-1)


class SelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.num_heads = c.num_heads
        self.head_dim = c.hidden_size // c.num_heads
        self.query = nn.Linear(c.hidden_size, c.hidden_size)
        self.key = nn.Linear(c.hidden_size, c.hidden_size)
        self.value = nn.Linear(c.hidden_size, c.hidden_size)
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, x, bias):
        b, s, h = x.shape

        def heads(t):
            return t.view(b, s, self.num_heads, self.head_dim).transpose(1, 2)

        q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        # Written out as UNITER's BertSelfAttention does (no fused kernel).
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim) + bias
        probs = self.dropout(F.softmax(scores, dim=-1))
        return torch.matmul(probs, v).transpose(1, 2).reshape(b, s, h)


class Layer(nn.Module):
    """BERT post-norm layer: LN(x + attn(x)), LN(x + FFN(x))."""

    def __init__(self, c):
        super().__init__()
        self.attention = SelfAttention(c)
        self.attention_output = nn.Linear(c.hidden_size, c.hidden_size)
        self.attention_norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.intermediate = nn.Linear(c.hidden_size, c.intermediate_size)
        self.output = nn.Linear(c.intermediate_size, c.hidden_size)
        self.output_norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, x, bias):
        x = self.attention_norm(x + self.dropout(self.attention_output(self.attention(x, bias))))
        return self.output_norm(x + self.dropout(self.output(F.gelu(self.intermediate(x)))))


class UniterBench(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embeddings = TextEmbeddings(c)
        self.img_embeddings = RegionEmbeddings(c)
        self.layers = nn.ModuleList([Layer(c) for _ in range(c.num_layers)])
        self.pooler = nn.Linear(c.hidden_size, c.hidden_size)
        # BERT's cls.predictions: transform, then the decoder tied to the word embeddings.
        self.mlm_dense = nn.Linear(c.hidden_size, c.hidden_size)
        self.mlm_norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.mlm_bias = nn.Parameter(torch.zeros(c.vocab_size))
        self.itm = nn.Linear(c.hidden_size, 2)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module):
        # BERT / UNITER: N(0, 0.02) weights, zero biases, unit LayerNorms.
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()
        if isinstance(module, nn.LayerNorm):
            module.weight.data.fill_(1.0)
            module.bias.data.zero_()

    def forward(self, batch):
        ids = batch["input_ids"]
        b, t = ids.shape
        text = self.embeddings(ids)
        image_type = self.embeddings.token_type_embeddings.weight[1].view(1, 1, -1)
        image = self.img_embeddings(batch["region_features"], box_geometry(batch["region_boxes"]), image_type)
        r = image.shape[1]
        keep = torch.cat([batch["attention_mask"], ids.new_ones(b, r)], dim=1).to(text.dtype)
        bias = ((1.0 - keep) * -10000.0).view(b, 1, 1, t + r)
        x = torch.cat([text, image], dim=1)
        for layer in self.layers:
            x = layer(x, bias)
        pooled = torch.tanh(self.pooler(x[:, 0]))
        masked = x[:, :t].reshape(b * t, -1).index_select(0, batch["mlm_positions"])
        transformed = self.mlm_norm(F.gelu(self.mlm_dense(masked)))
        mlm_logits = F.linear(transformed, self.embeddings.word_embeddings.weight, self.mlm_bias)
        itm_logits = self.itm(pooled)
        return mlm_logits, itm_logits


def load(inputs):
    names = ["input_ids", "attention_mask", "mlm_positions", "mlm_labels", "region_features", "region_boxes", "itm_labels"]
    return {n: torch.from_numpy(np.load(f"{inputs}/{n}.npy")) for n in names}


def losses(model, batch):
    mlm_logits, itm_logits = model(batch)
    mlm = F.cross_entropy(mlm_logits, batch["mlm_labels"])
    itm = F.cross_entropy(itm_logits, batch["itm_labels"])
    return mlm, itm


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--inputs", required=True)
    p.add_argument("--mode", choices=["train", "infer"], required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=3, help="steps per timed repetition")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    batch = load(a.inputs)
    b, t = batch["input_ids"].shape
    config = Config(max_text_len=max(32, t), feature_size=batch["region_features"].shape[2])
    model = UniterBench(config)
    phases = {"forward": 0.0, "backward": 0.0, "optimizer": 0.0}
    if a.mode == "train":
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.01)

        def step():
            start = time.perf_counter()
            mlm, itm = losses(model, batch)
            values = mlm.item(), itm.item()
            forward = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            (mlm + itm).backward()
            backward = time.perf_counter()
            optimizer.step()
            phases["forward"] += forward - start
            phases["backward"] += backward - forward
            phases["optimizer"] += time.perf_counter() - backward
            return values

    else:
        model.eval()

        def step():
            start = time.perf_counter()
            with torch.inference_mode():
                mlm, itm = losses(model, batch)
                values = mlm.item(), itm.item()
            phases["forward"] += time.perf_counter() - start
            return values

    # The first step counts as warm-up, as on the vlp side.
    first = step()
    for _ in range(a.warmup - 1):
        step()
    for key in phases:
        phases[key] = 0.0
    seconds = []
    for _ in range(a.reps):
        start = time.perf_counter()
        for _ in range(a.steps):
            step()
        seconds.append(time.perf_counter() - start)
    median = statistics.median(seconds)
    result = {
        "mode": a.mode,
        "batch": b,
        "samples_per_s": b * a.steps / median,
        "ms_per_step": median / a.steps * 1e3,
        "rep_seconds": seconds,
        "first_mlm_loss": first[0],
        "first_itm_loss": first[1],
        "mlm_tokens": int(batch["mlm_positions"].shape[0]),
        # ru_maxrss is in KiB on Linux: the same figure as `/usr/bin/time -v`.
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "parameters": sum(p.numel() for p in model.parameters()),
        "phases_ms": {k: v / (a.reps * a.steps) * 1e3 for k, v in phases.items()},
        "versions": {"torch": torch.__version__, "numpy": np.__version__, "torch_threads": torch.get_num_threads()},
    }
    with open(a.out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
