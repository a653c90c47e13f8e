"""The run configuration: one frozen dataclass, the only home of defaults.

The CLI builds a :class:`Config` from flags, a preset is a named set of
overrides applied before the flags, and :func:`validate` checks every field
before any expensive work (data loading, MPI communication) starts.  Checks that
need the MPI world size live in :func:`validate_for_world`.

Deliberately left out: anything that depends on the data or the machine.
"""

import dataclasses
import difflib
import json
import math
from dataclasses import dataclass

from .balance import parse_weights

OPTIMIZERS = ("sgd", "lars", "lamb", "adam", "adamw")
SCHEDULES = ("inverse-time", "constant", "poly", "cosine")
LR_SCALING = ("none", "linear", "sqrt")
LARS_DENOMINATORS = ("sum", "norm")
LARS_MODES = ("scale", "clip")
LARS_MOMENTUM = ("inside", "after")
INITS = ("he-normal", "glorot-uniform", "torch-default", "lecun-normal")
# Which tensors get the plain global rate instead of a trust ratio (LARS, LAMB):
# none (the paper's equations adapt every tensor), bias (every 1-D tensor), or
# systemds (SystemDS nn/optim/lars.dml: every 1-D tensor and any tensor with ||w|| < 1e-3).
ADAPTATION_EXCLUDES = ("none", "bias", "systemds")
WEIGHT_DECAY_EXCLUDES = ("none", "bias")   # which tensors get no weight decay
SYSTEMDS_MIN_NORM = 1e-3                   # the ||w|| threshold of the systemds rule

TRAIN_SIZE = 60000
FLOAT32_TINY = 2.0 ** -126  # the smallest normal float32: a smaller adam_eps rounds towards 0


@dataclass(frozen=True)
class Config:
    """Everything that defines a training run.  Defaults are the paper's Table 1."""

    optimizer: str = "sgd"
    batch_size: int = 64            # global batch, shared by all ranks
    epochs: int = 30
    max_steps: int = 0              # 0: no limit beyond epochs
    # Global learning rate and its schedule.
    lr: float = 0.01
    schedule: str = "inverse-time"
    lr_decay: float = 1e-4          # inverse-time: lr / (1 + lr_decay * t)
    warmup_epochs: float = 0.0      # linear warm-up, in epochs (fractions allowed)
    poly_power: float = 2.0         # poly: (1 - progress) ** poly_power
    lr_scaling: str = "none"        # scale lr with batch_size / base_batch_size
    base_batch_size: int = 64
    # Initialisation (model.init_params); he-normal is SystemML's nn library, the paper's platform.
    init: str = "he-normal"
    # Shared optimizer hyperparameters.
    weight_decay: float = 1e-4
    momentum: float = 0.9
    nesterov: bool = False
    # LARS (You, Gitman and Ginsburg 2017, arXiv 1708.03888) and its variants.
    trust_coef: float = 0.001       # eta
    lars_denominator: str = "sum"   # sum: ||g|| + wd*||w||; norm: ||g + wd*w||
    lars_mode: str = "scale"        # scale: lr*local; clip: min(local, lr) (apex LARC)
    lars_momentum: str = "inside"   # inside: Algorithm 1; after: TensorFlow LARSOptimizer
    lars_eps: float = 0.0           # added to the trust-ratio denominator
    exclude_from_adaptation: str = "none"     # see ADAPTATION_EXCLUDES
    exclude_from_weight_decay: str = "none"   # see WEIGHT_DECAY_EXCLUDES
    # Adam-family (LAMB, Adam, AdamW).
    beta1: float = 0.9
    beta2: float = 0.999
    adam_eps: float = 1e-6
    # Run control.
    seed: int = 0
    data_dir: str = ""              # "": $HPCLARS_DATA, else the per-user cache
    out: str = "run.h5"
    overwrite: bool = False
    resume: bool = False
    stop_file: str = ""
    checkpoint_every: int = 1       # epochs between checkpoints; 0: only on a stop
    eval_every: int = 1             # epochs between evaluations (the last epoch always is)
    eval_every_steps: int = 0       # also evaluate the test set every K optimizer steps; 0: off
    target_accuracy: float = 0.0    # stop once a test evaluation reaches it (fraction); 0: off
    mllog: str = ""                 # MLPerf-style log (":::MLLOG {json}" lines) to write; "": none
    chunk_size: int = 256           # images per kernel call; bounds memory
    threads: int = 1                # OpenMP threads per rank
    overlap_allreduce: bool = False  # Iallreduce each layer's gradient as backward produces it
    rank_weights: str = ""          # "w0,w1,...": split the global batch by these relative speeds
    balance_every: int = 0          # re-split the global batch by measured speed every K steps; 0: off
    progress: bool = True
    preset: str = ""

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text):
        return cls(**normalize(json.loads(text)))

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


