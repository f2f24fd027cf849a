"""Outputs never destroy an input or a special file, a failed write is one line naming the
output with nothing lost, sets of outputs appear together, usage errors are one line, and
what a killed run leaves beside an output is reclaimed by the next run."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cli_support import assert_one_line_error, checksums, nowcast_process
from predict_support import make_checkpoint, write_frames
from test_preprocess_cli import SMALL, _frame
from typer.testing import CliRunner

from nowcast.atomic import reclaim, write_text_atomic
from nowcast.cli import app
from nowcast.data.toy import write_blob_store
from nowcast.evaluate.stage import REPORT_FILES
from nowcast.store import read_meta

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def archive(tmp_path):
    """Three small CF radar files in tmp/in."""
    folder = tmp_path / "in"
    folder.mkdir()
    for k in range(3):
        _frame(folder / f"a_{k}.nc", 6 * k)
    return folder


@pytest.fixture(scope="module")
def radar(tmp_path_factory):
    """Five predict-sized frames and a tiny checkpoint for them."""
    root = tmp_path_factory.mktemp("trust_predict")
    files = write_frames(root / "in", [0, 6, 12, 18, 24])
    ckpt = make_checkpoint(root / "ckpt.pt", files[0])
    return root, files, ckpt


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("trust_store") / "store.nc"
    return write_blob_store(path, ("test", "test"), h=16, w=16, block_len=20, seed=1)


def _preprocess(*args):
    return runner.invoke(app, ["preprocess", "-q", *SMALL, *args])


def _predict(ckpt, inputs, out, *extra):
    args = ["predict", "-q", "--checkpoint", str(ckpt), "--out", str(out), *extra]
    for p in inputs:
        args += ["--input", str(p)]
    return runner.invoke(app, args)


def _evaluate(store, out, *extra):
    base = ["evaluate", "-q", "--set", f"data.store={store}", "--set", "data.n_in=3"]
    base += ["--set", "data.n_out=4", "--baselines", "persistence", "--out", str(out)]
    return runner.invoke(app, [*base, *extra])


def _alias(target: Path, how: str, where: Path) -> Path:
    """``target`` itself, or a symlink / hard link to it at ``where``."""
    if how == "same":
        return target
    (os.symlink if how == "symlink" else os.link)(target, where)
    return where


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# --------------------------------------------------------------- an output that is an input


@pytest.mark.parametrize("how", ["same", "symlink", "hardlink"])
def test_preprocess_output_that_is_an_input_is_refused(archive, tmp_path, how):
    before = checksums(archive)
    out = _alias(archive / "a_1.nc", how, tmp_path / "link.nc")
    result = _preprocess("--input", str(archive), "--output", str(out))
    assert_one_line_error(result, f"data.store (--output): {out} is one of the inputs")
    assert checksums(archive) == before
    assert _hidden(tmp_path) == [] and _hidden(archive) == []


@pytest.mark.parametrize("how", ["same", "symlink", "hardlink"])
def test_predict_out_or_gif_that_is_an_input_is_refused(radar, tmp_path, how):
    root, files, ckpt = radar
    before = checksums(root)
    out = _alias(files[0], how, tmp_path / "link.nc")
    result = _predict(ckpt, [root / "in"], out)
    assert_one_line_error(result, f"--out: {out} is one of the inputs")
    result = _predict(ckpt, [root / "in"], tmp_path / "n.nc", "--gif", str(out))
    assert_one_line_error(result, f"--gif: {out} is one of the inputs")
    assert checksums(root) == before and not (tmp_path / "n.nc").exists()


def test_predict_out_that_is_the_checkpoint_is_refused(radar, tmp_path):
    root, _, ckpt = radar
    before = checksums(root)
    result = _predict(ckpt, [root / "in"], ckpt)
    assert_one_line_error(result, f"--out: {ckpt} is one of the inputs")
    result = _predict(ckpt, [root / "in"], tmp_path / "n.nc", "--gif", str(tmp_path / "n.nc"))
    assert_one_line_error(result, "--gif: ", "is also given as --out")
    assert checksums(root) == before


def test_evaluate_report_folder_holding_an_input_or_other_files_is_refused(store, tmp_path):
    inside = tmp_path / "rep"
    inside.mkdir()
    shutil.copy(store, inside / "store.nc")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("keep me")
    before = checksums(tmp_path)
    result = _evaluate(inside / "store.nc", inside)
    assert_one_line_error(result, f"{inside} holds the input {inside / 'store.nc'}")
    result = _evaluate(store, tmp_path / "notes")
    assert_one_line_error(result, f"{tmp_path / 'notes'} holds {tmp_path / 'notes' / 'mine.txt'}")
    result = _evaluate(store, store)
    assert_one_line_error(result, f"evaluate.out (--out): {store} is a file, expected a folder")
    assert checksums(tmp_path) == before


# ------------------------------------------------------------------- special or wrong kinds


def _special(kind: str, tmp_path: Path) -> Path:
    if kind == "device":
        return Path("/dev/null")
    path = tmp_path / f"special_{kind}"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
        sock.close()
    else:
        path.mkdir()
    return path


@pytest.mark.parametrize("kind", ["device", "fifo", "socket", "directory"])
def test_special_outputs_are_refused_before_any_work(archive, radar, store, tmp_path, kind):
    path = _special(kind, tmp_path)
    mode = os.stat(path).st_mode
    expected = "is a directory, expected a file name" if kind == "directory" else "is a "
    result = _preprocess("--input", str(archive), "--output", str(path))
    line = assert_one_line_error(result, f"data.store (--output): {path} {expected}")
    assert kind == "directory" or "not a regular file; refusing to replace it" in line
    root, _, ckpt = radar
    result = _predict(ckpt, [root / "in"], tmp_path / "n.nc", "--gif", str(path))
    assert_one_line_error(result, f"--gif: {path} {expected}")
    if kind != "directory":  # folder outputs: anything but a folder is refused
        result = _evaluate(store, path)
        assert_one_line_error(result, f"evaluate.out (--out): {path} is a ", "expected a folder")
        result = runner.invoke(app, ["synth", "-q", "--out", str(path), "--days", "1"])
        assert_one_line_error(result, f"synth.out: {path} is a ", "expected a folder")
    assert os.stat(path).st_mode == mode  # still the same kind of thing (e.g. a device)
    assert not (tmp_path / "n.nc").exists() and _hidden(tmp_path) == []


def test_synth_out_an_existing_file_is_refused(tmp_path):
    blocker = tmp_path / "archive"
    blocker.write_text("not a folder")
    result = runner.invoke(app, ["synth", "-q", "--out", str(blocker), "--days", "1"])
    assert_one_line_error(result, f"synth.out: {blocker} is a file, expected a folder")
    assert blocker.read_text() == "not a folder"


# ------------------------------------------------------------------------ unwritable places


def test_unwritable_places_are_refused_before_any_work(archive, radar, store, tmp_path):
    """A file stands where a folder should be: every stage says so, naming the path."""
    blocker = tmp_path / "file"
    blocker.write_text("a file")
    where = f"cannot write there: {blocker} is a file, not a folder"
    result = _preprocess("--input", str(archive), "--output", str(blocker / "s.nc"))
    assert_one_line_error(result, str(blocker / "s.nc"), where)
    result = runner.invoke(app, ["synth", "-q", "--out", str(blocker / "a"), "--days", "1"])
    assert_one_line_error(result, f"synth.out: {blocker / 'a'}: {where}")
    result = _evaluate(store, blocker / "r")
    assert_one_line_error(result, f"{blocker / 'r'}: {where}")
    root, _, ckpt = radar
    good = tmp_path / "a.nc"
    good.write_bytes(b"the previous nowcast")
    for option in ("--gif", "--png"):
        result = _predict(ckpt, [root / "in"], good, option, str(blocker / "x"))
        assert_one_line_error(result, f"{option}: {blocker / 'x'}: {where}")
    assert good.read_bytes() == b"the previous nowcast" and blocker.read_text() == "a file"
    assert _hidden(tmp_path) == []


def _can_mount() -> str | None:
    """None where `unshare -rm` may mount here, else why not."""
    if shutil.which("unshare") is None:
        return "no unshare command"
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", "mount -t tmpfs tmpfs /tmp"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return None if probe.returncode == 0 else f"mounting not allowed: {probe.stderr.strip()}"


def _in_mount_namespace(
    setup: str, args: list[str], after: str = ""
) -> subprocess.CompletedProcess:
    """Run the shell ``setup`` (mounts) then ``nowcast ARGS`` then ``after`` in a new user and
    mount namespace; the exit code is nowcast's."""
    py = " ".join(f"'{a}'" for a in [sys.executable, "-B", "-m", "nowcast", *args])
    return subprocess.run(
        ["unshare", "-rm", "sh", "-c", f"{setup} && {{ {py}; rc=$?; {after} exit $rc; }}"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def _read_only(folder: Path) -> str:
    return f"mount --bind '{folder}' '{folder}' && mount -o remount,ro,bind '{folder}'"


@pytest.mark.parametrize("stage", ["preprocess", "predict", "evaluate", "synth"])
def test_read_only_file_system_is_one_line_and_keeps_the_old_output(
    archive, radar, store, tmp_path, stage
):
    reason = _can_mount()
    if reason:
        pytest.skip(reason)
    ro = tmp_path / "ro"
    ro.mkdir()
    root, _, ckpt = radar
    old = {
        "preprocess": ro / "s.nc",
        "predict": ro / "n.nc",
        "evaluate": ro / "report" / "report.json",
        "synth": ro / "synth" / "manifest.json",
    }[stage]
    old.parent.mkdir(parents=True, exist_ok=True)
    old.write_text("previous good output")
    out = old.parent if stage in ("evaluate", "synth") else old
    args = {
        "preprocess": ["preprocess", *SMALL, "--input", str(archive), "--output", str(out)],
        "predict": ["predict", "--checkpoint", str(ckpt), "--input", str(root / "in")],
        "evaluate": ["evaluate", "--set", f"data.store={store}", "--baselines", "persistence"],
        "synth": ["synth", "--days", "1", "--out", str(out)],
    }[stage]
    if stage in ("predict", "evaluate"):
        args += ["--out", str(out)]
    entries = sorted(str(p) for p in ro.rglob("*"))
    proc = _in_mount_namespace(_read_only(ro), args)
    assert_one_line_error(proc, str(out), "read-only file system")
    assert old.read_text() == "previous good output"
    assert sorted(str(p) for p in ro.rglob("*")) == entries


# ----------------------------------------------------------------- disk full / size limit


def _limit_file_size(limit: int):
    import resource

    def set_limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    return set_limit


@pytest.mark.parametrize("how", ["ulimit -f", "disk full"])
def test_preprocess_store_write_failure_is_one_line_and_keeps_the_old_store(archive, tmp_path, how):
    """The store (~140 kB here) does not fit: the old store stays, nothing half-written."""
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / "s.nc"
    result = _preprocess("--input", str(archive), "--output", str(out))
    assert result.exit_code == 0, result.output
    before = checksums(archive, out)
    args = ["preprocess", "-q", *SMALL, "--input", str(archive), "--output", str(out)]
    if how == "ulimit -f":
        env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
        proc = nowcast_process(*args, preexec_fn=_limit_file_size(60_000), env=env, cwd=REPO)
        hint = "a file-size limit (ulimit -f) of 60000 bytes is set"
    else:
        reason = _can_mount()
        if reason:
            pytest.skip(reason)
        # a 200 kB file system holding the old store (copied in by the shell): no room for two
        keep = tmp_path / "old.nc"
        shutil.copy(out, keep)
        setup = f"mount -t tmpfs -o size=200k tmpfs '{folder}' && cp '{keep}' '{out}'"
        after = f"cmp -s '{keep}' '{out}' || echo changed >&2; ls -A '{folder}' >&2;"
        proc = _in_mount_namespace(setup, args, after)
        assert proc.stderr.count("\n") == 2 and proc.stderr.endswith("\ns.nc\n"), proc.stderr
        proc.stderr = proc.stderr[: -len("s.nc\n")]  # what ls saw: the old store only
        hint = "o space left on device"
    line = assert_one_line_error(proc, f"{out}: cannot write it")
    assert hint in line or "disk is full" in line, line
    assert checksums(archive, out) == before
    assert sorted(p.name for p in folder.iterdir()) == ["s.nc"]


# ---------------------------------------------------------------- sets of outputs, swaps


def test_predict_writes_its_outputs_together(radar, tmp_path):
    """A failure while writing the set (here: the GIF, after the nowcast file and the PNGs
    were written) leaves every earlier output as it was."""
    root, _, ckpt = radar
    out, gif, png = tmp_path / "n.nc", tmp_path / "n.gif", tmp_path / "png"
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
    args = ["predict", "-q", "--checkpoint", str(ckpt), "--input", str(root / "in")]
    args += ["--out", str(out), "--gif", str(gif), "--png", str(png)]
    args += ["--set", "predict.leads=2", "--set", "predict.dpi=500"]
    first = nowcast_process(*args, env=env, cwd=REPO)
    assert first.returncode == 0, first.stderr
    before = checksums(tmp_path)
    # a file-size limit between the largest other output and the GIF (at 500 dpi and 2
    # leads the GIF is the largest file) lets all but the GIF be written
    others = max(p.stat().st_size for p in [out, *png.iterdir()])
    assert gif.stat().st_size > others + 2_000, (gif.stat().st_size, others)
    limit = (others + gif.stat().st_size) // 2
    proc = nowcast_process(*args, preexec_fn=_limit_file_size(limit), env=env, cwd=REPO)
    assert_one_line_error(proc, f"{gif}: cannot write it", "ulimit -f")
    assert checksums(tmp_path) == before
    assert _hidden(tmp_path) == [] and _hidden(png) == []


def test_evaluate_replaces_the_report_folder_in_one_step(store, tmp_path):
    out = tmp_path / "report"
    assert _evaluate(store, out).exit_code == 0
    assert sorted(os.listdir(out)) == sorted(REPORT_FILES)
    (out / "report.json").write_text("{}")  # an "old" report to be replaced
    inode = os.stat(out).st_ino
    result = _evaluate(store, out, "--set", "evaluate.thresholds_mmh=[0.5, 5]")
    assert result.exit_code == 0, result.output
    assert os.stat(out).st_ino != inode  # a new folder took the old one's place
    assert sorted(os.listdir(out)) == sorted(REPORT_FILES)
    assert '"thresholds_mmh": [\n   0.5,\n   5.0' in (out / "report.json").read_text()
    assert sorted(os.listdir(tmp_path)) == ["report"]


# ---------------------------------------------------------------------------- temp names


def test_a_planted_symlink_at_the_old_temp_name_is_not_followed(radar, tmp_path):
    """Temp names are random and made exclusively: a link planted where the old fixed name
    ``.<name>.<pid>.tmp`` was never redirects a write (and is not reclaimed: its pid lives)."""
    root, _, ckpt = radar
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    plant = tmp_path / f".n.nc.{os.getpid()}.tmp"
    plant.symlink_to(victim)
    result = _predict(ckpt, [root / "in"], tmp_path / "n.nc")
    assert result.exit_code == 0, result.output
    write_text_atomic(tmp_path / "n.nc", "text")
    assert victim.read_text() == "precious" and plant.is_symlink()
    assert sorted(os.listdir(tmp_path)) == sorted([plant.name, "n.nc", "victim.txt"])


# ------------------------------------------------------------------------ usage and size


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["synth", "--start", "2024-13-45"], "synth: Invalid value for '--start'"),
        (["predict", "--out", "x.nc"], "predict: Missing option '--checkpoint'"),
        (["evaluate", "--bogus"], "evaluate: No such option: --bogus"),
        (["train", "--nproc", "0"], "train: Invalid value for '--nproc'"),
        (["nosuchcommand"], "No such command 'nosuchcommand'"),
    ],
)
def test_usage_errors_are_one_line(tmp_path, args, fragment):
    result = runner.invoke(app, args)
    assert_one_line_error(result, fragment, "--help`)")


