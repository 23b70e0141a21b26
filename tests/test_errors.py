"""Every error names its culprit; outputs are readable by colleagues; the `dial` command line has no
pitfalls. Workflow-level cases run Snakemake dry runs (-n) on a temporary working directory."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

import dial_core.atomic as atomic
from dial_core.atomic import atomic_path, write_json
from dial_core.errors import DialError, OutputError

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SNAKEMAKE = [str(BIN / "snakemake"), "--snakefile", str(ROOT / "Snakefile")]
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
ENV.pop("DIAL_DRY", None)


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*SNAKEMAKE, "--directory", str(workdir), "-n", "--cores", "1", *args],
                          capture_output=True, text=True, env=ENV, cwd=workdir, timeout=300)


def dial(*args: str, dry: bool = False, cwd: Path = ROOT, script: Path = ROOT / "dial") -> subprocess.CompletedProcess:
    env = {**ENV, "DIAL_DRY": "1"} if dry else ENV
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A working directory with the repository's params.yaml."""
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    return tmp_path


def _write(path: Path, data) -> Path:
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def _error_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


# --------------------------------------------------------------------------------------------
# 11a. a bad overlay is reported as that file
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("with_params", [True, False], ids=["params+overlay", "overlay-alone"])
def test_bad_overlay_is_named_not_params_yaml(workdir: Path, with_params: bool) -> None:
    _write(workdir / "bad.yaml", {"pretrain": {"epoch": 3}})
    files = ["params.yaml", "bad.yaml"] if with_params else ["bad.yaml"]
    result = snakemake(workdir, "--configfile", *files)
    assert result.returncode != 0
    assert "error: bad.yaml is invalid:" in result.stderr, result.stderr[-2000:]
    assert "unknown key pretrain.epoch" in result.stderr
    assert "params.yaml is invalid" not in result.stderr
    assert "Traceback" not in result.stderr


def test_each_violation_names_the_source_that_set_it(workdir: Path) -> None:
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["pretrain"]["base_network"]["radius"] = -1
    _write(workdir / "params.yaml", params)
    _write(workdir / "bad.yaml", {"pretrain": {"epoch": 3}, "split": {"val_fraction": 1.5}})
    result = snakemake(workdir, "--configfile", "bad.yaml", "--config", "seed=-1")
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert any(line.startswith("error: invalid parameters (merged from params.yaml, then bad.yaml, then --config)") for line in lines)
    assert "  - params.yaml: pretrain.base_network.radius: -1" in result.stderr
    assert "  - bad.yaml: unknown key pretrain.epoch" in result.stderr
    assert "  - bad.yaml: split.val_fraction: 1.5" in result.stderr
    assert "  - --config: seed: -1" in result.stderr
    assert "Traceback" not in result.stderr


def test_consistency_error_names_the_overlay(workdir: Path) -> None:
    _write(workdir / "short.yaml", {"pretrain": {"epochs": 1}})
    result = snakemake(workdir, "--configfile", "short.yaml")
    assert result.returncode != 0
    lines = _error_lines(result)
    assert len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith("error: params.yaml (pretrain.milestones), short.yaml (pretrain.epochs): pretrain.milestones")


# --------------------------------------------------------------------------------------------
# 11b / 11c. invalid YAML and a missing --configfile: one line with the file (and line)
# --------------------------------------------------------------------------------------------
def test_invalid_yaml_overlay_gives_file_and_line(workdir: Path) -> None:
    broken = _write(workdir / "broken.yaml", "pretrain:\n  epochs: [3\n  lr: 0.1\n")
    result = dial("snakemake", "--directory", str(workdir), "-n", "--cores", "1", "--configfile", str(broken))
    assert result.returncode == 1
    assert _error_lines(result) == [line for line in result.stderr.splitlines() if line.strip()], result.stderr
    (line,) = _error_lines(result)
    assert line.startswith(f"error: {broken}:3:")
    assert "not valid YAML" in line and "line 2" in line


def test_invalid_params_yaml_gives_file_and_line(workdir: Path) -> None:
    (workdir / "params.yaml").write_text("seed: 0\npretrain: [unclosed\n  epochs: 3\n")
    result = dial("demo", "--directory", str(workdir), "-n")
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {workdir / 'params.yaml'}:3:") and "not valid YAML" in line


def test_tabs_in_yaml_say_so(workdir: Path) -> None:
    tabbed = _write(workdir / "tabs.yaml", "pretrain:\n\tepochs: 3\n")
    result = dial("snakemake", "-d", str(workdir), "-n", "--configfile", str(tabbed))
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {tabbed}:2:") and "tabs" in line


