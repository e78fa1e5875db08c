#!/usr/bin/env python3
"""Checks an ONNX model prunelab exported, with nothing of prunelab's: onnx.checker (full check,
shapes inferred), then onnxruntime's outputs on a given batch against the logits prunelab
computed on it.

Usage: onnx_check.py MODEL.onnx INPUT.f32 N,C,H,W EXPECTED.f32 [RTOL]

INPUT.f32 and EXPECTED.f32 hold raw little-endian float32 values (the batch, the logits in
row-major order). The outputs agree when max |ort - expected| <= RTOL * max |expected|
(default 1e-4). Exits 0 when they do, 1 when not, 2 on a usage error.
"""
import sys

import numpy as np
import onnx
import onnxruntime as ort


def main(argv):
    if len(argv) not in (5, 6):
        print(__doc__, file=sys.stderr)
        return 2
    model_path, input_path, shape, expected_path = argv[1:5]
    rtol = float(argv[5]) if len(argv) == 6 else 1e-4
    model = onnx.load(model_path)
    onnx.checker.check_model(model, full_check=True)
    opset = {o.domain: o.version for o in model.opset_import}.get("", 0)
    x = np.fromfile(input_path, dtype="<f4").reshape([int(d) for d in shape.split(",")])
    expected = np.fromfile(expected_path, dtype="<f4")
    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    (name,) = [i.name for i in session.get_inputs()]
    (got,) = session.run(None, {name: x})
    got = got.reshape(-1)
    if got.shape != expected.shape:
        print(f"onnxruntime gave {got.shape[0]} values, prunelab {expected.shape[0]}")
        return 1
    worst = float(np.max(np.abs(got - expected)))
    scale = float(np.max(np.abs(expected)))
    verdict = "agree" if worst <= rtol * scale else "DIFFER"
    print(
        f"{model_path}: checker passed (IR {model.ir_version}, opset {opset}); onnxruntime "
        f"{ort.__version__} and prunelab {verdict}: max |difference| {worst:.3g} of max |logit| "
        f"{scale:.3g} (tolerance {rtol:g} relative)"
    )
    return 0 if verdict == "agree" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