def test_usage_error_in_a_real_process_and_help_still_works(tmp_path):
    proc = nowcast_process("synth", "--start", "2024-13-45", "--out", str(tmp_path / "s"))
    assert_one_line_error(proc, "Invalid value for '--start'", "2024-13-45")
    assert not (tmp_path / "s").exists()
    assert runner.invoke(app, ["synth", "--help"]).exit_code == 0
    bare = runner.invoke(app, [])
    assert bare.exit_code == 2 and "Usage" in bare.stdout


def test_absurd_synth_days_are_refused_at_once(tmp_path):
    result = runner.invoke(app, ["synth", "--days", "100000000", "--out", str(tmp_path / "s")])
    assert_one_line_error(result, "synth.days: 100000000 days", "more than the 1000000")
    result = runner.invoke(
        app, ["synth", "--start", "9999-12-30", "--days", "3", "--out", str(tmp_path / "s")]
    )
    assert_one_line_error(result, "synth.days: 3 days from 9999-12-30 run past the year 9999")
    assert not (tmp_path / "s").exists()


# --------------------------------------------------------------------- killed runs reclaimed


def _killed_child(code: str) -> None:
    """Run ``code`` in a real Python process until it prints 'ready', then SIGKILL it."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    script = textwrap.dedent(code) + "\nprint('ready', flush=True)\nimport time; time.sleep(300)\n"
    child = subprocess.Popen(
        [sys.executable, "-B", "-c", script], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert child.stdout.readline().strip() == "ready"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
        child.stdout.close()


def test_preprocess_reclaims_what_a_killed_run_left(archive, tmp_path):
    out = tmp_path / "s.nc"
    _killed_child(
        f"""
        import numpy as np
        from pathlib import Path
        from nowcast.preprocess.spool import Spool
        from nowcast.store import StoreWriter
        out = Path({str(out)!r})
        spool = Spool(out, 20)
        spool.append(np.zeros((20, 20), np.uint8), np.ones((20, 20), bool))
        writer = StoreWriter(out, np.array(['2024-05-01'], 'datetime64[s]'), np.arange(20.0),
                             np.arange(20.0), {{}}, {{}})
        """
    )
    left = _hidden(tmp_path)
    assert [n.split("-")[0] for n in left] == [".s.nc.part", ".s.nc.spool"], left
    alive = tmp_path / f".s.nc.part-{os.getpid()}-abcdefgh.tmp"  # a running process's
    alive.write_text("in use")
    other = tmp_path / ".s.nc.spool-notapid"
    other.mkdir()
    result = _preprocess("--input", str(archive), "--output", str(out))
    assert result.exit_code == 0, result.output
    assert read_meta(out).valid.sum() == 3
    assert _hidden(tmp_path) == sorted([alive.name, other.name])


def test_evaluate_reclaims_a_killed_runs_folder_and_restores_a_half_swapped_report(store, tmp_path):
    out = tmp_path / "report"
    _killed_child(
        f"""
        from pathlib import Path
        from nowcast.atomic import make_temp_dir
        tmp = make_temp_dir(Path({str(out)!r}), "report")
        (tmp / "report.json").write_text("half")
        old = make_temp_dir(Path({str(out)!r}), "old")  # died between the two renames
        (old / "x").mkdir()
        (old / "x" / "report.md").write_text("the old report")
        """
    )
    assert len(_hidden(tmp_path)) == 2 and not out.exists()
    assert [p.name for p in reclaim(out)] and (out / "report.md").read_text() == "the old report"
    assert _hidden(tmp_path) == []
    _killed_child(
        f"""
        from pathlib import Path
        from nowcast.atomic import make_temp_dir
        (make_temp_dir(Path({str(out)!r}), "report") / "report.json").write_text("half")
        """
    )
    assert len(_hidden(tmp_path)) == 1
    result = _evaluate(store, out)
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(out)) == sorted(REPORT_FILES)
    assert _hidden(tmp_path) == []