def test_missing_configfile_is_one_line(workdir: Path) -> None:
    result = dial("snakemake", "--directory", str(workdir), "-n", "--configfile", str(workdir / "nosuch.yaml"))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: {workdir / 'nosuch.yaml'} (given with --configfile) does not exist; check the path"
    ]
    result = dial("snakemake", "--directory", str(workdir), "-n", "--configfile", "config/nosuch.yaml")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: config/nosuch.yaml (given with --configfile) does not exist; check the path "
        f"(relative paths start from {ROOT})"
    ]


def test_relative_configfile_is_taken_from_where_dial_runs(workdir: Path) -> None:
    _write(workdir / "ov.yaml", {"seed": 3})
    result = dial("snakemake", "-d", ".", "-n", "--configfile", "ov.yaml", dry=True, cwd=workdir)
    assert result.returncode == 0, result.stderr
    words = [os.path.normpath(w) if w.startswith("/") else w for w in result.stdout.split()]
    assert words == ["snakemake", "-d", str(workdir), "-n", "--configfile", str(workdir / "ov.yaml")]


# --------------------------------------------------------------------------------------------
# 11d. an unknown dataset in a target
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("target", ["data/processed/nosuch/split.json", "data/models/pretrain/nosuch/linknet.pt"])
def test_unknown_dataset_target_names_it_and_the_known_ones(workdir: Path, target: str) -> None:
    result = snakemake(workdir, target)
    assert result.returncode != 0
    assert _error_lines(result) == [
        "error: unknown dataset 'nosuch' in a requested file; this run's datasets are synthetic, synthetic_b "
        "(dataset.name and transfer.targets[*].name in params.yaml and the --configfile overlays)"
    ], result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "KeyError" not in result.stderr


# --------------------------------------------------------------------------------------------
# 11e. disk full / read-only output folders end as OutputError naming the path and the fix
# --------------------------------------------------------------------------------------------
def test_read_only_folder_when_creating_the_temp_file(tmp_path: Path, monkeypatch) -> None:
    def refuse(*args, dir=None, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(dir))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    target = tmp_path / "reports" / "metrics.json"
    with pytest.raises(OutputError) as err:
        write_json(target, {"a": 1})
    message = str(err.value)
    assert str(target) in message and "read-only" in message
    assert f"make {tmp_path / 'reports'} writable or choose another working directory" in message


def test_folder_that_cannot_be_created_names_the_existing_parent(tmp_path: Path, monkeypatch) -> None:
    def refuse(self, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    target = tmp_path / "data" / "models" / "x.pt"
    with pytest.raises(OutputError) as err:
        write_json(target, {})
    assert str(target) in str(err.value) and f"make {tmp_path} writable" in str(err.value)


def test_disk_full_on_rename(tmp_path: Path, monkeypatch) -> None:
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    target = tmp_path / "table.csv"
    with pytest.raises(OutputError) as err:
        write_json(target, [1, 2])
    message = str(err.value)
    assert str(target) in message and "the disk is full" in message and "free space on /" in message
    assert not target.exists() and not list(tmp_path.iterdir())  # no temp file left behind


def test_disk_full_while_writing_and_quota(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    for number, words in ((errno.ENOSPC, "the disk is full"), (errno.EDQUOT, "quota")):
        with pytest.raises(OutputError, match=words) as err, atomic_path(target):
            raise OSError(number, os.strerror(number))
        assert str(target) in str(err.value)
    assert not list(tmp_path.iterdir())


def test_real_enospc_from_dev_full(tmp_path: Path) -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    target = tmp_path / "out.json"
    with pytest.raises(OutputError, match="the disk is full"), atomic_path(target) as tmp:
        tmp.unlink()
        tmp.symlink_to("/dev/full")  # the kernel's own ENOSPC on every write
        tmp.write_text("x" * 100_000)
    assert not target.exists()


def test_writer_without_errno_on_a_full_disk(tmp_path: Path, monkeypatch) -> None:
    """torch.save reports a full disk as RuntimeError('... unexpected pos 704 vs 598'); rasterio as
    RasterioIOError('Write failed'). With no space left they end as OutputError, otherwise unchanged."""
    target = tmp_path / "model.pt"
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda p: usage._replace(free=0))
    with pytest.raises(OutputError, match="the disk is full") as err, atomic_path(target):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")
    assert "unexpected pos" in str(err.value)  # the writer's own words stay in the message
    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda p: usage._replace(free=10 << 30))
    with pytest.raises(RuntimeError, match="unexpected pos"), atomic_path(target):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")


def test_errors_that_are_not_about_the_output_pass_through(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    with pytest.raises(FileNotFoundError), atomic_path(target):
        open(tmp_path / "missing-input.tif")  # noqa: SIM115 - an input that is not there
    with pytest.raises(PermissionError), atomic_path(target):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "elsewhere" / "input.tif"))
    with pytest.raises(ValueError), atomic_path(target):
        raise ValueError("a bug")
    assert not list(tmp_path.iterdir())


