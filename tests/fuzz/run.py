"""Run one atheris harness (tests/fuzz/harnesses.py) with coverage instrumentation and seeds from
the hostile-input corpus.

    .venv/bin/python -m tests.fuzz.run HARNESS [libFuzzer options]
    .venv/bin/python -m tests.fuzz.run HARNESS --seeds-only DIR      # write its seeds there, fuzz nothing
    .venv/bin/python -m tests.fuzz.run HARNESS --for SECONDS [options] DIR   # a long run (below)
    .venv/bin/python -m tests.fuzz.run --list

Long runs (RELIABILITY.md section 4: 24 CPU-hours per harness before a release), one process
per core, each with a corpus folder it keeps between runs; ``OLOGIES_FUZZ_DEEP=1`` also
instruments the Python parts of the libraries a harness drives (Pillow's plugins, pydicom, pypdf,
python-multipart: better guidance, a slower start, so not in the short CI runs):

    export OLOGIES_FUZZ_DEEP=1
    for h in $(.venv/bin/python -m tests.fuzz.run --list); do
      mkdir -p fuzz-corpus/$h fuzz-crashes/$h
      .venv/bin/python -m tests.fuzz.run $h --for 86400 -rss_limit_mb=2048 -timeout=10 \\
          -artifact_prefix=fuzz-crashes/$h/ fuzz-corpus/$h &
    done

The dicom harness's process grows by about 1.4 kB an execution under atheris (about 2 GB after
1.4 million executions, session 7), while the same inputs through the same harness without
atheris stay flat (117 MB over 200,000 executions): an ``oom-`` file from a long run that
replays in a millisecond at a normal size is that growth, not a finding; restart long runs (a
kept corpus folder loses nothing) rather than raising the limit for everything. ``--for SECONDS``
does that: it fuzzes in as many runs as it takes, restarting on the same corpus folder after an
``oom-`` input that replays alone within the limit (kept as ``growth-oom-...``), and stops at any
other finding. The fast harnesses reach 2 GB that way within minutes (jpeg_markers, at about
6,000 executions a second, in 80 s; jpeg in about 8 minutes; session 9).

Without a corpus folder of its own, a temporary one is made and seeded. A crash is written by
libFuzzer as ``crash-<sha1>`` (``timeout-``, ``oom-``) under ``-artifact_prefix``; replay it with

    .venv/bin/python -m tests.fuzz.run HARNESS fuzz-crashes/HARNESS/crash-...

then add it to ``tests/corpus/regressions.py`` with the fix.
"""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any


