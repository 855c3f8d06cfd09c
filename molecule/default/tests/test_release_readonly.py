"""A verified release is read-only to the service user that runs vLLM: its code is root's
(vllm_release state=sealed, 09_verify.yml), so a compromised engine cannot rewrite it, while
that user still imports vLLM from it."""

from __future__ import annotations

import pytest

HOST = "vllm-fleet-default"
testinfra_hosts = [f"podman://{HOST}"]

PREFIX = "/opt/vllm"
SERVICE_USER = "vllm"


def release(host) -> str:
    """current's release directory, /opt/vllm/releases/<key>, the symlink resolved."""
    cmd = host.run("readlink -f %s/current", PREFIX)
    assert cmd.rc == 0 and cmd.stdout.strip().startswith(f"{PREFIX}/releases/"), cmd.stdout
    return cmd.stdout.strip()


def site_packages(host) -> str:
    cmd = host.run("readlink -f %s/current/venv/lib/python3*/site-packages", PREFIX)
    assert cmd.rc == 0, cmd.stderr
    return cmd.stdout.strip()


def as_service_user(host, script: str):
    return host.run("su -s /bin/sh %s -c %s", SERVICE_USER, script)


# Relative to current's release: the directories and a sample of the files a user runs.
SAMPLE = [
    ".",
    "venv",
    "venv/bin",
    "venv/lib",
    "wheel",
    "venv/pyvenv.cfg",
    "venv/bin/pip",
    "venv/vllm-source-stamp.json",
]
IN_SITE = ["", "vllm", "vllm/__init__.py", "vllm/envs.py", "torch", "torch/__init__.py"]


def sample(host):
    top, site = release(host), site_packages(host)
    return [f"{top}/{rel}".rstrip("/.") for rel in SAMPLE] + [
        f"{site}/{rel}".rstrip("/") for rel in IN_SITE
    ]


def test_the_release_and_a_sample_of_its_files_are_roots_and_not_writable_by_others(host):
    for path in sample(host):
        f = host.file(path)
        assert f.exists, path
        assert (f.user, f.group) == ("root", "root"), (path, f.user, f.group)
        assert f.mode & 0o022 == 0, (path, oct(f.mode))


def test_every_entry_of_the_release_is_sealed(host):
    # Symlinks (bin/python -> the system's) are root's themselves; their mode means nothing.
    top = release(host)
    cmd = host.run(
        "find %s \\( ! -user root -o ! -group root -o \\( ! -type l -perm /6022 \\) \\) "
        "-printf '%%u:%%g %%m %%p\\n' | head -20",
        top,
    )
    assert cmd.rc == 0, cmd.stderr
    assert cmd.stdout == "", f"entries not sealed:\n{cmd.stdout}"


def test_executables_keep_their_exec_bits(host):
    top = release(host)
    for rel in ("venv/bin/pip", "venv/bin/vllm"):
        f = host.file(f"{top}/{rel}")
        assert f.mode & 0o111 == 0o111, (rel, oct(f.mode))
    assert host.file(f"{top}/venv/bin/python").is_symlink
    assert host.file(f"{top}/venv/bin/python").user == "root", "the link itself is root's"


@pytest.mark.parametrize(
    ("what", "script"),
    [
        ("create a file in vllm's package", "touch {site}/vllm/x.py"),
        ("modify a file of vllm", "echo 'import os' >> {site}/vllm/__init__.py"),
        ("remove a file of vllm", "rm -f {site}/vllm/envs.py"),
        ("rename vllm's package", "mv {site}/vllm {site}/vllm-moved"),
        ("add a .pth file", "touch {site}/evil.pth"),
        ("create a file in the release", "touch {top}/x"),
        ("replace the venv", "mv {top}/venv {top}/venv-moved"),
        ("change the stamp", "echo '{{}}' > {top}/venv/vllm-source-stamp.json"),
        ("touch the wheel", "touch {top}/wheel/vllm-*.whl"),
        ("add a wheel", "touch {top}/wheel/other.whl"),
        ("make a file group-writable", "chmod g+w {site}/vllm/__init__.py"),
    ],
)
def test_the_service_user_cannot_change_the_release(host, what, script):
    top, site = release(host), site_packages(host)
    before = host.run("find %s -printf '%%p %%s %%T@ %%u %%m\\n' | sort | sha256sum", top)
    cmd = as_service_user(host, script.format(top=top, site=site))
    assert cmd.rc != 0, f"the service user could {what}: {script}"
    after = host.run("find %s -printf '%%p %%s %%T@ %%u %%m\\n' | sort | sha256sum", top)
    assert after.stdout == before.stdout, f"trying to {what} changed the release"


def test_the_service_user_still_imports_vllm_from_the_read_only_release(host):
    top = release(host)
    code = "import vllm, torch; print(vllm.__version__, vllm.__file__)"
    cmd = as_service_user(host, f"{PREFIX}/current/venv/bin/python -c '{code}'")
    assert cmd.rc == 0, cmd.stderr[-2000:]
    version, location = cmd.stdout.strip().splitlines()[-1].split()
    assert version == "0.30.0"
    assert location.startswith(f"{PREFIX}/current/venv/lib/") or location.startswith(top)
