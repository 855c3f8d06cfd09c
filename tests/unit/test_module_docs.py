"""Every custom module's documentation renders with ansible-doc (a YAML slip in DOCUMENTATION
made `ansible-doc vllm_lock` and `vllm_release` fail with "Unable to parse documentation")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted(p.stem for p in (ROOT / "library").glob("*.py"))


def test_ansible_doc_renders_every_module() -> None:
    ansible_doc = Path(sys.executable).with_name("ansible-doc")
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    done = subprocess.run(
        [str(ansible_doc), "-M", str(ROOT / "library"), "-t", "module", "--json", *MODULES],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    docs = json.loads(done.stdout)
    assert sorted(docs) == MODULES
    for name, doc in docs.items():
        assert doc["doc"]["short_description"], name
        assert doc["doc"].get("options"), f"{name} documents no options"
        assert doc["examples"], f"{name} has no EXAMPLES"
        assert doc["return"] is not None, f"{name} has no RETURN"