def seed_inputs(name: str, limit: int = 300) -> list[bytes]:
    """Seeds for one harness: corpus files of its kinds, plus hand-made inputs for the text
    parsers and the multipart receivers."""
    from tests.fuzz.harnesses import HARNESSES

    harness = HARNESSES[name]
    special = _special_seeds(name)
    if special is not None:
        return special
    from tests.corpus.make import build

    seeds: list[bytes] = []
    for case in build():
        if len(case.data) > harness.max_len or not case.data:
            continue
        if any(case.id.startswith(p) or f"-{p}" in case.id for p in harness.seed_prefixes):
            seeds.append(case.data)
    seen: set[bytes] = set()
    unique = [s for s in seeds if not (s in seen or seen.add(s))]  # type: ignore[func-returns-value]
    step = max(1, len(unique) // limit)
    return unique[::step][:limit]


def _multipart(boundary: str, parts: list[tuple[str, bytes]]) -> bytes:
    out = b""
    for headers, body in parts:
        out += f"--{boundary}\r\n{headers}\r\n\r\n".encode() + body + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def _special_seeds(name: str) -> list[bytes] | None:
    from tests import dicomgen, imagegen

    if name == "nhs_number":
        return [s.encode() for s in ("9434765919", "943 476 5919", "943-476-5919", " 9434765919 ", "9434765918",
                                     "９４３４７６５９１９", "٩٤٣٤٧٦٥٩١٩", "0000000000", "9990000018", "TMP-REM-123",
                                     "9.434765919e9", "+9434765919", "", "94347659190", "TMP-" + "A" * 80)]  # fmt: skip
    if name == "person_name":
        return [s.encode() for s in ("O'Brien\x00Siân", "Llŷr\x00Dafydd", "Smith–Jones\x00Zoë", "张\x00伟", "a^b\x00c=d",
                                     "back\\slash\x00x", "\u202eevil\x00x", "A" * 65 + "\x00B", " \x00 ", "Zoe\u0308\x00x")]  # fmt: skip
    jpg = imagegen.jpeg(imagegen.photo(16, 12))
    if name == "multipart_form":
        fields = [(f'Content-Disposition: form-data; name="{k}"', v.encode()) for k, v in
                  (("nhs_number", "9990000018"), ("family_name", "O'Brien"), ("consent", "clinical-care"))]  # fmt: skip
        body = _multipart("XyZ", [*fields, ('Content-Disposition: form-data; name="file"; filename="a.jpg"\r\nContent-Type: image/jpeg', jpg)])
        return [body, b"!multipart/form-data; boundary=XyZ\n" + body, b"!multipart/form-data; boundary=\"" + b"\\" * 40 + b"\"\n" + body,
                b"\r\n" * 200 + body, _multipart("XyZ", fields * 30)]  # fmt: skip
    if name == "multipart_related":
        dcm = dicomgen.part10(dicomgen.photo_dataset(pixels=imagegen.photo(16, 12), sop_uid="1.2.3.4", study_uid="1.2.3", series_uid="1.2.3.5"))
        body = _multipart("XyZ", [("Content-Type: application/dicom", dcm), ("Content-Type: application/dicom\r\nContent-Location: a", dcm[:300])])
        return [body, b'!multipart/related; type="application/dicom+json"; boundary=XyZ\n' + body,
                b"!application/dicom\n" + dcm, b'!multipart/related; boundary=XyZ\n' + body]  # fmt: skip
    return None


def write_seeds(name: str, folder: Path) -> int:
    """The harness's seeds as files in ``folder``, named by their content; returns how many."""
    seeds = seed_inputs(name)
    for seed in seeds:
        (folder / uuid.uuid5(uuid.NAMESPACE_OID, seed.hex()[:2000]).hex).write_bytes(seed)
    return len(seeds)


def supervise(name: str, seconds: float, args: list[str], *, log: Any = print) -> int:
    """Fuzz ``name`` for ``seconds`` in all, in as many runs as it takes: a run that ends with an
    ``oom-`` input which, replayed alone in a fresh process, stays within the limit was stopped by
    the fuzzing process's own growth under atheris (2 to 14 kB an execution in the harnesses that
    grow: dicom, heic, jpeg, jpeg_markers) and is restarted on the same corpus folder, the input kept as ``growth-oom-...``.
    Any other ending (a crash, a timeout, an out-of-memory that replays) stops it: 1 and the
    artifact's name. Returns 0 when the time is used up without a finding."""
    import subprocess
    import time

    corpus = [a for a in args if not a.startswith("-")]
    options = [a for a in args if a.startswith("-") and not a.startswith("-max_total_time=")]
    if not corpus:  # restarts need one folder that keeps what earlier runs found
        corpus = [tempfile.mkdtemp(prefix=f"ologies-fuzz-{name}-")]
    Path(corpus[0]).mkdir(parents=True, exist_ok=True)  # (seeded by the first run when empty)
    prefix = next((a.split("=", 1)[1] for a in options if a.startswith("-artifact_prefix=")), "./")
    artifacts = Path(prefix).parent if not prefix.endswith("/") else Path(prefix)
    stem = "" if prefix.endswith("/") else Path(prefix).name
    artifacts.mkdir(parents=True, exist_ok=True)  # libFuzzer would fail to write the finding
    limit = [a for a in options if a.startswith("-rss_limit_mb=")]  # the replay is held to it too
    deadline, runs, restarts = time.monotonic() + seconds, 0, 0
    while (remaining := int(deadline - time.monotonic())) > 0:
        before = set(artifacts.glob(f"{stem}*"))
        runs += 1
        done = subprocess.run([sys.executable, "-m", "tests.fuzz.run", name, f"-max_total_time={remaining}", *options, *corpus])
        if done.returncode == 0:
            break
        found = sorted(set(artifacts.glob(f"{stem}*")) - before)
        ooms = [f for f in found if f.name[len(stem):].startswith("oom-")]
        if not found or len(ooms) != len(found):
            log(f"{name}: run {runs} ended with {done.returncode}: {', '.join(map(str, found)) or 'no artifact'}")
            return 1
        for oom in ooms:
            replay = subprocess.run([sys.executable, "-m", "tests.fuzz.run", name, *limit, str(oom)], capture_output=True)
            if replay.returncode != 0:
                log(f"{name}: {oom} runs out of memory alone too: a finding")
                return 1
            oom.rename(oom.with_name(f"{stem}growth-{oom.name[len(stem):]}"))
        restarts += 1
        log(f"{name}: run {runs} reached the memory limit by atheris's growth (its input replays within it); restarting")
    log(f"{name}: {seconds:g} s fuzzed in {runs} run(s), {restarts} restart(s), nothing found")
    return 0


def _unknown_harness(name: str, known: Any) -> int:
    print(f"unknown harness {name!r}; one of: {', '.join(known)}", file=sys.stderr)
    return 2


def main(argv: list[str]) -> int:
    if argv[:1] == ["--list"]:
        from tests.fuzz.harnesses import HARNESSES

        print("\n".join(HARNESSES))
        return 0
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    name, libfuzzer_args = argv[0], argv[1:]
    if "--for" in libfuzzer_args:  # a long run, restarted past atheris's own growth
        at = libfuzzer_args.index("--for")
        try:
            seconds = float(libfuzzer_args[at + 1])
        except (IndexError, ValueError):
            print("--for needs a number of seconds", file=sys.stderr)
            return 2
        return supervise(name, seconds, libfuzzer_args[:at] + libfuzzer_args[at + 2 :])
    if "--seeds-only" in libfuzzer_args:  # write the seeds, fuzz nothing
        at = libfuzzer_args.index("--seeds-only")
        if at + 1 >= len(libfuzzer_args):
            print("--seeds-only needs a folder")
            return 2
        from tests.fuzz.harnesses import HARNESSES  # nothing is fuzzed after: no instrumenting

        if name not in HARNESSES:
            return _unknown_harness(name, HARNESSES)
        folder = Path(libfuzzer_args[at + 1])
        folder.mkdir(parents=True, exist_ok=True)
        print(f"{write_seeds(name, folder)} seeds for {name} written to {folder}")
        return 0
    import atheris

    with atheris.instrument_imports(include=["converters", "repository", "web", "ingest", "search"]):
        from tests.fuzz import harnesses
    if name not in harnesses.HARNESSES:  # (checked after the instrumented import: before, it
        # would import the harnesses' modules uninstrumented)
        return _unknown_harness(name, harnesses.HARNESSES)
    harness = harnesses.HARNESSES[name]
    deep = os.environ.get("OLOGIES_FUZZ_DEEP", "") == "1"
    if deep and harness.instrument:  # third-party parsers the harness drives (their Python parts)
        with atheris.instrument_imports(include=list(harness.instrument)):
            for module in harness.instrument:
                __import__(module)
    # warm up: imports done inside the harness functions happen now, instrumented
    with atheris.instrument_imports(include=["converters", "repository", "web", "ingest", "search",
                                             *(harness.instrument if deep else ())]):  # fmt: skip
        try:
            harness.run(b"")
        except BaseException:  # noqa: BLE001 - only the imports matter here
            pass
    corpus_dirs = [a for a in libfuzzer_args if not a.startswith("-")]
    if not corpus_dirs:  # a fresh temporary corpus, seeded
        folder = Path(tempfile.mkdtemp(prefix=f"ologies-fuzz-{name}-"))
        write_seeds(name, folder)
        libfuzzer_args.append(str(folder))
    elif Path(corpus_dirs[0]).is_dir() and not any(Path(corpus_dirs[0]).iterdir()):
        write_seeds(name, Path(corpus_dirs[0]))
    if not any(a.startswith("-max_len=") for a in libfuzzer_args):
        libfuzzer_args.append(f"-max_len={harness.max_len}")
    allowed = harness.allowed

    def one_input(data: bytes) -> None:
        try:
            harness.run(data)
        except allowed:
            pass

    import logging
    import warnings

    warnings.simplefilter("ignore")  # pydicom and Pillow warn about the inputs, by design
    logging.disable(logging.CRITICAL)
    atheris.Setup([sys.argv[0], *libfuzzer_args], one_input)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main(sys.argv[1:]))
