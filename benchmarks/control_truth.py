"""How far the proving ground's controls really move: the served model's noise-free calibration.

A control is a log where the generator caused no incident, but its nuisances (a weekly cycle the model
does not see, organic drift, a traffic mix) still move the served model's calibration. This script
regenerates each development control in memory, keeps each row's noise-free click probability (which
the written case does not carry), and reports

- per control, the range over days of the calibration Σ prediction / Σ probability on labelled rows,
  in log (6-hour blocks for logs under three days);
- per routine refresh, its mean prediction over the first snapshot's on the rows it served (a refresh
  should change ranking detail, not calibration: generator version 5 left the first snapshot
  uncalibrated, and its first refresh stepped);
- with ``--alarms RESULTS.json`` (a ``proving_ground.py`` run on the same controls), for each false
  alarm on the calibration ratio, the noise-free log move from the week before the flagged onset to the
  flagged window, beside the move the logged clicks show.

    python benchmarks/proving_ground.py --split dev --families control --seeds-per-mode 133 --results /tmp/rctl
    python benchmarks/control_truth.py --seeds 0 133 --alarms /tmp/rctl/proving_ground_dev.json \
        --out benchmarks/results/control_truth.json

``--alarms-only RESULTS.json ...`` regenerates only the false alarms of one or more ``proving_ground.py`` control
runs, of either split (a held-back draw that has been measured: its false alarms' headlines are what may be read),
and prints each flagged window's noise-free and logged move, inside its segment when the alarm names one.

The generator's incident bar is 0.10 in log (``proving_ground.metrics.CAL_MIN``): a control whose own
move reaches it is, in the noise-free truth, as large as an incident the generator calls material.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from proving_ground.scenario import draw
from proving_ground.world import DAY_US, HOUR_US, sigmoid

_generate = importlib.import_module("proving_ground.generate")
MODES = ("quiet", "organic_drift", "traffic_mix")


class _InMemory(_generate._Gen):
    """The generator up to the files: its rows, served predictions and labels stay in memory."""

    def _write(self, frng: np.random.Generator) -> None:
        self.served = self.p


def generated(mode: str, seed: int, max_rows: int, split: str = "dev") -> _InMemory:
    sc = draw("control", split, seed, mode=mode, max_rows=max_rows)
    with tempfile.TemporaryDirectory() as tmp:
        gen = _InMemory(sc, Path(tmp))
        gen.run()
    return gen


def noise_free(gen: _InMemory) -> dict[str, np.ndarray]:
    """A control's labelled rows: time, served prediction, noise-free probability, label."""
    keep = gen.joined
    return {"ts": gen.rows.ts[keep], "p": gen.served[keep].astype(np.float64),
            "q": sigmoid(gen.rows.logit[keep]).astype(np.float64), "y": gen.y_clean[keep].astype(np.float64)}


def refresh_ratios(gen: _InMemory, min_rows: int = 500) -> tuple[int, list[float]]:
    """Rows the first snapshot served, and for each refresh serving ``min_rows`` or more, its mean prediction over
    the first snapshot's on the rows it served: 1 when a routine refresh leaves the calibration where it was."""
    ts, pub = gen.rows.ts, np.array(gen.pub)
    served_by = np.maximum(np.searchsorted(pub, ts, side="right") - 1, 0)
    ratios = []
    for k in range(1, len(pub)):
        rows = gen.rows.X[served_by == k]
        if len(rows) >= min_rows:
            ratios.append(float(np.mean(sigmoid(gen.scorer.logits(gen.states[k], rows)))
                                / np.mean(sigmoid(gen.scorer.logits(gen.states[0], rows)))))
    return int((served_by == 0).sum()), ratios


