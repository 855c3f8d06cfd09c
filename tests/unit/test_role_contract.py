"""The role's inputs: one prefix, one default each, one typed spec each, all in the README."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "vllm_source"


def load(path: Path):
    return yaml.safe_load(path.read_text(encoding="utf-8"))


DEFAULTS = load(ROLE / "defaults" / "main.yml")
SPECS = load(ROLE / "meta" / "argument_specs.yml")["argument_specs"]
SPEC = SPECS["main"]["options"]
INPUTS = {name for entry in SPECS.values() for name in entry["options"]}


def test_every_variable_has_the_role_prefix():
    assert all(name.startswith("vllm_source_") for name in DEFAULTS)


def test_defaults_and_argument_spec_describe_the_same_variables():
    assert set(DEFAULTS) == INPUTS
    # tasks/main.yml, rollback.yml, status.yml, check_checkpoint.yml and serve_check.yml
    assert set(SPECS) == {"main", "rollback", "status", "check_checkpoint", "serve_check"}


def test_spec_defaults_equal_the_role_defaults():
    for entry, spec in SPECS.items():
        for name, option in spec["options"].items():
            assert option.get("default") == DEFAULTS[name], (entry, name)
            assert option.get("type"), f"{name} has no type"
            assert option.get("description"), f"{name} has no description"


@pytest.mark.parametrize(
    ("entry", "files"),
    [
        ("rollback", ("rollback.yml", "_lock.yml")),
        ("status", ("status.yml",)),
        ("check_checkpoint", ("check_checkpoint.yml",)),
        ("serve_check", ("serve_check.yml",)),
    ],
)
def test_each_other_entry_point_validates_what_it_reads(entry, files):
    text = "".join((ROLE / "tasks" / name).read_text(encoding="utf-8") for name in files)
    read = set(re.findall(r"(?<![\w])(vllm_source_\w+)", text))
    assert read == set(SPECS[entry]["options"])


def test_readme_lists_every_variable_with_its_default():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    # The role's table; the playbooks' own variables (serial, ...) follow in another table.
    readme = readme.split("### Playbook variables")[0]
    rows = {
        m.group(1): m.group(2).strip()
        for m in re.finditer(r"^\| `(vllm_source_\w+)` \| (.*?) \|", readme, re.MULTILINE)
    }
    assert set(rows) == set(DEFAULTS)
    for name, default in DEFAULTS.items():
        shown = rows[name].strip("`")
        expected = yaml.safe_dump(default, default_flow_style=True).strip().removesuffix("...")
        assert shown == expected.strip(), f"{name}: README shows {shown!r}, default is {expected!r}"


def role_text() -> str:
    files = [
        *(ROLE / "tasks").glob("*.yml"),
        *(ROLE / "templates").glob("*.j2"),
        ROLE / "vars" / "main.yml",
    ]
    return "\n".join(p.read_text(encoding="utf-8") for p in files)


def test_every_variable_the_role_reads_is_an_input_or_derived():
    text = role_text()
    derived = set(load(ROLE / "vars" / "main.yml"))
    used = set(re.findall(r"(?<![\w])(_*vllm_source_\w+)", text)) - {
        "vllm_source_facts"
    }  # a module
    registered = set(re.findall(r"register: (__vllm_source_\w+)", text))
    facts = set(re.findall(r"^\s+(__vllm_source_\w+):", text, re.MULTILINE))
    unknown = used - set(DEFAULTS) - derived - registered - facts
    assert not unknown, f"read but never defined: {sorted(unknown)}"
    unused = set(DEFAULTS) - used
    assert not unused, f"inputs nothing reads: {sorted(unused)}"


def test_inputs_and_internals_look_different():
    # Inputs are vllm_source_* (defaults + argument spec); everything the role derives,
    # registers or sets is __vllm_source_*, so a reader tells them apart at a glance.
    text = role_text()
    plain = set(re.findall(r"(?<![\w])(vllm_source_\w+)", text)) - {"vllm_source_facts"}
    assert plain <= INPUTS, f"internals without the __ prefix: {sorted(plain - INPUTS)}"
    assert all(name.startswith("__vllm_source_") for name in load(ROLE / "vars" / "main.yml"))


def phase_files() -> list:
    return sorted(p.name for p in (ROLE / "tasks").glob("[0-9][0-9]_*.yml"))


def test_main_includes_the_phases_in_the_order_ls_shows():
    # tasks/main.yml reads like a table of contents: one include per phase file, in order.
    main = tasks_of("main.yml")
    order = [
        t.get("ansible.builtin.include_tasks") for t in main if "ansible.builtin.include_tasks" in t
    ]
    order += [
        t.get("ansible.builtin.include_tasks")
        for t in next(t for t in main if "block" in t)["block"]
    ]
    assert order == phase_files()
    assert 8 <= len(order) <= 12


def test_phases_include_other_files_only_for_a_shared_step_or_a_rescue():
    for name in [*phase_files(), "rollback.yml"]:
        for task in walk(tasks_of(name)):
            included = task.get("ansible.builtin.include_tasks")
            if included:
                assert included in ("_lock.yml", "_failed_safely.yml"), (name, task["name"])


PLAYBOOK_VARIABLES = {"vllm_source_serial": "100%", "vllm_source_max_fail_percentage": 100}


def test_readme_lists_the_playbook_variables_with_the_defaults_the_playbooks_use():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("### Playbook variables")[1].split("\n## ")[0]
    rows = dict(re.findall(r"^\| `(vllm_source_\w+)` \| `?(.*?)`? \|", table, re.MULTILINE))
    assert rows == {k: str(v) for k, v in PLAYBOOK_VARIABLES.items()}
    for playbook in ("vllm_source.yml", "rollback.yml"):
        text = (ROOT / "playbooks" / playbook).read_text(encoding="utf-8")
        for name, default in PLAYBOOK_VARIABLES.items():
            shown = f"'{default}'" if isinstance(default, str) else str(default)
            assert f"{name} | default({shown})" in text, (playbook, name)


def tasks_of(name: str) -> list:
    return load(ROLE / "tasks" / name) or []


def writes_the_stamp(task: dict) -> bool:
    return "__vllm_source_stamp_path" in str(task.get("ansible.builtin.copy", {}).get("dest", ""))


def test_the_stamp_is_written_after_the_smoke_test():
    # A release without a stamp never becomes current: writing it before the smoke test made a
    # release that did not generate current on the next run with the smoke test off.
    change = next(t for t in tasks_of("main.yml") if "block" in t)["block"]
    order = [t.get("ansible.builtin.include_tasks") for t in change]
    assert order.index("09_verify.yml") < order.index("10_release.yml")
    assert any("vllm_smoke" in t for t in walk(tasks_of("09_verify.yml")))
    stampers = {
        name: [t["name"] for t in tasks_of(name) if writes_the_stamp(t)]
        for name in (p.name for p in (ROLE / "tasks").glob("*.yml"))
    }
    stampers = {name: tasks for name, tasks in stampers.items() if tasks}
    assert list(stampers) == ["10_release.yml"], stampers
    release = tasks_of("10_release.yml")
    first_switch = next(i for i, t in enumerate(release) if "vllm_release" in t)
    assert any(writes_the_stamp(t) for t in release[:first_switch])


def test_precompiled_builds_never_check_the_staged_cuda_sources():
    # vllm_deps_check runs only where the build compiles: a precompiled build needs no
    # FetchContent sources (and must not refuse to run without them).
    vars_ = load(ROLE / "vars" / "main.yml")
    assert "vllm_source_build_mode == 'full'" in vars_["__vllm_source_compiles"]
    for path in (ROLE / "tasks").glob("*.yml"):
        for task in walk(tasks_of(path.name)):
            if "vllm_deps_check" in task:
                assert "__vllm_source_compiles" in str(task.get("when")), (path.name, task["name"])


def walk(tasks: list):
    for task in tasks:
        yield task
        for key in ("block", "rescue", "always"):
            yield from walk(task.get(key) or [])


def test_the_plan_gets_the_tags_arch_list():
    # The plan ran before the pins were read, so every tag's arch list was checked against
    # vLLM 0.30.0's (vllm_build_plan's default). The plan that counts runs after the pins.
    pins = [
        name
        for name in phase_files()
        if any("vllm_source_facts" in t for t in walk(tasks_of(name)))
    ]
    plans = [
        (name, t) for name in phase_files() for t in walk(tasks_of(name)) if "vllm_build_plan" in t
    ]
    registered = [(name, t) for name, t in plans if t.get("register")]
    assert len(registered) == 1, "one plan is remembered"
    name, plan = registered[0]
    assert pins == ["03_pins.yml"] and name > pins[0]
    assert (
        plan["vllm_build_plan"]["supported_archs"]
        == "{{ __vllm_source_pins.cuda_supported_archs | default([]) }}"
    )
    # The early check (before the system packages) remembers nothing and warns nothing.
    early = [t for name, t in plans if not t.get("register")]
    assert [t["vllm_build_plan"]["warn"] for t in early] == [False]


def test_one_credentials_mask():
    # The user:password@ pattern is spelled once, in vars/main.yml; every mask uses that var.
    spelled = {
        path.relative_to(ROLE).as_posix(): path.read_text(encoding="utf-8").count("[^/@")
        for path in ROLE.rglob("*.yml")
    }
    assert {name: n for name, n in spelled.items() if n} == {"vars/main.yml": 1}
