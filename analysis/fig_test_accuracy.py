"""Test accuracy vs batch size (paper Fig. 2).

Reads hpclars run logs (schema: analysis/common.py) and writes fig_test_accuracy.png and
.pdf: the final test_acc against the global batch size, one line per optimizer
configuration, mean over seeds with the min-max spread shaded, diverged runs
marked x (counted at chance level).

    python analysis/fig_test_accuracy.py results/paper --out figures
"""

import common

if __name__ == "__main__":
    common.metric_figure_main("fig_test_accuracy")
