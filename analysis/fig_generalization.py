"""Generalization error vs batch size (paper Fig. 4).

Reads hpclars run logs (schema: analysis/common.py) and writes fig_generalization.png and
.pdf: the final gen_error against the global batch size, one line per optimizer
configuration, mean over seeds with the min-max spread shaded, diverged runs
marked x (counted at chance level).

    python analysis/fig_generalization.py results/paper --out figures
"""

import common

if __name__ == "__main__":
    common.metric_figure_main("fig_generalization")