def normalize(saved):
    """A config dict as read from a log or checkpoint, in today's fields.

    Fields added since the file was written get their defaults (they did not
    exist, so the run used what the default does); the retired ``exclude_bias``
    (one switch for both) becomes ``exclude_from_adaptation`` and
    ``exclude_from_weight_decay`` = "bias".  Returns a new dict.
    """
    d = dict(saved)
    if d.pop("exclude_bias", False):
        d.setdefault("exclude_from_adaptation", "bias")
        d.setdefault("exclude_from_weight_decay", "bias")
    defaults = dataclasses.asdict(Config())
    return {**defaults, **{k: v for k, v in d.items() if k in defaults}}


class ConfigError(ValueError):
    """A bad flag or preset; the message is one line naming it."""


# Presets: named overrides, applied on top of the defaults and under the flags; each holds only
# what differs from the defaults, except that a tuned preset always names its optimizer
# (tests/test_optim.py checks both that and, for the tuned ones, that they equal the committed
# trial they cite).
# The tuned ones come from `hpclars tune` (8 quasi-random trials of lr and warm-up, 30 epochs,
# poly decay, seed 0, batch 8192 and 28000; results/tune/ holds every trial's log and
# summary.json); README.md "Tuning: LARS, LAMB and the baselines with an equal budget" tells how
# they compare.
PRESETS = {
    # The paper's Table 1 is what the Config defaults are: the preset names them, nothing more.
    "paper": {},
    # Best of the lars trials at both 8192 (99.02%) and 28000 (95.29%): trial-01.
    "lars-tuned": dict(optimizer="lars", lr=11.96, schedule="poly", warmup_epochs=3.6),
    # Best lamb trial at 28000 (97.73%), within 0.02 points of the best at 8192 (98.96%
    # against 98.98%): trial-05.
    "lamb-tuned": dict(optimizer="lamb", lr=0.04637, schedule="poly", warmup_epochs=2.49),
    # The baseline: SGD with Nesterov momentum, best trial at 28000 (92.47%), 0.27 points
    # below the best at 8192 (96.61% against 96.88%): trial-03 of the search in lr 0.002-0.1.
    "sgd-tuned": dict(optimizer="sgd", nesterov=True, lr=0.05542, schedule="poly", warmup_epochs=0.83),
    # The Adam baseline (L2 weight decay in the gradient): best trial at both 8192 (98.77%) and
    # 28000 (96.14%) of the search in lr 0.005-0.5, trial-04. A first search in the default box
    # 0.0001-0.05 put its best (98.87% at 8192) at the box's edge, hence the second, wider box.
    "adam-tuned": dict(optimizer="adam", lr=0.01404, schedule="poly", warmup_epochs=4.16),
    # AdamW (decoupled weight decay, 0.01, since 1e-4 times an lr of ~0.01 decays nothing): the
    # same search box; trial-04 again best at both 8192 (98.74%) and 28000 (95.90%).
    "adamw-tuned": dict(optimizer="adamw", lr=0.01404, schedule="poly", warmup_epochs=4.16, weight_decay=0.01),
    # Time to 99% (issue 18): the fastest of 56 trials (7 searches of 8: adam, lamb, lars at
    # batch 256, 512, 1024, 3-epoch budget, poly decay, 2 ranks, ranked by wall clock to 99%),
    # adam-b512 trial-07, and the only one of the four fastest that reached 99% with all of
    # seeds 0, 1, 2 (7.1-8.4 s of wall clock on 2 ranks of the 2-vCPU Xeon; README "Time to
    # accuracy"). A whole recipe: batch, budget, evaluation schedule and target included; run
    # it on 2 ranks (mpiexec -n 2) for the figure. The trial evaluated every 20 steps; every 40
    # halves the evaluations, and the 3 seeds then all stop at step 320 in 6.8-7.3 s
    # (results/tune-ttt/eval40).
    "fast-99": dict(optimizer="adam", lr=0.04257, schedule="poly", warmup_epochs=0.94, epochs=3,
                    batch_size=512, eval_every=3, eval_every_steps=40, target_accuracy=0.99),
}
# The tuned LARS and LAMB settings carried to every batch size by the square-root rule:
# lr(B) = lr_tuned * sqrt(B / 8192), 8192 being the batch they were tuned at. The tuned
# presets keep one lr for all batch sizes, which is far too large at small batch (README.md).
for _name in ("lars", "lamb"):
    PRESETS[f"{_name}-scaled"] = dict(PRESETS[f"{_name}-tuned"], lr_scaling="sqrt", base_batch_size=8192)
