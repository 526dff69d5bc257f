"""A short atheris run of every harness (tests/fuzz/harnesses.py), each in its own process, seeded
from the hostile-input corpus; a crash (an exception other than the project's own errors, a
timeout or a memory blow-up) fails the test and leaves libFuzzer's reproducer in
``test-artifacts/fuzz/``.

``OLOGIES_FUZZ_SECONDS`` sets the time per harness (default 6: about 2 minutes in all, in CI);
long runs are documented in tests/fuzz/run.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fuzz.harnesses import HARNESSES

REPO = Path(__file__).resolve().parents[2]
SECONDS = int(os.environ.get("OLOGIES_FUZZ_SECONDS", "6"))
ARTIFACTS = REPO / "test-artifacts" / "fuzz"

pytest.importorskip("atheris")


def run_group(args: list[str], *, timeout: float, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``subprocess.run`` in a process group of its own, all of which is killed on timeout
    (``subprocess.run`` kills only the shell: the harness under it would fuzz on)."""
    with subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                          start_new_session=True) as proc:  # fmt: skip
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


@pytest.fixture(scope="module")
def corpus_cases():
    from tests.corpus.make import build

    return build()


@pytest.mark.parametrize("name", sorted(HARNESSES))
def test_harness_finds_no_crash(name, tmp_path, corpus_cases, monkeypatch):
    from tests.corpus import make
    from tests.fuzz.run import write_seeds

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    monkeypatch.setattr(make, "build", lambda *a, **k: corpus_cases)  # built once for all harnesses
    write_seeds(name, corpus)
    # Through a shell that forks: libFuzzer's -rss_limit_mb reads the peak resident size
    # (getrusage), which a process started straight from pytest inherits from pytest (about
    # 900 MB by the time these run), so the limit would have meant 2048 MB less pytest's peak.
    done = run_group(
        ["/bin/sh", "-c", '"$0" "$@"; exit $?', sys.executable, "-m", "tests.fuzz.run", name, f"-max_total_time={SECONDS}", "-rss_limit_mb=2048",
         "-timeout=10", f"-artifact_prefix={ARTIFACTS}/{name}-", "-print_final_stats=1", str(corpus)],
        timeout=SECONDS + 240, env={**os.environ, "PYTHONHASHSEED": "0"},
    )  # fmt: skip
    tail = "\n".join(done.stderr.splitlines()[-40:])
    assert done.returncode == 0, f"fuzzing {name} found a crash (reproducer in {ARTIFACTS}):\n{tail}"
    runs = [line for line in done.stderr.splitlines() if line.startswith("stat::number_of_executed_units")]
    assert runs and int(runs[0].split(":")[-1]) > 0, tail


def test_seeds_only_writes_the_seeds_and_fuzzes_nothing(tmp_path):
    done = subprocess.run([sys.executable, "-m", "tests.fuzz.run", "nhs_number", "--seeds-only", str(tmp_path / "seeds")],
                          cwd=REPO, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    written = list((tmp_path / "seeds").iterdir())
    assert written and f"{len(written)} seeds for nhs_number" in done.stdout
    assert "libFuzzer" not in done.stderr and not list(REPO.glob("oom-*")) and not list(REPO.glob("crash-*"))


@pytest.mark.parametrize("args", [["--help"], ["no-such-harness", "-runs=1"], ["no-such-harness", "--seeds-only", "x"]])
def test_runner_answers_help_and_unknown_harnesses_without_fuzzing(args, tmp_path):
    """``--help`` printed a KeyError traceback; an unknown harness must not start libFuzzer."""
    done = subprocess.run([sys.executable, "-m", "tests.fuzz.run", *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=180, env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    assert "Traceback" not in done.stderr and "libFuzzer" not in done.stderr, done.stderr[-2000:]
    if args == ["--help"]:
        assert done.returncode == 0 and "tests.fuzz.run HARNESS" in done.stdout
    else:
        assert done.returncode == 2 and "unknown harness 'no-such-harness'" in done.stderr
        assert not (tmp_path / "x").exists()


@pytest.mark.timeout(60)  # killing only the shell would hang here: its grandchild holds the pipes
def test_a_timed_out_run_leaves_no_process_behind(tmp_path):
    marker = tmp_path / "alive"
    child = f"import time, pathlib\nwhile True:\n    pathlib.Path({str(marker)!r}).touch(); time.sleep(0.05)"
    with pytest.raises(subprocess.TimeoutExpired):
        run_group(["/bin/sh", "-c", '"$0" "$@"; exit $?', sys.executable, "-c", child], timeout=1.5, env=dict(os.environ))
    marker.unlink(missing_ok=True)
    time.sleep(0.3)
    assert not marker.exists()  # the grandchild was killed with the shell


@pytest.mark.timeout(240)
def test_a_long_run_restarts_past_atheris_growth_and_keeps_its_time(tmp_path):
    """``--for``: with the limit set 70 MB over the harness's starting size, atheris's own growth
    (about 2 kB an execution here) stops a run within seconds; its oom- input replays alone
    within the limit, so the run is restarted on the same corpus until the time is used up."""
    crashes = tmp_path / "crashes"  # made by the runner, as the corpus folder is
    done = run_group([sys.executable, "-m", "tests.fuzz.run", "jpeg_markers", "--for", "25", "-rss_limit_mb=260",
                      "-timeout=10", f"-artifact_prefix={crashes}/", str(tmp_path / "corpus")],
                     timeout=200, env={**os.environ, "PYTHONHASHSEED": "0"})  # fmt: skip
    tail = (done.stdout + done.stderr)[-3000:]
    assert done.returncode == 0, tail
    assert "restarting" in done.stdout and "nothing found" in done.stdout, tail
    kept = [f.name for f in crashes.iterdir()]
    assert kept and all(name.startswith("growth-oom-") for name in kept), kept
