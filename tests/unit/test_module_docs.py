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


def ansible_doc(kind: str, names: list, **env_extra: str) -> dict:
    """ansible-doc --json of these plugins, as this repository's ansible.cfg configures it."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), **env_extra)
    done = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-doc")), "-t", kind, "--json", *names],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_ansible_doc_renders_every_module() -> None:
    docs = ansible_doc("module", MODULES, ANSIBLE_LIBRARY=str(ROOT / "library"))
    assert sorted(docs) == MODULES
    for name, doc in docs.items():
        assert doc["doc"]["short_description"], name
        assert doc["doc"].get("options"), f"{name} documents no options"
        assert doc["examples"], f"{name} has no EXAMPLES"
        assert doc["return"] is not None, f"{name} has no RETURN"


# The playbooks' filters (filter_plugins/, through ansible.cfg) and the role's own.
FILTER_DIRS = [ROOT / "filter_plugins", ROOT / "roles" / "vllm_source" / "filter_plugins"]
FILTERS = sorted(p.stem for d in FILTER_DIRS for p in d.glob("*.py"))


def test_ansible_doc_renders_every_filter() -> None:
    docs = ansible_doc(
        "filter", FILTERS, ANSIBLE_FILTER_PLUGINS=os.pathsep.join(map(str, FILTER_DIRS))
    )
    assert sorted(docs) == FILTERS
    for name, doc in docs.items():
        assert doc["doc"]["short_description"], name
        assert doc["examples"], f"{name} has no EXAMPLES"
