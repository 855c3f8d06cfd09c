"""The host with vllm_source_installer: uv: uv made the venv and installed every package of
the release, offline from the wheelhouse, each wheel hash-checked; the release works as pip's."""

from __future__ import annotations

import json

HOST = "vllm-fleet-default-uv"
testinfra_hosts = [f"podman://{HOST}"]

PREFIX = "/opt/vllm"
VENV = f"{PREFIX}/current/venv"
UV = f"{PREFIX}/tools/uv-0.13.9/bin/uv"
TAG = "v0.30.0"


def venv_python(host, code: str) -> str:
    cmd = host.run("sudo -u vllm %s/bin/python -c %s", VENV, code)
    assert cmd.rc == 0, cmd.stderr
    return cmd.stdout.strip()


def test_uv_is_the_roles_pin_in_its_own_venv_owned_by_the_service_user(host):
    cmd = host.run("sudo -u vllm %s --version", UV)
    assert cmd.rc == 0, cmd.stderr
    assert cmd.stdout.split()[:2] == ["uv", "0.13.9"]
    for path in (f"{PREFIX}/tools/uv-0.13.9", f"{PREFIX}/cache/uv"):
        f = host.file(path)
        assert f.is_directory and f.user == "vllm" and f.mode & 0o022 == 0, path
    recorded = host.file(f"{PREFIX}/tools/uv-0.13.9/hashed-requirements/uv.txt").content_string
    assert "uv==0.13.9 --hash=sha256:" in recorded  # its own wheel hash-checked, by pip


def test_uv_made_the_venv_and_installed_every_distribution(host):
    assert "uv = 0.13.9" in host.file(f"{VENV}/pyvenv.cfg").content_string
    code = (
        "import importlib.metadata as m, json;"
        "print(json.dumps({d.metadata['Name']: (d.read_text('INSTALLER') or '').strip()"
        " for d in m.distributions()}))"
    )
    installers = json.loads(venv_python(host, code))
    assert {"torch", "vllm", "setuptools", "pip"} <= set(installers)
    assert {name: i for name, i in installers.items() if i != "uv"} == {}


def test_the_release_works_as_pips_does(host):
    code = "import vllm, torch; print(vllm.__version__, torch.__version__)"
    assert venv_python(host, code) == f"{TAG.lstrip('v')} 2.13.0+cpu"


def test_every_install_was_hash_checked_from_the_wheelhouse(host):
    release = host.file(f"{PREFIX}/current").linked_to
    for install in ("torch", "build", "vllm", "runtime"):
        lines = host.file(f"{release}/hashed-requirements/{install}.txt").content_string
        pins = [line for line in lines.splitlines() if line and not line.startswith("#")]
        assert pins and all(" --hash=sha256:" in line for line in pins), (install, lines)


def test_the_release_shares_no_file_with_uvs_cache(host):
    # uv copies (--link-mode copy): sealing the release changes nothing in the cache.
    cmd = host.run("find %s/ -type f -links +1 -print -quit", f"{PREFIX}/cache/uv")
    assert cmd.rc == 0 and cmd.stdout == "", cmd.stdout
