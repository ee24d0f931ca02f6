"""`mmcurate.cli.main(argv)`: exit codes and the error path (issue 16).

0 on success through a whole small project; 2 with one ``mmcurate: error:`` line and no traceback
for bad input; ``--help`` of every command exits 0; an interrupt gives one line, exit 130, and the
command can simply be run again.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import pytest

from mmcurate.cli import build_parser, main
from mmcurate.embed.importer import write_embedding_folder
from mmcurate.project import open_project
from mmcurate.synth import domain_shift_embeddings

N = 120


@pytest.fixture
def folder(tmp_path):
    """An imported-embedding source (no model needed): 120 pairs, 20% swapped captions."""
    image, text, _, _ = domain_shift_embeddings(N, 16, rate=0.2, random_state=0)
    meta = pd.DataFrame({"key": [f"k{i:03d}" for i in range(N)], "caption": [f"c{i}" for i in range(N)]})
    return write_embedding_folder(tmp_path / "emb", image, text, meta)


@pytest.fixture
def project(tmp_path, folder, capsys):
    assert main(["init", str(tmp_path / "p"), "--embeddings", str(folder)]) == 0
    capsys.readouterr()
    return tmp_path / "p"


def _fails(capsys, argv: list[str], match: str, *, lines: int | None = 1) -> str:
    """``main(argv)`` returns 2 and says ``match`` on stderr after ``mmcurate: error:``, no traceback."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("mmcurate: error:") and match in err, err
    assert "Traceback" not in err
    if lines is not None:
        assert err.count("\n") == lines, err
    return err


