#!/usr/bin/env python3
"""The PyTorch peer reference run on CUDA, for patron's wgpu cases (bench/run --wgpu).

Runs ../shared/bench/torch_reference.py (or the script named by PATRON_TORCH_REFERENCE)
unchanged except that every tensor and module is made on the GPU, and its clock waits
for the GPU first: CUDA kernels run asynchronously, so an unsynchronised timer would
stop before the work does. Prints the reference's JSON line with the card's name added;
exits 1 without a line when torch sees no CUDA device.

Example:
  python3 bench/torch_cuda.py --steps 50 --runs 1 --infer-iters 10
"""
import contextlib
import io
import json
import os
import sys
import time

import torch


def main():
    if not torch.cuda.is_available():
        print("torch sees no CUDA device", file=sys.stderr)
        sys.exit(1)
    here = os.path.dirname(os.path.abspath(__file__))
    script = os.environ.get(
        "PATRON_TORCH_REFERENCE",
        os.path.join(here, "..", "..", "shared", "bench", "torch_reference.py"),
    )
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    import torch_reference  # noqa: E402  (found through the path set just above)

    torch.set_default_device("cuda")
    clock = time.perf_counter

    def synced():
        torch.cuda.synchronize()
        return clock()

    # The reference reads its clock as time.perf_counter through its own `time`.
    torch_reference.time = type(sys)("time_synced")
    torch_reference.time.perf_counter = synced
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        torch_reference.main()
    result = json.loads(out.getvalue())
    result["device"] = torch.cuda.get_device_name()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
