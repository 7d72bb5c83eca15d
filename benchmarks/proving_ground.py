"""Run the workbench on a proving-ground suite and score it against the known answers.

``python benchmarks/proving_ground.py --split dev --seeds-per-mode 2``: generates every
mode of every family the split draws (cached under ``/tmp/proving_ground/<split>/``, reused
while the scenario is unchanged), diagnoses each case in a pool of worker processes
(``--runner api`` calls ``diagnose`` in-process, ``--runner cli`` runs
``.venv/bin/workbench diagnose CASE --json``), scores it with ``proving_ground.score`` and
writes ``benchmarks/results/proving_ground_<split>.json`` and ``.md`` (figures per family,
mode, grain and magnitude bucket, a confidence reliability table, and the command that
reproduces them). A case whose generation or diagnosis raises is recorded as a failure
and counts as missed; the run goes on.

``--modes feature/slice_confined --first-seed 3 --seeds-per-mode 12`` runs more seeds of some modes only (the
dev report of the extra seeds: ``benchmarks/results/dev_more_seeds/``).

Tune on ``--split dev`` only. ``--split held`` is the held-back check: run it, read it,
do not tune on it. On the held split the progress lines and the report carry aggregates only
(no case's verdict, no list of the incidents whose top cause was wrong: those are a list of
what to tune for); the results JSON keeps every case.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import traceback
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

DEFAULT_MAX_ROWS = 500_000  # benchmark cases; the generator's own default cap is 2M


def _confidence_map() -> dict[str, float]:
    """The confidence map the answers were made with (benchmarks/fit_confidence.py undoes it to refit)."""
    from workbench.rca import _confidence

    return {"a": _confidence.PLATT_A, "b": _confidence.PLATT_B, "first": _confidence.PLATT_FIRST}


def _provenance() -> dict[str, object]:
    """The commit and library versions that made a result: a figure is reproducible only with both.

    ``constraints.txt`` locks the environment, but a result measured before the lock (or in another environment)
    may score a borderline case differently; a result file that names its versions says whether two runs are
    comparable."""
    from importlib.metadata import PackageNotFoundError, version

    def commit() -> str | None:
        try:
            head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
            dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "workbench/*.py", "proving_ground/*.py"],
                                   capture_output=True, text=True, check=True)
        except (OSError, subprocess.CalledProcessError):
            return None  # not a git checkout (an unpacked release)
        return head.stdout.strip() + ("+uncommitted" if dirty.stdout.strip() else "")

    libs = {}
    for name in ("polars", "numpy", "scipy", "scikit-learn", "torch", "pyarrow"):
        try:
            libs[name] = version(name)
        except PackageNotFoundError:
            libs[name] = None
    return {"commit": commit(), "python": sys.version.split()[0], "libraries": libs}


def _case(sc_dict: dict, cache: Path, fresh: bool = False) -> tuple[Path, float]:
    """Generate the case unless an identical one (same scenario, same generator version) is cached.

    Returns (path, seconds spent generating)."""
    from proving_ground import Scenario, generate
    from proving_ground.generate import GENERATOR_VERSION

    sc = Scenario.from_dict(sc_dict)
    path = cache / f"{sc.name}"
    truth = path / "truth.json"
    if truth.exists() and not fresh:
        try:
            t = json.loads(truth.read_text(encoding="utf-8"))
            if t.get("scenario_key") == sc.key() and t.get("generator_version") == GENERATOR_VERSION:
                return path, 0.0
        except (OSError, ValueError):
            pass
    shutil.rmtree(path, ignore_errors=True)
    tmp = cache / f".{sc.name}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    t = time.perf_counter()
    generate(sc, tmp)
    tmp.rename(path)
    return path, time.perf_counter() - t


def _diagnose(case: Path, runner: str, timeout: float) -> dict:
    if runner == "cli":
        exe = ROOT / ".venv" / "bin" / "workbench"
        proc = subprocess.run([str(exe), "diagnose", str(case), "--json"], capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"exit {proc.returncode}: {proc.stderr.strip()[-500:]}")
        return json.loads(proc.stdout)
    try:
        from workbench import diagnose  # the public namespace, when it exists
    except ImportError:
        from workbench.rca import diagnose
    d = diagnose(case)
    return json.loads(json.dumps(d.to_dict(), default=str))


def run_one(sc_dict: dict, cache: str, runner: str, timeout: float, fresh: bool = False) -> dict:
    """Worker: generate (or reuse), diagnose, score. Never raises: failures are records."""
    from proving_ground import score
    from proving_ground.score import load_truth

    rec: dict = {"scenario": f"{sc_dict['family']}/{sc_dict['mode']}/{sc_dict['seed']}", "failure": None}
    try:
        case, gen_s = _case(sc_dict, Path(cache), fresh)
    except Exception as exc:  # a generator bug: report it, do not stop the suite
        rec.update(failure=f"generate: {type(exc).__name__}: {exc}", traceback=traceback.format_exc(limit=4),
                   family=sc_dict["family"], mode=sc_dict["mode"], seed=sc_dict["seed"])
        return rec
    rec["generate_seconds"] = round(gen_s, 2)
    truth = load_truth(case)
    t = time.perf_counter()
    try:
        answer = _diagnose(case, runner, timeout)
        rec["answer"] = {"anomaly": answer.get("anomaly"), "root_causes": [
            {k: c.get(k) for k in ("kind", "target", "change", "slice", "confidence", "mitigations")}
            for c in (answer.get("root_causes") or [])[:3]], "skipped": answer.get("skipped"), "errors": answer.get("errors")}
        rec.update(score(case, answer, truth=truth))
    except Exception as exc:
        rec.update(score(case, {}, truth=truth))
        rec.update(failure=f"diagnose: {type(exc).__name__}: {exc}"[:600], traceback=traceback.format_exc(limit=4)[-2000:])
        for k in ("detected", "first", "top3", "sparse_handled"):  # a crash is a miss wherever the score applies
            if rec.get(k) is not None or (k == "detected" and rec.get("incident")):
                rec[k] = False
        if rec.get("control"):
            rec["false_alarm"] = None
    rec["diagnose_seconds"] = round(time.perf_counter() - t, 2)
    rec["rows"] = truth.get("rows")
    rec["truth_effect"] = truth.get("effect")
    return rec


# --------------------------------------------------------------------------- report
def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.0f}%"


def _num(v: float | None) -> str:
    return "–" if v is None else f"{v:.2f}"


COLUMNS = ("group", "cases", "fail", "incidents", "detected", "first", "top-3", "change", "slice named",
           "onset \\|err\\| (periods, median)", "onset ≤1", "end found", "mitigation ≥0.5", "where possible", "controls",
           "false alarms", "sparse", "sparse handled", "errors")  # a report table's header, one separator cell each


def _table(title: str, groups: dict[str, list[dict]]) -> list[str]:
    from proving_ground.score import summarize

    lines = [f"### {title}", "", "| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    for name, rows in groups.items():
        s = summarize(rows)
        lines.append(f"| {name} | {s['cases']} | {s['failures']} | {s['incidents']} | {_pct(s['detected'])} | {_pct(s['first'])} | "
                     f"{_pct(s['top3'])} | {_pct(s['change_correct'])} | {_pct(s['slice_named'])} | "
                     f"{_num(s['onset_abs_error_median'])} | {_pct(s['onset_within_1'])} | {_pct(s['end_found'])} | "
                     f"{_pct(s['mitigation_recovers'])} | {_pct(s['mitigation_recovers_possible'])} | "
                     f"{s['controls']} | {_pct(s['false_alarm'])} | {s['sparse']} | "
                     f"{_pct(s['sparse_handled'])} | {s['errors']} |")
    return [*lines, ""]


def report(rows: list[dict], meta: dict) -> str:
    from proving_ground.score import reliability, summarize

    s = summarize(rows)
    lines = [f"# Proving ground: {meta['split']} split", "",
             f"Reproduce: `{meta['command']}`", "",
             f"{s['cases']} cases ({s['incidents']} detectable incidents, {s['controls']} controls, {s['sparse']} too sparse), "
             f"runner `{meta['runner']}`, max {meta['max_rows']:,} rows per case, "
             f"{meta['seconds']:.0f} s wall on {meta['workers']} workers. "
             "Rates count only the cases where the score applies (detection and causes: incidents the generator made detectable "
             "by construction; false alarms: controls; sparse handled: too-sparse logs). A case whose run raised is a failure and "
             "counts as missed. \"Where possible\" leaves out the incidents where no action could recover half of the regression "
             "(a segment's change corrected exactly in the served predictions recovers less: `proving_ground.score.ceiling`). "
             "Score definitions: `proving_ground/score.py`.", ""]
    if meta.get("libraries"):  # results written before provenance was recorded have none
        lines += [f"Code {str(meta.get('commit'))[:12]}, Python {meta['python']}, "
                  + ", ".join(f"{k} {v}" for k, v in meta["libraries"].items()) + ".", ""]
    undetectable = [r for r in rows if r.get("incident") and r.get("detectable") is False]
    if undetectable:
        lines += [f"{len(undetectable)} incident(s) stayed below the detectability bar even after escalation (row cap): "
                  + ", ".join(r["scenario"] for r in undetectable) + "; left out of the rates.", ""]
    by_fam, by_mode, by_grain, by_mag = defaultdict(list), defaultdict(list), defaultdict(list), defaultdict(list)
    for r in rows:
        by_fam[r.get("family", "?")].append(r)
        by_mode[f"{r.get('family', '?')}/{r.get('mode', '?')}"].append(r)
        by_grain[str(r.get("grain"))].append(r)
        if r.get("incident"):
            by_mag[str(r.get("magnitude_bucket"))].append(r)
    lines += _table("All cases", {"all": rows})
    lines += _table("By family", dict(sorted(by_fam.items())))
    lines += _table("By mode", dict(sorted(by_mode.items())))
    lines += _table("By grain the workbench chose", dict(sorted(by_grain.items())))
    lines += _table("Incidents by realized magnitude", {k: by_mag[k] for k in ("small", "medium", "large", "None") if k in by_mag})
    rel = reliability(rows)
    lines += ["### Confidence reliability (top cause right, by its confidence)", "",
              "| band | n | right | stated (mean) | right, exact 95 % interval |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {b['band']} | {b['n']} | {_pct(b['right'])} | {b['stated']:.3f} | "
              f"{b['interval'][0]:.2f}-{b['interval'][1]:.2f} |" for b in rel] or ["| – | 0 | – | – | – |"]
    fails = [r for r in rows if r.get("failure")]
    if fails:
        lines += ["", "### Failures", ""] + [f"- {r['scenario']}: {r['failure'][:300]}" for r in fails]
    misses = [r for r in rows if r.get("incident") and r.get("first") is False and not r.get("failure")]
    if misses and meta.get("split") == "held":
        kept = sum(1 for r in misses if r.get("detectable") is not False)
        lines += ["", f"{kept} detectable incident(s) whose top cause was wrong (and {len(misses) - kept} the generator left "
                  "undetectable): on the held split the list stays in the results JSON."]
    elif misses:
        lines += ["", "### Incidents whose top cause was wrong", "",
                  "| case | truth | top answer | confidence | note |", "| --- | --- | --- | --- | --- |"]
        lines += [f"| {r['scenario']} | {r['kind']}:{r['target']} | {r.get('top')} | {_num(r.get('confidence'))} | "
                  f"{'not detectable by construction (left out of the rates)' if r.get('detectable') is False else ''} |"
                  for r in misses]
    lines += ["", f"Generation: median {_num(_median([r.get('generate_seconds') for r in rows]))} s per case (0 when cached); "
              f"diagnosis: median {_num(_median([r.get('diagnose_seconds') for r in rows]))} s per case."]
    return "\n".join(lines) + "\n"


def _median(xs: list) -> float | None:
    xs = sorted(x for x in xs if isinstance(x, (int, float)) and x > 0)
    return xs[len(xs) // 2] if xs else None


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    from proving_ground import FAMILIES, suite

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", choices=["dev", "held"], default="dev")
    ap.add_argument("--seeds-per-mode", type=int, default=1)
    ap.add_argument("--first-seed", type=int, default=0, help="offset into the split's seed range")
    ap.add_argument("--families", nargs="+", choices=list(FAMILIES), default=None)
    ap.add_argument("--modes", nargs="+", default=None, metavar="FAMILY/MODE",
                    help="only these modes (e.g. feature/slice_confined): more seeds of one mode without the rest")
    ap.add_argument("--out", type=Path, default=None, help="case cache (default /tmp/proving_ground/<split>/)")
    ap.add_argument("--results", type=Path, default=HERE / "results", help="where the .json and .md go")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--runner", choices=["api", "cli"], default="api")
    ap.add_argument("--max-rows", type=int, default=DEFAULT_MAX_ROWS)
    ap.add_argument("--variety", action="store_true", help="format-variety sweep: odd names, dtypes, layouts")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per case (cli runner)")
    ap.add_argument("--fresh", action="store_true", help="regenerate cached cases")
    ap.add_argument("--report-from", type=Path, default=None, help="rewrite the .md from a results .json, run nothing")
    args = ap.parse_args(argv)
    if args.report_from:
        saved = json.loads(args.report_from.read_text(encoding="utf-8"))
        args.report_from.with_suffix(".md").write_text(report(saved["cases"], saved["meta"]), encoding="utf-8")
        return 0

    cache = args.out or Path("/tmp/proving_ground") / (args.split + ("-variety" if args.variety else ""))
    cache.mkdir(parents=True, exist_ok=True)
    if args.modes:
        known = {f"{s.family}/{s.mode}" for s in suite(args.split, 1, families=args.families, max_rows=args.max_rows)}
        unknown = sorted(set(args.modes) - known)
        if unknown:
            ap.error(f"--modes: {', '.join(unknown)} not drawn by the {args.split} split; one of {', '.join(sorted(known))}")
        args.families = sorted({m.split("/")[0] for m in args.modes})
    scenarios = suite(args.split, args.seeds_per_mode, families=args.families, max_rows=args.max_rows,
                      variety=args.variety, first_seed=args.first_seed)
    if args.modes:
        scenarios = [s for s in scenarios if f"{s.family}/{s.mode}" in args.modes]
    cmd = "python benchmarks/proving_ground.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    print(f"{len(scenarios)} cases -> {cache} ({args.workers} workers, runner {args.runner})", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    rows: list[dict] = []
    signal.signal(signal.SIGTERM, _interrupt)
    if args.workers > 1:
        # one BLAS thread per worker: each worker's numpy would otherwise start a thread per core, and two workers on
        # two cores oversubscribe them (120 dev controls through the detector twice: 9.4 min, 6.5 with one thread
        # each). The spawned workers read these when they import numpy.
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, "1")
    pool = ProcessPoolExecutor(max_workers=args.workers, mp_context=mp.get_context("spawn"))
    try:
        futs = {pool.submit(run_one, sc.to_dict(), str(cache), args.runner, args.timeout, args.fresh): sc for sc in scenarios}
        for k, fut in enumerate(as_completed(futs), 1):
            sc = futs[fut]
            try:
                r = fut.result()
            except Exception as exc:  # the worker process itself died
                r = {"scenario": f"{sc.family}/{sc.mode}/{sc.seed}", "family": sc.family, "mode": sc.mode, "seed": sc.seed,
                     "failure": f"worker: {type(exc).__name__}: {exc}"}
            rows.append(r)
            verdict = ("FAIL " + r["failure"][:120]) if r.get("failure") else "scored" if args.split == "held" else (
                f"top={r.get('top')} first={r.get('first')} detected={r.get('detected')} false_alarm={r.get('false_alarm')} "
                f"sparse={r.get('sparse_handled')}")
            print(f"[{k}/{len(scenarios)}] {r['scenario']}: {verdict} (gen {r.get('generate_seconds', '-')} s, "
                  f"diag {r.get('diagnose_seconds', '-')} s)", file=sys.stderr, flush=True)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: stop the workers too, do not leave them running
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            proc.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        print("interrupted: no results written", file=sys.stderr)
        return 130
    pool.shutdown()
    rows.sort(key=lambda r: r["scenario"])
    meta = {"split": args.split, "command": cmd, "runner": args.runner, "workers": args.workers, "max_rows": args.max_rows,
            "seconds": time.perf_counter() - t0, "variety": args.variety, "seeds_per_mode": args.seeds_per_mode,
            "confidence_map": _confidence_map(), "load": os.getloadavg(), **_provenance()}
    from proving_ground.score import reliability, summarize

    args.results.mkdir(parents=True, exist_ok=True)
    stem = f"proving_ground_{args.split}" + ("_variety" if args.variety else "")
    (args.results / f"{stem}.json").write_text(json.dumps(
        {"meta": meta, "summary": summarize(rows), "reliability": reliability(rows), "cases": rows}, indent=1, default=str),
        encoding="utf-8")
    (args.results / f"{stem}.md").write_text(report(rows, meta), encoding="utf-8")
    s = summarize(rows)
    print(f"done in {meta['seconds']:.0f} s: detected {_pct(s['detected'])}, first {_pct(s['first'])}, top-3 {_pct(s['top3'])}, "
          f"false alarms {_pct(s['false_alarm'])}, sparse handled {_pct(s['sparse_handled'])}, failures {s['failures']} "
          f"-> {args.results / stem}.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
