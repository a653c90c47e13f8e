"""The splits the balanced 2-rank runs took (their logs' rank_shares), one line per run.
python results/bench-epyc-zen5-2026-12-02-s23/shares.py DIR...  (the --keep-logs folders)"""
import sys
from pathlib import Path

from hpclars.log import read_log

for folder in sys.argv[1:]:
    for path in sorted(Path(folder).glob("weak-n2-*.h5")):
        run = read_log(path)
        splits = "; ".join(f"after step {e['step']}: {e['shares'][0]}/{e['shares'][1]}" for e in run.rank_shares)
        print(f"{path}: {splits}; {run.final('images_per_s'):.0f} img/s over the epoch")
