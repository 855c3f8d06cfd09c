"""The vllm-fleet CLI: the project's playbooks through ansible-runner, live progress, a report."""
