"""Controller-side tools of vllm-fleet (run with python -m from the repository root)."""
