"""A regional edit of a 48 MP photo, against the naive route (send it all, get ~1 MP back).

Each route runs in its own process (so peak RSS is its own) against one emulator process
in the known-transform mode: the edit answer is the crop (or the whole photo) tinted
violet, slightly zoomed and shifted, as a model that reframes a little would answer.
The tint is the ground truth of the edit, so the quality of each route inside the region
is measured as PSNR against the source tinted at full resolution.

* ``regional`` — :func:`nbbanana.region.edit_region`: crop + margin sent, the answer
  registered, resampled and blended back into the full-size photo;
* ``naive``    — ``Session.edit`` of the whole photo, the ~1 MP answer scaled back up to
  48 MP (what one does without regional edits).

Columns: wall time excluding the model's (the emulator's) time, median and best of the
runs (the machine may be shared: the load average is printed with the table), that model
time, peak RSS of the process, the time to save the full-size PNG and its size (its own
column: saving is a separate step), PSNR inside the region, and how many pixels outside
the blended area differ from the source.

Usage: ``python benchmarks/region_bench.py [--side 8000] [--repeat 3]``.
Targets for the regional route: < 2 s wall time, < 600 MB peak RSS.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
PROMPT = "make it violet"  # a named colour: the emulator's tint does not depend on the seed
VIOLET = (150, 60, 220)


def _rss_mb() -> float:
    """Peak RSS of this process. On Linux from /proc (VmHWM): ru_maxrss survives fork and
    exec, so a child would report its parent's peak if that was higher."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _box(width: int, height: int) -> tuple[int, int, int, int]:
    """A region of 15 % × 15 % of the photo, a little off centre."""
    w, h = int(width * 0.15), int(height * 0.15)
    left, top = int(width * 0.45), int(height * 0.40)
    return left, top, left + w, top + h


# --------------------------------------------------------------------------- children


def _child(args: argparse.Namespace) -> None:
    import numpy as np
    from PIL import Image

    from nbbanana import connect
    from nbbanana.emulator._transform import TINT_STRENGTH

    session = connect(base_url=args.base_url, timeout=120)
    photo = Path(args.photo)
    with Image.open(photo) as probe:
        size = probe.size
    box = _box(*size)
    figures: dict[str, Any] = {}
    started = time.perf_counter()
    if args.child == "regional":
        from nbbanana.region import _finish, _prepare

        # edit_region's three steps, timed apart: decode + crop, the request (fitting
        # included), registration + blending.
        job = _prepare(photo, box, None, 0.25, None)
        prepared = time.perf_counter()
        answer = session.edit(job.crop, PROMPT)
        sent = time.perf_counter()
        result = _finish(job, answer, 0.7)
        figures["steps_s"] = {
            "decode+crop": round(prepared - started, 2),
            "fit+request-model": round(sent - prepared - answer.latency_s, 2),
            "register+blend": round(time.perf_counter() - sent, 2),
        }
        figures["wall_s"] = time.perf_counter() - started - result.latency_s
        figures["model_s"] = result.latency_s
        figures["peak_rss_mb"] = _rss_mb()
        saving = time.perf_counter()
        paths = result.save(args.outdir)
        figures["save_s"] = time.perf_counter() - saving
        figures["png_mb"] = paths[0].stat().st_size / 1e6
        assert result.image is not None
        got = np.asarray(result.image.crop(box), dtype=np.float64)
        figures["registration"] = result.region["registration"]
        figures["seam"] = result.region["seam"]
        figures["output"] = list(result.image.size)
        composite = result.image
    else:
        answer = session.edit(photo, PROMPT)
        assert answer.image is not None
        aw, ah = answer.image.size
        figures["wall_s"] = time.perf_counter() - started - answer.latency_s
        figures["model_s"] = answer.latency_s
        figures["peak_rss_mb"] = _rss_mb()
        # The answer scaled back to the photo's size: only the region is computed here,
        # the way a full-size upscale would fill it.
        sx, sy = aw / size[0], ah / size[1]
        region_box = (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)
        up = answer.image.convert("RGB").resize(
            (box[2] - box[0], box[3] - box[1]), Image.Resampling.BICUBIC, box=region_box
        )
        got = np.asarray(up, dtype=np.float64)
        figures["save_s"] = None
        figures["png_mb"] = None
        figures["output"] = [aw, ah]
        composite = None
    with Image.open(photo) as source_file:
        source = source_file.convert("RGB")
    truth = Image.blend(
        source.crop(box),
        Image.new("RGB", (box[2] - box[0], box[3] - box[1]), VIOLET),
        TINT_STRENGTH,
    )
    mse = float(np.mean((got - np.asarray(truth, dtype=np.float64)) ** 2))
    figures["psnr_db"] = 10 * np.log10(255**2 / mse)
    if composite is not None:
        feather = 64  # the largest feather: a conservative blended area
        outside = np.ones((size[1], size[0]), bool)
        outside[box[1] - feather : box[3] + feather, box[0] - feather : box[2] + feather] = False
        a, b = np.asarray(composite), np.asarray(source)
        figures["changed_outside"] = int(np.count_nonzero(np.any(a != b, axis=2) & outside))
    else:
        figures["changed_outside"] = "all (new picture)"
    print(json.dumps(figures))


