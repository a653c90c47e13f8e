"""What a new user meets first: presets they can see, the configuration a command line
resolves to, an honest start line, help that states each default once, a tqdm progress bar
on a terminal and none in a batch log.  Everything runs `hpclars` as a user would."""

import argparse
import fcntl
import os
import pty
import re
import struct
import subprocess
import termios
import threading
import tomllib

import pytest

from _util import assert_ok, in_background, launch, read_log, run, train_args
from hpclars import config as C

TINY = dict(batch_size=512, epochs=1, max_steps=40)


def test_presets_lists_every_preset_with_its_overrides_and_origin():
    proc = run(["presets"])
    assert_ok(proc)
    blocks = proc.stdout.split("\n\n")
    for name, overrides in C.PRESETS.items():
        block = next(b for b in blocks if b.startswith(f"{name}: "))
        assert C.PRESET_ORIGINS[name] in block.splitlines()[0]
        # The indented lines are TOML: they read back as exactly the preset's overrides.
        shown = tomllib.loads("\n".join(line.split("  (= default)")[0].strip()
                                        for line in block.splitlines()[1:] if line.startswith("    ")))
        assert shown == overrides, name


def test_presets_names_an_unknown_preset_with_a_guess():
    proc = run(["presets", "lars-tunde"])
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "hpclars presets: error: unknown preset 'lars-tunde' (did you mean lars-tuned?); choose from "
        + ", ".join(sorted(C.PRESETS))]


def test_print_config_shows_the_resolved_configuration_and_runs_nothing(tmp_path):
    out = tmp_path / "x.h5"
    proc = run(["train", "--preset", "lars-tuned", "--batch-size", "8192", "--lr", "3",
                "--out", out, "--print-config"])
    assert_ok(proc)
    assert not out.exists() and not tmp_path.joinpath("x.ckpt.h5").exists()
    shown = tomllib.loads(proc.stdout)
    expected = C.build("lars-tuned", batch_size=8192, lr=3.0, out=str(out))
    assert shown == {f: getattr(expected, f) for f in C.field_names()}
    lines = {line.split(" = ")[0]: line for line in proc.stdout.splitlines() if " = " in line}
    assert lines["lr"].endswith("# flag") and lines["batch_size"].endswith("# flag")
    assert lines["warmup_epochs"].endswith("# preset lars-tuned")
    assert "#" not in lines["seed"]  # a default


def test_a_presets_warmup_too_long_for_the_run_says_what_to_pass(tmp_path):
    args = ["train", "--preset", "lars-tuned", "--batch-size", "8192", "--epochs", "3",
            "--out", tmp_path / "x.h5"]
    proc = run(args)
    assert proc.returncode == 2 and not (tmp_path / "x.h5").exists()
    message = proc.stderr.strip()
    assert message.startswith("hpclars train: error: --warmup-epochs: the preset lars-tuned's warm-up "
                              "of 3.6 epochs is longer than --epochs 3; pass --warmup-epochs 0.36")
    assert "--epochs 4 or more" in message
    # --print-config still shows the configuration, then the same refusal.
    shown = run(args + ["--print-config"])
    assert shown.returncode == 2 and shown.stderr.strip() == message
    assert tomllib.loads(shown.stdout)["warmup_epochs"] == 3.6
    # Passing what it says is accepted.
    assert_ok(run(args + ["--warmup-epochs", "0.36", "--print-config"]))


