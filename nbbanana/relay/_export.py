"""``nbbanana relay export``: the workshop's prompts, images and costs for the records.

Writes ``requests.csv`` (one row per request: time, participant, model, prompt, tokens
estimated and actual, cost, status, latency, its images), ``participants.csv`` (name,
cap, spend), ``summary.json`` and ``images/``. No token or token hash is exported.
"""

from __future__ import annotations

import csv
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ._ledger import Ledger, image_filename

__all__ = ["export"]


def export(ledger: Ledger, out: str | Path) -> dict[str, Any]:
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    images_of: dict[int, list[str]] = {}
    for image in ledger.images():
        name = image_filename(image["sha256"], image["mime"])
        source = ledger.images_dir / name
        if source.exists() and not (out / "images" / name).exists():
            shutil.copyfile(source, out / "images" / name)
        images_of.setdefault(image["request_id"], []).append(f"images/{name}")
    with open(out / "requests.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["id", "time_utc", "participant_id", "participant", "model", "method", "prompt",
             "status", "http_status", "estimated_input_tokens", "estimated_output_tokens",
             "estimated_usd", "input_tokens", "output_tokens", "cost_usd", "latency_s",
             "hidden", "images", "error"]
        )  # fmt: skip
        for r in ledger.requests():
            writer.writerow(
                [r["id"], _utc(r["time"]), r["participant_id"], r["name"], r["model"], r["method"],
                 r["prompt"], r["status"], r["http_status"], r["est_input_tokens"],
                 r["est_output_tokens"], f"{r['est_micros'] / 1e6:.6f}", r["input_tokens"],
                 r["output_tokens"], f"{r['cost_micros'] / 1e6:.6f}",
                 "" if r["latency_s"] is None else f"{r['latency_s']:.3f}", r["hidden"],
                 " ".join(images_of.get(r["id"], [])), r["error"] or ""]
            )  # fmt: skip
    participants = ledger.participants()
    with open(out / "participants.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["id", "name", "cap_usd", "rate_per_min", "revoked", "spent_usd", "requests"]
        )
        for p in participants:
            writer.writerow(
                [p.id, p.name, "" if p.cap_micros is None else f"{p.cap_micros / 1e6:.2f}",
                 p.rate_per_min or "", int(p.revoked), f"{p.spent_micros / 1e6:.6f}", p.requests]
            )  # fmt: skip
    summary = {**ledger.totals(), "participants": len(participants), "exported": _utc(None)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def _utc(timestamp: float | None) -> str:
    moment = datetime.now(UTC) if timestamp is None else datetime.fromtimestamp(timestamp, UTC)
    return moment.isoformat(timespec="seconds")
