"""Decisions of the smoke test: which generations to run and whether each one passed.

Pure functions, shared by library/vllm_smoke.py and its unit tests.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

MODEL_VARIABLE = "vllm_source_smoke_models"
TP_VARIABLE = "vllm_source_smoke_tensor_parallel_size"
MODEL_KEYS = ("path", "quantization", "name", "prompt", "expect", "min_agreement")


def model_problem(index: int, model: Any) -> Optional[str]:
    """Return why entry `index` of the models list is unusable, or None."""
    where = f"{MODEL_VARIABLE}[{index}]"
    if not isinstance(model, dict):
        return f"{where} must be a mapping with 'path' (and optional 'quantization'), got {model!r}"
    path = model.get("path")
    if not isinstance(path, str) or not path.startswith("/"):
        return f"{where}.path must be an absolute directory on the host, got {path!r}"
    unknown = sorted(set(model) - set(MODEL_KEYS))
    if unknown:
        return f"{where} has unknown keys {unknown}: use {', '.join(MODEL_KEYS)} only"
    quantization = model.get("quantization")
    if quantization is not None and not isinstance(quantization, str):
        return f"{where}.quantization must be a method name such as modelopt, got {quantization!r}"
    for key in ("prompt", "expect"):
        value = model.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            return f"{where}.{key} must be a non-empty string, got {value!r}"
    agreement = model.get("min_agreement")
    if agreement is not None and (
        isinstance(agreement, bool)
        or not isinstance(agreement, (int, float))
        or not 0 < agreement <= 1
    ):
        return (
            f"{where}.min_agreement must be a fraction in (0, 1] of the expected tokens the "
            f"model must reproduce, got {agreement!r}"
        )
    if agreement is not None and not model.get("expect"):
        return f"{where}.min_agreement needs {where}.expect, the text to agree with"
    return None


def tensor_parallel_sizes(setting: int, gpu_count: int) -> List[int]:
    """Return the tensor-parallel sizes each model generates with.

    setting 0 (auto): 1, plus the GPU count when the host has two or more GPUs (the fleet's
    multi-GPU check). A positive setting: 1 and that size (just 1 when it is 1).
    """
    if setting < 0:
        raise ValueError(f"{TP_VARIABLE} must be 0 (auto) or a positive GPU count, got {setting}")
    if setting == 0:
        return [1, gpu_count] if gpu_count >= 2 else [1]
    if gpu_count and setting > gpu_count:
        raise ValueError(
            f"{TP_VARIABLE} is {setting} but the host has {gpu_count} GPU(s): set it to "
            f"{gpu_count} or less, or 0 to follow the GPU count"
        )
    return [1] if setting == 1 else [1, setting]


def plan_runs(
    models: List[Dict[str, Any]], sizes: List[int], prompt: str = ""
) -> List[Dict[str, Any]]:
    """Return one run per model and tensor-parallel size, in a stable order.

    A model's own prompt replaces `prompt`; with `expect` the run must continue that prompt
    with that text (min_agreement: the share of its tokens that must match, default all).
    """
    runs = []
    for model in models:
        for size in sizes:
            run = {
                "name": model.get("name") or model["path"].rstrip("/").rsplit("/", 1)[-1],
                "path": model["path"],
                "quantization": model.get("quantization"),
                "tensor_parallel_size": size,
                "prompt": model.get("prompt") or prompt,
            }
            if model.get("expect"):
                run["expect"] = model["expect"]
                run["min_agreement"] = float(model.get("min_agreement") or 1.0)
            runs.append(run)
    return runs


def agreement(generated: List[int], expected: Optional[List[int]]) -> Optional[float]:
    """Return the share of the expected token ids the generation reproduced, position by
    position (1.0: all of them), or None when the expected ids are unknown."""
    if not expected:
        return None
    same = sum(1 for got, want in zip(generated, expected) if got == want)
    return round(same / len(expected), 4)


def expect_verdict(run: Dict[str, Any], report: Dict[str, Any]) -> Optional[str]:
    """Return why a run's text does not continue its prompt as expected, or None.

    With the expected token ids (the tokenizer's ids of prompt + expect past the prompt's),
    the run passes when its agreement reaches min_agreement; without them (a tokenizer that
    merges across the prompt's end), when its text starts with the expected text.
    """
    expect = run.get("expect")
    if not expect:
        return None
    share = agreement(report.get("token_ids") or [], report.get("expected_ids"))
    text = report.get("text") or ""
    if share is None:
        if text.startswith(expect):
            return None
        return f"continued the prompt with {text!r}, not with the expected {expect!r}"
    if share >= run["min_agreement"]:
        return None
    return (
        f"reproduced {share:.0%} of the expected tokens (at least {run['min_agreement']:.0%} "
        f"needed): continued the prompt with {text!r}, expected {expect!r}; the kernels compute "
        "something else than the checkpoint's own framework did, or the checkpoint is not the "
        "one that was trained for this text"
    )


def run_problem(run: Dict[str, Any], report: Dict[str, Any]) -> Optional[str]:
    """Return why a finished generation fails the smoke test, or None when it passed."""
    label = f"{run['name']} (tensor_parallel_size={run['tensor_parallel_size']})"
    if report.get("error"):
        return f"{label}: vLLM failed: {report['error']}"
    tokens = int(report.get("tokens") or 0)
    if tokens <= 0:
        return f"{label}: generated no tokens"
    expected = run.get("quantization")
    resolved = report.get("quantization")
    if expected and resolved != expected:
        return (
            f"{label}: asked for quantization '{expected}' but vLLM ran it as "
            f"'{resolved or 'unquantized'}': the checkpoint is not a {expected} export, or "
            "this vLLM does not support it"
        )
    verdict = expect_verdict(run, report)
    return f"{label}: {verdict}" if verdict else None


def summarize(run: Dict[str, Any], report: Dict[str, Any]) -> Dict[str, Any]:
    """Merge a run and its child report into the module's per-run result."""
    tokens = int(report.get("tokens") or 0)
    seconds = float(report.get("generate_s") or 0.0)
    result = {
        **run,
        "resolved_quantization": report.get("quantization"),
        "tokens": tokens,
        "load_s": report.get("load_s"),
        "generate_s": seconds,
        "tokens_per_s": round(tokens / seconds, 1) if seconds > 0 else None,
        "text": report.get("text", ""),
        "error": report.get("error"),
        "ended_processes": report.get("ended_processes", []),
    }
    if run.get("expect"):
        result["agreement"] = agreement(report.get("token_ids") or [], report.get("expected_ids"))
        result["expect_matched"] = not report.get("error") and expect_verdict(run, report) is None
    return result


def evaluate(
    runs: List[Dict[str, Any]], reports: List[Dict[str, Any]]
) -> Tuple[List[Dict[str, Any]], List[str]]:
    """Return the per-run results and the list of problems (empty when all passed)."""
    results, problems = [], []
    for run, report in zip(runs, reports):
        results.append(summarize(run, report))
        problem = run_problem(run, report)
        if problem:
            problems.append(problem)
    return results, problems


def summary_line(result: Dict[str, Any]) -> str:
    """Return one human-readable line for a run's result."""
    method = result.get("resolved_quantization") or "unquantized"
    head = f"{result['name']} tp={result['tensor_parallel_size']} {method}"
    if result.get("error"):
        return f"{head}: FAILED: {result['error']}"
    line = (
        f"{head}: {result['tokens']} tokens in {result['generate_s']} s "
        f"({result['tokens_per_s']} tok/s, load {result['load_s']} s): {result['text']!r}"
    )
    if "expect_matched" in result:
        share = result.get("agreement")
        figure = "text" if share is None else f"{share:.0%} of its tokens"
        verdict = "matched" if result["expect_matched"] else "MISSED"
        line += f"; expected continuation {verdict} ({figure})"
    return line
