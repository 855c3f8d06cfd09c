#!/usr/bin/env python3
"""Run a ModelOpt-quantized Qwen2.5-VL checkpoint with a release's vLLM: vllm-fleet-vl.

    /opt/vllm/current/venv/bin/python scripts/qwen/run_qwen2_5_vl_vllm_modelopt.py \
        --model /models/Qwen2.5-VL-7B-Instruct-FP8 --image cat.jpg --prompt "What is this?"

The same command as the package's `vllm-fleet-vl` console script (vllm_fleet/vl.py), for a
venv that does not have this project installed: run it with the venv's Python.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from vllm_fleet.vl import main

if __name__ == "__main__":
    sys.exit(main())
