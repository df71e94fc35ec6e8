"""scripts/bench.py runs on a tiny model and writes valid JSON (no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys


def test_bench_script_writes_json(tmp_path):
    """In-process (the --methods test below is the command line's end-to-end run)."""
    from cam_jax.testing import script

    out = tmp_path / "bench.json"
    assert script("bench").main(["--width", "0.0625", "--input-size", "32", "--num-classes", "4", "--batch-size",
                                 "2", "--repeats", "1", "--layers", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    expected = {"gradcam_original / forward", "gradcam_T1 / forward", "gradcam_T4 / forward",
                "gradcam_T3 / forward_T3", "fused_eval / forward", "fused_eval / unfused_eval"}
    assert expected <= set(data["ratios"])
    assert all(v > 0 for v in data["ratios"].values())
    assert data["timings"]["forward_original"]["compile_s"] > 0 and "device" in data
    assert data["layers"]["conv5_3"]["gflop_per_s"] > 0 and "head forward+backward" in data["layers"]


def test_bench_methods_writes_ratios_and_peer_timings(tmp_path):
    """--methods on a tiny model: every method timed, ratios over the forward, captum in its own process."""
    out = tmp_path / "methods.json"
    cmd = [sys.executable, "scripts/bench.py", "--methods", "--width", "0.0625", "--input-size", "32",
           "--num-classes", "4", "--arch", "vgg11", "--batch-size", "2", "--repeats", "1", "--peers",
           "--method", "gradcam", "--method", "layercam", "--method", "scorecam", "--method", "saliency",
           "--json", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert {"gradcam", "layercam", "scorecam", "saliency", "all gradient-weighted"} <= set(data["ratios"])
    assert all(v > 0 for v in data["ratios"].values())
    captum = data["peers"]["captum"]
    if "error" not in captum:  # captum comes with the torch extra
        assert {"forward", "gradcam", "saliency"} <= set(captum["timings"])
        assert data["ours_over_peer"]["captum"]["saliency"] > 0


def test_bench_audit_writes_its_ratio(tmp_path):
    """--audit on a tiny model, in-process: the audit's time over the forward."""
    from cam_jax.testing import script

    out = tmp_path / "audit.json"
    assert script("bench").main(["--audit", "--arch", "vgg11", "--width", "0.0625", "--input-size", "64",
                                 "--num-classes", "4", "--batch-size", "4", "--repeats", "1",
                                 "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["ratio"] > 0 and data["first_call_s"]["audit"] > 0 and "device" in data
    assert data["reference_ratio"] > 0 and data["first_call_s"]["audit_reference"] > 0
