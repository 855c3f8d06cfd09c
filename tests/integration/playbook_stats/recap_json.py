"""Callback plugin recap_json: the PLAY RECAP's counts per host, written to a JSON file.

Loaded by ansible-playbook from this directory (ANSIBLE_CALLBACK_PLUGINS), not imported by
the tests; tests/integration/playbook_stats/__init__.py enables it and reads the file.
"""

from __future__ import annotations

import json

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: recap_json
type: aggregate
short_description: Write the PLAY RECAP's counts per host to a JSON file.
description:
  - When the playbook ends, writes one JSON object that maps every host of the PLAY RECAP to
    its counts (ok, changed, unreachable, failed, skipped, rescued, ignored), read from
    ansible-core's AggregateStats, the object the default callback prints the recap from.
requirements:
  - enabled in callbacks_enabled (ANSIBLE_CALLBACKS_ENABLED)
options:
  path:
    description: The JSON file to write.
    type: path
    required: true
    env:
      - name: VLLM_FLEET_RECAP_JSON
"""

# AggregateStats.summarize() key -> the label the PLAY RECAP prints, in the recap's order.
RECAP_LABELS = {
    "ok": "ok",
    "changed": "changed",
    "unreachable": "unreachable",
    "failures": "failed",
    "skipped": "skipped",
    "rescued": "rescued",
    "ignored": "ignored",
}


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "recap_json"
    CALLBACK_NEEDS_ENABLED = True

    def v2_playbook_on_stats(self, stats) -> None:
        recap = {}
        for host in sorted(stats.processed):
            summary = stats.summarize(host)
            recap[host] = {label: summary[key] for key, label in RECAP_LABELS.items()}
        with open(self.get_option("path"), "w", encoding="utf-8") as f:
            json.dump(recap, f, indent=1)
