"""Writes tests/fixtures/minilm_expected.json: what Python's `tokenizers` and PyTorch +
`transformers` make of fixed texts with the real all-MiniLM-L6-v2 (fetched by
scripts/fetch_minilm.sh), for the parity tests of tests/encoder.rs. Run once; the output is
committed, so CI needs no Python (the weights themselves are fetched, not committed):

    scripts/fetch_minilm.sh && python3 scripts/make_minilm_fixture.py
"""

import json
import os
import sys

import torch
from tokenizers import Tokenizer
from transformers import BertModel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_bert_fixture import TEXTS  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
MODEL = os.path.join(ROOT, "models", "all-MiniLM-L6-v2")
MAX_LENGTH = 128


def main():
    tok = Tokenizer.from_file(os.path.join(MODEL, "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(MAX_LENGTH)
    texts = TEXTS + ["x " * 200, "A" * 300]
    ids = [tok.encode(t).ids for t in texts]
    model = BertModel.from_pretrained(MODEL).eval()
    batch = ids[:8]
    longest = max(len(i) for i in batch)
    input_ids = torch.tensor([i + [0] * (longest - len(i)) for i in batch])
    mask = (input_ids != 0).long()
    with torch.no_grad():
        out = model(input_ids=input_ids, attention_mask=mask)
    hidden = out.last_hidden_state
    mean = (hidden * mask.unsqueeze(2)).sum(1) / mask.sum(1, keepdim=True)
    expected = {
        "max_length": MAX_LENGTH,
        "texts": texts,
        "ids": ids,
        "batch": batch,
        "pooler_output": [[round(x, 6) for x in r] for r in out.pooler_output.tolist()],
        "mean_pooled": [[round(x, 6) for x in r] for r in mean.tolist()],
    }
    path = os.path.join(ROOT, "tests", "fixtures", "minilm_expected.json")
    with open(path, "w") as f:
        json.dump(expected, f, ensure_ascii=False)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
