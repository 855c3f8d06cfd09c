"""Ansible's controller code in a unit test process, without marking the whole process."""

from __future__ import annotations

import contextlib
from typing import Iterator


@contextlib.contextmanager
def controller_side() -> Iterator[None]:
    """Ansible's controller code (the Templar) inside the block only. Importing it marks the
    whole process as the controller, after which a module's warnings go to the display, not
    to its result, and the other module tests of the run would miss them."""
    from ansible.module_utils import _internal

    before = _internal.is_controller
    import ansible.template  # noqa: F401  (the import marks the process)

    _internal.is_controller = True
    try:
        yield
    finally:
        _internal.is_controller = before