del _name

# Where each preset came from, for `hpclars presets` (the comments above give the numbers).
PRESET_ORIGINS = {
    "paper": "Chowdhury, Sharma and Chandrasekar, Table 1, which the defaults are (the preset "
             "overrides nothing)",
    "lars-tuned": "hpclars tune, LARS trial-01 at batch 8192 and 28000 (results/tune/lars-b8192, lars-b28000)",
    "lamb-tuned": "hpclars tune, LAMB trial-05 at batch 8192 and 28000 (results/tune/lamb-b8192, lamb-b28000)",
    "sgd-tuned": "hpclars tune, SGD with Nesterov momentum, trial-03 of lr 0.002-0.1 at batch 8192 and "
                 "28000 (results/tune/sgd-b8192, sgd-b28000)",
    "adam-tuned": "hpclars tune, Adam trial-04 of lr 0.005-0.5 at batch 8192 and 28000 "
                  "(results/tune/adam-wide-b8192, adam-wide-b28000)",
    "adamw-tuned": "hpclars tune, AdamW (weight decay 0.01) trial-04 of lr 0.005-0.5 at batch 8192 and "
                   "28000 (results/tune/adamw-wide-b8192, adamw-wide-b28000)",
    "fast-99": "hpclars tune --objective time-to-target, Adam trial-07 at batch 512 on 2 ranks, 3 epochs "
               "(results/tune-ttt/adam-b512-n2; seeds 0-2 in results/tune-ttt/confirm)",
    "lars-scaled": "lars-tuned with the square-root rule lr * sqrt(B / 8192) (results/paper, README Results)",
    "lamb-scaled": "lamb-tuned with the square-root rule lr * sqrt(B / 8192) (results/paper, README Results)",
}

# Fields that change where a run's files go, how fast it runs or how it is named, not what it
# computes (beyond float rounding): a resume may change them, and the analysis ignores them when
# it decides which runs are repeats of one configuration.
RUN_CONTROL = ("out", "overwrite", "resume", "stop_file", "progress", "data_dir", "threads",
               "chunk_size", "checkpoint_every", "preset", "overlap_allreduce", "mllog",
               "rank_weights", "balance_every")


def field_names():
    return [f.name for f in dataclasses.fields(Config)]