def daily_range(rows: dict[str, np.ndarray]) -> float:
    """Range over days (6-hour blocks under three days) of the log noise-free calibration, on full blocks."""
    ts = rows["ts"]
    for width in (DAY_US, 6 * HOUR_US):
        block = (ts - ts[0]) // width
        n = np.bincount(block)
        full = n >= max(50, 0.5 * float(np.median(n)))
        if full.sum() >= 3 or width != DAY_US:
            sp, sq = np.bincount(block, rows["p"])[full], np.bincount(block, rows["q"])[full]
            cal = np.log(sp / sq)
            return float(cal.max() - cal.min()) if len(cal) else 0.0
    return 0.0


def window_move(rows: dict[str, np.ndarray], onset: str, end: str | None) -> dict[str, float]:
    """Noise-free and logged log-calibration move from the week before ``onset`` (or as long as the window) to it."""
    ts = rows["ts"]
    a = _generate._us(onset)
    b = _generate._us(end) if end else int(ts[-1]) + 1
    inc = (ts >= a) & (ts < b)
    base = (ts >= a - max(b - a, 7 * DAY_US)) & (ts < a)
    p, q, y = rows["p"], rows["q"], rows["y"]
    return {"noise_free": math.log((p[inc].sum() / q[inc].sum()) / (p[base].sum() / q[base].sum())),
            "logged": math.log((p[inc].sum() / y[inc].sum()) / (p[base].sum() / y[base].sum())),
            "clicks": float(y[inc].sum()), "expected_clicks": float(q[inc].sum())}


def in_segment(gen: _InMemory, rows: dict[str, np.ndarray], segment: str | None) -> dict[str, np.ndarray]:
    """``rows`` (:func:`noise_free`) restricted to ``column=value`` (all of them without a segment)."""
    if not segment:
        return rows
    column, value = segment.split("=", 1)
    j = next(i for i, s in enumerate(gen.w.slices) if s.name == column)
    keep = gen.rows.slices[gen.joined, j] == gen.w.slices[j].values.index(value)
    return {key: v[keep] for key, v in rows.items()}


def alarm_move(rows: dict[str, np.ndarray], anomaly: dict) -> dict:
    """A false alarm's headline (``anomaly`` of its answer) with :func:`window_move` over its flagged window."""
    return {"metric": anomaly["metric"], "grain": anomaly["grain"], "segment": anomaly.get("segment"),
            **{k: round(v, 4) for k, v in window_move(rows, anomaly["onset"], anomaly.get("end")).items()}}


def _alarm_line(key: str, a: dict) -> str:
    return (f"  {key}: {a['metric']} at {a['grain']}{' in ' + a['segment'] if a['segment'] else ''}; noise-free move "
            f"{a['noise_free']:+.3f}, logged {a['logged']:+.3f} ({a['clicks']:.0f} clicks, {a['expected_clicks']:.0f} expected)")


def _alarm(split: str, scenario: str, anomaly: dict, max_rows: int) -> dict:
    _, mode, seed = scenario.split("/")
    gen = generated(mode, int(seed), max_rows, split)
    return {"split": split, **alarm_move(in_segment(gen, noise_free(gen), anomaly.get("segment")), anomaly)}


def alarms_only(results: list[Path], max_rows: int, workers: int, out: Path | None) -> None:
    """The noise-free move of every false alarm in ``results`` (module docstring)."""
    todo = []
    for path in results:
        run = json.loads(path.read_text(encoding="utf-8"))
        todo += [(run["meta"]["split"], c["scenario"], c["answer"]["anomaly"]) for c in run["cases"] if c.get("false_alarm")]
    with ProcessPoolExecutor(workers) as pool:
        futures = [pool.submit(_alarm, split, scenario, anomaly, max_rows) for split, scenario, anomaly in todo]
        found = {scenario: fut.result() for (_, scenario, _), fut in zip(todo, futures, strict=True)}
    for key, a in found.items():
        print(_alarm_line(key, a))
    moves = np.abs([a["noise_free"] for a in found.values()])
    if len(moves):
        print(f"{len(moves)} false alarms; noise-free move >= 0.10 (the generator's incident bar): {(moves >= 0.10).sum()}; "
              f"median {np.median(moves):.3f}; logged move larger than the noise-free one: "
              f"{sum(abs(a['logged']) > abs(a['noise_free']) for a in found.values())}")
    if out:
        out.write_text(json.dumps({"results": [str(p) for p in results], "max_rows": max_rows, "alarms": found},
                                  indent=1) + "\n", encoding="utf-8")


