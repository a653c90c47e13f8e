"""The shaped-network communication table of BENCHMARKS.md, from jobs/bench_network.sh's output.

    python analysis/comm_table.py OUT_DIR [--out table.md]

Reads, for each profile P (loopback, 10gbe, 1gbe) and node count N found in OUT_DIR:
  - ``allreduce-P-nN.txt``: the output of ``hpclars bench allreduce`` (the row marked
    ``<- gradient buffer``, and the MODELLED rows for the named links);
  - ``P-nN-{blocking,overlap}-rR.h5``: hpclars run logs (schema: hpclars/log.py).  From the
    last epoch: ``images_per_s`` and the Allreduce share of a step,
    time_allreduce / (time_compute + time_allreduce + time_optim), where time_allreduce is the
    wait for the reduction (with --overlap-allreduce: the part not hidden behind backward).
Prints a Markdown table (and writes it to --out if given): medians over the repeats R, images/s
with its [min-max] over the repeats, and the number of repeats.  Logs that are not completed are left out and counted.
"""

import argparse
import glob
import os
import re
import statistics

from hpclars.log import read_log

PROFILES = ("loopback", "10gbe", "1gbe")
MODES = ("blocking", "overlap")
LINKS = ("100 Gb/s InfiniBand", "10 GbE (TCP)", "1 GbE (TCP)")
LOG_NAME = re.compile(r"(?P<profile>[a-z0-9]+)-n(?P<nodes>\d+)-(?P<mode>blocking|overlap)-r(?P<rep>\d+)\.h5$")


def read_allreduce(path):
    """(measured median us of the gradient buffer, {link: modelled 'lo-hi' us})."""
    measured, modelled = None, {}
    with open(path) as f:
        for line in f:
            if "<- gradient buffer" in line:
                measured = float(line.split()[3])
            for link in LINKS:
                if line.strip().startswith(link):
                    modelled[link] = line.strip()[len(link):].split()[1]
    if measured is None:
        raise ValueError(f"{path}: no '<- gradient buffer' row: not the output of hpclars bench allreduce")
    return measured, modelled


def step_figures(log):
    """(images/s, Allreduce share of a step) at the last epoch of a completed log."""
    e = {k: float(v[-1]) for k, v in log.epochs.items()}
    step = e["time_compute"] + e["time_allreduce"] + e["time_optim"]
    return e["images_per_s"], e["time_allreduce"] / step


def collect(out_dir):
    runs, skipped = {}, 0
    for path in sorted(glob.glob(os.path.join(out_dir, "*.h5"))):
        m = LOG_NAME.search(os.path.basename(path))
        if not m:
            continue
        log = read_log(path)
        if log.status != "completed":
            skipped += 1
            continue
        key = (m["profile"], int(m["nodes"]), m["mode"])
        runs.setdefault(key, []).append(step_figures(log))
    return runs, skipped


def table(out_dir):
    runs, skipped = collect(out_dir)
    if not runs:
        raise SystemExit(f"error: no completed run logs named PROFILE-nN-MODE-rR.h5 in {out_dir}")
    head = ("| network | nodes | Allreduce of the gradient, measured median us | + IB latency (modelled) "
            "| + 10 GbE latency (modelled) | + 1 GbE latency (modelled) | blocking img/s | blocking "
            "Allreduce share | overlapped img/s | overlapped exposed share | overlapped / blocking | repeats |")
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for profile in PROFILES:
        for nodes in sorted({n for p, n, _ in runs if p == profile}):
            txt = os.path.join(out_dir, f"allreduce-{profile}-n{nodes}.txt")
            measured, modelled = read_allreduce(txt) if os.path.exists(txt) else (float("nan"), {})
            cells = [profile, str(nodes), f"{measured:.0f}"] + [modelled.get(link, "-") for link in LINKS]
            med = {}
            for mode in MODES:
                figures = runs.get((profile, nodes, mode), [])
                ips = [f[0] for f in figures] or [float("nan")]
                share = statistics.median(f[1] for f in figures) if figures else float("nan")
                med[mode] = statistics.median(ips)
                cells += [f"{med[mode]:.0f} [{min(ips):.0f}-{max(ips):.0f}]", f"{100 * share:.1f}%"]
            reps = min(len(runs.get((profile, nodes, m), [])) for m in MODES)
            cells += [f"{med['overlap'] / med['blocking']:.2f}", str(reps)]
            lines.append("| " + " | ".join(cells) + " |")
    if skipped:
        lines.append(f"\n{skipped} log(s) not completed were left out.")
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out_dir", help="the directory jobs/bench_network.sh wrote")
    p.add_argument("--out", help="also write the table to this Markdown file")
    args = p.parse_args(argv)
    if not os.path.isdir(args.out_dir):
        raise SystemExit(f"error: {args.out_dir}: not a directory")
    text = table(args.out_dir)
    print(text, end="")
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
