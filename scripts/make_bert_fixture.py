"""Writes tests/fixtures/tiny_bert/: a tiny random BERT (2 layers, hidden 32) in the Hugging
Face layout, its WordPiece tokenizer.json, and what Python's `tokenizers` and PyTorch +
`transformers` make of fixed texts (expected.json), for tests/encoder.rs. Run once; the
output is committed, so CI needs no Python:

    python3 scripts/make_bert_fixture.py
"""

import json
import os
import string

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import BertConfig, BertModel

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "tiny_bert")
MAX_LENGTH = 24

# Texts the golden ids cover: English, accents, Chinese, emoji, URLs, numbers, punctuation,
# case, whitespace oddities, empty, and texts longer than MAX_LENGTH tokens.
TEXTS = [
    "the service was great",
    "The Service Was GREAT!",
    "terrible delivery, never again.",
    "I'd rather not say...",
    "café crème brûlée",
    "naïve résumé déjà vu",
    "服务很好",
    "快递太慢了，不会再买",
    "good 好 mixed 混合 text",
    "love it 😍😍",
    "👍",
    "see https://example.com/a?b=c&d=e for details",
    "email me at someone@example.org",
    "order #12345 arrived on 2024-03-01",
    "price: $19.99 (was $25)",
    "   leading and trailing spaces   ",
    "tabs\tand\nnewlines",
    "",
    "a",
    "UNKNOWNWORDXYZ qqqq",
    "don't won't can't",
    "well-made, well-priced",
    "5 stars",
    "0 stars!!!",
    "meh",
    "okay I guess",
    "it broke after two days",
    "excellent quality and fast shipping",
    "not bad, not great",
    "would buy again",
    "the the the the the the the the the the the the the the the the the the the the the the the the the the",
    "a very long review that goes on and on about the product and the delivery and the service and the price and more",
    "Ärger über Öl und Übel",
    "straße",
    "ÀÉÎÕÜ",
    "hello\u00a0world",
    "zero\u200bwidth",
    "mixed CASE Words",
    "???",
    "...",
    "(parenthesised)",
    "[bracketed]",
    "quote \"inside\" text",
    "semi;colon:colon",
    "slash/separated/words",
    "under_score",
    "numbers 1 2 3 4 5 6 7 8 9 10",
    "很好很好很好很好很好很好很好很好很好很好很好很好很好",
    "emoji 🙂 in 🙃 the 😐 middle",
    "fine.",
    "great product, terrible support",
    "1st 2nd 3rd",
]

WORDS = (
    "the service was great terrible delivery never again i rather not say cafe creme brulee "
    "naive resume deja vu good mixed text love it see for details email me at someone order "
    "arrived on price stars meh okay guess broke after two days excellent quality and fast "
    "shipping bad would buy a very long review that goes about product more hello world "
    "words numbers fine support https example com org don won can well made priced"
).split()


def vocab():
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokens += sorted(set(WORDS))
    tokens += list(string.ascii_lowercase) + list(string.digits) + list(string.punctuation)
    tokens += ["##" + c for c in string.ascii_lowercase + string.digits]
    tokens += ["##s", "##ed", "##ing", "##ly", "##er"]
    tokens += list("服务很好快递太慢了不会再买混合")
    seen, out = set(), []
    for t in tokens:
        if t not in seen:
            seen.add(t)
            out.append(t)
    return {t: i for i, t in enumerate(out)}


def main():
    os.makedirs(OUT, exist_ok=True)
    v = vocab()
    tok = Tokenizer(models.WordPiece(v, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", v["[CLS]"]), ("[SEP]", v["[SEP]"])],
    )
    tok.decoder = decoders.WordPiece(prefix="##")
    tok.save(os.path.join(OUT, "tokenizer.json"))
    with open(os.path.join(OUT, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": True, "model_max_length": 512, "tokenizer_class": "BertTokenizer"}, f, indent=1)

    tok.enable_truncation(MAX_LENGTH)
    ids = [tok.encode(t).ids for t in TEXTS]

    torch.manual_seed(7)
    config = BertConfig(
        vocab_size=len(v),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        type_vocab_size=2,
        layer_norm_eps=1e-12,
        hidden_act="gelu",
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
    )
    model = BertModel(config).eval()
    # Random init leaves LayerNorm at 1/0 and biases at 0: perturb every tensor so the
    # parity test can catch a swapped gamma/beta or a missing bias.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model.save_pretrained(OUT, safe_serialization=True)

    batch = ids[:8]
    longest = max(len(i) for i in batch)
    input_ids = torch.tensor([i + [0] * (longest - len(i)) for i in batch])
    mask = (input_ids != 0).long()
    with torch.no_grad():
        out = model(input_ids=input_ids, attention_mask=mask)
    expected = {
        "max_length": MAX_LENGTH,
        "texts": TEXTS,
        "ids": ids,
        "batch": batch,
        "last_hidden_state": [[[round(x, 7) for x in row] for row in seq] for seq in out.last_hidden_state.tolist()],
        "pooler_output": [[round(x, 7) for x in row] for row in out.pooler_output.tolist()],
    }
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, ensure_ascii=False)
    print(f"wrote {OUT}: vocab {len(v)}, {sum(p.numel() for p in model.parameters())} parameters")


if __name__ == "__main__":
    main()
