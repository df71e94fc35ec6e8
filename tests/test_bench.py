"""scripts/bench.py runs on a tiny model and writes valid JSON (no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys


def test_bench_script_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    cmd = [sys.executable, "scripts/bench.py", "--width", "0.0625", "--input-size", "64", "--num-classes", "4",
           "--batch-size", "2", "--repeats", "1", "--layers", "--json", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    expected = {"gradcam_original / forward", "gradcam_T1 / forward", "gradcam_T4 / forward",
                "gradcam_T3 / forward_T3", "fused_eval / forward", "fused_eval / unfused_eval"}
    assert expected <= set(data["ratios"])
    assert all(v > 0 for v in data["ratios"].values())
    assert data["timings"]["forward_original"]["compile_s"] > 0 and "device" in data
    assert data["layers"]["conv5_3"]["gflop_per_s"] > 0 and "head forward+backward" in data["layers"]
