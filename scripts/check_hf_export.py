#!/usr/bin/env python3
"""Check a `patron export --format hf` directory with PyTorch + transformers.

    python3 scripts/check_hf_export.py DIR EXPECTED.json

EXPECTED.json holds {"texts": [...], "logits": [[...], ...]}: patron's logits of each
text (a binary run's one logit z as the pair (0, z), as the export writes it). The
script loads DIR with AutoTokenizer and AutoModelForSequenceClassification, scores the
texts in one padded batch, and exits 0 when every logit is within 1e-4 of patron's, 1
otherwise. Exit 3 means torch or transformers is not installed (the caller skips).
"""

import json
import sys


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    try:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
    except ImportError as e:
        print(f"skipped: {e}", file=sys.stderr)
        return 3
    directory, expected_path = sys.argv[1], sys.argv[2]
    with open(expected_path, encoding="utf-8") as f:
        expected = json.load(f)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModelForSequenceClassification.from_pretrained(directory)
    model.eval()
    batch = tokenizer(expected["texts"], padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    want = torch.tensor(expected["logits"], dtype=logits.dtype)
    if logits.shape != want.shape:
        print(f"logits of shape {tuple(logits.shape)}, patron's {tuple(want.shape)}")
        return 1
    worst = (logits - want).abs().max().item()
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    print(f"{len(expected['texts'])} texts, labels {labels}, worst logit difference {worst:.2e}")
    return 0 if worst < 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