def toml_value(value):
    """A config value as TOML (bool as true/false, strings quoted, numbers as Python writes them)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def format_config(cfg, sources=None):
    """Every field of ``cfg`` as a TOML line ``name = value``, in dataclass order.

    ``sources`` maps a field to where its value came from (e.g. "preset lars-tuned",
    "flag"); such fields get it as a trailing comment, the rest are defaults.
    """
    sources = sources or {}
    lines = [f"{f} = {toml_value(getattr(cfg, f))}" for f in field_names()]
    width = max(map(len, lines))
    return "\n".join(line + (f"{' ' * (width - len(line))}  # {sources[f]}" if f in sources else "")
                     for line, f in zip(lines, field_names()))


def did_you_mean(word, choices):
    """" (did you mean X?)" for the closest of ``choices`` (difflib, as for flags), else ""."""
    guess = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {guess[0]}?)" if guess else ""


def unknown_fields(names, allowed=None):
    """The message for keys that are not config fields (with a guess for each), or ""."""
    allowed = field_names() if allowed is None else allowed
    unknown = [n for n in names if n not in allowed]
    return ", ".join(n + did_you_mean(n, allowed) for n in unknown)


def resolve(preset="", **overrides):
    """Defaults <- preset <- explicit overrides (None means not given), NOT validated.

    For showing a configuration (``--print-config``) even when it would be refused;
    everything else uses :func:`build`.  Raises ConfigError for an unknown preset or field.
    """
    values = {}
    if preset:
        if preset not in PRESETS:
            raise ConfigError(f"--preset: unknown preset {preset!r}"
                              f"{did_you_mean(preset, PRESETS)}; choose from {', '.join(sorted(PRESETS))}")
        values.update(PRESETS[preset])
    values.update({k: v for k, v in overrides.items() if v is not None})
    bad = unknown_fields(values)
    if bad:
        raise ConfigError(f"unknown config field(s): {bad}")
    return Config(preset=preset, **values)


def build(preset="", **overrides):
    """Defaults <- preset <- explicit overrides, then validated."""
    cfg = resolve(preset, **overrides)
    if preset and overrides.get("warmup_epochs") is None and cfg.warmup_epochs > cfg.epochs:
        raise ConfigError(
            f"--warmup-epochs: the preset {preset}'s warm-up of {cfg.warmup_epochs} epochs is longer "
            f"than --epochs {cfg.epochs}; pass --warmup-epochs {_same_share(cfg)} (the same share of "
            f"the run as in the {PRESET_EPOCHS}-epoch runs it was tuned with) or --epochs "
            f"{math.ceil(cfg.warmup_epochs)} or more")
    validate(cfg)
    return cfg


PRESET_EPOCHS = 30  # the tuned presets come from 30-epoch trials


def _same_share(cfg):
    return f"{min(cfg.epochs, cfg.warmup_epochs * cfg.epochs / PRESET_EPOCHS):.3g}"


def _flag(name):
    return "--" + name.replace("_", "-")


def _choice(cfg, name, allowed):
    value = getattr(cfg, name)
    if value not in allowed:
        raise ConfigError(f"{_flag(name)}: {value!r} is not one of {', '.join(allowed)}"
                          f"{did_you_mean(str(value), allowed)}")


def _at_least(cfg, name, low):
    value = getattr(cfg, name)
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= low):
        raise ConfigError(f"{_flag(name)}: must be a number >= {low}, got {value!r}")


def _in_range(cfg, name, low, high):
    value = getattr(cfg, name)
    if not (isinstance(value, (int, float)) and low <= value < high):
        raise ConfigError(f"{_flag(name)}: must be in [{low}, {high}), got {value!r}")


def validate(cfg):
    """Raise ConfigError naming the first bad field; cheap, no I/O beyond nothing."""
    _choice(cfg, "optimizer", OPTIMIZERS)
    _choice(cfg, "schedule", SCHEDULES)
    _choice(cfg, "lr_scaling", LR_SCALING)
    _choice(cfg, "lars_denominator", LARS_DENOMINATORS)
    _choice(cfg, "lars_mode", LARS_MODES)
    _choice(cfg, "lars_momentum", LARS_MOMENTUM)
    _choice(cfg, "init", INITS)
    _choice(cfg, "exclude_from_adaptation", ADAPTATION_EXCLUDES)
    _choice(cfg, "exclude_from_weight_decay", WEIGHT_DECAY_EXCLUDES)
    if not (isinstance(cfg.batch_size, int) and 1 <= cfg.batch_size <= TRAIN_SIZE):
        raise ConfigError(f"--batch-size: must be an integer in [1, {TRAIN_SIZE}], got {cfg.batch_size!r}")
    _at_least(cfg, "epochs", 1)
    _at_least(cfg, "max_steps", 0)
    if not (isinstance(cfg.lr, (int, float)) and math.isfinite(cfg.lr) and cfg.lr > 0):
        raise ConfigError(f"--lr: must be > 0, got {cfg.lr!r}")
    _at_least(cfg, "lr_decay", 0)
    _at_least(cfg, "warmup_epochs", 0)
    _at_least(cfg, "poly_power", 0)
    _at_least(cfg, "base_batch_size", 1)
    _at_least(cfg, "weight_decay", 0)
    _in_range(cfg, "momentum", 0, 1)
    _at_least(cfg, "trust_coef", 0)
    if cfg.trust_coef <= 0:
        raise ConfigError(f"--trust-coef: must be > 0, got {cfg.trust_coef!r}")
    _at_least(cfg, "lars_eps", 0)
    _in_range(cfg, "beta1", 0, 1)
    _in_range(cfg, "beta2", 0, 1)
    if not (isinstance(cfg.adam_eps, (int, float)) and FLOAT32_TINY <= cfg.adam_eps < math.inf):
        raise ConfigError(f"--adam-eps: must be >= 2**-126 = 1.18e-38 (a normal float32; at 0 "
                          f"the update is 0/0 wherever a gradient entry is 0), got {cfg.adam_eps!r}")
    _at_least(cfg, "seed", 0)
    _at_least(cfg, "checkpoint_every", 0)
    _at_least(cfg, "eval_every", 1)
    if not (isinstance(cfg.eval_every_steps, int) and not isinstance(cfg.eval_every_steps, bool)
            and cfg.eval_every_steps >= 0):
        raise ConfigError(f"--eval-every-steps: must be an integer >= 0 (0: off), got {cfg.eval_every_steps!r}")
    _check_target(cfg.target_accuracy)
    _at_least(cfg, "chunk_size", 1)
    _at_least(cfg, "threads", 1)
    if not (isinstance(cfg.balance_every, int) and not isinstance(cfg.balance_every, bool)
            and cfg.balance_every >= 0):
        raise ConfigError(f"--balance-every: must be an integer >= 0 (0: off), got {cfg.balance_every!r}")
    try:
        parse_weights(cfg.rank_weights)
    except ValueError as err:
        raise ConfigError(f"--rank-weights: {err}") from None
    if not cfg.out:
        raise ConfigError("--out: an output path is required")
    if not cfg.out.endswith((".h5", ".hdf5")):
        raise ConfigError(f"--out: {cfg.out!r} must end in .h5 or .hdf5")
    if cfg.overwrite and cfg.resume:
        raise ConfigError("--overwrite and --resume: choose one")
    if cfg.warmup_epochs > cfg.epochs:
        raise ConfigError(f"--warmup-epochs: {cfg.warmup_epochs} is longer than --epochs {cfg.epochs}; "
                          f"pass --warmup-epochs {cfg.epochs} or less")


def _check_target(value):
    """--target-accuracy is 0 (off) or a test accuracy as a fraction in (0, 1]."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (value == 0 or 0 < value <= 1)
    if not ok:
        hint = (f" (did you mean {value / 100:g}?)" if isinstance(value, (int, float))
                and 10 < value <= 100 else "")  # a percentage
        raise ConfigError(f"--target-accuracy: must be a test accuracy as a fraction in (0, 1] "
                          f"(0: no target), got {value!r}{hint}")