def _one(mode: str, seed: int, max_rows: int, alarm: dict | None) -> dict:
    gen = generated(mode, seed, max_rows)
    rows = noise_free(gen)
    first_rows, ratios = refresh_ratios(gen)
    out: dict = {"daily_range": round(daily_range(rows), 4), "first_snapshot_rows": first_rows,
                 "refresh_ratios": [round(r, 4) for r in ratios]}
    if alarm is not None:
        out["alarm"] = alarm_move(rows, alarm)  # over all the log's rows, as this report has always read them
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs=2, default=(0, 133), metavar=("FIRST", "END"))
    ap.add_argument("--max-rows", type=int, default=500_000)
    ap.add_argument("--alarms", type=Path, help="a proving_ground.py results JSON over the same controls")
    ap.add_argument("--alarms-only", type=Path, nargs="+", metavar="RESULTS",
                    help="only the false alarms of these proving_ground.py control runs (either split)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if args.alarms_only:
        alarms_only(args.alarms_only, args.max_rows, args.workers, args.out)
        return
    alarms = {}
    if args.alarms:
        for case in json.loads(args.alarms.read_text(encoding="utf-8"))["cases"]:
            if case.get("false_alarm"):
                alarms[case["scenario"]] = case["answer"]["anomaly"]
    t0 = time.perf_counter()
    keys = [(mode, seed) for seed in range(*args.seeds) for mode in MODES]
    out: dict[str, dict] = {}
    with ProcessPoolExecutor(args.workers) as pool:
        futures = [pool.submit(_one, mode, seed, args.max_rows, alarms.get(f"control/{mode}/{seed}"))
                   for mode, seed in keys]
        for i, ((mode, seed), fut) in enumerate(zip(keys, futures, strict=True)):
            out[f"control/{mode}/{seed}"] = fut.result()
            if (i + 1) % 30 == 0:
                print(f"{i + 1}/{len(keys)} controls ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    ranges = np.array([v["daily_range"] for v in out.values()])
    print(f"{len(ranges)} controls; daily noise-free calibration range >= 0.10 (log): {(ranges >= 0.10).sum()}; "
          f"median {np.median(ranges):.3f}")
    for mode in MODES:
        r = [v["daily_range"] for k, v in out.items() if k.split("/")[1] == mode]
        print(f"  {mode}: median range {np.median(r):.3f}, >= 0.10: {sum(x >= 0.10 for x in r)} of {len(r)}")
    ratios = np.array([r for v in out.values() for r in v["refresh_ratios"]])
    steps = np.array([v["refresh_ratios"][0] for v in out.values() if v["first_snapshot_rows"] >= 500 and v["refresh_ratios"]])
    print(f"{len(ratios)} refreshes serving 500 rows or more: mean prediction over the first snapshot's on the rows "
          f"they served within 3 %: {(np.abs(np.log(ratios)) <= 0.03).sum()}, largest |log| {np.abs(np.log(ratios)).max():.3f}; "
          f"first refresh after a first snapshot that served 500 rows or more ({len(steps)} controls): "
          f"within 3 %: {(np.abs(np.log(steps)) <= 0.03).sum()}, largest |log| {np.abs(np.log(steps)).max():.3f}")
    if alarms:
        for lo, hi in ((0, 0.05), (0.05, 0.10), (0.10, math.inf)):
            inside = [k for k, v in out.items() if lo <= v["daily_range"] < hi]
            print(f"  range in [{lo}, {hi}): {len(inside)} controls, {sum(k in alarms for k in inside)} false alarms")
        for key, v in sorted(out.items()):
            if "alarm" in v:
                print(_alarm_line(key, v["alarm"]))
    if args.out:
        args.out.write_text(json.dumps({"seeds": list(args.seeds), "max_rows": args.max_rows, "controls": out},
                                       indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