def test_output_error_is_a_dial_error() -> None:
    assert issubclass(OutputError, DialError)


SCRIPT = """
import sys
from pathlib import Path
sys.path.insert(0, {src!r})
from dial_core.atomic import atomic_path
from dial_core.cli import run_step

def main():
    with atomic_path({out!r}) as tmp:
        tmp.unlink()
        tmp.symlink_to("/dev/full")  # a full disk: every write fails with ENOSPC
        tmp.write_text("x" * 100_000)

run_step(main, log_file={log!r})
"""


def test_full_disk_in_a_script_ends_in_the_rule_log(tmp_path: Path) -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    out, log = tmp_path / "reports" / "out.json", tmp_path / "logs" / "step.log"
    script = tmp_path / "step.py"
    script.write_text(SCRIPT.format(src=str(ROOT / "src"), out=str(out), log=str(log)))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    text = log.read_text()
    assert f"error: cannot write {out}: the disk is full" in text and "free space on" in text
    assert "Traceback" not in text and "Traceback" not in result.stderr
    assert not out.exists()


# --------------------------------------------------------------------------------------------
# 13. outputs get the permissions a plain open() gives
# --------------------------------------------------------------------------------------------
@pytest.fixture(params=[0o022, 0o002], ids=["umask022", "umask002"])
def umask(request):
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def test_write_json_mode_follows_umask(tmp_path: Path, umask: int) -> None:
    write_json(tmp_path / "m.json", {"a": 1})
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o666 & ~umask
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": 1}


def test_other_writers_through_atomic_path_follow_umask(tmp_path: Path, umask: int) -> None:
    import torch

    with atomic_path(tmp_path / "model.pt") as tmp:
        torch.save({"w": torch.zeros(2)}, tmp)
    assert (tmp_path / "model.pt").stat().st_mode & 0o777 == 0o666 & ~umask
    assert atomic.default_file_mode() == 0o666 & ~umask


# --------------------------------------------------------------------------------------------
# 14. the dial script: help without set-up, --configfile / --resources cannot swallow targets
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("word", ["help", "-h", "--help"])
def test_dial_help_lists_commands_without_installing(tmp_path: Path, word: str) -> None:
    lone = tmp_path / "dial"  # a copy with no .venv and no pyproject.toml: set-up would fail
    shutil.copy(ROOT / "dial", lone)
    result = dial(word, script=lone, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Setting up" not in result.stderr and not (tmp_path / ".venv").exists()
    for command in ("demo", "snakemake", "dvc", "test", "python", "setup", "help"):
        assert f"\n  {command}" in result.stdout
    assert "./dial demo --configfile config/studies.yaml" in result.stdout


def test_dial_demo_configfile_then_target(workdir: Path) -> None:
    overlay = _write(workdir / "ov.yaml", {"seed": 3})
    result = dial("demo", "-d", str(workdir), "-n", "--configfile", str(overlay), "report_all", dry=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["snakemake", "--cores", "all", "-d", str(workdir), "-n", "report_all",
                                     "--resources", "gpu=1", "--configfile", str(overlay)]


def test_dial_demo_target_is_not_swallowed_by_resources(workdir: Path) -> None:
    # today `snakemake --cores all --resources gpu=1 report_all` stops with a ValueError traceback
    result = dial("demo", "report_all", "-n", "-d", str(workdir), dry=True)
    assert result.stdout.split() == ["snakemake", "--cores", "all", "report_all", "-n", "-d", str(workdir),
                                     "--resources", "gpu=1"]


def test_dial_snakemake_merges_repeated_configfiles_and_config(workdir: Path) -> None:
    a, b = _write(workdir / "a.yaml", {"seed": 1}), _write(workdir / "b.yml", {"seed": 2})
    result = dial("snakemake", "-n", "-d", str(workdir), "--configfile", str(a), "data_all", "--config", "seed=4",
                  "report_all", "--configfile=" + str(b), "--cores", "2", dry=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["snakemake", "-n", "-d", str(workdir), "data_all", "report_all", "--cores", "2",
                                     "--config", "seed=4", "--configfile", str(a), str(b)]


def test_dial_demo_with_overlay_and_target_plans_that_target(workdir: Path) -> None:
    """The real thing, as a dry run: the overlay is merged onto params.yaml and the target is kept."""
    overlay = _write(workdir / "ov.yaml", {"pretrain": {"epochs": 3, "milestones": [2]}})
    result = dial("demo", "-d", str(workdir), "-n", "--configfile", str(overlay), "data_all")
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "prepare_dataset" in output and "pretrain " not in output
