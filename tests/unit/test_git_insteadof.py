"""filter_plugins/git_insteadof_args.py: the git -c URL rewrites of stage_sources.yml.

The filter must give the argv the playbook's Jinja gave: the tests render that Jinja and the
replacement expression with ansible's Templar, the filter loaded from filter_plugins/.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Dict, List

import pytest
from controller_side import controller_side

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "filter_plugins" / "git_insteadof_args.py"

# playbooks/stage_sources.yml's vllm_source_stage_git, which the filter replaces, verbatim.
JINJA_BEFORE = (
    "{{ ['git'] + (['-c'] | ansible.builtin.product(vllm_source_stage_url_map | dict2items\n"
    "   | map(attribute='value') | zip(vllm_source_stage_url_map | dict2items"
    " | map(attribute='key'))\n"
    "   | map('join', '.insteadOf=') | map('regex_replace', '^', 'url.'))"
    " | ansible.builtin.flatten) }}"
)
JINJA_AFTER = "{{ ['git'] + (vllm_source_stage_url_map | git_insteadof_args) }}"

MAPS: List[Dict[str, Any]] = [
    {},
    {"https://github.com/": "https://mirror.example/github/"},
    {
        "https://github.com/": "https://git.example/gh/",
        "https://gitlab.com/": "file:///srv/mirror/gitlab/",
        "git@github.com:": "https://git.example/gh/",
    },
]


def load_plugin() -> Any:
    spec = importlib.util.spec_from_file_location("git_insteadof_args", PLUGIN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def render(expression: str, url_map: Any) -> Any:
    from ansible.parsing.dataloader import DataLoader
    from ansible.plugins.loader import filter_loader
    from ansible.template import Templar, trust_as_template

    filter_loader.add_directory(str(PLUGIN.parent))
    templar = Templar(loader=DataLoader(), variables={"vllm_source_stage_url_map": url_map})
    return templar.template(trust_as_template(expression))


@pytest.mark.parametrize("url_map", MAPS)
def test_the_filter_gives_the_playbooks_argv(url_map: Dict[str, Any]) -> None:
    with controller_side():
        before = render(JINJA_BEFORE, url_map)
        assert render(JINJA_AFTER, url_map) == before
        assert ["git", *load_plugin().git_insteadof_args(url_map)] == before


def test_each_rewrite_is_one_c_option_in_the_maps_order() -> None:
    with controller_side():
        args = load_plugin().git_insteadof_args(MAPS[2])
    assert args == [
        "-c",
        "url.https://git.example/gh/.insteadOf=https://github.com/",
        "-c",
        "url.file:///srv/mirror/gitlab/.insteadOf=https://gitlab.com/",
        "-c",
        "url.https://git.example/gh/.insteadOf=git@github.com:",
    ]


def test_a_map_that_is_no_mapping_is_refused() -> None:
    with controller_side():
        from ansible.errors import AnsibleError

        with pytest.raises(AnsibleError, match="mapping of old URL prefix -> new prefix"):
            load_plugin().git_insteadof_args(["https://github.com/"])
        with pytest.raises(AnsibleError, match="got a list"):
            render(JINJA_AFTER, ["x"])
        with pytest.raises(AnsibleError, match="got a string"):
            load_plugin().git_insteadof_args("https://github.com/")
