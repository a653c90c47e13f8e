"""The per-rank table of run2/steps16: 16 concurrent `hpclars bench step` ranks (Open MPI wrote
one stdout per rank, before `bench step` gathered the ranks itself), printed with the same code
that `mpiexec -n N hpclars bench step` now uses (hpclars.bench.print_rank_spread).

    python results/node-16core-2026-11-30/rank_table.py
"""
import pathlib
import re

from hpclars.bench import TRAIN_FLOPS, print_rank_spread

HERE = pathlib.Path(__file__).resolve().parent
rows = []
for out in sorted((HERE / "run2/steps16/ranks/1").glob("rank.*/stdout")):
    text = out.read_text()
    rate = float(re.search(r"median\): ([0-9.]+) GFLOP/s", text).group(1))
    step_ms = float(re.search(r"^ +step +([0-9.]+) ", text, re.M).group(1))
    batch = int(re.search(r"batch (\d+)", text).group(1))
    rows.append((int(out.parent.name.split(".")[1]), rate, step_ms / 1e3))
alone = (HERE / "run2/steps16/alone.txt").read_text()
print(f"# alone (1 rank, same session): sgemm {re.search(r'median.: ([0-9.]+)', alone).group(1)} GFLOP/s, "
      f"step {re.search(r'^ +step +([0-9.]+) ', alone, re.M).group(1)} ms")
print_rank_spread(rows, TRAIN_FLOPS * batch)