# --------------------------------------------------------------------------- parent


def _make_photo(folder: Path, side: int) -> Path:
    """A ``side`` × ¾·``side`` JPEG with texture at several scales everywhere."""
    import numpy as np
    from PIL import Image

    sys.path.insert(0, str(HERE.parent.parent / "tests"))
    from _imagegen import photo_like

    width, height = side, side * 3 // 4
    image = photo_like(width, height, seed=5)
    rng = np.random.default_rng(5)
    for step in (96, 24, 6):  # detail at every scale, as in a real photo
        noise = rng.integers(0, 256, size=(height // step, width // step, 3), dtype=np.uint8)
        texture = Image.fromarray(noise, "RGB").resize((width, height), Image.Resampling.BICUBIC)
        image = Image.blend(image, texture, 0.2)
    path = folder / f"photo-{width}x{height}.jpg"
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=92)
    path.write_bytes(buffer.getvalue())
    return path


def _inject(url: str, count: int) -> None:
    body = json.dumps({"fault": "transform", "count": count}).encode()
    request = urllib.request.Request(
        f"{url}/emulator/faults", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=8000, help="photo width (height = ¾)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per route (median shown)")
    parser.add_argument("--child", choices=["regional", "naive"], help=argparse.SUPPRESS)
    parser.add_argument("--photo", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--outdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return 0

    env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        photo = _make_photo(folder, args.side)
        emulator = subprocess.Popen(
            [sys.executable, "-m", "nbbanana", "emulator", "--seed", "7"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
        )  # fmt: skip
        try:
            assert emulator.stdout is not None
            url = emulator.stdout.readline().strip()
            runs: dict[str, list[dict[str, Any]]] = {"regional": [], "naive": []}
            for _ in range(args.repeat):
                for route in runs:  # interleaved: both see the same machine state
                    _inject(url, 1)
                    proc = subprocess.run(
                        [sys.executable, str(HERE), "--child", route, "--photo", str(photo),
                         "--base-url", url, "--outdir", str(folder / route)],
                        capture_output=True, text=True, env=env,
                    )  # fmt: skip
                    if proc.returncode != 0:
                        raise SystemExit(f"{route} failed:\n{proc.stderr[-3000:]}")
                    runs[route].append(json.loads(proc.stdout.strip().splitlines()[-1]))
        finally:
            emulator.terminate()
            emulator.wait(timeout=10)
    _print_table(runs, args, (load_before, os.getloadavg()))
    return 0


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def _print_table(
    runs: dict[str, list[dict[str, Any]]],
    args: argparse.Namespace,
    load: tuple[tuple[float, float, float], tuple[float, float, float]],
) -> None:
    width, height = args.side, args.side * 3 // 4
    print(
        f"Regional edit of a {width}×{height} ({width * height / 1e6:.0f} MP) JPEG, region "
        f"{_box(width, height)}; median (best) of {args.repeat} runs, model time excluded; "
        f"load average {load[0][0]:.1f} before, {load[1][0]:.1f} after "
        f"({os.cpu_count()} cores).\n"
    )
    header = (
        f"{'route':<10} {'wall s':>12} {'model s':>8} {'peak RSS MB':>12} {'save PNG s':>12} "
        f"{'PNG MB':>7} {'PSNR dB':>8} {'output':>12}  changed outside the region"
    )
    print(header)
    print("-" * len(header))
    for route, figures in runs.items():
        walls = [f["wall_s"] for f in figures]
        saves = [f["save_s"] for f in figures if f["save_s"] is not None]
        sizes = [f["png_mb"] for f in figures if f["png_mb"] is not None]
        output = "×".join(map(str, figures[0]["output"]))
        wall = f"{_median(walls):.2f} ({min(walls):.2f})"
        save = f"{_median(saves):.2f} ({min(saves):.2f})" if saves else "-"
        print(
            f"{route:<10} {wall:>12} {_median([f['model_s'] for f in figures]):>8.2f} "
            f"{_median([f['peak_rss_mb'] for f in figures]):>12.0f} {save:>12} "
            f"{(f'{_median(sizes):.0f}' if sizes else '-'):>7} "
            f"{_median([f['psnr_db'] for f in figures]):>8.1f} {output:>12}  "
            f"{figures[0]['changed_outside']}"
        )
    regional = runs["regional"]
    print(
        f"\nregional: wall time target < 2 s, peak RSS target < 600 MB; registration "
        f"{regional[0]['registration']}, seam {regional[0]['seam']}; steps (s) "
        f"{[f['steps_s'] for f in regional]}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
