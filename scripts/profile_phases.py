#!/usr/bin/env python3
"""Shares of a training step's CPU time per phase, from `perf script` output of a run of
`prunelab bench` recorded with call graphs (see scripts/profile_phases.sh).

Only the training part of the run is counted: from the first to the last sample whose stack
holds `train_step` (the bench trains before it times inference), on every thread, less its
first seconds (argument 1, default 2.5), in which the first steps touch fresh memory: page
faults that steady training does not have. With argument 2 `inference` and argument 3 the
bench's seconds per measurement, the large-batch inference is counted instead: the last three
quarters of those seconds of the run, which the bench spends on it (it times batch 1 before). A sample
belongs to the phase of the first frame, from the leaf up, that names one (so time spent
allocating, or waiting, inside a phase counts as allocating or waiting), except that tensor ops
run by BatchNorm or by the SGD update count as theirs.
"""
import collections
import re
import sys

WAITING = "threads waiting"
ELEMENTWISE = "elementwise and other tensor ops"
# What runs tensor ops of its own.
CONTAINERS = [
    ("BatchNorm", re.compile(r"prunelab::graph::batch_norm")),
    ("SGD update", re.compile(r"prunelab::train::sgd")),
]
# (phase, pattern on a frame's symbol).
PHASES = [
    ("allocation and first touch", re.compile(r"^(mi_|_mi_)|clear_page|exc_page_fault|folio_zero|__rust_alloc|__rust_dealloc")),
    (WAITING, re.compile(r"sched_yield|__schedule|finish_task_switch|futex|wait_until|BarrierGuard|rayon_core::sleep|thread::park")),
    ("conv weight gradient", re.compile(r"conv::kernels::weight_grad")),
    ("conv input gradient", re.compile(r"conv::kernels::input_grad")),
    ("conv forward", re.compile(r"conv::kernels::forward")),
] + CONTAINERS + [
    (ELEMENTWISE, re.compile(r"candle_core::(?!utils)|prunelab::graph::channelwise")),
    # candle's own worker pool, outside any op: spinning for the next one.
    (WAITING, re.compile(r"candle_core::utils::")),
]
# Inside the convolution phases: the first of these from the leaf up.
CONV_PARTS = [
    ("im2col, col2im, gathers, transposes", re.compile(r"im2col|col2im|shifted_copy|gather_|scatter_rows|transpose|ChannelLast|split_phases")),
    ("matrix multiply (gemm, our AVX-512/AVX2 kernels)", re.compile(r"gemm|conv::matmul|kernels::matmul|conv::narrow|conv::outer")),
]


def samples(lines):
    """(thread, time, [symbols leaf first]) per sample."""
    head, frames = None, []
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            if head:
                yield head[0], head[1], frames
            head, frames = None, []
        elif not line.startswith("\t"):
            # A sample's head line: "tid time:", the tid right-aligned (so it may start
            # with spaces); its frames follow, each indented by a tab.
            tid, time = line.split()[:2]
            head = (tid, float(time.rstrip(":")))
        else:
            parts = line.split(None, 1)
            frames.append(parts[1] if len(parts) > 1 else "")
    if head:
        yield head[0], head[1], frames


def first_named(frames, table):
    """The phase of `table` named by the first frame (from the leaf up) that names one, and
    where that frame is."""
    for i, symbol in enumerate(frames):
        for name, pattern in table:
            if pattern.search(symbol):
                return name, i
    return None, len(frames)


def phase_of(frames):
    name, at = first_named(frames, PHASES)
    if name == ELEMENTWISE:
        return first_named(frames[at + 1:], CONTAINERS)[0] or name
    return name


def part_of(frames):
    """The first part of CONV_PARTS named from the leaf up."""
    for symbol in frames:
        for name, pattern in CONV_PARTS:
            if pattern.search(symbol):
                return name
    return "rest of the convolution"


def main():
    all_samples = list(samples(sys.stdin))
    training = [t for _, t, f in all_samples if any("train_step" in s for s in f)]
    if not training:
        sys.exit("no sample holds train_step: record `prunelab bench` with call graphs")
    skip = float(sys.argv[1]) if len(sys.argv) > 1 else 2.5
    part = sys.argv[2] if len(sys.argv) > 2 else "training"
    first, last = min(training) + skip, max(training)
    if part == "inference":
        end = max(t for _, t, _ in all_samples)
        first, last = max(last, end - 0.75 * float(sys.argv[3])), end
    if first >= last:
        sys.exit(f"the {part} part lasted too short a time: record a longer run")
    counts = collections.Counter()
    conv = collections.Counter()
    for _, time, frames in all_samples:
        if not first <= time <= last:
            continue
        phase = phase_of(frames) or "other"
        counts[phase] += 1
        if phase.startswith("conv "):
            conv[part_of(frames)] += 1
    total = sum(counts.values())
    print(f"{total} samples over {last - first:.1f} s of {part}\n")
    print("| phase | share of samples |")
    print("|---|---|")
    for name in dict.fromkeys([n for n, _ in PHASES] + ["other"]):
        print(f"| {name} | {100 * counts[name] / total:.1f}% |")
    conv_total = sum(conv.values())
    print("\nInside the three convolution phases:\n")
    print("| part | share of all samples |")
    print("|---|---|")
    for name in [n for n, _ in CONV_PARTS] + ["rest of the convolution"]:
        print(f"| {name} | {100 * conv[name] / total:.1f}% |")
    print(f"| (convolution in all) | {100 * conv_total / total:.1f}% |")


if __name__ == "__main__":
    main()