@pytest.mark.parametrize("command", [
    ["sweep", "--grid", "jobs/grids/tiny.toml"],
    ["tune", "--optimizer", "lamb", "--batch-size", "1024", "--trials", "2", "--out-dir", "NOWHERE"],
])
def test_sweep_and_tune_print_every_runs_configuration(command, tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = run(command + ["--print-config"], cwd=root)
    assert_ok(proc)
    tasks = proc.stdout.strip().split("\n\n")
    assert len(tasks) == 2 and not os.path.exists(os.path.join(root, "NOWHERE"))
    for i, text in enumerate(tasks):
        assert text.startswith(f"# task {i}: ")
        assert set(tomllib.loads(text)) == set(C.field_names())


def _walk(parser, prefix="hpclars"):
    """Every (command, action) of a parser and its subcommands, nested ones included."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, f"{prefix} {name}")
        elif action.option_strings and action.dest != "help":
            yield prefix, action


def test_every_flag_states_its_default_once():
    from hpclars.cli import make_parser

    flags = list(_walk(make_parser()))
    assert len(flags) > 60
    for command, action in flags:
        text = (action.help or "").lower()
        switch = action.nargs == 0 and not isinstance(action, argparse.BooleanOptionalAction)
        required = action.required or "required" in text
        wanted = (0,) if required else (0, 1) if switch else (1,)
        # The word, not a choice that contains it (--init torch-default).
        count = len(re.findall(r"(?<![-\w])default(?![-\w])", text))
        assert count in wanted, f"{command} {action.option_strings[0]}: {action.help!r}"


def test_help_of_train_shows_the_data_dir_default_once():
    proc = run(["train", "--help"], env={"COLUMNS": "400"})
    assert_ok(proc)
    line = next(line for line in proc.stdout.splitlines() if "MNIST IDX files" in line)
    assert line.count("default") == 1 and "$HPCLARS_DATA" in line


def test_start_line_says_what_will_run(tmp_path, data_dir):
    proc = run(train_args(tmp_path / "a.h5", data_dir, batch_size=64, epochs=1, max_steps=5))
    assert_ok(proc)
    first = proc.stdout.splitlines()[0]
    assert "5 steps (--max-steps 5 stops it in epoch 1 of 1; an epoch is 937 steps)" in first, first
    assert "937 steps/epoch" not in first
    assert read_log(tmp_path / "a.h5").epochs["step"][-1] == 5


@pytest.mark.parametrize("cfg,words", [
    (dict(batch_size=6000, epochs=3), "3 epoch(s) x 10 steps = 30 steps"),
    (dict(batch_size=6000, epochs=3, max_steps=20), "20 steps (--max-steps 20 stops it after epoch 2 of 3;"),
    (dict(batch_size=6000, epochs=3, max_steps=25), "25 steps (--max-steps 25 stops it in epoch 3 of 3;"),
    (dict(batch_size=6000, epochs=3, max_steps=99), "3 epoch(s) x 10 steps = 30 steps"),
])
def test_describe_steps(cfg, words):
    assert C.describe_steps(C.build(**cfg)).startswith(words)


def _run_on_a_terminal(cmd, columns=120):
    """Run with stderr on a pseudo-terminal of the given width; returns (process, stderr bytes)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    chunks = []

    def read():
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the terminal's last writer has gone
                break
            if not data:
                break
            chunks.append(data)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=slave, text=True, timeout=300)
    finally:
        os.close(slave)
        reader.join(10)
        os.close(master)
    return proc, b"".join(chunks).decode(errors="replace")


def test_progress_bar_on_a_terminal_and_none_in_a_batch_log(tmp_path, data_dir):
    args = ["train", "--out", tmp_path / "t.h5", "--data-dir", data_dir, "--progress",
            *[str(x) for k, v in TINY.items() for x in ("--" + k.replace("_", "-"), v)]]
    # stderr a pipe, as in SLURM output (checked below): an independent run with its own log,
    # beside the terminal one (what either draws does not depend on how fast it runs).
    piped = in_background(args[:2] + [tmp_path / "p.h5"] + args[3:])
    proc, stderr = _run_on_a_terminal(launch(args))
    assert_ok(proc)
    assert "epoch 1/1:" in stderr and "/40 [" in stderr and "step/s" in stderr and "loss " in stderr, stderr
    assert "epoch   1/1 step     40" in proc.stdout  # the per-epoch line stays
    # The piped run: no bar at all, the per-epoch lines only.
    proc = piped.result()
    assert_ok(proc)
    assert proc.stderr == "" and "epoch   1/1 step     40" in proc.stdout


def test_no_bar_garbage_under_mpiexec(tmp_path, data_dir):
    """mpiexec hands each rank's stderr to a pipe, so no rank draws a bar even when mpiexec
    itself runs on a terminal: no interleaved carriage returns from 2 ranks, one line per epoch."""
    args = ["train", "--out", tmp_path / "t.h5", "--data-dir", data_dir, "--progress",
            *[str(x) for k, v in TINY.items() for x in ("--" + k.replace("_", "-"), v)]]
    proc, stderr = _run_on_a_terminal(launch(args, ranks=2))
    assert_ok(proc)
    assert "\r" not in stderr and "step/s" not in stderr, stderr
    assert proc.stdout.count("epoch   1/1 step     40") == 1


def test_a_mistyped_choice_gets_a_guess():
    from hpclars import config as C

    with pytest.raises(C.ConfigError, match=r"--init: 'torch-defualt' is not one of .*\(did you mean torch-default\?\)"):
        C.build(init="torch-defualt")
    with pytest.raises(C.ConfigError) as exc:
        C.build(exclude_from_adaptation="zzz")
    assert "did you mean" not in str(exc.value)


def test_schema_command_prints_every_attribute_and_field_with_its_meaning():
    from hpclars import log

    proc = run(["schema"])
    assert_ok(proc)
    rows = [line.split(maxsplit=1) for line in proc.stdout.splitlines() if line.startswith("    ")]
    assert all(len(r) == 2 for r in rows)  # a name and its meaning
    assert {r[0] for r in rows} == {*log.ROOT_ATTRS, *log.GROUPS, *log.EPOCH_FIELDS, *log.TENSOR_FIELDS,
                                   *log.EVAL_FIELDS}