def validate_for_world(cfg, world_size):
    """Checks that need the number of ranks."""
    if cfg.batch_size < world_size:
        raise ConfigError(
            f"--batch-size: {cfg.batch_size} is smaller than the {world_size} ranks; "
            "every rank needs at least one image")
    weights = parse_weights(cfg.rank_weights)
    if weights is not None and len(weights) != world_size:
        raise ConfigError(f"--rank-weights: {len(weights)} weight(s) for {world_size} rank(s); give one per rank")
    if cfg.batch_size % world_size and weights is None and not cfg.balance_every:
        raise ConfigError(
            f"--batch-size: {cfg.batch_size} is not divisible by the {world_size} ranks; "
            f"try {cfg.batch_size - cfg.batch_size % world_size} or "
            f"{cfg.batch_size + world_size - cfg.batch_size % world_size} (or split it unequally: "
            "--rank-weights or --balance-every)")


def steps_per_epoch(cfg):
    return TRAIN_SIZE // cfg.batch_size


def total_steps(cfg):
    steps = cfg.epochs * steps_per_epoch(cfg)
    return min(steps, cfg.max_steps) if cfg.max_steps else steps


def describe_steps(cfg):
    """What a run will do, in words: its epochs and steps, and where --max-steps cuts it."""
    spe, total = steps_per_epoch(cfg), total_steps(cfg)
    if total == cfg.epochs * spe:
        return f"{cfg.epochs} epoch(s) x {spe} steps = {total} steps"
    full, rest = divmod(total, spe)
    where = f"in epoch {full + 1}" if rest else f"after epoch {full}"
    return (f"{total} steps (--max-steps {cfg.max_steps} stops it {where} of {cfg.epochs}; "
            f"an epoch is {spe} steps)")


def scaled_lr(cfg):
    """The base learning rate after the batch-size scaling rule."""
    ratio = cfg.batch_size / cfg.base_batch_size
    if cfg.lr_scaling == "linear":
        return cfg.lr * ratio
    if cfg.lr_scaling == "sqrt":
        return cfg.lr * math.sqrt(ratio)
    return cfg.lr
