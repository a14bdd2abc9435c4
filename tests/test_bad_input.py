"""Bad input corpus: each case exits 2 with one clear line on stderr and no traceback, before any
model is loaded (these run in seconds because nothing heavy is imported)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from conftest import run_cli, write_image_data, write_text_data


def _cfg(tmp: Path, body: str) -> Path:
    p = tmp / "c.toml"
    p.write_text(body)
    return p


def _csv(tmp: Path, rows: list[list[str]], name: str = "d.csv") -> Path:
    p = tmp / name
    with p.open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    return p


def case_missing_file(tmp):
    return _cfg(tmp, '[task]\ntrain = "nope.csv"\n'), "does not exist"


def case_empty_file(tmp):
    (tmp / "d.csv").write_text("")
    return _cfg(tmp, '[task]\ntrain = "d.csv"\n'), "is empty"


def case_header_only(tmp):
    (tmp / "d.csv").write_text("text,label\n")
    return _cfg(tmp, '[task]\ntrain = "d.csv"\n'), "no examples"


def case_unparseable_csv(tmp):
    (tmp / "d.csv").write_text('text,label\n"unclosed quote,a\nfine,b\n')
    return _cfg(tmp, '[task]\ntrain = "d.csv"\n'), "cannot parse as CSV"


def case_binary_file(tmp):
    (tmp / "d.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00binary")
    return _cfg(tmp, '[task]\ntrain = "d.csv"\n'), "binary"


def case_not_utf8(tmp):
    (tmp / "d.csv").write_bytes("text,label\ncaf\xe9 au lait,a\nthe tea,b\n".encode("latin-1"))
    return _cfg(tmp, '[task]\ntrain = "d.csv"\n'), "UTF-8"


def case_bad_jsonl(tmp):
    (tmp / "d.jsonl").write_text('{"text": "a", "label": "x"}\n{not json}\n')
    return _cfg(tmp, '[task]\ntrain = "d.jsonl"\n'), "d.jsonl:2"


def case_no_label_column(tmp):
    _csv(tmp, [["text", "other"]] + [[f"sentence number {i} is unique here", f"v{i}"] for i in range(30)])
    return _cfg(tmp, '[task]\ntrain = "d.csv"\n'), "label column"


def case_named_column_missing(tmp):
    write_text_data(tmp / "d.csv")
    return _cfg(tmp, '[task]\ntrain = "d.csv"\nlabel_column = "category"\n'), "'category' is not a column"


def case_one_class(tmp):
    _csv(tmp, [["text", "label"]] + [[f"some text {i}", "only"] for i in range(20)])
    return _cfg(tmp, '[task]\ntrain = "d.csv"\n'), "only one class"


def case_class_too_small(tmp):
    _csv(tmp, [["text", "label"]] + [[f"text {i}", "a" if i < 10 else "b"] for i in range(11)])
    return _cfg(tmp, '[task]\ntrain = "d.csv"\n'), "class 'b' has only 1"


def case_wrong_type(tmp):
    write_text_data(tmp / "d.csv")
    return _cfg(tmp, '[task]\ntrain = "d.csv"\n[train]\nepochs = "three"\n'), "epochs must be an integer"


def case_out_of_range(tmp):
    write_text_data(tmp / "d.csv")
    return _cfg(tmp, '[task]\ntrain = "d.csv"\nvalidation = 1.5\n'), "validation must be at most"


def case_unknown_key(tmp):
    write_text_data(tmp / "d.csv")
    return _cfg(tmp, '[task]\ntrain = "d.csv"\n[train]\nepoch = 3\n'), "did you mean 'epochs'"


def case_bad_choice(tmp):
    write_text_data(tmp / "d.csv")
    return _cfg(tmp, '[task]\ntrain = "d.csv"\n[train]\nstrategy = "everything"\n'), "strategy must be one of"


def case_invalid_toml(tmp):
    return _cfg(tmp, '[task\ntrain = "d.csv"\n'), "invalid TOML"


def case_config_missing(tmp):
    return tmp / "absent.toml", "does not exist"


def case_unknown_model_folder(tmp):
    write_text_data(tmp / "d.csv")
    return _cfg(tmp, '[task]\ntrain = "d.csv"\n[model]\nid = "./no-such-model"\n'), "not a model folder"


def case_corrupt_image(tmp):
    write_image_data(tmp / "imgs", n_per_class=3, size=16)
    (tmp / "imgs" / "red_h" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not really a png")
    return _cfg(tmp, '[task]\nmodality = "image"\ntrain = "imgs"\n'), "corrupt or unreadable image"


def case_image_folder_without_classes(tmp):
    (tmp / "imgs").mkdir()
    return _cfg(tmp, '[task]\nmodality = "image"\ntrain = "imgs"\n'), "no class sub-folders"


def case_offline_nothing_available(tmp):
    write_text_data(tmp / "d.csv")
    return _cfg(
        tmp, '[task]\ntrain = "d.csv"\n[constraints]\noffline = true\nlicenses = ["no-such-license"]\n'
    ), "no candidate model"


def case_cuda_requested_without_gpu(tmp):
    write_text_data(tmp / "d.csv")
    return _cfg(tmp, '[task]\ntrain = "d.csv"\n[constraints]\ndevice = "gpu"\n'), "device must be"


def case_cuda_index_this_machine_lacks(tmp):
    write_text_data(tmp / "d.csv")
    return _cfg(tmp, '[task]\ntrain = "d.csv"\n[constraints]\ndevice = "cuda:99"\n'), 'device = "cuda:99" but'


def case_unknown_best_metric(tmp):
    write_text_data(tmp / "d.csv")
    return _cfg(tmp, '[task]\ntrain = "d.csv"\n[train]\nmetric = "f1"\n'), "[train] metric must be one of"


CASES = [v for k, v in sorted(globals().items()) if k.startswith("case_")]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__[5:] for c in CASES])
def test_bad_input_exits_2_with_one_line(tmp_path, case):
    config, expected = case(tmp_path)
    assert_refused(tmp_path, config, expected)


def test_cuda_without_a_gpu_is_one_line_about_the_gpu(tmp_path):
    """Not "no candidate fits in 0.0 GB": the device itself is what is wrong."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    write_text_data(tmp_path / "d.csv")
    config = _cfg(tmp_path, '[task]\ntrain = "d.csv"\n[constraints]\ndevice = "cuda"\n')
    assert_refused(tmp_path, config, 'device = "cuda" but no CUDA GPU was detected')


def assert_refused(tmp_path: Path, config: Path, expected: str) -> None:
    proc = run_cli("--batch", str(config), "--json", "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert expected in lines[0], lines[0]
    assert proc.stdout.strip() == "" or all(ln.startswith("{") for ln in proc.stdout.splitlines())
    # refused before any run (and so any model) was started
    runs = tmp_path / "runs"
    assert not runs.exists() or not any(runs.iterdir())


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--bogus"], "unrecognized arguments"),
        (["predict"], "required"),
        (["attach", "no-such-run"], "no run 'no-such-run'"),
        (["cancel", "no-such-run"], "no run 'no-such-run'"),
        (["resume", "no-such-run"], "no run 'no-such-run'"),
        (["recommend", "missing.toml"], "does not exist"),
        (["recommend", "x.toml", "--top", "0"], "--top must be at least 1"),
    ],
)
def test_usage_errors(tmp_path, argv, expected):
    proc = run_cli(*argv, cwd=tmp_path, timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and expected in lines[0], proc.stderr