def _commands() -> dict[str, argparse.ArgumentParser]:
    """Every subcommand's parser, nested ones (``batch export``) under their full name."""
    found: dict[str, argparse.ArgumentParser] = {}

    def walk(parser: argparse.ArgumentParser, prefix: list[str]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found[" ".join([*prefix, name])] = sub
                    walk(sub, [*prefix, name])

    walk(build_parser(), [])
    return found


def test_a_small_project_flow_exits_0(project, tmp_path, capsys):
    root = str(project)
    for argv in (["status", root], ["status", root, "--json"], ["strategies"],
                 ["rank", root, "--strategy", "margin", "--out", str(tmp_path / "ranked.csv")],
                 ["select", root, "--budget", "10"],
                 ["batch", "export", root, "--out", str(tmp_path / "batch.csv")]):
        assert main(argv) == 0, (argv, capsys.readouterr().err)
    batch = pd.read_csv(tmp_path / "batch.csv", dtype=str, keep_default_na=False)
    assert len(batch) == 10 and len(pd.read_csv(tmp_path / "ranked.csv")) == N
    batch["decision"] = np.where(np.arange(10) % 3 == 0, "reject", "accept")
    batch.to_csv(tmp_path / "decided.csv", index=False)
    for argv in (["label", root, "--import", str(tmp_path / "decided.csv")], ["train", root],
                 ["export", root, "--out", str(tmp_path / "out")]):
        assert main(argv) == 0, (argv, capsys.readouterr().err)
    assert "Traceback" not in capsys.readouterr().err
    assert len(open_project(project).ledger.decisions()) == 10
    assert (tmp_path / "out" / "curated.csv").is_file()


def test_missing_project(tmp_path, capsys):
    for command in ("status", "rank", "train"):
        _fails(capsys, [command, str(tmp_path / "nope")], "is not an mmcurate project")
    _fails(capsys, ["select", str(tmp_path / "nope"), "--budget", "5"], "mmcurate init")


def test_unknown_strategy_lists_the_valid_ones(project, capsys):
    err = _fails(capsys, ["rank", str(project), "--strategy", "nope"], "unknown strategy 'nope'")
    assert "margin" in err
    _fails(capsys, ["select", str(project), "--budget", "5", "--strategy", "nope"], "unknown strategy")
    assert not open_project(project).ledger.rounds().shape[0]  # nothing was queued


def test_bad_files(tmp_path, project, capsys):
    (tmp_path / "empty.csv").write_text("")
    _fails(capsys, ["init", str(tmp_path / "q"), "--pairs", str(tmp_path / "empty.csv")], "is empty")
    (tmp_path / "garbage.parquet").write_bytes(b"not parquet")
    _fails(capsys, ["init", str(tmp_path / "q"), "--pairs", str(tmp_path / "garbage.parquet")],
           "not a readable Parquet file")
    _fails(capsys, ["init", str(tmp_path / "q"), "--pairs", str(tmp_path / "absent.csv")],
           "does not exist")
    _fails(capsys, ["label", str(project), "--import", str(tmp_path / "absent.csv")],
           "cannot read the decisions file")
    (tmp_path / "bad.csv").write_text("x,y\n1,2\n")
    # the decisions-file report lists every problem, one per line, after its summary line
    _fails(capsys, ["label", str(project), "--import", str(tmp_path / "bad.csv")],
           "missing required column(s) ['pair_id', 'decision']", lines=None)


def test_bad_numbers_say_which_option(project, tmp_path, capsys):
    _fails(capsys, ["demo", "--out", str(tmp_path / "demo"), "--budget", "0"],
           "--budget must be positive, got 0")
    assert not (tmp_path / "demo").exists()  # refused before any work
    err = _fails(capsys, ["select", str(project), "--budget", "-3"], "--budget must be positive, got -3")
    assert "n must be positive" not in err  # the library's argument name, not the CLI's option
    _fails(capsys, ["rank", str(project), "--k", "0"], "k (neighbours per pair) must be at least 1")
    _fails(capsys, ["train", str(project)], "no decisions yet")


def test_argparse_errors_exit_2_naming_the_argument(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["export", "p", "--out", "o", "--format", "xlsx"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("mmcurate export: error: argument --format: invalid choice")
    with pytest.raises(SystemExit) as exit_:
        main(["no-such-command"])
    assert exit_.value.code == 2 and "invalid choice: 'no-such-command'" in capsys.readouterr().err


@pytest.mark.parametrize("command", sorted(_commands()))
def test_help_of_every_command_exits_0(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*command.split(), "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: mmcurate {command}")


def test_every_command_is_covered_by_the_help_test():
    """The parametrisation above sees the real command list (a new command joins it by itself)."""
    assert {"init", "embed", "status", "rank", "select", "label", "train", "export", "add", "stream",
            "simulate", "demo", "review", "batch", "batch export", "strategies"} <= set(_commands())


def test_interrupt_is_one_line_exit_130_and_rerun_works(project, monkeypatch, capsys):
    import mmcurate.rounds.project_ranking

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    # patched where it is called: project_ranking imports it at its top
    monkeypatch.setattr(mmcurate.rounds.project_ranking, "compute_from_context", interrupted)
    code = main(["select", str(project), "--budget", "5"])
    err = capsys.readouterr().err
    assert code == 130
    assert err == "mmcurate: interrupted; finished work is saved, re-run to resume\n"
    assert not open_project(project).ledger.rounds().shape[0]  # no half-made round
    monkeypatch.undo()
    assert main(["select", str(project), "--budget", "5"]) == 0
    assert open_project(project).ledger.rounds().shape[0] == 1


def test_init_with_the_wrong_image_root_says_how_to_give_one(tmp_path, capsys):
    from PIL import Image

    (tmp_path / "photos").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "photos" / "a.png")
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "pairs.csv").write_text("image,caption\na.png,one\n")
    assert main(["init", str(tmp_path / "p"), "--pairs", str(tmp_path / "meta" / "pairs.csv"),
                 "--model", "ViT-B-32", "--pretrained", str(tmp_path / "w.bin")]) == 0
    out = capsys.readouterr().out
    assert "1 of 1 rows name an image that is not under the image root" in out
    assert "(by default the pairs file's folder)" in out and "--image-root FOLDER" in out


def test_init_on_a_folder_holding_a_table_names_it(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "captions.csv").write_text("image,caption\n")
    assert main(["init", str(tmp_path / "p"), "--pairs", str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err
    assert "holds no pairs" in err and "it holds captions.csv: pass that file" in err


def test_select_exclude_keeps_a_held_out_set_out_of_every_batch(project, tmp_path, capsys):
    held = [f"k{i:03d}" for i in range(0, N, 3)]
    (tmp_path / "holdout.txt").write_text("\n".join(held) + "\n")
    for seed in range(3):
        assert main(["select", str(project), "--budget", "20", "--seed", str(seed),
                     "--exclude", str(tmp_path / "holdout.txt"), "--allow-undecided"]) == 0
    queued = open_project(project).ledger.queued_pair_ids()
    assert len(queued) == 60 and not queued & set(held)
    pd.DataFrame({"pair_id": ["nope"]}).to_csv(tmp_path / "bad.csv", index=False)
    capsys.readouterr()  # the --allow-undecided warnings of the rounds above
    _fails(capsys, ["select", str(project), "--budget", "5", "--exclude", str(tmp_path / "bad.csv")],
           "not in the project")


def test_select_says_when_the_last_round_is_still_undecided(project, capsys):
    assert main(["select", str(project), "--budget", "5"]) == 0
    proj = open_project(project)
    first = proj.ledger.batch(1)["pair_id"].tolist()
    proj.ledger.record(first[0], "accept")
    capsys.readouterr()
    _fails(capsys, ["select", str(project), "--budget", "5"],
           "round 1 still has 4 of 5 pairs undecided")
    assert open_project(project).ledger.latest_round() == 1  # nothing opened
    assert main(["select", str(project), "--budget", "5", "--allow-undecided"]) == 0
    err = capsys.readouterr().err
    assert "warning: round 1 still has 4 of 5 pairs undecided" in err and "opening round 2" in err
    proj = open_project(project)
    proj.ledger.record_many([{"pair_id": p, "decision": "accept"} for p in proj.ledger.batch(2)["pair_id"]],
                            source="test")
    assert main(["select", str(project), "--budget", "5"]) == 0  # round 2 decided: no word
    assert "undecided" not in capsys.readouterr().err
