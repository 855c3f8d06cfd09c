"""Make the project's custom modules and module_utils importable from tests."""

from __future__ import annotations

import sys
from pathlib import Path

import ansible.module_utils

REPO_ROOT = Path(__file__).resolve().parents[1]
ansible.module_utils.__path__.append(str(REPO_ROOT / "module_utils"))
sys.path.insert(0, str(REPO_ROOT / "library"))
